//! The FoundationDB backend (cargo feature `fdb`): the seam's transaction API over the
//! `foundationdb` crate (API version 730) against a real cluster.
//!
//! This module owns the process-wide FoundationDB network thread (booted once, on the first
//! [`FdbDatabase::open`]; stopped by [`stop_network`], the last thing the process does), the
//! translation of the seam's value types (key selectors, range options, mutation types) to the
//! crate's, and the bookkeeping the crate leaves to its caller: a commit
//! consumes the crate's transaction, so the shared handle keeps it in a slot and reports use after
//! commit or cancel the way the embedded backend does.
//!
//! Every `foundationdb::FdbError` becomes a [`KvError`] with the same code, one to one, so the retry
//! loop in `retry.rs` decides exactly as it would on FoundationDB's own predicates. Nothing here
//! retries: the crate's loop creates a fresh transaction per attempt. Nothing here is
//! Kafka-specific.

use crate::Watch;
use crate::error::{KvError, KvResult};
use crate::types::*;
use bytes::Bytes;
use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
use foundationdb::options::{self as fdb_options, ConflictRangeType, StreamingMode};
use foundationdb::{FdbError, FdbResult};
use futures::FutureExt;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// The FoundationDB API version this backend is written against (7.3).
const API_VERSION: i32 = 730;

/// Whether this process's network thread was booted (or the error that stopped it), booted by the
/// first [`FdbDatabase::open`]. FoundationDB allows its network to be set up and stopped only once
/// per process.
static NETWORK: OnceLock<Result<(), KvError>> = OnceLock::new();

/// The booted network's guard, until [`stop_network`] drops it, and whether it was stopped
/// (then no network is booted any more). The guard must be dropped before the process exits: a
/// kfdb that returned from `main` with the network thread still running was killed by SIGSEGV in
/// about one exit in ten (libfdb_c's static destructors run beside the thread; seen as `kfdb exit
/// ... wait_status(11)` in the FoundationDB-mode benchmark).
static GUARD: Mutex<Guard> = Mutex::new(Guard {
    stopped: false,
    network: None,
});

struct Guard {
    stopped: bool,
    network: Option<NetworkAutoStop>,
}

fn guard() -> MutexGuard<'static, Guard> {
    GUARD.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stopped_error() -> KvError {
    KvError::new(
        KvError::CLIENT_INVALID_OPERATION,
        "the FoundationDB network of this process was stopped",
    )
}

/// Stop this process's FoundationDB network thread and wait for it, if it was booted: the last
/// thing a process does before it exits, once nothing uses a database any more. Afterwards
/// opening a database fails, and operations on a handle still held never complete. A failure
/// of the network thread surfacing here is logged, not raised: the process is ending anyway.
pub fn stop_network() {
    let network = {
        let mut g = guard();
        g.stopped = true;
        g.network.take()
    };
    if let Some(network) = network {
        // Dropping the guard stops the network and joins its thread (which panics if the
        // thread had failed).
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(network)));
        if dropped.is_err() {
            tracing::error!("the FoundationDB network thread failed before it was stopped");
        }
    }
}

/// Our error for a FoundationDB error: the same code, FoundationDB's message as context.
fn kv_error(e: FdbError) -> KvError {
    KvError::caused_by(e.code(), e.message(), e)
}

/// Select the API version and start the network thread, once per process.
fn ensure_network() -> KvResult<()> {
    if guard().stopped {
        return Err(stopped_error());
    }
    let booted = NETWORK.get_or_init(|| {
        // Booted under the guard's lock, so a stop cannot slip in between and miss the guard.
        let mut g = guard();
        if g.stopped {
            return Err(stopped_error());
        }
        let builder = FdbApiBuilder::default()
            .set_runtime_version(API_VERSION)
            .build()
            .map_err(kv_error)?;
        // SAFETY: `boot` asks that the returned guard be dropped before the program exits: it is
        // kept in `GUARD` until `stop_network`, which the process calls last.
        g.network = Some(unsafe { builder.boot() }.map_err(kv_error)?);
        Ok(())
    });
    booted.clone()
}

/// Keys past the user keyspace are clamped to its end (`\xff`), as the embedded backend does, so a
/// bound past it reads "to the end" instead of failing with `key_outside_legal_range`.
fn clamp(key: &[u8]) -> &[u8] {
    if key > USER_KEYSPACE_END {
        USER_KEYSPACE_END
    } else {
        key
    }
}

fn selector(sel: &KeySelector) -> foundationdb::KeySelector<'_> {
    foundationdb::KeySelector::new(Cow::Borrowed(clamp(&sel.key)), sel.or_equal, sel.offset)
}

fn mutation_type(op: MutationType) -> fdb_options::MutationType {
    use fdb_options::MutationType as M;
    match op {
        MutationType::Add => M::Add,
        MutationType::BitAnd => M::BitAnd,
        MutationType::BitOr => M::BitOr,
        MutationType::BitXor => M::BitXor,
        MutationType::AppendIfFits => M::AppendIfFits,
        MutationType::Max => M::Max,
        MutationType::Min => M::Min,
        MutationType::SetVersionstampedKey => M::SetVersionstampedKey,
        MutationType::SetVersionstampedValue => M::SetVersionstampedValue,
        MutationType::ByteMin => M::ByteMin,
        MutationType::ByteMax => M::ByteMax,
        MutationType::CompareAndClear => M::CompareAndClear,
    }
}

/// A connection to a FoundationDB cluster. Clones share the connection.
#[derive(Clone)]
pub struct FdbDatabase {
    db: Arc<foundationdb::Database>,
}

impl FdbDatabase {
    /// Connect through `cluster_file` (`None`: FoundationDB's default cluster file). Boots the
    /// network thread on first use in the process.
    pub fn open(cluster_file: Option<&str>) -> KvResult<Self> {
        if cluster_file.is_some_and(|p| p.contains('\0')) {
            return Err(KvError::new(
                KvError::CLIENT_INVALID_OPERATION,
                "cluster file path contains a NUL byte",
            ));
        }
        ensure_network()?;
        let db = foundationdb::Database::new(cluster_file).map_err(kv_error)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// A new transaction.
    pub fn create_transaction(&self) -> KvResult<FdbTransaction> {
        let tr = self.db.create_trx().map_err(kv_error)?;
        Ok(FdbTransaction {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    status: Status::Open(tr),
                    wrote: false,
                }),
            }),
        })
    }
}

enum Status {
    Open(foundationdb::Transaction),
    /// `commit` owns the FoundationDB transaction now.
    Committing,
    Done,
    Cancelled,
}

impl Status {
    /// The error for using a transaction that is no longer open (the embedded backend's codes).
    fn closed_error(&self) -> KvError {
        match self {
            Status::Cancelled => KvError::new(KvError::TRANSACTION_CANCELLED, ""),
            Status::Open(_) | Status::Committing | Status::Done => KvError::new(
                KvError::CLIENT_INVALID_OPERATION,
                "transaction used after commit",
            ),
        }
    }
}

struct State {
    status: Status,
    /// Whether a mutation or write conflict range was issued: only then does the commit have a
    /// versionstamp to ask for (FoundationDB fails the request for read-only transactions).
    wrote: bool,
}

struct Inner {
    state: Mutex<State>,
}

/// A transaction on FoundationDB. Clones share the transaction.
///
/// Every FoundationDB future is created while holding the state lock and awaited after releasing it:
/// the crate's futures do not borrow the transaction, and FoundationDB keeps outstanding operations
/// safe (failing them, at worst) when the transaction is committed, cancelled or destroyed.
#[derive(Clone)]
pub struct FdbTransaction {
    inner: Arc<Inner>,
}

impl FdbTransaction {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` on the open transaction (under the lock), or report why it is not open.
    fn with_open<R>(&self, f: impl FnOnce(&foundationdb::Transaction) -> R) -> KvResult<R> {
        let st = self.state();
        match &st.status {
            Status::Open(tr) => Ok(f(tr)),
            closed => Err(closed.closed_error()),
        }
    }

    /// Issue a write on the open transaction; ignored once closed, as in the embedded backend.
    /// Invalid writes (too large, illegal key) are reported by FoundationDB at the next read or at
    /// commit.
    fn write(&self, f: impl FnOnce(&foundationdb::Transaction)) {
        let mut st = self.state();
        if let Status::Open(tr) = &st.status {
            f(tr);
            st.wrote = true;
        }
    }

    /// See [`crate::Transaction::get`].
    pub async fn get(&self, key: &[u8], snapshot: bool) -> KvResult<Option<Bytes>> {
        let read = self.with_open(|tr| tr.get(key, snapshot))?;
        let value = read.await.map_err(kv_error)?;
        Ok(value.map(Bytes::from_owner))
    }

    /// See [`crate::Transaction::get_key`].
    pub async fn get_key(&self, sel: &KeySelector, snapshot: bool) -> KvResult<Bytes> {
        let fdb_sel = selector(sel);
        let read = self.with_open(|tr| tr.get_key(&fdb_sel, snapshot))?;
        let key = read.await.map_err(kv_error)?;
        Ok(Bytes::from_owner(key))
    }

    /// See [`crate::Transaction::get_range`].
    ///
    /// With a row limit or byte target the read uses FoundationDB's `EXACT` streaming mode, so the
    /// batch honours them as the embedded backend does (`limit` rows unless the range ends first;
    /// with a byte target, about that many bytes). Without either it uses `WANT_ALL`, FoundationDB's
    /// default batch (about 80 kB). `more` is FoundationDB's: true whenever rows may remain, possibly
    /// when none do.
    pub async fn get_range(&self, range: &RangeOption, snapshot: bool) -> KvResult<RangeResult> {
        if range.limit == Some(0) {
            // FoundationDB reads a zero limit as "unlimited"; ours means "no rows".
            self.with_open(|_| ())?;
            return Ok(RangeResult::default());
        }
        let bounded = range.limit.is_some() || range.target_bytes > 0;
        let opt = foundationdb::RangeOption {
            begin: selector(&range.begin),
            end: selector(&range.end),
            limit: range.limit,
            target_bytes: range.target_bytes,
            mode: if bounded {
                StreamingMode::Exact
            } else {
                StreamingMode::WantAll
            },
            reverse: range.reverse,
            ..Default::default()
        };
        let read = self.with_open(|tr| tr.get_range(&opt, 1, snapshot))?;
        let values = read.await.map_err(kv_error)?;
        // Copied out, so a key kept by the caller does not pin the whole batch's buffer.
        let kvs = values
            .iter()
            .map(|kv| KeyValue {
                key: Bytes::copy_from_slice(kv.key()),
                value: Bytes::copy_from_slice(kv.value()),
            })
            .collect();
        Ok(RangeResult {
            kvs,
            more: values.more(),
        })
    }

    /// See [`crate::Transaction::set`].
    pub fn set(&self, key: &[u8], value: &[u8]) {
        self.write(|tr| tr.set(key, value));
    }

    /// See [`crate::Transaction::clear`].
    pub fn clear(&self, key: &[u8]) {
        self.write(|tr| tr.clear(key));
    }

    /// See [`crate::Transaction::clear_range`].
    pub fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.write(|tr| tr.clear_range(begin, clamp(end)));
    }

    /// See [`crate::Transaction::atomic_op`].
    pub fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        self.write(|tr| tr.atomic_op(key, param, mutation_type(op)));
    }

    /// See [`crate::Transaction::add_read_conflict_range`].
    pub fn add_read_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        self.add_conflict(ConflictRangeType::Read, begin, end)
    }

    /// See [`crate::Transaction::add_write_conflict_range`].
    pub fn add_write_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        self.add_conflict(ConflictRangeType::Write, begin, end)
    }

    fn add_conflict(&self, ty: ConflictRangeType, begin: &[u8], end: &[u8]) -> KvResult<()> {
        if begin > end {
            return Err(KvError::new(
                KvError::INVERTED_RANGE,
                "conflict range begin > end",
            ));
        }
        let (begin, end) = (clamp(begin), clamp(end));
        let mut st = self.state();
        let added: FdbResult<()> = match &st.status {
            Status::Open(tr) => tr.add_conflict_range(begin, end, ty),
            closed => return Err(closed.closed_error()),
        };
        added.map_err(kv_error)?;
        if matches!(ty, ConflictRangeType::Write) {
            // A write conflict range alone makes FoundationDB commit (with a version and stamp).
            st.wrote = true;
        }
        Ok(())
    }

    /// See [`crate::Transaction::watch`]. FoundationDB's watch: it outlives the transaction, fails
    /// with the commit's error when the commit fails, and dropping it cancels it.
    pub fn watch(&self, key: &[u8]) -> Watch {
        match self.with_open(|tr| tr.watch(key)) {
            Ok(watch) => watch.map(|r| r.map_err(kv_error)).boxed(),
            Err(e) => futures::future::ready(Err(e)).boxed(),
        }
    }

    /// See [`crate::Transaction::get_read_version`].
    pub async fn get_read_version(&self) -> KvResult<i64> {
        let read = self.with_open(|tr| tr.get_read_version())?;
        read.await.map_err(kv_error)
    }

    /// See [`crate::Transaction::cancel`].
    pub fn cancel(&self) {
        let mut st = self.state();
        match std::mem::replace(&mut st.status, Status::Cancelled) {
            // Outstanding operations (watches included) fail with transaction_cancelled.
            Status::Open(tr) => drop(tr.cancel()),
            // Committing, committed or already cancelled: nothing to cancel.
            other => st.status = other,
        }
    }

    /// See [`crate::Transaction::commit`].
    pub async fn commit(&self) -> KvResult<CommitInfo> {
        let (commit, stamp) = {
            let mut st = self.state();
            let tr = match std::mem::replace(&mut st.status, Status::Committing) {
                Status::Open(tr) => tr,
                closed => {
                    let e = closed.closed_error();
                    st.status = closed;
                    return Err(e);
                }
            };
            // Must be asked for before the commit; it resolves when the commit does.
            let stamp = st.wrote.then(|| tr.get_versionstamp());
            (tr.commit(), stamp)
        };
        let outcome = commit.await;
        self.state().status = Status::Done;
        let committed = outcome.map_err(|e| kv_error(FdbError::from(e)))?;
        // -1 when nothing was written: FoundationDB reports read-only commits that way itself.
        let version = committed.committed_version().map_err(kv_error)?;
        let versionstamp = match stamp {
            Some(stamp) if version >= 0 => match stamp.await {
                Ok(bytes) => Some(<[u8; 10]>::try_from(&bytes[..]).map_err(|_| {
                    KvError::new(
                        KvError::INTERNAL_ERROR,
                        format!("versionstamp of {} bytes, expected 10", bytes.len()),
                    )
                })?),
                Err(e) if e.code() == KvError::NO_COMMIT_VERSION => None,
                Err(e) => return Err(kv_error(e)),
            },
            _ => None,
        };
        // The committed transaction is released only after its versionstamp was read.
        drop(committed);
        Ok(CommitInfo {
            version,
            versionstamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_OPS: [MutationType; 12] = [
        MutationType::Add,
        MutationType::BitAnd,
        MutationType::BitOr,
        MutationType::BitXor,
        MutationType::AppendIfFits,
        MutationType::Max,
        MutationType::Min,
        MutationType::SetVersionstampedKey,
        MutationType::SetVersionstampedValue,
        MutationType::ByteMin,
        MutationType::ByteMax,
        MutationType::CompareAndClear,
    ];

    #[test]
    fn mutation_types_keep_their_fdb_codes() {
        for op in ALL_OPS {
            assert_eq!(i64::from(mutation_type(op).code()), op as i64, "{op:?}");
        }
    }

    #[test]
    fn bounds_past_the_user_keyspace_are_clamped() {
        assert_eq!(clamp(b"a"), b"a");
        assert_eq!(clamp(b"\xff"), b"\xff");
        assert_eq!(clamp(b"\xff\x00"), b"\xff");
        let past_end = KeySelector::first_greater_than(b"\xff\xff".to_vec());
        let sel = selector(&past_end);
        assert_eq!(
            (sel.key(), sel.or_equal(), sel.offset()),
            (&b"\xff"[..], true, 1)
        );
    }

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time only: every future this backend returns can cross a `tokio::spawn`.
    fn futures_are_send(tx: &FdbTransaction, range: &RangeOption, sel: &KeySelector) {
        assert_send(&tx.get(b"k", false));
        assert_send(&tx.get_key(sel, false));
        assert_send(&tx.get_range(range, false));
        assert_send(&tx.get_read_version());
        assert_send(&tx.commit());
        assert_send(&tx.watch(b"k"));
    }

    #[test]
    fn handles_and_futures_are_thread_safe() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        shared::<FdbDatabase>();
        shared::<FdbTransaction>();
        let _ = futures_are_send;
    }
}
