//! Consumer-group state in the store: committed offsets, and the group's last stable membership
//! (generation, protocol, leader, members and their assignments).
//!
//! A commit touches only its group's keys: one key per (group, topic id, partition), no scan over
//! other groups. The group coordinator (kfdb-broker) owns the live membership state machine and
//! persists a group here when a rebalance completes; after a restart the stored generation and
//! members are loaded back. The coordinating broker is recorded in the group's owner key, read by
//! every group transaction, so that with several brokers a deposed coordinator's writes conflict.

use crate::error::{LogError, LogResult};
use crate::values::TopicMeta;
use crate::{Log, keys, now_ms};
use bytes::Bytes;
use kfdb_kv::tuple::{pack, unpack};
use kfdb_kv::{KvError, RangeOption, Transaction};
use std::sync::Arc;

const V1: i64 = 1;

fn corrupt(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("{what}: {e}"))
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_ms: i64,
}

type OffsetTuple = (i64, i64, i64, String, i64);

impl CommittedOffset {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: OffsetTuple = (
            V1,
            self.offset,
            i64::from(self.leader_epoch),
            self.metadata.clone(),
            self.commit_ms,
        );
        pack(&t)
    }
    fn decode(b: &[u8]) -> LogResult<Self> {
        let (v, offset, leader_epoch, metadata, commit_ms): OffsetTuple =
            unpack(b).map_err(|e| corrupt("committed offset", e))?;
        if v != V1 {
            return Err(corrupt("committed offset", format!("format version {v}")));
        }
        Ok(Self {
            offset,
            leader_epoch: leader_epoch as i32,
            metadata,
            commit_ms,
        })
    }
}

/// A group member as persisted after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id.
    pub member_id: String,
    /// Static membership id (`group.instance.id`).
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (its subscription).
    pub metadata: Bytes,
    /// The assignment the leader gave it.
    pub assignment: Bytes,
}

type MemberTuple = (
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
);

impl MemberRecord {
    fn encode(&self) -> Vec<u8> {
        let t: MemberTuple = (
            V1,
            self.member_id.clone(),
            self.instance_id.clone(),
            self.client_id.clone(),
            self.client_host.clone(),
            i64::from(self.session_timeout_ms),
            i64::from(self.rebalance_timeout_ms),
            self.metadata.to_vec(),
            self.assignment.to_vec(),
        );
        pack(&t)
    }
    fn decode(b: &[u8]) -> LogResult<Self> {
        let (
            v,
            member_id,
            instance_id,
            client_id,
            client_host,
            session,
            rebalance,
            metadata,
            assignment,
        ): MemberTuple = unpack(b).map_err(|e| corrupt("group member", e))?;
        if v != V1 {
            return Err(corrupt("group member", format!("format version {v}")));
        }
        Ok(Self {
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout_ms: session as i32,
            rebalance_timeout_ms: rebalance as i32,
            metadata: Bytes::from(metadata),
            assignment: Bytes::from(assignment),
        })
    }
}

/// A group's last stable state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRecord {
    /// Generation of the last completed rebalance.
    pub generation: i32,
    /// `consumer` for consumer groups (any string for other clients of the protocol).
    pub protocol_type: Option<String>,
    /// The chosen assignor (e.g. `range`).
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members with their assignments.
    pub members: Vec<MemberRecord>,
}

type GroupTuple = (i64, i64, Option<String>, Option<String>, Option<String>);

async fn claim_group(tx: &Transaction, group: &str, node: i32) -> LogResult<()> {
    crate::append::claim_owner(tx, &keys::group_owner(group), node).await?;
    Ok(())
}

impl Log {
    /// Load a group's stored state (`None`: never stored), taking over as its coordinator.
    pub async fn load_group(&self, group: &str) -> LogResult<Option<GroupRecord>> {
        let node = self.config.node_id;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                let Some(meta) = tx.get(&keys::group_meta(group), false).await? else {
                    return Ok(None);
                };
                let (v, generation, protocol_type, protocol, leader): GroupTuple =
                    unpack(&meta).map_err(|e| corrupt("group", e))?;
                if v != V1 {
                    return Err(corrupt("group", format!("format version {v}")));
                }
                let (b, e) = keys::group_members(group).range();
                let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
                let members = rows
                    .iter()
                    .map(|kv| MemberRecord::decode(&kv.value))
                    .collect::<LogResult<Vec<_>>>()?;
                Ok(Some(GroupRecord {
                    generation: generation as i32,
                    protocol_type,
                    protocol,
                    leader,
                    members,
                }))
            })
            .await
    }

    /// Persist a group's state (replacing its stored members).
    pub async fn store_group(&self, group: &str, record: &GroupRecord) -> LogResult<()> {
        let node = self.config.node_id;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                let t: GroupTuple = (
                    V1,
                    i64::from(record.generation),
                    record.protocol_type.clone(),
                    record.protocol.clone(),
                    record.leader.clone(),
                );
                tx.set(&keys::group_index(group), b"");
                tx.set(&keys::group_meta(group), &pack(&t));
                let (b, e) = keys::group_members(group).range();
                tx.clear_range(&b, &e);
                for m in &record.members {
                    tx.set(&keys::group_members(group).pack(&m.member_id), &m.encode());
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Store committed offsets of one group, all in one transaction.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(i64, i32, CommittedOffset)],
    ) -> LogResult<()> {
        let node = self.config.node_id;
        self.db
            .run(|tx, _| async move {
                claim_group(&tx, group, node).await?;
                tx.set(&keys::group_index(group), b"");
                for (tid, p, o) in offsets {
                    tx.set(&keys::group_offset(group, *tid, *p), &o.encode());
                }
                Ok::<_, LogError>(())
            })
            .await
    }

    /// Committed offsets of a group: of the given partitions, or (`None`) all of them.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<&[(i64, i32)]>,
    ) -> LogResult<Vec<(i64, i32, CommittedOffset)>> {
        self.db
            .run(|tx, _| async move {
                let mut out = Vec::new();
                match partitions {
                    Some(list) => {
                        for (tid, p) in list {
                            if let Some(v) =
                                tx.get(&keys::group_offset(group, *tid, *p), true).await?
                            {
                                out.push((*tid, *p, CommittedOffset::decode(&v)?));
                            }
                        }
                    }
                    None => {
                        let space = keys::group_offsets(group);
                        let (b, e) = space.range();
                        for kv in tx.get_range_all(RangeOption::new(b, e), true).await? {
                            let (tid, p): (i64, i32) = space
                                .unpack(&kv.key)
                                .map_err(|e| corrupt("offset key", e))?;
                            out.push((tid, p, CommittedOffset::decode(&kv.value)?));
                        }
                    }
                }
                Ok::<_, LogError>(out)
            })
            .await
    }

    /// Delete committed offsets of the given partitions.
    pub async fn delete_offsets(&self, group: &str, partitions: &[(i64, i32)]) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                for (tid, p) in partitions {
                    tx.clear(&keys::group_offset(group, *tid, *p));
                }
                Ok::<_, KvError>(())
            })
            .await?;
        Ok(())
    }

    /// Delete a group and everything stored for it.
    pub async fn delete_group(&self, group: &str) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                let (b, e) = keys::group_space(group).range();
                tx.clear_range(&b, &e);
                tx.clear(&keys::group_index(group));
                Ok::<_, KvError>(())
            })
            .await?;
        Ok(())
    }

    /// Up to `limit` stored group ids after `after`, in order.
    pub async fn list_groups(&self, after: Option<&str>, limit: usize) -> LogResult<Vec<String>> {
        let space = keys::group_index_space();
        let (begin, end) = space.range();
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
            .map(|kv| {
                space
                    .unpack::<String>(&kv.key)
                    .map_err(|e| corrupt("group index", e))
            })
            .collect()
    }

    /// True when the group has stored state or offsets.
    pub async fn group_exists(&self, group: &str) -> LogResult<bool> {
        let key = keys::group_index(group);
        let found = self
            .db
            .run(|tx, _| {
                let key = key.clone();
                async move { tx.get(&key, true).await }
            })
            .await?;
        Ok(found.is_some())
    }

    /// A topic by its internal id (for naming committed offsets).
    pub async fn topic_by_id(&self, tid: i64) -> LogResult<Option<Arc<TopicMeta>>> {
        let found = self
            .db
            .run(|tx, _| async move {
                match tx.get(&keys::topic_meta(tid), true).await? {
                    Some(v) => Ok(Some(TopicMeta::decode(tid, &v)?)),
                    None => Ok::<_, LogError>(None),
                }
            })
            .await?;
        Ok(found.map(Arc::new))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let o = committed(42, 3, "meta".into());
        assert_eq!(CommittedOffset::decode(&o.encode()).unwrap(), o);
        let m = MemberRecord {
            member_id: "m-1".into(),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            metadata: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        };
        assert_eq!(MemberRecord::decode(&m.encode()).unwrap(), m);
    }
}
