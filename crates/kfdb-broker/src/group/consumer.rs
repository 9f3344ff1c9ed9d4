//! KIP-848 consumer groups (`group.protocol=consumer`) as a state machine with no I/O: members
//! heartbeat with their subscriptions and owned partitions; the coordinator computes a target
//! assignment server-side (`uniform` or `range`) whenever the group epoch moves, and reconciles
//! each member towards it: first it asks the member to revoke what it must give up, and a
//! partition is handed to its new owner only once no other member still holds it.
//!
//! Its lasting state (epochs, assignor, members with their subscriptions, epochs and assignments)
//! is stored whenever it changes ([`ConsumerGroup::changes`]), so a coordinator that takes the
//! group over (another broker, or this one after a restart) carries on where it was, instead of
//! fencing every member.

use crate::error_code as ec;
use kfdb_log::{ConsumerGroupRecord, ConsumerMemberRecord};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::{Duration, Instant};
use uuid::Uuid;

/// A partition, named by topic id.
pub type Tp = (Uuid, i32);

/// A topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct CMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    /// The epoch before the last bump: still accepted while the member may not have seen the reply
    /// that raised it (Kafka accepts it when the owned partitions are a subset of the assignment).
    previous_epoch: i32,
    pub subscribed: Vec<String>,
    pub rebalance_timeout: Duration,
    last_seen: Instant,
    /// What the member has been told it owns.
    pub current: BTreeSet<Tp>,
    /// What it should own.
    pub target: BTreeSet<Tp>,
    /// The assignment last sent, to send only changes.
    sent: Option<BTreeSet<Tp>>,
    /// Since when the member has been asked to revoke partitions (fenced after its rebalance
    /// timeout, so a member that never revokes cannot hold partitions forever).
    revoking_since: Option<Instant>,
}

/// A ConsumerGroupHeartbeat, decoded (topic names already resolved by the caller).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    /// `/` + the client's IP address, as Kafka reports it.
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed: Option<Vec<String>>,
    pub assignor: Option<String>,
    pub owned: Option<Vec<Tp>>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    /// `None`: unchanged.
    pub assignment: Option<BTreeSet<Tp>>,
}

impl HeartbeatReply {
    fn error(error: i16, member_id: &str, message: &str) -> Self {
        Self {
            error,
            message: Some(message.to_string()),
            member_id: member_id.to_string(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

/// Server-side assignors kfdb offers (Kafka's names).
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// One KIP-848 consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, CMember>,
    session_timeout: Duration,
    /// Topics as of the last target computation.
    topology: BTreeMap<String, TopicInfo>,
    /// The state last stored.
    stored: Option<ConsumerGroupRecord>,
}

impl ConsumerGroup {
    /// The session timeout members get from now on (the group's `consumer.session.timeout.ms`
    /// override, or the broker's `group.consumer.session.timeout.ms`).
    pub fn set_session_timeout(&mut self, timeout: Duration) {
        self.session_timeout = timeout;
    }

    /// An empty group; `session_timeout` is `group.consumer.session.timeout.ms`.
    pub fn new(id: &str, session_timeout: Duration) -> Self {
        Self {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: ASSIGNORS[0].to_string(),
            members: BTreeMap::new(),
            session_timeout,
            topology: BTreeMap::new(),
            stored: None,
        }
    }

    /// The group as stored by an earlier coordinator; its members' sessions start now.
    pub fn restore(
        id: &str,
        session_timeout: Duration,
        r: ConsumerGroupRecord,
        now: Instant,
    ) -> Self {
        let members = r
            .members
            .iter()
            .map(|m| {
                let member = CMember {
                    id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    subscribed: m.subscribed.clone(),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    last_seen: now,
                    current: m.current.iter().copied().collect(),
                    target: m.target.iter().copied().collect(),
                    sent: None,
                    revoking_since: None,
                };
                (m.member_id.clone(), member)
            })
            .collect();
        Self {
            id: id.to_string(),
            group_epoch: r.group_epoch,
            assignment_epoch: r.assignment_epoch,
            assignor: r.assignor.clone(),
            members,
            session_timeout,
            topology: r
                .topology
                .iter()
                .map(|(name, id, partitions)| {
                    (
                        name.clone(),
                        TopicInfo {
                            id: *id,
                            partitions: *partitions,
                        },
                    )
                })
                .collect(),
            stored: Some(r),
        }
    }

    /// The group's lasting state.
    pub fn record(&self) -> ConsumerGroupRecord {
        ConsumerGroupRecord {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            topology: self
                .topology
                .iter()
                .map(|(name, t)| (name.clone(), t.id, t.partitions))
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    subscribed: m.subscribed.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    current: m.current.iter().copied().collect(),
                    target: m.target.iter().copied().collect(),
                })
                .collect(),
        }
    }

    /// The lasting state if it changed since it was last stored (and marks it stored).
    pub fn changes(&mut self) -> Option<ConsumerGroupRecord> {
        let now = self.record();
        if self.stored.as_ref() == Some(&now) {
            return None;
        }
        self.stored = Some(now.clone());
        Some(now)
    }

    /// Forget what was stored (the store write failed): the next change stores everything.
    pub fn unstored(&mut self) {
        self.stored = None;
    }

    /// Kafka's state names for consumer groups.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.current != m.target || m.epoch != self.group_epoch)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Every topic name some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Handle one heartbeat; `topics` describes (at least) every subscribed topic that exists.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &BTreeMap<String, TopicInfo>,
        now: Instant,
    ) -> HeartbeatReply {
        if hb.member_epoch < 0 {
            // -1: leave; -2: a static member leaving temporarily (treated as a leave here).
            if self.members.remove(&hb.member_id).is_some() {
                self.bump(topics);
            }
            return HeartbeatReply {
                error: ec::NONE,
                message: None,
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                assignment: None,
            };
        }
        if let Some(a) = &hb.assignor
            && !ASSIGNORS.contains(&a.as_str())
        {
            return HeartbeatReply::error(
                ec::UNSUPPORTED_ASSIGNOR,
                &hb.member_id,
                "unknown server assignor",
            );
        }
        let mut changed = false;
        if hb.member_epoch == 0 {
            let Some(subscribed) = hb.subscribed.clone() else {
                return HeartbeatReply::error(
                    ec::INVALID_REQUEST,
                    &hb.member_id,
                    "a joining member must subscribe",
                );
            };
            let id = if hb.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                hb.member_id.clone()
            };
            if let Some(inst) = &hb.instance_id
                && self
                    .members
                    .values()
                    .any(|m| m.instance_id.as_ref() == Some(inst) && m.id != id)
            {
                return HeartbeatReply::error(
                    ec::UNRELEASED_INSTANCE_ID,
                    &hb.member_id,
                    "another live member holds this instance id",
                );
            }
            let previous = self.members.remove(&id);
            self.members.insert(
                id.clone(),
                CMember {
                    id: id.clone(),
                    instance_id: hb.instance_id.clone(),
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    subscribed,
                    rebalance_timeout: hb.rebalance_timeout,
                    last_seen: now,
                    current: BTreeSet::new(),
                    target: previous.map(|p| p.target).unwrap_or_default(),
                    sent: None,
                    revoking_since: None,
                },
            );
            changed = true;
            return self.finish(id, hb, topics, now, changed);
        }
        let Some(m) = self.members.get_mut(&hb.member_id) else {
            return HeartbeatReply::error(
                ec::UNKNOWN_MEMBER_ID,
                &hb.member_id,
                "member is not in the group",
            );
        };
        let owned_within = hb
            .owned
            .as_ref()
            .is_some_and(|o| o.iter().all(|tp| m.current.contains(tp)));
        if hb.member_epoch != m.epoch && !(hb.member_epoch == m.previous_epoch && owned_within) {
            return HeartbeatReply::error(
                ec::FENCED_MEMBER_EPOCH,
                &hb.member_id,
                "stale member epoch",
            );
        }
        if let Some(s) = &hb.subscribed
            && *s != m.subscribed
        {
            m.subscribed = s.clone();
            changed = true;
        }
        let id = hb.member_id.clone();
        self.finish(id, hb, topics, now, changed)
    }

    fn finish(
        &mut self,
        id: String,
        hb: Heartbeat,
        topics: &BTreeMap<String, TopicInfo>,
        now: Instant,
        changed: bool,
    ) -> HeartbeatReply {
        if let Some(a) = &hb.assignor {
            self.assignor = a.clone();
        }
        if changed || self.topology_changed(topics) {
            self.bump(topics);
        }
        let taken: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|o| o.id != id)
            .flat_map(|o| o.current.iter().copied())
            .collect();
        let group_epoch = self.group_epoch;
        let Some(m) = self.members.get_mut(&id) else {
            return HeartbeatReply::error(ec::UNKNOWN_MEMBER_ID, &id, "member left");
        };
        m.last_seen = now;
        m.rebalance_timeout = hb.rebalance_timeout;
        let revoke: BTreeSet<Tp> = m.current.difference(&m.target).copied().collect();
        if !revoke.is_empty() {
            let released = hb
                .owned
                .as_ref()
                .is_some_and(|owned| owned.iter().all(|tp| !revoke.contains(tp)));
            if released {
                m.current.retain(|tp| !revoke.contains(tp));
            }
        }
        let revoking = m.current.iter().any(|tp| !m.target.contains(tp));
        if !revoking {
            m.revoking_since = None;
        }
        if revoking {
            m.revoking_since.get_or_insert(now);
            // Ask the member to give up what it must; it keeps its epoch until it has.
            let keep: BTreeSet<Tp> = m.current.intersection(&m.target).copied().collect();
            let send = (m.sent.as_ref() != Some(&keep) || reported_differs(&hb, &keep))
                .then(|| keep.clone());
            if send.is_some() {
                m.sent = Some(keep);
            }
            return HeartbeatReply {
                error: ec::NONE,
                message: None,
                member_id: id,
                member_epoch: m.epoch,
                assignment: send,
            };
        }
        let free: Vec<Tp> = m
            .target
            .iter()
            .filter(|tp| !m.current.contains(tp) && !taken.contains(tp))
            .copied()
            .collect();
        m.current.extend(free);
        if m.epoch != group_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = group_epoch;
        }
        // Send when it changed, or when the member reports owning something else (a lost reply).
        let send = (m.sent.as_ref() != Some(&m.current) || reported_differs(&hb, &m.current))
            .then(|| m.current.clone());
        if send.is_some() {
            m.sent = Some(m.current.clone());
        }
        HeartbeatReply {
            error: ec::NONE,
            message: None,
            member_id: id,
            member_epoch: m.epoch,
            assignment: send,
        }
    }

    fn topology_changed(&self, topics: &BTreeMap<String, TopicInfo>) -> bool {
        self.subscribed_topics()
            .iter()
            .any(|t| self.topology.get(t) != topics.get(t))
    }

    /// The group changed: new epoch, new target assignment.
    fn bump(&mut self, topics: &BTreeMap<String, TopicInfo>) {
        self.group_epoch += 1;
        super::REBALANCES_CONSUMER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.topology = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| topics.get(&t).map(|i| (t, i.clone())))
            .collect();
        let targets = assign(&self.assignor, &self.members, &self.topology);
        for (id, m) in self.members.iter_mut() {
            m.target = targets.get(id).cloned().unwrap_or_default();
        }
        self.assignment_epoch = self.group_epoch;
    }

    /// Expire members whose session lapsed; true when the group changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let timeout = self.session_timeout;
        let before = self.members.len();
        self.members.retain(|id, m| {
            let alive = now.duration_since(m.last_seen) <= timeout;
            if !alive {
                tracing::info!(member = %id, "consumer group member session expired");
            }
            let stuck = m
                .revoking_since
                .is_some_and(|since| now.duration_since(since) > m.rebalance_timeout);
            if stuck {
                tracing::info!(member = %id, "consumer group member did not revoke within its rebalance timeout; fenced");
            }
            alive && !stuck
        });
        if self.members.len() != before {
            let topics = self.topology.clone();
            self.bump(&topics);
            return true;
        }
        false
    }

    /// Whether an offset commit with this member id and epoch may be stored.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> i16 {
        match self.members.get(member_id) {
            None if member_id.is_empty() && epoch < 0 && self.members.is_empty() => ec::NONE,
            None => ec::UNKNOWN_MEMBER_ID,
            Some(m) if epoch != m.epoch => ec::STALE_MEMBER_EPOCH,
            Some(_) => ec::NONE,
        }
    }
}

/// True when the heartbeat reports owned partitions other than `expected`.
fn reported_differs(hb: &Heartbeat, expected: &BTreeSet<Tp>) -> bool {
    hb.owned
        .as_ref()
        .is_some_and(|o| o.iter().copied().collect::<BTreeSet<Tp>>() != *expected)
}

/// Target assignment for every member: `range` gives each member a contiguous block of each
/// subscribed topic; `uniform` spreads all partitions evenly, keeping a partition with its current
/// target owner when that owner still subscribes and is under its share.
fn assign(
    assignor: &str,
    members: &BTreeMap<String, CMember>,
    topics: &BTreeMap<String, TopicInfo>,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> = members
        .keys()
        .map(|k| (k.clone(), BTreeSet::new()))
        .collect();
    if assignor == "range" {
        for (name, info) in topics {
            let subs: Vec<&String> = members
                .values()
                .filter(|m| m.subscribed.contains(name))
                .map(|m| &m.id)
                .collect();
            if subs.is_empty() {
                continue;
            }
            let n = subs.len() as i32;
            let (per, extra) = (info.partitions / n, info.partitions % n);
            let mut p = 0;
            for (i, id) in subs.iter().enumerate() {
                let count = per + i32::from((i as i32) < extra);
                for q in p..p + count {
                    out.entry((*id).clone()).or_default().insert((info.id, q));
                }
                p += count;
            }
        }
        return out;
    }
    let all: Vec<(String, Tp)> = topics
        .iter()
        .flat_map(|(name, info)| (0..info.partitions).map(move |p| (name.clone(), (info.id, p))))
        .collect();
    // Every member gets at least `min`; `extra` of them get one more (Kafka's uniform quotas).
    let n = members.len().max(1);
    let (min, mut extra) = (all.len() / n, all.len() % n);
    let room = |out: &BTreeMap<String, BTreeSet<Tp>>, id: &str, extra: &mut usize| -> bool {
        let have = out.get(id).map_or(0, BTreeSet::len);
        if have < min {
            true
        } else if have == min && *extra > 0 {
            *extra -= 1;
            true
        } else {
            false
        }
    };
    let mut pending = Vec::new();
    for (name, tp) in &all {
        let keeper = members
            .values()
            .find(|m| m.target.contains(tp) && m.subscribed.contains(name))
            .map(|m| m.id.clone());
        match keeper {
            Some(k) if room(&out, &k, &mut extra) => {
                out.entry(k).or_default().insert(*tp);
            }
            _ => pending.push((name.clone(), *tp)),
        }
    }
    for (name, tp) in pending {
        let mut candidates: Vec<&CMember> = members
            .values()
            .filter(|m| m.subscribed.contains(&name))
            .collect();
        candidates.sort_by_key(|m| (out.get(&m.id).map_or(0, BTreeSet::len), m.id.clone()));
        let chosen = candidates
            .into_iter()
            .find(|m| room(&out, &m.id, &mut extra))
            .map(|m| m.id.clone());
        // Members with other subscriptions can leave more for some: fall back to the least loaded.
        let chosen = chosen.or_else(|| {
            members
                .values()
                .filter(|m| m.subscribed.contains(&name))
                .min_by_key(|m| (out.get(&m.id).map_or(0, BTreeSet::len), m.id.clone()))
                .map(|m| m.id.clone())
        });
        if let Some(c) = chosen {
            out.entry(c).or_default().insert(tp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: i32) -> BTreeMap<String, TopicInfo> {
        BTreeMap::from([(
            "t".to_string(),
            TopicInfo {
                id: Uuid::from_u128(7),
                partitions: n,
            },
        )])
    }

    fn hb(id: &str, epoch: i32, owned: Option<Vec<Tp>>) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: Duration::from_secs(30),
            subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
            assignor: None,
            owned,
        }
    }

    fn owned(s: &Option<BTreeSet<Tp>>) -> Option<Vec<Tp>> {
        s.as_ref().map(|s| s.iter().copied().collect())
    }

    #[test]
    fn partitions_move_only_after_revocation() {
        let t = topics(6);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        let a = g.heartbeat(hb("a", 0, None), &t, now);
        assert_eq!(a.error, ec::NONE);
        assert_eq!(a.assignment.as_ref().map(BTreeSet::len), Some(6));
        let a_epoch = a.member_epoch;
        // b joins: the target splits 3/3, but b gets nothing until a revokes.
        let b = g.heartbeat(hb("b", 0, None), &t, now);
        assert_eq!(b.assignment.as_ref().map(BTreeSet::len), Some(0));
        let a2 = g.heartbeat(hb("a", a_epoch, owned(&a.assignment)), &t, now);
        let keep = a2.assignment.clone().expect("revocation is sent");
        assert_eq!(keep.len(), 3);
        assert_eq!(a2.member_epoch, a_epoch, "epoch held until revoked");
        // a acknowledges by reporting only what it kept.
        let a3 = g.heartbeat(hb("a", a_epoch, owned(&Some(keep.clone()))), &t, now);
        assert_eq!(a3.member_epoch, g.group_epoch);
        let b2 = g.heartbeat(hb("b", b.member_epoch, Some(vec![])), &t, now);
        let got = b2.assignment.expect("b gets the released partitions");
        assert_eq!(got.len(), 3);
        assert!(got.is_disjoint(&keep));
        assert_eq!(g.state(), "Stable");
    }

    #[test]
    fn leaving_and_expiry_move_partitions_back() {
        let t = topics(4);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(10));
        let a = g.heartbeat(hb("a", 0, None), &t, now);
        let b = g.heartbeat(hb("b", 0, None), &t, now);
        let a = g.heartbeat(hb("a", a.member_epoch, owned(&a.assignment)), &t, now);
        let _ = g.heartbeat(hb("a", a.member_epoch, owned(&a.assignment)), &t, now);
        let _ = g.heartbeat(hb("b", b.member_epoch, Some(vec![])), &t, now);
        assert!(
            g.tick(now + Duration::from_secs(11)),
            "both silent: expired"
        );
        assert!(g.members.is_empty());
        assert_eq!(g.state(), "Empty");
        let c = g.heartbeat(hb("c", 0, None), &t, now);
        assert_eq!(c.assignment.map(|s| s.len()), Some(4));
        let stale = g.heartbeat(hb("c", 99, None), &t, now);
        assert_eq!(stale.error, ec::FENCED_MEMBER_EPOCH);
        let left = g.heartbeat(hb("c", -1, None), &t, now);
        assert_eq!(left.member_epoch, -1);
        assert!(g.members.is_empty());
    }

    #[test]
    fn uniform_gives_every_member_its_share() {
        let t = topics(6);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        for id in ["a", "b", "c", "d"] {
            let _ = g.heartbeat(hb(id, 0, None), &t, now);
        }
        let mut sizes: Vec<usize> = g.members.values().map(|m| m.target.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 1, 2, 2]);
        let all: BTreeSet<Tp> = g
            .members
            .values()
            .flat_map(|m| m.target.iter().copied())
            .collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn a_lost_reply_is_resent_and_the_previous_epoch_accepted() {
        let t = topics(2);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        let a = g.heartbeat(hb("a", 0, None), &t, now);
        let first_epoch = a.member_epoch;
        let _ = g.heartbeat(hb("b", 0, None), &t, now);
        // a never saw the revocation reply; it reports its old ownership again: resent.
        let all: Vec<Tp> = a.assignment.clone().unwrap().into_iter().collect();
        let again = g.heartbeat(hb("a", first_epoch, Some(all.clone())), &t, now);
        assert_eq!(again.assignment.map(|s| s.len()), Some(1));
        let keep: Vec<Tp> = g.members["a"].target.iter().copied().collect();
        let acked = g.heartbeat(hb("a", first_epoch, Some(keep.clone())), &t, now);
        assert!(acked.member_epoch > first_epoch);
        // The reply with the new epoch was lost too: the old epoch still works.
        let old = g.heartbeat(hb("a", first_epoch, Some(keep)), &t, now);
        assert_eq!(old.error, ec::NONE);
    }

    #[test]
    fn a_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() {
        let t = topics(2);
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g", Duration::from_secs(45));
        let a = g.heartbeat(hb("a", 0, None), &t, now);
        let _ = g.heartbeat(hb("b", 0, None), &t, now);
        let all: Vec<Tp> = a.assignment.unwrap().into_iter().collect();
        // a keeps reporting everything, never revoking.
        let _ = g.heartbeat(hb("a", a.member_epoch, Some(all.clone())), &t, now);
        let later = now + Duration::from_secs(31);
        let _ = g.heartbeat(hb("a", a.member_epoch, Some(all)), &t, later);
        assert!(g.tick(later), "fenced after the 30 s rebalance timeout");
        assert!(!g.members.contains_key("a"));
        let b = g.heartbeat(hb("b", g.members["b"].epoch, Some(vec![])), &t, later);
        assert_eq!(b.assignment.map(|s| s.len()), Some(2));
    }

    #[test]
    fn range_assignor_gives_contiguous_blocks() {
        let mut members = BTreeMap::new();
        for id in ["a", "b"] {
            members.insert(
                id.to_string(),
                CMember {
                    id: id.into(),
                    instance_id: None,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    epoch: 0,
                    previous_epoch: 0,
                    subscribed: vec!["t".into()],
                    rebalance_timeout: Duration::ZERO,
                    last_seen: Instant::now(),
                    current: BTreeSet::new(),
                    target: BTreeSet::new(),
                    sent: None,
                    revoking_since: None,
                },
            );
        }
        let out = assign("range", &members, &topics(5));
        let a: Vec<i32> = out["a"].iter().map(|t| t.1).collect();
        let b: Vec<i32> = out["b"].iter().map(|t| t.1).collect();
        assert_eq!((a, b), (vec![0, 1, 2], vec![3, 4]));
    }
}
