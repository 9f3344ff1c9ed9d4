//! SyncGroup (key 14): the leader hands out assignments; every member waits for its own.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

pub const KEY: ApiKey = ApiKey::SyncGroup;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = SyncGroupRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<SyncGroupResponse> {
    if req.group_id.is_empty() {
        return Some(
            SyncGroupResponse::default()
                .with_error_code(error_code::answered(error_code::INVALID_GROUP_ID)),
        );
    }
    if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        return Some(
            SyncGroupResponse::default()
                .with_error_code(error_code::answered(error_code::GROUP_AUTHORIZATION_FAILED)),
        );
    }
    let coordinator = &ctx.broker.groups;
    if let Err(code) = coordinator.check(&req.group_id) {
        return Some(SyncGroupResponse::default().with_error_code(code));
    }
    let group = match coordinator.existing(&req.group_id).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return Some(
                SyncGroupResponse::default()
                    .with_error_code(error_code::answered(error_code::UNKNOWN_MEMBER_ID)),
            );
        }
        Err(e) => {
            return Some(SyncGroupResponse::default().with_error_code(error_code::for_group(&e)));
        }
    };
    let (tx, rx) = oneshot::channel();
    {
        let mut g = group.lock().await;
        let persist = g.sync(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            req.protocol_type.as_deref(),
            req.protocol_name.as_deref(),
            req.assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
            Instant::now(),
            tx,
        );
        coordinator.persist(&g, persist).await;
    }
    let r = match ctx.park(rx).await {
        Ok(r) => r,
        Err(_) => {
            let code = coordinator
                .check(&req.group_id)
                .err()
                .unwrap_or_else(|| error_code::answered(error_code::UNKNOWN_MEMBER_ID));
            return Some(SyncGroupResponse::default().with_error_code(code));
        }
    };
    let resp = SyncGroupResponse::default()
        .with_error_code(error_code::answered(r.error))
        .with_assignment(r.assignment);
    Some(if ctx.version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(s))
            .with_protocol_name(r.protocol.map(s))
    } else {
        resp
    })
}
