//! Produce (key 0): validate each partition's record batches, append them through the partition
//! owner's writer (all partitions of the request concurrently), answer after the commit is durable
//! (acks 1 and -1; kfdb has no replicas of its own, the store is the replication) or not at all
//! (acks 0).

use super::{RequestCtx, Versions, s};
use crate::error_code;
use futures::future::join_all;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kfdb_log::{LogError, TopicMeta, batch};
use std::sync::Arc;

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

async fn produce_partition(
    ctx: &RequestCtx<'_>,
    topic: &Arc<TopicMeta>,
    data: PartitionProduceData,
) -> PartitionProduceResponse {
    let index = data.index;
    let result = match data.records.as_ref().map(batch::parse_batches) {
        None => Err(LogError::CorruptMessage("no records".into())),
        Some(Err(e)) => Err(e),
        Some(Ok(batches)) => ctx.broker.log.append(topic, index, batches).await,
    };
    match result {
        Ok(r) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(r.base_offset)
            .with_log_append_time_ms(r.log_append_time)
            .with_log_start_offset(if ctx.version >= 5 {
                r.log_start_offset
            } else {
                -1
            }),
        Err(e) => {
            if !matches!(e, LogError::UnknownTopic | LogError::UnknownPartition) {
                tracing::debug!(topic = %topic.name, partition = index, error = %e, "produce rejected");
            }
            error(
                ctx.version,
                index,
                error_code::from_log_error(&e),
                Some(e.to_string()),
            )
        }
    }
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ProduceResponse> {
    let acks = req.acks;
    let log = &ctx.broker.log;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let found = if ctx.version >= 13 {
            log.topic_by_uuid(topic.topic_id).await
        } else {
            log.topic(&topic.name).await
        };
        let missing_code = if ctx.version >= 13 {
            error_code::UNKNOWN_TOPIC_ID
        } else {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        };
        let partitions = match (found, acks) {
            (_, a) if !(-1..=1).contains(&a) => topic
                .partition_data
                .iter()
                .map(|p| {
                    error(
                        ctx.version,
                        p.index,
                        error_code::INVALID_REQUIRED_ACKS,
                        None,
                    )
                })
                .collect(),
            (Ok(Some(meta)), _) => {
                join_all(
                    topic
                        .partition_data
                        .into_iter()
                        .map(|p| produce_partition(ctx, &meta, p)),
                )
                .await
            }
            (Ok(None), _) => topic
                .partition_data
                .iter()
                .map(|p| error(ctx.version, p.index, missing_code, None))
                .collect(),
            (Err(e), _) => topic
                .partition_data
                .iter()
                .map(|p| {
                    error(
                        ctx.version,
                        p.index,
                        error_code::from_log_error(&e),
                        Some(e.to_string()),
                    )
                })
                .collect(),
        };
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
