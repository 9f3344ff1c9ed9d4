//! Client quotas as Kafka applies them: which quota keys exist for which entities, which stored
//! entity's quota governs a request (Kafka's eight-step precedence from `user + client-id` down
//! to `<default> client-id`), and the measured rates that decide a throttle. Each broker keeps a
//! copy of the stored quotas (`kfdb_log::ClientQuotas`), checked against the store's version at
//! most every [`REFRESH`], so a quota set through any broker applies on every broker within a
//! second; rates are this broker's own, as in a Kafka cluster (a client's quota applies per
//! broker). If the quotas cannot be read the last copy is used (none yet: no quota).

pub mod rate;

use bytes::Bytes;
use kfdb_log::{EntityName, Log, QuotaEntity, QuotaValues};
use rate::{Bucket, Rate};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How stale the quota copy may get.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Bytes per second a (user, client id) may produce.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a (user, client id) may fetch.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percent of one request thread a (user, client id) may keep busy.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partitions per second a (user, client id) may create or delete.
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// Connections per second from one address.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// A quota value's type, as Kafka's quota configs define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A whole number up to `i64::MAX`.
    Long,
    /// A whole number up to `i32::MAX`.
    Int,
    /// Any number.
    Double,
}

/// The type of `key`'s values on `entity` (an IP entity has its own keys); `None`: not a quota
/// key for it.
pub fn value_type(entity: &QuotaEntity, key: &str) -> Option<ValueType> {
    if entity.ip.is_some() {
        return (key == CONNECTION_CREATION_RATE).then_some(ValueType::Int);
    }
    match key {
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE => Some(ValueType::Long),
        REQUEST_PERCENTAGE | CONTROLLER_MUTATION_RATE => Some(ValueType::Double),
        _ => None,
    }
}

/// Whose rate a quota is measured on: the user and client id it names ("" for a part the
/// governing entity leaves out, so `user=alice` covers all of alice's clients together).
type SensorKey = (&'static str, String, String);

/// Which stored entity governs `key` for `user`'s client `client_id`, by Kafka's precedence, and
/// the sensor its rate is measured on.
fn resolve(
    quotas: &HashMap<QuotaEntity, QuotaValues>,
    key: &'static str,
    user: &str,
    client_id: &str,
) -> Option<(f64, SensorKey)> {
    let named = |n: &str| Some(EntityName::Named(n.to_string()));
    let default = || Some(EntityName::Default);
    let steps: [(Option<EntityName>, Option<EntityName>, bool, bool); 8] = [
        (named(user), named(client_id), true, true),
        (named(user), default(), true, true),
        (named(user), None, true, false),
        (default(), named(client_id), true, true),
        (default(), default(), true, true),
        (default(), None, true, false),
        (None, named(client_id), false, true),
        (None, default(), false, true),
    ];
    steps.into_iter().find_map(|(u, c, by_user, by_client)| {
        let entity = QuotaEntity {
            user: u,
            client_id: c,
            ip: None,
        };
        let value = quotas
            .get(&entity)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)?;
        let tag = |on: bool, v: &str| if on { v.to_string() } else { String::new() };
        Some((value, (key, tag(by_user, user), tag(by_client, client_id))))
    })
}

/// The user a principal names for quotas (`User:alice` → `alice`).
pub fn user_of(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

/// The quotas in force on this broker: every stored entity with its values, and which quota
/// keys any entity sets (so a request whose key no entity sets costs one set lookup).
#[derive(Debug, Default)]
pub struct Snapshot {
    entities: HashMap<QuotaEntity, QuotaValues>,
    keys: HashSet<String>,
}

impl Snapshot {
    fn of(list: Vec<(QuotaEntity, QuotaValues)>) -> Self {
        let keys = list
            .iter()
            .flat_map(|(_, values)| values.iter().map(|(k, _)| k.clone()))
            .collect();
        Self {
            entities: list.into_iter().collect(),
            keys,
        }
    }

    /// Whether some entity sets `key`.
    pub fn has(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
}

struct Copy {
    checked: Option<Instant>,
    version: Option<Bytes>,
    snapshot: Arc<Snapshot>,
}

/// The copy and what refreshes it, shared with the refreshing task.
struct Shared {
    log: Arc<Log>,
    copy: Mutex<Copy>,
    refreshing: AtomicBool,
}

impl Shared {
    /// Read the store's version and, when it changed (or `force`), the quotas.
    async fn refresh(&self, force: bool) {
        let known = {
            let c = lock(&self.copy);
            (c.checked.is_some() && !force).then(|| c.version.clone())
        };
        let store = self.log.quotas();
        let fresh = match store.version().await {
            Ok(v) if known.as_ref() == Some(&v) => Ok(None),
            Ok(_) => store.list().await.map(Some),
            Err(e) => Err(e),
        };
        let mut c = lock(&self.copy);
        // Also after a failure: the next look in REFRESH, not at every request meanwhile.
        c.checked = Some(Instant::now());
        match fresh {
            Ok(Some((version, list))) => {
                c.version = version;
                c.snapshot = Arc::new(Snapshot::of(list));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the client quotas failed; using the last copy")
            }
        }
    }
}

/// See the module documentation.
pub struct Quotas {
    shared: Arc<Shared>,
    sensors: Mutex<Sensors>,
    epoch: Instant,
}

#[derive(Default)]
struct Sensors {
    rates: HashMap<SensorKey, Rate>,
    buckets: HashMap<SensorKey, (u64, Bucket)>,
    pruned_ms: u64,
}

/// `controller_mutation_rate` for one CreateTopics, CreatePartitions or DeleteTopics request
/// (KIP-599). Strict (the versions that know THROTTLING_QUOTA_EXCEEDED): a topic is refused
/// while the quota is already exceeded, else admitted and counted even if it goes over.
/// Permissive (older versions): everything is admitted and counted; the client is throttled.
pub struct Mutations<'a> {
    quotas: &'a Quotas,
    governing: Option<(f64, SensorKey)>,
    strict: bool,
    /// Whether a topic was refused (strict mode throttles only then, as Kafka).
    refused: AtomicBool,
}

impl Mutations<'_> {
    /// Whether a quota governs this client (else nothing needs counting).
    pub fn applies(&self) -> bool {
        self.governing.is_some()
    }

    /// Whether `partitions` may be created or deleted now (counted when they may).
    pub fn admit(&self, partitions: i64) -> bool {
        let Some((rate, sensor)) = &self.governing else {
            return true;
        };
        let now = self.quotas.now_ms();
        let mut sensors = self.quotas.sensors(now);
        let (used, bucket) = sensors
            .buckets
            .entry(sensor.clone())
            .or_insert_with(|| (now, Bucket::full(now, *rate)));
        *used = now;
        if self.strict && bucket.exceeded(now, *rate) {
            self.refused.store(true, Ordering::Relaxed);
            return false;
        }
        bucket.take(now, *rate, partitions.max(0) as f64);
        true
    }

    /// How long the client is throttled after this request, in milliseconds (strict: only when
    /// a topic was refused).
    pub fn throttle_ms(&self) -> u64 {
        let Some((rate, sensor)) = &self.governing else {
            return 0;
        };
        if self.strict && !self.refused.load(Ordering::Relaxed) {
            return 0;
        }
        let now = self.quotas.now_ms();
        let mut sensors = self.quotas.sensors(now);
        match sensors.buckets.get_mut(sensor) {
            Some((used, bucket)) => {
                *used = now;
                bucket.throttle_ms(now, *rate)
            }
            None => 0,
        }
    }
}

/// How often idle sensors are dropped.
const PRUNE_EVERY_MS: u64 = 60_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Quotas {
    /// Quotas stored through `log`.
    pub fn new(log: Arc<Log>) -> Self {
        Self {
            shared: Arc::new(Shared {
                log,
                copy: Mutex::new(Copy {
                    checked: None,
                    version: None,
                    snapshot: Arc::new(Snapshot::default()),
                }),
                refreshing: AtomicBool::new(false),
            }),
            sensors: Mutex::new(Sensors::default()),
            epoch: Instant::now(),
        }
    }

    /// The quotas in force: this broker's copy, never waiting for the store. When the copy is
    /// older than [`REFRESH`], a background task compares the store's version and reloads it if
    /// it changed (until the first load: no quota).
    pub fn current(&self) -> Arc<Snapshot> {
        let (stale, snapshot) = {
            let c = lock(&self.shared.copy);
            (
                c.checked.is_none_or(|t| t.elapsed() >= REFRESH),
                c.snapshot.clone(),
            )
        };
        if stale && !self.shared.refreshing.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let shared = self.shared.clone();
                    runtime.spawn(async move {
                        shared.refresh(false).await;
                        shared.refreshing.store(false, Ordering::Release);
                    });
                }
                Err(_) => self.shared.refreshing.store(false, Ordering::Release),
            }
        }
        snapshot
    }

    /// Reload the copy now (after a change made through this broker, so it applies at once).
    pub async fn reload(&self) {
        self.shared.refresh(true).await;
    }

    /// The sensors, with those idle for a while dropped (at most once a minute).
    fn sensors(&self, now: u64) -> std::sync::MutexGuard<'_, Sensors> {
        let mut sensors = lock(&self.sensors);
        if now >= sensors.pruned_ms + PRUNE_EVERY_MS {
            sensors.pruned_ms = now;
            sensors.rates.retain(|_, r| !r.is_empty(now));
            sensors.buckets.retain(|_, (used, _)| {
                now.saturating_sub(*used) < rate::SAMPLES * rate::SAMPLE_MS * 60
            });
        }
        sensors
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Record `value` (bytes, or percent-seconds of a thread) against `key`'s quota for
    /// `principal`'s client `client_id`; how long to throttle it, in milliseconds (0: within
    /// its quota, or none applies). `cap_ms` bounds the answer.
    pub fn record(
        &self,
        key: &'static str,
        principal: &str,
        client_id: &str,
        value: f64,
        cap_ms: u64,
    ) -> u64 {
        let quotas = self.current();
        if !quotas.has(key) {
            return 0;
        }
        let Some((bound, sensor)) = resolve(&quotas.entities, key, user_of(principal), client_id)
        else {
            return 0;
        };
        let now = self.now_ms();
        let mut sensors = self.sensors(now);
        let rate = sensors.rates.entry(sensor).or_default();
        rate.record(now, value);
        rate.throttle_ms(now, bound).min(cap_ms)
    }

    /// Take back what [`Self::record`] recorded (a throttled Fetch sends no data).
    pub fn unrecord(&self, key: &'static str, principal: &str, client_id: &str, value: f64) {
        let quotas = self.current();
        let Some((_, sensor)) = resolve(&quotas.entities, key, user_of(principal), client_id)
        else {
            return;
        };
        let now = self.now_ms();
        if let Some(rate) = self.sensors(now).rates.get_mut(&sensor) {
            rate.unrecord(now, value);
        }
    }

    /// The most `consumer_byte_rate` lets `principal`'s client `client_id` fetch in one request:
    /// what the quota allows over its window (10 s), as Kafka caps a Fetch — else a response
    /// larger than that would be throttled, not counted, and asked for again, forever.
    pub fn fetch_cap(&self, principal: &str, client_id: &str) -> Option<usize> {
        let quotas = self.current();
        if !quotas.has(CONSUMER_BYTE_RATE) {
            return None;
        }
        let (bound, _) = resolve(
            &quotas.entities,
            CONSUMER_BYTE_RATE,
            user_of(principal),
            client_id,
        )?;
        let window_s = ((rate::SAMPLES - 1) * rate::SAMPLE_MS) as f64 / 1_000.0;
        Some((bound * window_s).clamp(1.0, usize::MAX as f64) as usize)
    }

    /// `connection_creation_rate`: count a new connection from `ip` against its address's quota
    /// (a named address, compared as an address, else the default one); how long to hold it
    /// before closing it when over (it is then not counted), in milliseconds, as Kafka throttles
    /// connections (KIP-612).
    pub fn connection_throttle(&self, ip: std::net::IpAddr) -> u64 {
        let quotas = self.current();
        if !quotas.has(CONNECTION_CREATION_RATE) {
            return 0;
        }
        let ip = ip.to_canonical();
        let value_of = |entity: &QuotaEntity| {
            quotas
                .entities
                .get(entity)?
                .iter()
                .find(|(k, _)| k == CONNECTION_CREATION_RATE)
                .map(|(_, v)| *v)
        };
        let named = quotas.entities.keys().find_map(|e| match &e.ip {
            Some(EntityName::Named(n))
                if n.parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.to_canonical() == ip) =>
            {
                value_of(e)
            }
            _ => None,
        });
        let Some(bound) = named.or_else(|| {
            value_of(&QuotaEntity {
                ip: Some(EntityName::Default),
                ..Default::default()
            })
        }) else {
            return 0;
        };
        let now = self.now_ms();
        let mut sensors = self.sensors(now);
        let rate = sensors
            .rates
            .entry((CONNECTION_CREATION_RATE, ip.to_string(), String::new()))
            .or_default();
        rate.record(now, 1.0);
        let ms = rate.throttle_ms(now, bound);
        if ms > 0 {
            rate.unrecord(now, 1.0);
        }
        ms
    }

    /// The `controller_mutation_rate` quota of `principal`'s client `client_id` for one request.
    pub fn mutations(&self, principal: &str, client_id: &str, strict: bool) -> Mutations<'_> {
        let quotas = self.current();
        let governing = if quotas.has(CONTROLLER_MUTATION_RATE) {
            resolve(
                &quotas.entities,
                CONTROLLER_MUTATION_RATE,
                user_of(principal),
                client_id,
            )
        } else {
            None
        };
        Mutations {
            quotas: self,
            governing,
            strict,
            refused: AtomicBool::new(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
        let part = |p: Option<Option<&str>>| p.map(EntityName::from_wire);
        QuotaEntity {
            user: part(user),
            client_id: part(client),
            ip: None,
        }
    }

    fn with(entries: &[(QuotaEntity, f64)]) -> HashMap<QuotaEntity, QuotaValues> {
        entries
            .iter()
            .map(|(e, v)| (e.clone(), vec![(PRODUCER_BYTE_RATE.to_string(), *v)]))
            .collect()
    }

    #[test]
    fn the_most_specific_entity_governs_in_kafkas_order() {
        let all = [
            (entity(Some(Some("alice")), Some(Some("app"))), 1.0),
            (entity(Some(Some("alice")), Some(None)), 2.0),
            (entity(Some(Some("alice")), None), 3.0),
            (entity(Some(None), Some(Some("app"))), 4.0),
            (entity(Some(None), Some(None)), 5.0),
            (entity(Some(None), None), 6.0),
            (entity(None, Some(Some("app"))), 7.0),
            (entity(None, Some(None)), 8.0),
        ];
        let tags = [
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("", "app"),
            ("", "app"),
        ];
        for skip in 0..all.len() {
            let q = with(&all[skip..]);
            let (value, (_, u, c)) = resolve(&q, PRODUCER_BYTE_RATE, "alice", "app").unwrap();
            assert_eq!(value, (skip + 1) as f64);
            assert_eq!((u.as_str(), c.as_str()), tags[skip]);
        }
        // Other users' and clients' named quotas do not apply; other keys do not either.
        let q = with(&[
            (entity(Some(Some("bob")), None), 1.0),
            (entity(None, Some(Some("other"))), 1.0),
        ]);
        assert!(resolve(&q, PRODUCER_BYTE_RATE, "alice", "app").is_none());
        let q = with(&[(entity(Some(Some("alice")), None), 1.0)]);
        assert!(resolve(&q, CONSUMER_BYTE_RATE, "alice", "app").is_none());
    }

    #[test]
    fn ip_entities_have_their_own_keys() {
        let ip = QuotaEntity {
            ip: Some(EntityName::Default),
            ..Default::default()
        };
        assert_eq!(
            value_type(&ip, CONNECTION_CREATION_RATE),
            Some(ValueType::Int)
        );
        assert_eq!(value_type(&ip, PRODUCER_BYTE_RATE), None);
        let user = entity(Some(None), None);
        assert_eq!(value_type(&user, PRODUCER_BYTE_RATE), Some(ValueType::Long));
        assert_eq!(
            value_type(&user, REQUEST_PERCENTAGE),
            Some(ValueType::Double)
        );
        assert_eq!(value_type(&user, CONNECTION_CREATION_RATE), None);
        assert_eq!(value_type(&user, "bogus"), None);
    }

    #[test]
    fn principals_name_users() {
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:ANONYMOUS"), "ANONYMOUS");
    }
}
