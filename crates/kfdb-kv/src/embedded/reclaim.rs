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
//! `MemtableKeeper` holds a reference to every memtable the data keyspace has had, so fjall's
//! drop is never the last one; once fjall has let go of a memtable (only the keeper's reference
//! is left), the keeper hands it to a thread of its own, `kfdb-kv-reclaim`, which frees it while
//! holding no lock. A memtable is kept no longer than fjall keeps it, plus one commit group.

use std::any::Any;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};

use fjall::AbstractTree;

/// A memtable, by type-erased reference (fjall does not export its memtable type).
type Held = Arc<dyn Any + Send + Sync>;

/// See the module documentation.
pub(crate) struct MemtableKeeper {
    /// Every memtable seen as the active one, oldest first; the last is the newest seen.
    held: Vec<Held>,
    /// To the reclaim thread; `None` if it could not be started (fjall then frees memtables itself).
    reclaim: Option<Sender<Held>>,
    /// Memtables handed to the reclaim thread so far.
    released: u64,
}

fn same(a: &Held, b: &Held) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl MemtableKeeper {
    /// A keeper with its reclaim thread.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Held>();
        let spawned = std::thread::Builder::new()
            .name("kfdb-kv-reclaim".into())
            .spawn(move || {
                // Each received memtable is dropped here, the last reference to it.
                for memtable in rx {
                    drop(memtable);
                }
            });
        let reclaim = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no memtable reclaim thread; fjall frees memtables under its locks");
                None
            }
        };
        Self {
            held: Vec::new(),
            reclaim,
            released: 0,
        }
    }

    /// Note `keyspace`'s active memtable, and send every older one that only the keeper still
    /// references to the reclaim thread.
    pub(crate) fn observe(&mut self, keyspace: &fjall::Keyspace) {
        let Some(reclaim) = &self.reclaim else {
            return;
        };
        let active: Held = keyspace.tree.active_memtable();
        if !self.held.last().is_some_and(|last| same(last, &active)) {
            self.held.push(active);
        }
        let newest = self.held.len() - 1;
        let mut i = 0;
        while i < newest.min(self.held.len()) {
            if Arc::strong_count(&self.held[i]) == 1 {
                let retired = self.held.remove(i);
                self.released += 1;
                if let Err(mpsc::SendError(retired)) = reclaim.send(retired) {
                    // The thread is gone (it cannot panic; only at exit): free it here.
                    drop(retired);
                }
                continue;
            }
            i += 1;
        }
    }

    /// Memtables held, and handed to the reclaim thread so far (for tests).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, u64) {
        (self.held.len(), self.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_memtables_until_fjall_lets_go_then_frees_them_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let ks = db
            .keyspace("data", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let mut keeper = MemtableKeeper::start();
        keeper.observe(&ks);
        assert_eq!(keeper.counts(), (1, 0), "the active memtable");
        for round in 0..8u32 {
            ks.insert(round.to_be_bytes(), b"value").unwrap();
            ks.rotate_memtable_and_wait().unwrap();
            keeper.observe(&ks);
        }
        // fjall lets go of flushed memtables once its version history is collected (at later
        // rotations); from then on the keeper holds the last reference and hands them over.
        let (held, released) = keeper.counts();
        assert!(released >= 1, "held {held}, released {released}");
        assert_eq!(held as u64 + released, 9, "every memtable seen once");
        // Every key is still readable after the keeper let memtables go.
        for round in 0..8u32 {
            assert!(ks.get(round.to_be_bytes()).unwrap().is_some());
        }
    }
}
