//! Conflict detection, FoundationDB's resolver in miniature: remembers which keys and ranges each
//! commit version wrote over the last MVCC window, and answers "did anything newer than read version
//! `rv` write into these read ranges?".
//!
//! Single-key writes (the common case) live in a map from key to its newest write version, so a
//! point or range check is a B-tree lookup; range writes (`clear_range`, explicit conflict ranges)
//! are kept in a list. Both are pruned once they are older than the window.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

/// A half-open key range `[begin, end)`.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

pub(crate) struct ConflictHistory {
    window: Duration,
    /// Newest write version of each single key written within the window.
    points: BTreeMap<Vec<u8>, u64>,
    /// Range writes: (version, begin, end), oldest first.
    ranges: VecDeque<(u64, Vec<u8>, Vec<u8>)>,
    /// Per commit version, when it happened and which single keys it wrote, oldest first.
    log: VecDeque<(u64, Instant, Vec<Vec<u8>>)>,
    /// Versions at or below this have been forgotten: a reader older than it may have missed a
    /// conflict and must fail with `transaction_too_old`.
    forgotten_through: u64,
}

/// A write range covers exactly one key when `end == begin + \x00`.
fn single_key(begin: &[u8], end: &[u8]) -> bool {
    end.len() == begin.len() + 1 && end.starts_with(begin) && end[begin.len()] == 0
}

impl ConflictHistory {
    pub(crate) fn new(window: Duration, start_version: u64) -> Self {
        Self {
            window,
            points: BTreeMap::new(),
            ranges: VecDeque::new(),
            log: VecDeque::new(),
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
                    .points
                    .range::<[u8], _>((
                        Bound::Included(b.as_slice()),
                        Bound::Excluded(e.as_slice()),
                    ))
                    .any(|(_, &v)| v > read_version)
                    || self
                        .ranges
                        .iter()
                        .any(|(v, wb, we)| *v > read_version && wb < e && b < we))
        })
    }

    /// Remember that `version` wrote `writes`.
    pub(crate) fn record(&mut self, version: u64, now: Instant, writes: &[KeyRange]) {
        let mut keys = Vec::new();
        for (b, e) in writes {
            if single_key(b, e) {
                self.points.insert(b.clone(), version);
                keys.push(b.clone());
            } else if b < e {
                self.ranges.push_back((version, b.clone(), e.clone()));
            }
        }
        match self.log.back_mut() {
            Some((v, _, k)) if *v == version => k.extend(keys),
            _ => self.log.push_back((version, now, keys)),
        }
    }

    /// Forget versions older than the window.
    pub(crate) fn prune(&mut self, now: Instant) {
        while let Some((version, at, _)) = self.log.front() {
            if now.duration_since(*at) <= self.window {
                break;
            }
            let version = *version;
            if let Some((_, _, keys)) = self.log.pop_front() {
                for k in keys {
                    // One search per key: forgotten unless a newer version wrote it again.
                    if let Entry::Occupied(e) = self.points.entry(k)
                        && *e.get() == version
                    {
                        e.remove();
                    }
                }
            }
            while self.ranges.front().is_some_and(|(v, _, _)| *v <= version) {
                self.ranges.pop_front();
            }
            self.forgotten_through = self.forgotten_through.max(version);
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
        h.record(10, now, &[point(b"a")]);
        assert!(h.conflicts(9, &[point(b"a")]));
        assert!(!h.conflicts(10, &[point(b"a")]));
        assert!(!h.conflicts(9, &[point(b"b")]));
        assert!(h.conflicts(9, &[range(b"", b"b")]));
        assert!(!h.conflicts(9, &[range(b"a\x00", b"z")]));
    }

    #[test]
    fn range_writes_conflict_on_overlap_only() {
        let mut h = ConflictHistory::new(Duration::from_secs(5), 0);
        h.record(5, Instant::now(), &[range(b"b", b"d")]);
        assert!(h.conflicts(4, &[point(b"c")]));
        assert!(h.conflicts(4, &[range(b"a", b"b\x00")]));
        assert!(!h.conflicts(4, &[range(b"d", b"e")]));
        assert!(!h.conflicts(4, &[range(b"a", b"b")]));
    }

    #[test]
    fn prune_forgets_and_marks_too_old() {
        let mut h = ConflictHistory::new(Duration::from_millis(10), 0);
        let t0 = Instant::now();
        h.record(5, t0, &[point(b"a"), range(b"x", b"y")]);
        h.record(6, t0 + Duration::from_millis(20), &[point(b"b")]);
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
        h.record(1, t0, &[point(b"k")]);
        h.record(2, t0 + Duration::from_millis(20), &[point(b"k")]);
        h.prune(t0 + Duration::from_millis(25));
        assert!(h.conflicts(1, &[point(b"k")]));
    }
}
