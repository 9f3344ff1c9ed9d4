//! Shared by CreateTopics and DescribeConfigs: a topic's configs as Kafka reports them (value,
//! source, type), and the broker's own read-only configs.

use kfdb_log::LogConfig;
use kfdb_log::config::{BrokerDefaults, ConfigSource, ConfigType, EffectiveConfig, TOPIC_CONFIGS};

/// `DYNAMIC_TOPIC_CONFIG`: set on the topic.
pub const SOURCE_TOPIC: i8 = 1;
/// `DYNAMIC_DEFAULT_BROKER_CONFIG`: set cluster-wide while brokers run.
pub const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
/// `STATIC_BROKER_CONFIG`: from the broker's settings.
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// `DEFAULT_CONFIG`: Kafka's default.
pub const SOURCE_DEFAULT: i8 = 5;

/// One config as reported.
pub struct Reported {
    pub name: std::borrow::Cow<'static, str>,
    pub value: String,
    pub source: i8,
    pub kind: ConfigType,
    pub read_only: bool,
}

/// Every topic config with its effective value and source, from the configs set on the topic
/// (`kfdb_log::TopicMeta::configs`) and the broker defaults.
pub fn topic(configs: &[(String, String)], defaults: &BrokerDefaults) -> Vec<Reported> {
    let eff = EffectiveConfig::with_defaults(configs, defaults);
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let (value, source) = eff
                .get_with_source(d.name)
                .unwrap_or((d.default, ConfigSource::Default));
            Reported {
                name: d.name.into(),
                value: value.to_string(),
                source: source_code(source),
                kind: d.kind,
                read_only: false,
            }
        })
        .collect()
}

/// The broker configs kfdb has, read-only.
pub fn broker(broker: &crate::Broker) -> Vec<Reported> {
    let log: &LogConfig = broker.log.config();
    let node_id = broker.node_id();
    let listeners = &broker.config.listeners;
    let r = |name: &'static str, value: String, kind: ConfigType| Reported {
        name: name.into(),
        value,
        source: SOURCE_STATIC_BROKER,
        kind,
        read_only: true,
    };
    let mut reported = vec![
        r("node.id", node_id.to_string(), ConfigType::Int),
        r("broker.id", node_id.to_string(), ConfigType::Int),
        r(
            "auto.create.topics.enable",
            log.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        r(
            "num.partitions",
            log.num_partitions.to_string(),
            ConfigType::Int,
        ),
        r(
            "default.replication.factor",
            log.default_replication_factor.to_string(),
            ConfigType::Int,
        ),
        r(
            "log.retention.check.interval.ms",
            log.retention_check_interval.as_millis().to_string(),
            ConfigType::Long,
        ),
        r(
            "advertised.listeners",
            listeners
                .iter()
                .map(|l| format!("{}://{}:{}", l.name, l.advertised_host, l.advertised_port))
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::List,
        ),
        r(
            "broker.rack",
            broker
                .log
                .membership()
                .rack()
                .map(str::to_string)
                .unwrap_or_default(),
            ConfigType::String,
        ),
        r(
            "log.dirs",
            broker.config.log_dir.clone(),
            ConfigType::String,
        ),
    ];
    // Every setting the broker was started with, by its server.properties name, with where it
    // came from (a flag, the environment or the file: STATIC_BROKER_CONFIG; else DEFAULT_CONFIG).
    let settings = &broker.config.settings;
    for c in reported.iter_mut() {
        if let Some(s) = settings.iter().find(|s| s.name == c.name) {
            c.source = s.source;
        }
    }
    for s in settings.iter() {
        if !reported.iter().any(|c| c.name == s.name.as_str()) {
            reported.push(Reported {
                name: s.name.clone().into(),
                value: s.value.clone(),
                source: s.source,
                kind: kind_of(&s.value),
                read_only: true,
            });
        }
    }
    reported
}

/// A setting's type as DescribeConfigs reports it, from its value.
fn kind_of(value: &str) -> ConfigType {
    if value == "true" || value == "false" {
        ConfigType::Boolean
    } else if value.parse::<i64>().is_ok() {
        ConfigType::Long
    } else {
        ConfigType::String
    }
}

/// Kafka's code of a config source.
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::Topic => SOURCE_TOPIC,
        ConfigSource::DynamicDefault => SOURCE_DYNAMIC_DEFAULT,
        ConfigSource::StaticBroker => SOURCE_STATIC_BROKER,
        ConfigSource::Default => SOURCE_DEFAULT,
    }
}

/// The cluster-wide dynamic broker configs as DescribeConfigs of the default broker resource
/// (and of each broker, over its static settings) reports them.
pub fn dynamic_broker(configs: &[(String, String)]) -> Vec<Reported> {
    configs
        .iter()
        .map(|(k, v)| Reported {
            name: k.clone().into(),
            value: v.clone(),
            source: SOURCE_DYNAMIC_DEFAULT,
            kind: ConfigType::Long,
            read_only: false,
        })
        .collect()
}
