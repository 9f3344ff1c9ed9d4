//! Retention and DeleteRecords: whole batches leave the log from its start, and the log start
//! offset advances. Time retention drops leading batches whose newest record is older than
//! `retention.ms`; size retention drops leading batches while the rest still holds at least
//! `retention.bytes` (both per partition, as in Kafka). A background task applies them every
//! `log.retention.check.interval.ms`.

use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::values::{BatchInfo, PartitionState, TopicMeta};
use crate::{Log, keys, now_ms, read};
use std::sync::Arc;

/// Batch index rows examined per retention transaction.
const RETENTION_BATCH: usize = 1_000;
/// Topics listed per page while sweeping.
const TOPIC_PAGE: usize = 1_000;

impl Log {
    /// Kafka DeleteRecords: move the log start to `offset` (-1: the high watermark), deleting the
    /// batches entirely below it. Returns the new log start (low watermark).
    pub async fn delete_records(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
    ) -> LogResult<i64> {
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        let tid = topic.id;
        self.db
            .run(|tx, _| async move {
                let mut state = read::partition_state(&tx, tid, partition, false).await?;
                let target = if offset == -1 {
                    state.next_offset
                } else {
                    offset
                };
                if target < 0 || target > state.next_offset {
                    return Err(LogError::OffsetOutOfRange);
                }
                if target <= state.log_start {
                    return Ok(state.log_start);
                }
                let infos = self
                    .batch_infos(&tx, tid, partition, RETENTION_BATCH)
                    .await?;
                let doomed: Vec<BatchInfo> = infos
                    .into_iter()
                    .take_while(|b| b.last_offset < target)
                    .collect();
                drop_batches(&tx, tid, partition, &doomed, &mut state);
                state.log_start = target;
                tx.set(&keys::partition_state(tid, partition), &state.encode());
                Ok(target)
            })
            .await
            .inspect(|start| self.cache.truncated((tid, partition), *start))
    }

    /// Apply time and size retention to one partition; returns how many batches were deleted.
    pub async fn enforce_retention(
        &self,
        topic: &TopicMeta,
        partition: i32,
        now: i64,
    ) -> LogResult<usize> {
        let cfg = EffectiveConfig::new(&topic.configs);
        let (retention_ms, retention_bytes) = (cfg.retention_ms(), cfg.retention_bytes());
        if !cfg.deletes() || (retention_ms < 0 && retention_bytes < 0) {
            return Ok(0);
        }
        let tid = topic.id;
        let mut total = 0;
        loop {
            let deleted = self
                .db
                .run(|tx, _| async move {
                    let Some(v) = tx
                        .get(&keys::partition_state(tid, partition), false)
                        .await?
                    else {
                        return Ok::<_, LogError>((0, 0));
                    };
                    let mut state = PartitionState::decode(&v)?;
                    let infos = self
                        .batch_infos(&tx, tid, partition, RETENTION_BATCH)
                        .await?;
                    let mut remaining = state.bytes;
                    let mut doomed = Vec::new();
                    for b in infos {
                        let expired = retention_ms >= 0 && b.max_timestamp < now - retention_ms;
                        let oversize =
                            retention_bytes >= 0 && remaining - b.size >= retention_bytes;
                        if !(expired || oversize) {
                            break;
                        }
                        remaining -= b.size;
                        doomed.push(b);
                    }
                    if doomed.is_empty() {
                        return Ok((0, state.log_start));
                    }
                    let n = doomed.len();
                    drop_batches(&tx, tid, partition, &doomed, &mut state);
                    tx.set(&keys::partition_state(tid, partition), &state.encode());
                    Ok((n, state.log_start))
                })
                .await
                .map(|(n, start)| {
                    if n > 0 {
                        self.cache.truncated((tid, partition), start);
                    }
                    n
                })?;
            total += deleted;
            if deleted < RETENTION_BATCH {
                return Ok(total);
            }
        }
    }

    /// One pass of retention over every topic.
    pub async fn retention_pass(&self) -> LogResult<usize> {
        let now = now_ms();
        let mut after: Option<String> = None;
        let mut deleted = 0;
        loop {
            let page = self.list_topics(after.as_deref(), TOPIC_PAGE).await?;
            for topic in &page {
                for p in 0..topic.partitions {
                    deleted += self.enforce_retention(topic, p, now).await?;
                }
            }
            match page.last() {
                Some(t) if page.len() == TOPIC_PAGE => after = Some(t.name.clone()),
                _ => return Ok(deleted),
            }
        }
    }

    /// Run retention every `retention_check_interval` until the task is dropped.
    pub async fn run_retention(self: Arc<Self>) {
        let every = self.config.retention_check_interval;
        crate::run_every(
            every,
            Some("retention deleted batches"),
            "retention pass failed",
            || self.retention_pass(),
        )
        .await
    }
}

/// Delete leading batches `doomed` (in offset order) and advance `state`.
fn drop_batches(
    tx: &kfdb_kv::Transaction,
    tid: i64,
    partition: i32,
    doomed: &[BatchInfo],
    state: &mut PartitionState,
) {
    let Some(last) = doomed.last() else { return };
    let (log_begin, _) = keys::log_space(tid, partition).range();
    tx.clear_range(
        &log_begin,
        &keys::log_from(tid, partition, last.last_offset + 1),
    );
    let (idx_begin, _) = keys::batch_index_space(tid, partition).range();
    tx.clear_range(
        &idx_begin,
        &keys::batch_index(tid, partition, last.last_offset + 1),
    );
    // Aborted transactions whose marker left the log no longer matter to any fetch.
    let (aborted_begin, _) = keys::aborted_txns(tid, partition).range();
    tx.clear_range(
        &aborted_begin,
        &keys::aborted_txn(tid, partition, last.last_offset + 1),
    );
    for b in doomed {
        tx.clear(&keys::time_index(
            tid,
            partition,
            b.max_timestamp,
            b.last_offset,
        ));
        state.bytes -= b.size;
    }
    state.log_start = state.log_start.max(last.last_offset + 1);
}
