//! JoinGroup (key 11): join or rejoin a consumer group; the response waits until the rebalance
//! completes (all members rejoined, or the rebalance timeout). See `group::state`.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use crate::group::state::JoinRequest;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

pub const KEY: ApiKey = ApiKey::JoinGroup;
pub const VERSIONS: Versions = Versions::new(0, 9);
pub type Request = JoinGroupRequest;

fn error(code: i16, member_id: String) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(s(member_id))
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<JoinGroupResponse> {
    let coordinator = &ctx.broker.groups;
    let cfg = coordinator.config();
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    if req.group_id.is_empty() {
        return Some(error(
            error_code::answered(error_code::INVALID_GROUP_ID),
            req.member_id.to_string(),
        ));
    }
    if !ctx.allowed(op::READ, Resource::Group(&req.group_id)).await {
        return Some(error(
            error_code::answered(error_code::GROUP_AUTHORIZATION_FAILED),
            req.member_id.to_string(),
        ));
    }
    if session < cfg.min_session_timeout || session > cfg.max_session_timeout {
        return Some(error(
            error_code::answered(error_code::INVALID_SESSION_TIMEOUT),
            req.member_id.to_string(),
        ));
    }
    if let Err(code) = coordinator.check(&req.group_id) {
        return Some(error(code, req.member_id.to_string()));
    }
    if let Some(cg) = coordinator.loaded_consumer_group(&req.group_id)
        && !cg.lock().await.members.is_empty()
    {
        return Some(error(
            error_code::answered(error_code::INCONSISTENT_GROUP_PROTOCOL),
            req.member_id.to_string(),
        ));
    }
    let group = match coordinator.group(&req.group_id).await {
        Ok(g) => g,
        Err(e) => {
            return Some(error(error_code::for_group(&e), req.member_id.to_string()));
        }
    };
    let rebalance = if ctx.version >= 1 {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: ctx
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let (tx, rx) = oneshot::channel();
    {
        let mut g = group.lock().await;
        let persist = g.join(join, Instant::now(), tx);
        coordinator.persist(&g, persist).await;
    }
    let r = match ctx.park(rx).await {
        Ok(r) => r,
        Err(_) => {
            // The group was dropped: deleted, or coordinated elsewhere now.
            let code = coordinator
                .check(&req.group_id)
                .err()
                .unwrap_or_else(|| error_code::answered(error_code::UNKNOWN_MEMBER_ID));
            return Some(error(code, req.member_id.to_string()));
        }
    };
    let v = ctx.version;
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(if v >= 5 { m.instance_id.map(s) } else { None })
                .with_metadata(m.metadata)
        })
        .collect();
    Some(
        JoinGroupResponse::default()
            .with_error_code(error_code::answered(r.error))
            .with_generation_id(r.generation)
            .with_protocol_type(if v >= 7 { r.protocol_type.map(s) } else { None })
            .with_protocol_name(if v >= 7 {
                r.protocol.map(s)
            } else {
                Some(s(r.protocol.unwrap_or_default()))
            })
            .with_leader(s(r.leader))
            .with_member_id(s(r.member_id))
            .with_skip_assignment(v >= 9 && r.skip_assignment)
            .with_members(members),
    )
}
