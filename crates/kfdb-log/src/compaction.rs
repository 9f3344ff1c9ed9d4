//! Compaction (`cleanup.policy=compact`) with Kafka's semantics, decided by the key index
//! (`keyindex.rs`) instead of a scan that builds an offset map: a keyed record is live while the
//! index points at it.
//!
//! A pass over a partition rewrites its log from the log start up to the *cleanable end*: the
//! last stable offset, the last batch (never touched, so a fetch below the high watermark always
//! finds a batch) and the first batch newer than `min.compaction.lag.ms`, whichever comes first.
//! In that range it drops
//! - records the index no longer points at (a later record of the key exists), and keyless
//!   records (Kafka's cleaner drops them too);
//! - tombstones once `delete.retention.ms` has passed since a pass first kept them (the delete
//!   horizon, kept in the tombstone's index entry, whose entry then goes too);
//! - records of aborted transactions (from the partition's aborted-transaction index), and
//!   transaction markers older than `delete.retention.ms` (with an abort marker, its index entry).
//!
//! Kept records keep their offsets (gaps, as in Kafka) and their batch's header (`records.rs`),
//! so idempotent and transactional batches still read as produced. A record of a key the index
//! does not know (written before the topic compacted) or knows at an older offset is live, and
//! the index is brought up to it: turning compaction on for a topic with data loses nothing. A
//! pass that had to do so leaves the partition dirty, so the next pass (with the index complete)
//! drops what it kept too early.
//!
//! A pass runs only when the partition is due: its dirty share of bytes (written since the last
//! pass) is at least `min.cleanable.dirty.ratio`, or its oldest dirty record is older than
//! `max.compaction.lag.ms`. It runs on the partition's leader, one bounded store transaction at a
//! time (about [`CHUNK_BYTES`] of batches, at most [`CHUNK_RECORDS`] records looked up), each
//! holding the partition's writer, so appends wait
//! for at most one such transaction. Which partitions to look at comes from the writers (`Tails`
//! remembers compacted partitions appended to); a partition nobody wrote to is never scanned again.

use crate::batch::{self, Batch};
use crate::catalog::TopicCatalog;
use crate::clock::now_ms;
use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keyindex;
use crate::keys;
use crate::leadership::Leadership;
use crate::partition;
use crate::records::{self, RawRecord};
use crate::tails::Tails;
use crate::values::{BatchInfo, CleanerState, KeyIndexEntry, PartitionState, TopicMeta};
use crate::writer::PartitionWriters;
use crate::written::WrittenPartitions;
use kfdb_kv::{Database, RangeOption, Transaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Bytes of batches one compaction transaction reads (and at most rewrites).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Records one compaction transaction looks up in the key index (each a read: on FoundationDB,
/// a transaction must finish within 5 s).
pub const CHUNK_RECORDS: usize = 2_000;

/// Counters of this broker's compaction, for its metrics.
#[derive(Debug, Default)]
pub struct CompactionStats {
    /// Passes that rewrote a partition's log.
    pub passes: AtomicU64,
    /// Records dropped.
    pub records_removed: AtomicU64,
    /// Bytes the log shrank by.
    pub bytes_removed: AtomicU64,
    /// The highest dirty ratio (per mille) seen in the last check of the partitions.
    pub max_dirty_per_mille: AtomicI64,
    /// The longest time a dirty record had waited (ms) in the last check of the partitions.
    pub max_lag_ms: AtomicI64,
}

/// What one pass did to one partition.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Whether the partition was due and its log rewritten.
    pub ran: bool,
    /// Records dropped.
    pub records_removed: u64,
    /// Bytes the log shrank by.
    pub bytes_removed: u64,
    /// Whether records past the cleanable end wait for a later pass.
    pub pending: bool,
}

/// See the module documentation.
pub struct Compactor {
    db: Database,
    topics: Arc<TopicCatalog>,
    writers: Arc<PartitionWriters>,
    tails: Arc<Tails>,
    leadership: Arc<Leadership>,
    stats: CompactionStats,
}

/// What the check before a pass found.
#[derive(Debug, Clone, Copy)]
struct Plan {
    log_start: i64,
    end: i64,
    head: i64,
    due: bool,
    /// A kept tombstone's delete horizon still to come (-1: none).
    horizon_ms: i64,
    dirty_per_mille: i64,
    lag_ms: i64,
}

/// The settings of a pass, from the topic's configs.
#[derive(Debug, Clone, Copy)]
struct Settings {
    delete_retention_ms: i64,
    now: i64,
}

impl Compactor {
    pub(crate) fn new(
        db: Database,
        topics: Arc<TopicCatalog>,
        writers: Arc<PartitionWriters>,
        tails: Arc<Tails>,
        leadership: Arc<Leadership>,
    ) -> Self {
        Self {
            db,
            topics,
            writers,
            tails,
            leadership,
            stats: CompactionStats::default(),
        }
    }

    /// This broker's compaction counters.
    pub fn stats(&self) -> &CompactionStats {
        &self.stats
    }

    /// Compact the partitions written since the last pass (`all`: also every written partition
    /// of every compacted topic this broker leads, e.g. after a start); returns how many were
    /// compacted. A partition left to look at again is remembered even when the walk of `all`
    /// fails.
    pub async fn pass(&self, all: bool) -> LogResult<usize> {
        let now = now_ms();
        let mut tally = Tally::default();
        for p in self.tails.take_dirty() {
            let topic = match self.topics.get_by_tid(p.tid).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    tally.add(p, Err(e));
                    continue;
                }
            };
            if self.leadership.leads(p) {
                tally.add(p, self.compact_at(&topic, p, now).await);
            }
        }
        let walked = if all {
            self.compact_written(&mut tally, now).await
        } else {
            Ok(())
        };
        for p in std::mem::take(&mut tally.again) {
            self.tails.mark_dirty(p);
        }
        walked?;
        self.stats
            .max_dirty_per_mille
            .store(tally.dirty_max, Ordering::Relaxed);
        self.stats
            .max_lag_ms
            .store(tally.lag_max, Ordering::Relaxed);
        Ok(tally.compacted)
    }

    /// Every written partition of a compacted topic this broker leads, into `tally`.
    async fn compact_written(&self, tally: &mut Tally, now: i64) -> LogResult<()> {
        let mut partitions = WrittenPartitions::new(self.db.clone());
        while let Some(page) = partitions.next_page(|p| self.leadership.leads(p)).await? {
            for (topic, p) in page {
                if EffectiveConfig::new(&topic.configs).compacts() {
                    tally.add(p, self.compact_at(&topic, p, now).await);
                }
            }
        }
        Ok(())
    }

    /// Compact one partition if it is due (see the module documentation).
    pub async fn compact(&self, topic: &Arc<TopicMeta>, partition: i32) -> LogResult<Compacted> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        Ok(self.compact_at(topic, p, now_ms()).await?.0)
    }

    async fn compact_at(
        &self,
        topic: &Arc<TopicMeta>,
        p: PartitionId,
        now: i64,
    ) -> LogResult<(Compacted, Option<Plan>)> {
        let cfg = EffectiveConfig::new(&topic.configs);
        if !cfg.compacts() {
            return Ok((Compacted::default(), None));
        }
        let Some(plan) = self.plan(p, &cfg, now).await? else {
            return Ok((Compacted::default(), None));
        };
        let mut done = Compacted::default();
        if !plan.due {
            // Not due yet: look again after the next append, when a kept tombstone's horizon
            // passes, or at the next full check.
            done.pending = plan.horizon_ms >= 0;
            return Ok((done, Some(plan)));
        }
        let settings = Settings {
            delete_retention_ms: cfg.delete_retention_ms(),
            now,
        };
        let mut cursor = plan.log_start;
        let mut clean_bytes = 0i64;
        let mut backfilled = false;
        let mut horizon = -1i64;
        loop {
            let grant = self.writers.acquire(topic, p).await;
            let chunk = self
                .db
                .run(|tx, _| async move {
                    let so_far = (clean_bytes, backfilled, horizon);
                    clean_chunk(&tx, p, cursor, plan.end, so_far, settings).await
                })
                .await;
            drop(grant);
            let chunk = chunk?;
            if chunk.changed {
                self.tails.unsure(p, None);
            }
            done.records_removed += chunk.records_removed;
            done.bytes_removed = (done.bytes_removed as i64 + chunk.bytes_removed).max(0) as u64;
            clean_bytes = chunk.clean_bytes;
            backfilled = chunk.backfilled;
            horizon = chunk.horizon_ms;
            match chunk.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        done.ran = true;
        // Records beyond the cleanable end, a backfill to finish or a tombstone to drop later:
        // keep looking at the partition.
        done.pending = plan.end < plan.head || backfilled || horizon >= 0;
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records_removed
            .fetch_add(done.records_removed, Ordering::Relaxed);
        self.stats
            .bytes_removed
            .fetch_add(done.bytes_removed, Ordering::Relaxed);
        if done.records_removed > 0 {
            tracing::debug!(
                topic = %topic.name,
                partition = p.partition,
                records = done.records_removed,
                bytes = done.bytes_removed,
                "compacted"
            );
        }
        Ok((done, Some(plan)))
    }

    /// Whether `p` is due, and up to where it may be compacted (snapshot reads).
    async fn plan(
        &self,
        p: PartitionId,
        cfg: &EffectiveConfig<'_>,
        now: i64,
    ) -> LogResult<Option<Plan>> {
        let (min_lag, max_lag) = (cfg.min_compaction_lag_ms(), cfg.max_compaction_lag_ms());
        let min_ratio = cfg.min_cleanable_dirty_ratio();
        self.db
            .run(|tx, _| async move {
                let Some(state) = partition::read_stored_state(&tx, p, true).await? else {
                    return Ok(None);
                };
                let Some(last) = partition::last_batch(&tx, p).await? else {
                    return Ok(None);
                };
                let cleaner = read_cleaner(&tx, p, &state).await?;
                let head = last.base_offset;
                let mut end = state.last_stable().min(head);
                if min_lag > 0
                    && let Some(young) =
                        first_newer_than(&tx, p, now.saturating_sub(min_lag)).await?
                {
                    end = end.min(young);
                }
                // Kafka's dirty ratio: bytes of the cleanable range written since the last pass
                // over all bytes of the cleanable range.
                let clean = cleaner.clean_bytes.min(state.bytes).max(0);
                let dirty =
                    dirty_bytes(&tx, p, cleaner.clean_offset, end, clean, min_ratio).await?;
                let dirty_per_mille = dirty * 1000 / (clean + dirty).max(1);
                let lag_ms = match partition::batch_at(&tx, p, cleaner.clean_offset).await? {
                    Some(b) if b.base_offset < end => (now - b.max_timestamp).max(0),
                    _ => 0,
                };
                let dirty_due = end > cleaner.clean_offset
                    && dirty > 0
                    && (dirty as f64 >= min_ratio * (clean + dirty) as f64 || lag_ms > max_lag);
                // A kept tombstone whose delete horizon passed makes the partition due by itself.
                let horizon_due = cleaner.horizon_ms >= 0 && now >= cleaner.horizon_ms;
                Ok(Some(Plan {
                    log_start: state.log_start,
                    end,
                    head,
                    due: dirty_due || horizon_due,
                    horizon_ms: cleaner.horizon_ms,
                    dirty_per_mille,
                    lag_ms,
                }))
            })
            .await
    }
}

/// What one sweep found so far.
#[derive(Default)]
struct Tally {
    compacted: usize,
    dirty_max: i64,
    lag_max: i64,
    /// Partitions to look at again next time.
    again: Vec<PartitionId>,
}

impl Tally {
    fn add(&mut self, p: PartitionId, looked: LogResult<(Compacted, Option<Plan>)>) {
        match looked {
            Ok((done, plan)) => {
                if done.pending {
                    self.again.push(p);
                }
                if let Some(plan) = plan {
                    self.dirty_max = self.dirty_max.max(plan.dirty_per_mille);
                    self.lag_max = self.lag_max.max(plan.lag_ms);
                }
                self.compacted += usize::from(done.ran);
            }
            // One partition's failure (a store fault) does not hold the others back.
            Err(e) => {
                tracing::warn!(partition = %p, error = %e,
                    "compaction of a partition failed; it is retried");
                self.again.push(p);
            }
        }
    }
}

/// The cleaner state of `p` (the whole log dirty if compaction never ran).
async fn read_cleaner(
    tx: &Transaction,
    p: PartitionId,
    state: &PartitionState,
) -> LogResult<CleanerState> {
    let mut c = match tx.get(&keys::cleaner_state(p), true).await? {
        Some(v) => CleanerState::decode(&v)?,
        None => CleanerState {
            clean_offset: state.log_start,
            clean_bytes: 0,
            cleaned_ms: -1,
            horizon_ms: -1,
        },
    };
    c.clean_offset = c.clean_offset.max(state.log_start);
    Ok(c)
}

/// Bytes of the batches in `[from, end)`, read from the batch index until they reach `ratio` of
/// themselves plus `clean` (more would not change the decision).
async fn dirty_bytes(
    tx: &Transaction,
    p: PartitionId,
    from: i64,
    end: i64,
    clean: i64,
    ratio: f64,
) -> LogResult<i64> {
    use futures::TryStreamExt;
    let range = RangeOption::new(keys::batch_index(p, from), keys::batch_index(p, end));
    let mut stream = Box::pin(tx.get_ranges(range, true));
    let mut dirty = 0i64;
    while let Some(rows) = stream.try_next().await? {
        for kv in rows {
            dirty += partition::batch_info_of(p, &kv)?.size;
            if dirty as f64 >= ratio * (clean + dirty) as f64 && dirty > 0 {
                return Ok(dirty);
            }
        }
    }
    Ok(dirty)
}

/// The base offset of the first batch holding a record newer than `t`.
async fn first_newer_than(tx: &Transaction, p: PartitionId, t: i64) -> LogResult<Option<i64>> {
    match partition::first_batch_reaching(tx, p, t.saturating_add(1)).await? {
        Some(last) => Ok(partition::batch_at(tx, p, last)
            .await?
            .map(|b| b.base_offset)),
        None => Ok(None),
    }
}

/// What one compaction transaction did.
#[derive(Debug, Default)]
struct Chunk {
    /// Where the next transaction starts; `None` when the pass reached the cleanable end.
    next: Option<i64>,
    /// Bytes of the compacted batches so far (this chunk's added).
    clean_bytes: i64,
    changed: bool,
    /// The pass brought the key index up to records it lacked (so far).
    backfilled: bool,
    /// The earliest delete horizon of a tombstone the pass kept (so far; -1: none).
    horizon_ms: i64,
    records_removed: u64,
    bytes_removed: i64,
}

/// Compact the batches of `p` from `cursor` (about [`CHUNK_BYTES`]) below `end`, given the pass's
/// `(clean bytes, backfilled, earliest kept horizon)` so far; on the last chunk, record the pass
/// in the cleaner state.
async fn clean_chunk(
    tx: &Transaction,
    p: PartitionId,
    cursor: i64,
    end: i64,
    (clean_bytes, backfilled, horizon_ms): (i64, bool, i64),
    settings: Settings,
) -> LogResult<Chunk> {
    let Some(mut state) = partition::read_stored_state(tx, p, false).await? else {
        return Ok(Chunk::default());
    };
    let from = cursor.max(state.log_start);
    let mut chunk = Chunk {
        clean_bytes,
        backfilled,
        horizon_ms,
        ..Chunk::default()
    };
    let stored = if from < end {
        partition::read_log(tx, p, from, end, CHUNK_BYTES)
            .await?
            .to_bytes()
    } else {
        bytes::Bytes::new()
    };
    let batches = batch::stored_batches(&stored);
    let aborted = match (batches.first(), batches.last()) {
        (Some(f), Some(l)) => {
            partition::aborted_between(tx, p, f.base_offset(), last_offset(l)).await?
        }
        _ => Vec::new(),
    };
    let mut processed = 0usize;
    let mut stopped: Option<i64> = None;
    for b in &batches {
        if processed >= CHUNK_RECORDS {
            stopped = Some(b.base_offset());
            break;
        }
        let old = b.bytes.len() as i64;
        let (kept, removed) = if b.is_control() {
            marker_fate(tx, p, b, settings)?
        } else if b.is_transactional()
            && aborted.iter().any(|&(pid, first, marker)| {
                pid == b.producer_id && first <= b.base_offset() && b.base_offset() < marker
            })
        {
            (Some(Vec::new()), b.record_count.max(0) as u64)
        } else {
            let raw = match records::raw_records(b) {
                Ok(raw) => raw,
                Err(e) => {
                    // Never validated record by record (written before the topic compacted):
                    // kept as it is rather than guessed at.
                    tracing::warn!(partition = %p, offset = b.base_offset(), error = %e,
                        "compaction keeps a batch whose records do not decode");
                    Vec::new()
                }
            };
            if raw.is_empty() {
                chunk.clean_bytes += old;
                continue;
            }
            let mut keep = Vec::with_capacity(raw.len());
            for r in &raw {
                match live(tx, p, b, r, settings).await? {
                    Fate::Keep => keep.push(r.clone()),
                    Fate::KeepUntil(h) => {
                        if chunk.horizon_ms < 0 || h < chunk.horizon_ms {
                            chunk.horizon_ms = h;
                        }
                        keep.push(r.clone());
                    }
                    Fate::Backfilled => {
                        chunk.backfilled = true;
                        keep.push(r.clone());
                    }
                    Fate::Drop => {}
                }
            }
            processed += raw.len();
            let removed = (raw.len() - keep.len()) as u64;
            ((removed > 0).then_some(keep), removed)
        };
        let new = match kept {
            None => old,
            Some(keep) if keep.is_empty() => {
                drop_batch(tx, p, b);
                0
            }
            Some(keep) => {
                let bytes = records::rebuilt(b, &keep)?;
                replace_batch(tx, p, b, &bytes);
                bytes.len() as i64
            }
        };
        if new != old || removed > 0 {
            chunk.changed = true;
        }
        chunk.records_removed += removed;
        // A rebuilt batch can even grow a little (recompressed): net bytes, counted signed.
        chunk.bytes_removed += old - new;
        chunk.clean_bytes += new;
        state.bytes -= old - new;
    }
    if chunk.changed {
        partition::write_state(tx, p, &state);
    }
    match (stopped, batches.last()) {
        (Some(next), _) => chunk.next = Some(next),
        (None, Some(l)) if last_offset(l) + 1 < end => chunk.next = Some(last_offset(l) + 1),
        _ => {
            // After a backfill the whole log stays dirty: the next pass finishes the job.
            let cleaner = if chunk.backfilled {
                CleanerState {
                    clean_offset: state.log_start,
                    clean_bytes: 0,
                    cleaned_ms: settings.now,
                    horizon_ms: chunk.horizon_ms,
                }
            } else {
                CleanerState {
                    clean_offset: end,
                    clean_bytes: chunk.clean_bytes,
                    cleaned_ms: settings.now,
                    horizon_ms: chunk.horizon_ms,
                }
            };
            tx.set(&keys::cleaner_state(p), &cleaner.encode());
        }
    }
    Ok(chunk)
}

fn last_offset(b: &Batch) -> i64 {
    b.base_offset() + i64::from(b.last_offset_delta)
}

/// Whether a transaction marker stays (`None`) or goes (`Some(empty)`): it goes once older than
/// `delete.retention.ms`, an abort marker with its aborted-transaction index entry.
fn marker_fate(
    tx: &Transaction,
    p: PartitionId,
    b: &Batch,
    settings: Settings,
) -> LogResult<(Option<Vec<RawRecord>>, u64)> {
    if b.max_timestamp.saturating_add(settings.delete_retention_ms) >= settings.now {
        return Ok((None, 0));
    }
    tx.clear(&keys::aborted_txn(p, b.base_offset()));
    Ok((Some(Vec::new()), b.record_count.max(0) as u64))
}

/// What becomes of one record.
enum Fate {
    Keep,
    /// A tombstone kept until its delete horizon.
    KeepUntil(i64),
    /// Kept, and the key index brought up to it (it did not know the record).
    Backfilled,
    Drop,
}

/// Whether record `r` of batch `b` stays, bringing the key index up to it where it lagged and
/// starting or ending a tombstone's delete horizon.
async fn live(
    tx: &Transaction,
    p: PartitionId,
    b: &Batch,
    r: &RawRecord,
    settings: Settings,
) -> LogResult<Fate> {
    let Some(key) = &r.key else {
        return Ok(Fate::Drop);
    };
    let offset = b.base_offset() + i64::from(r.offset_delta);
    let entry = keyindex::get(tx, p, key, false).await?;
    match entry {
        Some(e) if e.offset > offset => Ok(Fate::Drop),
        Some(e) if e.offset == offset => {
            if !e.tombstone {
                return Ok(Fate::Keep);
            }
            if e.horizon_ms < 0 {
                let horizon = settings.now.saturating_add(settings.delete_retention_ms);
                keyindex::put(
                    tx,
                    p,
                    key,
                    KeyIndexEntry {
                        horizon_ms: horizon,
                        ..e
                    },
                )
                .await?;
                Ok(Fate::KeepUntil(horizon))
            } else if settings.now >= e.horizon_ms {
                keyindex::remove(tx, p, key).await?;
                Ok(Fate::Drop)
            } else {
                Ok(Fate::KeepUntil(e.horizon_ms))
            }
        }
        // Not indexed, or indexed at an older record: written before the topic kept an index.
        _ => {
            let timestamp = if b.is_log_append_time() {
                b.max_timestamp
            } else {
                b.base_timestamp.saturating_add(r.timestamp_delta)
            };
            let entry = KeyIndexEntry {
                offset,
                timestamp,
                tombstone: r.tombstone,
                horizon_ms: -1,
                full_key: Vec::new(),
            };
            keyindex::put(tx, p, key, entry).await?;
            Ok(Fate::Backfilled)
        }
    }
}

/// Remove stored batch `b` whole: its chunks and its batch-index row (its time-index row, if any,
/// stays: a lookup by time then lands on the next batch, as on a gap).
fn drop_batch(tx: &Transaction, p: PartitionId, b: &Batch) {
    let last = last_offset(b);
    tx.clear_range(&keys::log_chunk(p, last, 0), &keys::log_from(p, last + 1));
    tx.clear(&keys::batch_index(p, last));
}

/// Store `bytes` in place of batch `b` (same last offset, so the same keys).
fn replace_batch(tx: &Transaction, p: PartitionId, b: &Batch, bytes: &bytes::Bytes) {
    let last = last_offset(b);
    tx.clear_range(&keys::log_chunk(p, last, 0), &keys::log_from(p, last + 1));
    partition::write_chunks(tx, p, last, bytes);
    let info = BatchInfo {
        base_offset: b.base_offset(),
        last_offset: last,
        max_timestamp: b.max_timestamp,
        size: bytes.len() as i64,
    };
    tx.set(&keys::batch_index(p, last), &info.encode());
}
