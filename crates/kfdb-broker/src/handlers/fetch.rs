//! Fetch (key 1): whole record batches from each requested partition, within `max_bytes` overall
//! and `partition_max_bytes` each (the first batch always whole, so consumers make progress). When
//! less than `min_bytes` is available the request long-polls: it waits, without polling the store,
//! for an append to any of its partitions or for `max_wait_ms`.
//!
//! Fetch sessions (KIP-227) are not kept: every response has session id 0, which tells clients to
//! send full fetch requests.
//!
//! read_committed fetches (isolation level 1) see records below the last stable offset only, with
//! the aborted transactions among them listed so the consumer drops those records; a long poll
//! wakes when a transaction marker moves the last stable offset.

use super::{RequestCtx, Versions};
use crate::error_code;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kfdb_log::{Isolation, LogError, TopicMeta};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const KEY: ApiKey = ApiKey::Fetch;
pub const VERSIONS: Versions = Versions::new(4, 18);
pub type Request = FetchRequest;

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    topic_index: usize,
    topic: Option<Arc<TopicMeta>>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

/// Releases a fetch's watermark subscriptions (see `Log::unwatch_watermark`).
struct Unwatch<'a> {
    log: &'a kfdb_log::Log,
    keys: Vec<(i64, i32)>,
}

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        for (tid, p) in &self.keys {
            self.log.unwatch_watermark(*tid, *p);
        }
    }
}

fn partition_error(partition: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
}

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<FetchResponse> {
    let log = &ctx.broker.log;
    let by_id = ctx.version >= 13;
    let mut wanted = Vec::new();
    let mut topics_out: Vec<FetchableTopicResponse> = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let meta = if by_id {
            log.topic_by_uuid(t.topic_id).await.ok().flatten()
        } else {
            log.topic(&t.topic).await.ok().flatten()
        };
        topics_out.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id),
        );
        for p in &t.partitions {
            wanted.push(Wanted {
                topic_index: i,
                topic: meta.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
            });
        }
    }
    let missing = if by_id {
        error_code::UNKNOWN_TOPIC_ID
    } else {
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut stopping = ctx.broker.stopping.subscribe();
    let isolation = if req.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    // Forget the partitions' watermark channels when this fetch ends, also when it is dropped
    // (declared before the receivers, so it runs after they are gone).
    let _unwatch = Unwatch {
        log,
        keys: wanted
            .iter()
            .filter_map(|w| w.topic.as_ref().map(|t| (t.id, w.partition)))
            .collect(),
    };
    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watches: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .filter_map(|w| {
            w.topic
                .as_ref()
                .map(|t| log.watch_watermark(t.id, w.partition))
        })
        .collect();
    for w in &mut watches {
        w.borrow_and_update();
    }
    loop {
        let mut budget = req.max_bytes.max(0) as usize;
        let mut total = 0usize;
        let mut results = Vec::with_capacity(wanted.len());
        let mut any_error = false;
        for w in &wanted {
            let Some(topic) = &w.topic else {
                results.push(partition_error(w.partition, missing));
                any_error = true;
                continue;
            };
            // Until some partition returned data, each may return at least one batch; after that
            // the request's remaining budget applies (0: offsets only, no records).
            let max = if total == 0 {
                w.max_bytes.max(1)
            } else {
                w.max_bytes.min(budget)
            };
            let r = log
                .fetch_isolated(topic, w.partition, w.offset, max, isolation)
                .await;
            results.push(match r {
                Ok(f) => {
                    total += f.records.len();
                    budget = budget.saturating_sub(f.records.len());
                    PartitionData::default()
                        .with_partition_index(w.partition)
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.last_stable_offset)
                        .with_aborted_transactions(f.aborted.map(|list| {
                            list.into_iter()
                                .map(|(pid, first)| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(pid))
                                        .with_first_offset(first)
                                })
                                .collect()
                        }))
                        .with_log_start_offset(if ctx.version >= 5 { f.log_start_offset } else { -1 })
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(Some(f.records))
                }
                Err(e) => {
                    any_error = true;
                    if !matches!(e, LogError::OffsetOutOfRange) {
                        tracing::debug!(topic = %topic.name, partition = w.partition, error = %e, "fetch failed");
                    }
                    partition_error(w.partition, error_code::from_log_error(&e))
                }
            });
        }
        let now = tokio::time::Instant::now();
        if total >= min_bytes
            || any_error
            || now >= deadline
            || watches.is_empty()
            || *stopping.borrow()
        {
            for (w, r) in wanted.iter().zip(results) {
                topics_out[w.topic_index].partitions.push(r);
            }
            return Some(FetchResponse::default().with_responses(topics_out));
        }
        let woke = {
            let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                r = tokio::time::timeout_at(deadline, changed) => {
                    r.map(|(result, index, _rest)| (result.is_err(), index))
                }
                // Shutting down: one more read answers with what there is.
                _ = stopping.wait_for(|s| *s) => Ok((false, usize::MAX)),
            }
        };
        // A closed channel (topic deleted) is dropped so the loop cannot spin on it; at the
        // deadline one more read answers with what there is.
        if let Ok((true, index)) = woke {
            watches.swap_remove(index);
        }
    }
}
