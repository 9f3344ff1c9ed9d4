//! The partition reader: fetching record batches and looking up offsets.
//!
//! A fetch is one forward range read from `("log", tid, p, offset)`: batches are keyed by their last
//! offset, so the first row is the batch holding `offset`. Whole batches are returned; the first
//! even when it is larger than the byte budget (so a consumer always makes progress). All reads are
//! snapshot reads: they never conflict with appends.
//!
//! A read_committed fetch stops before the last stable offset and, when what it returns holds
//! transactional batches, lists the aborted transactions that overlap it (from the partition's
//! aborted-transaction index), so the consumer can drop their records.

use crate::cache::Miss;
use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keyindex::{self, KeyedRecord};
use crate::partition;
use crate::parts::RecordParts;
use crate::tails::Tails;
use crate::values::{PartitionState, TopicMeta};
use kfdb_kv::{Database, Transaction};
use std::sync::Arc;

/// What a fetch of one partition returns.
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    /// The record batches in order (empty when none), as the cache or the store holds them.
    pub records: RecordParts,
    /// The high watermark (next offset).
    pub high_watermark: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// The last stable offset.
    pub last_stable_offset: i64,
    /// read_committed: aborted transactions `(producer id, first offset)` overlapping `records`.
    pub aborted: Option<Vec<(i64, i64)>>,
}

/// Which records a fetch may see (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Everything up to the high watermark.
    ReadUncommitted,
    /// Only below the last stable offset, with aborted transactions listed.
    ReadCommitted,
}

/// An offset found by ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetLookup {
    /// The offset, -1 when no record matches.
    pub offset: i64,
    /// The timestamp of that record, -1 for earliest/latest.
    pub timestamp: i64,
}

/// Read whole batches starting with the one holding `offset`, until `max_bytes` is reached at a
/// batch boundary (the first batch always whole).
async fn read_batches(
    tx: &Transaction,
    p: PartitionId,
    offset: i64,
    max_bytes: usize,
) -> LogResult<RecordParts> {
    partition::read_log(tx, p, offset, i64::MAX, max_bytes).await
}

/// See the module documentation.
pub struct PartitionReader {
    db: Database,
    tails: Arc<Tails>,
}

const NOT_FOUND: OffsetLookup = OffsetLookup {
    offset: -1,
    timestamp: -1,
};

impl PartitionReader {
    pub(crate) fn new(db: Database, tails: Arc<Tails>) -> Self {
        Self { db, tails }
    }

    /// Partition offsets without reading data.
    pub async fn partition_state(&self, p: PartitionId) -> LogResult<PartitionState> {
        self.db
            .run(|tx, _| async move { partition::read_state(&tx, p, true).await })
            .await
    }

    /// The states of many partitions, read together (snapshot reads in one transaction).
    pub async fn partition_states(&self, ps: &[PartitionId]) -> LogResult<Vec<PartitionState>> {
        self.db
            .run(|tx, _| async move {
                let tx = &tx;
                futures::future::try_join_all(
                    ps.iter()
                        .map(|p| async move { partition::read_state(tx, *p, true).await }),
                )
                .await
            })
            .await
    }

    /// The latest record of `key` in a partition of a topic that keeps a key index (`None`: the
    /// key has no record there, or its record is below the log start). A tombstone comes back
    /// with no value. Strongly consistent: one store transaction that sees every committed
    /// append, whichever broker made it.
    pub async fn latest_by_key(
        &self,
        topic: &TopicMeta,
        partition: i32,
        key: &[u8],
    ) -> LogResult<Option<KeyedRecord>> {
        if !EffectiveConfig::new(&topic.configs).indexes_keys() {
            return Err(LogError::InvalidRequest(format!(
                "topic {} keeps no key index (it does not compact and kfdb.key.index is false)",
                topic.name
            )));
        }
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        self.db
            .run(|tx, _| async move {
                let Some(entry) = keyindex::get(&tx, p, key, true).await? else {
                    return Ok(None);
                };
                let state = partition::read_state(&tx, p, true).await?;
                if entry.offset < state.log_start {
                    return Ok(None);
                }
                let found = if entry.tombstone {
                    Some(KeyedRecord {
                        partition,
                        offset: entry.offset,
                        timestamp: entry.timestamp,
                        value: None,
                        headers: Vec::new(),
                    })
                } else {
                    let stored = read_batches(&tx, p, entry.offset, 1).await?.to_bytes();
                    keyindex::record_at(&stored, entry.offset)?
                };
                match found {
                    Some(r) => Ok(Some(KeyedRecord { partition, ..r })),
                    None => Err(LogError::Corrupt(format!(
                        "the key index of {p} points at offset {}, which holds no record",
                        entry.offset
                    ))),
                }
            })
            .await
    }

    /// Fetch from `offset`, about `max_bytes` (whole batches), read_uncommitted.
    pub async fn fetch(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> LogResult<FetchResult> {
        self.fetch_isolated(
            topic,
            partition,
            offset,
            max_bytes,
            Isolation::ReadUncommitted,
        )
        .await
    }

    /// Fetch from `offset`, about `max_bytes` (whole batches), at the given isolation level.
    pub async fn fetch_isolated(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> LogResult<FetchResult> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        let mut result = self.fetch_all(p, offset, max_bytes).await?;
        if isolation == Isolation::ReadCommitted {
            let stable = crate::batch::stable_prefix(&result.records, result.last_stable_offset);
            result.records = stable.records;
            result.aborted = Some(if stable.transactional {
                self.aborted_between(p, offset, stable.last_offset).await?
            } else {
                Vec::new()
            });
        }
        Ok(result)
    }

    /// Aborted transactions with records in `[from, to]`, as `(producer id, first offset)`.
    async fn aborted_between(
        &self,
        p: PartitionId,
        from: i64,
        to: i64,
    ) -> LogResult<Vec<(i64, i64)>> {
        let found = self
            .db
            .run(|tx, _| async move { partition::aborted_between(&tx, p, from, to).await })
            .await?;
        Ok(found
            .into_iter()
            .map(|(pid, first, _marker)| (pid, first))
            .collect())
    }

    /// The last stable offset of a partition (ListOffsets latest under read_committed).
    pub async fn last_stable_offset(&self, topic: &TopicMeta, partition: i32) -> LogResult<i64> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        Ok(self.partition_state(p).await?.last_stable())
    }

    async fn fetch_all(
        &self,
        p: PartitionId,
        offset: i64,
        max_bytes: usize,
    ) -> LogResult<FetchResult> {
        match self.tails.cache().read(p, offset, max_bytes.max(1)) {
            Ok(hit) => {
                return Ok(FetchResult {
                    records: if max_bytes == 0 {
                        RecordParts::new()
                    } else {
                        hit.records
                    },
                    high_watermark: hit.high_watermark,
                    log_start_offset: hit.log_start,
                    last_stable_offset: hit.last_stable,
                    aborted: None,
                });
            }
            Err(Miss::OutOfRange) => return Err(LogError::OffsetOutOfRange),
            Err(Miss::Store) => {}
        }
        self.db
            .run(|tx, _| async move {
                let state = partition::read_state(&tx, p, true).await?;
                let mut result = FetchResult {
                    records: RecordParts::new(),
                    high_watermark: state.next_offset,
                    log_start_offset: state.log_start,
                    last_stable_offset: state.last_stable(),
                    aborted: None,
                };
                if offset < state.log_start || offset > state.next_offset {
                    return Err(LogError::OffsetOutOfRange);
                }
                if offset < state.next_offset && max_bytes > 0 {
                    result.records = read_batches(&tx, p, offset, max_bytes).await?;
                }
                Ok(result)
            })
            .await
    }

    /// ListOffsets: `-2` earliest, `-1` latest, `-3` max timestamp, `-4` earliest local (same as
    /// earliest here), `>= 0` the first record whose timestamp is at or after it.
    pub async fn lookup_offset(
        &self,
        topic: &TopicMeta,
        partition: i32,
        timestamp: i64,
    ) -> LogResult<OffsetLookup> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        self.db
            .run(|tx, _| async move {
                let state = partition::read_state(&tx, p, true).await?;
                match timestamp {
                    -2 | -4 => Ok(OffsetLookup {
                        offset: state.log_start,
                        timestamp: -1,
                    }),
                    -1 => Ok(OffsetLookup {
                        offset: state.next_offset,
                        timestamp: -1,
                    }),
                    -3 => {
                        if state.max_timestamp_offset < state.log_start {
                            return Ok(NOT_FOUND);
                        }
                        let found = first_at_or_after(
                            &tx,
                            p,
                            state.max_timestamp_offset,
                            state.max_timestamp,
                        )
                        .await?;
                        Ok(found.unwrap_or(NOT_FOUND))
                    }
                    t if t >= 0 => {
                        let Some(last) = partition::first_batch_reaching(&tx, p, t).await? else {
                            return Ok(NOT_FOUND);
                        };
                        let last = last.max(state.log_start);
                        let found = first_at_or_after(&tx, p, last, t).await?;
                        Ok(found.unwrap_or(NOT_FOUND))
                    }
                    _ => Err(LogError::InvalidRequest(format!("timestamp {timestamp}"))),
                }
            })
            .await
    }
}

/// In the batch holding `offset` (and, if needed, the ones after it), the first record whose
/// timestamp is at least `target`.
async fn first_at_or_after(
    tx: &Transaction,
    p: PartitionId,
    offset: i64,
    target: i64,
) -> LogResult<Option<OffsetLookup>> {
    let bytes = read_batches(tx, p, offset, 1).await?.to_bytes();
    // Walked record by record with the bounded decompression of `records.rs` (a stored batch
    // is the producer's bytes: never decompressed without a bound).
    for batch in crate::batch::stored_batches(&bytes) {
        let records = crate::records::raw_records(&batch)
            .map_err(|e| LogError::Corrupt(format!("stored batch does not decode: {e}")))?;
        for r in records {
            let timestamp = if batch.is_log_append_time() {
                batch.max_timestamp
            } else {
                batch.base_timestamp.saturating_add(r.timestamp_delta)
            };
            if timestamp >= target {
                return Ok(Some(OffsetLookup {
                    offset: batch.base_offset() + i64::from(r.offset_delta),
                    timestamp,
                }));
            }
        }
    }
    Ok(None)
}
