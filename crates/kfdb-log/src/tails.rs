//! What this broker keeps in memory about the tails of the partitions it serves: the hot-segment
//! cache (`cache.rs`) and one high-watermark channel per partition that a fetch is long-polling.
//!
//! Writers feed it after their commits are durable ([`Tails::appended`]), so it never holds
//! anything the store does not; the reader answers from it; retention and DeleteRecords trim it;
//! deleting a topic drops it. A partition nobody tails costs nothing here.
//!
//! It also remembers which partitions of compacted topics were appended to since compaction last
//! looked at them (`compaction.rs` takes the set), so compaction never scans a clean log.

use crate::cache::{CacheStats, HotCache, NewBatch};
use crate::ids::PartitionId;
use crate::values::PartitionState;
use dashmap::DashMap;
use tokio::sync::watch;

/// See the module documentation.
pub struct Tails {
    cache: HotCache,
    /// High watermark announcements: an append publishes its partition's new next offset so that
    /// waiting fetches wake up without polling.
    watermarks: DashMap<PartitionId, watch::Sender<i64>>,
    /// Partitions of compacted topics written since compaction last took them.
    dirty: std::sync::Mutex<std::collections::HashSet<PartitionId>>,
}

impl Tails {
    pub(crate) fn new(cache_bytes: usize) -> Self {
        Self {
            cache: HotCache::new(cache_bytes),
            watermarks: DashMap::new(),
            dirty: Default::default(),
        }
    }

    pub(crate) fn cache(&self) -> &HotCache {
        &self.cache
    }

    /// A receiver that changes whenever the partition's high watermark (or last stable offset)
    /// advances.
    pub fn watch(&self, p: PartitionId) -> watch::Receiver<i64> {
        self.watermarks
            .entry(p)
            .or_insert_with(|| watch::channel(-1).0)
            .subscribe()
    }

    /// A fetch stopped watching the partition: forget its channel if no one else watches, so
    /// partitions nobody long-polls cost no memory.
    pub fn unwatch(&self, p: PartitionId) {
        self.watermarks
            .remove_if(&p, |_, s| s.receiver_count() == 0);
    }

    /// Partitions with a watermark channel (fetches long-polling them).
    pub fn watched(&self) -> usize {
        self.watermarks.len()
    }

    /// Hot-segment cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// A commit wrote `batches` to `p` and left it in `state`: cache them and wake its fetches.
    pub(crate) fn appended(&self, p: PartitionId, batches: Vec<NewBatch>, state: &PartitionState) {
        self.cache.appended(
            p,
            batches,
            state.log_start,
            state.next_offset,
            state.last_stable(),
        );
        self.announce(p, state.next_offset);
    }

    /// A commit's outcome is unknown (or it wrote nothing this broker saw): the cached tail of `p`
    /// may be behind the store, so drop it; fetches are woken to read the store.
    pub(crate) fn unsure(&self, p: PartitionId, next_offset: Option<i64>) {
        self.cache.forget(p);
        if let Some(next) = next_offset {
            self.announce(p, next);
        }
    }

    /// The log start of `p` moved to `log_start` (retention, DeleteRecords).
    pub(crate) fn truncated(&self, p: PartitionId, log_start: i64) {
        self.cache.truncated(p, log_start);
    }

    /// Drop the cached tails of the partitions `keep` says no to (this broker no longer leads
    /// them).
    pub(crate) fn retain(&self, keep: impl Fn(PartitionId) -> bool) {
        self.cache.retain(keep);
    }

    /// The topic is gone: drop its cached batches and close its channels (waiting fetches wake).
    pub(crate) fn drop_topic(&self, tid: i64) {
        self.cache.drop_topic(tid);
        self.watermarks.retain(|p, _| p.tid != tid);
    }

    /// `p` (of a compacted topic) got new records: compaction should look at it.
    pub(crate) fn mark_dirty(&self, p: PartitionId) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p);
    }

    /// The partitions marked dirty since the last call.
    pub(crate) fn take_dirty(&self) -> Vec<PartitionId> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        dirty.drain().collect()
    }

    fn announce(&self, p: PartitionId, next_offset: i64) {
        if let Some(s) = self.watermarks.get(&p) {
            s.send_replace(next_offset);
        }
    }
}
