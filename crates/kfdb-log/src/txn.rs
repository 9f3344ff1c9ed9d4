//! The transaction coordinator's state: one `TxnState` per transactional id, the partitions and
//! groups of its open transaction, its pending transactional offsets, and the operations Kafka's
//! transaction APIs perform on them, each one store transaction.
//!
//! Ending a transaction writes a commit or abort marker into every partition of it, moves (commit)
//! or drops (abort) its pending offsets, and records the outcome, all in **one** store transaction
//! when the transaction spans at most `markers_per_txn` partitions (default `MARKERS_PER_TXN`): its outputs and its consumed
//! offsets become visible together or not at all. Bigger transactions first record the decision
//! (`PrepareCommit`/`PrepareAbort`, durable), then write markers in chunks, then complete; a crash in
//! between is finished by the next InitProducerId for that id or by the timeout sweeper.
//!
//! Fencing: InitProducerId for a transactional id bumps its epoch. An open transaction of the old
//! epoch is aborted first, with markers carrying the new epoch, so the old producer's late batches
//! are refused in every partition it wrote to. Transactions older than their timeout are aborted
//! the same way by [`Log::run_txn_expiry`].
//!
//! Ids idle longer than `transactional.id.expiration.ms` with no transaction open are deleted by
//! [`Log::run_txn_id_expiry`].

use crate::error::{LogError, LogResult};
use crate::groups::CommittedOffset;
use crate::markers::{Marker, write_marker};
use crate::values::TopicMeta;
use crate::walk::walk_pages;
use crate::{Log, keys, now_ms};
use futures::future::try_join_all;
use kfdb_kv::tuple::{pack, unpack};
use kfdb_kv::{RangeOption, Transaction};
use std::sync::Arc;

/// Partitions whose markers are written in one store transaction (each costs a few hundred bytes
/// of writes and a handful of reads; FoundationDB allows 10 MB and 5 s).
pub const MARKERS_PER_TXN: usize = 500;
/// Expired transactions aborted per sweep round.
const EXPIRED_PER_ROUND: usize = 100;
/// Transactional ids read per store transaction by ListTransactions.
const LIST_PAGE: usize = 1_000;
const V1: i64 = 1;

fn corrupt(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("{what}: {e}"))
}

/// Where a transactional id's transaction stands (Kafka's coordinator states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction open.
    Empty,
    /// Partitions or offsets were added.
    Ongoing,
    /// Commit decided, markers being written.
    PrepareCommit,
    /// Abort decided, markers being written.
    PrepareAbort,
    /// Last transaction committed.
    CompleteCommit,
    /// Last transaction aborted.
    CompleteAbort,
}

impl TxnStatus {
    const ALL: [TxnStatus; 6] = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
    ];

    /// Kafka's name for the state (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state named `name`, if Kafka has one by that name that kfdb uses.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn code(self) -> i64 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as i64
    }

    fn from_code(c: i64) -> LogResult<Self> {
        usize::try_from(c)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or_else(|| corrupt("transaction state", format!("status {c}")))
    }

    fn prepared(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// A transactional id's coordinator state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnState {
    /// The producer id serving this transactional id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// Where the transaction stands.
    pub status: TxnStatus,
    /// When the open transaction started (ms), -1 when none is open.
    pub start_ms: i64,
    /// Last change (ms).
    pub last_ms: i64,
    /// The producer id and epoch an InitProducerId bumped from (KIP-360), so that a retry of that
    /// call gets the same answer; -1 when the last bump was not asked for by the producer itself.
    pub prev_producer_id: i64,
    /// See `prev_producer_id`.
    pub prev_epoch: i16,
}

type StateTupleV1 = (i64, i64, i64, i64, i64, i64, i64);
type StateTuple = (i64, i64, i64, i64, i64, i64, i64, i64, i64);
const V2: i64 = 2;

impl TxnState {
    fn encode(&self) -> Vec<u8> {
        let t: StateTuple = (
            V2,
            self.producer_id,
            i64::from(self.producer_epoch),
            i64::from(self.timeout_ms),
            self.status.code(),
            self.start_ms,
            self.last_ms,
            self.prev_producer_id,
            i64::from(self.prev_epoch),
        );
        pack(&t)
    }

    /// Decodes format 2 and format 1 (without the previous producer id and epoch).
    fn decode(b: &[u8]) -> LogResult<Self> {
        let t: StateTuple = match unpack::<StateTuple>(b) {
            Ok(t) => t,
            Err(e) => {
                let (v, a, b1, c, d, e1, f): StateTupleV1 =
                    unpack(b).map_err(|_| corrupt("transaction state", e))?;
                if v != V1 {
                    return Err(corrupt("transaction state", format!("format version {v}")));
                }
                (V2, a, b1, c, d, e1, f, -1, -1)
            }
        };
        let (v, producer_id, epoch, timeout, status, start_ms, last_ms, prev_pid, prev_epoch) = t;
        if v != V2 {
            return Err(corrupt("transaction state", format!("format version {v}")));
        }
        Ok(Self {
            producer_id,
            producer_epoch: epoch as i16,
            timeout_ms: timeout as i32,
            status: TxnStatus::from_code(status)?,
            start_ms,
            last_ms,
            prev_producer_id: prev_pid,
            prev_epoch: prev_epoch as i16,
        })
    }

    fn check_producer(&self, producer_id: i64, epoch: i16) -> LogResult<()> {
        if self.producer_id != producer_id {
            return Err(LogError::InvalidProducerIdMapping);
        }
        if self.producer_epoch != epoch {
            return Err(LogError::ProducerFenced);
        }
        Ok(())
    }

    fn deadline_key(&self, id: &str) -> Option<Vec<u8>> {
        (self.start_ms >= 0)
            .then(|| keys::txn_deadline(self.start_ms + i64::from(self.timeout_ms), id))
    }
}

/// What a producer adds to its transaction.
#[derive(Debug, Clone, Copy)]
pub enum TxnAddition<'a> {
    /// Partitions it will produce to (topic id, partition).
    Partitions(&'a [(i64, i32)]),
    /// A group whose offsets it will commit (AddOffsetsToTxn).
    Group(&'a str),
}

async fn read_state(tx: &Transaction, id: &str, snapshot: bool) -> LogResult<Option<TxnState>> {
    match tx.get(&keys::txn_state(id), snapshot).await? {
        Some(v) => TxnState::decode(&v).map(Some),
        None => Ok(None),
    }
}

/// The state of `id`, which must belong to `producer_id` at `epoch`.
async fn read_for_producer(
    tx: &Transaction,
    id: &str,
    producer_id: i64,
    epoch: i16,
    snapshot: bool,
) -> LogResult<TxnState> {
    let state = read_state(tx, id, snapshot)
        .await?
        .ok_or(LogError::InvalidProducerIdMapping)?;
    state.check_producer(producer_id, epoch)?;
    Ok(state)
}

async fn read_parts(tx: &Transaction, id: &str, snapshot: bool) -> LogResult<Vec<(i64, i32)>> {
    let space = keys::txn_partitions(id);
    let (b, e) = space.range();
    let rows = tx.get_range_all(RangeOption::new(b, e), snapshot).await?;
    rows.iter()
        .map(|kv| {
            space
                .unpack::<(i64, i32)>(&kv.key)
                .map_err(|e| corrupt("transaction partition", e))
        })
        .collect()
}

/// For a transactional batch opening `producer_id`'s transaction in a partition: the coordinator
/// must have added the partition to that producer's transaction, at this epoch.
pub(crate) async fn check_in_transaction(
    tx: &Transaction,
    producer_id: i64,
    epoch: i16,
    tid: i64,
    partition: i32,
) -> LogResult<()> {
    let not_added = || {
        LogError::InvalidTxnState(format!(
            "partition {partition} was not added to producer {producer_id}'s transaction"
        ))
    };
    let Some(id) = tx.get(&keys::txn_pid(producer_id), true).await? else {
        return Err(LogError::InvalidTxnState(format!(
            "producer {producer_id} has no transactional id"
        )));
    };
    let id = String::from_utf8_lossy(&id).into_owned();
    let Some(v) = tx
        .get(&keys::txn_partition(&id, tid, partition), false)
        .await?
    else {
        return Err(not_added());
    };
    let (pid, added_epoch): (i64, i64) =
        unpack(&v).map_err(|e| corrupt("transaction partition", e))?;
    if pid != producer_id {
        return Err(not_added());
    }
    match i64::from(epoch).cmp(&added_epoch) {
        std::cmp::Ordering::Less => Err(LogError::InvalidProducerEpoch),
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(not_added()),
    }
}

impl Log {
    /// The stored state of a transactional id (a snapshot read in its own transaction).
    async fn stored_txn_state(&self, id: &str) -> LogResult<Option<TxnState>> {
        self.db
            .run(|tx, _| async move { read_state(&tx, id, true).await })
            .await
    }
}

/// Why a round of an operation has to start over: the state changed under it.
fn raced() -> LogError {
    LogError::ConcurrentTransactions
}

impl Log {
    /// InitProducerId for a transactional id: a producer id and a new epoch, fencing every older
    /// producer of that id (an open transaction of theirs is aborted first). `expected` is the
    /// producer id and epoch the client believes current (KIP-360), if it sent one.
    pub async fn init_transactional_producer(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        mut expected: Option<(i64, i16)>,
    ) -> LogResult<(i64, i16)> {
        // The producer's own (id, epoch) once checked: recorded with the bump for its retries.
        let mut bumped_from: Option<(i64, i16)> = None;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(LogError::InvalidTransactionTimeout(timeout_ms));
        }
        for _ in 0..8 {
            let current = self.stored_txn_state(id).await?;
            let Some(seen) = current else {
                let pid = self.allocate_producer_id().await?;
                let created = self
                    .db
                    .run(|tx, _| async move {
                        if read_state(&tx, id, false).await?.is_some() {
                            return Ok::<_, LogError>(false);
                        }
                        let state = TxnState {
                            producer_id: pid,
                            producer_epoch: 0,
                            timeout_ms,
                            status: TxnStatus::Empty,
                            start_ms: -1,
                            last_ms: now_ms(),
                            prev_producer_id: -1,
                            prev_epoch: -1,
                        };
                        tx.set(&keys::txn_state(id), &state.encode());
                        tx.set(&keys::txn_pid(pid), id.as_bytes());
                        Ok(true)
                    })
                    .await?;
                if created {
                    return Ok((pid, 0));
                }
                continue;
            };
            if let Some((pid, epoch)) = expected.take() {
                if seen.status == TxnStatus::Empty
                    && (pid, epoch) == (seen.prev_producer_id, seen.prev_epoch)
                {
                    // A retry of the call that bumped to the current epoch (its answer was lost).
                    return Ok((seen.producer_id, seen.producer_epoch));
                }
                if pid != seen.producer_id || epoch != seen.producer_epoch {
                    return Err(LogError::ProducerFenced);
                }
                bumped_from = Some((pid, epoch));
            }
            match seen.status {
                TxnStatus::Ongoing => {
                    self.finish(id, &seen, false, true).await.or_else(retry)?;
                    continue;
                }
                TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                    let commit = seen.status == TxnStatus::PrepareCommit;
                    self.finish(id, &seen, commit, false).await.or_else(retry)?;
                    continue;
                }
                _ => {}
            }
            let (pid, epoch) = if seen.producer_epoch >= i16::MAX - 1 {
                (self.allocate_producer_id().await?, 0)
            } else {
                (seen.producer_id, seen.producer_epoch + 1)
            };
            let seen = &seen;
            let bumped = self
                .db
                .run(|tx, _| async move {
                    if read_state(&tx, id, false).await?.as_ref() != Some(seen) {
                        return Ok::<_, LogError>(false);
                    }
                    if pid != seen.producer_id {
                        tx.clear(&keys::txn_pid(seen.producer_id));
                        tx.set(&keys::txn_pid(pid), id.as_bytes());
                    }
                    let (prev_producer_id, prev_epoch) = bumped_from.unwrap_or((-1, -1));
                    let state = TxnState {
                        producer_id: pid,
                        producer_epoch: epoch,
                        timeout_ms,
                        status: TxnStatus::Empty,
                        start_ms: -1,
                        last_ms: now_ms(),
                        prev_producer_id,
                        prev_epoch,
                    };
                    tx.set(&keys::txn_state(id), &state.encode());
                    Ok(true)
                })
                .await?;
            if bumped {
                return Ok((pid, epoch));
            }
        }
        Err(LogError::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: add to the producer's transaction, opening one if
    /// none is open.
    pub async fn add_to_transaction(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        addition: TxnAddition<'_>,
    ) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                let state = read_for_producer(&tx, id, producer_id, epoch, false).await?;
                if state.status.prepared() {
                    return Err(LogError::ConcurrentTransactions);
                }
                match addition {
                    TxnAddition::Partitions(parts) => {
                        let value = pack(&(producer_id, i64::from(epoch)));
                        for (tid, p) in parts {
                            tx.set(&keys::txn_partition(id, *tid, *p), &value);
                        }
                    }
                    TxnAddition::Group(group) => tx.set(&keys::txn_group(id, group), b""),
                }
                if state.status != TxnStatus::Ongoing {
                    let now = now_ms();
                    let open = TxnState {
                        status: TxnStatus::Ongoing,
                        start_ms: now,
                        last_ms: now,
                        ..state
                    };
                    if let Some(k) = open.deadline_key(id) {
                        tx.set(&k, b"");
                    }
                    tx.set(&keys::txn_state(id), &open.encode());
                }
                Ok(())
            })
            .await
    }

    /// AddPartitionsToTxn with `verify_only` (v4+): whether each partition is in the producer's
    /// open transaction.
    pub async fn partitions_in_transaction(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        parts: &[(i64, i32)],
    ) -> LogResult<Vec<bool>> {
        self.db
            .run(|tx, _| async move {
                read_for_producer(&tx, id, producer_id, epoch, true).await?;
                let tx = &tx;
                let found = try_join_all(parts.iter().map(|(tid, p)| async move {
                    tx.get(&keys::txn_partition(id, *tid, *p), true).await
                }))
                .await?;
                Ok(found.into_iter().map(|v| v.is_some()).collect())
            })
            .await
    }

    /// TxnOffsetCommit: offsets that become the group's committed offsets if the transaction
    /// commits. Until it ends, OffsetFetch with `require_stable` reports them as unstable.
    pub async fn commit_transactional_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[(i64, i32, CommittedOffset)],
    ) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                let state = read_for_producer(&tx, id, producer_id, epoch, false).await?;
                match state.status {
                    TxnStatus::Ongoing => {}
                    s if s.prepared() => return Err(LogError::ConcurrentTransactions),
                    _ => {
                        return Err(LogError::InvalidTxnState(
                            "no transaction in progress (AddOffsetsToTxn first)".into(),
                        ));
                    }
                }
                tx.set(&keys::txn_group(id, group), b"");
                for (tid, p, o) in offsets {
                    tx.set(&keys::txn_offset(id, group, *tid, *p), &o.encode());
                    tx.set(&keys::group_pending(group, *tid, *p, id), b"");
                }
                Ok(())
            })
            .await
    }

    /// EndTxn: commit or abort the producer's open transaction. Ending one that already ended the
    /// same way is a success (a retried EndTxn); the other way is INVALID_TXN_STATE.
    pub async fn end_transaction(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> LogResult<()> {
        for _ in 0..8 {
            let state = self
                .stored_txn_state(id)
                .await?
                .ok_or(LogError::InvalidProducerIdMapping)?;
            state.check_producer(producer_id, epoch)?;
            let done = if commit {
                TxnStatus::CompleteCommit
            } else {
                TxnStatus::CompleteAbort
            };
            match state.status {
                s if s == done => return Ok(()),
                TxnStatus::Ongoing => match self.finish(id, &state, commit, false).await {
                    Err(LogError::ConcurrentTransactions) => continue,
                    other => return other,
                },
                // Decided but not all markers written (a crash or a failed chunk): finish it.
                s if s.prepared() && (s == TxnStatus::PrepareCommit) == commit => {
                    match self.finish(id, &state, commit, false).await {
                        Err(LogError::ConcurrentTransactions) => continue,
                        other => return other,
                    }
                }
                s => {
                    return Err(LogError::InvalidTxnState(format!(
                        "cannot {} in state {}",
                        if commit { "commit" } else { "abort" },
                        s.name()
                    )));
                }
            }
        }
        Err(LogError::ConcurrentTransactions)
    }

    /// End the transaction `seen` (Ongoing, or Prepare* to finish one): markers, offsets, final
    /// state. `fence` aborts with the epoch bumped. `ConcurrentTransactions` when the state
    /// changed since `seen`.
    async fn finish(
        self: &Arc<Self>,
        id: &str,
        seen: &TxnState,
        commit: bool,
        fence: bool,
    ) -> LogResult<()> {
        let ongoing = seen.status == TxnStatus::Ongoing;
        let marker = Marker {
            producer_id: seen.producer_id,
            producer_epoch: if fence && ongoing {
                seen.producer_epoch + 1
            } else {
                seen.producer_epoch
            },
            commit,
            now: now_ms(),
        };
        let parts = self
            .db
            .run(|tx, _| async move { read_parts(&tx, id, true).await })
            .await?;
        let mut targets: Vec<(Arc<TopicMeta>, i32)> = Vec::with_capacity(parts.len());
        for (tid, p) in &parts {
            // A deleted topic needs no marker; its key goes with the transaction's.
            if let Some(t) = self.topic_by_id(*tid).await? {
                targets.push((t, *p));
            }
        }
        targets.sort_by_key(|(t, p)| (t.id, *p));
        // Writers are taken in one global order, so two coordinators' ends cannot deadlock.
        let mut grants = Vec::with_capacity(targets.len());
        for (t, p) in &targets {
            grants.push(self.acquire_writer(t, *p).await);
        }
        let chunks: Vec<&[(Arc<TopicMeta>, i32)]> = if targets.is_empty() {
            vec![&[]]
        } else {
            targets.chunks(self.config.markers_per_txn.max(1)).collect()
        };
        let mut expect = seen.clone();
        if chunks.len() > 1 && ongoing {
            let decided = TxnState {
                status: if commit {
                    TxnStatus::PrepareCommit
                } else {
                    TxnStatus::PrepareAbort
                },
                producer_epoch: marker.producer_epoch,
                last_ms: marker.now,
                ..seen.clone()
            };
            let (expect_ref, decided_ref, parts_ref) = (&expect, &decided, &parts);
            let ok = self
                .db
                .run(|tx, _| async move {
                    let now = read_state(&tx, id, false).await?;
                    if now.as_ref() == Some(decided_ref) {
                        // An earlier attempt landed (commit_unknown_result).
                        return Ok::<_, LogError>(true);
                    }
                    if now.as_ref() != Some(expect_ref)
                        || read_parts(&tx, id, false).await? != *parts_ref
                    {
                        return Ok(false);
                    }
                    tx.set(&keys::txn_state(id), &decided_ref.encode());
                    Ok(true)
                })
                .await?;
            if !ok {
                return Err(raced());
            }
            expect = decided;
        }
        let complete = TxnState {
            status: if commit {
                TxnStatus::CompleteCommit
            } else {
                TxnStatus::CompleteAbort
            },
            producer_epoch: marker.producer_epoch,
            start_ms: -1,
            last_ms: marker.now,
            ..seen.clone()
        };
        let node = self.config.node_id;
        let one_shot = chunks.len() == 1 && ongoing;
        let last_chunk = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (expect, complete, parts) = (&expect, &complete, &parts);
            let landed = self
                .db
                .run(|tx, _| async move {
                    if read_state(&tx, id, false).await?.as_ref() != Some(expect) {
                        return Ok::<_, LogError>(None);
                    }
                    if one_shot && read_parts(&tx, id, false).await? != *parts {
                        return Ok(None);
                    }
                    let tx = &tx;
                    let written = try_join_all(chunk.iter().map(|(t, p)| async move {
                        let key = keys::txn_partition(id, t.id, *p);
                        if tx.get(&key, false).await?.is_none() {
                            // Done by an earlier round of a chunked end.
                            return Ok::<_, LogError>(None);
                        }
                        tx.clear(&key);
                        write_marker(tx, node, t.id, *p, marker).await
                    }))
                    .await?;
                    if i == last_chunk {
                        settle_offsets(tx, id, commit, node).await?;
                        let (b, e) = keys::txn_space(id).range();
                        tx.clear_range(&b, &e);
                        if let Some(k) = expect.deadline_key(id) {
                            tx.clear(&k);
                        }
                        tx.set(&keys::txn_state(id), &complete.encode());
                    }
                    Ok(Some(written.into_iter().flatten().collect::<Vec<_>>()))
                })
                .await;
            match landed {
                Ok(Some(l)) => self.markers_landed(l),
                other => {
                    // The markers may have landed without this broker knowing (commit_unknown_result,
                    // then a raced or failed retry): the cache must not keep the old offsets.
                    for (t, p) in chunk {
                        self.cache.forget((t.id, *p));
                    }
                    return Err(other.err().unwrap_or_else(raced));
                }
            }
        }
        drop(grants);
        tracing::debug!(
            transactional_id = id,
            producer_id = seen.producer_id,
            commit,
            fence,
            partitions = targets.len(),
            "transaction ended"
        );
        Ok(())
    }

    /// Abort transactions open longer than their timeout (fencing their producers) and finish
    /// decided ones left half-written. Returns how many were ended.
    pub async fn abort_expired_transactions(self: &Arc<Self>) -> LogResult<usize> {
        let now = now_ms();
        let due = self
            .db
            .run(|tx, _| async move {
                let space = keys::txn_deadlines();
                let (b, _) = space.range();
                let end = keys::txn_deadline(now, "");
                let rows = tx
                    .get_range(&RangeOption::new(b, end).limit(EXPIRED_PER_ROUND), true)
                    .await?;
                rows.kvs
                    .iter()
                    .map(|kv| {
                        space
                            .unpack::<(i64, String)>(&kv.key)
                            .map_err(|e| corrupt("transaction deadline", e))
                    })
                    .collect::<LogResult<Vec<_>>>()
            })
            .await?;
        let mut ended = 0;
        for (deadline, id) in due {
            let id = id.as_str();
            let state = self.stored_txn_state(id).await?;
            let result = match state {
                Some(s)
                    if s.status == TxnStatus::Ongoing
                        && s.start_ms + i64::from(s.timeout_ms) == deadline =>
                {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = s.producer_id,
                        timeout_ms = s.timeout_ms,
                        "aborting timed-out transaction"
                    );
                    self.finish(id, &s, false, true).await
                }
                Some(s) if s.status.prepared() => {
                    self.finish(id, &s, s.status == TxnStatus::PrepareCommit, false)
                        .await
                }
                _ => {
                    self.db
                        .run(|tx, _| async move {
                            tx.clear(&keys::txn_deadline(deadline, id));
                            Ok::<_, LogError>(())
                        })
                        .await?;
                    continue;
                }
            };
            match result {
                Ok(()) => ended += 1,
                Err(LogError::ConcurrentTransactions) => {}
                // One failing id must not stop the others from timing out.
                Err(e) => {
                    tracing::warn!(transactional_id = id, error = %e, "ending a timed-out transaction failed")
                }
            }
        }
        Ok(ended)
    }

    /// Sweep for timed-out transactions every `txn_expiry_interval` until the task is dropped.
    pub async fn run_txn_expiry(self: Arc<Self>) {
        let every = self.config.txn_expiry_interval;
        // Each abort is logged by the sweep itself.
        crate::run_every(every, None, "transaction timeout sweep failed", || {
            self.abort_expired_transactions()
        })
        .await
    }

    /// Delete transactional ids with no transaction open (`Empty`, `CompleteCommit`,
    /// `CompleteAbort`) whose state has not changed for `transactional.id.expiration.ms`, with the
    /// mapping from their producer id. A producer coming back with such an id starts afresh (a new
    /// producer id), as with Kafka. Walks the ids in store transactions of `EXPIRED_PER_ROUND`
    /// rows; returns how many were deleted.
    pub async fn expire_transactional_ids(&self) -> LogResult<usize> {
        let expiration = self.config.transactional_id_expiration_ms;
        let space = keys::txn_states();
        let (begin, end) = space.range();
        let deleted = walk_pages(&self.db, begin, end, EXPIRED_PER_ROUND, |tx, rows| {
            let space = space.clone();
            async move {
                let now = now_ms();
                let mut n = 0;
                for kv in &rows {
                    let id: String = space
                        .unpack(&kv.key)
                        .map_err(|e| corrupt("transaction state key", e))?;
                    // Read again with a conflict: an InitProducerId or AddPartitions racing
                    // the sweep makes one of them retry.
                    let Some(state) = read_state(&tx, &id, false).await? else {
                        continue;
                    };
                    let idle = matches!(
                        state.status,
                        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
                    ) && now - state.last_ms > expiration;
                    if idle {
                        tx.clear(&kv.key);
                        let pid_key = keys::txn_pid(state.producer_id);
                        if tx.get(&pid_key, false).await?.as_deref() == Some(id.as_bytes()) {
                            tx.clear(&pid_key);
                        }
                        n += 1;
                    }
                }
                Ok(n)
            }
        })
        .await?;
        Ok(deleted.into_iter().sum())
    }

    /// Run [`Log::expire_transactional_ids`] every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub async fn run_txn_id_expiry(self: Arc<Self>) {
        let every = self.config.txn_id_expiry_interval;
        crate::run_every(
            every,
            Some("expired idle transactional ids"),
            "transactional id expiry sweep failed",
            || self.expire_transactional_ids(),
        )
        .await
    }

    /// DescribeTransactions: the state and the partitions of the open transaction.
    pub async fn describe_transaction(
        &self,
        id: &str,
    ) -> LogResult<Option<(TxnState, Vec<(i64, i32)>)>> {
        self.db
            .run(|tx, _| async move {
                let Some(state) = read_state(&tx, id, true).await? else {
                    return Ok(None);
                };
                Ok(Some((state, read_parts(&tx, id, true).await?)))
            })
            .await
    }

    /// ListTransactions: every transactional id and its state.
    pub async fn list_transactions(&self) -> LogResult<Vec<(String, TxnState)>> {
        // Page by page: millions of ids would not fit FoundationDB's limits in one transaction.
        let space = keys::txn_states();
        let (begin, end) = space.range();
        let pages = walk_pages(&self.db, begin, end, LIST_PAGE, |_, rows| {
            let space = space.clone();
            async move {
                rows.iter()
                    .map(|kv| {
                        let id: String = space
                            .unpack(&kv.key)
                            .map_err(|e| corrupt("transaction state key", e))?;
                        Ok((id, TxnState::decode(&kv.value)?))
                    })
                    .collect::<LogResult<Vec<_>>>()
            }
        })
        .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Partitions of `group` with transactional offsets not yet committed or aborted.
    pub async fn unstable_offsets(&self, group: &str) -> LogResult<Vec<(i64, i32)>> {
        self.db
            .run(|tx, _| async move {
                let space = keys::group_pendings(group);
                let (b, e) = space.range();
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                rows.iter()
                    .map(|kv| {
                        space
                            .unpack::<(i64, i32, String)>(&kv.key)
                            .map(|(tid, p, _)| (tid, p))
                            .map_err(|e| corrupt("pending offset", e))
                    })
                    .collect()
            })
            .await
    }
}

/// Turn a raced round into "try again" for the caller's loop.
fn retry(e: LogError) -> LogResult<()> {
    match e {
        LogError::ConcurrentTransactions => Ok(()),
        other => Err(other),
    }
}

/// Move the transaction's pending offsets into their groups (commit) or drop them (abort).
async fn settle_offsets(tx: &Transaction, id: &str, commit: bool, node: i32) -> LogResult<()> {
    let space = keys::txn_offsets(id);
    let (b, e) = space.range();
    let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
    let mut claimed: Vec<String> = Vec::new();
    for kv in rows.iter() {
        let (group, tid, p): (String, i64, i32) = space
            .unpack(&kv.key)
            .map_err(|e| corrupt("transactional offset", e))?;
        tx.clear(&keys::group_pending(&group, tid, p, id));
        if commit {
            if !claimed.contains(&group) {
                crate::append::claim_owner(tx, &keys::group_owner(&group), node).await?;
                tx.set(&keys::group_index(&group), b"");
                claimed.push(group.clone());
            }
            tx.set(&keys::group_offset(&group, tid, p), &kv.value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_names_match_kafka() {
        let s = TxnState {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareAbort,
            start_ms: 100,
            last_ms: 200,
            prev_producer_id: 7,
            prev_epoch: 2,
        };
        assert_eq!(TxnState::decode(&s.encode()).unwrap(), s);
        for st in TxnStatus::ALL {
            assert_eq!(TxnStatus::from_name(st.name()), Some(st));
            assert_eq!(TxnStatus::from_code(st.code()).unwrap(), st);
        }
        assert!(TxnStatus::from_code(99).is_err());
        assert_eq!(s.check_producer(7, 2), Err(LogError::ProducerFenced));
        assert_eq!(
            s.check_producer(8, 3),
            Err(LogError::InvalidProducerIdMapping)
        );
    }
}
