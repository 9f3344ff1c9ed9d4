//! CreateTopics (key 19): validate and create topics (all in few store transactions), or only
//! validate. Replica assignments may only name live brokers (the store replicates; leaders are
//! placed by the cluster, not by the assignment).

use super::{RequestCtx, Versions, s, topic_configs};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kfdb_log::{LogError, NewTopic};
use std::collections::HashMap;

pub const KEY: ApiKey = ApiKey::CreateTopics;
pub const VERSIONS: Versions = Versions::new(2, 7);
pub type Request = CreateTopicsRequest;

use super::MAX_PARTITIONS_PER_REQUEST;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<CreateTopicsResponse> {
    let live: Vec<i32> = ctx.broker.live_nodes();
    let cluster_create = ctx.allowed(op::CREATE, Resource::Cluster).await;
    let mut specs = Vec::with_capacity(req.topics.len());
    let mut early: Vec<Option<(i16, String)>> = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        ctx.note_topic(&t.name);
        let mut partitions = t.num_partitions;
        let mut problem = None;
        if !cluster_create && !ctx.allowed(op::CREATE, Resource::Topic(&t.name)).await {
            problem = Some((
                error_code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".to_string(),
            ));
        } else if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                problem = Some((
                    error_code::INVALID_REQUEST,
                    "give either assignments or partitions and replication factor".to_string(),
                ));
            } else if t
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|b| !live.contains(&b.0)))
            {
                problem = Some((
                    error_code::INVALID_REPLICA_ASSIGNMENT,
                    format!("replicas may only be on live brokers {live:?}"),
                ));
            }
            partitions = t.assignments.len() as i32;
        }
        let configs = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        specs.push(NewTopic {
            name: t.name.to_string(),
            partitions,
            replication_factor: t.replication_factor,
            configs,
        });
        early.push(problem);
    }
    // Kafka's controller refuses a request that would add more than 10,000 partitions (its
    // limit of records per operation) for all of its topics, with POLICY_VIOLATION.
    let total: i64 = specs
        .iter()
        .zip(&early)
        .filter(|(_, p)| p.is_none())
        .map(|(t, _)| i64::from(t.partitions.max(1)))
        .sum();
    if total > MAX_PARTITIONS_PER_REQUEST {
        for p in early.iter_mut().filter(|p| p.is_none()) {
            *p = Some((
                error_code::POLICY_VIOLATION,
                super::TOO_MANY_PARTITIONS.to_string(),
            ));
        }
    }
    // `controller_mutation_rate` (strict from v6): topics beyond it are refused.
    // Counted after Kafka's checks: a topic that exists already is not (it fails below).
    let mutations = ctx.mutations(6);
    if !req.validate_only && mutations.applies() {
        let default = ctx.broker.log.config().num_partitions;
        for (t, p) in specs.iter().zip(early.iter_mut()) {
            if p.is_some() || matches!(ctx.broker.log.topics().get(&t.name).await, Ok(Some(_))) {
                continue;
            }
            let n = if t.partitions < 0 {
                default
            } else {
                t.partitions
            };
            if !mutations.admit(i64::from(n)) {
                *p = Some((
                    error_code::THROTTLING_QUOTA_EXCEEDED,
                    super::QUOTA_EXCEEDED.to_string(),
                ));
            }
        }
    }
    let throttle_ms = ctx.mutations_done(&mutations);
    // Topics with a request-level problem are not sent to the data model.
    let to_create: Vec<NewTopic> = specs
        .iter()
        .zip(&early)
        .filter(|(_, p)| p.is_none())
        .map(|(t, _)| t.clone())
        .collect();
    let mut created = ctx
        .broker
        .log
        .topics()
        .create(to_create, req.validate_only)
        .await
        .into_iter();
    let mut results = Vec::with_capacity(specs.len());
    // The broker defaults the created topics' configs are reported with (read once).
    let defaults = ctx
        .broker
        .log
        .topics()
        .broker_defaults()
        .await
        .unwrap_or_default();
    // Topics created with the same configs (in a big request, nearly all of them: none set) report
    // the same list: it is built once per config set (all `topic_configs::topic` reads) and each
    // topic's entry shares its strings.
    let mut reported: HashMap<Vec<(String, String)>, Vec<CreatableTopicConfigs>> = HashMap::new();
    for (spec, problem) in specs.into_iter().zip(early) {
        let base = CreatableTopicResult::default()
            .with_name(kafka_protocol::messages::TopicName(s(spec.name.clone())));
        let outcome = match problem {
            Some(p) => Err(p),
            None => match created.next() {
                Some(Ok(meta)) => Ok(meta),
                // Kafka's wording: kafka-topics prints this message to the operator.
                Some(Err(LogError::TopicExists)) => Err((
                    error_code::from_log_error(&LogError::TopicExists),
                    format!("Topic '{}' already exists.", spec.name),
                )),
                Some(Err(e)) => Err((error_code::from_log_error(&e), e.to_string())),
                None => Err((error_code::UNKNOWN_SERVER_ERROR, "no result".to_string())),
            },
        };
        results.push(match outcome {
            // Configs are reported from v5; older versions answer with the name alone.
            Ok(meta) if ctx.version >= 5 => {
                let configs = reported
                    .entry(meta.configs.clone())
                    .or_insert_with(|| {
                        topic_configs::topic(&meta.configs, &defaults)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(c.name.to_string()))
                                    .with_value(Some(s(c.value)))
                                    .with_read_only(c.read_only)
                                    .with_config_source(c.source)
                            })
                            .collect()
                    })
                    .clone();
                base.with_topic_id(if ctx.version >= 7 {
                    meta.uuid
                } else {
                    uuid::Uuid::nil()
                })
                .with_num_partitions(meta.partitions)
                .with_replication_factor(meta.replication_factor)
                .with_configs(Some(configs))
            }
            Ok(_) => base,
            Err((code, message)) => {
                if code != error_code::TOPIC_ALREADY_EXISTS {
                    tracing::debug!(topic = %spec.name, code, message, "create topic rejected");
                }
                base.with_error_code(code)
                    .with_error_message(Some(s(message)))
            }
        });
    }
    Some(
        CreateTopicsResponse::default()
            .with_throttle_time_ms(throttle_ms)
            .with_topics(results),
    )
}
