//! The hot-segment cache: the newest record batches of the partitions this broker appends to, in
//! memory, so a tailing Fetch (and a long poll that finds nothing new) is answered without a store
//! read.
//!
//! Only the partition's writer fills it, after its append commits, so the cache never holds
//! anything the store does not. Each cached partition covers a contiguous range of offsets
//! `[first cached batch, next offset)` plus the partition's log start; a fetch inside that range is
//! served here, anything older goes to the store. Memory is bounded by `limit` bytes: the least
//! recently used partition gives up its oldest batches first (and is dropped once it has none), so
//! partitions being tailed keep their newest batches, and a single partition larger than the limit
//! keeps only its newest batches. Retention, DeleteRecords and topic deletion update or drop entries.
//!
//! With one broker per partition (today's ownership rule) the writer is the only one advancing a
//! partition, which is what keeps the cached high watermark exact.

use crate::ids::PartitionId;
use crate::parts::RecordParts;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// A batch just written to a partition, as the cache takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The batch as stored (the pieces the store keeps it in: one per chunk row).
    pub bytes: RecordParts,
}

struct Cached {
    last_offset: i64,
    bytes: RecordParts,
}

struct Part {
    batches: VecDeque<Cached>,
    /// Base offset of the first cached batch (== next_offset when none is cached).
    first_offset: i64,
    bytes: usize,
    log_start: i64,
    next_offset: i64,
    last_stable: i64,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    parts: HashMap<PartitionId, Part>,
    total: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

/// What a cached read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRead {
    /// Whole batches from the one holding the offset, up to the byte budget (the cached batches
    /// themselves, not a copy).
    pub records: RecordParts,
    /// Next offset.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start: i64,
    /// Last stable offset (first offset of the oldest open transaction, else the high watermark).
    pub last_stable: i64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fetches answered from memory.
    pub hits: u64,
    /// Fetches that went to the store.
    pub misses: u64,
    /// Bytes of batches held.
    pub bytes: u64,
    /// Partitions held.
    pub partitions: u64,
}

/// See the module documentation.
pub struct HotCache {
    inner: Mutex<Inner>,
    limit: usize,
}

/// A read the cache cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Not cached (or the offset is older than the cached range): read the store.
    Store,
    /// Outside `[log start, high watermark]`.
    OutOfRange,
}

impl HotCache {
    /// A cache holding at most `limit` bytes of batches.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The writer committed `batches` (in offset order); the partition
    /// now has `log_start`, `next_offset` and `last_stable`.
    pub fn appended(
        &self,
        key: PartitionId,
        batches: Vec<NewBatch>,
        log_start: i64,
        next_offset: i64,
        last_stable: i64,
    ) {
        if self.limit == 0 {
            return;
        }
        let mut g = self.lock();
        g.clock += 1;
        let clock = g.clock;
        let first_new = batches
            .first()
            .map(|b| b.base_offset)
            .unwrap_or(next_offset);
        let (mut added, mut removed) = (0usize, 0usize);
        let part = g.parts.entry(key).or_insert_with(|| Part {
            batches: VecDeque::new(),
            first_offset: first_new,
            bytes: 0,
            log_start,
            next_offset: first_new,
            last_stable: first_new,
            last_used: clock,
        });
        if part.next_offset != first_new {
            // A gap (e.g. appended elsewhere, or the first append after a restart): start over.
            removed = part.bytes;
            part.batches.clear();
            part.bytes = 0;
            part.first_offset = first_new;
        }
        for b in batches {
            added += b.bytes.len();
            part.bytes += b.bytes.len();
            part.batches.push_back(Cached {
                last_offset: b.last_offset,
                bytes: b.bytes,
            });
        }
        part.log_start = log_start;
        part.next_offset = next_offset;
        part.last_stable = last_stable;
        part.last_used = clock;
        g.total = g.total - removed + added;
        self.evict(&mut g, key);
    }

    fn evict(&self, g: &mut Inner, keep: PartitionId) {
        if g.total <= self.limit {
            return;
        }
        // Free a little more than needed (1/16 of the limit), so that a full cache does not scan
        // for the coldest partition on every append.
        let target = self.limit - self.limit / 16;
        while g.total > target {
            let coldest = g
                .parts
                .iter()
                .filter(|(k, _)| **k != keep)
                .min_by_key(|(_, p)| p.last_used)
                .map(|(k, _)| *k)
                .unwrap_or(keep);
            let Some(p) = g.parts.get_mut(&coldest) else {
                return;
            };
            // The coldest partition gives up its oldest batches, as many as needed; its newest
            // ones stay for its tailing readers. Emptied, it is dropped (other than the one being
            // written: it keeps its watermarks).
            let mut freed = 0;
            while g.total - freed > target {
                let Some(old) = p.batches.pop_front() else {
                    break;
                };
                freed += old.bytes.len();
                p.first_offset = old.last_offset + 1;
            }
            p.bytes -= freed;
            let emptied = p.batches.is_empty();
            g.total -= freed;
            if emptied && coldest != keep {
                g.parts.remove(&coldest);
            } else if freed == 0 {
                return;
            }
        }
    }

    /// Whole batches from `offset`, about `max_bytes` (the first batch always whole).
    pub fn read(
        &self,
        key: PartitionId,
        offset: i64,
        max_bytes: usize,
    ) -> Result<CachedRead, Miss> {
        let mut g = self.lock();
        g.clock += 1;
        let clock = g.clock;
        let Some(part) = g.parts.get_mut(&key) else {
            g.misses += 1;
            return Err(Miss::Store);
        };
        if offset < part.log_start || offset > part.next_offset {
            return Err(Miss::OutOfRange);
        }
        if offset < part.first_offset {
            g.misses += 1;
            return Err(Miss::Store);
        }
        part.last_used = clock;
        let mut records = RecordParts::new();
        // Batches are in offset order: find the first one holding `offset` by binary search (a
        // partition can have hundreds of thousands of small batches cached).
        let first = part.batches.partition_point(|b| b.last_offset < offset);
        for b in part.batches.range(first..) {
            if !records.is_empty() && records.len() >= max_bytes {
                break;
            }
            records.extend(&b.bytes);
        }
        let read = CachedRead {
            records,
            high_watermark: part.next_offset,
            log_start: part.log_start,
            last_stable: part.last_stable,
        };
        g.hits += 1;
        Ok(read)
    }

    /// The log start moved to `log_start` (retention, DeleteRecords): drop batches below it.
    pub fn truncated(&self, key: PartitionId, log_start: i64) {
        let mut g = self.lock();
        let mut freed = 0;
        if let Some(p) = g.parts.get_mut(&key) {
            while p.batches.front().is_some_and(|b| b.last_offset < log_start) {
                if let Some(b) = p.batches.pop_front() {
                    freed += b.bytes.len();
                    p.first_offset = b.last_offset + 1;
                }
            }
            p.bytes -= freed;
            p.log_start = p.log_start.max(log_start);
            p.first_offset = p.first_offset.max(p.log_start.min(p.next_offset));
        }
        g.total -= freed;
    }

    /// Forget one partition (its offsets may have moved without this cache seeing it).
    pub fn forget(&self, key: PartitionId) {
        let mut g = self.lock();
        if let Some(p) = g.parts.remove(&key) {
            g.total -= p.bytes;
        }
    }

    /// Keep only the partitions `keep` says yes to.
    pub fn retain(&self, keep: impl Fn(PartitionId) -> bool) {
        let mut g = self.lock();
        let mut freed = 0;
        g.parts.retain(|k, p| {
            let kept = keep(*k);
            if !kept {
                freed += p.bytes;
            }
            kept
        });
        g.total -= freed;
    }

    /// Forget every partition of a topic.
    pub fn drop_topic(&self, tid: i64) {
        let mut g = self.lock();
        let mut freed = 0;
        g.parts.retain(|k, p| {
            if k.tid == tid {
                freed += p.bytes;
            }
            k.tid != tid
        });
        g.total -= freed;
    }

    /// Counters and sizes.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            hits: g.hits,
            misses: g.misses,
            bytes: g.total as u64,
            partitions: g.parts.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![n as u8; n])
    }

    fn k(tid: i64, partition: i32) -> PartitionId {
        PartitionId::new(tid, partition)
    }

    fn new(batches: Vec<(i64, i64, Bytes)>) -> Vec<NewBatch> {
        batches
            .into_iter()
            .map(|(base_offset, last_offset, bytes)| NewBatch {
                base_offset,
                last_offset,
                bytes: bytes.into(),
            })
            .collect()
    }

    #[test]
    fn serves_the_tail_and_misses_below_it() {
        let c = HotCache::new(1 << 20);
        let p = k(1, 0);
        assert_eq!(c.read(p, 0, 100), Err(Miss::Store));
        c.appended(p, new(vec![(10, 11, b(10)), (12, 12, b(20))]), 0, 13, 13);
        let r = c.read(p, 11, 1).unwrap();
        assert_eq!(r.records.len(), 10, "first batch whole, budget reached");
        assert_eq!(r.high_watermark, 13);
        assert_eq!(c.read(p, 10, 1000).unwrap().records.len(), 30);
        assert_eq!(
            c.read(p, 13, 1000).unwrap().records.len(),
            0,
            "tail: nothing new, no store read"
        );
        assert_eq!(c.read(p, 5, 1000), Err(Miss::Store), "older than cached");
        assert_eq!(c.read(p, 14, 1000), Err(Miss::OutOfRange));
        c.truncated(p, 12);
        assert_eq!(c.read(p, 11, 1000), Err(Miss::OutOfRange));
        assert_eq!(c.read(p, 12, 1000).unwrap().records.len(), 20);
        let s = c.stats();
        assert_eq!((s.bytes, s.partitions), (20, 1));
        c.drop_topic(1);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn bounded_by_evicting_cold_partitions_first() {
        let c = HotCache::new(100);
        c.appended(k(1, 0), new(vec![(0, 0, b(60))]), 0, 1, 1);
        c.appended(k(2, 0), new(vec![(0, 0, b(30))]), 0, 1, 1);
        let _ = c.read(k(2, 0), 0, 10);
        c.appended(k(3, 0), new(vec![(0, 0, b(50))]), 0, 1, 1);
        assert_eq!(
            c.read(k(1, 0), 0, 10),
            Err(Miss::Store),
            "coldest partition went first"
        );
        assert!(c.read(k(2, 0), 0, 10).is_ok());
        assert!(c.stats().bytes <= 100);
        // One partition bigger than the limit keeps only its newest batches.
        c.appended(k(3, 0), new(vec![(1, 1, b(90)), (2, 2, b(90))]), 0, 3, 3);
        assert!(c.stats().bytes <= 100);
        assert_eq!(c.read(k(3, 0), 1, 10), Err(Miss::Store));
        assert_eq!(c.read(k(3, 0), 2, 10).unwrap().records.len(), 90);
    }

    #[test]
    fn finds_the_batch_holding_any_offset_among_many() {
        let c = HotCache::new(1 << 20);
        let p = k(1, 0);
        // 1,000 batches of 3 records each: offsets 0..3000, batch i covers 3i..=3i+2 and its
        // bytes are all `i % 251` so the first byte names the batch.
        let batches = (0..1000)
            .map(|i: i64| (3 * i, 3 * i + 2, Bytes::from(vec![(i % 251) as u8; 4])))
            .collect();
        c.appended(p, new(batches), 0, 3000, 3000);
        for offset in [0, 1, 2, 3, 1499, 1500, 2997, 2999] {
            let r = c.read(p, offset, 1).unwrap();
            assert_eq!(r.records.len(), 4, "one whole batch for offset {offset}");
            assert_eq!(
                r.records.to_bytes()[0],
                ((offset / 3) % 251) as u8,
                "offset {offset}"
            );
        }
        assert_eq!(c.read(p, 2990, 1 << 20).unwrap().records.len(), 4 * 4);
    }

    #[test]
    fn a_colder_partition_keeps_its_newest_batches() {
        // Limit 112: eviction frees down to 105 (1/16 below the limit).
        let c = HotCache::new(112);
        let (a, b2) = (k(1, 0), k(2, 0));
        c.appended(
            a,
            new(vec![(0, 0, b(20)), (1, 1, b(20)), (2, 2, b(20))]),
            0,
            3,
            3,
        );
        c.appended(b2, new(vec![(0, 0, b(30))]), 0, 1, 1);
        // 90 cached; 30 more for b2 makes 120: `a`, the colder, gives up only its oldest batch.
        c.appended(b2, new(vec![(1, 1, b(30))]), 0, 2, 2);
        assert_eq!(c.stats().bytes, 100);
        assert_eq!(c.read(a, 0, 10), Err(Miss::Store), "oldest batch evicted");
        assert_eq!(c.read(a, 1, 1000).unwrap().records.len(), 40, "newest kept");
        assert_eq!(c.read(b2, 0, 1000).unwrap().records.len(), 60);
        assert_eq!(c.stats().partitions, 2);
    }

    #[test]
    fn a_gap_restarts_the_cached_range() {
        let c = HotCache::new(1000);
        c.appended(k(1, 0), new(vec![(0, 0, b(10))]), 0, 1, 1);
        c.appended(k(1, 0), new(vec![(5, 5, b(10))]), 0, 6, 6);
        assert_eq!(c.read(k(1, 0), 0, 100), Err(Miss::Store));
        assert_eq!(c.read(k(1, 0), 5, 100).unwrap().records.len(), 10);
        assert_eq!(c.stats().bytes, 10);
    }
}
