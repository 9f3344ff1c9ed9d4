//! DeleteTopics (key 20): by name (v1–5) or by name or topic id (v6+).

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kfdb_log::TopicId;

pub const KEY: ApiKey = ApiKey::DeleteTopics;
pub const VERSIONS: Versions = Versions::new(1, 6);
pub type Request = DeleteTopicsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DeleteTopicsResponse> {
    let log = &ctx.broker.log;
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    let mutations = ctx.mutations(5);
    for (name, id) in targets {
        // ACLs: DELETE on the topic (by id: on the name the id resolves to).
        let acl_name = match &name {
            Some(n) => Some(n.clone()),
            None => match log.topics().get_by_uuid(id).await {
                Ok(found) => found.map(|m| m.name.clone()),
                Err(e) => {
                    responses.push(
                        DeletableTopicResult::default()
                            .with_topic_id(id)
                            .with_error_code(error_code::from_log_error(&e))
                            .with_error_message((ctx.version >= 5).then(|| s(e.to_string()))),
                    );
                    continue;
                }
            },
        };
        if let Some(n) = &acl_name
            && !ctx.allowed(op::DELETE, Resource::Topic(n)).await
        {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(s(n))))
                    .with_topic_id(id)
                    .with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message((ctx.version >= 5).then(|| s("Authorization failed."))),
            );
            continue;
        }
        // `controller_mutation_rate` (strict from v5): the topic's partitions count.
        let partitions = if !mutations.applies() {
            0
        } else {
            match &name {
                Some(n) => log.topics().get(n).await,
                None => log.topics().get_by_uuid(id).await,
            }
            .ok()
            .flatten()
            .map_or(0, |m| i64::from(m.partitions))
        };
        // An unknown topic (0 partitions) is answered by the delete below, not by the quota.
        if partitions > 0 && !mutations.admit(partitions) {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(s(n))))
                    .with_topic_id(id)
                    .with_error_code(error_code::THROTTLING_QUOTA_EXCEEDED)
                    .with_error_message((ctx.version >= 5).then(|| s(super::QUOTA_EXCEEDED))),
            );
            continue;
        }
        let result = match &name {
            Some(n) => log.delete_topic(TopicId::Name(n)).await,
            None => log.delete_topic(TopicId::Uuid(id)).await,
        };
        responses.push(match result {
            Ok(meta) => {
                tracing::info!(topic = %meta.name, "deleted topic");
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(s(meta.name.clone()))))
                    .with_topic_id(if ctx.version >= 6 {
                        meta.uuid
                    } else {
                        uuid::Uuid::nil()
                    })
            }
            Err(e) => {
                let code = match (&e, &name) {
                    (kfdb_log::LogError::UnknownTopic, None) => error_code::UNKNOWN_TOPIC_ID,
                    _ => error_code::from_log_error(&e),
                };
                DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(s(n))))
                    .with_topic_id(id)
                    .with_error_code(code)
                    .with_error_message((ctx.version >= 5).then(|| s(e.to_string())))
            }
        });
    }
    let throttle_ms = ctx.mutations_done(&mutations);
    Some(
        DeleteTopicsResponse::default()
            .with_throttle_time_ms(throttle_ms)
            .with_responses(responses),
    )
}
