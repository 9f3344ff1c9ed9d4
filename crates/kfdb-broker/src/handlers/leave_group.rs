//! LeaveGroup (key 13): members leave (one per request before v3, a batch from v3); the rest of
//! the group rebalances.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::group::state::Group;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use tokio::time::Instant;

pub const KEY: ApiKey = ApiKey::LeaveGroup;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = LeaveGroupRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<LeaveGroupResponse> {
    if req.group_id.is_empty() {
        return Some(
            LeaveGroupResponse::default()
                .with_error_code(error_code::answered(error_code::INVALID_GROUP_ID)),
        );
    }
    if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        return Some(
            LeaveGroupResponse::default()
                .with_error_code(error_code::answered(error_code::GROUP_AUTHORIZATION_FAILED)),
        );
    }
    let coordinator = &ctx.broker.groups;
    let leaving: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    if let Err(code) = coordinator.check(&req.group_id) {
        return Some(LeaveGroupResponse::default().with_error_code(code));
    }
    // A group that does not exist answers like an empty one (every member unknown), without
    // being created.
    let group = match coordinator.existing(&req.group_id).await {
        Ok(Some(g)) => g,
        Ok(None) => std::sync::Arc::new(tokio::sync::Mutex::new(Group::new(
            &req.group_id,
            coordinator.config().initial_rebalance_delay,
        ))),
        Err(e) => {
            return Some(LeaveGroupResponse::default().with_error_code(error_code::for_group(&e)));
        }
    };
    let codes = {
        let mut g = group.lock().await;
        let (codes, persist) = g.leave(&leaving, Instant::now());
        coordinator.persist(&g, persist).await;
        codes
    };
    if ctx.version < 3 {
        return Some(
            LeaveGroupResponse::default()
                .with_error_code(error_code::answered(codes.first().copied().unwrap_or(0))),
        );
    }
    let members = req
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(error_code::answered(code))
        })
        .collect();
    Some(LeaveGroupResponse::default().with_members(members))
}
