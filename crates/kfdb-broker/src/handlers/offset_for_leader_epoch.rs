//! OffsetsForLeaderEpoch (key 23, KIP-320): for each partition and the leader epoch of the last
//! record a consumer read, the epoch at or below it that has records and the offset where the next
//! epoch starts (the log end offset for the current epoch). Consumers (librdkafka, the Java
//! client) ask after a leader change to check their position; kfdb never truncates a log, so the
//! answer never puts a consumer's position past the end. Served by the leader, with the
//! `current_leader_epoch` check (v2+).

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

pub const KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
pub const VERSIONS: Versions = Versions::new(2, 4);
pub type Request = OffsetForLeaderEpochRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<OffsetForLeaderEpochResponse> {
    let log = &ctx.broker.log;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = log.topics().get(&t.topic).await;
        let allowed = ctx.allowed(op::DESCRIBE, Resource::Topic(&t.topic)).await;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            if !allowed {
                partitions.push(base.with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let id = match &meta {
                Ok(Some(m)) => m.partition(p.partition),
                _ => None,
            };
            let Some(id) = id else {
                let code = match &meta {
                    Err(e) => error_code::from_log_error(e),
                    _ => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                };
                partitions.push(base.with_error_code(code));
                continue;
            };
            let current = if ctx.version >= 2 {
                p.current_leader_epoch
            } else {
                -1
            };
            if let Err(code) = ctx.broker.lead(id, current).await {
                partitions.push(base.with_error_code(code));
                continue;
            }
            partitions.push(
                match log
                    .leadership()
                    .end_offset_for_epoch(id, p.leader_epoch)
                    .await
                {
                    Ok((epoch, end)) => base
                        .with_leader_epoch(if ctx.version >= 1 { epoch } else { -1 })
                        .with_end_offset(end),
                    Err(e) => base.with_error_code(error_code::from_log_error(&e)),
                },
            );
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
