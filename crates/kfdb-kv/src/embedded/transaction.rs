//! A transaction of the embedded store: FoundationDB's client-side transaction.
//!
//! Reads take a read version on first use (the newest durable commit) and read from the fjall
//! snapshot of that version, merged with this transaction's own writes. Non-snapshot reads record
//! read-conflict ranges; writes are buffered with their write-conflict ranges and checked against
//! FoundationDB's limits. `commit` hands everything to the pipeline and waits until it is durable.

use super::pipeline::{CommitRequest, Mutation, PipelineMsg};
use super::resolver::KeyRange;
use super::tombstones::Piece;
use super::watches::WatchSender;
use super::writes::{StoreRead, WriteMap};
use super::{EmbeddedDatabase, ReadView};
use crate::Watch;
use crate::atomic;
use crate::error::{KvError, KvResult};
use crate::types::*;
use bytes::Bytes;
use fjall::Readable;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Open,
    Committing,
    Done,
    Cancelled,
}

struct State {
    status: Status,
    read: Option<(ReadView, Instant)>,
    writes: WriteMap,
    mutations: Vec<Mutation>,
    read_conflicts: Vec<KeyRange>,
    write_conflicts: Vec<KeyRange>,
    /// Bytes of mutations and conflict ranges, FoundationDB's measure of transaction size.
    size: usize,
    /// The first invalid write (too large, illegal key): reported at the next read or at commit.
    deferred: Option<KvError>,
    watches: Vec<(Vec<u8>, WatchSender)>,
}

struct Inner {
    db: EmbeddedDatabase,
    state: Mutex<State>,
}

/// A transaction on the embedded store. Clones share the transaction.
#[derive(Clone)]
pub struct EmbeddedTransaction {
    inner: Arc<Inner>,
}

impl ReadView {
    /// The stored rows of `[begin, end)`, ignoring range clears.
    fn raw_range<'a>(
        &'a self,
        begin: &[u8],
        end: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a> {
        let iter = self
            .snapshot
            .range(&self.keyspace, begin.to_vec()..end.to_vec());
        let row = |g: fjall::Guard| {
            let (k, v) = g.into_inner().map_err(read_error)?;
            let v = self.resolve(Bytes::from(v)).map_err(logged_read_error)?;
            Ok((Bytes::from(k), v))
        };
        if reverse {
            Box::new(iter.rev().map(row))
        } else {
            Box::new(iter.map(row))
        }
    }

    fn raw_get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
        self.stored_get(key)?
            .map(|v| self.resolve(v).map_err(logged_read_error))
            .transpose()
    }

    /// `key`'s value as fjall holds it (a logged value's pointer not followed).
    fn stored_get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
        self.snapshot
            .get(&self.keyspace, key)
            .map(|v| v.map(Bytes::from))
            .map_err(read_error)
    }
}

impl StoreRead for ReadView {
    fn get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
        // Hidden first: a cleared key's logged value may already be collected.
        let Some(stored) = self.stored_get(key)? else {
            return Ok(None);
        };
        if self.tombstones.hides(key, self.version) {
            return Ok(None);
        }
        self.resolve(stored).map(Some).map_err(logged_read_error)
    }

    fn range<'a>(
        &'a self,
        begin: &[u8],
        end: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a> {
        if self.tombstones.is_empty() {
            return self.raw_range(begin, end, reverse);
        }
        // Around pending range clears: the store's rows outside them, and inside them only the
        // keys written after the clear (read one by one).
        let mut pieces = self.tombstones.pieces(begin, end, self.version);
        if reverse {
            pieces.reverse();
        }
        Box::new(pieces.into_iter().flat_map(
            move |piece| -> Box<dyn Iterator<Item = KvResult<(Bytes, Bytes)>> + 'a> {
                match piece {
                    Piece::Span(b, e) => self.raw_range(&b, &e, reverse),
                    Piece::Keys(mut keys) => {
                        if reverse {
                            keys.reverse();
                        }
                        Box::new(
                            keys.into_iter()
                                .filter_map(move |k| match self.raw_get(&k) {
                                    Ok(Some(v)) => Some(Ok((Bytes::from(k), v))),
                                    Ok(None) => None,
                                    Err(e) => Some(Err(e)),
                                }),
                        )
                    }
                }
            },
        ))
    }
}

/// Run `f`, a read that may wait on the disk, without holding up the other tasks of the tokio
/// worker it runs on: on a multi-threaded runtime the worker first hands them to another thread
/// (`block_in_place`). Elsewhere (a current-thread runtime, no runtime) it just runs.
fn blocking_read<T>(offload: bool, f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if offload && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn read_error(e: fjall::Error) -> KvError {
    KvError::caused_by(KvError::IO_ERROR, "read", e)
}

/// A value the log could not give back (segment gone, bytes damaged): a store fault.
fn logged_read_error(e: std::io::Error) -> KvError {
    KvError::caused_by(KvError::IO_ERROR, "read a logged value", e)
}

fn check_readable_key(key: &[u8]) -> KvResult<()> {
    if key.len() > MAX_KEY_SIZE {
        return Err(KvError::new(
            KvError::KEY_TOO_LARGE,
            format!("{} bytes", key.len()),
        ));
    }
    if key >= USER_KEYSPACE_END {
        return Err(KvError::new(
            KvError::KEY_OUTSIDE_LEGAL_RANGE,
            "key in \\xff system keyspace",
        ));
    }
    Ok(())
}

fn check_write_key(key: &[u8]) -> KvResult<()> {
    if key.len() > MAX_KEY_SIZE {
        return Err(KvError::new(
            KvError::KEY_TOO_LARGE,
            format!("key of {} bytes (limit {MAX_KEY_SIZE})", key.len()),
        ));
    }
    if key >= USER_KEYSPACE_END {
        return Err(KvError::new(
            KvError::KEY_OUTSIDE_LEGAL_RANGE,
            "key in \\xff system keyspace",
        ));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> KvResult<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(KvError::new(
            KvError::VALUE_TOO_LARGE,
            format!("value of {} bytes (limit {MAX_VALUE_SIZE})", value.len()),
        ));
    }
    Ok(())
}

fn clamp_end(end: &[u8]) -> &[u8] {
    if end > USER_KEYSPACE_END {
        USER_KEYSPACE_END
    } else {
        end
    }
}

impl State {
    fn check_open(&self) -> KvResult<()> {
        match self.status {
            Status::Open => Ok(()),
            Status::Cancelled => Err(KvError::new(KvError::TRANSACTION_CANCELLED, "")),
            Status::Committing | Status::Done => Err(KvError::new(
                KvError::CLIENT_INVALID_OPERATION,
                "transaction used after commit",
            )),
        }
    }

    /// Ready to read: open, no deferred error, a read view not older than 5 s.
    fn view(&mut self, db: &EmbeddedDatabase) -> KvResult<ReadView> {
        self.check_open()?;
        if let Some(e) = &self.deferred {
            return Err(e.clone());
        }
        let (view, at) = self
            .read
            .get_or_insert_with(|| (db.core().current_view(), Instant::now()));
        if at.elapsed() > MAX_TRANSACTION_AGE {
            return Err(KvError::new(
                KvError::TRANSACTION_TOO_OLD,
                "read version older than 5 s",
            ));
        }
        Ok(view.clone())
    }

    fn add_size(&mut self, n: usize) {
        self.size += n;
        if self.size > MAX_TRANSACTION_SIZE && self.deferred.is_none() {
            self.deferred = Some(KvError::new(
                KvError::TRANSACTION_TOO_LARGE,
                format!(
                    "transaction of {} bytes (limit {MAX_TRANSACTION_SIZE})",
                    self.size
                ),
            ));
        }
    }

    fn defer(&mut self, result: KvResult<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                if self.deferred.is_none() {
                    self.deferred = Some(e);
                }
                false
            }
        }
    }

    fn conflict(&mut self, write: bool, begin: Vec<u8>, end: Vec<u8>) {
        self.add_size(begin.len() + end.len());
        if write {
            self.write_conflicts.push((begin, end));
        } else {
            self.read_conflicts.push((begin, end));
        }
    }

    /// Resolve a selector against this transaction's view; returns the key and the range of keys
    /// the answer depended on.
    fn resolve(&self, view: &ReadView, sel: &KeySelector) -> KvResult<(Bytes, KeyRange)> {
        if sel.offset >= 1 {
            let start = if sel.or_equal {
                key_after(&sel.key)
            } else {
                sel.key.clone()
            };
            let start = start.min(USER_KEYSPACE_END.to_vec());
            let mut rows = self.writes.range(view, &start, USER_KEYSPACE_END, false);
            let found = rows.nth(sel.offset as usize - 1).transpose()?;
            Ok(match found {
                Some((k, _)) => {
                    let end = key_after(&k);
                    (k, (start, end))
                }
                None => (
                    Bytes::from_static(USER_KEYSPACE_END),
                    (start, USER_KEYSPACE_END.to_vec()),
                ),
            })
        } else {
            let end = if sel.or_equal {
                key_after(&sel.key)
            } else {
                sel.key.clone()
            };
            let end = clamp_end(&end).to_vec();
            let mut rows = self.writes.range(view, b"", &end, true);
            let found = rows.nth((-(sel.offset as i64)) as usize).transpose()?;
            Ok(match found {
                Some((k, _)) => {
                    let begin = k.to_vec();
                    (k, (begin, end))
                }
                None => (Bytes::new(), (Vec::new(), end)),
            })
        }
    }

    fn bound(
        &self,
        view: &ReadView,
        sel: &KeySelector,
        snapshot: bool,
    ) -> KvResult<(Vec<u8>, Option<KeyRange>)> {
        match sel.as_plain_begin() {
            Some(k) => Ok((k.to_vec(), None)),
            None => {
                let (k, depends) = self.resolve(view, sel)?;
                Ok((k.to_vec(), (!snapshot).then_some(depends)))
            }
        }
    }
}

impl EmbeddedTransaction {
    pub(crate) fn new(db: EmbeddedDatabase) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                state: Mutex::new(State {
                    status: Status::Open,
                    read: None,
                    writes: WriteMap::default(),
                    mutations: Vec::new(),
                    read_conflicts: Vec::new(),
                    write_conflicts: Vec::new(),
                    size: 0,
                    deferred: None,
                    watches: Vec::new(),
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// See [`crate::Transaction::get`].
    pub async fn get(&self, key: &[u8], snapshot: bool) -> KvResult<Option<Bytes>> {
        check_readable_key(key)?;
        let mut st = self.state();
        let view = st.view(&self.inner.db)?;
        let value = st.writes.get(&view, key)?;
        if !snapshot {
            st.conflict(false, key.to_vec(), key_after(key));
        }
        Ok(value)
    }

    /// See [`crate::Transaction::get_key`].
    pub async fn get_key(&self, selector: &KeySelector, snapshot: bool) -> KvResult<Bytes> {
        let mut st = self.state();
        let view = st.view(&self.inner.db)?;
        let (key, (b, e)) = st.resolve(&view, selector)?;
        if !snapshot {
            st.conflict(false, b, e);
        }
        Ok(key)
    }

    /// See [`crate::Transaction::get_range`]. The read runs without holding up the tokio
    /// worker's other tasks (see [`blocking_read`]): a range read may touch the disk for megabytes.
    pub async fn get_range(&self, range: &RangeOption, snapshot: bool) -> KvResult<RangeResult> {
        // Small reads (a few rows, a small byte target) stay inline: handing the worker over costs
        // more than they take.
        let large = range.target_bytes >= 64 * 1024
            || (range.target_bytes == 0 && range.limit.is_none_or(|l| l > 100));
        let offload = large && self.inner.db.core().options.offload_reads;
        blocking_read(offload, || self.get_range_now(range, snapshot))
    }

    fn get_range_now(&self, range: &RangeOption, snapshot: bool) -> KvResult<RangeResult> {
        let mut st = self.state();
        let view = st.view(&self.inner.db)?;
        let (begin, begin_dep) = st.bound(&view, &range.begin, snapshot)?;
        let (end, end_dep) = st.bound(&view, &range.end, snapshot)?;
        let end = clamp_end(&end).to_vec();
        if let Some((b, e)) = begin_dep {
            st.conflict(false, b, e);
        }
        if let Some((b, e)) = end_dep {
            st.conflict(false, b, e);
        }
        let mut result = RangeResult::default();
        if begin >= end || range.limit == Some(0) {
            return Ok(result);
        }
        let limit = range.limit.unwrap_or(usize::MAX);
        let mut bytes = 0usize;
        {
            let mut rows = st
                .writes
                .range(&view, &begin, &end, range.reverse)
                .peekable();
            while let Some(row) = rows.next() {
                let (key, value) = row?;
                bytes += key.len() + value.len();
                result.kvs.push(KeyValue { key, value });
                let full = result.kvs.len() >= limit
                    || (range.target_bytes > 0 && bytes >= range.target_bytes);
                if full {
                    result.more = rows.peek().is_some();
                    break;
                }
            }
        }
        if !snapshot {
            let (b, e) = match (result.more, result.kvs.last(), range.reverse) {
                (true, Some(last), false) => (begin, key_after(&last.key)),
                (true, Some(last), true) => (last.key.to_vec(), end),
                _ => (begin, end),
            };
            st.conflict(false, b, e);
        }
        Ok(result)
    }

    /// See [`crate::Transaction::set`].
    pub fn set(&self, key: &[u8], value: &[u8]) {
        self.set_bytes(key, Bytes::copy_from_slice(value));
    }

    /// See [`crate::Transaction::set_bytes`]: `value` is kept as it is, not copied.
    pub fn set_bytes(&self, key: &[u8], value: Bytes) {
        let mut st = self.state();
        if st.check_open().is_err() || !st.defer(check_write_key(key).and(check_value(&value))) {
            return;
        }
        st.add_size(key.len() + value.len());
        st.writes.set(key, value.clone());
        st.mutations
            .push(Mutation::Set(Bytes::copy_from_slice(key), value));
        st.conflict(true, key.to_vec(), key_after(key));
    }

    /// See [`crate::Transaction::clear`].
    pub fn clear(&self, key: &[u8]) {
        let mut st = self.state();
        if st.check_open().is_err() || !st.defer(check_write_key(key)) {
            return;
        }
        st.add_size(key.len());
        st.writes.clear(key);
        st.mutations
            .push(Mutation::Clear(Bytes::copy_from_slice(key)));
        st.conflict(true, key.to_vec(), key_after(key));
    }

    /// See [`crate::Transaction::clear_range`].
    pub fn clear_range(&self, begin: &[u8], end: &[u8]) {
        let mut st = self.state();
        if st.check_open().is_err() {
            return;
        }
        let end = clamp_end(end);
        if begin > end {
            st.defer(Err(KvError::new(
                KvError::INVERTED_RANGE,
                "clear_range begin > end",
            )));
            return;
        }
        if begin == end {
            return;
        }
        st.add_size(begin.len() + end.len());
        st.writes.clear_range(begin, end);
        st.mutations.push(Mutation::ClearRange(
            Bytes::copy_from_slice(begin),
            Bytes::copy_from_slice(end),
        ));
        st.conflict(true, begin.to_vec(), end.to_vec());
    }

    /// See [`crate::Transaction::atomic_op`].
    pub fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        let mut st = self.state();
        if st.check_open().is_err() {
            return;
        }
        let valid = match op {
            MutationType::SetVersionstampedKey => atomic::split_versionstamp_template(key)
                .and_then(|(body, _)| check_write_key(body))
                .and(check_value(param)),
            MutationType::SetVersionstampedValue => check_write_key(key).and(
                atomic::split_versionstamp_template(param).and_then(|(body, _)| check_value(body)),
            ),
            _ => check_write_key(key).and(check_value(param)),
        };
        if !st.defer(valid) {
            return;
        }
        let (k, p) = (Bytes::copy_from_slice(key), Bytes::copy_from_slice(param));
        st.add_size(key.len() + param.len());
        match op {
            // The final key is unknown until commit; its conflict range is added then.
            MutationType::SetVersionstampedKey => {}
            MutationType::SetVersionstampedValue => {
                st.writes.set_unreadable(key);
                st.conflict(true, key.to_vec(), key_after(key));
            }
            _ => {
                st.writes.atomic(key, op, p.clone());
                st.conflict(true, key.to_vec(), key_after(key));
            }
        }
        st.mutations.push(Mutation::Atomic(k, p, op));
    }

    /// See [`crate::Transaction::add_read_conflict_range`].
    pub fn add_read_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        self.add_conflict(false, begin, end)
    }

    /// See [`crate::Transaction::add_write_conflict_range`].
    pub fn add_write_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        self.add_conflict(true, begin, end)
    }

    fn add_conflict(&self, write: bool, begin: &[u8], end: &[u8]) -> KvResult<()> {
        let mut st = self.state();
        st.check_open()?;
        if begin > end {
            return Err(KvError::new(
                KvError::INVERTED_RANGE,
                "conflict range begin > end",
            ));
        }
        // No read version is taken here: as on FoundationDB, a transaction that has none by commit
        // time gets the newest one then, so its read conflict ranges cannot conflict.
        st.conflict(write, begin.to_vec(), clamp_end(end).to_vec());
        Ok(())
    }

    /// See [`crate::Transaction::watch`].
    pub fn watch(&self, key: &[u8]) -> Watch {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state();
        match st.check_open().and(check_readable_key(key)) {
            Ok(()) => st.watches.push((key.to_vec(), tx)),
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(KvError::new(
                    KvError::OPERATION_CANCELLED,
                    "watching transaction did not commit",
                ))
            })
        })
    }

    /// See [`crate::Transaction::get_read_version`].
    pub async fn get_read_version(&self) -> KvResult<i64> {
        let mut st = self.state();
        Ok(st.view(&self.inner.db)?.version as i64)
    }

    /// See [`crate::Transaction::cancel`].
    pub fn cancel(&self) {
        let mut st = self.state();
        if st.status == Status::Open {
            st.status = Status::Cancelled;
            for (_, w) in st.watches.drain(..) {
                let _ = w.send(Err(KvError::new(KvError::TRANSACTION_CANCELLED, "")));
            }
        }
    }

    /// See [`crate::Transaction::commit`].
    pub async fn commit(&self) -> KvResult<CommitInfo> {
        let (request, reply, watches) = {
            let mut st = self.state();
            st.check_open()?;
            let watches = self.watch_expectations(&mut st);
            if let Some(e) = st.deferred.clone() {
                st.status = Status::Done;
                fail_watches(watches, &e);
                return Err(e);
            }
            if st.mutations.is_empty() && st.write_conflicts.is_empty() {
                st.status = Status::Done;
                self.register_watches(watches);
                return Ok(CommitInfo {
                    version: -1,
                    versionstamp: None,
                });
            }
            st.status = Status::Committing;
            let (tx, rx) = oneshot::channel();
            let request = CommitRequest {
                read: st.read.as_ref().map(|(v, at)| (v.version, *at)),
                read_conflicts: std::mem::take(&mut st.read_conflicts),
                write_conflicts: std::mem::take(&mut st.write_conflicts),
                mutations: std::mem::take(&mut st.mutations),
                reply: tx,
            };
            (request, rx, watches)
        };
        let outcome = match self.inner.db.submit(PipelineMsg::Commit(request)) {
            Ok(()) => reply.await.unwrap_or_else(|_| {
                Err(KvError::new(
                    KvError::COMMIT_UNKNOWN_RESULT,
                    "commit thread stopped",
                ))
            }),
            Err(e) => Err(e),
        };
        self.state().status = Status::Done;
        match outcome {
            Ok(info) => {
                let latency = self.inner.db.core().options.commit_latency;
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                self.register_watches(watches);
                Ok(info)
            }
            Err(e) => {
                fail_watches(watches, &e);
                Err(e)
            }
        }
    }

    /// The value each watched key has in this transaction's view (`Err`: not knowable here).
    fn watch_expectations(
        &self,
        st: &mut State,
    ) -> Vec<(Vec<u8>, Option<Option<Bytes>>, WatchSender)> {
        let watches = std::mem::take(&mut st.watches);
        if watches.is_empty() {
            return Vec::new();
        }
        let view = st
            .read
            .as_ref()
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| self.inner.db.core().current_view());
        watches
            .into_iter()
            .map(|(k, s)| {
                let seen = if st.writes.has_entry(&k) || st.read.is_some() {
                    st.writes.get(&view, &k).ok()
                } else {
                    None
                };
                (k, seen, s)
            })
            .collect()
    }

    fn register_watches(&self, watches: Vec<(Vec<u8>, Option<Option<Bytes>>, WatchSender)>) {
        if watches.is_empty() {
            return;
        }
        let core = self.inner.db.core();
        let mut registry = match core.watches.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (key, seen, notify) in watches {
            let current = match core.head_get(&key) {
                Ok(v) => v,
                Err(e) => {
                    let _ = notify.send(Err(e));
                    continue;
                }
            };
            // Without a value of its own, the watch expects what is committed now.
            let expected = seen.unwrap_or_else(|| current.clone());
            registry.register(key, expected, current, notify);
        }
    }
}

fn fail_watches(watches: Vec<(Vec<u8>, Option<Option<Bytes>>, WatchSender)>, e: &KvError) {
    for (_, _, w) in watches {
        let _ = w.send(Err(e.clone()));
    }
}
