//! Freeing fjall's flushed memtables away from its locks.
//!
//! When fjall retires a memtable (sealed, flushed, and no longer in any version a reader may
//! use), the thread that drops the last reference frees every entry of its skip list, one
//! allocation at a time. fjall drops it in its version-history maintenance, which runs while it
//! holds the tree's version lock and, during a memtable rotation, its journal lock, and every
//! commit needs both. On a busy two-core machine that drop took 25–40 ms per 8 MiB memtable
//! (the thread was preempted while holding the locks), and every commit in flight waited for it
//! (docs/benchmarks.md, "vs-commits").
//!
//! `MemtableKeeper` runs a thread of its own, `kfdb-kv-reclaim`, that looks at the data keyspace's
//! active memtable every `POLL` and holds a reference to every memtable it has seen there, so
//! fjall's drop is never the last one. Once fjall has let go of a memtable (only the keeper's
//! reference is left), the keeper drops it, on its own thread, holding no lock. fjall keeps a
//! memtable for seconds after sealing it (until it is flushed and its version collected), far
//! longer than `POLL`, so the keeper sees every memtable; the commit thread never waits for it.
//! It reaches the memtable through fjall's `Keyspace::tree` (public, though hidden from fjall's
//! documentation): if a later fjall removes it, this stops compiling rather than silently
//! changing behaviour.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::ticker::Ticker;

use fjall::AbstractTree;

/// How often the keeper looks at the active memtable and at the ones it holds.
const POLL: Duration = Duration::from_millis(10);

/// A memtable, by type-erased reference (fjall does not export its memtable type).
type Held = Arc<dyn Any + Send + Sync>;

/// What the keeper did so far (for tests).
#[derive(Default)]
pub(crate) struct KeeperCounts {
    /// Memtables seen as the active one.
    pub(crate) seen: AtomicU64,
    /// Of those, dropped by the keeper after fjall let go of them.
    pub(crate) freed: AtomicU64,
}

/// See the module documentation. Dropping it stops the thread (which frees what it still holds).
pub(crate) struct MemtableKeeper {
    _thread: Ticker,
    #[cfg(test)]
    counts: Arc<KeeperCounts>,
}

fn same(a: &Held, b: &Held) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Note the active memtable of `keyspace`; drop every older one only `held` still references.
fn observe(held: &mut Vec<Held>, keyspace: &fjall::Keyspace, counts: &KeeperCounts) {
    let active: Held = keyspace.tree.active_memtable();
    if !held.last().is_some_and(|last| same(last, &active)) {
        held.push(active);
        counts.seen.fetch_add(1, Ordering::Relaxed);
    }
    // The newest stays (fjall writes to it); of the others, those only `held` references go.
    let before = held.len();
    let newest = held.pop();
    held.retain(|m| Arc::strong_count(m) > 1);
    held.extend(newest);
    counts
        .freed
        .fetch_add((before - held.len()) as u64, Ordering::Relaxed);
}

impl MemtableKeeper {
    /// Start keeping `keyspace`'s memtables. If the thread cannot be started, fjall frees its
    /// memtables itself, as it would without the keeper (logged).
    pub(crate) fn start(keyspace: fjall::Keyspace) -> Self {
        let counts = Arc::new(KeeperCounts::default());
        let thread_counts = counts.clone();
        let mut held: Vec<Held> = Vec::new();
        let thread = Ticker::start(
            "kfdb-kv-reclaim",
            POLL,
            "no memtable reclaim thread; fjall frees memtables under its locks",
            move || observe(&mut held, &keyspace, &thread_counts),
        );
        Self {
            _thread: thread,
            #[cfg(test)]
            counts,
        }
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> &KeeperCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn keeps_memtables_until_fjall_lets_go_then_frees_them_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("data", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let keeper = MemtableKeeper::start(ks.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        for round in 0..8u32 {
            // Let the keeper see this round's active memtable before it is sealed.
            while keeper.counts().seen.load(Ordering::Relaxed) <= u64::from(round)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            ks.insert(round.to_be_bytes(), b"value").unwrap();
            ks.rotate_memtable_and_wait().unwrap();
        }
        // fjall lets go of flushed memtables once its version history is collected (at later
        // rotations); the keeper then drops them.
        while keeper.counts().freed.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = keeper.counts();
        let (seen, freed) = (
            c.seen.load(Ordering::Relaxed),
            c.freed.load(Ordering::Relaxed),
        );
        assert!(freed >= 1 && freed < seen, "seen {seen}, freed {freed}");
        assert!(seen >= 8, "seen {seen}");
        for round in 0..8u32 {
            assert!(ks.get(round.to_be_bytes()).unwrap().is_some());
        }
        drop(keeper);
        // After the keeper stopped, fjall goes on without it.
        ks.insert(b"after", b"value").unwrap();
        ks.rotate_memtable_and_wait().unwrap();
        assert!(ks.get(b"after").unwrap().is_some());
    }
}
