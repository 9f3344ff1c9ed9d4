//! The partitions that have been appended to, page by page, each with its topic: what the
//! retention and compaction sweeps walk.
//!
//! A partition gets its state key with its first append, in the partition space
//! (`keys::all_partition_metadata`) that holds only partitions' metadata, so walking that space
//! costs what the used partitions cost, not what the topics cost: a million topics created and
//! never written add nothing to a sweep. (Listing every topic instead read each one's metadata
//! on every pass: a million point reads, and the compactor's first pass, 15 s after a start, filled
//! the store's block cache with topic metadata while topics were being created.)

use crate::catalog::TopicCatalog;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys::{self, PartitionMetaKey};
use crate::values::TopicMeta;
use kfdb_kv::{Database, RangeOption};
use std::sync::Arc;

/// Rows of the partition space read per store transaction.
const PAGE_ROWS: usize = 1_000;

/// A walk over the written partitions, in key order (topic id, then partition).
pub(crate) struct WrittenPartitions {
    db: Database,
    topics: Arc<TopicCatalog>,
    /// Where the next page starts; `None` once the walk is done.
    from: Option<Vec<u8>>,
    end: Vec<u8>,
    /// The topic of the partitions just returned (they come grouped by topic), `None` inside
    /// when it is gone.
    last_topic: Option<(i64, Option<Arc<TopicMeta>>)>,
}

impl WrittenPartitions {
    pub(crate) fn new(db: Database, topics: Arc<TopicCatalog>) -> Self {
        let (begin, end) = keys::all_partition_metadata();
        Self {
            db,
            topics,
            from: Some(begin),
            end,
            last_topic: None,
        }
    }

    /// The next page: those written partitions among the next `PAGE_ROWS` keys of the partition
    /// space that `keep` accepts and whose topic still has them, each with its topic (possibly
    /// none in a page); `None` once the walk is done. Keys are read in one snapshot transaction
    /// per page; each topic's metadata once per walk, and only for partitions `keep` accepted.
    pub(crate) async fn next_page(
        &mut self,
        keep: impl Fn(PartitionId) -> bool,
    ) -> LogResult<Option<Vec<(Arc<TopicMeta>, PartitionId)>>> {
        let Some(from) = self.from.take() else {
            return Ok(None);
        };
        let end = self.end.clone();
        let rows = self
            .db
            .run(|tx, _| {
                let (from, end) = (from.clone(), end.clone());
                async move {
                    let range = RangeOption::new(from, end).limit(PAGE_ROWS);
                    Ok::<_, LogError>(tx.get_range(&range, true).await?)
                }
            })
            .await?;
        // A full page may be followed by more rows even when `more` is not set.
        self.from = match rows.kvs.last() {
            Some(last) if rows.more || rows.kvs.len() >= PAGE_ROWS => {
                Some(kfdb_kv::key_after(&last.key))
            }
            _ => None,
        };
        let mut out = Vec::new();
        for kv in &rows.kvs {
            let PartitionMetaKey::State(p) = keys::parse_partition_meta(&kv.key)? else {
                continue;
            };
            if !keep(p) {
                continue;
            }
            if self.last_topic.as_ref().map(|(tid, _)| *tid) != Some(p.tid) {
                let topic = self.topics.get_by_tid(p.tid).await?;
                self.last_topic = Some((p.tid, topic));
            }
            if let Some((_, Some(topic))) = &self.last_topic
                && topic.partition(p.partition).is_some()
            {
                out.push((topic.clone(), p));
            }
        }
        Ok(Some(out))
    }
}
