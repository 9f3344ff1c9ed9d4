//! The classic consumer-group protocol as a state machine, with no I/O: JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup and the passage of time (`tick`) move a `Group` between Kafka's states
//! (Empty, PreparingRebalance, CompletingRebalance, Stable). Waiting requests are parked as
//! oneshot senders inside members and answered when the state machine decides; what must be
//! written to the store is reported back to the caller (`Persist`).

use crate::error_code as ec;
use bytes::Bytes;
use kfdb_log::{GroupRecord, MemberRecord};
use std::collections::{BTreeMap, HashMap};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned and running.
    Stable,
}

impl State {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member first gets MEMBER_ID_REQUIRED with its id (KIP-394).
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    /// JoinGroup v9 (KIP-814): the leader is told not to compute a new assignment (a static
    /// leader that came back while the group stayed stable).
    pub skip_assignment: bool,
}

impl JoinResponse {
    fn error(error: i16, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    fn error(error: i16) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member of a live group.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_seen: Instant,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// Whether the caller must write the group to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Persist {
    /// Nothing changed that is stored.
    No,
    /// The stable membership or generation changed.
    Yes,
}

/// One consumer group's live state.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: State,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending: HashMap<String, (Instant, Duration)>,
    /// Deadline of the current rebalance phase.
    deadline: Option<Instant>,
    /// True while the first rebalance of an empty group waits for more members.
    initial: bool,
    /// When the current rebalance started (caps the initial delay's extensions).
    rebalance_started: Instant,
    /// Deleted: every request is refused so no waiter is parked in a forgotten group.
    pub dead: bool,
    initial_delay: Duration,
}

impl Group {
    /// A new, empty group. `initial_delay` is `group.initial.rebalance.delay.ms`.
    pub fn new(id: &str, initial_delay: Duration) -> Self {
        Self {
            id: id.to_string(),
            state: State::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            deadline: None,
            initial: false,
            rebalance_started: Instant::now(),
            dead: false,
            initial_delay,
        }
    }

    /// A group restored from the store: Stable with its members if it had any (their sessions
    /// start now), else Empty.
    pub fn restore(id: &str, initial_delay: Duration, record: GroupRecord, now: Instant) -> Self {
        let mut g = Self::new(id, initial_delay);
        g.generation = record.generation;
        g.protocol_type = record.protocol_type;
        g.protocol = record.protocol.clone();
        g.leader = record.leader;
        for m in record.members {
            let protocols = vec![(record.protocol.clone().unwrap_or_default(), m.metadata)];
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols,
                    assignment: m.assignment,
                    last_seen: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        g.state = if g.members.is_empty() {
            State::Empty
        } else {
            State::Stable
        };
        g
    }

    /// What the store keeps of this group.
    pub fn record(&self) -> GroupRecord {
        GroupRecord {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    metadata: m.metadata(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    fn member_by_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Check a request's member id / instance id / generation; `Ok` or a Kafka error code.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: Option<i32>,
    ) -> Result<(), i16> {
        if let Some(inst) = instance_id
            && let Some(m) = self.member_by_instance(inst)
            && m.id != member_id
        {
            return Err(ec::FENCED_INSTANCE_ID);
        }
        if !self.members.contains_key(member_id) {
            return Err(ec::UNKNOWN_MEMBER_ID);
        }
        if let Some(g) = generation
            && g != self.generation
        {
            return Err(ec::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// JoinGroup. The answer comes through `reply`, now or when the rebalance completes.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        reply: oneshot::Sender<JoinResponse>,
    ) -> Persist {
        if self.dead {
            let _ = reply.send(JoinResponse::error(
                ec::COORDINATOR_NOT_AVAILABLE,
                &req.member_id,
            ));
            return Persist::No;
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            let _ = reply.send(JoinResponse::error(
                ec::INCONSISTENT_GROUP_PROTOCOL,
                &req.member_id,
            ));
            return Persist::No;
        }
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let common = req.protocols.iter().any(|(p, _)| {
                self.members
                    .values()
                    .filter(|m| m.id != req.member_id)
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            });
            if !same_type || !common {
                let _ = reply.send(JoinResponse::error(
                    ec::INCONSISTENT_GROUP_PROTOCOL,
                    &req.member_id,
                ));
                return Persist::No;
            }
        }
        // The protocols of the static member this join replaces, if it replaces one.
        let mut replaced_static: Option<Vec<(String, Bytes)>> = None;
        let member_id = if req.member_id.is_empty() {
            match &req.instance_id {
                Some(inst) => {
                    // Static member (re)joining without its id: it replaces whichever member had
                    // this instance id, which is fenced from now on.
                    let new_id = Self::new_member_id(&req.client_id);
                    if let Some(old) = self.member_by_instance(inst).map(|m| m.id.clone())
                        && let Some(mut m) = self.members.remove(&old)
                    {
                        if let Some(w) = m.join_waiter.take() {
                            let _ = w.send(JoinResponse::error(ec::FENCED_INSTANCE_ID, &old));
                        }
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResponse::error(ec::FENCED_INSTANCE_ID));
                        }
                        if self.leader.as_deref() == Some(old.as_str()) {
                            self.leader = Some(new_id.clone());
                        }
                        m.id = new_id.clone();
                        replaced_static = Some(m.protocols.clone());
                        self.members.insert(new_id.clone(), m);
                    }
                    new_id
                }
                None if req.require_known_member_id => {
                    let id = Self::new_member_id(&req.client_id);
                    self.pending.insert(id.clone(), (now, req.session_timeout));
                    let _ = reply.send(JoinResponse::error(ec::MEMBER_ID_REQUIRED, &id));
                    return Persist::No;
                }
                None => Self::new_member_id(&req.client_id),
            }
        } else {
            let known = self.members.contains_key(&req.member_id);
            if !known && self.pending.remove(&req.member_id).is_none() {
                let _ = reply.send(JoinResponse::error(ec::UNKNOWN_MEMBER_ID, &req.member_id));
                return Persist::No;
            }
            if known
                && let Err(code) =
                    self.check_member(&req.member_id, req.instance_id.as_deref(), None)
            {
                let _ = reply.send(JoinResponse::error(code, &req.member_id));
                return Persist::No;
            }
            req.member_id.clone()
        };
        let joined_new = !self.members.contains_key(&member_id);
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_seen: now,
                join_waiter: None,
                sync_waiter: None,
            });
        let same_protocols = replaced_static.as_ref() == Some(&req.protocols);
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.instance_id = req.instance_id;
        member.last_seen = now;
        if let Some(old) = member.join_waiter.replace(reply) {
            let _ = old.send(JoinResponse::error(ec::UNKNOWN_MEMBER_ID, &member_id));
        }
        if self.protocol_type.is_none() || self.members.len() == 1 {
            self.protocol_type = Some(req.protocol_type);
        }
        if same_protocols && self.state == State::Stable {
            return self.static_member_returns(&member_id);
        }
        match self.state {
            State::PreparingRebalance => {
                if self.initial && joined_new {
                    // Each new member during the initial delay waits a little longer for more.
                    let cap = self.rebalance_started + self.max_rebalance_timeout();
                    if let Some(d) = self.deadline.as_mut() {
                        *d = (now + self.initial_delay).min(cap).max(*d);
                    }
                }
            }
            _ => self.prepare_rebalance(now),
        }
        self.maybe_complete_join(now)
    }

    /// KIP-345: a static member that rejoins (new member id, same instance id) while the group is
    /// stable, with the same protocols and metadata as before, takes its old place and
    /// assignment at the current generation: no rebalance. A returning leader gets the members
    /// with `skip_assignment` (KIP-814); its SyncGroup in the stable group returns its assignment,
    /// so older leaders that do assign change nothing either.
    fn static_member_returns(&mut self, member_id: &str) -> Persist {
        let leader = self.leader.clone().unwrap_or_default();
        let is_leader = leader == member_id;
        let members = if is_leader {
            self.joined_members()
        } else {
            Vec::new()
        };
        let response = JoinResponse {
            error: ec::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: is_leader,
        };
        if let Some(w) = self
            .members
            .get_mut(member_id)
            .and_then(|m| m.join_waiter.take())
        {
            let _ = w.send(response);
        }
        // The member id changed: the stored membership must say so.
        Persist::Yes
    }

    /// Every member as the leader's JoinGroup response lists them.
    fn joined_members(&self) -> Vec<JoinedMember> {
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(self.protocol.as_deref()),
            })
            .collect()
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        self.initial = self.state == State::Empty;
        // A rebalance cancels a pending SyncGroup round.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResponse::error(ec::REBALANCE_IN_PROGRESS));
            }
        }
        self.state = State::PreparingRebalance;
        self.rebalance_started = now;
        self.deadline = Some(if self.initial {
            now + self.initial_delay.min(self.max_rebalance_timeout())
        } else {
            now + self.max_rebalance_timeout()
        });
    }

    /// Finish the join phase when everyone known has joined (after the initial delay) or the
    /// deadline passed; members that did not rejoin are dropped.
    fn maybe_complete_join(&mut self, now: Instant) -> Persist {
        if self.state != State::PreparingRebalance {
            return Persist::No;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let due = self.deadline.is_none_or(|d| now >= d);
        if !(due || (all_joined && !self.initial)) {
            return Persist::No;
        }
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation += 1;
        super::REBALANCES_CLASSIC.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.initial = false;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.deadline = None;
            return Persist::Yes;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.joined_members();
        for m in self.members.values_mut() {
            m.last_seen = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResponse {
                    error: ec::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                });
            }
        }
        self.state = State::CompletingRebalance;
        self.deadline = Some(now + self.max_rebalance_timeout());
        Persist::No
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == *p))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p))
                && let Some(v) = votes.iter_mut().find(|(_, c)| *c == p)
            {
                v.0 += 1;
            }
        }
        // Most votes; among equals, the earliest in the first member's preference.
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .into_iter()
            .find(|(n, _)| *n == best)
            .map(|(_, p)| p.clone())
    }

    /// SyncGroup. The answer comes through `reply`, now or when the leader's assignment arrives.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        reply: oneshot::Sender<SyncResponse>,
    ) -> Persist {
        if let Err(code) = self.check_member(member_id, instance_id, Some(generation)) {
            let _ = reply.send(SyncResponse::error(code));
            return Persist::No;
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != self.protocol.as_deref())
        {
            let _ = reply.send(SyncResponse::error(ec::INCONSISTENT_GROUP_PROTOCOL));
            return Persist::No;
        }
        let ok = |g: &Group, assignment: Bytes| SyncResponse {
            error: ec::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment,
        };
        match self.state {
            State::Empty | State::PreparingRebalance => {
                let _ = reply.send(SyncResponse::error(ec::REBALANCE_IN_PROGRESS));
                Persist::No
            }
            State::Stable => {
                let a = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = reply.send(ok(self, a));
                Persist::No
            }
            State::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_seen = now;
                    m.sync_waiter = Some(reply);
                }
                if self.leader.as_deref() != Some(member_id) {
                    return Persist::No;
                }
                let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = given.remove(&m.id).unwrap_or_default();
                }
                self.state = State::Stable;
                self.deadline = None;
                let (pt, p) = (self.protocol_type.clone(), self.protocol.clone());
                for m in self.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncResponse {
                            error: ec::NONE,
                            protocol_type: pt.clone(),
                            protocol: p.clone(),
                            assignment: m.assignment.clone(),
                        });
                    }
                }
                Persist::Yes
            }
        }
    }

    /// Heartbeat: keeps the session alive and tells the member whether to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if let Err(code) = self.check_member(member_id, instance_id, None) {
            return code;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        // Kafka's order: a stale generation first, then "rejoin" while a rebalance is prepared.
        match self.state {
            _ if generation != self.generation => ec::ILLEGAL_GENERATION,
            State::PreparingRebalance => ec::REBALANCE_IN_PROGRESS,
            _ => ec::NONE,
        }
    }

    /// LeaveGroup for each (member id, instance id); returns a code per member and whether to
    /// persist.
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
    ) -> (Vec<i16>, Persist) {
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance_id) in leaving {
            let id = if member_id.is_empty() {
                instance_id
                    .as_deref()
                    .and_then(|i| self.member_by_instance(i))
                    .map(|m| m.id.clone())
            } else {
                Some(member_id.clone())
            };
            let code = match id {
                Some(id) => match self.check_member(&id, instance_id.as_deref(), None) {
                    Ok(()) => {
                        self.remove_member(&id);
                        removed = true;
                        ec::NONE
                    }
                    Err(c) => c,
                },
                None => ec::UNKNOWN_MEMBER_ID,
            };
            codes.push(code);
        }
        let persist = if removed {
            self.after_removal(now)
        } else {
            Persist::No
        };
        (codes, persist)
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResponse::error(ec::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResponse::error(ec::UNKNOWN_MEMBER_ID));
            }
        }
    }

    fn after_removal(&mut self, now: Instant) -> Persist {
        if self.members.is_empty() {
            let was_empty = self.state == State::Empty;
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.deadline = None;
            if !was_empty {
                self.generation += 1;
            }
            return Persist::Yes;
        }
        if self.state != State::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now)
    }

    /// The passage of time: expire silent members and forgotten member ids, finish rebalances
    /// whose deadline passed.
    pub fn tick(&mut self, now: Instant) -> Persist {
        self.pending
            .retain(|_, (at, session)| now.duration_since(*at) <= *session);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                // A member waiting for a JoinGroup or SyncGroup answer cannot heartbeat: alive.
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_seen) > m.session_timeout
            })
            .map(|m| m.id.clone())
            .collect();
        let mut persist = Persist::No;
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(group = %self.id, member = %id, "session expired; removing member");
                self.remove_member(id);
            }
            persist = self.after_removal(now);
        }
        if self.state == State::PreparingRebalance {
            if self.maybe_complete_join(now) == Persist::Yes {
                persist = Persist::Yes;
            }
        } else if self.state == State::CompletingRebalance
            && self.deadline.is_some_and(|d| now >= d)
        {
            // The leader never sent the assignment: start over.
            self.prepare_rebalance(now);
        }
        persist
    }

    /// Whether an OffsetCommit from this member/generation may be stored (Kafka's rules).
    pub fn check_commit(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        if generation < 0 && member_id.is_empty() {
            // A standalone consumer (assign + commit): only while no one is a member.
            return if self.members.is_empty() {
                ec::NONE
            } else {
                ec::UNKNOWN_MEMBER_ID
            };
        }
        if let Err(code) = self.check_member(member_id, instance_id, Some(generation)) {
            return code;
        }
        match self.state {
            State::CompletingRebalance => ec::REBALANCE_IN_PROGRESS,
            _ => ec::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member_id: &str, client: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: None,
            client_id: client.into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            require_known_member_id: true,
        }
    }

    fn join(g: &mut Group, r: JoinRequest, now: Instant) -> oneshot::Receiver<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        let _ = g.join(r, now, tx);
        rx
    }

    #[test]
    fn two_members_join_sync_and_rebalance_when_one_leaves() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_millis(100));
        // KIP-394: first join gets an id.
        let id_a = join(&mut g, req("", "a"), t0).try_recv().unwrap();
        assert_eq!(id_a.error, ec::MEMBER_ID_REQUIRED);
        let mut ja = join(&mut g, req(&id_a.member_id, "a"), t0);
        let id_b = join(&mut g, req("", "b"), t0).try_recv().unwrap().member_id;
        let mut jb = join(&mut g, req(&id_b, "b"), t0);
        assert!(ja.try_recv().is_err(), "waits for the initial delay");
        let _ = g.tick(t0 + Duration::from_millis(150));
        let (ra, rb) = (ja.try_recv().unwrap(), jb.try_recv().unwrap());
        assert_eq!((ra.error, rb.error), (ec::NONE, ec::NONE));
        assert_eq!(ra.generation, 1);
        assert_eq!(ra.leader, rb.leader);
        let (leader, follower) = if ra.leader == ra.member_id {
            (ra, rb)
        } else {
            (rb, ra)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        assert_eq!(g.state, State::CompletingRebalance);
        // Follower syncs first and waits; the leader's assignment releases both.
        let (ftx, mut frx) = oneshot::channel();
        let _ = g.sync(&follower.member_id, None, 1, None, None, vec![], t0, ftx);
        assert!(frx.try_recv().is_err());
        let (ltx, mut lrx) = oneshot::channel();
        let persist = g.sync(
            &leader.member_id,
            None,
            1,
            Some("consumer"),
            Some("range"),
            vec![
                (leader.member_id.clone(), Bytes::from_static(b"L")),
                (follower.member_id.clone(), Bytes::from_static(b"F")),
            ],
            t0,
            ltx,
        );
        assert_eq!(persist, Persist::Yes);
        assert_eq!(frx.try_recv().unwrap().assignment.as_ref(), b"F");
        assert_eq!(lrx.try_recv().unwrap().assignment.as_ref(), b"L");
        assert_eq!(g.state, State::Stable);
        assert_eq!(g.heartbeat(&follower.member_id, None, 1, t0), ec::NONE);
        assert_eq!(
            g.heartbeat(&follower.member_id, None, 0, t0),
            ec::ILLEGAL_GENERATION
        );
        assert_eq!(g.heartbeat("nobody", None, 1, t0), ec::UNKNOWN_MEMBER_ID);
        // The follower leaves: the leader is told to rejoin and gets generation 2 alone.
        let (codes, _) = g.leave(&[(follower.member_id.clone(), None)], t0);
        assert_eq!(codes, vec![ec::NONE]);
        assert_eq!(
            g.heartbeat(&leader.member_id, None, 1, t0),
            ec::REBALANCE_IN_PROGRESS
        );
        let mut again = join(&mut g, req(&leader.member_id, "a"), t0);
        let r = again.try_recv().unwrap();
        assert_eq!((r.error, r.generation, r.members.len()), (ec::NONE, 2, 1));
    }

    #[test]
    fn silent_members_expire_and_the_rest_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_millis(100));
        let mut a = req("", "a");
        a.require_known_member_id = false;
        let mut b = a.clone();
        b.client_id = "b".into();
        let ra = join(&mut g, a.clone(), t0);
        let rb = join(&mut g, b, t0);
        let _ = g.tick(t0 + Duration::from_millis(150));
        let (ra, rb) = (ra.blocking_recv_now(), rb.blocking_recv_now());
        assert_eq!(ra.generation, 1);
        // Only a keeps heartbeating.
        let t1 = t0 + Duration::from_secs(8);
        assert_eq!(g.heartbeat(&ra.member_id, None, 1, t1), ec::NONE);
        let _ = g.tick(t0 + Duration::from_secs(11));
        assert!(!g.members.contains_key(&rb.member_id), "b expired");
        assert_eq!(g.state, State::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&ra.member_id, None, 1, t1),
            ec::REBALANCE_IN_PROGRESS
        );
    }

    #[test]
    fn standalone_commits_only_while_empty_and_protocols_must_match() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        assert_eq!(g.check_commit("", None, -1), ec::NONE);
        let mut a = req("", "a");
        a.require_known_member_id = false;
        let _r = join(&mut g, a, t0);
        assert_eq!(g.check_commit("", None, -1), ec::UNKNOWN_MEMBER_ID);
        let mut other = req("", "b");
        other.require_known_member_id = false;
        other.protocols = vec![("roundrobin-only".into(), Bytes::new())];
        let r = join(&mut g, other, t0).blocking_recv_now();
        assert_eq!(r.error, ec::INCONSISTENT_GROUP_PROTOCOL);
    }

    #[test]
    fn static_member_rejoining_fences_its_old_id() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut a = req("", "a");
        a.instance_id = Some("inst-1".into());
        let first = join(&mut g, a.clone(), t0);
        let _ = g.tick(t0);
        let first = first.blocking_recv_now();
        let second = join(&mut g, a, t0);
        let _ = g.tick(t0);
        let second = second.blocking_recv_now();
        assert_ne!(first.member_id, second.member_id);
        assert_eq!(
            g.heartbeat(&first.member_id, Some("inst-1"), second.generation, t0),
            ec::FENCED_INSTANCE_ID
        );
    }

    /// Two static members join a group with a 100 ms initial delay and sync (generation 1,
    /// Stable); returns (leader, follower) as their JoinGroup answers.
    fn stable_static_pair(g: &mut Group, t0: Instant) -> (JoinResponse, JoinResponse) {
        let mut a = req("", "a");
        a.instance_id = Some("inst-a".into());
        let mut b = req("", "b");
        b.instance_id = Some("inst-b".into());
        let (ja, jb) = (join(g, a, t0), join(g, b, t0));
        let _ = g.tick(t0 + Duration::from_millis(150)); // past the initial delay
        let (ra, rb) = (ja.blocking_recv_now(), jb.blocking_recv_now());
        let (leader, follower) = if ra.leader == ra.member_id {
            (ra, rb)
        } else {
            (rb, ra)
        };
        let (ftx, _frx) = oneshot::channel();
        let _ = g.sync(&follower.member_id, None, 1, None, None, vec![], t0, ftx);
        let (ltx, _lrx) = oneshot::channel();
        let given = vec![
            (leader.member_id.clone(), Bytes::from_static(b"for-leader")),
            (
                follower.member_id.clone(),
                Bytes::from_static(b"for-follower"),
            ),
        ];
        let _ = g.sync(&leader.member_id, None, 1, None, None, given, t0, ltx);
        assert_eq!(g.state, State::Stable);
        (leader, follower)
    }

    fn rejoin(g: &mut Group, instance: &str, client: &str, t0: Instant) -> JoinResponse {
        let mut r = req("", client);
        r.instance_id = Some(instance.into());
        join(g, r, t0).blocking_recv_now()
    }

    #[test]
    fn a_static_follower_rejoining_a_stable_group_keeps_its_assignment_without_a_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_millis(100));
        let (leader, follower) = stable_static_pair(&mut g, t0);
        let inst = instance_of(&follower);
        let back = rejoin(&mut g, inst, "again", t0);
        assert_eq!(back.error, ec::NONE);
        assert_eq!(back.generation, 1, "no new generation");
        assert_ne!(back.member_id, follower.member_id);
        assert!(back.members.is_empty() && !back.skip_assignment);
        assert_eq!(g.state, State::Stable, "no rebalance");
        let (tx, mut rx) = oneshot::channel();
        let _ = g.sync(&back.member_id, Some(inst), 1, None, None, vec![], t0, tx);
        assert_eq!(
            rx.try_recv().unwrap().assignment,
            Bytes::from_static(b"for-follower")
        );
        assert_eq!(
            g.heartbeat(&follower.member_id, Some(inst), 1, t0),
            ec::FENCED_INSTANCE_ID,
            "the old member id is fenced"
        );
        assert_eq!(g.heartbeat(&leader.member_id, None, 1, t0), ec::NONE);
    }

    #[test]
    fn a_static_leader_rejoining_a_stable_group_is_told_to_skip_assignment() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_millis(100));
        let (leader, _follower) = stable_static_pair(&mut g, t0);
        let inst = instance_of(&leader);
        let back = rejoin(&mut g, inst, "again", t0);
        assert_eq!((back.error, back.generation), (ec::NONE, 1));
        assert_eq!(
            back.leader, back.member_id,
            "still the leader, under its new id"
        );
        assert!(back.skip_assignment);
        assert_eq!(back.members.len(), 2);
        assert_eq!(g.state, State::Stable);
        // Assignments it sends anyway change nothing in a stable group.
        let (tx, mut rx) = oneshot::channel();
        let _ = g.sync(&back.member_id, Some(inst), 1, None, None, vec![], t0, tx);
        assert_eq!(
            rx.try_recv().unwrap().assignment,
            Bytes::from_static(b"for-leader")
        );
    }

    #[test]
    fn a_static_member_rejoining_with_another_subscription_triggers_a_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::from_millis(100));
        let (_leader, follower) = stable_static_pair(&mut g, t0);
        let inst = instance_of(&follower);
        let mut r = req("", "again");
        r.instance_id = Some(inst.into());
        r.protocols = vec![("range".into(), Bytes::from_static(b"another subscription"))];
        let _pending = join(&mut g, r, t0);
        assert_eq!(g.state, State::PreparingRebalance);
    }

    /// The instance id of a member of `stable_static_pair` (clients "a" and "b").
    fn instance_of(r: &JoinResponse) -> &'static str {
        if r.member_id.starts_with("a-") {
            "inst-a"
        } else {
            "inst-b"
        }
    }

    trait Now {
        fn blocking_recv_now(self) -> JoinResponse;
    }
    impl Now for oneshot::Receiver<JoinResponse> {
        fn blocking_recv_now(mut self) -> JoinResponse {
            self.try_recv().expect("answered")
        }
    }
}
