//! The transaction coordinator: one `TxnState` per transactional id, the partitions and groups of
//! its open transaction, its pending transactional offsets, and the operations Kafka's
//! transaction APIs perform on them, each one store transaction.
//!
//! Ending a transaction writes a commit or abort marker into every partition of it (`markers.rs`),
//! moves (commit) or drops (abort) its pending offsets, and records the outcome, all in **one**
//! store transaction when the transaction spans at most `markers_per_txn` partitions (default
//! `MARKERS_PER_TXN`): its outputs and its consumed offsets become visible together or not at all.
//! Bigger transactions first record the decision (`PrepareCommit`/`PrepareAbort`, durable), then
//! write markers in chunks, then complete; a crash in between is finished by the next
//! InitProducerId for that id or by the timeout sweep.
//!
//! Fencing: InitProducerId for a transactional id bumps its epoch. An open transaction of the old
//! epoch is aborted first, with markers carrying the new epoch, so the old producer's late batches
//! are refused in every partition it wrote to. Transactions older than their timeout are aborted
//! the same way by [`TxnCoordinator::abort_expired`]; ids idle longer than
//! `transactional.id.expiration.ms` with no transaction open are deleted by
//! [`TxnCoordinator::expire_ids`].
//!
//! After `commit_unknown_result`, every step that is not idempotent recognises the state its own
//! earlier attempt wrote (a created id by its producer id, a bump or an end by the exact state it
//! wrote), so a retried request does not bump an epoch twice or report a landed end as a race.

use crate::catalog::TopicCatalog;
use crate::clock::now_ms;
use crate::config::EffectiveConfig;
use crate::error::{LogError, LogResult};
use crate::groups::claim_group;
use crate::ids::PartitionId;
use crate::keys;
use crate::markers::{Landed, Marker, write_marker};
use crate::members::Membership;
use crate::placement::CoordinatorKind;
use crate::producers::ProducerStates;
use crate::tails::Tails;
use crate::values::{self, CommittedOffset, TopicMeta, TxnPartition, TxnState, TxnStatus};
use crate::walk::walk_pages;
use crate::writer::PartitionWriters;
use futures::future::try_join_all;
use kfdb_kv::{Database, RangeOption, Transaction};
use std::sync::Arc;

/// Partitions whose markers are written in one store transaction (each costs a few hundred bytes
/// of writes and a handful of reads; FoundationDB allows 10 MB and 5 s).
pub const MARKERS_PER_TXN: usize = 500;
/// Expired transactions aborted per sweep round.
const EXPIRED_PER_ROUND: usize = 100;
/// Transactional ids read per store transaction by ListTransactions.
const LIST_PAGE: usize = 1_000;

/// What a producer adds to its transaction.
#[derive(Debug, Clone, Copy)]
pub enum TxnAddition<'a> {
    /// Partitions it will produce to.
    Partitions(&'a [PartitionId]),
    /// A group whose offsets it will commit (AddOffsetsToTxn).
    Group(&'a str),
}

/// Settings of the coordinator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnSettings {
    /// The node id this broker writes markers as.
    pub node: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// Partitions whose markers share one store transaction.
    pub markers_per_txn: usize,
}

fn check_producer(state: &TxnState, producer_id: i64, epoch: i16) -> LogResult<()> {
    if state.producer_id != producer_id {
        return Err(LogError::InvalidProducerIdMapping);
    }
    if state.producer_epoch != epoch {
        return Err(LogError::ProducerFenced);
    }
    Ok(())
}

fn deadline_key(state: &TxnState, id: &str) -> Option<Vec<u8>> {
    (state.start_ms >= 0)
        .then(|| keys::txn_deadline(state.start_ms + i64::from(state.timeout_ms), id))
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
    check_producer(&state, producer_id, epoch)?;
    Ok(state)
}

async fn read_parts(tx: &Transaction, id: &str, snapshot: bool) -> LogResult<Vec<PartitionId>> {
    let (b, e) = keys::txn_partitions(id);
    let rows = tx.get_range_all(RangeOption::new(b, e), snapshot).await?;
    rows.iter()
        .map(|kv| keys::parse_txn_partition(id, &kv.key))
        .collect()
}

/// Why a round of an operation has to start over: the state changed under it.
fn raced() -> LogError {
    LogError::ConcurrentTransactions
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
    let (b, e) = keys::txn_offsets(id);
    let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
    let mut claimed: Vec<String> = Vec::new();
    for kv in rows.iter() {
        let (group, p) = keys::parse_txn_offset(id, &kv.key)?;
        tx.clear(&keys::group_pending(&group, p, id));
        if commit {
            if !claimed.contains(&group) {
                claim_group(tx, &group, node).await?;
                tx.set(&keys::group_index(&group), b"");
                claimed.push(group.clone());
            }
            tx.set(&keys::group_offset(&group, p), &kv.value);
        }
    }
    Ok(())
}

/// See the module documentation.
pub struct TxnCoordinator {
    db: Database,
    settings: TxnSettings,
    membership: Arc<Membership>,
    topics: Arc<TopicCatalog>,
    writers: Arc<PartitionWriters>,
    producers: Arc<ProducerStates>,
    tails: Arc<Tails>,
}

impl TxnCoordinator {
    pub(crate) fn new(
        db: Database,
        settings: TxnSettings,
        membership: Arc<Membership>,
        topics: Arc<TopicCatalog>,
        writers: Arc<PartitionWriters>,
        producers: Arc<ProducerStates>,
        tails: Arc<Tails>,
    ) -> Self {
        Self {
            db,
            settings,
            membership,
            topics,
            writers,
            producers,
            tails,
        }
    }

    /// Whether this broker coordinates transactional id `id`.
    pub fn coordinates(&self, id: &str) -> bool {
        self.membership
            .view()
            .coordinator(CoordinatorKind::Transaction, id)
            == Some(self.membership.node_id())
    }

    fn check_coordinator(&self, id: &str) -> LogResult<()> {
        if self.coordinates(id) {
            Ok(())
        } else {
            Err(LogError::NotCoordinator)
        }
    }

    /// The stored state of a transactional id (a snapshot read in its own transaction).
    async fn stored_state(&self, id: &str) -> LogResult<Option<TxnState>> {
        self.db
            .run(|tx, _| async move { read_state(&tx, id, true).await })
            .await
    }

    /// InitProducerId for a transactional id: a producer id and a new epoch, fencing every older
    /// producer of that id (an open transaction of theirs is aborted first). `expected` is the
    /// producer id and epoch the client believes current (KIP-360), if it sent one.
    pub async fn init_producer(
        &self,
        id: &str,
        timeout_ms: i32,
        mut expected: Option<(i64, i16)>,
    ) -> LogResult<(i64, i16)> {
        // The producer's own (id, epoch) once checked: recorded with the bump for its retries.
        let mut bumped_from: Option<(i64, i16)> = None;
        self.check_coordinator(id)?;
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(LogError::InvalidTransactionTimeout(timeout_ms));
        }
        for _ in 0..8 {
            let current = self.stored_state(id).await?;
            let Some(seen) = current else {
                let pid = self.producers.allocate_id().await?;
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
                let state = &state;
                let created = self
                    .db
                    .run(|tx, maybe_committed| async move {
                        if let Some(now) = read_state(&tx, id, false).await? {
                            // Ours if an earlier attempt of this very write landed.
                            return Ok::<_, LogError>(maybe_committed.0 && now == *state);
                        }
                        tx.set(&keys::txn_state(id), &state.encode());
                        tx.set(&keys::txn_pid(pid), &values::encode_transactional_id(id));
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
                (self.producers.allocate_id().await?, 0)
            } else {
                (seen.producer_id, seen.producer_epoch + 1)
            };
            let (prev_producer_id, prev_epoch) = bumped_from.unwrap_or((-1, -1));
            let bumped_state = TxnState {
                producer_id: pid,
                producer_epoch: epoch,
                timeout_ms,
                status: TxnStatus::Empty,
                start_ms: -1,
                last_ms: now_ms(),
                prev_producer_id,
                prev_epoch,
            };
            let (seen, bumped_ref) = (&seen, &bumped_state);
            let bumped = self
                .db
                .run(|tx, maybe_committed| async move {
                    let now = read_state(&tx, id, false).await?;
                    if maybe_committed.0 && now.as_ref() == Some(bumped_ref) {
                        return Ok::<_, LogError>(true);
                    }
                    if now.as_ref() != Some(seen) {
                        return Ok(false);
                    }
                    if pid != seen.producer_id {
                        tx.clear(&keys::txn_pid(seen.producer_id));
                        tx.set(&keys::txn_pid(pid), &values::encode_transactional_id(id));
                    }
                    tx.set(&keys::txn_state(id), &bumped_ref.encode());
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
    /// none is open. Idempotent.
    pub async fn add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        addition: TxnAddition<'_>,
    ) -> LogResult<()> {
        self.check_coordinator(id)?;
        self.db
            .run(|tx, _| async move {
                let state = read_for_producer(&tx, id, producer_id, epoch, false).await?;
                if state.status.prepared() {
                    return Err(LogError::ConcurrentTransactions);
                }
                match addition {
                    TxnAddition::Partitions(parts) => {
                        let value = TxnPartition { producer_id, epoch }.encode();
                        for p in parts {
                            tx.set(&keys::txn_partition(id, *p), &value);
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
                    if let Some(k) = deadline_key(&open, id) {
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
    pub async fn contains(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        parts: &[PartitionId],
    ) -> LogResult<Vec<bool>> {
        self.check_coordinator(id)?;
        self.db
            .run(|tx, _| async move {
                read_for_producer(&tx, id, producer_id, epoch, true).await?;
                let tx = &tx;
                let found = try_join_all(
                    parts
                        .iter()
                        .map(|p| async move { tx.get(&keys::txn_partition(id, *p), true).await }),
                )
                .await?;
                Ok(found.into_iter().map(|v| v.is_some()).collect())
            })
            .await
    }

    /// TxnOffsetCommit: offsets that become the group's committed offsets if the transaction
    /// commits. Until it ends, OffsetFetch with `require_stable` reports them as unstable.
    /// Idempotent.
    pub async fn commit_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: &[(PartitionId, CommittedOffset)],
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
                for (p, o) in offsets {
                    tx.set(&keys::txn_offset(id, group, *p), &o.encode());
                    tx.set(&keys::group_pending(group, *p, id), b"");
                }
                Ok(())
            })
            .await
    }

    /// EndTxn: commit or abort the producer's open transaction. Ending one that already ended the
    /// same way is a success (a retried EndTxn); the other way is INVALID_TXN_STATE.
    pub async fn end(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> LogResult<()> {
        self.check_coordinator(id)?;
        for _ in 0..8 {
            let state = self
                .stored_state(id)
                .await?
                .ok_or(LogError::InvalidProducerIdMapping)?;
            check_producer(&state, producer_id, epoch)?;
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
    async fn finish(&self, id: &str, seen: &TxnState, commit: bool, fence: bool) -> LogResult<()> {
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
        let mut targets: Vec<(Arc<TopicMeta>, PartitionId)> = Vec::with_capacity(parts.len());
        for p in &parts {
            // A deleted topic needs no marker; its key goes with the transaction's.
            if let Some(t) = self.topics.get_by_tid(p.tid).await? {
                targets.push((t, *p));
            }
        }
        targets.sort_by_key(|(_, p)| *p);
        // Writers are taken in one global order, so two coordinators' ends cannot deadlock.
        let mut grants = Vec::with_capacity(targets.len());
        for (t, p) in &targets {
            grants.push(self.writers.acquire(t, *p).await);
        }
        let chunks: Vec<&[(Arc<TopicMeta>, PartitionId)]> = if targets.is_empty() {
            vec![&[]]
        } else {
            targets
                .chunks(self.settings.markers_per_txn.max(1))
                .collect()
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
        let node = self.settings.node;
        let one_shot = chunks.len() == 1 && ongoing;
        let last_chunk = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (expect, complete, parts) = (&expect, &complete, &parts);
            let landed = self
                .db
                .run(|tx, maybe_committed| async move {
                    let now = read_state(&tx, id, false).await?;
                    if now.as_ref() != Some(expect) {
                        // After commit_unknown_result the end may be ours: it wrote `complete`.
                        let ours =
                            maybe_committed.0 && i == last_chunk && now.as_ref() == Some(complete);
                        return Ok::<_, LogError>(if ours {
                            Outcome::LandedUnseen
                        } else {
                            Outcome::Raced
                        });
                    }
                    if one_shot && read_parts(&tx, id, false).await? != *parts {
                        return Ok(Outcome::Raced);
                    }
                    let tx = &tx;
                    let written = try_join_all(chunk.iter().map(|(t, p)| async move {
                        let key = keys::txn_partition(id, *p);
                        if tx.get(&key, false).await?.is_none() {
                            // Done by an earlier round of a chunked end.
                            return Ok::<_, LogError>(None);
                        }
                        tx.clear(&key);
                        let index_keys = EffectiveConfig::new(&t.configs).indexes_keys();
                        write_marker(tx, node, *p, marker, index_keys).await
                    }))
                    .await?;
                    if i == last_chunk {
                        settle_offsets(tx, id, commit, node).await?;
                        let (b, e) = keys::txn_all(id);
                        tx.clear_range(&b, &e);
                        if let Some(k) = deadline_key(expect, id) {
                            tx.clear(&k);
                        }
                        tx.set(&keys::txn_state(id), &complete.encode());
                    }
                    Ok(Outcome::Landed(written.into_iter().flatten().collect()))
                })
                .await;
            match landed {
                Ok(Outcome::Landed(l)) => self.landed(l),
                Ok(Outcome::LandedUnseen) => {
                    for (_, p) in chunk {
                        self.tails.unsure(*p, None);
                    }
                }
                other => {
                    // The markers may have landed without this broker knowing (commit_unknown_result,
                    // then a raced or failed retry): the cache must not keep the old offsets.
                    for (_, p) in chunk {
                        self.tails.unsure(*p, None);
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

    /// Markers committed: feed the hot cache and wake fetches waiting on these partitions.
    fn landed(&self, landed: Vec<Landed>) {
        // Partitions other brokers lead were told through their inbox (`markers.rs`).
        for l in landed.into_iter().filter(|l| l.local) {
            self.tails.appended(l.partition, vec![l.batch], &l.state);
        }
    }

    /// Abort the transactions this broker coordinates that are open longer than their timeout
    /// (fencing their producers) and finish decided ones left half-written; at most
    /// `EXPIRED_PER_ROUND` per pass. Returns how many were ended.
    pub async fn abort_expired(&self) -> LogResult<usize> {
        let (b, end) = keys::txn_deadlines_before(now_ms());
        let pages = walk_pages(&self.db, b, end, EXPIRED_PER_ROUND, |_, rows| async move {
            rows.iter()
                .map(|kv| keys::parse_txn_deadline(&kv.key))
                .collect::<LogResult<Vec<_>>>()
        })
        .await?;
        let due: Vec<(i64, String)> = pages
            .into_iter()
            .flatten()
            .filter(|(_, id)| self.coordinates(id))
            .take(EXPIRED_PER_ROUND)
            .collect();
        let mut ended = 0;
        for (deadline, id) in due {
            let id = id.as_str();
            let state = self.stored_state(id).await?;
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

    /// Delete transactional ids with no transaction open (`Empty`, `CompleteCommit`,
    /// `CompleteAbort`) whose state has not changed for `transactional.id.expiration.ms`, with the
    /// mapping from their producer id. A producer coming back with such an id starts afresh (a new
    /// producer id), as with Kafka. Walks the ids in store transactions of `EXPIRED_PER_ROUND`
    /// rows; returns how many were deleted.
    pub async fn expire_ids(&self) -> LogResult<usize> {
        let expiration = self.settings.id_expiration_ms;
        let (begin, end) = keys::txn_states();
        let deleted = walk_pages(
            &self.db,
            begin,
            end,
            EXPIRED_PER_ROUND,
            |tx, rows| async move {
                let now = now_ms();
                let mut n = 0;
                for kv in &rows {
                    let id = keys::parse_txn_state(&kv.key)?;
                    // Read again with a conflict: an InitProducerId or AddPartitions racing the sweep
                    // makes one of them retry.
                    let Some(state) = read_state(&tx, &id, false).await? else {
                        continue;
                    };
                    if state.status.idle() && now - state.last_ms > expiration {
                        tx.clear(&kv.key);
                        let pid_key = keys::txn_pid(state.producer_id);
                        if let Some(owner) = tx.get(&pid_key, false).await?
                            && values::decode_transactional_id(&owner) == id
                        {
                            tx.clear(&pid_key);
                        }
                        n += 1;
                    }
                }
                Ok(n)
            },
        )
        .await?;
        Ok(deleted.into_iter().sum())
    }

    /// DescribeTransactions: the state and the partitions of the open transaction.
    pub async fn describe(&self, id: &str) -> LogResult<Option<(TxnState, Vec<PartitionId>)>> {
        self.check_coordinator(id)?;
        self.db
            .run(|tx, _| async move {
                let Some(state) = read_state(&tx, id, true).await? else {
                    return Ok(None);
                };
                Ok(Some((state, read_parts(&tx, id, true).await?)))
            })
            .await
    }

    /// ListTransactions: every transactional id this broker coordinates and its state (clients
    /// ask every broker and merge).
    pub async fn list(&self) -> LogResult<Vec<(String, TxnState)>> {
        // Page by page: millions of ids would not fit FoundationDB's limits in one transaction.
        let (begin, end) = keys::txn_states();
        let pages = walk_pages(&self.db, begin, end, LIST_PAGE, |_, rows| async move {
            rows.iter()
                .map(|kv| {
                    Ok((
                        keys::parse_txn_state(&kv.key)?,
                        TxnState::decode(&kv.value)?,
                    ))
                })
                .collect::<LogResult<Vec<_>>>()
        })
        .await?;
        Ok(pages
            .into_iter()
            .flatten()
            .filter(|(id, _)| self.coordinates(id))
            .collect())
    }
}

/// What one round of writing markers found.
enum Outcome {
    /// Written now: the markers, for the tails.
    Landed(Vec<Landed>),
    /// Written by an earlier attempt whose commit was reported unknown.
    LandedUnseen,
    /// The state changed under the round.
    Raced,
}
