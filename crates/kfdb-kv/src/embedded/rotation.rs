//! Who seals a full memtable, and so how many background workers fjall gets.
//!
//! fjall rotates a keyspace's memtable itself when a write finds it over its size limit: every
//! such write `try_send`s a rotation request into fjall's bounded worker queue (1,000 messages),
//! and the worker that carries one out then does a *blocking* send of a flush job into the same
//! queue. With a single worker, a burst of commits while it compacts can fill the queue, and the
//! worker would then wait on a queue only it drains. So stores whose memtables fjall rotates run
//! two workers — and with two, the first hands compaction jobs back to the queue in a busy loop
//! while the second compacts, which on a two-core machine takes a core from everything else
//! (docs/benchmarks.md: one worker created 45k instead of 29k topics/s at ten million, produced
//! ~10 % faster and halved the p99 at 100,000 records/s).
//!
//! Stores created by this kfdb-kv ([`Rotation::Writer`]) take fjall's rotation out of the write
//! path: their keyspaces are created with no size limit, and a memtable that reached the
//! configured size is sealed with [`rotate_full`] between writes: by the [`Sealer`] thread, which
//! the commit thread asks after a group, or by a raw benchmark loop itself. The worker queue then
//! only carries one flush job per rotation and a few compaction requests, so one worker is safe.
//! A file in the data directory records the choice, written before fjall creates anything; a
//! store created before it exists (fjall's files but no mark) keeps two workers
//! ([`Rotation::Fjall`]). The size limit is stored with each keyspace when it is created, so the
//! choice cannot change later. Full memtables are sealed in every store, so a marked store whose
//! mark was lost (opened as `Fjall`) still has them sealed; in an old store fjall's own rotation
//! request then finds the memtable already replaced and does nothing. (A kfdb-kv from before the
//! mark would not seal a marked store's memtables: do not open a store with an older kfdb.)

use super::ticker::Ticker;
use super::{Core, META_MEMTABLE_BYTES};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The mark's file name in the data directory.
const MARK: &str = "kfdb-kv-rotation";
/// A file fjall writes in every store it created (used to tell an old store from a new one).
const FJALL_VERSION_FILE: &str = "version";

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// fjall rotates memtables as writes fill them (stores created before the mark); two workers.
    Fjall,
    /// The writer rotates them with [`rotate_full`]; one worker.
    Writer,
}

impl Rotation {
    /// The store's rotation: `Writer` for a new store (the mark is written first, durably) or a
    /// marked one, `Fjall` for a store fjall created before the mark existed.
    pub fn of_store(path: &Path) -> std::io::Result<Self> {
        if path.join(MARK).exists() {
            return Ok(Self::Writer);
        }
        if path.join(FJALL_VERSION_FILE).exists() {
            return Ok(Self::Fjall);
        }
        std::fs::create_dir_all(path)?;
        let mut f = std::fs::File::create(path.join(MARK))?;
        f.write_all(b"memtables are rotated by kfdb-kv's writer, not by fjall\n")?;
        f.sync_all()?;
        std::fs::File::open(path)?.sync_all()?;
        Ok(Self::Writer)
    }

    /// fjall's background workers for this rotation.
    pub fn workers(self) -> usize {
        match self {
            Self::Fjall => 2,
            Self::Writer => 1,
        }
    }

    /// The size limit a keyspace is created with, for memtables of `bytes`.
    pub fn keyspace_limit(self, bytes: u64) -> u64 {
        match self {
            Self::Fjall => bytes,
            Self::Writer => u64::MAX,
        }
    }
}

/// Sealed memtables waiting for a flush above which [`rotate_full`] lets the active one grow
/// instead: at four, fjall halts every write in 100 ms sleeps until its worker flushes (which,
/// with one worker, waits for the compaction it is running).
const MAX_WAITING: usize = 3;
/// How far past its limit the active memtable may grow while flushes are behind; beyond it,
/// it is sealed anyway and fjall's write halt applies (memory stays bounded if flushes stop).
const MAX_GROWTH: u64 = 8;

/// Whether `keyspace`'s memtable is to be sealed: it holds `limit` bytes or more, unless
/// `MAX_WAITING` sealed ones already wait and it is below `MAX_GROWTH` times `limit`.
fn should_seal(keyspace: &fjall::Keyspace, limit: u64) -> bool {
    use fjall::AbstractTree;
    let size = keyspace.tree.active_memtable().size();
    size >= limit
        && (keyspace.tree.sealed_memtable_count() < MAX_WAITING
            || size >= limit.saturating_mul(MAX_GROWTH))
}

/// Seal `keyspace`'s memtable if [`should_seal`] says so (a flush job is queued for it). Safe
/// beside writes on other threads: fjall's batch commit and its rotation take the same journal
/// lock, so a batch lands whole in one memtable.
pub fn rotate_full(keyspace: &fjall::Keyspace, limit: u64) -> fjall::Result<bool> {
    if !should_seal(keyspace, limit) {
        return Ok(false);
    }
    keyspace.rotate_memtable()
}

/// How often the sealer looks without being asked: a memtable the back-off let grow is sealed
/// once flushes caught up even if no group follows.
const SEALER_IDLE_LOOK: Duration = Duration::from_secs(1);

/// The thread that seals the store's full memtables (`kfdb-kv-seal`, a [`Ticker`]), woken by the
/// commit thread after a group found one full: the rotation itself (fjall's version bookkeeping,
/// journal maintenance, queueing the flush) then runs beside the next groups instead of before
/// them. Dropping it stops and joins the thread. If the thread cannot be started, the commit
/// thread seals them itself.
pub(crate) struct Sealer {
    thread: Ticker,
    core: Arc<Core>,
    /// A failure sealing on the commit thread was logged.
    failed: bool,
}

impl Sealer {
    pub(crate) fn start(core: Arc<Core>) -> Self {
        let thread_core = core.clone();
        let mut failed = false;
        let thread = Ticker::start(
            "kfdb-kv-seal",
            SEALER_IDLE_LOOK,
            "no memtable sealing thread; the commit thread seals them",
            move || seal_full(&thread_core, &mut failed),
        );
        Self {
            thread,
            core,
            failed: false,
        }
    }

    /// After a group: have the full memtables sealed (on the sealer's thread; wake-ups coalesce).
    pub(crate) fn after_group(&mut self) {
        if any_full(&self.core) && !self.thread.wake() {
            seal_full(&self.core, &mut self.failed);
        }
    }
}

fn limits(core: &Core) -> [(&fjall::Keyspace, u64); 2] {
    [
        (&core.data, core.options.memtable_bytes),
        (&core.meta, META_MEMTABLE_BYTES),
    ]
}

fn any_full(core: &Core) -> bool {
    limits(core)
        .iter()
        .any(|(ks, limit)| should_seal(ks, *limit))
}

/// Seal the data and meta memtables that are full ([`rotate_full`]); a failure is logged once.
fn seal_full(core: &Core, failed: &mut bool) {
    for (keyspace, limit) in limits(core) {
        match rotate_full(keyspace, limit) {
            Ok(true) => {
                core.stats.memtables_sealed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => {
                if !*failed {
                    tracing::error!(error = %e, "sealing a full memtable failed");
                }
                *failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_marked_an_old_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        assert_eq!(Rotation::of_store(&fresh).unwrap(), Rotation::Writer);
        assert!(fresh.join(MARK).exists());
        std::fs::write(fresh.join(FJALL_VERSION_FILE), b"x").unwrap();
        assert_eq!(Rotation::of_store(&fresh).unwrap(), Rotation::Writer);

        let old = dir.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(FJALL_VERSION_FILE), b"x").unwrap();
        assert_eq!(Rotation::of_store(&old).unwrap(), Rotation::Fjall);
        assert!(!old.join(MARK).exists());
    }

    #[test]
    fn only_a_full_memtable_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("data", || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(u64::MAX)
            })
            .unwrap();
        ks.insert(b"k", vec![0u8; 1000]).unwrap();
        assert!(!rotate_full(&ks, 1 << 20).unwrap());
        for i in 0..2000u32 {
            ks.insert(i.to_be_bytes(), vec![0u8; 1000]).unwrap();
        }
        assert!(rotate_full(&ks, 1 << 20).unwrap());
        assert!(
            !rotate_full(&ks, 1 << 20).unwrap(),
            "the new memtable is empty"
        );
    }

    #[test]
    fn a_full_memtable_waits_while_flushes_are_behind_up_to_a_bound() {
        use fjall::AbstractTree;
        let dir = tempfile::tempdir().unwrap();
        // No workers: nothing flushes, so sealed memtables stay.
        let db = fjall::Database::builder(dir.path())
            .worker_threads_unchecked(0)
            .open()
            .unwrap();
        let ks = db
            .keyspace("data", || {
                fjall::KeyspaceCreateOptions::default().max_memtable_size(u64::MAX)
            })
            .unwrap();
        let limit = 64 * 1024;
        let mut key = 0u32;
        let mut fill = |ks: &fjall::Keyspace, bytes: u64| {
            let target = ks.tree.active_memtable().size() + bytes;
            while ks.tree.active_memtable().size() < target {
                ks.insert(key.to_be_bytes(), vec![0u8; 1000]).unwrap();
                key += 1;
            }
        };
        for _ in 0..MAX_WAITING {
            fill(&ks, limit);
            assert!(rotate_full(&ks, limit).unwrap());
        }
        assert_eq!(ks.tree.sealed_memtable_count(), MAX_WAITING);
        fill(&ks, limit);
        assert!(!rotate_full(&ks, limit).unwrap(), "three wait: it grows");
        fill(&ks, limit * MAX_GROWTH);
        assert!(rotate_full(&ks, limit).unwrap(), "past the bound: sealed");
    }
}
