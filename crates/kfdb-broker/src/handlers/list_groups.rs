//! ListGroups (key 16): every group known to the store or live here, with state and type
//! (filters from v4/v5).

use super::{RequestCtx, Versions, s};
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
    let mut after: Option<String> = None;
    loop {
        match ctx.broker.log.list_groups(after.as_deref(), PAGE).await {
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
                    ListGroupsResponse::default().with_error_code(error_code::from_log_error(&e)),
                );
            }
        }
    }
    let mut groups = Vec::new();
    for id in ids {
        let Ok(group) = coordinator.group(&id).await else {
            continue;
        };
        let g = group.lock().await;
        let state = g.state.name();
        if ctx.version >= 4
            && !req.states_filter.is_empty()
            && !req
                .states_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(state))
        {
            continue;
        }
        if ctx.version >= 5
            && !req.types_filter.is_empty()
            && !req
                .types_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case("classic"))
        {
            continue;
        }
        let mut listed = ListedGroup::default()
            .with_group_id(GroupId(s(id.clone())))
            .with_protocol_type(s(g.protocol_type.clone().unwrap_or_default()));
        if ctx.version >= 4 {
            listed = listed.with_group_state(s(state));
        }
        if ctx.version >= 5 {
            listed = listed.with_group_type(s("classic"));
        }
        groups.push(listed);
    }
    Some(ListGroupsResponse::default().with_groups(groups))
}
