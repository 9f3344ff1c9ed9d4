//! Retention and DeleteRecords: whole batches leave the log from its start, and the log start
//! offset advances. Time retention drops leading batches whose newest record is older than
//! `retention.ms`; size retention drops leading batches while the rest still holds at least
//! `retention.bytes` (both per partition, as in Kafka). `sweeps.rs` runs a pass every
//! `log.retention.check.interval.ms`, over the partitions this broker leads.
//!
//! Each store transaction examines at most `RETENTION_BATCH` batch-index rows and deletes with
//! range clears, so a large drop never builds one huge transaction.

use crate::catalog::TopicCatalog;
use crate::clock::now_ms;
use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::leadership::Leadership;
use crate::partition;
use crate::tails::Tails;
use crate::values::{BatchInfo, PartitionState, TopicMeta};
use crate::written::WrittenPartitions;
use kfdb_kv::{Database, Transaction};
use std::sync::Arc;

/// Batch index rows examined per retention transaction.
const RETENTION_BATCH: usize = 1_000;

/// See the module documentation.
pub struct Retention {
    db: Database,
    tails: Arc<Tails>,
    topics: Arc<TopicCatalog>,
    leadership: Arc<Leadership>,
}

impl Retention {
    pub(crate) fn new(
        db: Database,
        tails: Arc<Tails>,
        topics: Arc<TopicCatalog>,
        leadership: Arc<Leadership>,
    ) -> Self {
        Self {
            db,
            tails,
            topics,
            leadership,
        }
    }

    /// Kafka DeleteRecords: move the log start to `offset` (-1: the high watermark), deleting the
    /// batches entirely below it. Returns the new log start (low watermark). Idempotent: a retry
    /// after commit_unknown_result finds the log start already there.
    pub async fn delete_records(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
    ) -> LogResult<i64> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        let start = self
            .db
            .run(|tx, _| async move {
                let mut state = partition::read_state(&tx, p, false).await?;
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
                let infos = partition::batch_infos(&tx, p, RETENTION_BATCH).await?;
                let doomed: Vec<BatchInfo> = infos
                    .into_iter()
                    .take_while(|b| b.last_offset < target)
                    .collect();
                drop_batches(&tx, p, &doomed, &mut state);
                state.log_start = target;
                partition::write_state(&tx, p, &state);
                Ok(target)
            })
            .await?;
        self.tails.truncated(p, start);
        Ok(start)
    }

    /// Apply time and size retention to one partition; returns how many batches were deleted.
    pub async fn enforce(&self, topic: &TopicMeta, partition: i32, now: i64) -> LogResult<usize> {
        let Some(p) = topic.partition(partition) else {
            return Err(LogError::UnknownPartition);
        };
        let defaults = self.topics.broker_defaults().await?;
        let cfg = EffectiveConfig::with_defaults(&topic.configs, &defaults);
        let (retention_ms, retention_bytes) = (cfg.retention_ms(), cfg.retention_bytes());
        if !cfg.deletes() || (retention_ms < 0 && retention_bytes < 0) {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let (deleted, start) = self
                .db
                .run(|tx, _| async move {
                    let Some(mut state) = partition::read_stored_state(&tx, p, false).await? else {
                        return Ok::<_, LogError>((0, 0));
                    };
                    let infos = partition::batch_infos(&tx, p, RETENTION_BATCH).await?;
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
                    drop_batches(&tx, p, &doomed, &mut state);
                    partition::write_state(&tx, p, &state);
                    Ok((n, state.log_start))
                })
                .await?;
            if deleted > 0 {
                self.tails.truncated(p, start);
            }
            total += deleted;
            if deleted < RETENTION_BATCH {
                return Ok(total);
            }
        }
    }

    /// One pass of retention over every written partition this broker leads (each broker sweeps
    /// its own, so the work does not grow with the number of brokers and no two race on the same
    /// keys; a partition never appended to has nothing to delete); returns how many batches were
    /// deleted.
    pub async fn pass(&self) -> LogResult<usize> {
        let now = now_ms();
        let mut deleted = 0;
        let mut partitions = WrittenPartitions::new(self.db.clone());
        while let Some(page) = partitions.next_page(|p| self.leadership.leads(p)).await? {
            for (topic, p) in page {
                deleted += self.enforce(&topic, p.partition, now).await?;
            }
        }
        Ok(deleted)
    }
}

/// Delete leading batches `doomed` (in offset order) and advance `state`.
fn drop_batches(
    tx: &Transaction,
    p: PartitionId,
    doomed: &[BatchInfo],
    state: &mut PartitionState,
) {
    let Some(last) = doomed.last() else { return };
    let end = last.last_offset + 1;
    let (log_begin, _) = keys::log_range(p);
    tx.clear_range(&log_begin, &keys::log_from(p, end));
    let (idx_begin, _) = keys::batch_index_range(p);
    tx.clear_range(&idx_begin, &keys::batch_index(p, end));
    // Aborted transactions whose marker left the log no longer matter to any fetch.
    let (aborted_begin, _) = keys::aborted_txns(p);
    tx.clear_range(&aborted_begin, &keys::aborted_txn(p, end));
    for b in doomed {
        tx.clear(&keys::time_index(p, b.max_timestamp, b.last_offset));
        state.bytes -= b.size;
    }
    state.log_start = state.log_start.max(end);
}
