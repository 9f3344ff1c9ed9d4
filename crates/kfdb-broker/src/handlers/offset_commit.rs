//! OffsetCommit (key 8): store a group's committed offsets (one store transaction per request,
//! touching only that group's keys), after the group checks the member and generation.

use super::{RequestCtx, Versions};
use crate::error_code;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use kfdb_log::committed;

pub const KEY: ApiKey = ApiKey::OffsetCommit;
pub const VERSIONS: Versions = Versions::new(2, 9);
pub type Request = OffsetCommitRequest;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA: usize = 4096;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<OffsetCommitResponse> {
    let log = &ctx.broker.log;
    let consumer_group = match ctx.broker.groups.loaded_consumer_group(&req.group_id) {
        Some(g) if !g.lock().await.members.is_empty() => Some(g),
        _ => None,
    };
    let mut load_error = None;
    let classic_group = if consumer_group.is_none() && !req.group_id.is_empty() {
        match ctx.broker.groups.group(&req.group_id).await {
            Ok(g) => Some(g),
            Err(e) => {
                load_error = Some(error_code::for_group(&e));
                None
            }
        }
    } else {
        None
    };
    // The group stays locked until the offsets are stored, so a commit checked against one
    // generation cannot land after the next generation was handed out (as in Kafka).
    let consumer_guard = match &consumer_group {
        Some(g) => Some(g.lock().await),
        None => None,
    };
    let classic_guard = match &classic_group {
        Some(g) => Some(g.lock().await),
        None => None,
    };
    let group_code = if req.group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else if let Some(g) = &consumer_guard {
        g.check_commit(&req.member_id, req.generation_id_or_member_epoch)
    } else if let Some(g) = &classic_guard {
        g.check_commit(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
        )
    } else {
        load_error.unwrap_or(error_code::NOT_COORDINATOR)
    };
    // Per partition: an error code, or the offset to store.
    let mut plan: Vec<(usize, Vec<(i32, i16)>)> = Vec::new();
    let mut to_store = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let meta = if group_code == error_code::NONE {
            log.topic(&t.name).await.ok().flatten()
        } else {
            None
        };
        let mut codes = Vec::new();
        for p in &t.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            let code = if group_code != error_code::NONE {
                group_code
            } else if metadata.len() > MAX_METADATA {
                error_code::OFFSET_METADATA_TOO_LARGE
            } else {
                match &meta {
                    Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => {
                        to_store.push((
                            m.id,
                            p.partition_index,
                            committed(p.committed_offset, p.committed_leader_epoch, metadata),
                        ));
                        error_code::NONE
                    }
                    _ => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                }
            };
            codes.push((p.partition_index, code));
        }
        plan.push((ti, codes));
    }
    let store_code = if to_store.is_empty() {
        error_code::NONE
    } else {
        match log.commit_offsets(&req.group_id, &to_store).await {
            Ok(()) => error_code::NONE,
            Err(e) => error_code::for_group(&e),
        }
    };
    drop(consumer_guard);
    drop(classic_guard);
    let topics = plan
        .into_iter()
        .map(|(ti, codes)| {
            let partitions = codes
                .into_iter()
                .map(|(p, code)| {
                    let code = if code == error_code::NONE {
                        store_code
                    } else {
                        code
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(req.topics[ti].name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
