//! The commit pipeline: one thread that owns every write to the embedded store.
//!
//! It takes all commit requests waiting in its queue as one group, gives the group one commit
//! version, and for each transaction in order: checks its age and read conflicts against the
//! history (`resolver`), resolves versionstamps (version ++ position in the group), folds its
//! mutations into one atomic fjall batch (large values appended to the value log, the batch
//! holding pointers) and records its writes. The batches wait; once per group the value log is
//! fdatasync'd, then the batches are applied in order and one fsync makes them durable, a new read
//! view is published, watches fire, and only then is anyone answered. Many concurrent committers
//! therefore share the two fsyncs. A transaction that must read the store's head while it is
//! folded (an atomic operation's base, the keys of a small range clear) first has the waiting
//! batches applied, so it sees them.
//!
//! Large range clears become tombstones (`tombstones.rs`); between groups, and continuously while
//! no commit waits, the pipeline deletes their keys in bounded steps.

use super::collect::{Collector, Relocation, Timing};
use super::journal::JournalTrimmer;
use super::reclaim::MemtableKeeper;
use super::resolver::{ConflictHistory, KeyRange};
use super::rotation::Sealer;
use super::tombstones::{
    self, CURSOR_PREFIX, INLINE_CLEAR_KEYS, PURGE_STEP_KEYS, REWRITTEN_PREFIX, TOMB_PREFIX,
    Tombstone, TombstoneSet, meta_key,
};
use super::vlog::{self, ValueLog};
use super::{Core, META_VERSION_KEY, ReadView};
use crate::atomic;
use crate::error::{KvError, KvResult};
use crate::types::{CommitInfo, MAX_TRANSACTION_AGE, MutationType, key_after};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// One buffered write, in the order the transaction issued it.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Set(Bytes, Bytes),
    Clear(Bytes),
    ClearRange(Bytes, Bytes),
    /// An atomic operation, including the two versionstamp operations.
    Atomic(Bytes, Bytes, MutationType),
}

pub(crate) struct CommitRequest {
    /// Read version and when it was taken; `None` for a transaction that never read.
    pub(crate) read: Option<(u64, Instant)>,
    pub(crate) read_conflicts: Vec<KeyRange>,
    pub(crate) write_conflicts: Vec<KeyRange>,
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) reply: oneshot::Sender<KvResult<CommitInfo>>,
}

pub(crate) enum PipelineMsg {
    Commit(CommitRequest),
}

/// How often an idle pipeline prunes its conflict history.
const PRUNE_WHEN_IDLE: Duration = Duration::from_secs(1);
/// Keys a purge step examines while commits are waiting (more when idle).
const BUSY_PURGE_STEP_KEYS: usize = 1_024;
/// The longest a purge step may take while commits are waiting (it runs between commit groups,
/// so this is what it can add to a commit's latency).
const BUSY_PURGE_STEP_TIME: Duration = Duration::from_millis(2);
/// The longest an idle purge step takes before looking for commits again.
const IDLE_PURGE_STEP_TIME: Duration = Duration::from_millis(20);

/// FoundationDB-like versions: about one million per second, strictly increasing, also across
/// restarts (the last one is stored with every commit).
fn next_version(last: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.max(last + 1)
}

fn versionstamp(version: u64, order: u16) -> [u8; 10] {
    let mut s = [0u8; 10];
    s[..8].copy_from_slice(&version.to_be_bytes());
    s[8..].copy_from_slice(&order.to_be_bytes());
    s
}

/// A range clear still being deleted, and where its deletion has got to.
struct Pending {
    tomb: Arc<Tombstone>,
    cursor: Vec<u8>,
}

/// What the pipeline thread keeps besides the store.
struct Pipeline {
    core: Arc<Core>,
    history: ConflictHistory,
    last_version: u64,
    /// Pending range clears, oldest first.
    live: Vec<Pending>,
    /// Set after a purge step failed: purging stops (the store is poisoned anyway).
    purge_failed: bool,
    /// Seals full memtables on a thread of its own (`rotation`), woken after each group once its
    /// answers went out, in every store (in one where fjall rotates them itself its request then
    /// finds the memtable replaced), so a store that lost its mark is still rotated.
    sealer: Sealer,
    /// Keeps fjall's retired memtables from being freed under its locks (`reclaim`); stopped
    /// when the pipeline ends.
    _memtables: MemtableKeeper,
    /// Keeps fjall from holding sealed journals for the meta keyspace's sake (`journal`).
    _journal: JournalTrimmer,
    /// Where values of `vlog::MIN_LOGGED` bytes or more go, in a store that logs them.
    vlog: Option<ValueLog>,
    /// The collector's requests to move live values. Declared before the collector: dropped
    /// first, it fails a request in flight, so the collector's thread can be joined.
    relocations: Option<Receiver<Relocation>>,
    _collector: Option<Collector>,
    /// This group's transactions resolved so far whose batches wait for the value log's sync.
    staged: Vec<Staged>,
}

pub(crate) fn run(
    core: Arc<Core>,
    rx: Receiver<PipelineMsg>,
    pending: Vec<(Arc<Tombstone>, Vec<u8>)>,
    vlog: Option<ValueLog>,
) {
    let start = core.current_view().version;
    let timing = Timing {
        every: core.options.value_log_collect_every,
        grace: core.options.value_log_grace,
        rewalk: core.options.value_log_rewalk,
    };
    let (collector, relocations) = match &vlog {
        Some(log) => {
            let (c, r) = Collector::start(core.clone(), log.reader(), timing);
            (Some(c), Some(r))
        }
        None => (None, None),
    };
    let mut p = Pipeline {
        history: ConflictHistory::new(MAX_TRANSACTION_AGE, start),
        last_version: start,
        live: pending
            .into_iter()
            .map(|(tomb, cursor)| Pending { tomb, cursor })
            .collect(),
        purge_failed: false,
        sealer: Sealer::start(core.clone()),
        _memtables: MemtableKeeper::start(core.data.clone()),
        _journal: JournalTrimmer::start(core.db.clone(), core.meta.clone()),
        vlog,
        relocations,
        _collector: collector,
        staged: Vec::new(),
        core,
    };
    loop {
        let purging = !p.live.is_empty() && !p.purge_failed;
        // Idle: still forget history past the window, so the memory a burst of commits used for
        // conflict checks is given back without waiting for the next commit; and delete pending
        // range clears as fast as possible while nothing waits.
        let wait = if purging {
            Duration::ZERO
        } else {
            PRUNE_WHEN_IDLE
        };
        let first = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if purging {
                    p.purge_step(PURGE_STEP_KEYS, IDLE_PURGE_STEP_TIME);
                    p.sealer.after_group();
                }
                // A look at the oldest generation: cheap enough for every idle purge step.
                p.history.prune(Instant::now());
                p.serve_relocations();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < p.core.options.max_group {
            match rx.try_recv() {
                Ok(m) => group.push(m),
                Err(_) => break,
            }
        }
        p.commit_group(group);
        if !p.live.is_empty() && !p.purge_failed {
            // Under load, one small step per group: a big delete adds a bounded delay to each
            // group instead of stalling them all.
            p.purge_step(BUSY_PURGE_STEP_KEYS, BUSY_PURGE_STEP_TIME);
        }
        p.sealer.after_group();
        p.serve_relocations();
    }
}

/// How an injected `commit_unknown_result` treats a commit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknown {
    No,
    /// Apply it, then answer commit_unknown_result.
    Landed,
    /// Do not apply it; answer commit_unknown_result.
    Lost,
}

fn unknown_result() -> KvError {
    KvError::new(
        KvError::COMMIT_UNKNOWN_RESULT,
        "injected: commit outcome unknown",
    )
}

impl Pipeline {
    fn take_injected_unknown(&self) -> Unknown {
        let c = &self.core;
        if c.injected_unknown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Unknown::No;
        }
        if c.injected_unknown_landed.load(Ordering::SeqCst) {
            Unknown::Landed
        } else {
            Unknown::Lost
        }
    }

    fn commit_group(&mut self, group: Vec<PipelineMsg>) {
        let core = self.core.clone();
        let version = next_version(self.last_version);
        let now = Instant::now();
        self.history.prune(now);
        let mut seen = Seen::default();
        let mut answers = Vec::with_capacity(group.len());
        let mut wrote = false;
        let mut new_tombstones = false;
        let mut failed: Option<KvError> = None;
        for (order, PipelineMsg::Commit(mut req)) in group.into_iter().enumerate() {
            let order = order as u16;
            let stamp = versionstamp(version, order);
            let unknown = self.take_injected_unknown();
            // Folding it reads the store's head: the batches before it are applied first.
            if unknown != Unknown::Lost
                && failed.is_none()
                && reads_head(&req.mutations)
                && let Err(e) = self.flush(&mut seen)
            {
                failed = Some(e);
            }
            let result = if unknown == Unknown::Lost {
                Err(unknown_result())
            } else {
                self.commit_one(&mut req, version, order, stamp, now)
                    .map(|(batch, mut applied)| {
                        self.history
                            .record(version, now, std::mem::take(&mut applied.writes));
                        wrote = true;
                        new_tombstones |= !applied.tombstones.is_empty();
                        self.staged.push(Staged { batch, applied });
                        CommitInfo {
                            version: version as i64,
                            versionstamp: Some(stamp),
                        }
                    })
            };
            match &result {
                Ok(_) => core.stats.commits.fetch_add(1, Ordering::Relaxed),
                Err(e) if e.code() == KvError::NOT_COMMITTED => {
                    core.stats.conflicts.fetch_add(1, Ordering::Relaxed)
                }
                Err(_) => 0,
            };
            let result = match (result, unknown) {
                (Ok(_), Unknown::Landed) => Err(unknown_result()),
                (r, _) => r,
            };
            answers.push((req.reply, result));
        }
        core.stats.groups.fetch_add(1, Ordering::Relaxed);
        if failed.is_none()
            && let Err(e) = self.flush(&mut seen)
        {
            failed = Some(e);
        }
        if wrote && failed.is_none() && core.options.fsync {
            core.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            // fdatasync: the journal's data and the block allocations needed to read it
            // back; skips the inode's timestamps, which cost a second write per group.
            if let Err(e) = core.db.persist(fjall::PersistMode::SyncData) {
                failed =
                    Some(self.fail_write("fsync of the commit group", std::io::Error::other(e)));
            }
        }
        if let Some(e) = failed {
            // Nothing of this group is known durable: every transaction that would have
            // committed gets the store's error (the store refuses commits from now on).
            self.staged.clear();
            for (reply, result) in answers {
                let _ = reply.send(result.and(Err(e.clone())));
            }
            return;
        }
        if wrote {
            self.last_version = version;
            self.publish();
            if !seen.changed.is_empty() || !seen.cleared.is_empty() {
                let mut w = lock_watches(&core);
                for (b, e, rewritten) in &seen.cleared {
                    w.cleared(b, e, |k| rewritten.iter().any(|r| r.as_slice() == k));
                }
                for (k, v) in &seen.changed {
                    w.changed(k, v.as_deref());
                }
            }
        }
        if new_tombstones {
            core.stats
                .range_tombstones
                .store(self.live.len() as u64, Ordering::Relaxed);
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
    }

    /// Apply the waiting batches: the value log fdatasync'd first (the values are durable before
    /// any fjall write that points at them can reach the disk), then each batch in order. What a
    /// watch registered by then must hear of is added to `seen`.
    fn flush(&mut self, seen: &mut Seen) -> KvResult<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let core = self.core.clone();
        if let Some(log) = self.vlog.as_mut()
            && self.staged.iter().any(|s| s.applied.logged)
        {
            let written = if core.options.fsync {
                core.stats.value_log_syncs.fetch_add(1, Ordering::Relaxed);
                log.sync()
            } else {
                log.write()
            };
            if let Err(e) = written {
                self.staged.clear();
                return Err(self.fail_write("value log fdatasync", e));
            }
        }
        for Staged { batch, applied } in std::mem::take(&mut self.staged) {
            if let Err(e) = batch.commit() {
                return Err(self.fail_write("write batch", std::io::Error::other(e)));
            }
            // Asked after each apply, not once per group: a watch registered before this point
            // read the value before it and gets this change; one registered after it reads the
            // new value at registration and fires at once. Asked at the start of the group, a
            // watch registered during the group missed the changes of the transactions applied
            // after it.
            if !lock_watches(&core).is_empty() {
                for t in &applied.tombstones {
                    let rewritten: Vec<Vec<u8>> = applied
                        .overlay
                        .range(t.begin.clone()..t.end.clone())
                        .map(|(k, _)| k.clone())
                        .collect();
                    seen.cleared
                        .push((t.begin.clone(), t.end.clone(), rewritten));
                }
                seen.changed.extend(applied.overlay);
            }
        }
        if let Some(log) = &self.vlog {
            log.settle();
        }
        Ok(())
    }

    /// Publish a read view at the last durable version: a fresh snapshot and the pending range
    /// clears.
    fn publish(&self) {
        let core = &self.core;
        let view = ReadView {
            version: self.last_version,
            snapshot: core.db.snapshot(),
            keyspace: core.data.clone(),
            tombstones: TombstoneSet(Arc::new(self.live.iter().map(|p| p.tomb.clone()).collect())),
            values: core.values.clone(),
        };
        match core.read_view.write() {
            Ok(mut g) => *g = view,
            Err(p) => *p.into_inner() = view,
        }
    }

    /// Whether `key`, as stored now, is hidden by a pending range clear (at the head of the store).
    fn hidden(&self, key: &[u8]) -> bool {
        self.live
            .iter()
            .any(|p| p.tomb.covers(key) && !p.tomb.keeps(key))
    }

    /// Resolve one transaction and build its batch (applied by the next `flush`). Its large
    /// values are appended to the value log, not yet synced; its range clears become pending now,
    /// so the transactions after it in the group see them.
    fn commit_one(
        &mut self,
        req: &mut CommitRequest,
        version: u64,
        order: u16,
        stamp: [u8; 10],
        now: Instant,
    ) -> KvResult<(fjall::OwnedWriteBatch, Applied)> {
        let core = self.core.clone();
        if core.poisoned.load(Ordering::SeqCst) {
            return Err(KvError::new(
                KvError::IO_ERROR,
                "store failed earlier; restart kfdb",
            ));
        }
        if let Some((rv, at)) = req.read {
            if self.history.too_old(rv) || now.duration_since(at) > MAX_TRANSACTION_AGE {
                return Err(KvError::new(
                    KvError::TRANSACTION_TOO_OLD,
                    "read version older than 5 s",
                ));
            }
            if self.history.conflicts(rv, &req.read_conflicts) {
                return Err(KvError::new(KvError::NOT_COMMITTED, "read conflict"));
            }
        }
        if core
            .injected_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(KvError::new(KvError::NOT_COMMITTED, "injected conflict"));
        }
        let mut writes = std::mem::take(&mut req.write_conflicts);
        let built = self.build_overlay(&req.mutations, &stamp, version, order, &mut writes)?;
        let mut batch = core.db.batch();
        let mut logged = false;
        for (k, v) in &built.overlay {
            match (v, self.vlog.as_mut()) {
                (Some(v), None) => batch.insert(&core.data, k.clone(), v.clone()),
                (Some(v), Some(log)) if v.len() >= vlog::MIN_LOGGED => {
                    let p = log
                        .append(k, v)
                        .map_err(|e| self.fail_write("value log append", e))?;
                    logged = true;
                    batch.insert(&core.data, k.clone(), vlog::tag_pointer(&p));
                }
                (Some(v), Some(_)) => batch.insert(&core.data, k.clone(), vlog::tag_inline(v)),
                (None, _) => batch.remove(&core.data, k.clone()),
            }
        }
        for t in &built.tombstones {
            batch.insert(
                &core.meta,
                meta_key(TOMB_PREFIX, &t.id, b""),
                tombstones::encode_range(&t.begin, &t.end),
            );
        }
        // Keys written inside pending clears (older ones and this transaction's own): remembered,
        // so readers see them and the purge keeps them.
        let all: Vec<Arc<Tombstone>> = self
            .live
            .iter()
            .map(|p| p.tomb.clone())
            .chain(built.tombstones.iter().cloned())
            .collect();
        if !all.is_empty() {
            for (k, v) in &built.overlay {
                if v.is_none() {
                    continue;
                }
                for t in all.iter().filter(|t| t.covers(k)) {
                    if t.record_rewrite(k, version) {
                        batch.insert(
                            &core.meta,
                            meta_key(REWRITTEN_PREFIX, &t.id, k),
                            version.to_be_bytes().to_vec(),
                        );
                    }
                }
            }
        }
        batch.insert(&core.meta, META_VERSION_KEY, version.to_be_bytes().to_vec());
        for t in &built.tombstones {
            tracing::debug!(version, "range clear pending as a tombstone");
            self.live.push(Pending {
                tomb: t.clone(),
                cursor: t.begin.clone(),
            });
        }
        Ok((
            batch,
            Applied {
                overlay: built.overlay,
                writes,
                tombstones: built.tombstones,
                logged,
            },
        ))
    }

    /// Carry out the collector's waiting request, if any.
    fn serve_relocations(&mut self) {
        let Some(rx) = &self.relocations else {
            return;
        };
        let Ok(r) = rx.try_recv() else {
            return;
        };
        let _ = r.reply.send(self.relocate(r.entries));
    }

    /// Move the values that still live at these pointers to the log's head: appended again, the
    /// log fdatasync'd, the new pointers written and fjall's journal fsync'd, a view published.
    /// Runs between groups, so fjall's head is durable and no commit races it; the values do not
    /// change, so no conflict is recorded and no watch fires.
    fn relocate(&mut self, entries: Vec<(Bytes, vlog::Pointer)>) -> std::io::Result<usize> {
        if self.core.poisoned.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("store failed earlier"));
        }
        let core = self.core.clone();
        // Moved only if no pending range clear hides it (moving a hidden key the purge already
        // passed would bring it back once the clear is done) and it still points there.
        let visible: Vec<_> = entries
            .into_iter()
            .filter(|(key, _)| !self.hidden(key))
            .collect();
        let Some(log) = self.vlog.as_mut() else {
            return Ok(0);
        };
        let reader = log.reader();
        let mut batch = core.db.batch();
        let (mut moved, mut bytes) = (0, 0);
        for (key, walked) in visible {
            let stored = core.data.get(&key).map_err(std::io::Error::other)?;
            let Some(old) = stored
                .as_deref()
                .and_then(vlog::Reader::pointer_of)
                .filter(|p| p.same_place(&walked))
            else {
                continue;
            };
            let value = reader.read(&old)?;
            let p = log.append(&key, &value)?;
            batch.insert(&core.data, key.to_vec(), vlog::tag_pointer(&p));
            moved += 1;
            bytes += value.len() as u64;
        }
        if moved == 0 {
            return Ok(0);
        }
        let durable = log
            .sync()
            .and_then(|()| batch.commit().map_err(std::io::Error::other))
            .and_then(|()| {
                core.db
                    .persist(fjall::PersistMode::SyncData)
                    .map_err(std::io::Error::other)
            });
        if let Err(e) = durable {
            core.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "moving logged values failed; store is now read-only");
            return Err(e);
        }
        log.settle();
        self.publish();
        let stats = &core.stats;
        stats
            .value_log_values_moved
            .fetch_add(moved as u64, Ordering::Relaxed);
        stats
            .value_log_bytes_moved
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(moved)
    }

    /// A failed write to the store: it refuses every commit from now on (as after a failed fjall
    /// write), and the caller gets an I/O error.
    fn fail_write(&self, what: &'static str, e: std::io::Error) -> KvError {
        self.core.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(error = %e, "{what} failed; store is now read-only");
        KvError::caused_by(KvError::IO_ERROR, what, e)
    }

    /// Fold a transaction's mutations, in order, into the final value of each key it touches;
    /// large range clears become tombstones.
    fn build_overlay(
        &self,
        mutations: &[Mutation],
        stamp: &[u8; 10],
        version: u64,
        order: u16,
        writes: &mut Vec<KeyRange>,
    ) -> KvResult<Built> {
        let core = &self.core;
        let io = |e: fjall::Error| KvError::caused_by(KvError::IO_ERROR, "read", e);
        let mut overlay = Overlay::new();
        let mut new: Vec<Arc<Tombstone>> = Vec::new();
        for m in mutations {
            match m {
                Mutation::Set(k, v) => {
                    overlay.insert(k.to_vec(), Some(v.clone()));
                }
                Mutation::Clear(k) => {
                    overlay.insert(k.to_vec(), None);
                }
                Mutation::ClearRange(b, e) => {
                    for (_, v) in overlay.range_mut(b.to_vec()..e.to_vec()) {
                        *v = None;
                    }
                    // A small range is cleared key by key now; a large one becomes a tombstone.
                    let mut stored = Vec::new();
                    for guard in core.data.range(b.as_ref()..e.as_ref()) {
                        stored.push(guard.key().map_err(io)?.to_vec());
                        if stored.len() > INLINE_CLEAR_KEYS {
                            break;
                        }
                    }
                    if stored.len() <= INLINE_CLEAR_KEYS {
                        for key in stored {
                            overlay.entry(key).or_insert(None);
                        }
                    } else {
                        let id = tombstones::tomb_id(version, order, new.len() as u16);
                        new.push(Arc::new(Tombstone::new(id, b.to_vec(), e.to_vec())));
                    }
                }
                Mutation::Atomic(k, template, MutationType::SetVersionstampedKey) => {
                    let key = atomic::place_versionstamp(k, stamp)?;
                    writes.push((key.clone(), key_after(&key)));
                    overlay.insert(key, Some(template.clone()));
                }
                Mutation::Atomic(k, template, MutationType::SetVersionstampedValue) => {
                    let value = atomic::place_versionstamp(template, stamp)?;
                    overlay.insert(k.to_vec(), Some(Bytes::from(value)));
                }
                Mutation::Atomic(k, param, op) => {
                    let current = match overlay.get(k.as_ref()) {
                        Some(v) => v.clone(),
                        None if new.iter().any(|t| t.covers(k)) || self.hidden(k) => None,
                        None => match core.data.get(k.as_ref()).map_err(io)? {
                            Some(stored) => Some(
                                self.core
                                    .current_view()
                                    .resolve(Bytes::from(stored))
                                    .map_err(|e| {
                                        KvError::caused_by(
                                            KvError::IO_ERROR,
                                            "read a logged value",
                                            e,
                                        )
                                    })?,
                            ),
                            None => None,
                        },
                    };
                    let new_value = atomic::apply(*op, current.as_deref(), param).map(Bytes::from);
                    overlay.insert(k.to_vec(), new_value);
                }
            }
        }
        Ok(Built {
            overlay,
            tombstones: new,
        })
    }

    /// Delete up to `keys` keys of the oldest pending range clear, for at most `time`; when it is
    /// done, drop it and publish a view without it.
    fn purge_step(&mut self, keys: usize, time: Duration) {
        match self.try_purge_step(keys, time) {
            Ok(true) => {
                self.live.remove(0);
                self.core
                    .stats
                    .range_tombstones
                    .store(self.live.len() as u64, Ordering::Relaxed);
                self.publish();
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "deleting a cleared range failed; stopped");
                self.purge_failed = true;
            }
        }
    }

    /// One step; `Ok(true)` when the oldest clear is fully deleted (and its records removed).
    fn try_purge_step(&mut self, keys: usize, time: Duration) -> KvResult<bool> {
        let started = Instant::now();
        let core = self.core.clone();
        let io = |e: fjall::Error| KvError::caused_by(KvError::IO_ERROR, "purge cleared range", e);
        if core.poisoned.load(Ordering::SeqCst) {
            // A failed group may have left a range clear pending that never became durable.
            return Err(KvError::new(KvError::IO_ERROR, "store failed earlier"));
        }
        let Some(p) = self.live.first_mut() else {
            return Ok(false);
        };
        let mut batch = core.db.batch();
        let mut next = None;
        let mut deleted = 0u64;
        // Logged values this step deletes: hinted to the collector once the step is durable.
        let mut dead = Vec::new();
        for (seen, guard) in core
            .data
            .range(p.cursor.clone()..p.tomb.end.clone())
            .enumerate()
        {
            let (key, stored) = guard.into_inner().map_err(io)?;
            if seen == keys || (seen % 64 == 63 && started.elapsed() >= time) {
                next = Some(key.to_vec());
                break;
            }
            if !p.tomb.keeps(&key) {
                if let Some(ptr) = vlog::Reader::pointer_of(&stored) {
                    dead.push(ptr);
                }
                batch.remove(&core.data, key.to_vec());
                deleted += 1;
            }
        }
        let done = next.is_none();
        match next {
            Some(cursor) => {
                batch.insert(
                    &core.meta,
                    meta_key(CURSOR_PREFIX, &p.tomb.id, b""),
                    cursor.clone(),
                );
                p.cursor = cursor;
            }
            None => {
                batch.remove(&core.meta, meta_key(TOMB_PREFIX, &p.tomb.id, b""));
                batch.remove(&core.meta, meta_key(CURSOR_PREFIX, &p.tomb.id, b""));
                for guard in core
                    .meta
                    .prefix(meta_key(REWRITTEN_PREFIX, &p.tomb.id, b""))
                {
                    batch.remove(&core.meta, guard.key().map_err(io)?.to_vec());
                }
            }
        }
        batch.commit().map_err(|e| {
            core.poisoned.store(true, Ordering::SeqCst);
            KvError::caused_by(KvError::IO_ERROR, "purge batch", e)
        })?;
        if let Some(log) = &self.vlog {
            let reader = log.reader();
            for p in &dead {
                reader.hint_dead(p);
            }
        }
        core.stats.purged_keys.fetch_add(deleted, Ordering::Relaxed);
        Ok(done)
    }
}

fn lock_watches(core: &Core) -> std::sync::MutexGuard<'_, super::watches::WatchRegistry> {
    match core.watches.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

type Overlay = BTreeMap<Vec<u8>, Option<Bytes>>;

/// A range cleared by a tombstone, with the keys its transaction wrote again inside it (for the
/// watches).
type ClearedRange = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

/// A transaction's mutations folded: the final value of every key it changed, and the large
/// range clears it made.
struct Built {
    overlay: Overlay,
    tombstones: Vec<Arc<Tombstone>>,
}

/// A transaction resolved (its batch not yet applied).
struct Applied {
    overlay: Overlay,
    writes: Vec<KeyRange>,
    tombstones: Vec<Arc<Tombstone>>,
    /// Whether its batch points at values appended to the value log.
    logged: bool,
}

/// A resolved transaction's batch, waiting for the value log's sync.
struct Staged {
    batch: fjall::OwnedWriteBatch,
    applied: Applied,
}

/// What a group's applied batches changed, kept for the watches registered while it ran.
#[derive(Default)]
struct Seen {
    changed: Vec<(Vec<u8>, Option<Bytes>)>,
    cleared: Vec<ClearedRange>,
}

/// Whether folding these mutations reads the store's head: an atomic operation's base (not the
/// versionstamp operations, which read nothing) or the keys a small range clear deletes one by
/// one.
fn reads_head(mutations: &[Mutation]) -> bool {
    mutations.iter().any(|m| match m {
        Mutation::ClearRange(..) => true,
        Mutation::Atomic(_, _, op) => !matches!(
            op,
            MutationType::SetVersionstampedKey | MutationType::SetVersionstampedValue
        ),
        Mutation::Set(..) | Mutation::Clear(..) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_even_if_the_clock_does_not() {
        let far_future = u64::MAX / 2;
        assert_eq!(next_version(far_future), far_future + 1);
        let v = next_version(0);
        assert!(
            v > 1_600_000_000_000_000,
            "versions follow wall-clock micros: {v}"
        );
    }

    #[test]
    fn versionstamps_order_by_version_then_position() {
        assert!(versionstamp(5, 1) < versionstamp(5, 2));
        assert!(versionstamp(5, 65535) < versionstamp(6, 0));
    }
}
