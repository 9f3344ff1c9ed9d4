//! Topic configs: Kafka's names, types and defaults, validation, and the effective value of each.
//!
//! What kfdb does with each (kfdb has no segments or replicas of its own; the store replicates):
//! - applied: `retention.ms`, `retention.bytes` (whole batches, oldest first), `cleanup.policy`
//!   (`delete` drives retention, `compact` compaction and the key index), the compaction settings
//!   `delete.retention.ms`, `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`,
//!   `max.compaction.lag.ms` (`compaction.rs`), `max.message.bytes`, `message.timestamp.type`,
//!   and kfdb's own `kfdb.key.index`.
//! - accepted, stored and reported, without effect: the segment, flush, index and replication
//!   configs below (their "segment-free equivalent" is nothing to tune).

use crate::error::{LogError, LogResult};

/// Kafka's config value types (DescribeConfigs v3 `config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    /// true/false
    Boolean = 1,
    /// free text
    String = 2,
    /// 32-bit integer
    Int = 3,
    /// 64-bit integer
    Long = 5,
    /// floating point
    Double = 6,
    /// comma-separated list
    List = 7,
}

/// One known topic config.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Kafka's default.
    pub default: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// Allowed values for enumerations (each list element for lists).
    pub allowed: &'static [&'static str],
    /// Whether kfdb acts on it (false: stored and reported only).
    pub applied: bool,
}

const fn def(
    name: &'static str,
    default: &'static str,
    kind: ConfigType,
    applied: bool,
) -> ConfigDef {
    ConfigDef {
        name,
        default,
        kind,
        allowed: &[],
        applied,
    }
}

/// Every topic config kfdb knows, in Kafka's names with Kafka's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        default: "delete",
        kind: ConfigType::List,
        allowed: &["delete", "compact"],
        applied: true,
    },
    ConfigDef {
        name: "compression.type",
        default: "producer",
        kind: ConfigType::String,
        allowed: &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        applied: false,
    },
    def("delete.retention.ms", "86400000", ConfigType::Long, true),
    def("file.delete.delay.ms", "60000", ConfigType::Long, false),
    def(
        "flush.messages",
        "9223372036854775807",
        ConfigType::Long,
        false,
    ),
    def("flush.ms", "9223372036854775807", ConfigType::Long, false),
    def(
        "follower.replication.throttled.replicas",
        "",
        ConfigType::List,
        false,
    ),
    def("index.interval.bytes", "4096", ConfigType::Int, false),
    // kfdb's own: keep the key index (`keyindex.rs`) on a topic that does not compact.
    def("kfdb.key.index", "false", ConfigType::Boolean, true),
    def(
        "leader.replication.throttled.replicas",
        "",
        ConfigType::List,
        false,
    ),
    def("local.retention.bytes", "-2", ConfigType::Long, false),
    def("local.retention.ms", "-2", ConfigType::Long, false),
    def(
        "max.compaction.lag.ms",
        "9223372036854775807",
        ConfigType::Long,
        true,
    ),
    def("max.message.bytes", "1048588", ConfigType::Int, true),
    def(
        "message.timestamp.after.max.ms",
        "3600000",
        ConfigType::Long,
        true,
    ),
    def(
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        ConfigType::Long,
        true,
    ),
    ConfigDef {
        name: "message.timestamp.type",
        default: "CreateTime",
        kind: ConfigType::String,
        allowed: &["CreateTime", "LogAppendTime"],
        applied: true,
    },
    def("min.cleanable.dirty.ratio", "0.5", ConfigType::Double, true),
    def("min.compaction.lag.ms", "0", ConfigType::Long, true),
    def("min.insync.replicas", "1", ConfigType::Int, false),
    def("preallocate", "false", ConfigType::Boolean, false),
    def("remote.storage.enable", "false", ConfigType::Boolean, false),
    def("retention.bytes", "-1", ConfigType::Long, true),
    def("retention.ms", "604800000", ConfigType::Long, true),
    def("segment.bytes", "1073741824", ConfigType::Int, false),
    def("segment.index.bytes", "10485760", ConfigType::Int, false),
    def("segment.jitter.ms", "0", ConfigType::Long, false),
    def("segment.ms", "604800000", ConfigType::Long, false),
    def(
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
        false,
    ),
];

/// Largest `max.message.bytes` kfdb accepts: one batch must fit one store transaction (10 MB in
/// FoundationDB) with room for its index keys.
pub const MAX_MESSAGE_BYTES_LIMIT: i64 = 8 * 1024 * 1024;

/// The definition of a topic config, if kfdb knows it.
pub fn lookup(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Check `value` for config `name`; returns the normalised value to store.
pub fn validate(name: &str, value: &str) -> LogResult<String> {
    let def =
        lookup(name).ok_or_else(|| LogError::InvalidConfig(format!("unknown config {name}")))?;
    let bad = |why: &str| LogError::InvalidConfig(format!("{name}={value}: {why}"));
    let value = value.trim();
    match def.kind {
        ConfigType::Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(bad("expected true or false"));
            }
            return Ok(value.to_ascii_lowercase());
        }
        ConfigType::Int => {
            value
                .parse::<i32>()
                .map_err(|_| bad("expected a 32-bit integer"))?;
        }
        ConfigType::Long => {
            value
                .parse::<i64>()
                .map_err(|_| bad("expected a 64-bit integer"))?;
        }
        ConfigType::Double => {
            value.parse::<f64>().map_err(|_| bad("expected a number"))?;
        }
        ConfigType::String | ConfigType::List => {}
    }
    if !def.allowed.is_empty() {
        let items: Vec<&str> = if def.kind == ConfigType::List {
            value.split(',').map(str::trim).collect()
        } else {
            vec![value]
        };
        if let Some(item) = items.iter().find(|i| !def.allowed.contains(i)) {
            return Err(bad(&format!("{item} is not one of {:?}", def.allowed)));
        }
    }
    if name == "max.message.bytes" {
        let v: i64 = value.parse().map_err(|_| bad("expected an integer"))?;
        if !(0..=MAX_MESSAGE_BYTES_LIMIT).contains(&v) {
            return Err(bad(&format!(
                "must be between 0 and {MAX_MESSAGE_BYTES_LIMIT}"
            )));
        }
    }
    Ok(value.to_string())
}

/// Broker configs that are defaults of topic configs, as Kafka names them: (broker config, topic
/// config, factor from the broker config's unit to the topic config's). Kafka takes the first of
/// `log.retention.ms`, `.minutes`, `.hours` that is set.
pub const BROKER_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.retention.ms", "retention.ms", 1),
    ("log.retention.minutes", "retention.ms", 60_000),
    ("log.retention.hours", "retention.ms", 3_600_000),
    ("log.retention.bytes", "retention.bytes", 1),
];

/// The broker configs that can be changed cluster-wide while brokers run (IncrementalAlterConfigs
/// of the default broker resource), stored so every broker follows.
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &["log.retention.ms", "log.retention.bytes"];

/// Broker-level defaults of topic configs, by topic config name: `dynamic` set cluster-wide while
/// brokers run (stored), `fixed` given to `kfdb serve` (flags, environment, server.properties).
/// A topic's own override wins over both, `dynamic` over `fixed`, `fixed` over Kafka's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerDefaults {
    /// Cluster-wide dynamic defaults (topic config name, value).
    pub dynamic: Vec<(String, String)>,
    /// Defaults from the broker's own settings (topic config name, value).
    pub fixed: Vec<(String, String)>,
}

impl BrokerDefaults {
    /// Topic-config defaults from broker configs (`log.retention.hours=24` →
    /// `retention.ms=86400000`); of several synonyms the first in `BROKER_SYNONYMS` order wins.
    pub fn from_broker_configs(configs: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (broker, topic, factor) in BROKER_SYNONYMS {
            if out.iter().any(|(t, _)| t == topic) {
                continue;
            }
            if let Some((_, v)) = configs.iter().find(|(k, _)| k == broker)
                && let Ok(n) = v.trim().parse::<i64>()
            {
                let value = if n < 0 { n } else { n.saturating_mul(*factor) };
                out.push((topic.to_string(), value.to_string()));
            }
        }
        out
    }
}

/// Where a topic config's value comes from (Kafka's config sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The topic's own override (DYNAMIC_TOPIC_CONFIG).
    Topic,
    /// A cluster-wide dynamic broker default (DYNAMIC_DEFAULT_BROKER_CONFIG).
    DynamicDefault,
    /// The broker's settings (STATIC_BROKER_CONFIG).
    StaticBroker,
    /// Kafka's default (DEFAULT_CONFIG).
    Default,
}

/// A topic's effective configs: overrides over broker defaults over Kafka's defaults.
#[derive(Debug, Clone)]
pub struct EffectiveConfig<'a> {
    overrides: &'a [(String, String)],
    defaults: Option<&'a BrokerDefaults>,
}

impl<'a> EffectiveConfig<'a> {
    /// The effective configs given a topic's overrides, over Kafka's defaults.
    pub fn new(overrides: &'a [(String, String)]) -> Self {
        Self {
            overrides,
            defaults: None,
        }
    }

    /// The effective configs given a topic's overrides and the broker's defaults.
    pub fn with_defaults(overrides: &'a [(String, String)], defaults: &'a BrokerDefaults) -> Self {
        Self {
            overrides,
            defaults: Some(defaults),
        }
    }

    /// The value in force and where it comes from.
    pub fn get_with_source(&self, name: &str) -> Option<(&'a str, ConfigSource)> {
        if let Some((_, v)) = self.overrides.iter().find(|(k, _)| k == name) {
            return Some((v.as_str(), ConfigSource::Topic));
        }
        if let Some(d) = self.defaults {
            if let Some((_, v)) = d.dynamic.iter().find(|(k, _)| k == name) {
                return Some((v.as_str(), ConfigSource::DynamicDefault));
            }
            if let Some((_, v)) = d.fixed.iter().find(|(k, _)| k == name) {
                return Some((v.as_str(), ConfigSource::StaticBroker));
            }
        }
        lookup(name).map(|d| (d.default, ConfigSource::Default))
    }

    /// The value in force and whether it is the topic's own override.
    pub fn get(&self, name: &str) -> Option<(&'a str, bool)> {
        self.get_with_source(name)
            .map(|(v, source)| (v, source == ConfigSource::Topic))
    }

    fn long(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(|(v, _)| v.parse().ok())
            .or_else(|| lookup(name).and_then(|d| d.default.parse().ok()))
            .unwrap_or(-1)
    }

    /// `retention.ms` (-1: forever).
    pub fn retention_ms(&self) -> i64 {
        self.long("retention.ms")
    }

    /// `retention.bytes` (-1: no limit), per partition as in Kafka.
    pub fn retention_bytes(&self) -> i64 {
        self.long("retention.bytes")
    }

    /// `max.message.bytes`: largest record batch accepted.
    pub fn max_message_bytes(&self) -> i64 {
        self.long("max.message.bytes")
    }

    /// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`: how far before and
    /// after the broker's clock a CreateTime timestamp may be.
    pub fn timestamp_bounds_ms(&self) -> (i64, i64) {
        (
            self.long("message.timestamp.before.max.ms"),
            self.long("message.timestamp.after.max.ms"),
        )
    }

    /// True when `message.timestamp.type` is `LogAppendTime`.
    pub fn log_append_time(&self) -> bool {
        self.get("message.timestamp.type")
            .is_some_and(|(v, _)| v == "LogAppendTime")
    }

    /// True when `cleanup.policy` includes `compact` (every record needs a key).
    pub fn compacts(&self) -> bool {
        self.get("cleanup.policy")
            .is_some_and(|(v, _)| v.split(',').any(|p| p.trim() == "compact"))
    }

    /// True when the topic keeps a key index: it compacts, or `kfdb.key.index` is true.
    pub fn indexes_keys(&self) -> bool {
        self.compacts() || self.get("kfdb.key.index").is_some_and(|(v, _)| v == "true")
    }

    /// `delete.retention.ms`: how long compaction keeps a tombstone after it first compacted it.
    pub fn delete_retention_ms(&self) -> i64 {
        self.long("delete.retention.ms")
    }

    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub fn min_compaction_lag_ms(&self) -> i64 {
        self.long("min.compaction.lag.ms")
    }

    /// `max.compaction.lag.ms`: a record dirty for longer is compacted whatever the dirty ratio.
    pub fn max_compaction_lag_ms(&self) -> i64 {
        self.long("max.compaction.lag.ms")
    }

    /// `min.cleanable.dirty.ratio`: compact once this share of the log's bytes is dirty.
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.get("min.cleanable.dirty.ratio")
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(0.5)
    }

    /// True when `cleanup.policy` includes `delete` (time and size retention apply).
    pub fn deletes(&self) -> bool {
        self.get("cleanup.policy")
            .is_some_and(|(v, _)| v.split(',').any(|p| p.trim() == "delete"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_defaults_sit_between_overrides_and_kafkas_defaults() {
        let fixed = BrokerDefaults::from_broker_configs(&[
            ("log.retention.hours".to_string(), "24".to_string()),
            ("log.retention.minutes".to_string(), "30".to_string()),
        ]);
        assert_eq!(
            fixed,
            vec![("retention.ms".to_string(), "1800000".to_string())]
        );
        let mut d = BrokerDefaults {
            dynamic: Vec::new(),
            fixed,
        };
        let none: Vec<(String, String)> = Vec::new();
        let c = EffectiveConfig::with_defaults(&none, &d);
        assert_eq!(c.retention_ms(), 1_800_000);
        assert_eq!(
            c.get_with_source("retention.ms").unwrap().1,
            ConfigSource::StaticBroker
        );
        d.dynamic = vec![("retention.ms".to_string(), "5".to_string())];
        let c = EffectiveConfig::with_defaults(&none, &d);
        assert_eq!(c.retention_ms(), 5);
        let own = vec![("retention.ms".to_string(), "7".to_string())];
        let c = EffectiveConfig::with_defaults(&own, &d);
        assert_eq!(
            c.get_with_source("retention.ms"),
            Some(("7", ConfigSource::Topic))
        );
        assert_eq!(c.retention_bytes(), -1);
    }

    #[test]
    fn validation_follows_types_and_enumerations() {
        assert_eq!(validate("retention.ms", " 1000 ").unwrap(), "1000");
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("max.message.bytes", "999999999").is_err());
        assert_eq!(validate("preallocate", "TRUE").unwrap(), "true");
    }

    #[test]
    fn effective_values_prefer_overrides() {
        let o = vec![("retention.ms".to_string(), "5".to_string())];
        let c = EffectiveConfig::new(&o);
        assert_eq!(c.retention_ms(), 5);
        assert_eq!(c.retention_bytes(), -1);
        assert_eq!(c.max_message_bytes(), 1_048_588);
        assert!(c.deletes());
        assert!(!c.log_append_time());
        assert_eq!(c.get("retention.ms"), Some(("5", true)));
        assert_eq!(c.get("segment.ms"), Some(("604800000", false)));
    }
}
