//! OffsetDelete (key 47): delete a group's committed offsets for some partitions. Refused with
//! GROUP_SUBSCRIBED_TO_TOPIC while the group has members (kfdb does not inspect subscriptions, so
//! this is stricter than Kafka, which refuses only for subscribed topics).

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

pub const KEY: ApiKey = ApiKey::OffsetDelete;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = OffsetDeleteRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<OffsetDeleteResponse> {
    let coordinator = &ctx.broker.groups;
    let log = &ctx.broker.log;
    if !ctx
        .allowed(op::DELETE, Resource::Group(&req.group_id))
        .await
    {
        return Some(
            OffsetDeleteResponse::default().with_error_code(error_code::GROUP_AUTHORIZATION_FAILED),
        );
    }
    if let Err(code) = coordinator.check(&req.group_id) {
        return Some(OffsetDeleteResponse::default().with_error_code(code));
    }
    let exists = coordinator.loaded(&req.group_id).is_some()
        || match log.groups().exists(&req.group_id).await {
            Ok(e) => e,
            Err(e) => {
                return Some(
                    OffsetDeleteResponse::default().with_error_code(error_code::for_group(&e)),
                );
            }
        };
    if !exists {
        return Some(
            OffsetDeleteResponse::default().with_error_code(error_code::GROUP_ID_NOT_FOUND),
        );
    }
    let consumer_busy = match coordinator.loaded_consumer_group(&req.group_id) {
        Some(cg) => !cg.lock().await.members.is_empty(),
        None => false,
    };
    let busy = match coordinator.group(&req.group_id).await {
        Ok(g) => consumer_busy || !g.lock().await.members.is_empty(),
        Err(e) => {
            return Some(
                OffsetDeleteResponse::default().with_error_code(error_code::for_group(&e)),
            );
        }
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        // The topic, or the code its partitions get (a store failure is not "unknown").
        let meta = match log.topics().get(&t.name).await {
            _ if !ctx.allowed(op::READ, Resource::Topic(&t.name)).await => {
                Err(error_code::TOPIC_AUTHORIZATION_FAILED)
            }
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            Err(e) => Err(error_code::for_group(&e)),
        };
        let mut keys = Vec::new();
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let code = match (&meta, busy) {
                (_, true) => error_code::GROUP_SUBSCRIBED_TO_TOPIC,
                (Ok(m), false) => match m.partition(p.partition_index) {
                    Some(id) => {
                        keys.push(id);
                        error_code::NONE
                    }
                    None => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                },
                (Err(code), false) => *code,
            };
            partitions.push((p.partition_index, code));
        }
        let store = if keys.is_empty() {
            error_code::NONE
        } else {
            match log.groups().delete_offsets(&req.group_id, &keys).await {
                Ok(()) => error_code::NONE,
                Err(e) => error_code::for_group(&e),
            }
        };
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, c)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(if c == error_code::NONE { store } else { c })
                        })
                        .collect(),
                ),
        );
    }
    Some(OffsetDeleteResponse::default().with_topics(topics))
}
