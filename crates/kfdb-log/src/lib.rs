//! # kfdb-log: the data model
//!
//! Topics, partition logs and offsets, written once over kfdb-kv transactions so they run on the
//! embedded store and on FoundationDB alike. This crate owns the key layout (`keys.rs`, the only
//! place that builds keys) and the value formats (`values.rs`); it knows nothing of sockets or of
//! the Kafka wire format beyond record-batch headers.
//!
//! - `topics`: create/delete/describe topics, partitions and configs; a bounded cache of metadata.
//! - `append`: the partition owner's writer: concurrent appends to one partition are grouped into
//!   one store transaction, one commit in flight per partition, offsets assigned densely.
//! - `read`: fetch reads (whole batches, one range read) and offset lookups.
//! - `retention`: time and size retention, DeleteRecords.
//! - `producer`: idempotent producers (ids, sequence checks); `txn`: the transaction coordinator's
//!   state and operations; `markers`: commit/abort markers, last stable offset, aborted index.

mod append;
pub mod batch;
pub mod cache;
pub mod config;
mod error;
mod groups;
pub mod keys;
mod markers;
pub mod producer;
mod read;
mod retention;
mod topics;
mod txn;
mod values;
mod walk;

pub use append::AppendResult;
pub use error::{LogError, LogResult};
pub use groups::{CommittedOffset, GroupRecord, MemberRecord, committed};
pub use read::{FetchResult, Isolation, OffsetLookup};
pub use topics::{AlterOp, NewTopic, TopicId};
pub use txn::{MARKERS_PER_TXN, TxnAddition, TxnState, TxnStatus};
pub use values::{BatchInfo, Owner, PartitionState, TopicMeta};

use dashmap::DashMap;
use kfdb_kv::{Database, KvError};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the data model (broker-level Kafka configs where Kafka has one).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// This broker's node id: the owner id written into partitions it appends to.
    pub node_id: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`, reported for topics created with -1.
    pub default_replication_factor: i16,
    /// Upper bound on record bytes one append transaction carries (FoundationDB allows 10 MB).
    pub max_append_txn_bytes: usize,
    /// `producer.id.expiration.ms`: idempotent-producer state older than this is forgotten.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`: how often expired producer states are deleted.
    pub producer_expiry_interval: Duration,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction open and no
    /// change for this long is deleted.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub txn_id_expiry_interval: Duration,
    /// Bytes of recent record batches kept in memory for tailing fetches (0 turns it off).
    pub hot_cache_bytes: usize,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub txn_expiry_interval: Duration,
    /// Partitions whose transaction markers share one store transaction (see `txn.rs`).
    pub markers_per_txn: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            max_append_txn_bytes: 4 * 1024 * 1024,
            producer_id_expiration_ms: 86_400_000,
            producer_expiry_interval: Duration::from_secs(600),
            transactional_id_expiration_ms: 604_800_000,
            txn_id_expiry_interval: Duration::from_secs(3600),
            hot_cache_bytes: 256 * 1024 * 1024,
            retention_check_interval: Duration::from_secs(300),
            transaction_max_timeout_ms: 900_000,
            txn_expiry_interval: Duration::from_secs(10),
            markers_per_txn: MARKERS_PER_TXN,
        }
    }
}

/// The data model over one database. Share it as `Arc<Log>`.
pub struct Log {
    db: Database,
    config: LogConfig,
    cluster_id: String,
    topics: topics::TopicCache,
    writers: DashMap<(i64, i32), Arc<append::PartitionWriter>>,
    /// High watermark announcements: an append publishes its partition's new next offset so that
    /// waiting fetches wake up without polling.
    watermarks: DashMap<(i64, i32), tokio::sync::watch::Sender<i64>>,
    /// Newest batches of the partitions this broker writes.
    cache: cache::HotCache,
    /// This broker's reserved producer ids: `[next, end)`.
    pid_block: std::sync::Mutex<(i64, i64)>,
}

impl Log {
    /// Open the data model on `db`: loads or creates the cluster id.
    pub async fn open(db: Database, config: LogConfig) -> LogResult<Arc<Self>> {
        let cluster_id = db
            .run(|tx, _| async move {
                let key = keys::cluster_id();
                if let Some(v) = tx.get(&key, false).await? {
                    return Ok(String::from_utf8_lossy(&v).into_owned());
                }
                let id = new_cluster_id();
                tx.set(&key, id.as_bytes());
                Ok::<_, KvError>(id)
            })
            .await?;
        let cache = cache::HotCache::new(config.hot_cache_bytes);
        Ok(Arc::new(Self {
            db,
            config,
            cluster_id,
            topics: topics::TopicCache::default(),
            writers: DashMap::new(),
            watermarks: DashMap::new(),
            pid_block: std::sync::Mutex::new((0, 0)),
            cache,
        }))
    }

    /// The database underneath.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The cluster id (Kafka's 22-character base64 form of a UUID).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// A receiver that changes whenever the partition's high watermark advances.
    pub fn watch_watermark(&self, tid: i64, partition: i32) -> tokio::sync::watch::Receiver<i64> {
        self.watermarks
            .entry((tid, partition))
            .or_insert_with(|| tokio::sync::watch::channel(-1).0)
            .subscribe()
    }

    /// A fetch stopped watching the partition: forget its channel if no one else watches, so
    /// partitions nobody long-polls cost no memory.
    pub fn unwatch_watermark(&self, tid: i64, partition: i32) {
        self.watermarks
            .remove_if(&(tid, partition), |_, s| s.receiver_count() == 0);
    }

    /// Partitions with a watermark channel (fetches long-polling them).
    pub fn watched_partitions(&self) -> usize {
        self.watermarks.len()
    }

    fn announce(&self, tid: i64, partition: i32, next_offset: i64) {
        if let Some(s) = self.watermarks.get(&(tid, partition)) {
            s.send_replace(next_offset);
        }
    }

    /// Hot-segment cache counters.
    pub fn cache_stats(&self) -> cache::CacheStats {
        self.cache.stats()
    }

    fn forget_topic(&self, tid: i64) {
        self.cache.drop_topic(tid);
        self.writers.retain(|(t, _), _| *t != tid);
        self.watermarks.retain(|(t, _), _| *t != tid);
    }
}

fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut out = String::with_capacity(22);
    let mut bits = 0u32;
    let mut nbits = 0;
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// Run `pass` every `interval` (the first one interval from now) until the task is dropped: the
/// loop of the background sweeps. A pass that did something is logged as `done` (when given) with
/// its count; a failed one as `failed`, and the next one runs on schedule.
pub(crate) async fn run_every<F, Fut>(
    interval: Duration,
    done: Option<&'static str>,
    failed: &'static str,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = LogResult<usize>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        match (pass().await, done) {
            (Ok(n), Some(done)) if n > 0 => tracing::info!(count = n, "{done}"),
            (Ok(_), _) => {}
            (Err(e), _) => tracing::warn!(error = %e, "{failed}"),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = super::new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
