//! The partitions that have been appended to, page by page, each with its topic: what the
//! retention and compaction sweeps walk.
//!
//! A partition gets its state key with its first append (or transaction marker), in the partition
//! space (`keys::all_partition_metadata`) that holds only partitions' metadata — state, owner,
//! leader epochs, producer states, transactions — so walking that space costs what the used
//! partitions hold there, not what the topics cost: a million topics created and never written
//! add nothing to a sweep. A partition's producer states sort just before its state key; a page
//! that ends among them skips the rest, so thousands of producers cost one page, not thousands.
//! (Listing every topic instead read each one's metadata on every pass: a million point reads,
//! and the compactor's first pass, 15 s after a start, filled the store's block cache with topic
//! metadata while topics were being created.)

use crate::catalog;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys::{self, PartitionMetaKey};
use crate::values::TopicMeta;
use futures::future::try_join_all;
use kfdb_kv::{Database, RangeOption};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows of the partition space read per store transaction.
const PAGE_ROWS: usize = 1_000;

/// A walk over the written partitions, in key order (topic id, then partition).
pub(crate) struct WrittenPartitions {
    db: Database,
    /// Where the next page starts; `None` once the walk is done.
    from: Option<Vec<u8>>,
    end: Vec<u8>,
    /// The topic of the partitions just returned (they come grouped by topic), `None` inside
    /// when it is gone.
    last_topic: Option<(i64, Option<Arc<TopicMeta>>)>,
}

impl WrittenPartitions {
    pub(crate) fn new(db: Database) -> Self {
        let (begin, end) = keys::all_partition_metadata();
        Self {
            db,
            from: Some(begin),
            end,
            last_topic: None,
        }
    }

    /// The next page: those written partitions among the next `PAGE_ROWS` keys of the partition
    /// space that `keep` accepts and whose topic still has them, each with its topic (possibly
    /// none in a page); `None` once the walk is done. One snapshot transaction per page reads the
    /// keys and, together, the metadata of the topics first met in it. After an error the same
    /// page is read again by the next call.
    pub(crate) async fn next_page(
        &mut self,
        keep: impl Fn(PartitionId) -> bool,
    ) -> LogResult<Option<Vec<(Arc<TopicMeta>, PartitionId)>>> {
        let Some(from) = self.from.clone() else {
            return Ok(None);
        };
        let (end, keep) = (self.end.clone(), &keep);
        let known = self.last_topic.as_ref().map(|(tid, _)| *tid);
        let (next, written, metas) = self
            .db
            .run(|tx, _| {
                let (from, end) = (from.clone(), end.clone());
                async move {
                    let range = RangeOption::new(from, end).limit(PAGE_ROWS);
                    let rows = tx.get_range(&range, true).await?;
                    let mut written = Vec::new();
                    let mut last = None;
                    for kv in &rows.kvs {
                        last = Some(keys::parse_partition_meta(&kv.key)?);
                        if let Some(PartitionMetaKey::State(p)) = last
                            && keep(p)
                        {
                            written.push(p);
                        }
                    }
                    // A full page may be followed by more rows even when `more` is not set. When
                    // it ends among a partition's producer states, the rest of them are skipped:
                    // they sort before the partition's state key, where the next page starts.
                    let next = match rows.kvs.last() {
                        Some(row) if rows.more || rows.kvs.len() >= PAGE_ROWS => Some(match last {
                            Some(PartitionMetaKey::Producer(p, _)) => keys::partition_state(p),
                            _ => kfdb_kv::key_after(&row.key),
                        }),
                        _ => None,
                    };
                    let mut tids: Vec<i64> = written.iter().map(|p| p.tid).collect();
                    tids.dedup();
                    tids.retain(|tid| Some(*tid) != known);
                    let metas =
                        try_join_all(tids.iter().map(|tid| catalog::read_meta(&tx, *tid, true)))
                            .await?;
                    Ok::<_, LogError>((next, written, tids.into_iter().zip(metas).collect()))
                }
            })
            .await?;
        self.from = next;
        let mut metas: HashMap<i64, Option<TopicMeta>> = metas;
        let mut out = Vec::new();
        for p in written {
            if self.last_topic.as_ref().map(|(tid, _)| *tid) != Some(p.tid) {
                let topic = metas.remove(&p.tid).flatten().map(Arc::new);
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
