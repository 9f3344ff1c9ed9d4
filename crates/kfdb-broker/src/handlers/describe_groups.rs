//! DescribeGroups (key 15): state, protocol and members (with their subscriptions and
//! assignments) of classic groups.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};

pub const KEY: ApiKey = ApiKey::DescribeGroups;
pub const VERSIONS: Versions = Versions::new(0, 6);
pub type Request = DescribeGroupsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeGroupsResponse> {
    let coordinator = &ctx.broker.groups;
    let mut out = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let base = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        if !ctx.allowed(op::DESCRIBE, Resource::Group(&id)).await {
            out.push(base.with_error_code(error_code::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let base = if ctx.version >= 3 && req.include_authorized_operations {
            base.with_authorized_operations(ctx.authorized_operations(Resource::Group(&id)).await)
        } else {
            base
        };
        if let Err(code) = coordinator.check(&id) {
            out.push(base.with_error_code(code));
            continue;
        }
        let exists = coordinator.loaded(&id).is_some()
            || match ctx.broker.log.groups().exists(&id).await {
                Ok(e) => e,
                Err(e) => {
                    out.push(base.with_error_code(error_code::for_group(&e)));
                    continue;
                }
            };
        if !exists {
            out.push(if ctx.version >= 6 {
                base.with_error_code(error_code::GROUP_ID_NOT_FOUND)
                    .with_group_state(s("Dead"))
            } else {
                base.with_group_state(s("Dead"))
            });
            continue;
        }
        let group = match coordinator.group(&id).await {
            Ok(g) => g,
            Err(e) => {
                out.push(base.with_error_code(error_code::for_group(&e)));
                continue;
            }
        };
        let g = group.lock().await;
        let stable = g.state == crate::group::state::State::Stable;
        let members = g
            .members
            .values()
            .map(|m| {
                DescribedGroupMember::default()
                    .with_member_id(s(m.id.clone()))
                    .with_group_instance_id(if ctx.version >= 4 {
                        m.instance_id.clone().map(s)
                    } else {
                        None
                    })
                    .with_client_id(s(m.client_id.clone()))
                    .with_client_host(s(m.client_host.clone()))
                    .with_member_metadata(m.metadata(g.protocol.as_deref()))
                    .with_member_assignment(if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    })
            })
            .collect();
        out.push(
            base.with_group_state(s(g.state.name()))
                .with_protocol_type(s(g.protocol_type.clone().unwrap_or_default()))
                .with_protocol_data(s(g.protocol.clone().unwrap_or_default()))
                .with_members(members),
        );
    }
    Some(DescribeGroupsResponse::default().with_groups(out))
}
