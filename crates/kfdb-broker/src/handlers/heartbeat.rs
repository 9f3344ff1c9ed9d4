//! Heartbeat (key 12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use tokio::time::Instant;

pub const KEY: ApiKey = ApiKey::Heartbeat;
pub const VERSIONS: Versions = Versions::new(0, 4);
pub type Request = HeartbeatRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<HeartbeatResponse> {
    if req.group_id.is_empty() {
        return Some(
            HeartbeatResponse::default()
                .with_error_code(error_code::answered(error_code::INVALID_GROUP_ID)),
        );
    }
    if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        return Some(
            HeartbeatResponse::default()
                .with_error_code(error_code::answered(error_code::GROUP_AUTHORIZATION_FAILED)),
        );
    }
    if let Err(code) = ctx.broker.groups.check(&req.group_id) {
        return Some(HeartbeatResponse::default().with_error_code(code));
    }
    let code = match ctx.broker.groups.existing(&req.group_id).await {
        Ok(None) => error_code::answered(error_code::UNKNOWN_MEMBER_ID),
        Ok(Some(group)) => error_code::answered(group.lock().await.heartbeat(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            Instant::now(),
        )),
        Err(e) => error_code::for_group(&e),
    };
    Some(HeartbeatResponse::default().with_error_code(code))
}
