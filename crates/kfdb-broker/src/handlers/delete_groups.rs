//! DeleteGroups (key 42): delete empty groups with their committed offsets.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

pub const KEY: ApiKey = ApiKey::DeleteGroups;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = DeleteGroupsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DeleteGroupsResponse> {
    let coordinator = &ctx.broker.groups;
    let log = &ctx.broker.log;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        if !ctx.allowed(op::DELETE, Resource::Group(&id)).await {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(error_code::GROUP_AUTHORIZATION_FAILED),
            );
            continue;
        }
        if let Err(code) = coordinator.check(&id) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(code),
            );
            continue;
        }
        let exists = if coordinator.loaded(&id).is_some() {
            Ok(true)
        } else {
            log.groups().exists(&id).await
        };
        let code = if let Err(e) = &exists {
            error_code::for_group(e)
        } else if exists == Ok(false) {
            error_code::GROUP_ID_NOT_FOUND
        } else {
            match coordinator.group(&id).await {
                Err(e) => error_code::for_group(&e),
                Ok(group) => {
                    let mut g = group.lock().await;
                    let consumer_members = match coordinator.loaded_consumer_group(&id) {
                        Some(cg) => !cg.lock().await.members.is_empty(),
                        None => false,
                    };
                    if !g.members.is_empty() || consumer_members {
                        error_code::NON_EMPTY_GROUP
                    } else {
                        match log.groups().delete(&id).await {
                            Ok(()) => {
                                // Requests that already hold this group must not park a waiter
                                // in it once it is forgotten.
                                g.dead = true;
                                drop(g);
                                coordinator.forget(&id);
                                error_code::NONE
                            }
                            Err(e) => error_code::for_group(&e),
                        }
                    }
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    Some(DeleteGroupsResponse::default().with_results(results))
}
