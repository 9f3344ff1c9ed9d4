//! Partition leadership as this broker holds it: who leads each partition (computed from the
//! cluster view, `placement.rs`), the leader epochs this broker claimed, the epochs Metadata
//! reports, OffsetsForLeaderEpoch, and operators' pins.
//!
//! A broker that leads a partition claims it before its first append or read as leader: one small
//! store transaction writes the partition's owner key (`owner.rs`) with this node and the next
//! epoch — unless it already holds it — and records where that epoch starts
//! (`("part", tid, p, "epoch", e)` → the next offset). Every append then reads the owner key as a
//! conflicting read and refuses to write when it names another node, so a deposed leader's commit
//! in flight conflicts and is never acknowledged. Claims are cached; a change of view forgets the
//! claims of partitions this broker no longer leads, and a refused append forgets its one.
//!
//! Claims are lazy: a change of leadership writes nothing until the new leader is first asked
//! about a partition. Metadata therefore reports, for a partition this broker has not claimed, the
//! stored epoch plus one when the stored owner is not the computed leader: exactly the epoch the
//! leader will write when it claims.

use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::members::Membership;
use crate::partition;
use crate::values::{self, Owner};
use dashmap::DashMap;
use futures::future::try_join_all;
use kfdb_kv::{Database, MutationType, RangeOption};
use std::sync::Arc;

/// See the module documentation.
pub struct Leadership {
    db: Database,
    membership: Arc<Membership>,
    /// Partitions whose owner key names this broker, with the epoch.
    claimed: DashMap<PartitionId, i32>,
}

impl Leadership {
    pub(crate) fn new(db: Database, membership: Arc<Membership>) -> Self {
        Self {
            db,
            membership,
            claimed: DashMap::new(),
        }
    }

    /// The node this broker computes as `p`'s leader (`None`: no broker is live).
    pub fn leader(&self, p: PartitionId) -> Option<i32> {
        self.membership.view().leader(p)
    }

    /// Whether this broker leads `p`.
    pub fn leads(&self, p: PartitionId) -> bool {
        self.leader(p) == Some(self.membership.node_id())
    }

    /// Partitions this broker holds a claim on.
    pub fn claimed(&self) -> usize {
        self.claimed.len()
    }

    /// Hold `p` as its leader: its leader epoch. `NotLeader` when this broker does not lead it.
    pub async fn claim(&self, p: PartitionId) -> LogResult<i32> {
        if !self.leads(p) {
            self.claimed.remove(&p);
            return Err(LogError::NotLeader);
        }
        if let Some(e) = self.claimed.get(&p) {
            return Ok(*e);
        }
        let node = self.membership.node_id();
        let (owner, displaced) = self
            .db
            .run(|tx, _| async move {
                if tx.get(&keys::topic_meta(p.tid), true).await?.is_none() {
                    return Err(LogError::UnknownTopic);
                }
                let key = keys::partition_owner(p);
                let current = match tx.get(&key, false).await? {
                    Some(v) => Some(Owner::decode(&v)?),
                    None => None,
                };
                match current {
                    Some(o) if o.node == node => Ok((o, None)),
                    other => {
                        let owner = Owner {
                            node,
                            epoch: other.map(|o| o.epoch + 1).unwrap_or(0),
                        };
                        tx.set(&key, &owner.encode());
                        let state = partition::read_state(&tx, p, false).await?;
                        tx.set(
                            &keys::leader_epoch_start(p, owner.epoch),
                            &values::encode_counter(state.next_offset),
                        );
                        Ok((owner, other))
                    }
                }
            })
            .await?;
        if let Some(o) = displaced {
            tracing::info!(partition = %p, from = o.node, epoch = owner.epoch, "took over partition");
        }
        // Still the leader? (The view may have moved while the claim ran.)
        if !self.leads(p) {
            return Err(LogError::NotLeader);
        }
        self.claimed.insert(p, owner.epoch);
        Ok(owner.epoch)
    }

    /// Forget a claim (an append found another owner).
    pub(crate) fn forget(&self, p: PartitionId) {
        self.claimed.remove(&p);
    }

    /// Forget every claim of a topic.
    pub(crate) fn forget_topic(&self, tid: i64) {
        self.claimed.retain(|p, _| p.tid != tid);
    }

    /// The view changed: forget the claims of partitions this broker no longer leads. Returns
    /// them (their cached tails must go too).
    pub(crate) fn view_changed(&self) -> Vec<PartitionId> {
        let view = self.membership.view();
        let me = self.membership.node_id();
        let mut lost = Vec::new();
        self.claimed.retain(|p, _| {
            let keep = view.leader(*p) == Some(me);
            if !keep {
                lost.push(*p);
            }
            keep
        });
        lost
    }

    /// The leader epochs Metadata reports for `partitions` (see the module documentation).
    pub async fn reported_epochs(&self, partitions: &[PartitionId]) -> LogResult<Vec<i32>> {
        let view = self.membership.view();
        let known: Vec<Option<i32>> = partitions
            .iter()
            .map(|p| self.claimed.get(p).map(|e| *e))
            .collect();
        if known.iter().all(Option::is_some) {
            return Ok(known.into_iter().flatten().collect());
        }
        let known_ref = &known;
        let stored = self
            .db
            .run(|tx, _| async move {
                let tx = &tx;
                let reads = partitions.iter().zip(known_ref).map(|(p, k)| async move {
                    if k.is_some() {
                        return Ok::<_, LogError>(None);
                    }
                    match tx.get(&keys::partition_owner(*p), true).await? {
                        Some(v) => Ok(Some(Owner::decode(&v)?)),
                        None => Ok(None),
                    }
                });
                try_join_all(reads).await
            })
            .await?;
        Ok(partitions
            .iter()
            .zip(known)
            .zip(stored)
            .map(|((p, k), s)| match (k, s) {
                (Some(e), _) => e,
                (None, Some(o)) if Some(o.node) == view.leader(*p) => o.epoch,
                (None, Some(o)) => o.epoch + 1,
                (None, None) => 0,
            })
            .collect())
    }

    /// OffsetsForLeaderEpoch for partition `p` led by this broker: the epoch at or below `epoch`
    /// that has records (or `epoch` itself) and the offset where the next epoch starts (the log
    /// end offset for the current one). kfdb never truncates a log, so no answer here ever makes a
    /// consumer think records it read were lost.
    pub async fn end_offset_for_epoch(&self, p: PartitionId, epoch: i32) -> LogResult<(i32, i64)> {
        let current = self.claim(p).await?;
        self.db
            .run(|tx, _| async move {
                let state = partition::read_state(&tx, p, true).await?;
                if epoch >= current {
                    return Ok((current, state.next_offset));
                }
                let (b, e) = keys::leader_epochs(p);
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                let mut at_or_below = None;
                let mut next_start = None;
                for kv in &rows {
                    let e = keys::parse_leader_epoch(p, &kv.key)?;
                    let start = values::decode_counter("leader epoch start", &kv.value)?;
                    if e <= epoch {
                        at_or_below = Some(e);
                    } else if next_start.is_none() {
                        next_start = Some(start);
                    }
                }
                Ok::<_, LogError>((
                    at_or_below.unwrap_or(epoch),
                    next_start.unwrap_or(state.next_offset).max(state.log_start),
                ))
            })
            .await
    }

    /// Pin `p`'s leader to `node` (`None`: remove the pin), for every broker (they re-read pins
    /// when `members_version` changes).
    pub async fn pin(&self, p: PartitionId, node: Option<i32>) -> LogResult<()> {
        self.db
            .run(|tx, _| async move {
                match node {
                    Some(n) => tx.set(&keys::pin(p), &values::encode_node(n)),
                    None => tx.clear(&keys::pin(p)),
                }
                tx.atomic_op(
                    &keys::members_version(),
                    &1i64.to_le_bytes(),
                    MutationType::Add,
                );
                Ok::<_, LogError>(())
            })
            .await?;
        self.membership.refresh().await
    }
}
