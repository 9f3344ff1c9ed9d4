//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), or the
//! first offset whose record timestamp is at or after a given time (the time index). Under
//! read_committed (v2+ isolation level 1) latest is the last stable offset. Served by the
//! partition's leader, which checks `current_leader_epoch` (v4+) and reports its epoch.

use super::{RequestCtx, Versions};
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

pub const KEY: ApiKey = ApiKey::ListOffsets;
pub const VERSIONS: Versions = Versions::new(1, 10);
pub type Request = ListOffsetsRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<ListOffsetsResponse> {
    let log = &ctx.broker.log;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        ctx.note_topic(&t.name);
        let meta = log.topics().get(&t.name).await;
        let allowed = ctx.allowed(op::DESCRIBE, Resource::Topic(&t.name)).await;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            if !allowed {
                partitions.push(
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(crate::error_code::TOPIC_AUTHORIZATION_FAILED)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1),
                );
                continue;
            }
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            // Only the leader answers, and only a client that knows the current epoch.
            let epoch = match &meta {
                Ok(Some(m)) => match m.partition(p.partition_index) {
                    Some(id) => {
                        let current = if ctx.version >= 4 {
                            p.current_leader_epoch
                        } else {
                            -1
                        };
                        match ctx.broker.lead(id, current).await {
                            Ok(e) => e,
                            Err(code) => {
                                partitions.push(base.with_error_code(code));
                                continue;
                            }
                        }
                    }
                    None => 0,
                },
                _ => 0,
            };
            let result = match &meta {
                Ok(Some(m)) if p.timestamp == -1 && req.isolation_level == 1 => log
                    .reader()
                    .last_stable_offset(m, p.partition_index)
                    .await
                    .map(|offset| kfdb_log::OffsetLookup {
                        offset,
                        timestamp: -1,
                    }),
                Ok(Some(m))
                    if req.isolation_level == 1 && (p.timestamp >= 0 || p.timestamp == -3) =>
                {
                    // read_committed: a lookup by time finds nothing at or past the last stable
                    // offset (earliest is the log start at any isolation level).
                    match log
                        .reader()
                        .lookup_offset(m, p.partition_index, p.timestamp)
                        .await
                    {
                        Ok(found) if found.offset >= 0 => log
                            .reader()
                            .last_stable_offset(m, p.partition_index)
                            .await
                            .map(|lso| {
                                if found.offset >= lso {
                                    kfdb_log::OffsetLookup {
                                        offset: -1,
                                        timestamp: -1,
                                    }
                                } else {
                                    found
                                }
                            }),
                        other => other,
                    }
                }
                Ok(Some(m)) => {
                    log.reader()
                        .lookup_offset(m, p.partition_index, p.timestamp)
                        .await
                }
                Ok(None) => Err(kfdb_log::LogError::UnknownTopic),
                Err(e) => Err(e.clone()),
            };
            partitions.push(match result {
                Ok(found) => base
                    .with_offset(found.offset)
                    .with_timestamp(found.timestamp)
                    .with_leader_epoch(if ctx.version >= 4 { epoch } else { -1 }),
                Err(e) => base.with_error_code(error_code::from_log_error(&e)),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(ListOffsetsResponse::default().with_topics(topics))
}
