//! Prometheus metrics (served by `http.rs` on `kfdb serve --metrics-listen`).
//!
//! Per API key: requests and latency. Broker-wide: bytes in and out, connections, connections
//! closed for protocol faults, the store's commit latency (recorded by kfdb-kv's retry loop) and
//! its commit/conflict/fsync/retry counters, client-quota throttling and compaction's counters (read when scraped). No per-topic labels: label cardinality stays fixed at any topic count.

use kfdb_log::Log;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;

/// Every metric kfdb exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by API.
    pub requests: IntCounterVec,
    /// Request handling time by API (decode to encoded response).
    pub latency: HistogramVec,
    /// Request bytes received.
    pub bytes_in: IntCounter,
    /// Response bytes sent.
    pub bytes_out: IntCounter,
    /// Times a connection waited for room under `queued.max.request.bytes` before reading a frame.
    pub request_bytes_waits: IntCounter,
    /// Requests throttled by a client quota, by quota key, and the milliseconds they were given.
    pub quota_throttled: IntCounterVec,
    /// Milliseconds of throttling given for client quotas, by quota key.
    pub quota_throttle_ms: IntCounterVec,
    /// Open connections.
    pub connections: IntGauge,
    /// Connections closed because of a framing or decoding fault, by reason.
    pub protocol_errors: IntCounterVec,
    /// SASL authentications, by mechanism and result (`ok`, `failed`, `throttled`).
    pub sasl_authentications: IntCounterVec,
    store_commits: IntGauge,
    store_conflicts: IntGauge,
    store_fsyncs: IntGauge,
    store_value_log_syncs: IntGauge,
    store_value_log_segments: IntGauge,
    store_value_log_bytes: IntGauge,
    store_value_log_segments_removed: IntGauge,
    store_value_log_values_moved: IntGauge,
    store_value_log_bytes_moved: IntGauge,
    store_retries: IntGauge,
    cache_hits: IntGauge,
    cache_misses: IntGauge,
    cache_bytes: IntGauge,
    cache_partitions: IntGauge,
    active_partitions: IntGauge,
    watched_partitions: IntGauge,
    cached_topics: IntGauge,
    errors: prometheus::IntGaugeVec,
    compaction_passes: IntGauge,
    compaction_records_removed: IntGauge,
    compaction_bytes_removed: IntGauge,
    compaction_max_dirty_ratio: prometheus::Gauge,
    compaction_max_lag_seconds: prometheus::Gauge,
    rebalances: prometheus::IntGaugeVec,
    /// Total lag (records) of the consumer groups with the largest lag (see [`sample_lag`]).
    pub group_lag: prometheus::IntGaugeVec,
}

/// How many groups `kfdb_group_lag_records` reports: the ones with the largest lag, so the
/// series count stays bounded at any number of groups.
pub const LAG_TOP_GROUPS: usize = 20;

fn fail(e: prometheus::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Metrics {
    /// A fresh set of metrics in their own registry, including the store's commit-latency
    /// histogram.
    pub fn new(log: &Log) -> std::io::Result<Arc<Self>> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("kfdb_requests_total", "Kafka requests handled, by API"),
            &["api"],
        )
        .map_err(fail)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "kfdb_request_duration_seconds",
                "Time to answer a request, by API",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 5.0, 30.0,
            ]),
            &["api"],
        )
        .map_err(fail)?;
        let bytes_in =
            IntCounter::new("kfdb_bytes_in_total", "Request bytes received").map_err(fail)?;
        let bytes_out =
            IntCounter::new("kfdb_bytes_out_total", "Response bytes sent").map_err(fail)?;
        let connections =
            IntGauge::new("kfdb_connections", "Open client connections").map_err(fail)?;
        let request_bytes_waits = IntCounter::new(
            "kfdb_request_bytes_waits_total",
            "Times a connection waited for room under queued.max.request.bytes before reading a \
             request",
        )
        .map_err(fail)?;
        let quota_throttled = IntCounterVec::new(
            Opts::new(
                "kfdb_quota_throttled_total",
                "Requests throttled by a client quota",
            ),
            &["quota"],
        )
        .map_err(fail)?;
        let quota_throttle_ms = IntCounterVec::new(
            Opts::new(
                "kfdb_quota_throttle_ms_total",
                "Milliseconds of throttling given for client quotas",
            ),
            &["quota"],
        )
        .map_err(fail)?;
        let protocol_errors = IntCounterVec::new(
            Opts::new(
                "kfdb_protocol_errors_total",
                "Connections closed for protocol faults",
            ),
            &["reason"],
        )
        .map_err(fail)?;
        let sasl_authentications = IntCounterVec::new(
            Opts::new(
                "kfdb_sasl_authentications_total",
                "SASL authentications, by mechanism and result (ok, failed; throttled: delayed \
                 because the address failed too often lately)",
            ),
            &["mechanism", "result"],
        )
        .map_err(fail)?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).map_err(fail);
        let errors = prometheus::IntGaugeVec::new(
            Opts::new(
                "kfdb_errors_total",
                "Kafka error codes answered, by code: data-model errors (store, topics, offsets, \
                 producers, transactions) and the group coordinator's answers",
            ),
            &["code"],
        )
        .map_err(fail)?;
        let rebalances = prometheus::IntGaugeVec::new(
            Opts::new(
                "kfdb_group_rebalances_total",
                "Completed group rebalances: new generations of classic groups, new epochs of \
                 KIP-848 consumer groups (by group_type)",
            ),
            &["group_type"],
        )
        .map_err(fail)?;
        let group_lag = prometheus::IntGaugeVec::new(
            Opts::new(
                "kfdb_group_lag_records",
                "Records the group has not committed yet (high watermark minus committed offset, \
                 summed over its partitions), for the groups this broker coordinates with the \
                 largest lag; sampled every --metrics-lag-interval-ms (30 s)",
            ),
            &["group"],
        )
        .map_err(fail)?;
        let m = Self {
            rebalances,
            group_lag,
            cache_hits: gauge(
                "kfdb_cache_hits_total",
                "Fetches answered from the hot-segment cache",
            )?,
            cache_misses: gauge("kfdb_cache_misses_total", "Fetches that read the store")?,
            cache_bytes: gauge(
                "kfdb_cache_bytes",
                "Bytes of record batches in the hot-segment cache",
            )?,
            cache_partitions: gauge(
                "kfdb_cache_partitions",
                "Partitions in the hot-segment cache",
            )?,
            active_partitions: gauge(
                "kfdb_active_partitions",
                "Partitions this broker is appending to right now (a writer in memory)",
            )?,
            errors,
            cached_topics: gauge(
                "kfdb_cached_topics",
                "Topics in the bounded topic-metadata cache (idle topics are not held)",
            )?,
            watched_partitions: gauge(
                "kfdb_watched_partitions",
                "Partitions a long-polling Fetch is waiting on",
            )?,
            store_commits: gauge(
                "kfdb_store_commits_total",
                "Store transactions committed (embedded store)",
            )?,
            store_conflicts: gauge(
                "kfdb_store_conflicts_total",
                "Store commits rejected by conflicts (embedded store)",
            )?,
            store_fsyncs: gauge(
                "kfdb_store_fsyncs_total",
                "fsyncs of commit groups (embedded store)",
            )?,
            store_value_log_syncs: gauge(
                "kfdb_store_value_log_syncs_total",
                "fdatasyncs of the value log (embedded store)",
            )?,
            store_value_log_segments: gauge(
                "kfdb_store_value_log_segments",
                "Segment files of the value log (embedded store)",
            )?,
            store_value_log_bytes: gauge(
                "kfdb_store_value_log_bytes",
                "Bytes in the value log's segment files, live and not yet collected (embedded store)",
            )?,
            store_value_log_segments_removed: gauge(
                "kfdb_store_value_log_segments_removed_total",
                "Value log segments the collector deleted (embedded store)",
            )?,
            store_value_log_values_moved: gauge(
                "kfdb_store_value_log_values_moved_total",
                "Live values the value log's collector moved out of mostly dead segments (embedded store)",
            )?,
            store_value_log_bytes_moved: gauge(
                "kfdb_store_value_log_bytes_moved_total",
                "Bytes of the values the value log's collector moved (embedded store)",
            )?,
            store_retries: gauge(
                "kfdb_store_retries_total",
                "Transaction retries by the retry loop",
            )?,
            compaction_passes: gauge(
                "kfdb_compaction_passes_total",
                "Compaction passes that rewrote a partition's log",
            )?,
            compaction_records_removed: gauge(
                "kfdb_compaction_records_removed_total",
                "Records compaction removed",
            )?,
            compaction_bytes_removed: gauge(
                "kfdb_compaction_bytes_removed_total",
                "Bytes compaction removed from logs",
            )?,
            compaction_max_dirty_ratio: prometheus::Gauge::new(
                "kfdb_compaction_max_dirty_ratio",
                "Highest dirty ratio of a compacted partition at the last check (Kafka's \
                 max-dirty-percent / 100)",
            )
            .map_err(fail)?,
            compaction_max_lag_seconds: prometheus::Gauge::new(
                "kfdb_compaction_max_lag_seconds",
                "Longest a dirty record of a compacted partition had waited at the last check \
                 (Kafka's max-compaction-delay-secs)",
            )
            .map_err(fail)?,
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            request_bytes_waits,
            quota_throttled,
            quota_throttle_ms,
            connections,
            protocol_errors,
            sasl_authentications,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.latency.clone()),
            Box::new(m.bytes_in.clone()),
            Box::new(m.bytes_out.clone()),
            Box::new(m.request_bytes_waits.clone()),
            Box::new(m.quota_throttled.clone()),
            Box::new(m.quota_throttle_ms.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.protocol_errors.clone()),
            Box::new(m.sasl_authentications.clone()),
            Box::new(m.store_commits.clone()),
            Box::new(m.store_conflicts.clone()),
            Box::new(m.store_fsyncs.clone()),
            Box::new(m.store_value_log_syncs.clone()),
            Box::new(m.store_value_log_segments.clone()),
            Box::new(m.store_value_log_bytes.clone()),
            Box::new(m.store_value_log_segments_removed.clone()),
            Box::new(m.store_value_log_values_moved.clone()),
            Box::new(m.store_value_log_bytes_moved.clone()),
            Box::new(m.store_retries.clone()),
            Box::new(m.cache_hits.clone()),
            Box::new(m.cache_misses.clone()),
            Box::new(m.cache_bytes.clone()),
            Box::new(m.cache_partitions.clone()),
            Box::new(m.active_partitions.clone()),
            Box::new(m.watched_partitions.clone()),
            Box::new(m.cached_topics.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.compaction_passes.clone()),
            Box::new(m.compaction_records_removed.clone()),
            Box::new(m.compaction_bytes_removed.clone()),
            Box::new(m.compaction_max_dirty_ratio.clone()),
            Box::new(m.compaction_max_lag_seconds.clone()),
            Box::new(m.rebalances.clone()),
            Box::new(m.group_lag.clone()),
            Box::new(log.store_commit_seconds()),
        ];
        for c in collectors {
            m.registry.register(c).map_err(fail)?;
        }
        Ok(Arc::new(m))
    }

    /// The text exposition of every metric, with the store's counters read now.
    pub fn render(&self, log: &Log) -> Vec<u8> {
        let c = log.tails().cache_stats();
        self.cache_hits.set(c.hits as i64);
        self.cache_misses.set(c.misses as i64);
        self.cache_bytes.set(c.bytes as i64);
        self.cache_partitions.set(c.partitions as i64);
        self.active_partitions.set(log.writers().active() as i64);
        self.watched_partitions.set(log.tails().watched() as i64);
        self.cached_topics.set(log.topics().cached() as i64);
        for (code, n) in crate::error_code::answered_counts() {
            self.errors
                .with_label_values(&[code.to_string().as_str()])
                .set(n as i64);
        }
        let store = log.store_stats();
        // Embedded store only (`None` on FoundationDB: the gauges stay 0).
        for (gauge, value) in [
            (&self.store_commits, store.commits),
            (&self.store_conflicts, store.conflicts),
            (&self.store_fsyncs, store.fsyncs),
            (&self.store_value_log_syncs, store.value_log_syncs),
            (&self.store_value_log_segments, store.value_log_segments),
            (&self.store_value_log_bytes, store.value_log_bytes),
            (
                &self.store_value_log_segments_removed,
                store.value_log_segments_removed,
            ),
            (
                &self.store_value_log_values_moved,
                store.value_log_values_moved,
            ),
            (
                &self.store_value_log_bytes_moved,
                store.value_log_bytes_moved,
            ),
        ] {
            if let Some(v) = value {
                gauge.set(v as i64);
            }
        }
        self.store_retries.set(store.retries as i64);
        let c = log.compactor().stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        self.compaction_passes.set(load(&c.passes) as i64);
        self.compaction_records_removed
            .set(load(&c.records_removed) as i64);
        self.compaction_bytes_removed
            .set(load(&c.bytes_removed) as i64);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.compaction_max_dirty_ratio
            .set(c.max_dirty_per_mille.load(relaxed) as f64 / 1000.0);
        self.compaction_max_lag_seconds
            .set(c.max_lag_ms.load(relaxed) as f64 / 1000.0);
        for (label, counter) in [
            ("classic", &crate::group::REBALANCES_CLASSIC),
            ("consumer", &crate::group::REBALANCES_CONSUMER),
        ] {
            self.rebalances
                .with_label_values(&[label])
                .set(counter.load(relaxed) as i64);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Every `every`, the lag of each group this broker coordinates and holds in memory (classic and
/// consumer groups): its committed offsets against the partitions' high watermarks. The
/// [`LAG_TOP_GROUPS`] largest are exported; a group whose partitions are gone counts what is left.
pub async fn sample_lag(broker: Arc<crate::Broker>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut ids = broker.groups.loaded_ids();
        ids.extend(broker.groups.consumer_group_ids());
        ids.sort_unstable();
        ids.dedup();
        let mut lags = Vec::with_capacity(ids.len());
        for id in ids {
            match group_lag(&broker.log, &id).await {
                Ok(Some(lag)) => lags.push((lag, id)),
                Ok(None) => {}
                Err(e) => tracing::debug!(group = %id, error = %e, "lag not sampled"),
            }
        }
        lags.sort_unstable_by(|a, b| b.cmp(a));
        lags.truncate(LAG_TOP_GROUPS);
        broker.metrics.group_lag.reset();
        for (lag, id) in lags {
            broker.metrics.group_lag.with_label_values(&[&id]).set(lag);
        }
    }
}

/// A group's total lag, or `None` when it has committed nothing.
async fn group_lag(log: &Log, group: &str) -> kfdb_log::LogResult<Option<i64>> {
    let committed = log.groups().fetch_offsets(group, None).await?;
    if committed.is_empty() {
        return Ok(None);
    }
    let partitions: Vec<_> = committed.iter().map(|(p, _)| *p).collect();
    let states = log.reader().partition_states(&partitions).await?;
    Ok(Some(
        committed
            .iter()
            .zip(states)
            .map(|((_, c), s)| (s.next_offset - c.offset).max(0))
            .sum(),
    ))
}
