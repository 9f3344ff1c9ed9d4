//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions, at most
//! `response_partition_limit` partitions per response, continued with a cursor. Named topics are
//! described in name order; an empty topic list describes every topic. A topic the store could
//! not look up (or a listing that failed) is answered with the store failure's code, never as
//! unknown.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kfdb_log::{LogResult, TopicMeta};
use std::sync::Arc;

pub const KEY: ApiKey = ApiKey::DescribeTopicPartitions;
pub const VERSIONS: Versions = Versions::new(0, 0);
pub type Request = DescribeTopicPartitionsRequest;

/// Kafka's default and ceiling for `response_partition_limit`.
const DEFAULT_LIMIT: i32 = 2_000;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeTopicPartitionsResponse> {
    let log = &ctx.broker.log;
    let me = BrokerId(ctx.broker.node_id());
    let limit = if req.response_partition_limit <= 0 {
        DEFAULT_LIMIT
    } else {
        req.response_partition_limit.min(DEFAULT_LIMIT)
    } as usize;
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    // Candidate topics in name order, from the cursor's topic on.
    let mut names: Vec<String> = req.topics.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names.dedup();
    let mut out: Vec<DescribeTopicPartitionsResponseTopic> = Vec::new();
    let mut budget = limit;
    let mut next_cursor = None;
    let mut candidates: Vec<(String, LogResult<Option<Arc<TopicMeta>>>)> = Vec::new();
    if names.is_empty() {
        // The cursor's topic comes first when it (still) exists; a listing never names a
        // topic that does not exist.
        if let Some(t) = &start_topic {
            match log.topics().get(t).await {
                Ok(None) => {}
                found => candidates.push((t.clone(), found)),
            }
        }
        match log.topics().list(start_topic.as_deref(), limit + 1).await {
            Ok(list) => candidates.extend(list.into_iter().map(|m| (m.name.clone(), Ok(Some(m))))),
            Err(e) => {
                tracing::warn!(error = %e, "listing topics failed");
                candidates.push((start_topic.clone().unwrap_or_default(), Err(e)));
            }
        }
    } else {
        for n in names {
            if start_topic.as_ref().is_some_and(|s| &n < s) {
                continue;
            }
            let meta = log.topics().get(&n).await;
            candidates.push((n, meta));
        }
    }
    for (name, meta) in candidates {
        if !ctx.allowed(op::DESCRIBE, Resource::Topic(&name)).await {
            // A named topic answers TOPIC_AUTHORIZATION_FAILED; a listed one is left out.
            if !req.topics.is_empty() {
                out.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED)
                        .with_name(Some(TopicName(s(name)))),
                );
            }
            continue;
        }
        let meta = match meta {
            Ok(Some(m)) => m,
            other => {
                let code = match other {
                    Err(e) => error_code::from_log_error(&e),
                    Ok(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                };
                out.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code)
                        .with_name(Some(TopicName(s(name)))),
                );
                continue;
            }
        };
        let first = if Some(&name) == start_topic.as_ref() {
            start_partition
        } else {
            0
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(first),
            );
            break;
        }
        let end = (first as usize + budget).min(meta.partitions as usize) as i32;
        let partitions = (first..end)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(me)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![me])
                    .with_isr_nodes(vec![me])
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
            })
            .collect::<Vec<_>>();
        budget -= partitions.len();
        out.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(s(name.clone()))))
                .with_topic_id(meta.uuid)
                .with_partitions(partitions)
                .with_topic_authorized_operations(i32::MIN),
        );
        if end < meta.partitions {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(end),
            );
            break;
        }
    }
    Some(
        DescribeTopicPartitionsResponse::default()
            .with_topics(out)
            .with_next_cursor(next_cursor),
    )
}
