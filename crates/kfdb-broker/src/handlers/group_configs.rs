//! Group configs (config resource GROUP, KIP-848): the settings Kafka lets a consumer group
//! override — `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` — their
//! validation (Kafka's bounds), how DescribeConfigs reports them, and how IncrementalAlterConfigs
//! changes them. The overrides are stored with the group (kfdb-log `GroupStore::configs`), so
//! every broker applies the same ones; the coordinator reads them through
//! `group::Coordinator::group_overrides`.

use super::topic_configs::{Reported, SOURCE_DEFAULT};
use crate::group::GroupConfig;
use kfdb_log::LogError;
use kfdb_log::config::ConfigType;

/// Kafka's resource type for groups.
pub const RESOURCE_GROUP: i8 = 32;
/// `GROUP_CONFIG`: set on the group.
pub const SOURCE_GROUP: i8 = 8;

/// The session timeout of a KIP-848 consumer group.
pub const SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// The heartbeat interval of a KIP-848 consumer group.
pub const HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";

/// Kafka's bounds (its `group.consumer.min|max.session.timeout.ms` and
/// `group.consumer.min|max.heartbeat.interval.ms` defaults).
const SESSION_BOUNDS: (i64, i64) = (45_000, 60_000);
const HEARTBEAT_BOUNDS: (i64, i64) = (5_000, 15_000);

/// Every group config with its effective value and source.
pub fn report(overrides: &[(String, String)], defaults: &GroupConfig) -> Vec<Reported> {
    [
        (
            SESSION_TIMEOUT,
            defaults.consumer_session_timeout.as_millis().to_string(),
        ),
        (
            HEARTBEAT_INTERVAL,
            defaults.consumer_heartbeat_interval.as_millis().to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, default)| {
        let set = overrides.iter().find(|(k, _)| k == name);
        Reported {
            name: name.into(),
            value: set.map(|(_, v)| v.clone()).unwrap_or(default),
            source: if set.is_some() {
                SOURCE_GROUP
            } else {
                SOURCE_DEFAULT
            },
            kind: ConfigType::Int,
            read_only: false,
        }
    })
    .collect()
}

/// Apply IncrementalAlterConfigs operations (0 SET, 1 DELETE) to a group's overrides, checked
/// as Kafka checks them.
pub fn alter(
    current: &[(String, String)],
    ops: &[(i8, String, Option<String>)],
) -> Result<Vec<(String, String)>, LogError> {
    let mut out = current.to_vec();
    for (op, name, value) in ops {
        let bounds = match name.as_str() {
            SESSION_TIMEOUT => SESSION_BOUNDS,
            HEARTBEAT_INTERVAL => HEARTBEAT_BOUNDS,
            other => {
                return Err(LogError::InvalidConfig(format!(
                    "Unknown group config name: {other}"
                )));
            }
        };
        out.retain(|(k, _)| k != name);
        match op {
            0 => {
                let v = value.as_deref().unwrap_or("").trim();
                let n: i64 = v.parse().map_err(|_| {
                    LogError::InvalidConfig(format!("{name}: {v:?} is not an integer"))
                })?;
                if !(bounds.0..=bounds.1).contains(&n) {
                    return Err(LogError::InvalidConfig(format!(
                        "{name} must be between {} and {}",
                        bounds.0, bounds.1
                    )));
                }
                out.push((name.clone(), n.to_string()));
            }
            1 => {}
            _ => {
                return Err(LogError::InvalidConfig(format!(
                    "{name}: only SET and DELETE apply to group configs"
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The overrides as durations (ms) a coordinator applies.
pub fn millis(overrides: &[(String, String)], name: &str) -> Option<u64> {
    overrides
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_names_and_bounds() {
        let set = |n: &str, v: &str| (0i8, n.to_string(), Some(v.to_string()));
        let a = alter(&[], &[set(SESSION_TIMEOUT, "50000")]).unwrap();
        assert_eq!(a, vec![(SESSION_TIMEOUT.to_string(), "50000".to_string())]);
        assert!(alter(&[], &[set(SESSION_TIMEOUT, "1000")]).is_err());
        assert!(alter(&[], &[set(HEARTBEAT_INTERVAL, "16000")]).is_err());
        assert!(alter(&[], &[set("group.consumer.session.timeout.ms", "50000")]).is_err());
        let deleted = alter(&a, &[(1, SESSION_TIMEOUT.to_string(), None)]).unwrap();
        assert!(deleted.is_empty());
        let r = report(&a, &GroupConfig::default());
        assert_eq!((r[0].value.as_str(), r[0].source), ("50000", SOURCE_GROUP));
        assert_eq!((r[1].value.as_str(), r[1].source), ("5000", SOURCE_DEFAULT));
    }
}
