//! Reads: fetching record batches and looking up offsets.
//!
//! A fetch is one forward range read from `("log", tid, p, offset)`: batches are keyed by their last
//! offset, so the first row is the batch holding `offset`. Whole batches are returned; the first
//! even when it is larger than the byte budget (so a consumer always makes progress). All reads are
//! snapshot reads: they never conflict with appends.
//!
//! A read_committed fetch stops before the last stable offset and, when what it returns holds
//! transactional batches, lists the aborted transactions that overlap it (from the partition's
//! aborted-transaction index), so the consumer can drop their records.

use crate::error::{LogError, LogResult};
use crate::values::{BatchInfo, PartitionState, TopicMeta};
use crate::{Log, keys};
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use kfdb_kv::{RangeOption, Transaction};

/// First byte of every stored chunk value (format version).
pub(crate) const CHUNK_FORMAT: u8 = 1;

/// What a fetch of one partition returns.
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    /// Concatenated record batches (empty when none).
    pub records: Bytes,
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

/// A partition's state (the default before its first append). Writers read it with
/// `snapshot = false` so concurrent changes conflict; readers with `true`.
pub(crate) async fn partition_state(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    snapshot: bool,
) -> LogResult<PartitionState> {
    match tx
        .get(&keys::partition_state(tid, partition), snapshot)
        .await?
    {
        Some(v) => PartitionState::decode(&v),
        None => Ok(PartitionState::default()),
    }
}

/// Read whole batches starting with the one holding `offset`, until `max_bytes` is reached at a
/// batch boundary (the first batch always whole), or `max_batches` batches.
async fn read_batches(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    offset: i64,
    max_bytes: usize,
) -> LogResult<Bytes> {
    let space = keys::log_space(tid, partition);
    let (_, end) = space.range();
    let range = RangeOption::new(keys::log_from(tid, partition, offset), end)
        .target_bytes(max_bytes.clamp(1, 16 * 1024 * 1024));
    let mut stream = Box::pin(tx.get_ranges(range, true));
    let mut out = BytesMut::new();
    let mut current: Option<i64> = None;
    while let Some(rows) = stream.try_next().await? {
        for kv in rows {
            let (last, _chunk): (i64, i32) = space
                .unpack(&kv.key)
                .map_err(|e| LogError::Corrupt(format!("log key: {e}")))?;
            if current != Some(last) {
                if current.is_some() && out.len() >= max_bytes {
                    return Ok(out.freeze());
                }
                current = Some(last);
            }
            match kv.value.first() {
                Some(&CHUNK_FORMAT) => out.extend_from_slice(&kv.value[1..]),
                _ => {
                    return Err(LogError::Corrupt(format!(
                        "chunk of batch {last}: unknown format"
                    )));
                }
            }
        }
    }
    Ok(out.freeze())
}

impl Log {
    /// Partition offsets without reading data.
    pub async fn partition_state(&self, tid: i64, partition: i32) -> LogResult<PartitionState> {
        self.db
            .run(|tx, _| async move { partition_state(&tx, tid, partition, true).await })
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
        let mut result = self.fetch_all(topic, partition, offset, max_bytes).await?;
        if isolation == Isolation::ReadCommitted {
            let stable = crate::batch::stable_prefix(&result.records, result.last_stable_offset);
            result.records = stable.records;
            result.aborted = Some(if stable.transactional {
                self.aborted_between(topic.id, partition, offset, stable.last_offset)
                    .await?
            } else {
                Vec::new()
            });
        }
        Ok(result)
    }

    /// Aborted transactions with records in `[from, to]`: those whose abort marker is at or after
    /// `from` and whose first offset is at or before `to`. The scan (in marker order) ends at the
    /// first entry whose last stable offset after its marker is past `to`: every later abort
    /// started after `to`.
    async fn aborted_between(
        &self,
        tid: i64,
        partition: i32,
        from: i64,
        to: i64,
    ) -> LogResult<Vec<(i64, i64)>> {
        self.db
            .run(|tx, _| async move {
                let space = keys::aborted_txns(tid, partition);
                let (_, end) = space.range();
                // Unlimited, but bounded: an entry that does not end the scan has its marker
                // below its stable offset <= `to`, i.e. inside the fetched range.
                let range = RangeOption::new(keys::aborted_txn(tid, partition, from), end);
                let mut stream = Box::pin(tx.get_ranges(range, true));
                let mut out = Vec::new();
                while let Some(rows) = stream.try_next().await? {
                    for kv in rows {
                        let (pid, first, stable): (i64, i64, i64) =
                            kfdb_kv::tuple::unpack(&kv.value).map_err(|e| {
                                LogError::Corrupt(format!("aborted transaction: {e}"))
                            })?;
                        if first <= to {
                            out.push((pid, first));
                        }
                        if stable > to {
                            return Ok(out);
                        }
                    }
                }
                Ok(out)
            })
            .await
    }

    /// The last stable offset of a partition (ListOffsets latest under read_committed).
    pub async fn last_stable_offset(&self, topic: &TopicMeta, partition: i32) -> LogResult<i64> {
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        Ok(self
            .partition_state(topic.id, partition)
            .await?
            .last_stable())
    }

    async fn fetch_all(
        &self,
        topic: &TopicMeta,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> LogResult<FetchResult> {
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        let tid = topic.id;
        match self.cache.read((tid, partition), offset, max_bytes.max(1)) {
            Ok(hit) => {
                return Ok(FetchResult {
                    records: if max_bytes == 0 {
                        Bytes::new()
                    } else {
                        hit.records
                    },
                    high_watermark: hit.high_watermark,
                    log_start_offset: hit.log_start,
                    last_stable_offset: hit.last_stable,
                    aborted: None,
                });
            }
            Err(crate::cache::Miss::OutOfRange) => return Err(LogError::OffsetOutOfRange),
            Err(crate::cache::Miss::Store) => {}
        }
        self.db
            .run(|tx, _| async move {
                let state = partition_state(&tx, tid, partition, true).await?;
                let mut result = FetchResult {
                    records: Bytes::new(),
                    high_watermark: state.next_offset,
                    log_start_offset: state.log_start,
                    last_stable_offset: state.last_stable(),
                    aborted: None,
                };
                if offset < state.log_start || offset > state.next_offset {
                    return Err(LogError::OffsetOutOfRange);
                }
                if offset < state.next_offset && max_bytes > 0 {
                    result.records = read_batches(&tx, tid, partition, offset, max_bytes).await?;
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
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        let tid = topic.id;
        self.db
            .run(|tx, _| async move {
                let state = partition_state(&tx, tid, partition, true).await?;
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
                            return Ok(OffsetLookup {
                                offset: -1,
                                timestamp: -1,
                            });
                        }
                        let target = state.max_timestamp;
                        let found = first_at_or_after(
                            &tx,
                            tid,
                            partition,
                            state.max_timestamp_offset,
                            target,
                        )
                        .await?;
                        Ok(found.unwrap_or(OffsetLookup {
                            offset: -1,
                            timestamp: -1,
                        }))
                    }
                    t if t >= 0 => {
                        let (b, e) = keys::time_index_space(tid, partition).range();
                        let from = keys::time_index(tid, partition, t, 0);
                        let rows = tx
                            .get_range(&RangeOption::new(from.max(b), e).limit(1), true)
                            .await?;
                        let Some(row) = rows.kvs.first() else {
                            return Ok(OffsetLookup {
                                offset: -1,
                                timestamp: -1,
                            });
                        };
                        let (_, last): (i64, i64) = keys::time_index_space(tid, partition)
                            .unpack(&row.key)
                            .map_err(|e| LogError::Corrupt(format!("time index: {e}")))?;
                        let last = last.max(state.log_start);
                        let found = first_at_or_after(&tx, tid, partition, last, t).await?;
                        Ok(found.unwrap_or(OffsetLookup {
                            offset: -1,
                            timestamp: -1,
                        }))
                    }
                    _ => Err(LogError::InvalidRequest(format!("timestamp {timestamp}"))),
                }
            })
            .await
    }

    /// The stored batch index of a partition from `from_offset` on, in order (for retention).
    pub(crate) async fn batch_infos(
        &self,
        tx: &Transaction,
        tid: i64,
        partition: i32,
        limit: usize,
    ) -> LogResult<Vec<BatchInfo>> {
        let space = keys::batch_index_space(tid, partition);
        let (b, e) = space.range();
        let rows = tx
            .get_range(&RangeOption::new(b, e).limit(limit), false)
            .await?;
        rows.kvs
            .iter()
            .map(|kv| {
                let last: i64 = space
                    .unpack(&kv.key)
                    .map_err(|e| LogError::Corrupt(format!("batch index key: {e}")))?;
                BatchInfo::decode(last, &kv.value)
            })
            .collect()
    }
}

/// In the batch holding `offset` (and, if needed, the ones after it), the first record whose
/// timestamp is at least `target`.
async fn first_at_or_after(
    tx: &Transaction,
    tid: i64,
    partition: i32,
    offset: i64,
    target: i64,
) -> LogResult<Option<OffsetLookup>> {
    let mut bytes = read_batches(tx, tid, partition, offset, 1).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| LogError::Corrupt(format!("stored batch does not decode: {e}")))?;
    Ok(sets
        .into_iter()
        .flat_map(|s| s.records)
        .find(|r| r.timestamp >= target)
        .map(|r| OffsetLookup {
            offset: r.offset,
            timestamp: r.timestamp,
        }))
}
