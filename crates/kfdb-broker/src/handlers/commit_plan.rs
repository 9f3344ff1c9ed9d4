//! What OffsetCommit and TxnOffsetCommit share: checking each requested partition (the group's
//! verdict, `offset.metadata.max.bytes`, the topic and partition exist) and collecting the offsets
//! to store, so both answer per partition the same way. A topic the client may not READ answers
//! TOPIC_AUTHORIZATION_FAILED.

use super::RequestCtx;
use crate::authz::acl::{Resource, op};
use crate::error_code;
use kfdb_log::{CommittedOffset, PartitionId, committed};

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA: usize = 4096;

/// One partition of a commit request.
pub(crate) struct Requested {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// The outcome of checking a commit request.
pub(crate) struct Plan {
    /// Per requested topic, in order: (partition, code); NONE means "stored if the store agrees".
    pub codes: Vec<Vec<(i32, i16)>>,
    /// The offset of every partition whose code is NONE.
    pub to_store: Vec<(PartitionId, CommittedOffset)>,
}

impl Plan {
    /// The code a partition answers once the store answered `store_code`.
    pub fn answer(code: i16, store_code: i16) -> i16 {
        if code == error_code::NONE {
            store_code
        } else {
            code
        }
    }
}

/// The `(name, partitions)` of an OffsetCommit or TxnOffsetCommit request's topics (the two
/// message types have the same field names).
macro_rules! requested_topics {
    ($topics:expr) => {
        $topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| $crate::handlers::commit_plan::Requested {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect();
                (t.name.as_str(), partitions)
            })
            .collect()
    };
}
pub(crate) use requested_topics;

/// Check every partition of `topics` (name, partitions) given the group's verdict `group_code`.
pub(crate) async fn plan(
    ctx: &RequestCtx<'_>,
    group_code: i16,
    topics: Vec<(&str, Vec<Requested>)>,
) -> Plan {
    let log = &ctx.broker.log;
    let mut codes = Vec::with_capacity(topics.len());
    let mut to_store = Vec::new();
    for (name, partitions) in topics {
        // The topic, or the code its partitions get: unknown, or the store failure that kept it
        // from being looked up (never reported as unknown).
        let meta = if group_code == error_code::NONE {
            if !ctx.allowed(op::READ, Resource::Topic(name)).await {
                Err(error_code::TOPIC_AUTHORIZATION_FAILED)
            } else {
                match log.topics().get(name).await {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(error_code::UNKNOWN_TOPIC_OR_PARTITION),
                    Err(e) => Err(error_code::for_group(&e)),
                }
            }
        } else {
            Err(group_code)
        };
        let mut topic_codes = Vec::with_capacity(partitions.len());
        for p in partitions {
            let metadata = p.metadata.unwrap_or_default();
            let code = if group_code != error_code::NONE {
                group_code
            } else if metadata.len() > MAX_METADATA {
                error_code::OFFSET_METADATA_TOO_LARGE
            } else {
                match &meta {
                    Ok(m) => match m.partition(p.partition) {
                        Some(id) => {
                            to_store.push((id, committed(p.offset, p.leader_epoch, metadata)));
                            error_code::NONE
                        }
                        None => error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    },
                    Err(code) => *code,
                }
            };
            topic_codes.push((p.partition, code));
        }
        codes.push(topic_codes);
    }
    Plan { codes, to_store }
}
