//! Produce (key 0): validate each partition's record batches and queue them on the partitions'
//! writers, then answer once the commits are durable (acks 1 and -1; kfdb has no replicas of its
//! own, the store is the replication) or not at all (acks 0).
//!
//! Produce is the one API answered *later*: `begin` returns as soon as every batch is queued, so
//! the connection can read the client's next pipelined Produce and queue it behind this one. Queued
//! appends to a partition share one store commit, and the connection still writes responses in
//! request order.

use super::{RequestCtx, Versions, s};
use crate::error_code;
use futures::future::{BoxFuture, join_all};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kfdb_log::{AppendResult, LogError, LogResult, batch};

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
            error(
                version,
                index,
                error_code::from_log_error(&e),
                Some(e.to_string()),
            )
        }
    }
}

/// A partition's outcome: known now (refused), or an append still to complete.
enum Outcome {
    Done(PartitionProduceResponse),
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
                let meta = match &found {
                    Ok(Some(meta)) => meta,
                    Ok(None) => return refuse(missing_code, None),
                    Err(e) => return refuse(error_code::from_log_error(e), Some(e.to_string())),
                };
                let queued = match p.records.as_ref().map(batch::parse_batches) {
                    None => Err(LogError::CorruptMessage("no records".into())),
                    Some(Err(e)) => Err(e),
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
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, topic_id, outcomes) in topics {
            let partitions = join_all(outcomes.into_iter().map(|o| async move {
                match o {
                    Outcome::Done(r) => r,
                    Outcome::Queued(index, fut) => answer(version, index, fut.await),
                }
            }))
            .await;
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partitions),
            );
        }
        (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    })
}
