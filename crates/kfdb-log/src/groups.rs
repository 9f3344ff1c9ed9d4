//! Consumer-group state in the store: committed offsets, and the group's last stable membership
//! (generation, protocol, leader, members and their assignments).
//!
//! A commit touches only its group's keys: one key per (group, partition), no scan over other
//! groups. The group coordinator (kfdb-broker) owns the live membership state machine and
//! persists a group here when a rebalance completes; after a restart the stored generation and
//! members are loaded back. The coordinating broker is recorded in the group's owner key
//! (`owner.rs`), read by every group transaction, so that with several brokers a deposed
//! coordinator's writes conflict. Every write here is idempotent (sets and clears), so a retry
//! after `commit_unknown_result` is harmless.

use crate::clock::now_ms;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::owner;
use crate::values::{
    CommittedOffset, ConsumerGroupRecord, ConsumerMemberRecord, GroupRecord, MemberRecord,
};
use kfdb_kv::{Database, RangeOption, Transaction};

/// See the module documentation.
pub struct GroupStore {
    db: Database,
    /// This broker's node id, written into the owner keys of the groups it coordinates.
    node: i32,
}

/// Claim the group's owner key for `node` (a conflicting read of it).
pub(crate) async fn claim_group(tx: &Transaction, group: &str, node: i32) -> LogResult<()> {
    owner::claim(tx, &keys::group_owner(group), node).await?;
    Ok(())
}

impl GroupStore {
    pub(crate) fn new(db: Database, node: i32) -> Self {
        Self { db, node }
    }

    /// Load a group's stored state (`None`: never stored), taking over as its coordinator.
    pub async fn load(&self, group: &str) -> LogResult<Option<GroupRecord>> {
        let node = self.node;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                let Some(meta) = tx.get(&keys::group_meta(group), false).await? else {
                    return Ok(None);
                };
                let (b, e) = keys::group_members(group);
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let members = rows
                    .iter()
                    .map(|kv| MemberRecord::decode(&kv.value))
                    .collect::<LogResult<Vec<_>>>()?;
                GroupRecord::decode_meta(&meta, members).map(Some)
            })
            .await
    }

    /// Persist a group's state (replacing its stored members).
    pub async fn store(&self, group: &str, record: &GroupRecord) -> LogResult<()> {
        let node = self.node;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                tx.set(&keys::group_index(group), b"");
                tx.set(&keys::group_meta(group), &record.encode_meta());
                let (b, e) = keys::group_members(group);
                tx.clear_range(&b, &e);
                for m in &record.members {
                    tx.set(&keys::group_member(group, &m.member_id), &m.encode());
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Load a KIP-848 group's stored state (`None`: never stored), taking over as its
    /// coordinator.
    pub async fn load_consumer_group(&self, group: &str) -> LogResult<Option<ConsumerGroupRecord>> {
        let node = self.node;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                let Some(meta) = tx.get(&keys::consumer_group_meta(group), false).await? else {
                    return Ok(None);
                };
                let (b, e) = keys::consumer_members(group);
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let members = rows
                    .iter()
                    .map(|kv| ConsumerMemberRecord::decode(&kv.value))
                    .collect::<LogResult<Vec<_>>>()?;
                ConsumerGroupRecord::decode_meta(&meta, members).map(Some)
            })
            .await
    }

    /// Persist a KIP-848 group's state (replacing its stored members), so another coordinator
    /// carries on with the same epochs and assignments.
    pub async fn store_consumer_group(
        &self,
        group: &str,
        record: &ConsumerGroupRecord,
    ) -> LogResult<()> {
        let node = self.node;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                tx.set(&keys::group_index(group), b"");
                tx.set(&keys::consumer_group_meta(group), &record.encode_meta());
                let (b, e) = keys::consumer_members(group);
                tx.clear_range(&b, &e);
                for m in &record.members {
                    tx.set(&keys::consumer_member(group, &m.member_id), &m.encode());
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Store committed offsets of one group, all in one transaction.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(PartitionId, CommittedOffset)],
    ) -> LogResult<()> {
        let node = self.node;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                tx.set(&keys::group_index(group), b"");
                for (p, o) in offsets {
                    tx.set(&keys::group_offset(group, *p), &o.encode());
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Committed offsets of a group: of the given partitions, or (`None`) all of them.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<&[PartitionId]>,
    ) -> LogResult<Vec<(PartitionId, CommittedOffset)>> {
        self.db
            .run(|tx, _| async move {
                let mut out = Vec::new();
                match partitions {
                    Some(list) => {
                        for p in list {
                            if let Some(v) = tx.get(&keys::group_offset(group, *p), true).await? {
                                out.push((*p, CommittedOffset::decode(&v)?));
                            }
                        }
                    }
                    None => {
                        let (b, e) = keys::group_offsets(group);
                        for kv in tx.get_range_all(RangeOption::new(b, e), true).await? {
                            let p = keys::parse_group_offset(group, &kv.key)?;
                            out.push((p, CommittedOffset::decode(&kv.value)?));
                        }
                    }
                }
                Ok::<_, LogError>(out)
            })
            .await
    }

    /// Delete committed offsets of the given partitions.
    pub async fn delete_offsets(&self, group: &str, partitions: &[PartitionId]) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                for p in partitions {
                    tx.clear(&keys::group_offset(group, *p));
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// A group's config overrides (config resource GROUP), in name order.
    pub async fn configs(&self, group: &str) -> LogResult<Vec<(String, String)>> {
        self.db
            .run(|tx, _| async move {
                match tx.get(&keys::group_config(group), false).await? {
                    Some(v) => crate::values::decode_configs("group configs", &v),
                    None => Ok(Vec::new()),
                }
            })
            .await
    }

    /// Replace a group's config overrides (none: the key goes). Deleting the group deletes them.
    pub async fn set_configs(&self, group: &str, configs: &[(String, String)]) -> LogResult<()> {
        let mut sorted = configs.to_vec();
        sorted.sort();
        let sorted = &sorted;
        self.db
            .run(|tx, _| async move {
                if sorted.is_empty() {
                    tx.clear(&keys::group_config(group));
                } else {
                    tx.set(
                        &keys::group_config(group),
                        &crate::values::encode_configs(sorted),
                    );
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Delete a group and everything stored for it.
    pub async fn delete(&self, group: &str) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                let (b, e) = keys::group_all(group);
                tx.clear_range(&b, &e);
                tx.clear(&keys::group_index(group));
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Up to `limit` stored group ids after `after`, in order.
    pub async fn list(&self, after: Option<&str>, limit: usize) -> LogResult<Vec<String>> {
        let (begin, end) = keys::group_indexes();
        let begin = match after {
            Some(g) => kfdb_kv::key_after(&keys::group_index(g)),
            None => begin,
        };
        let rows = self
            .db
            .run(|tx, _| {
                let (begin, end) = (begin.clone(), end.clone());
                async move {
                    tx.get_range(&RangeOption::new(begin, end).limit(limit), true)
                        .await
                }
            })
            .await?;
        rows.kvs
            .iter()
            .map(|kv| keys::parse_group_index(&kv.key))
            .collect()
    }

    /// True when the group has stored state or offsets.
    pub async fn exists(&self, group: &str) -> LogResult<bool> {
        let found = self
            .db
            .run(|tx, _| async move { tx.get(&keys::group_index(group), true).await })
            .await?;
        Ok(found.is_some())
    }

    /// Partitions of `group` with transactional offsets not yet committed or aborted.
    pub async fn unstable_offsets(&self, group: &str) -> LogResult<Vec<PartitionId>> {
        self.db
            .run(|tx, _| async move {
                let (b, e) = keys::group_pendings(group);
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                rows.iter()
                    .map(|kv| keys::parse_group_pending(group, &kv.key).map(|(p, _)| p))
                    .collect()
            })
            .await
    }
}

/// A committed offset stamped now.
pub fn committed(offset: i64, leader_epoch: i32, metadata: String) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_ms: now_ms(),
    }
}
