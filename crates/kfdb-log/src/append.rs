//! The append transaction: one store transaction that appends every batch of a group of Produce
//! requests to one partition, in order, with dense offsets.
//!
//! Each request is checked first and appended whole or not at all: an idempotent producer's
//! batches follow Kafka's sequence rules (`producer.rs`; a retried batch is answered with its
//! original offset and written nothing), and a transactional batch opens its producer's
//! transaction in the partition (an `open` key and the partition's `first_open`, which is the last
//! stable offset) only if the coordinator added the partition to that producer's transaction with
//! the same epoch.
//!
//! A retried transaction after `commit_unknown_result` checks whether its previous attempt landed
//! (only the partition's writer moves `next_offset`, so a moved `next_offset` means it did) and
//! never appends twice.
//!
//! The writer (`writer.rs`) decides what goes into one transaction and runs one at a time per
//! partition; this module only knows how to write it.

use crate::batch::Batch;
use crate::cache::NewBatch;
use crate::clock::now_ms;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keyindex::{self, IndexedRecord};
use crate::partition;
use crate::producer::{self, SeqCheck};
use crate::values::{PartitionState, ProducerState};
use kfdb_kv::Database;
use std::collections::HashMap;
use std::sync::Mutex;

/// What an append transaction needs to know besides its batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendSettings {
    /// The node id this broker writes as.
    pub node: i32,
    /// `producer.id.expiration.ms`: older producer states are treated as absent.
    pub producer_expiration_ms: i64,
    /// The topic stamps batches with the append time (`message.timestamp.type=LogAppendTime`).
    pub log_append_time: bool,
}

/// One Produce request's batches for a partition, with each batch's records as the key index
/// sees them when the topic keeps one, and a condition for a conditional append.
pub(crate) struct Request<'a> {
    pub batches: &'a [Batch],
    pub records: Option<&'a [Vec<IndexedRecord>]>,
    pub condition: Option<&'a Condition>,
}

/// What must hold, inside the append's store transaction, for a conditional append (kfdb's HTTP
/// API; optimistic concurrency on a stream, as event stores offer it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The partition's end offset (high watermark) is this.
    EndOffset(i64),
    /// The latest record of `key` (key index) is at `offset`; -1: the key has no record.
    KeyOffset { key: bytes::Bytes, offset: i64 },
}

/// What one append transaction did.
#[derive(Debug)]
pub(crate) struct Appended {
    /// Per request: its base offset, or why it was refused.
    pub results: Vec<LogResult<i64>>,
    /// The append time stamped into the batches, if the topic uses it.
    pub append_time: Option<i64>,
    /// The partition state after the transaction.
    pub state: PartitionState,
    /// The batches written, for the hot cache (empty when an earlier attempt had landed).
    pub written: Vec<NewBatch>,
}

/// The previous attempt of a retried transaction: the state it started from, how many records it
/// appended and its answers, to recognise our own landed commit after commit_unknown_result.
type Attempt = (PartitionState, i64, Vec<LogResult<i64>>);

/// Run the append transaction for `requests` (each a Produce request's batches for `p`). Records
/// of non-transactional batches enter the key index here; transactional ones when they commit.
pub(crate) async fn append(
    db: &Database,
    p: PartitionId,
    settings: AppendSettings,
    requests: &[Request<'_>],
) -> LogResult<Appended> {
    let previous: Mutex<Option<Attempt>> = Mutex::new(None);
    let previous = &previous;
    db.run(|tx, maybe_committed| async move {
        // The partition's prelude and the states of the producers the batches name, in one go.
        let pids = producer_ids(requests);
        let (begun, loaded) = futures::try_join!(
            partition::begin_write(&tx, p, settings.node),
            partition::read_producers(&tx, p, &pids),
        )?;
        let (owner, state) = begun.ok_or(LogError::UnknownTopic)?;
        let before = previous.lock().unwrap_or_else(|e| e.into_inner()).take();
        if maybe_committed.0
            && let Some((before, appended, results)) = before
            && appended > 0
            && state.next_offset == before.next_offset + appended
        {
            // The earlier attempt committed: report its answers, write nothing.
            tracing::info!(partition = %p, "append found its earlier attempt committed");
            return Ok(Appended {
                results,
                append_time: None,
                state,
                written: Vec::new(),
            });
        }
        let now = now_ms();
        let append_time = settings.log_append_time.then_some(now);
        let mut plan = Plan::new(state, settings.producer_expiration_ms, now);
        plan.load_producers(pids.into_iter().zip(loaded));
        let mut written = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            if let Some(condition) = request.condition {
                let current = match condition {
                    Condition::EndOffset(_) => plan.state.next_offset,
                    // A record below the log start is gone (retention): as no record.
                    Condition::KeyOffset { key, .. } => keyindex::get(&tx, p, key, false)
                        .await?
                        .filter(|e| e.offset >= plan.state.log_start)
                        .map_or(-1, |e| e.offset),
                };
                let expected = match condition {
                    Condition::EndOffset(o) | Condition::KeyOffset { offset: o, .. } => *o,
                };
                if current != expected {
                    results.push(Err(LogError::ConditionFailed { current }));
                    continue;
                }
            }
            match plan.check(&tx, p, request).await? {
                Checked::Refused(e) => results.push(Err(e)),
                Checked::Accepted {
                    batches,
                    duplicate_base,
                    producers,
                    opened,
                } => {
                    let base = plan.state.next_offset;
                    for (batch, records) in batches {
                        let stored = partition::write_batch(
                            &tx,
                            p,
                            owner.epoch,
                            batch,
                            append_time,
                            &mut plan.state,
                        );
                        if let Some(records) = records
                            && !batch.is_transactional()
                        {
                            keyindex::index_batch(
                                &tx,
                                p,
                                stored.base_offset,
                                records,
                                append_time,
                                keyindex::Indexing::Appended,
                            )
                            .await?;
                        }
                        written.push(stored);
                    }
                    plan.accept(producers, opened);
                    results.push(Ok(duplicate_base.unwrap_or(base)));
                }
            }
        }
        for pid in &plan.dirty {
            if let Some(Some(s)) = plan.producers.get(pid) {
                partition::write_producer(&tx, p, *pid, s);
            }
        }
        for (pid, first) in &plan.opened {
            partition::write_open(&tx, p, *pid, *first);
        }
        let appended = plan.state.next_offset - state.next_offset;
        if appended > 0 {
            partition::write_state(&tx, p, &plan.state);
        }
        *previous.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((state, appended, results.clone()));
        Ok(Appended {
            results,
            append_time,
            state: plan.state,
            written,
        })
    })
    .await
}

/// The distinct producers (idempotent or transactional) whose batches `requests` carry.
fn producer_ids(requests: &[Request<'_>]) -> Vec<i64> {
    let mut pids: Vec<i64> = requests
        .iter()
        .flat_map(|r| r.batches.iter().map(|b| b.producer_id))
        .filter(|&pid| pid >= 0)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A request checked against the partition as the transaction has left it so far.
enum Checked<'a> {
    /// Appended whole: these batches (duplicates left out), the base offset of a duplicate if
    /// the request was one, producer states after it and transactions it opens.
    Accepted {
        batches: Vec<(&'a Batch, Option<&'a [IndexedRecord]>)>,
        duplicate_base: Option<i64>,
        producers: HashMap<i64, Option<ProducerState>>,
        opened: Vec<(i64, i64)>,
    },
    /// Refused whole.
    Refused(LogError),
}

/// What the transaction has decided so far: the partition state, the producers it loaded or
/// changed, and the transactions it found open or opened.
struct Plan {
    state: PartitionState,
    expiration_ms: i64,
    now: i64,
    producers: HashMap<i64, Option<ProducerState>>,
    /// Producers with a transaction open in this partition (first offset), as loaded.
    open: HashMap<i64, Option<i64>>,
    opened: Vec<(i64, i64)>,
    dirty: Vec<i64>,
}

impl Plan {
    fn new(state: PartitionState, expiration_ms: i64, now: i64) -> Self {
        Self {
            state,
            expiration_ms,
            now,
            producers: HashMap::new(),
            open: HashMap::new(),
            opened: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// Producer states read before the checks; a state older than `producer.id.expiration.ms`
    /// is treated as absent.
    fn load_producers(&mut self, loaded: impl IntoIterator<Item = (i64, Option<ProducerState>)>) {
        for (pid, state) in loaded {
            let state = state.filter(|s| self.now - s.last_ms <= self.expiration_ms);
            self.producers.insert(pid, state);
        }
    }

    /// Check one request's batches in order, with producer states as they will be batch by batch
    /// (a request carrying several batches of one producer is checked in sequence).
    async fn check<'a>(
        &mut self,
        tx: &kfdb_kv::Transaction,
        p: PartitionId,
        request: &Request<'a>,
    ) -> LogResult<Checked<'a>> {
        let mut batches: Vec<(&Batch, Option<&[IndexedRecord]>)> =
            Vec::with_capacity(request.batches.len());
        let mut duplicate_base = None;
        let mut scratch: HashMap<i64, Option<ProducerState>> = HashMap::new();
        let mut opened: Vec<(i64, i64)> = Vec::new();
        let mut next = self.state.next_offset;
        for (i, batch) in request.batches.iter().enumerate() {
            let records = request.records.map(|r| r[i].as_slice());
            if batch.producer_id < 0 {
                batches.push((batch, records));
                next += i64::from(batch.record_count);
                continue;
            }
            let pid = batch.producer_id;
            let entry = match (scratch.get(&pid), self.producers.get(&pid)) {
                (Some(e), _) | (None, Some(e)) => e.clone(),
                (None, None) => {
                    // Not read before the checks (every producer of the requests is).
                    let loaded = partition::read_producer(tx, p, pid, false).await?;
                    self.load_producers([(pid, loaded)]);
                    self.producers.get(&pid).cloned().flatten()
                }
            };
            let check = producer::check(entry.as_ref(), batch);
            if check == SeqCheck::Append
                && batch.is_transactional()
                && !opened.iter().any(|(o, _)| *o == pid)
            {
                let first = match self.open.get(&pid) {
                    Some(o) => *o,
                    None => {
                        let o = partition::read_open(tx, p, pid).await?;
                        self.open.insert(pid, o);
                        o
                    }
                };
                if first.is_none() {
                    if let Err(e) =
                        partition::check_added_to_txn(tx, pid, batch.producer_epoch, p).await
                    {
                        return Ok(Checked::Refused(e));
                    }
                    opened.push((pid, next));
                }
            }
            match check {
                SeqCheck::Append => {
                    let mut entry = entry;
                    producer::record(&mut entry, batch, next, self.now);
                    scratch.insert(pid, entry);
                    batches.push((batch, records));
                    next += i64::from(batch.record_count);
                }
                SeqCheck::Duplicate(base) => {
                    duplicate_base.get_or_insert(base);
                }
                SeqCheck::Reject(e) => return Ok(Checked::Refused(e)),
            }
        }
        Ok(Checked::Accepted {
            batches,
            duplicate_base,
            producers: scratch,
            opened,
        })
    }

    /// An accepted request's producer states and opened transactions become the plan's.
    fn accept(&mut self, producers: HashMap<i64, Option<ProducerState>>, opened: Vec<(i64, i64)>) {
        for (pid, entry) in producers {
            self.producers.insert(pid, entry);
            if !self.dirty.contains(&pid) {
                self.dirty.push(pid);
            }
        }
        for (pid, first) in opened {
            self.open.insert(pid, Some(first));
            self.opened.push((pid, first));
            if self.state.first_open < 0 || first < self.state.first_open {
                self.state.first_open = first;
            }
        }
    }
}
