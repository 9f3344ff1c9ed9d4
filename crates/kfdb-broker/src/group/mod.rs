//! The group coordinator: live consumer groups of this broker, each a `state::Group` behind an
//! async mutex, loaded from the store on first use and written back when a rebalance completes or
//! the group empties. A ticker advances time for every live group (session timeouts, rebalance
//! deadlines). Offsets go straight to the store (kfdb-log) after the group validates the member.
//!
//! A group left without members for `idle_eviction` is dropped from memory by the ticker (its state
//! is in the store and is loaded again on its next request), so memory follows the groups in use,
//! not every group ever seen.

pub mod consumer;
pub mod state;

use consumer::ConsumerGroup;
use kfdb_log::{CoordinatorKind, Log, LogResult};
use state::{Group, Persist};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Rebalances completed by classic groups (a new generation with members), in this process:
/// the state machines are pure and count here; `metrics.rs` exports it.
pub static REBALANCES_CLASSIC: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// New group epochs of KIP-848 consumer groups (a new target assignment), in this process.
pub static REBALANCES_CONSUMER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Coordinator settings (Kafka's names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout: Duration,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval: Duration,
    /// How long a group without members stays in memory.
    pub idle_eviction: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(3_000),
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
            idle_eviction: Duration::from_secs(600),
        }
    }
}

/// The live groups of this broker.
pub struct Coordinator {
    log: Arc<Log>,
    config: GroupConfig,
    groups: std::sync::Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    /// KIP-848 groups: membership lives here only; offsets are in the store.
    consumer_groups: std::sync::Mutex<HashMap<String, Arc<Mutex<ConsumerGroup>>>>,
    /// Since when each loaded group has had no members (for `idle_eviction`).
    empty_since: std::sync::Mutex<HashMap<String, Instant>>,
    /// Each group's stored config overrides (config resource GROUP) and when they were read:
    /// re-read after a second, so a change made through any broker applies within one.
    overrides: std::sync::Mutex<HashMap<String, (Instant, GroupOverrides)>>,
}

/// A group's config overrides: (name, value) pairs.
pub type GroupOverrides = Arc<Vec<(String, String)>>;

/// How long a group's config overrides are used before they are read again.
const OVERRIDES_TTL: Duration = Duration::from_secs(1);
/// Groups whose overrides are held at most (then the cache starts over).
const OVERRIDES_LIMIT: usize = 10_000;

impl Coordinator {
    /// A coordinator over `log`.
    pub fn new(log: Arc<Log>, config: GroupConfig) -> Arc<Self> {
        Arc::new(Self {
            log,
            config,
            groups: std::sync::Mutex::new(HashMap::new()),
            consumer_groups: std::sync::Mutex::new(HashMap::new()),
            empty_since: std::sync::Mutex::new(HashMap::new()),
            overrides: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Group `id`'s config overrides (name, value), read from the store at most once a second.
    /// A store fault keeps the last ones read (or none), logged.
    pub async fn group_overrides(&self, id: &str) -> GroupOverrides {
        let cached = self
            .overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some((at, o)) = &cached
            && at.elapsed() < OVERRIDES_TTL
        {
            return o.clone();
        }
        match self.log.groups().configs(id).await {
            Ok(configs) => {
                let configs = Arc::new(configs);
                let mut map = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= OVERRIDES_LIMIT {
                    map.clear();
                }
                map.insert(id.to_string(), (Instant::now(), configs.clone()));
                configs
            }
            Err(e) => {
                tracing::warn!(group = id, error = %e, "reading the group's configs failed");
                cached.map(|(_, o)| o).unwrap_or_default()
            }
        }
    }

    /// Read group `id`'s overrides again on next use (they were just changed here).
    pub fn forget_overrides(&self, id: &str) {
        self.overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Settings in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Whether this broker coordinates group `id`: `Err` with the code to answer when not
    /// (NOT_COORDINATOR; COORDINATOR_NOT_AVAILABLE while no broker is live). Every group API
    /// asks first.
    pub fn check(&self, id: &str) -> Result<(), i16> {
        match self
            .log
            .membership()
            .view()
            .coordinator(CoordinatorKind::Group, id)
        {
            Some(n) if n == self.log.node_id() => Ok(()),
            Some(_) => Err(crate::error_code::answered(
                crate::error_code::NOT_COORDINATOR,
            )),
            None => Err(crate::error_code::answered(
                crate::error_code::COORDINATOR_NOT_AVAILABLE,
            )),
        }
    }

    /// The cluster view changed: drop the groups this broker no longer coordinates (their members'
    /// next requests are told NOT_COORDINATOR and go to the new coordinator, which loads the group
    /// from the store). Returns how many were dropped.
    pub fn view_changed(&self) -> usize {
        let mut dropped = 0;
        {
            let mut live = self.live();
            live.retain(|id, g| {
                let keep = self.check(id).is_ok();
                if !keep {
                    if let Ok(mut g) = g.try_lock() {
                        g.dead = true;
                    }
                    dropped += 1;
                }
                keep
            });
        }
        self.consumer_live().retain(|id, _| {
            let keep = self.check(id).is_ok();
            dropped += usize::from(!keep);
            keep
        });
        dropped
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Group>>>> {
        match self.groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The live group `id`, loading it from the store (or creating it) on first use.
    pub async fn group(&self, id: &str) -> LogResult<Arc<Mutex<Group>>> {
        if let Some(g) = self.live().get(id) {
            return Ok(g.clone());
        }
        let record = self.log.groups().load(id).await?;
        let group = match record {
            Some(r) => Group::restore(id, self.config.initial_rebalance_delay, r, Instant::now()),
            None => Group::new(id, self.config.initial_rebalance_delay),
        };
        let mut live = self.live();
        Ok(live
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(group)))
            .clone())
    }

    /// The group `id` if it exists (live here, or stored), without creating it: requests that only
    /// make sense for an existing group must not create one per random id they name.
    pub async fn existing(&self, id: &str) -> LogResult<Option<Arc<Mutex<Group>>>> {
        if let Some(g) = self.loaded(id) {
            return Ok(Some(g));
        }
        if !self.log.groups().exists(id).await? {
            return Ok(None);
        }
        self.group(id).await.map(Some)
    }

    /// The live group `id` if this broker has it loaded.
    pub fn loaded(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.live().get(id).cloned()
    }

    /// Ids of the groups loaded here.
    pub fn loaded_ids(&self) -> Vec<String> {
        self.live().keys().cloned().collect()
    }

    /// Forget a group (after DeleteGroups).
    pub fn forget(&self, id: &str) {
        self.live().remove(id);
        self.consumer_live().remove(id);
    }

    fn consumer_live(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<ConsumerGroup>>>> {
        match self.consumer_groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The KIP-848 group `id`: loaded from the store on first use here (a group another
    /// coordinator ran), created when it was never stored.
    pub async fn consumer_group(&self, id: &str) -> LogResult<Arc<Mutex<ConsumerGroup>>> {
        if let Some(g) = self.consumer_live().get(id) {
            return Ok(g.clone());
        }
        let timeout = self.config.consumer_session_timeout;
        let group = match self.log.groups().load_consumer_group(id).await? {
            Some(r) => ConsumerGroup::restore(id, timeout, r, Instant::now()),
            None => ConsumerGroup::new(id, timeout),
        };
        Ok(self
            .consumer_live()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(group)))
            .clone())
    }

    /// The KIP-848 group `id` if it exists (loaded here, or stored by an earlier coordinator),
    /// without creating it.
    pub async fn existing_consumer_group(
        &self,
        id: &str,
    ) -> LogResult<Option<Arc<Mutex<ConsumerGroup>>>> {
        if let Some(g) = self.loaded_consumer_group(id) {
            return Ok(Some(g));
        }
        let Some(r) = self.log.groups().load_consumer_group(id).await? else {
            return Ok(None);
        };
        let group =
            ConsumerGroup::restore(id, self.config.consumer_session_timeout, r, Instant::now());
        Ok(Some(
            self.consumer_live()
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(group)))
                .clone(),
        ))
    }

    /// Store a KIP-848 group's lasting state if it changed.
    pub async fn persist_consumer(&self, group: &mut ConsumerGroup) {
        if let Some(record) = group.changes()
            && let Err(e) = self
                .log
                .groups()
                .store_consumer_group(&group.id, &record)
                .await
        {
            tracing::warn!(group = %group.id, error = %e, "storing consumer group state failed");
            group.unstored();
        }
    }

    /// The KIP-848 group `id` if it exists here.
    pub fn loaded_consumer_group(&self, id: &str) -> Option<Arc<Mutex<ConsumerGroup>>> {
        self.consumer_live().get(id).cloned()
    }

    /// Ids of the KIP-848 groups here.
    pub fn consumer_group_ids(&self) -> Vec<String> {
        self.consumer_live().keys().cloned().collect()
    }

    /// TxnOffsetCommit v3+ (KIP-447): the committing consumer must be a current member at this
    /// generation (member epoch for KIP-848 groups), as for OffsetCommit. A group no one has
    /// joined accepts any.
    pub async fn check_member_generation(
        &self,
        id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.existing_consumer_group(id).await {
            Ok(Some(g)) => {
                let g = g.lock().await;
                if !g.members.is_empty() {
                    return g.check_commit(member_id, generation);
                }
            }
            Ok(None) => {}
            Err(e) => return crate::error_code::for_group(&e),
        }
        match self.existing(id).await {
            Ok(Some(g)) => g
                .lock()
                .await
                .check_commit(member_id, instance_id, generation),
            Ok(None) => crate::error_code::NONE,
            Err(e) => crate::error_code::for_group(&e),
        }
    }

    /// Write the group to the store if the state machine asked for it.
    pub async fn persist(&self, group: &Group, persist: Persist) {
        if persist == Persist::Yes
            && let Err(e) = self.log.groups().store(&group.id, &group.record()).await
        {
            tracing::warn!(group = %group.id, error = %e, "storing group state failed");
        }
    }

    /// Advance time for every live group, every `every`, until dropped.
    pub async fn run_ticker(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        let mut last_eviction = Instant::now();
        let mut views = self.log.membership().subscribe();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = views.changed() => {
                    if changed.is_ok() {
                        let n = self.view_changed();
                        if n > 0 {
                            tracing::info!(groups = n, "no longer coordinating groups");
                        }
                    }
                    continue;
                }
            }
            let groups: Vec<Arc<Mutex<Group>>> = self.live().values().cloned().collect();
            // A group busy with a request (maybe waiting on the store) is ticked next time, so
            // one slow group does not hold up session expiry everywhere.
            for g in groups {
                let Ok(mut g) = g.try_lock() else { continue };
                let persist = g.tick(Instant::now());
                self.persist(&g, persist).await;
            }
            let consumer_groups: Vec<Arc<Mutex<ConsumerGroup>>> =
                self.consumer_live().values().cloned().collect();
            for g in consumer_groups {
                if let Ok(mut g) = g.try_lock()
                    && g.tick(Instant::now())
                {
                    self.persist_consumer(&mut g).await;
                }
            }
            // Idle groups are looked for every 10 s, not on every tick.
            if last_eviction.elapsed() >= Duration::from_secs(10) {
                last_eviction = Instant::now();
                let evicted = self.evict_idle(last_eviction);
                if evicted > 0 {
                    tracing::debug!(count = evicted, "idle groups dropped from memory");
                }
            }
        }
    }

    /// Groups loaded in memory (classic and KIP-848).
    pub fn loaded_count(&self) -> usize {
        self.live().len() + self.consumer_live().len()
    }

    /// Drop from memory the groups that have had no members for `idle_eviction` and that no
    /// request holds. Returns how many were dropped.
    pub fn evict_idle(&self, now: Instant) -> usize {
        let idle = self.config.idle_eviction;
        let mut since = self.empty_since.lock().unwrap_or_else(|p| p.into_inner());
        let mut still_empty = HashSet::new();
        let mut evicted = evict(
            &mut self.live(),
            "c",
            idle,
            now,
            &mut since,
            &mut still_empty,
            |g| g.members.is_empty() && g.state == state::State::Empty,
        );
        evicted += evict(
            &mut self.consumer_live(),
            "k",
            idle,
            now,
            &mut since,
            &mut still_empty,
            |g| g.members.is_empty(),
        );
        // Forget the clocks of groups that are gone or have members again.
        since.retain(|k, _| still_empty.contains(k));
        evicted
    }
}

/// One map's part of [`Coordinator::evict_idle`]: groups `empty` for `idle` (by the clocks in
/// `since`, keyed `kind:id`) and held by nothing but the map are removed; the keys of groups
/// still empty go into `still_empty`.
fn evict<G>(
    live: &mut HashMap<String, Arc<Mutex<G>>>,
    kind: &str,
    idle: Duration,
    now: Instant,
    since: &mut HashMap<String, Instant>,
    still_empty: &mut HashSet<String>,
    empty: impl Fn(&G) -> bool,
) -> usize {
    let mut evicted = 0;
    live.retain(|id, g| {
        if !g.try_lock().is_ok_and(|g| empty(&g)) {
            return true;
        }
        let key = format!("{kind}:{id}");
        let first = *since.entry(key.clone()).or_insert(now);
        let evict = now.duration_since(first) >= idle && Arc::strong_count(g) == 1;
        if evict {
            evicted += 1;
        } else {
            still_empty.insert(key);
        }
        !evict
    });
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;
    use kfdb_kv::Database;
    use kfdb_log::LogConfig;

    #[tokio::test]
    async fn groups_without_members_leave_memory_after_the_idle_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_embedded(dir.path(), Default::default()).unwrap();
        let log = Log::open(db, LogConfig::default()).await.unwrap();
        let c = Coordinator::new(
            log,
            GroupConfig {
                idle_eviction: Duration::from_secs(60),
                ..GroupConfig::default()
            },
        );
        let held = c.group("held").await.unwrap();
        c.group("idle").await.unwrap();
        c.consumer_group("idle-848").await.unwrap();
        let t0 = Instant::now();
        assert_eq!(c.evict_idle(t0), 0, "the idle clock starts");
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(30)), 0);
        assert_eq!(
            c.evict_idle(t0 + Duration::from_secs(61)),
            2,
            "both idle groups go; the one a request holds stays"
        );
        assert!(c.loaded("idle").is_none());
        assert!(c.loaded_consumer_group("idle-848").is_none());
        assert!(c.loaded("held").is_some());
        drop(held);
        assert_eq!(c.evict_idle(t0 + Duration::from_secs(62)), 1);
        assert_eq!(c.loaded_count(), 0);
        // Loaded again on its next request.
        assert!(c.group("idle").await.is_ok());
        assert!(c.loaded("idle").is_some());
    }
}
