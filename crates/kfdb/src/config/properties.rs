//! The names of `kfdb serve`'s settings in a `server.properties` file: which Kafka (and `kfdb.`)
//! key sets which flag, how the few keys that are not one flag translate, and which Kafka keys
//! kfdb accepts but does not need. This module only names and translates; `config/mod.rs` reads
//! the file and applies the precedence.

/// Keys that set one flag of `kfdb serve` as they are: (property, clap argument id).
pub(crate) const DIRECT: &[(&str, &str)] = &[
    ("kfdb.listen", "listen"),
    ("kfdb.advertised.listener", "advertised_listener"),
    ("listeners", "listeners"),
    ("advertised.listeners", "advertised_listeners"),
    (
        "listener.security.protocol.map",
        "listener_security_protocol_map",
    ),
    ("controller.listener.names", "controller_listener_names"),
    ("kfdb.ssl.cert.file", "ssl_cert_file"),
    ("kfdb.ssl.key.file", "ssl_key_file"),
    ("kfdb.ssl.ca.file", "ssl_ca_file"),
    ("ssl.client.auth", "ssl_client_auth"),
    ("sasl.enabled.mechanisms", "sasl_enabled_mechanisms"),
    (
        "kfdb.sasl.plain.allow.plaintext",
        "sasl_plain_allow_plaintext",
    ),
    ("connections.max.reauth.ms", "connections_max_reauth_ms"),
    (
        "connection.failed.authentication.delay.ms",
        "connection_failed_authentication_delay_ms",
    ),
    ("kfdb.authorizer", "authorizer"),
    ("super.users", "super_users"),
    (
        "allow.everyone.if.no.acl.found",
        "allow_everyone_if_no_acl_found",
    ),
    ("kfdb.data.dir", "data_dir"),
    ("kfdb.store", "store"),
    ("kfdb.fdb.cluster.file", "fdb_cluster_file"),
    ("kfdb.commit.latency.ms", "commit_latency_ms"),
    ("kfdb.store.cache.bytes", "store_cache_bytes"),
    ("node.id", "node_id"),
    ("broker.rack", "broker_rack"),
    (
        "broker.heartbeat.interval.ms",
        "broker_heartbeat_interval_ms",
    ),
    ("broker.session.timeout.ms", "broker_session_timeout_ms"),
    ("kfdb.brokers", "brokers"),
    ("auto.create.topics.enable", "auto_create_topics"),
    ("num.partitions", "num_partitions"),
    ("socket.request.max.bytes", "socket_request_max_bytes"),
    ("max.connections", "max_connections"),
    ("max.connections.per.ip", "max_connections_per_ip"),
    ("connections.max.idle.ms", "connections_max_idle_ms"),
    ("queued.max.request.bytes", "queued_max_request_bytes"),
    ("fetch.max.bytes", "fetch_max_bytes"),
    ("socket.send.buffer.bytes", "socket_send_buffer_bytes"),
    ("socket.receive.buffer.bytes", "socket_receive_buffer_bytes"),
    (
        "log.retention.check.interval.ms",
        "log_retention_check_interval_ms",
    ),
    ("log.cleaner.backoff.ms", "log_cleaner_backoff_ms"),
    ("log.retention.ms", "log_retention_ms"),
    ("log.retention.minutes", "log_retention_minutes"),
    ("log.retention.hours", "log_retention_hours"),
    ("log.retention.bytes", "log_retention_bytes"),
    ("transaction.max.timeout.ms", "transaction_max_timeout_ms"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "transaction_abort_timed_out_transaction_cleanup_interval_ms",
    ),
    (
        "transactional.id.expiration.ms",
        "transactional_id_expiration_ms",
    ),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "transaction_remove_expired_transaction_cleanup_interval_ms",
    ),
    ("producer.id.expiration.ms", "producer_id_expiration_ms"),
    (
        "producer.id.expiration.check.interval.ms",
        "producer_id_expiration_check_interval_ms",
    ),
    (
        "group.initial.rebalance.delay.ms",
        "group_initial_rebalance_delay_ms",
    ),
    (
        "group.min.session.timeout.ms",
        "group_min_session_timeout_ms",
    ),
    (
        "group.max.session.timeout.ms",
        "group_max_session_timeout_ms",
    ),
    (
        "group.consumer.session.timeout.ms",
        "group_consumer_session_timeout_ms",
    ),
    (
        "group.consumer.heartbeat.interval.ms",
        "group_consumer_heartbeat_interval_ms",
    ),
    ("kfdb.metrics.listen", "metrics_listen"),
    ("kfdb.metrics.lag.interval.ms", "metrics_lag_interval_ms"),
    ("kfdb.http.listen", "http_listen"),
    ("kfdb.metadata.max.topics", "metadata_max_topics"),
    ("kfdb.hot.cache.bytes", "hot_cache_bytes"),
    ("kfdb.shutdown.timeout.ms", "shutdown_timeout_ms"),
    ("kfdb.log.format", "log_format"),
    ("kfdb.log.level", "log_level"),
    ("kfdb.slow.request.ms", "slow_request_ms"),
];

/// Keys that translate into flags with other values (Kafka's way of naming the same thing).
pub(crate) const TRANSLATED: &[&str] = &[
    "authorizer.class.name",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.truststore.type",
    "ssl.truststore.location",
];

/// Kafka settings kfdb accepts and does not need: replication, the controller quorum, log
/// segments and their files, thread pools and socket buffers (FoundationDB replicates and stores;
/// tokio schedules).
pub(crate) const IGNORED: &[&str] = &[
    "process.roles",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.timeout.ms",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.mechanism.controller.protocol",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
    "num.network.threads",
    // kfdb has no queue between network and handler threads: a connection handles its requests
    // itself, one at a time plus at most 64 Produce requests awaiting durability.
    "queued.max.requests",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "background.threads",
    "offsets.topic.replication.factor",
    "offsets.topic.num.partitions",
    "offsets.topic.segment.bytes",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.segment.bytes",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "default.replication.factor",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.index.size.max.bytes",
    "log.index.interval.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.scheduler.interval.ms",
    "log.cleaner.enable",
    "log.cleaner.threads",
    "log.cleaner.dedupe.buffer.size",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "zookeeper.session.timeout.ms",
    "group.coordinator.rebalance.protocols",
    "delete.topic.enable",
];

/// What a key translates into: (clap argument id, value) pairs, or why it cannot be taken.
/// `others` are the file's other keys (a keystore's location needs its type).
pub(crate) fn translate(
    key: &str,
    value: &str,
    others: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, String> {
    let pem = |type_key: &str| match others(type_key) {
        Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(()),
        Some(t) => Err(format!(
            "{type_key}={t}: kfdb reads PEM files (set {type_key}=PEM and convert the store, e.g. \
             with openssl pkcs12)"
        )),
        None => Err(format!("{key} needs {type_key}=PEM")),
    };
    match key {
        "authorizer.class.name" => {
            let v = value.trim();
            let name = if v.is_empty() {
                "none"
            } else if v.ends_with("StandardAuthorizer") || v.ends_with("AclAuthorizer") {
                "acl"
            } else {
                return Err(format!(
                    "authorizer.class.name={v}: kfdb has Kafka's standard ACL authorizer only \
                     (org.apache.kafka.metadata.authorizer.StandardAuthorizer)"
                ));
            };
            Ok(vec![("authorizer", name.into())])
        }
        "ssl.keystore.type" | "ssl.truststore.type" => {
            // Checked with the location it describes.
            Ok(vec![])
        }
        "ssl.keystore.location" => {
            pem("ssl.keystore.type")?;
            // A PEM keystore holds the certificate chain and the private key in one file.
            Ok(vec![
                ("ssl_cert_file", value.into()),
                ("ssl_key_file", value.into()),
            ])
        }
        "ssl.truststore.location" => {
            pem("ssl.truststore.type")?;
            Ok(vec![("ssl_ca_file", value.into())])
        }
        _ => Err(format!("{key} is not a kfdb setting")),
    }
}

/// Every key a file may hold, for suggestions and the reference.
pub(crate) fn known_keys() -> impl Iterator<Item = &'static str> {
    DIRECT
        .iter()
        .map(|(k, _)| *k)
        .chain(TRANSLATED.iter().copied())
        .chain(IGNORED.iter().copied())
}

/// The known key closest to a misspelt one, if any is close.
pub(crate) fn closest(key: &str) -> Option<&'static str> {
    known_keys()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The property that sets a clap argument, if any.
pub(crate) fn property_of(arg_id: &str) -> Option<&'static str> {
    DIRECT.iter().find(|(_, a)| *a == arg_id).map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_named_twice() {
        let mut all: Vec<_> = known_keys().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn suggestions_and_translations() {
        assert_eq!(closest("num.partition"), Some("num.partitions"));
        assert_eq!(
            closest("auto.create.topic.enable"),
            Some("auto.create.topics.enable")
        );
        assert_eq!(closest("completely.different"), None);
        let none = |_: &str| None;
        assert_eq!(
            translate(
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                &none
            )
            .unwrap(),
            vec![("authorizer", "acl".to_string())]
        );
        assert!(translate("authorizer.class.name", "com.example.Custom", &none).is_err());
        assert!(translate("ssl.keystore.location", "/k.pem", &none).is_err());
        let pem = |k: &str| (k == "ssl.keystore.type").then(|| "PEM".to_string());
        assert_eq!(
            translate("ssl.keystore.location", "/k.pem", &pem)
                .unwrap()
                .len(),
            2
        );
    }
}
