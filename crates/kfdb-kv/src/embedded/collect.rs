//! The value log's collector: gives back the space of values no key points at any more.
//!
//! A thread of its own (`kfdb-kv-collect`, a [`Ticker`]) walks one closed segment per step
//! (WiscKey's collection, no per-write bookkeeping): for each entry it asks fjall whether the
//! entry's key still holds a pointer to exactly that entry and is not hidden by a pending range
//! clear. A segment with no live entry is removed; one whose live bytes are under half its size
//! has them moved first — through the commit thread ([`Relocation`]), which re-checks each pointer
//! and appends the value again at the log's head, fdatasyncs the log, writes the new pointers and
//! fsyncs fjall's journal before it answers, so the old segment is only removed once nothing on
//! disk names it. Removal waits [`Timing::grace`] after the decision, so that transactions reading
//! at an older snapshot (at most `MAX_TRANSACTION_AGE` old) can still resolve their pointers.
//!
//! Which segment: one with deaths hinted since its last walk (range clears read the pointers
//! they delete, `vlog::Reader::hint_dead`) of at least a quarter of its size first, then any never
//! walked since start, then the one walked longest ago once [`Timing::rewalk`] has passed (an
//! overwritten or singly cleared value leaves no hint).

use super::Core;
use super::ticker::Ticker;
use super::vlog::{Pointer, Reader};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant};

/// A request to the commit thread: move these values (key, where it was when walked) to the log's
/// head if the key still points there; answered with how many moved.
pub(crate) struct Relocation {
    pub(crate) entries: Vec<(Bytes, Pointer)>,
    pub(crate) reply: SyncSender<std::io::Result<usize>>,
}

/// The collector's clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Between steps.
    pub(crate) every: Duration,
    /// From deciding a segment is dead to deleting its file.
    pub(crate) grace: Duration,
    /// A segment without hints is walked again after this.
    pub(crate) rewalk: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            rewalk: Duration::from_secs(3600),
        }
    }
}

/// See the module documentation. Dropping it stops the thread.
pub(crate) struct Collector {
    _thread: Ticker,
}

/// What the collector remembers between steps.
struct State {
    core: Arc<Core>,
    reader: Reader,
    relocate: SyncSender<Relocation>,
    timing: Timing,
    /// Segment -> when it was last walked and its size then.
    walked: HashMap<u64, (Instant, u64)>,
    /// Segments decided dead, and when.
    doomed: Vec<(u64, Instant)>,
    warned: bool,
}

impl Collector {
    /// Start collecting `reader`'s log; relocations go to the commit thread through the returned
    /// receiver (which it polls between groups).
    pub(crate) fn start(
        core: Arc<Core>,
        reader: Reader,
        timing: Timing,
    ) -> (Collector, Receiver<Relocation>) {
        let (relocate, requests) = mpsc::sync_channel(1);
        let mut state = State {
            core,
            reader,
            relocate,
            timing,
            walked: HashMap::new(),
            doomed: Vec::new(),
            warned: false,
        };
        let thread = Ticker::start(
            "kfdb-kv-collect",
            timing.every,
            "no value log collector; the log's space is not given back",
            move || state.step(),
        );
        (Collector { _thread: thread }, requests)
    }
}

impl State {
    fn step(&mut self) {
        // After a failed write fjall's head may hold what never became durable: decide nothing
        // from it.
        if self.core.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let grace = self.timing.grace;
        let (due, later): (Vec<_>, Vec<_>) = self
            .doomed
            .drain(..)
            .partition(|(_, at)| now.duration_since(*at) >= grace);
        self.doomed = later;
        for (id, _) in due {
            match self.reader.remove(id) {
                Ok(()) => {
                    self.core
                        .stats
                        .value_log_segments_removed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => self.warn(&e, "removing a collected value log segment"),
            }
            self.walked.remove(&id);
        }
        let Some(id) = self.pick(now) else {
            return;
        };
        if let Err(e) = self.walk(id, now) {
            self.warn(&e, "walking a value log segment");
        }
    }

    fn warn(&mut self, e: &std::io::Error, what: &str) {
        if !self.warned {
            tracing::warn!(error = %e, "{what} failed; the collector carries on");
            self.warned = true;
        }
    }

    /// The segment to walk now, if any.
    fn pick(&self, now: Instant) -> Option<u64> {
        // Not the active segment, nor one closed by a group whose batches are not written yet
        // (its newest values would look dead).
        let active = self.reader.active_segment();
        let settled = self.reader.settled_below();
        let candidates: Vec<u64> = self
            .reader
            .segments()
            .into_iter()
            .filter(|id| {
                *id < settled && Some(*id) != active && !self.doomed.iter().any(|(d, _)| d == id)
            })
            .collect();
        let hinted = candidates.iter().copied().find(|id| {
            let size = self.walked.get(id).map_or(0, |(_, size)| *size);
            let hint = self.reader.hint(*id);
            hint > 0 && hint.saturating_mul(4) >= size
        });
        hinted
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|id| !self.walked.contains_key(id))
            })
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .filter_map(|id| self.walked.get(&id).map(|(at, _)| (id, *at)))
                    .filter(|(_, at)| now.duration_since(*at) >= self.timing.rewalk)
                    .min_by_key(|(_, at)| *at)
                    .map(|(id, _)| id)
            })
    }

    /// Walk segment `id`: doom it if nothing lives in it, move its live values first if they are
    /// under half of it.
    fn walk(&mut self, id: u64, now: Instant) -> std::io::Result<()> {
        self.reader.take_hint(id);
        let entries = self.reader.entries(id)?;
        let size: u64 = entries.iter().map(|(_, p)| p.len as u64).sum();
        let view = self.core.current_view();
        let mut live = Vec::new();
        for (key, p) in entries {
            let stored = self.core.data.get(&key).map_err(std::io::Error::other)?;
            let points_here = stored
                .as_deref()
                .and_then(Reader::pointer_of)
                .is_some_and(|at| at.same_place(&p));
            if points_here && !view.tombstones.hides(&key, u64::MAX) {
                live.push((key, p));
            }
        }
        let live_bytes: u64 = live.iter().map(|(_, p)| p.len as u64).sum();
        self.walked.insert(id, (now, size));
        if live.is_empty() {
            self.doomed.push((id, now));
            return Ok(());
        }
        if live_bytes.saturating_mul(2) >= size {
            return Ok(());
        }
        let (reply, answer) = mpsc::sync_channel(1);
        if self
            .relocate
            .send(Relocation {
                entries: live,
                reply,
            })
            .is_err()
        {
            return Ok(()); // the commit thread is stopping
        }
        match answer.recv() {
            Ok(Ok(_)) => self.doomed.push((id, Instant::now())),
            Ok(Err(e)) => return Err(e),
            Err(_) => {} // stopping
        }
        Ok(())
    }
}
