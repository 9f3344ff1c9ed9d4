//! # kfdb-log: the data model
//!
//! Topics, partition logs, offsets, groups and transactions, written once over kfdb-kv
//! transactions so they run on the embedded store and on FoundationDB alike. This crate owns the
//! key layout (`keys.rs`, the only place that builds and parses keys) and the value formats
//! (`values.rs`, the only place that encodes values); it knows nothing of sockets or of the Kafka
//! wire format beyond record-batch headers.
//!
//! [`Log`] is the facade the broker holds; it opens the components and hands them out. Each
//! component owns one thing, and they depend on each other in one direction only:
//!
//! - `catalog::TopicCatalog`: topics (create, look up, list, alter, delete) and their cache.
//! - `writer::PartitionWriters` (with `append.rs`): appends, grouped per partition, one commit in
//!   flight per partition, offsets assigned densely.
//! - `reader::PartitionReader`: fetches, offset lookups and the latest record of a key (from the
//!   key index `keyindex.rs`, which appends and commit markers keep).
//! - `retention::Retention`: time and size retention, DeleteRecords.
//! - `compaction::Compactor`: compaction of `cleanup.policy=compact` topics, decided by the key
//!   index, in bounded transactions holding the partition's writer.
//! - `producers::ProducerStates`: producer ids and the producer states partitions keep.
//! - `groups::GroupStore`: committed offsets and stored group membership.
//! - `txn::TxnCoordinator` (with `markers.rs`): the transaction coordinator.
//! - `users::Users`: SASL users' salted SCRAM credentials; `acls::Acls`: ACL bindings;
//!   `quotas::ClientQuotas`: client quotas.
//! - `sweeps`: the background loops over retention, transactions and producers.
//! - `tails::Tails`: what this broker holds in memory about partition tails (hot cache,
//!   watermark channels), shared by the writers, the reader and retention.
//! - `members::Membership`: this broker's registration and lease, and the view of live brokers;
//!   `leadership::Leadership`: who leads each partition (`placement.rs`), claims and epochs;
//!   `watchers`: what the broker does when the view or its inbox changes.
//!
//! Below them: `partition.rs` (what one store transaction can do to a partition), `owner.rs`
//! (ownership keys), `producer.rs` (sequence rules), `batch.rs`, `config.rs`, `cache.rs`,
//! `walk.rs`, `keys.rs`, `values.rs`, `ids.rs`, `error.rs`, `clock.rs`.

mod acls;
mod append;
pub mod batch;
pub mod cache;
mod catalog;
mod clock;
mod compaction;
pub mod config;
mod decompress;
mod error;
mod groups;
mod ids;
mod keyindex;
mod keys;
mod leadership;
mod markers;
mod members;
mod owner;
mod partition;
pub mod parts;
mod placement;
mod producer;
mod producers;
mod quotas;
mod reader;
mod records;
mod retention;
mod sweeps;
mod tails;
mod txn;
mod users;
mod values;
mod walk;
mod watchers;
mod writer;
mod written;

pub use acls::{AclBinding, Acls};
pub use append::Condition;
pub use catalog::{AlterOp, NewTopic, TopicCatalog, TopicId, validate_topic_name};
pub use clock::now_ms;
pub use compaction::{Compacted, CompactionStats, Compactor};
pub use error::{LogError, LogResult, StoreFault};
pub use groups::{GroupStore, committed};
pub use ids::PartitionId;
pub use keyindex::{KeyedRecord, MAX_INLINE_KEY, default_partition};
pub use leadership::Leadership;
pub use members::{ClusterView, Membership, MembershipConfig};
pub use placement::{CoordinatorKind, partition_replica};
pub use producers::{ActiveProducer, PID_BLOCK, ProducerStates};
pub use quotas::{ClientQuotas, EntityName, QuotaChange, QuotaEntity, QuotaValues};
pub use reader::{FetchResult, Isolation, OffsetLookup, PartitionReader};
pub use retention::Retention;
pub use tails::Tails;
pub use txn::{MARKERS_PER_TXN, TxnAddition, TxnCoordinator};
pub use users::{UserCredentialInfo, Users};
pub use values::{
    AssignedPartition, BatchInfo, BrokerRecord, CommittedOffset, ConsumerGroupRecord,
    ConsumerMemberRecord, Endpoint, GroupRecord, MemberRecord, Owner, PartitionState,
    ScramCredential, TopicMeta, TxnState, TxnStatus,
};
pub use writer::{AppendResult, PartitionWriters};

use kfdb_kv::Database;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the data model (broker-level Kafka configs where Kafka has one).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// This broker's node id when it does not join a cluster (`membership` is `None`).
    pub node_id: i32,
    /// Join the cluster registered in the store (`None`: a standalone broker that alone leads
    /// everything, for tests and store tools).
    pub membership: Option<MembershipConfig>,
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
    /// `log.cleaner.backoff.ms`: how often compaction looks at the partitions written since.
    pub cleaner_backoff: Duration,
    /// Broker configs given to `kfdb serve` that are defaults of topic configs
    /// (`log.retention.hours=24`, ...; `config::BROKER_SYNONYMS`), by their broker names.
    pub broker_topic_defaults: Vec<(String, String)>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            membership: None,
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
            cleaner_backoff: Duration::from_secs(15),
            broker_topic_defaults: Vec::new(),
        }
    }
}

/// Counters of the store underneath, for the broker's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Which backend: `"embedded"` or `"fdb"`.
    pub backend: &'static str,
    /// Transactions retried by the retry loop (conflicts, too old, unknown results).
    pub retries: u64,
    /// Embedded store only: transactions committed, conflicts, fsyncs.
    pub commits: Option<u64>,
    /// See `commits`.
    pub conflicts: Option<u64>,
    /// See `commits`.
    pub fsyncs: Option<u64>,
    /// Embedded store only: fdatasyncs of the value log, its segment files and their bytes.
    pub value_log_syncs: Option<u64>,
    /// See `value_log_syncs`.
    pub value_log_segments: Option<u64>,
    /// See `value_log_syncs`.
    pub value_log_bytes: Option<u64>,
    /// Embedded store only: the value log's collector: segments deleted, live values moved out
    /// of mostly dead segments and their bytes.
    pub value_log_segments_removed: Option<u64>,
    /// See `value_log_segments_removed`.
    pub value_log_values_moved: Option<u64>,
    /// See `value_log_segments_removed`.
    pub value_log_bytes_moved: Option<u64>,
}

/// The data model over one database: the facade the broker holds. Share it as `Arc<Log>`.
pub struct Log {
    db: Database,
    config: LogConfig,
    cluster_id: String,
    membership: Arc<Membership>,
    leadership: Arc<Leadership>,
    tails: Arc<Tails>,
    topics: Arc<TopicCatalog>,
    writers: Arc<PartitionWriters>,
    reader: PartitionReader,
    retention: Arc<Retention>,
    compactor: Arc<Compactor>,
    producers: Arc<ProducerStates>,
    groups: GroupStore,
    txns: Arc<TxnCoordinator>,
    users: Users,
    acls: Acls,
    quotas: ClientQuotas,
}

impl Log {
    /// Open the data model on `db`: loads or creates the cluster id.
    pub async fn open(db: Database, config: LogConfig) -> LogResult<Arc<Self>> {
        let cluster_id = db
            .run(|tx, _| async move {
                let key = keys::cluster_id();
                if let Some(v) = tx.get(&key, false).await? {
                    return Ok(values::decode_cluster_id(&v));
                }
                let id = new_cluster_id();
                tx.set(&key, &values::encode_cluster_id(&id));
                Ok::<_, LogError>(id)
            })
            .await?;
        let membership = Arc::new(match &config.membership {
            Some(m) => Membership::join(db.clone(), m.clone()).await?,
            None => Membership::standalone(config.node_id),
        });
        let node = membership.node_id();
        let leadership = Arc::new(Leadership::new(db.clone(), membership.clone()));
        let tails = Arc::new(Tails::new(config.hot_cache_bytes));
        let topics = Arc::new(TopicCatalog::new(
            db.clone(),
            catalog::TopicDefaults {
                auto_create: config.auto_create_topics,
                num_partitions: config.num_partitions,
                replication_factor: config.default_replication_factor,
                broker_configs: config.broker_topic_defaults.clone(),
            },
        ));
        let writers = Arc::new(PartitionWriters::new(
            db.clone(),
            writer::WriterSettings {
                node,
                max_txn_bytes: config.max_append_txn_bytes,
                producer_expiration_ms: config.producer_id_expiration_ms,
            },
            tails.clone(),
            leadership.clone(),
        ));
        let producers = Arc::new(ProducerStates::new(
            db.clone(),
            config.producer_id_expiration_ms,
            leadership.clone(),
        ));
        let txns = Arc::new(TxnCoordinator::new(
            db.clone(),
            txn::TxnSettings {
                node,
                max_timeout_ms: config.transaction_max_timeout_ms,
                id_expiration_ms: config.transactional_id_expiration_ms,
                markers_per_txn: config.markers_per_txn,
            },
            membership.clone(),
            topics.clone(),
            writers.clone(),
            producers.clone(),
            tails.clone(),
        ));
        Ok(Arc::new(Self {
            reader: PartitionReader::new(db.clone(), tails.clone()),
            retention: Arc::new(Retention::new(
                db.clone(),
                tails.clone(),
                topics.clone(),
                leadership.clone(),
            )),
            compactor: Arc::new(Compactor::new(
                db.clone(),
                topics.clone(),
                writers.clone(),
                tails.clone(),
                leadership.clone(),
            )),
            groups: GroupStore::new(db.clone(), node),
            users: Users::new(db.clone()),
            acls: Acls::new(db.clone()),
            quotas: ClientQuotas::new(db.clone()),
            db,
            config,
            cluster_id,
            membership,
            leadership,
            tails,
            topics,
            writers,
            producers,
            txns,
        }))
    }

    /// Settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The cluster id (Kafka's 22-character base64 form of a UUID).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.membership.node_id()
    }

    /// Cluster membership: the live brokers as this broker sees them.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Partition leadership: who leads what, claims, epochs, pins.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Topics.
    pub fn topics(&self) -> &TopicCatalog {
        &self.topics
    }

    /// Appends.
    pub fn writers(&self) -> &Arc<PartitionWriters> {
        &self.writers
    }

    /// Fetches and offset lookups.
    pub fn reader(&self) -> &PartitionReader {
        &self.reader
    }

    /// Retention and DeleteRecords.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Compaction of compacted topics.
    pub fn compactor(&self) -> &Compactor {
        &self.compactor
    }

    /// Producer ids and producer states.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Committed offsets and stored groups.
    pub fn groups(&self) -> &GroupStore {
        &self.groups
    }

    /// The transaction coordinator.
    pub fn txns(&self) -> &TxnCoordinator {
        &self.txns
    }

    /// Client quotas.
    pub fn quotas(&self) -> &ClientQuotas {
        &self.quotas
    }

    /// SASL users' credentials.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// ACL bindings.
    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// Partition tails in memory: watermark channels and the hot cache's counters.
    pub fn tails(&self) -> &Tails {
        &self.tails
    }

    /// Delete a topic and all its data, and forget what this broker holds for it in memory.
    pub async fn delete_topic(&self, id: TopicId<'_>) -> LogResult<Arc<TopicMeta>> {
        let meta = self.topics.delete(id).await?;
        self.tails.drop_topic(meta.id);
        self.writers.forget_topic(meta.id);
        self.leadership.forget_topic(meta.id);
        Ok(meta)
    }

    /// Start the background work on the current runtime: the sweeps (retention, transaction
    /// timeouts, transactional-id and producer-state expiry, each over what this broker leads or
    /// coordinates) and the watchers (membership, view changes, the inbox). It stops when the
    /// result is dropped.
    pub fn start_background(&self) -> Background {
        let mut tasks = sweeps::spawn(
            sweeps::SweepIntervals {
                retention: self.config.retention_check_interval,
                compaction: self.config.cleaner_backoff,
                txn_timeouts: self.config.txn_expiry_interval,
                txn_id_expiry: self.config.txn_id_expiry_interval,
                producer_expiry: self.config.producer_expiry_interval,
            },
            self.retention.clone(),
            self.compactor.clone(),
            self.txns.clone(),
            self.producers.clone(),
        );
        let watchers = watchers::spawn(
            self.db.clone(),
            self.membership.clone(),
            self.leadership.clone(),
            self.tails.clone(),
            self.topics.clone(),
        );
        tasks.extend(watchers);
        Background { tasks }
    }

    /// Whether this broker can serve: the store answers a read, and the broker is in the
    /// cluster's view and not fenced (`/readyz`). The reason when it cannot.
    pub async fn readiness(&self) -> Result<(), String> {
        self.db
            .run(|tx, _| async move {
                tx.get(&keys::cluster_id(), false).await?;
                Ok::<_, LogError>(())
            })
            .await
            .map_err(|e| format!("store unreachable: {e}"))?;
        let node = self.membership.node_id();
        if *self.membership.fenced().borrow() {
            return Err(format!("broker {node} is fenced (its lease ran out)"));
        }
        if !self.membership.view().nodes().contains(&node) {
            return Err(format!("broker {node} is not registered yet"));
        }
        Ok(())
    }

    /// The store's counters.
    pub fn store_stats(&self) -> StoreStats {
        let embedded = self.db.as_embedded().map(|e| e.stats());
        StoreStats {
            backend: self.db.backend_name(),
            retries: self.db.retries(),
            commits: embedded.map(|s| s.commits),
            conflicts: embedded.map(|s| s.conflicts),
            fsyncs: embedded.map(|s| s.fsyncs),
            value_log_syncs: embedded.map(|s| s.value_log_syncs),
            value_log_segments: embedded.map(|s| s.value_log_segments),
            value_log_bytes: embedded.map(|s| s.value_log_bytes),
            value_log_segments_removed: embedded.map(|s| s.value_log_segments_removed),
            value_log_values_moved: embedded.map(|s| s.value_log_values_moved),
            value_log_bytes_moved: embedded.map(|s| s.value_log_bytes_moved),
        }
    }

    /// The histogram of store commit latencies, for the broker's metrics registry.
    pub fn store_commit_seconds(&self) -> prometheus::Histogram {
        self.db.commit_seconds().clone()
    }
}

/// The background work of one `Log` (see [`Log::start_background`]); dropping it stops it,
/// [`Background::stop`] also waits until every task has ended.
pub struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stop every task and wait until none runs: a task still in the middle of a pass when the
    /// runtime shuts down would find its timers gone (tokio panics then).
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
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
