//! Produce (key 0): validate each partition's record batches and queue them on the partitions'
//! writers, then answer once the commits are durable (acks 1 and -1; kfdb has no replicas of its
//! own, the store is the replication) or not at all (acks 0).
//!
//! A partition this broker does not lead is refused with NOT_LEADER_OR_FOLLOWER and, from v10
//! (KIP-951), the current leader, its epoch and its endpoint, so the client moves without a
//! metadata refresh.
//!
//! Produce is the one API answered *later*: `begin` returns as soon as every batch is queued, so
//! the connection can read the client's next pipelined Produce and queue it behind this one. Queued
//! appends to a partition share one store commit, and the connection still writes responses in
//! request order.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use futures::future::{BoxFuture, join_all};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ProduceRequest, ProduceResponse};
use kfdb_log::{AppendResult, LogError, LogResult, PartitionId, batch};

pub const KEY: ApiKey = ApiKey::Produce;
/// Decoded from v3 (message format v2); v0 advertised as Kafka does (see `Versions`).
pub const VERSIONS: Versions = Versions {
    min: 3,
    max: 13,
    advertised_min: 0,
};
pub type Request = ProduceRequest;

fn error(version: i16, index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(if version >= 8 { message.map(s) } else { None })
}

fn answer(version: i16, index: i32, result: LogResult<AppendResult>) -> PartitionProduceResponse {
    match result {
        Ok(r) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(r.base_offset)
            .with_log_append_time_ms(r.log_append_time)
            .with_log_start_offset(if version >= 5 { r.log_start_offset } else { -1 }),
        Err(e) => {
            if !matches!(e, LogError::UnknownTopic | LogError::UnknownPartition) {
                tracing::debug!(partition = index, error = %e, "produce rejected");
            }
            let r = error(
                version,
                index,
                error_code::from_log_error(&e),
                Some(e.to_string()),
            );
            match e {
                // Which record, from v8 (KIP-467).
                LogError::InvalidRecord { index, message } if version >= 8 => {
                    r.with_record_errors(vec![
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(index)
                            .with_batch_index_error_message(Some(s(message))),
                    ])
                }
                _ => r,
            }
        }
    }
}

/// A partition's outcome: known now (refused), led by another broker, or an append still to
/// complete.
enum Outcome {
    Done(PartitionProduceResponse),
    NotLeader(i32, PartitionId),
    Queued(i32, BoxFuture<'static, LogResult<AppendResult>>),
}

/// Queue every batch of the request; the returned future completes the response.
pub async fn begin(
    ctx: &RequestCtx<'_>,
    req: Request,
) -> BoxFuture<'static, Option<ProduceResponse>> {
    let version = ctx.version;
    let acks = req.acks;
    let log = &ctx.broker.log;
    // Transactional batches need a transactional id the client may WRITE (Kafka refuses them
    // without one, authorizer or not).
    let txn_allowed = match &req.transactional_id {
        Some(id) => ctx.allowed(op::WRITE, Resource::TransactionalId(id)).await,
        None => false,
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let found = if version >= 13 {
            log.topics().get_by_uuid(topic.topic_id).await
        } else {
            log.topics().get(&topic.name).await
        };
        let missing_code = if version >= 13 {
            error_code::UNKNOWN_TOPIC_ID
        } else {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        };
        let acl_name = match &found {
            Ok(Some(meta)) => meta.name.clone(),
            _ => topic.name.to_string(),
        };
        ctx.note_topic(&acl_name);
        let denied = if !ctx.allowed(op::WRITE, Resource::Topic(&acl_name)).await {
            Some(error_code::TOPIC_AUTHORIZATION_FAILED)
        } else {
            None
        };
        let outcomes: Vec<Outcome> = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let index = p.index;
                let refuse = |code: i16, message: Option<String>| {
                    Outcome::Done(error(version, index, code, message))
                };
                if !(-1..=1).contains(&acks) {
                    return refuse(error_code::INVALID_REQUIRED_ACKS, None);
                }
                if let Some(code) = denied {
                    return refuse(code, None);
                }
                let meta = match &found {
                    Ok(Some(meta)) => meta,
                    Ok(None) => return refuse(missing_code, None),
                    Err(e) => return refuse(error_code::from_log_error(e), Some(e.to_string())),
                };
                if let Some(id) = meta.partition(index)
                    && !log.leadership().leads(id)
                {
                    return Outcome::NotLeader(index, id);
                }
                let queued = match p.records.as_ref().map(batch::parse_batches) {
                    None => Err(LogError::CorruptMessage("no records".into())),
                    Some(Err(e)) => Err(e),
                    // Kafka takes exactly one batch per partition from a v3+ Produce request.
                    Some(Ok(batches)) if batches.len() != 1 => {
                        return refuse(
                            error_code::INVALID_RECORD,
                            Some(format!(
                                "a Produce request carries exactly one record batch per \
                                 partition (this one carries {})",
                                batches.len()
                            )),
                        );
                    }
                    Some(Ok(batches))
                        if !txn_allowed && batches.iter().any(|b| b.is_transactional()) =>
                    {
                        return refuse(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None);
                    }
                    Some(Ok(batches)) => log.writers().enqueue(meta, index, batches),
                };
                match queued {
                    Ok(fut) => Outcome::Queued(index, Box::pin(fut)),
                    Err(e) => Outcome::Done(answer(version, index, Err(e))),
                }
            })
            .collect();
        topics.push((topic.name, topic.topic_id, outcomes));
    }
    // `producer_byte_rate`: the request's size counts (as in Kafka), when it arrives; an acks=0
    // producer is throttled by the mute alone.
    let throttle_ms = ctx.throttle(crate::quota::PRODUCER_BYTE_RATE, ctx.size as f64, u64::MAX);
    let broker = ctx.broker.clone();
    let listener = ctx.client.listener.clone();
    Box::pin(async move {
        // Where the refused partitions are led, for the client (KIP-951).
        let not_led: Vec<PartitionId> = topics
            .iter()
            .flat_map(|(_, _, o)| o.iter())
            .filter_map(|o| match o {
                Outcome::NotLeader(_, p) => Some(*p),
                _ => None,
            })
            .collect();
        let epochs = if not_led.is_empty() || version < 10 {
            Vec::new()
        } else {
            broker
                .log
                .leadership()
                .reported_epochs(&not_led)
                .await
                .unwrap_or_default()
        };
        let mut endpoints: Vec<i32> = Vec::new();
        let mut responses = Vec::with_capacity(topics.len());
        for (name, topic_id, outcomes) in topics {
            let mut partitions = Vec::with_capacity(outcomes.len());
            let mut queued = Vec::new();
            for o in outcomes {
                match o {
                    Outcome::Done(r) => partitions.push(Some(r)),
                    Outcome::NotLeader(index, p) => {
                        let leader = broker.leader(p).unwrap_or(-1);
                        let epoch = not_led
                            .iter()
                            .position(|q| *q == p)
                            .and_then(|i| epochs.get(i).copied())
                            .unwrap_or(-1);
                        let mut r = error(
                            version,
                            index,
                            error_code::NOT_LEADER_OR_FOLLOWER,
                            Some(format!("broker {leader} leads this partition")),
                        );
                        if version >= 10 && leader >= 0 {
                            r = r.with_current_leader(
                                LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch),
                            );
                            if !endpoints.contains(&leader) {
                                endpoints.push(leader);
                            }
                        }
                        partitions.push(Some(r));
                    }
                    Outcome::Queued(index, fut) => {
                        queued.push((partitions.len(), index, fut));
                        partitions.push(None);
                    }
                }
            }
            let done =
                join_all(queued.into_iter().map(|(at, index, fut)| async move {
                    (at, answer(version, index, fut.await))
                }))
                .await;
            for (at, r) in done {
                partitions[at] = Some(r);
            }
            let partitions = partitions.into_iter().flatten().collect();
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partitions),
            );
        }
        let node_endpoints = endpoints
            .into_iter()
            .filter_map(|n| broker.node(n, &listener))
            .map(|n| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(n.id))
                    .with_host(s(n.host))
                    .with_port(n.port)
                    .with_rack(n.rack.map(s))
            })
            .collect();
        (acks != 0).then(|| {
            ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle_ms)
                .with_node_endpoints(node_endpoints)
        })
    })
}
