//! Conflict detection, FoundationDB's resolver in miniature: remembers which keys and ranges each
//! commit version wrote over the last MVCC window, and answers "did anything newer than read version
//! `rv` write into these read ranges?".
//!
//! Single-key writes (the common case) live in generations: maps from key to its newest write
//! version, each taking the writes of at most a `GENERATIONS`th of the window. A check looks only
//! into the generations holding versions newer than its read version (usually the newest one),
//! and forgetting is dropping a whole generation once its last write left the window: no lookup
//! per forgotten key, and each written key is kept once. Range writes (`clear_range`, explicit
//! conflict ranges) are kept in a list. A key stays remembered for at least the window and at
//! most a generation longer.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

/// A half-open key range `[begin, end)`.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

/// Generations per window: how much longer than the window a write may be remembered (a fifth
/// of it), against how many maps an old reader's check looks into.
const GENERATIONS: u32 = 5;

pub(crate) struct ConflictHistory {
    window: Duration,
    /// Single-key writes, oldest generation first.
    generations: VecDeque<Generation>,
    /// Range writes: (version, begin, end), oldest first.
    ranges: VecDeque<(u64, Vec<u8>, Vec<u8>)>,
    /// Versions at or below this have been forgotten: a reader older than it may have missed a
    /// conflict and must fail with `transaction_too_old`.
    forgotten_through: u64,
}

/// The single-key writes of the versions committed within one stretch of time.
struct Generation {
    /// When its first version was recorded.
    started: Instant,
    /// When its last version was recorded: it is forgotten once this is past the window.
    last: Instant,
    /// Its newest version (every version in later generations is newer).
    newest: u64,
    /// Newest write version of each key written in this generation.
    points: BTreeMap<Vec<u8>, u64>,
}

/// Generations with more keys than this are freed on a thread of their own: a second of topic
/// creation (~150,000 keys) took milliseconds to free, a stall of the commit thread.
const FREE_ELSEWHERE_KEYS: usize = 16_384;

/// Free a forgotten generation, a big one off the calling (commit) thread. If no thread can be
/// started, the closure and the generation in it are dropped right here.
fn let_go(g: Generation) {
    if g.points.len() > FREE_ELSEWHERE_KEYS {
        let _ = std::thread::Builder::new()
            .name("kfdb-kv-forget".into())
            .spawn(move || drop(g));
    }
}

/// A write range covers exactly one key when `end == begin + \x00`.
fn single_key(begin: &[u8], end: &[u8]) -> bool {
    end.len() == begin.len() + 1 && end.starts_with(begin) && end[begin.len()] == 0
}

impl ConflictHistory {
    pub(crate) fn new(window: Duration, start_version: u64) -> Self {
        Self {
            window,
            generations: VecDeque::new(),
            ranges: VecDeque::new(),
            forgotten_through: start_version,
        }
    }

    /// True when a reader at `read_version` can no longer be checked (history already pruned).
    pub(crate) fn too_old(&self, read_version: u64) -> bool {
        read_version < self.forgotten_through
    }

    /// True when any write newer than `read_version` intersects one of `reads`.
    pub(crate) fn conflicts(&self, read_version: u64, reads: &[KeyRange]) -> bool {
        reads.iter().any(|(b, e)| {
            b < e
                && (self
                    .generations
                    .iter()
                    .rev()
                    .take_while(|g| g.newest > read_version)
                    .any(|g| {
                        g.points
                            .range::<[u8], _>((
                                Bound::Included(b.as_slice()),
                                Bound::Excluded(e.as_slice()),
                            ))
                            .any(|(_, &v)| v > read_version)
                    })
                    || self
                        .ranges
                        .iter()
                        .any(|(v, wb, we)| *v > read_version && wb < e && b < we))
        })
    }

    /// Remember that `version` (newer than every version recorded before) wrote `writes`.
    pub(crate) fn record(&mut self, version: u64, now: Instant, writes: Vec<KeyRange>) {
        let span = self.window / GENERATIONS;
        if self
            .generations
            .back()
            .is_none_or(|g| now.duration_since(g.started) >= span)
        {
            self.generations.push_back(Generation {
                started: now,
                last: now,
                newest: version,
                points: BTreeMap::new(),
            });
        }
        // Never None: a generation was pushed above if there was none.
        let Some(g) = self.generations.back_mut() else {
            return;
        };
        g.last = now;
        g.newest = version;
        for (b, e) in writes {
            if single_key(&b, &e) {
                g.points.insert(b, version);
            } else if b < e {
                self.ranges.push_back((version, b, e));
            }
        }
    }

    /// Forget the generations whose last write is older than the window.
    pub(crate) fn prune(&mut self, now: Instant) {
        while self
            .generations
            .front()
            .is_some_and(|g| now.duration_since(g.last) > self.window)
        {
            if let Some(g) = self.generations.pop_front() {
                self.forgotten_through = self.forgotten_through.max(g.newest);
                let_go(g);
            }
        }
        while self
            .ranges
            .front()
            .is_some_and(|(v, _, _)| *v <= self.forgotten_through)
        {
            self.ranges.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(k: &[u8]) -> KeyRange {
        (k.to_vec(), crate::types::key_after(k))
    }

    fn range(b: &[u8], e: &[u8]) -> KeyRange {
        (b.to_vec(), e.to_vec())
    }

    #[test]
    fn newer_point_write_conflicts_older_does_not() {
        let mut h = ConflictHistory::new(Duration::from_secs(5), 0);
        let now = Instant::now();
        h.record(10, now, vec![point(b"a")]);
        assert!(h.conflicts(9, &[point(b"a")]));
        assert!(!h.conflicts(10, &[point(b"a")]));
        assert!(!h.conflicts(9, &[point(b"b")]));
        assert!(h.conflicts(9, &[range(b"", b"b")]));
        assert!(!h.conflicts(9, &[range(b"a\x00", b"z")]));
    }

    #[test]
    fn range_writes_conflict_on_overlap_only() {
        let mut h = ConflictHistory::new(Duration::from_secs(5), 0);
        h.record(5, Instant::now(), vec![range(b"b", b"d")]);
        assert!(h.conflicts(4, &[point(b"c")]));
        assert!(h.conflicts(4, &[range(b"a", b"b\x00")]));
        assert!(!h.conflicts(4, &[range(b"d", b"e")]));
        assert!(!h.conflicts(4, &[range(b"a", b"b")]));
    }

    #[test]
    fn prune_forgets_and_marks_too_old() {
        let mut h = ConflictHistory::new(Duration::from_millis(10), 0);
        let t0 = Instant::now();
        h.record(5, t0, vec![point(b"a"), range(b"x", b"y")]);
        h.record(6, t0 + Duration::from_millis(20), vec![point(b"b")]);
        h.prune(t0 + Duration::from_millis(25));
        assert!(h.too_old(4));
        assert!(!h.too_old(5));
        assert!(!h.conflicts(4, &[point(b"a"), range(b"x", b"y")]));
        assert!(h.conflicts(5, &[point(b"b")]));
    }

    #[test]
    fn a_key_rewritten_later_survives_pruning_of_its_older_write() {
        let mut h = ConflictHistory::new(Duration::from_millis(10), 0);
        let t0 = Instant::now();
        h.record(1, t0, vec![point(b"k")]);
        h.record(2, t0 + Duration::from_millis(20), vec![point(b"k")]);
        h.prune(t0 + Duration::from_millis(25));
        assert!(h.conflicts(1, &[point(b"k")]));
    }

    #[test]
    fn a_big_generation_is_forgotten_like_a_small_one() {
        let mut h = ConflictHistory::new(Duration::from_millis(10), 0);
        let t0 = Instant::now();
        let keys: Vec<KeyRange> = (0..FREE_ELSEWHERE_KEYS as u32 + 1)
            .map(|i| point(&i.to_be_bytes()))
            .collect();
        h.record(1, t0, keys);
        h.record(2, t0 + Duration::from_millis(20), vec![point(b"late")]);
        assert!(h.conflicts(0, &[point(&7u32.to_be_bytes())]));
        h.prune(t0 + Duration::from_millis(25));
        assert!(h.too_old(0));
        assert!(!h.conflicts(1, &[point(&7u32.to_be_bytes())]));
        assert!(h.conflicts(1, &[point(b"late")]));
    }

    #[test]
    fn a_generation_is_forgotten_only_once_its_last_write_left_the_window() {
        let mut h = ConflictHistory::new(Duration::from_millis(100), 0);
        let t0 = Instant::now();
        // Same generation (the span is 20 ms): the first write outlives the window while the
        // second is within it.
        h.record(1, t0, vec![point(b"a")]);
        h.record(2, t0 + Duration::from_millis(10), vec![point(b"b")]);
        h.prune(t0 + Duration::from_millis(105));
        assert!(!h.too_old(0));
        assert!(h.conflicts(0, &[point(b"a")]));
        // A write past the span starts the next generation; the first goes once its last write
        // is older than the window, the second stays.
        h.record(3, t0 + Duration::from_millis(30), vec![point(b"c")]);
        h.prune(t0 + Duration::from_millis(111));
        assert!(h.too_old(1));
        assert!(!h.too_old(2));
        assert!(!h.conflicts(2, &[point(b"a"), point(b"b")]));
        assert!(h.conflicts(2, &[point(b"c")]));
    }
}
