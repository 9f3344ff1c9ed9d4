//! The embedded backend: FoundationDB's transaction semantics over fjall, in one process.
//!
//! - `transaction`: a client transaction: reads at a read version against a frozen fjall snapshot,
//!   buffered writes with read-your-writes (`writes`), conflict ranges, FoundationDB's size limits.
//! - `pipeline`: the single commit thread: resolves conflicts (`resolver`), assigns versions and
//!   versionstamps, applies each transaction as one atomic fjall batch, and makes a whole group of
//!   transactions durable with one fsync before anyone is answered (group commit).
//! - `watches`: keys being watched, fired by the pipeline after a durable commit changes them.
//!
//! - `rotation`: full memtables are sealed by a thread of kfdb-kv's, asked by the commit thread
//!   (fjall's own rotation is off in stores created since), so fjall runs one worker.
//! - `reclaim`: frees the memtables fjall retires on a thread of its own, not under the locks
//!   every commit needs.
//! - `journal`: flushes the meta keyspace when fjall holds a sealed journal, so restarts replay
//!   only the journal still in use.
//! - `tombstones`: large range clears, hidden from readers at once and deleted by the pipeline in
//!   bounded steps, so a big delete costs every other commit nothing.
//!
//! Read versions only ever name durable states: the pipeline publishes a new snapshot after its
//! fsync, so a reader can never see data that a crash could take back.

mod collect;
mod journal;
mod pipeline;
mod reclaim;
mod resolver;
mod rotation;
mod ticker;
mod tombstones;
mod transaction;
mod vlog;
mod watches;
mod writes;

pub use rotation::Rotation;
pub use transaction::EmbeddedTransaction;

use crate::error::{KvError, KvResult};
use pipeline::PipelineMsg;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Artificial delay added to every commit's reply, to mimic a networked FoundationDB (~2 ms) so
    /// that layers above are exercised for pipelining and batching rather than a fast local disk.
    pub commit_latency: Duration,
    /// fjall block cache size in bytes.
    pub cache_bytes: u64,
    /// Size at which the data keyspace's memtable is sealed and flushed (fixed when the store is
    /// created). Writes pause for a few milliseconds at each rotation (fjall swaps its journal and
    /// manifest under locks the commit path needs), so smaller memtables mean shorter, more
    /// frequent pauses: at 8 MiB the p99 of a 20 MB/s produce load was ~4x lower than at fjall's
    /// default 64 MiB, at about the same throughput (docs/benchmarks.md).
    pub memtable_bytes: u64,
    /// Most transactions resolved and made durable together by one fsync.
    pub max_group: usize,
    /// Outstanding watches allowed before `too_many_watches` (FoundationDB's default is 10,000).
    pub max_watches: usize,
    /// fsync each commit group. Only benchmarks and tests that measure the engine turn this off.
    pub fsync: bool,
    /// Range reads hand the tokio worker's other tasks to another thread before reading
    /// (`block_in_place`), so a read that waits on the disk stalls no other connection. Off only
    /// to measure what it saves (examples/read_stall.rs).
    pub offload_reads: bool,
    /// Size at which a value log segment is closed and the next started.
    pub value_log_segment_bytes: u64,
    /// The fewest bytes of whole 4 KiB blocks a value log write sends with `O_DIRECT` (fewer go
    /// through the page cache). Smaller only in tests that want direct writes on small loads.
    pub value_log_direct_min: usize,
    /// The value log's collector: time between its steps (each walks at most one segment).
    pub value_log_collect_every: Duration,
    /// From deciding a value log segment is dead to deleting it: longer than any transaction may
    /// keep reading at an older snapshot.
    pub value_log_grace: Duration,
    /// A segment with no deaths seen is walked again after this (an overwritten value leaves no
    /// trace the collector sees sooner).
    pub value_log_rewalk: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            commit_latency: Duration::ZERO,
            cache_bytes: 64 * 1024 * 1024,
            memtable_bytes: 8 * 1024 * 1024,
            max_group: 1024,
            max_watches: crate::types::MAX_WATCHES,
            fsync: true,
            offload_reads: true,
            value_log_segment_bytes: vlog::SEGMENT_BYTES,
            value_log_direct_min: vlog::DIRECT_MIN,
            value_log_collect_every: collect::Timing::default().every,
            value_log_grace: collect::Timing::default().grace,
            value_log_rewalk: collect::Timing::default().rewalk,
        }
    }
}

/// The durable state a transaction reads from: a commit version and the fjall snapshot taken right
/// after that version's fsync.
#[derive(Clone)]
pub(crate) struct ReadView {
    pub(crate) version: u64,
    pub(crate) snapshot: fjall::Snapshot,
    pub(crate) keyspace: fjall::Keyspace,
    /// Range clears not yet applied to the keyspace: what they hide is not read.
    pub(crate) tombstones: tombstones::TombstoneSet,
    /// The value log's reader in a store that logs values (`vlog`), whose fjall values are
    /// then tagged; `None` in a store from before it.
    pub(crate) values: Option<vlog::Reader>,
}

impl ReadView {
    /// A value as stored in the data keyspace, as readers see it.
    pub(crate) fn resolve(&self, stored: bytes::Bytes) -> std::io::Result<bytes::Bytes> {
        match &self.values {
            Some(r) => r.resolve(stored),
            None => Ok(stored),
        }
    }
}

/// What the pipeline thread and the transactions share.
pub(crate) struct Core {
    pub(crate) db: fjall::Database,
    pub(crate) data: fjall::Keyspace,
    pub(crate) meta: fjall::Keyspace,
    pub(crate) read_view: RwLock<ReadView>,
    pub(crate) watches: Mutex<watches::WatchRegistry>,
    pub(crate) options: EmbeddedOptions,
    /// Commits still to fail with `not_committed`, so callers can exercise their retry paths.
    pub(crate) injected_conflicts: AtomicU32,
    /// Commits still to fail with `commit_unknown_result`, and whether they land first.
    pub(crate) injected_unknown: AtomicU32,
    pub(crate) injected_unknown_landed: AtomicBool,
    /// Set after a failed write or fsync: the store refuses further commits (like fjall itself).
    pub(crate) poisoned: AtomicBool,
    pub(crate) stats: Counters,
    /// See [`ReadView::values`].
    pub(crate) values: Option<vlog::Reader>,
}

/// Running totals kept by the pipeline.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) value_log_syncs: AtomicU64,
    pub(crate) value_log_segments_removed: AtomicU64,
    pub(crate) value_log_values_moved: AtomicU64,
    pub(crate) value_log_bytes_moved: AtomicU64,
    pub(crate) range_tombstones: AtomicU64,
    pub(crate) purged_keys: AtomicU64,
    pub(crate) memtables_sealed: AtomicU64,
}

/// A copy of the store's counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Transactions committed (writing ones only).
    pub commits: u64,
    /// Commits rejected with `not_committed`.
    pub conflicts: u64,
    /// Commit groups the pipeline processed.
    pub groups: u64,
    /// fsyncs issued (one per group that wrote).
    pub fsyncs: u64,
    /// fdatasyncs of the value log (at most one per group, only when its transactions logged
    /// values, plus one per applied batch run that must precede a read of the store's head).
    pub value_log_syncs: u64,
    /// Segment files of the value log (0 in a store without one).
    pub value_log_segments: u64,
    /// Their bytes, live and dead (the collector gives dead ones back).
    pub value_log_bytes: u64,
    /// Segments the collector deleted (nothing pointed into them any more).
    pub value_log_segments_removed: u64,
    /// Live values the collector moved out of mostly dead segments, and their bytes.
    pub value_log_values_moved: u64,
    pub value_log_bytes_moved: u64,
    /// Range clears pending as tombstones (not yet fully deleted).
    pub range_tombstones: u64,
    /// Keys deleted by tombstone purge steps.
    pub purged_keys: u64,
    /// Memtables kfdb-kv sealed (`rotation`; in a store created before it, fjall's own count not).
    pub memtables_sealed: u64,
    /// Journal files fjall holds (the active one and sealed ones a restart would replay).
    pub journal_files: u64,
}

impl Core {
    pub(crate) fn current_view(&self) -> ReadView {
        match self.read_view.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The newest value of `key` (not a snapshot read: what a commit applied last), as readers
    /// see it, i.e. with pending range clears applied.
    pub(crate) fn head_get(&self, key: &[u8]) -> KvResult<Option<bytes::Bytes>> {
        let stored = self
            .data
            .get(key)
            .map_err(|e| io_error("read", e))?
            .map(bytes::Bytes::from);
        let view = self.current_view();
        let Some(stored) = stored else {
            return Ok(None);
        };
        if view.tombstones.hides(key, u64::MAX) {
            return Ok(None);
        }
        view.resolve(stored)
            .map(Some)
            .map_err(|e| io_error("read a logged value", e))
    }
}

/// Owns the pipeline thread; dropping the last handle stops it and closes the store.
struct Handle {
    core: Arc<Core>,
    commits: Option<mpsc::Sender<PipelineMsg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.commits.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedDatabase {
    handle: Arc<Handle>,
}

/// The fjall engine configured exactly as the embedded backend configures it: the database and its
/// data keyspace. Benchmarks use it as the raw-engine baseline.
///
/// The journal is not compressed (Kafka batches usually arrive compressed already) and is persisted
/// only when the pipeline asks; large values are kept apart from keys (fjall's key-value separation)
/// so compaction does not keep rewriting record data. Every table's filter and index blocks are
/// pinned in memory (fjall pins only the first levels' by default): with ten million topics the
/// deeper levels' whole-table filter blocks no longer fit the block cache, and each point read
/// reloaded and checksummed one (8M to 9M topics: 57 s pinned, 167 s before). Pinned, they cost
/// about 1-2 bytes per key. These policies are stored with the keyspace when it is created, so a
/// store created by an earlier kfdb keeps fjall's defaults. Memtables are sealed by the writer in
/// stores created since `rotation` exists (a raw loop calls [`RawEngine::rotate_full`] between
/// writes, as the embedded store's seal thread does when its commit thread asks).
pub fn raw_engine(path: &Path, options: &EmbeddedOptions) -> fjall::Result<RawEngine> {
    let rotation = Rotation::of_store(path)?;
    let db = fjall::Database::builder(path)
        .manual_journal_persist(true)
        .journal_compression(fjall::CompressionType::None)
        .cache_size(options.cache_bytes)
        .worker_threads(rotation.workers())
        .open()?;
    let data = db.keyspace("kv", || {
        fjall::KeyspaceCreateOptions::default()
            .with_kv_separation(Some(fjall::KvSeparationOptions::default()))
            .max_memtable_size(rotation.keyspace_limit(options.memtable_bytes))
            .filter_block_pinning_policy(fjall::config::PinningPolicy::all(true))
            .index_block_pinning_policy(fjall::config::PinningPolicy::all(true))
    })?;
    Ok(RawEngine {
        db,
        data,
        rotation,
        memtable_bytes: options.memtable_bytes,
    })
}

/// What [`raw_engine`] opens.
pub struct RawEngine {
    /// The fjall database.
    pub db: fjall::Database,
    /// Its data keyspace.
    pub data: fjall::Keyspace,
    /// Who seals full memtables in this store (`rotation`).
    pub rotation: Rotation,
    memtable_bytes: u64,
}

impl RawEngine {
    /// Seal `keyspace`'s memtable if it is full (`rotation`), as the embedded store's seal thread
    /// does when its commit thread asks.
    pub fn rotate_full(&self, keyspace: &fjall::Keyspace) -> fjall::Result<bool> {
        rotation::rotate_full(keyspace, self.memtable_bytes)
    }
}

/// Size at which the meta keyspace's memtable is sealed (fjall's default, which it had before).
pub(crate) const META_MEMTABLE_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) const META_VERSION_KEY: &[u8] = b"committed_version";

fn io_error(context: &str, e: impl std::error::Error + Send + Sync + 'static) -> KvError {
    KvError::caused_by(KvError::IO_ERROR, context, e)
}

impl EmbeddedDatabase {
    /// Open or create the store in directory `path`, recovering from its journal.
    pub fn open(path: &Path, options: EmbeddedOptions) -> KvResult<Self> {
        std::fs::create_dir_all(path).map_err(|e| io_error("create data directory", e))?;
        // Before fjall creates anything: a new store is marked as one that logs its values.
        let log = if vlog::of_store(path).map_err(|e| io_error("mark data directory", e))? {
            Some(
                vlog::ValueLog::open(&path.join("vlog"), options.value_log_segment_bytes)
                    .map_err(|e| io_error("open value log", e))?
                    .with_direct_min(options.value_log_direct_min),
            )
        } else {
            None
        };
        let values = log.as_ref().map(|l| l.reader());
        let engine = raw_engine(path, &options).map_err(|e| io_error("open store", e))?;
        let meta = engine
            .db
            .keyspace("kv_meta", || {
                fjall::KeyspaceCreateOptions::default()
                    .max_memtable_size(engine.rotation.keyspace_limit(META_MEMTABLE_BYTES))
            })
            .map_err(|e| io_error("open keyspace", e))?;
        let version = match meta
            .get(META_VERSION_KEY)
            .map_err(|e| io_error("read version", e))?
        {
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    KvError::new(
                        KvError::INTERNAL_ERROR,
                        "stored commit version is not 8 bytes",
                    )
                })?;
                u64::from_be_bytes(bytes)
            }
            None => 0,
        };
        let pending = tombstones::load(&meta)?;
        let view = ReadView {
            version,
            snapshot: engine.db.snapshot(),
            keyspace: engine.data.clone(),
            tombstones: tombstones::TombstoneSet(std::sync::Arc::new(
                pending.iter().map(|(t, _)| t.clone()).collect(),
            )),
            values: values.clone(),
        };
        let core = Arc::new(Core {
            db: engine.db,
            data: engine.data,
            meta,
            read_view: RwLock::new(view),
            watches: Mutex::new(watches::WatchRegistry::new(options.max_watches)),
            options,
            injected_conflicts: AtomicU32::new(0),
            injected_unknown: AtomicU32::new(0),
            injected_unknown_landed: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            stats: Counters::default(),
            values,
        });
        core.stats
            .range_tombstones
            .store(pending.len() as u64, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let pipeline_core = Arc::clone(&core);
        let thread = std::thread::Builder::new()
            .name("kfdb-kv-commit".into())
            .spawn(move || pipeline::run(pipeline_core, rx, pending, log))
            .map_err(|e| io_error("spawn commit thread", e))?;
        Ok(Self {
            handle: Arc::new(Handle {
                core,
                commits: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// A new transaction (its read version is taken on first read).
    pub fn create_transaction(&self) -> EmbeddedTransaction {
        EmbeddedTransaction::new(self.clone())
    }

    /// Make the next `n` commits fail with `not_committed` (1020), as if another client had won.
    pub fn inject_conflicts(&self, n: u32) {
        self.handle
            .core
            .injected_conflicts
            .store(n, Ordering::SeqCst);
    }

    /// Make the next `n` commits fail with `commit_unknown_result` (1021): after their writes
    /// became durable (`landed`) or without applying them, as a lost answer from FoundationDB
    /// would leave either. For tests of the callers' `maybe_committed` handling.
    pub fn inject_unknown_results(&self, n: u32, landed: bool) {
        let core = &self.handle.core;
        core.injected_unknown_landed.store(landed, Ordering::SeqCst);
        core.injected_unknown.store(n, Ordering::SeqCst);
    }

    /// True once a write or fsync failed (a full disk, an I/O error): the store refuses every
    /// commit from then on, and only a restart (after the cause is fixed) serves again.
    pub fn has_failed(&self) -> bool {
        self.handle.core.poisoned.load(Ordering::SeqCst)
    }

    /// Read every key and value of the store, so that every block's checksum is checked (fjall
    /// checks a block when it reads it; a value-log entry likewise). Returns how many entries and
    /// bytes were read, or the first failure with the last key read before it. Costs a full read
    /// of the store: for `kfdb store verify`, not for every start.
    pub fn verify(&self) -> KvResult<(u64, u64)> {
        let core = &self.handle.core;
        let (mut entries, mut bytes) = (0u64, 0u64);
        for (name, keyspace) in [("kv", &core.data), ("kv_meta", &core.meta)] {
            let mut last: Vec<u8> = Vec::new();
            for guard in keyspace.iter() {
                let (k, v) = guard.into_inner().map_err(|e| {
                    KvError::caused_by(
                        KvError::IO_ERROR,
                        format!(
                            "verify: keyspace {name}, the entry after key {}",
                            crate::tuple::Bytes::from(last.as_slice())
                        ),
                        e,
                    )
                })?;
                // A logged value is read from the log, which checks its checksum.
                let v = match (name, &core.values) {
                    ("kv", Some(r)) => r.resolve(bytes::Bytes::from(v)).map_err(|e| {
                        KvError::caused_by(
                            KvError::IO_ERROR,
                            format!(
                                "verify: the logged value of key {}",
                                crate::tuple::Bytes::from(&k[..])
                            ),
                            e,
                        )
                    })?,
                    _ => bytes::Bytes::from(v),
                };
                entries += 1;
                bytes += (k.len() + v.len()) as u64;
                last = k.to_vec();
            }
        }
        Ok((entries, bytes))
    }

    /// The newest durable commit version.
    pub fn committed_version(&self) -> i64 {
        self.handle.core.current_view().version as i64
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> EmbeddedStats {
        let c = &self.handle.core.stats;
        let (value_log_segments, value_log_bytes) = self
            .handle
            .core
            .values
            .as_ref()
            .map_or((0, 0), |r| r.usage());
        EmbeddedStats {
            commits: c.commits.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            value_log_syncs: c.value_log_syncs.load(Ordering::Relaxed),
            value_log_segments,
            value_log_bytes,
            value_log_segments_removed: c.value_log_segments_removed.load(Ordering::Relaxed),
            value_log_values_moved: c.value_log_values_moved.load(Ordering::Relaxed),
            value_log_bytes_moved: c.value_log_bytes_moved.load(Ordering::Relaxed),
            range_tombstones: c.range_tombstones.load(Ordering::Relaxed),
            purged_keys: c.purged_keys.load(Ordering::Relaxed),
            memtables_sealed: c.memtables_sealed.load(Ordering::Relaxed),
            journal_files: self.handle.core.db.journal_count() as u64,
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    pub(crate) fn submit(&self, msg: PipelineMsg) -> KvResult<()> {
        let closed = || KvError::new(KvError::OPERATION_CANCELLED, "store is closed");
        self.handle
            .commits
            .as_ref()
            .ok_or_else(closed)?
            .send(msg)
            .map_err(|_| closed())
    }
}
