//! Keeping fjall's journal short, so a restart replays little of it.
//!
//! fjall deletes a sealed journal file only once every keyspace has flushed the memtable data
//! written into it, and on open it replays every journal file still there, item by item (a
//! keyspace lookup per item). The meta keyspace gets one small write per commit (the committed
//! version), so its memtable takes about a million commits to fill and be flushed: until then it
//! pins every sealed journal, up to fjall's 512 MiB journal limit. With a million topics created
//! that was three journals (~190 MB) replayed on every start, most of a 3.3 s restart.
//!
//! `JournalTrimmer` runs a thread of its own, `kfdb-kv-journal`, that once per `POLL` checks
//! whether fjall holds a sealed journal and, when one is newly there, rotates the meta keyspace's
//! memtable (a flush of a few kilobytes), so that the sealed journal goes as soon as the data
//! keyspace's own flushes have passed it. The rotation goes through fjall's
//! `Keyspace::rotate_memtable` (public, though hidden from fjall's documentation): if a later
//! fjall removes it, this stops compiling rather than silently changing behaviour.

use std::time::{Duration, Instant};

use super::ticker::Ticker;

/// How often the trimmer looks at the journal.
const POLL: Duration = Duration::from_secs(1);

/// While a sealed journal stays, the longest the trimmer waits before flushing the meta keyspace
/// again (a journal sealed between two looks leaves the count unchanged).
const AGAIN_AFTER: Duration = Duration::from_secs(30);

/// See the module documentation. Dropping it stops the thread.
pub(crate) struct JournalTrimmer {
    _thread: Ticker,
}

/// What the trimmer remembers between looks.
struct Trim {
    /// Journal files fjall held at the last flush (1: none sealed).
    flushed_at_count: usize,
    last_flush: Instant,
    warned: bool,
}

impl Trim {
    /// One look: flush `meta` once for each newly sealed journal (and again after `AGAIN_AFTER`
    /// while one stays), not on every look: fjall keeps a sealed journal until the data keyspace
    /// has flushed what it wrote there, which a slow writer can take minutes to do.
    fn look(&mut self, db: &fjall::Database, meta: &fjall::Keyspace) {
        let count = db.journal_count();
        self.flushed_at_count = self.flushed_at_count.min(count);
        if count <= 1 || (count == self.flushed_at_count && self.last_flush.elapsed() < AGAIN_AFTER)
        {
            return;
        }
        match meta.rotate_memtable() {
            Ok(_) => {
                self.flushed_at_count = count;
                self.last_flush = Instant::now();
            }
            Err(e) if !self.warned => {
                self.warned = true;
                tracing::warn!(error = %e, "could not flush the meta keyspace to trim the journal");
            }
            Err(_) => {}
        }
    }
}

impl JournalTrimmer {
    /// Start trimming. If the thread cannot be started, journals are kept as fjall keeps them
    /// (logged): restarts replay more, nothing else changes.
    pub(crate) fn start(db: fjall::Database, meta: fjall::Keyspace) -> Self {
        let mut trim = Trim {
            flushed_at_count: 1,
            last_flush: Instant::now(),
            warned: false,
        };
        let thread = Ticker::start(
            "kfdb-kv-journal",
            POLL,
            "no journal trimming thread; restarts replay more of the journal",
            move || trim.look(&db, &meta),
        );
        Self { _thread: thread }
    }
}
