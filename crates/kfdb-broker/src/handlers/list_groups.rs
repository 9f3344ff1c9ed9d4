//! ListGroups (key 16): every group known to the store or live here, with state and type
//! (filters from v4/v5).

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use std::collections::BTreeSet;

pub const KEY: ApiKey = ApiKey::ListGroups;
pub const VERSIONS: Versions = Versions::new(0, 5);
pub type Request = ListGroupsRequest;

const PAGE: usize = 1_000;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ListGroupsResponse> {
    let coordinator = &ctx.broker.groups;
    let mut ids: BTreeSet<String> = coordinator.loaded_ids().into_iter().collect();
    ids.extend(coordinator.consumer_group_ids());
    let mut after: Option<String> = None;
    loop {
        match ctx.broker.log.groups().list(after.as_deref(), PAGE).await {
            Ok(page) => {
                let full = page.len() == PAGE;
                after = page.last().cloned();
                ids.extend(page);
                if !full {
                    break;
                }
            }
            Err(e) => {
                return Some(
                    ListGroupsResponse::default().with_error_code(error_code::for_group(&e)),
                );
            }
        }
    }
    let mut groups = Vec::new();
    // ACLs: DESCRIBE on the cluster lists every group, else those the client may DESCRIBE.
    let all_visible = ctx.allowed(op::DESCRIBE, Resource::Cluster).await;
    // Each broker lists the groups it coordinates; clients ask every broker and merge.
    for id in ids.into_iter().filter(|id| coordinator.check(id).is_ok()) {
        if !all_visible && !ctx.allowed(op::DESCRIBE, Resource::Group(&id)).await {
            continue;
        }
        // KIP-848 groups report their own state and type.
        let (state, protocol_type, group_type) = match coordinator.loaded_consumer_group(&id) {
            Some(cg) => (cg.lock().await.state(), "consumer".to_string(), "consumer"),
            None => {
                let Ok(group) = coordinator.group(&id).await else {
                    continue;
                };
                let g = group.lock().await;
                let pt = g.protocol_type.clone().unwrap_or_default();
                (g.state.name(), pt, "classic")
            }
        };
        let wanted = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
        };
        if (ctx.version >= 4 && !wanted(&req.states_filter, state))
            || (ctx.version >= 5 && !wanted(&req.types_filter, group_type))
        {
            continue;
        }
        let mut listed = ListedGroup::default()
            .with_group_id(GroupId(s(id.clone())))
            .with_protocol_type(s(protocol_type));
        if ctx.version >= 4 {
            listed = listed.with_group_state(s(state));
        }
        if ctx.version >= 5 {
            listed = listed.with_group_type(s(group_type));
        }
        groups.push(listed);
    }
    Some(ListGroupsResponse::default().with_groups(groups))
}
