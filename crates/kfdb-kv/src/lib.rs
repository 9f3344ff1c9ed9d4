//! # kfdb-kv: the storage seam
//!
//! FoundationDB's transaction model, and nothing Kafka-specific: reads at a read version (`get`,
//! `get_key` with key selectors, `get_range`), buffered writes (`set`, `clear`, `clear_range`, atomic
//! operations, versionstamped keys and values), conflict ranges, watches, and a commit that returns
//! the commit version and versionstamp. [`Database::run`] is the retry loop every caller uses.
//!
//! Two backends sit behind the same [`Database`] and [`Transaction`] types:
//! - `embedded` (always built): a durable single-process store on fjall with FoundationDB's
//!   semantics (serializable optimistic concurrency, 5 s read window, group-committed fsync) and
//!   FoundationDB's limits, so code that passes here fits FoundationDB.
//! - `fdb` (cargo feature `fdb`): the `foundationdb` crate against a real cluster.
//!
//! Layers above (kfdb-log) are written once against this API and run on both. Keys are plain bytes;
//! callers build them with the FoundationDB tuple layer re-exported as [`tuple`], so both backends
//! store byte-identical keys.
//!
//! This crate must not know about sockets, Kafka, or any key layout.

mod atomic;
pub mod embedded;
mod error;
#[cfg(feature = "faults")]
pub mod faults;
#[cfg(feature = "fdb")]
pub mod fdb;
mod retry;
mod types;

pub use error::{KvError, KvResult, TxError};
pub use foundationdb_tuple as tuple;
pub use retry::RunOptions;
pub use types::*;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use std::future::Future;

/// A watch on one key: resolves once a commit after the watching transaction changes the key's value.
/// Dropping it cancels the watch.
pub type Watch = BoxFuture<'static, KvResult<()>>;

/// A handle to a database on either backend. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Database {
    backend: DatabaseBackend,
    run_options: RunOptions,
    /// Retries made by `run` (all clones share it).
    retries: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Time each commit of `run` took, until durable or failed (all clones share it).
    commit_seconds: prometheus::Histogram,
    /// Faults to inject into every transaction (tests only).
    #[cfg(feature = "faults")]
    faults: Option<std::sync::Arc<faults::Faults>>,
}

/// The histogram `run` records its commits in: 50 µs to 10 s.
fn commit_histogram() -> KvResult<prometheus::Histogram> {
    let opts = prometheus::HistogramOpts::new(
        "kfdb_store_commit_duration_seconds",
        "Time from commit to durable (or failed), per store transaction committed by the retry loop",
    )
    .buckets(vec![
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        10.0,
    ]);
    prometheus::Histogram::with_opts(opts)
        .map_err(|e| KvError::new(KvError::INTERNAL_ERROR, format!("commit histogram: {e}")))
}

#[derive(Clone)]
enum DatabaseBackend {
    Embedded(embedded::EmbeddedDatabase),
    #[cfg(feature = "fdb")]
    Fdb(fdb::FdbDatabase),
}

/// One transaction. Cheap to clone (clones share the transaction): the retry closure receives a
/// clone it may move into an `async` block.
#[derive(Clone)]
pub struct Transaction(
    TransactionBackend,
    #[cfg(feature = "faults")] Option<std::sync::Arc<faults::Faults>>,
);

#[derive(Clone)]
enum TransactionBackend {
    Embedded(embedded::EmbeddedTransaction),
    #[cfg(feature = "fdb")]
    Fdb(fdb::FdbTransaction),
}

/// Call the same method on whichever backend a transaction belongs to.
macro_rules! on_backend {
    ($self:expr, $t:ident => $body:expr) => {
        match &$self.0 {
            TransactionBackend::Embedded($t) => $body,
            #[cfg(feature = "fdb")]
            TransactionBackend::Fdb($t) => $body,
        }
    };
}

/// Stop this process's FoundationDB network thread, if a FoundationDB database was opened: call it
/// last, after every database handle is dropped (see `fdb::stop_network`). Nothing to do for the
/// embedded store or without the `fdb` feature.
pub fn stop_fdb_network() {
    #[cfg(feature = "fdb")]
    fdb::stop_network();
}

impl Database {
    /// Open (or create) the embedded store in `path`.
    pub fn open_embedded(
        path: impl AsRef<std::path::Path>,
        options: embedded::EmbeddedOptions,
    ) -> KvResult<Self> {
        let db = embedded::EmbeddedDatabase::open(path.as_ref(), options)?;
        Ok(Self {
            backend: DatabaseBackend::Embedded(db),
            run_options: RunOptions::default(),
            retries: Default::default(),
            commit_seconds: commit_histogram()?,
            #[cfg(feature = "faults")]
            faults: None,
        })
    }

    /// Connect to FoundationDB through `cluster_file` (`None`: the default cluster file).
    #[cfg(feature = "fdb")]
    pub fn open_fdb(cluster_file: Option<&str>) -> KvResult<Self> {
        let db = fdb::FdbDatabase::open(cluster_file)?;
        Ok(Self {
            backend: DatabaseBackend::Fdb(db),
            run_options: RunOptions::default(),
            retries: Default::default(),
            commit_seconds: commit_histogram()?,
            #[cfg(feature = "faults")]
            faults: None,
        })
    }

    /// The same database with `plan`'s faults injected into every transaction (tests only).
    #[cfg(feature = "faults")]
    pub fn with_faults(mut self, plan: faults::FaultPlan) -> Self {
        self.faults = Some(std::sync::Arc::new(faults::Faults::new(plan)));
        self
    }

    /// How often each kind of injected fault fired so far (empty without a plan).
    #[cfg(feature = "faults")]
    pub fn fault_counts(&self) -> Vec<(&'static str, u64)> {
        self.faults.as_ref().map(|f| f.counts()).unwrap_or_default()
    }

    /// The same database with other retry-loop settings for [`Database::run`].
    pub fn with_run_options(mut self, options: RunOptions) -> Self {
        self.run_options = options;
        self
    }

    /// The retry-loop settings in use.
    pub fn run_options(&self) -> &RunOptions {
        &self.run_options
    }

    /// How many times `run` has retried a transaction (conflicts, too old, unknown results).
    pub fn retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Commit times of the retry loop, for the broker's metrics endpoint to register.
    pub fn commit_seconds(&self) -> &prometheus::Histogram {
        &self.commit_seconds
    }

    pub(crate) fn count_retry(&self) {
        self.retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The embedded backend, for its test and tuning hooks.
    pub fn as_embedded(&self) -> Option<&embedded::EmbeddedDatabase> {
        match &self.backend {
            DatabaseBackend::Embedded(db) => Some(db),
            #[cfg(feature = "fdb")]
            DatabaseBackend::Fdb(_) => None,
        }
    }

    /// True once the store can no longer commit until the process restarts (the embedded
    /// backend after a failed write or fsync; never for FoundationDB, whose client recovers).
    pub fn has_failed(&self) -> bool {
        match &self.backend {
            DatabaseBackend::Embedded(db) => db.has_failed(),
            #[cfg(feature = "fdb")]
            DatabaseBackend::Fdb(_) => false,
        }
    }

    /// Which backend this is: `"embedded"` or `"fdb"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            DatabaseBackend::Embedded(_) => "embedded",
            #[cfg(feature = "fdb")]
            DatabaseBackend::Fdb(_) => "fdb",
        }
    }

    /// A new transaction. Most callers want [`Database::run`] instead.
    pub fn create_transaction(&self) -> KvResult<Transaction> {
        Ok(Transaction(
            match &self.backend {
                DatabaseBackend::Embedded(db) => {
                    TransactionBackend::Embedded(db.create_transaction())
                }
                #[cfg(feature = "fdb")]
                DatabaseBackend::Fdb(db) => TransactionBackend::Fdb(db.create_transaction()?),
            },
            #[cfg(feature = "faults")]
            self.faults.clone(),
        ))
    }

    /// Run `f` in a transaction and commit it, retrying retryable errors (conflicts, too old,
    /// maybe-committed) with backoff until the retry limit or timeout of [`RunOptions`].
    ///
    /// `f` may run more than once: it must be idempotent, or consult [`MaybeCommitted`].
    pub async fn run<T, E, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(Transaction, MaybeCommitted) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: TxError,
    {
        retry::run(self, f).await.map(|(value, _)| value)
    }

    /// Like [`Database::run`], and also returns the commit's version and versionstamp.
    pub async fn run_versioned<T, E, F, Fut>(&self, f: F) -> Result<(T, CommitInfo), E>
    where
        F: FnMut(Transaction, MaybeCommitted) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: TxError,
    {
        retry::run(self, f).await
    }
}

impl Transaction {
    /// The value of `key`, or `None`. Adds a read conflict on `key` unless `snapshot`.
    pub async fn get(&self, key: &[u8], snapshot: bool) -> KvResult<Option<Bytes>> {
        self.before_read().await?;
        on_backend!(self, t => t.get(key, snapshot).await)
    }

    /// The key a selector resolves to (`""` or `\xff` past either end of the keyspace).
    pub async fn get_key(&self, selector: &KeySelector, snapshot: bool) -> KvResult<Bytes> {
        self.before_read().await?;
        on_backend!(self, t => t.get_key(selector, snapshot).await)
    }

    /// One batch of a range read: at most `range.limit` rows, about `range.target_bytes`, with
    /// `more` set when the range holds further rows. Adds a read conflict over what it read unless
    /// `snapshot`.
    pub async fn get_range(&self, range: &RangeOption, snapshot: bool) -> KvResult<RangeResult> {
        self.before_read().await?;
        on_backend!(self, t => t.get_range(range, snapshot).await)
    }

    /// Every row of a range, read batch by batch as the stream is polled (bounded memory).
    pub fn get_ranges(
        &self,
        range: RangeOption,
        snapshot: bool,
    ) -> impl Stream<Item = KvResult<Vec<KeyValue>>> + Send + 'static {
        retry::range_stream(self.clone(), range, snapshot)
    }

    /// Every row of a range collected into one vector (for small ranges).
    pub async fn get_range_all(
        &self,
        range: RangeOption,
        snapshot: bool,
    ) -> KvResult<Vec<KeyValue>> {
        use futures::TryStreamExt;
        let batches: Vec<Vec<KeyValue>> = self.get_ranges(range, snapshot).try_collect().await?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// Set `key` to `value`. Size errors surface at the next read or at commit, as in FoundationDB.
    pub fn set(&self, key: &[u8], value: &[u8]) {
        on_backend!(self, t => t.set(key, value))
    }

    /// [`Transaction::set`] with a value the caller already owns as [`Bytes`]: the embedded
    /// backend keeps it without copying (record chunks, most of what kfdb writes, are built for
    /// the store and never used again by their builder); FoundationDB's client copies it as ever.
    pub fn set_bytes(&self, key: &[u8], value: Bytes) {
        match &self.0 {
            TransactionBackend::Embedded(t) => t.set_bytes(key, value),
            #[cfg(feature = "fdb")]
            TransactionBackend::Fdb(t) => t.set(key, &value),
        }
    }

    /// Remove `key`.
    pub fn clear(&self, key: &[u8]) {
        on_backend!(self, t => t.clear(key))
    }

    /// Remove every key in `[begin, end)`.
    pub fn clear_range(&self, begin: &[u8], end: &[u8]) {
        on_backend!(self, t => t.clear_range(begin, end))
    }

    /// Apply an atomic operation to `key` at commit; adds no read conflict.
    pub fn atomic_op(&self, key: &[u8], param: &[u8], op: MutationType) {
        on_backend!(self, t => t.atomic_op(key, param, op))
    }

    /// Make this transaction conflict with commits that write into `[begin, end)`.
    pub fn add_read_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        on_backend!(self, t => t.add_read_conflict_range(begin, end))
    }

    /// Make transactions that read `[begin, end)` conflict with this one's commit.
    pub fn add_write_conflict_range(&self, begin: &[u8], end: &[u8]) -> KvResult<()> {
        on_backend!(self, t => t.add_write_conflict_range(begin, end))
    }

    /// Watch `key`: registered when this transaction commits; resolves when a later commit changes
    /// the key's value from the one this transaction saw.
    pub fn watch(&self, key: &[u8]) -> Watch {
        on_backend!(self, t => t.watch(key))
    }

    /// The read version this transaction reads at (fetched on first use).
    pub async fn get_read_version(&self) -> KvResult<i64> {
        self.before_read().await?;
        on_backend!(self, t => t.get_read_version().await)
    }

    /// Commit. Returns after the writes are durable. A read-only transaction reports version -1.
    pub async fn commit(&self) -> KvResult<CommitInfo> {
        #[cfg(feature = "faults")]
        if let Some(f) = &self.1 {
            let fault = f.before_commit().await?;
            let info = on_backend!(self, t => t.commit().await)?;
            return match fault {
                faults::CommitFault::None => Ok(info),
                faults::CommitFault::AfterCommit(e) => Err(e),
            };
        }
        on_backend!(self, t => t.commit().await)
    }

    /// Injected faults before a read (nothing without the `faults` feature).
    #[inline(always)]
    async fn before_read(&self) -> KvResult<()> {
        #[cfg(feature = "faults")]
        if let Some(f) = &self.1 {
            return f.before_read().await;
        }
        Ok(())
    }

    /// Abandon the transaction: outstanding and later operations fail with `transaction_cancelled`.
    pub fn cancel(&self) {
        on_backend!(self, t => t.cancel())
    }
}
