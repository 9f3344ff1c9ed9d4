//! Stored values of the data model and their encodings: the only place that encodes or decodes a
//! value. Every value is a FoundationDB tuple whose first element is its format version (record
//! chunks: a version byte), so formats can evolve without a migration: a decoder reads every
//! version ever written. Values that had no version tag before this was the rule (topic ids,
//! counters, open and aborted transactions, a transaction's partitions, a producer id's
//! transactional id, the cluster id) are now written with one and still read without.
//!
//! Keys whose value is empty (`()` in `keys.rs`) carry nothing but their presence.

use crate::error::{LogError, LogResult};
use bytes::Bytes;
use kfdb_kv::tuple::{TuplePack, TupleUnpack, Uuid, pack, unpack};
use std::collections::VecDeque;

const V1: i64 = 1;
const V2: i64 = 2;

fn corrupt(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::corrupt(what, e)
}

/// Check a decoded format version.
fn expect_version(what: &str, got: i64, want: i64) -> LogResult<()> {
    if got == want {
        Ok(())
    } else {
        Err(corrupt(what, format!("format version {got}")))
    }
}

/// Decode `(V1, value)`, or a value written before versions as the bare `legacy` tuple.
fn versioned_or_legacy<'de, T>(what: &str, bytes: &'de [u8]) -> LogResult<T>
where
    T: TupleUnpack<'de>,
{
    match unpack::<(i64, T)>(bytes) {
        Ok((v, value)) => expect_version(what, v, V1).map(|()| value),
        Err(e) => unpack::<T>(bytes).map_err(|_| corrupt(what, e)),
    }
}

fn versioned<T: TuplePack>(value: T) -> Vec<u8> {
    pack(&(V1, value))
}

// ---- small values ----------------------------------------------------------------------------

/// The cluster id value.
pub(crate) fn encode_cluster_id(id: &str) -> Vec<u8> {
    versioned(id)
}

/// The cluster id; before versions it was stored as bare UTF-8.
pub(crate) fn decode_cluster_id(bytes: &[u8]) -> String {
    match unpack::<(i64, String)>(bytes) {
        Ok((V1, id)) => id,
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Config pairs (name, value), in name order: a group's overrides, the broker defaults.
pub(crate) fn encode_configs(configs: &[(String, String)]) -> Vec<u8> {
    versioned(configs.to_vec())
}

pub(crate) fn decode_configs(what: &str, bytes: &[u8]) -> LogResult<Vec<(String, String)>> {
    let (v, configs): (i64, Vec<(String, String)>) = unpack(bytes).map_err(|e| corrupt(what, e))?;
    expect_version(what, v, V1)?;
    Ok(configs)
}

/// A topic's internal id, as the name and uuid index entries hold it.
pub(crate) fn encode_topic_id(tid: i64) -> Vec<u8> {
    versioned(tid)
}

pub(crate) fn decode_topic_id(bytes: &[u8]) -> LogResult<i64> {
    versioned_or_legacy("topic id", bytes)
}

/// A counter (the end of the reserved topic-id or producer-id blocks).
pub(crate) fn encode_counter(n: i64) -> Vec<u8> {
    versioned(n)
}

pub(crate) fn decode_counter(what: &str, bytes: &[u8]) -> LogResult<i64> {
    versioned_or_legacy(what, bytes)
}

/// The transactional id a producer id belongs to.
pub(crate) fn encode_transactional_id(id: &str) -> Vec<u8> {
    versioned(id)
}

/// A producer id's transactional id; before versions it was stored as bare UTF-8.
pub(crate) fn decode_transactional_id(bytes: &[u8]) -> String {
    match unpack::<(i64, String)>(bytes) {
        Ok((V1, id)) => id,
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The first offset of a producer's open transaction in a partition.
pub(crate) fn encode_open_txn(first_offset: i64) -> Vec<u8> {
    versioned(first_offset)
}

pub(crate) fn decode_open_txn(bytes: &[u8]) -> LogResult<i64> {
    versioned_or_legacy("open transaction", bytes)
}

/// A node id (a leader pin).
pub(crate) fn encode_node(node: i32) -> Vec<u8> {
    versioned(i64::from(node))
}

pub(crate) fn decode_node(bytes: &[u8]) -> LogResult<i32> {
    let n: i64 = versioned_or_legacy("node id", bytes)?;
    i32::try_from(n).map_err(|e| corrupt("node id", e))
}

// ---- brokers ------------------------------------------------------------------------------------

/// A listener a broker advertises: its name (`PLAINTEXT`, `INTERNAL`, ...) and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The listener's name.
    pub listener: String,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: i32,
}

/// A broker's registration and lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRecord {
    /// Its node id.
    pub node_id: i32,
    /// Random per process start: which process holds the node id.
    pub incarnation: i64,
    /// Advertised listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// When the process started (ms).
    pub started_ms: i64,
    /// The lease: the broker is live until then (ms, wall clock), unless `leaving`.
    pub lease_until_ms: i64,
    /// A controlled shutdown is under way: others take over now.
    pub leaving: bool,
}

type BrokerTuple = (
    i64,
    i64,
    i64,
    Vec<(String, String, i64)>,
    Option<String>,
    i64,
    i64,
    bool,
);

impl BrokerRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: BrokerTuple = (
            V1,
            i64::from(self.node_id),
            self.incarnation,
            self.endpoints
                .iter()
                .map(|e| (e.listener.clone(), e.host.clone(), i64::from(e.port)))
                .collect(),
            self.rack.clone(),
            self.started_ms,
            self.lease_until_ms,
            self.leaving,
        );
        pack(&t)
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, node, incarnation, endpoints, rack, started_ms, lease_until_ms, leaving): BrokerTuple =
            unpack(bytes).map_err(|e| corrupt("broker", e))?;
        expect_version("broker", v, V1)?;
        Ok(Self {
            node_id: node as i32,
            incarnation,
            endpoints: endpoints
                .into_iter()
                .map(|(listener, host, port)| Endpoint {
                    listener,
                    host,
                    port: port as i32,
                })
                .collect(),
            rack,
            started_ms,
            lease_until_ms,
            leaving,
        })
    }

    /// Live at `now_ms`: its lease runs and it is not leaving.
    pub fn live(&self, now_ms: i64) -> bool {
        !self.leaving && self.lease_until_ms > now_ms
    }
}

// ---- record batches --------------------------------------------------------------------------

/// First byte of every stored chunk value (format version).
const CHUNK_FORMAT: u8 = 1;

/// The bytes a stored chunk value starts with, before the batch bytes it holds.
pub(crate) const CHUNK_HEADER: [u8; 1] = [CHUNK_FORMAT];

/// The batch bytes of a stored chunk.
pub(crate) fn decode_chunk(value: &[u8]) -> LogResult<&[u8]> {
    match value.split_first() {
        Some((&CHUNK_FORMAT, rest)) => Ok(rest),
        Some((v, _)) => Err(corrupt("record chunk", format!("format {v}"))),
        None => Err(corrupt("record chunk", "empty")),
    }
}

/// [`decode_chunk`] as a slice of the stored value (no copy).
pub(crate) fn chunk_records(value: &Bytes) -> LogResult<Bytes> {
    Ok(value.slice_ref(decode_chunk(value)?))
}

/// What retention and offset lookups need to know about a stored batch, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Size of the batch in bytes.
    pub size: i64,
}

impl BatchInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, self.base_offset, self.max_timestamp, self.size))
    }

    pub(crate) fn decode(last_offset: i64, bytes: &[u8]) -> LogResult<Self> {
        let (v, base_offset, max_timestamp, size): (i64, i64, i64, i64) =
            unpack(bytes).map_err(|e| corrupt("batch index", e))?;
        expect_version("batch index", v, V1)?;
        Ok(Self {
            base_offset,
            last_offset,
            max_timestamp,
            size,
        })
    }
}

/// A key-index entry: where the latest record of a key is (`keyindex.rs`). Entries of long keys
/// (chained by hash) also hold the full key; short keys are their store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndexEntry {
    /// Offset of the key's latest record.
    pub offset: i64,
    /// That record's timestamp (the append time on `LogAppendTime` topics).
    pub timestamp: i64,
    /// Whether that record is a tombstone (null value).
    pub tombstone: bool,
    /// For a tombstone compaction has kept once: when it may go (its first compaction plus
    /// `delete.retention.ms`, Kafka's delete horizon); -1 before that.
    pub horizon_ms: i64,
    /// The full key, for entries of long keys (empty for short ones).
    pub full_key: Vec<u8>,
}

impl KeyIndexEntry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(
            V1,
            self.offset,
            self.timestamp,
            self.tombstone,
            self.horizon_ms,
            self.full_key.clone(),
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, offset, timestamp, tombstone, horizon_ms, full_key): (
            i64,
            i64,
            i64,
            bool,
            i64,
            Vec<u8>,
        ) = unpack(bytes).map_err(|e| corrupt("key index", e))?;
        expect_version("key index", v, V1)?;
        Ok(Self {
            offset,
            timestamp,
            tombstone,
            horizon_ms,
            full_key,
        })
    }
}

/// How far compaction got in a partition (`compaction.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerState {
    /// Records below this offset have been compacted at least once.
    pub clean_offset: i64,
    /// Bytes of the batches below `clean_offset` after that compaction (the rest is dirty).
    pub clean_bytes: i64,
    /// When the last compaction of the partition finished (-1: never).
    pub cleaned_ms: i64,
    /// The earliest delete horizon of a tombstone the last pass kept (-1: none): the partition is
    /// due again then, new writes or not.
    pub horizon_ms: i64,
}

impl CleanerState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(
            V1,
            self.clean_offset,
            self.clean_bytes,
            self.cleaned_ms,
            self.horizon_ms,
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, clean_offset, clean_bytes, cleaned_ms, horizon_ms): (i64, i64, i64, i64, i64) =
            unpack(bytes).map_err(|e| corrupt("cleaner state", e))?;
        expect_version("cleaner state", v, V1)?;
        Ok(Self {
            clean_offset,
            clean_bytes,
            cleaned_ms,
            horizon_ms,
        })
    }
}

// ---- topics and partitions -------------------------------------------------------------------

/// A topic's identity and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Short integer id used in data keys.
    pub id: i64,
    /// The Kafka topic name.
    pub name: String,
    /// The Kafka topic id (UUID).
    pub uuid: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// The replication factor the client asked for (storage replication is the store's).
    pub replication_factor: i16,
    /// Config overrides set on the topic (names as Kafka's); absent names take their defaults.
    pub configs: Vec<(String, String)>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

type TopicTuple = (i64, String, Vec<u8>, i64, i64, Vec<(String, String)>, i64);

impl TopicMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: TopicTuple = (
            V1,
            self.name.clone(),
            self.uuid.as_bytes().to_vec(),
            i64::from(self.partitions),
            i64::from(self.replication_factor),
            self.configs.clone(),
            self.created_ms,
        );
        pack(&t)
    }

    pub(crate) fn decode(id: i64, bytes: &[u8]) -> LogResult<Self> {
        let (v, name, uuid, partitions, rf, configs, created_ms): TopicTuple =
            unpack(bytes).map_err(|e| corrupt("topic meta", e))?;
        expect_version("topic meta", v, V1)?;
        let uuid = Uuid::from_slice(&uuid).map_err(|e| corrupt("topic uuid", e))?;
        Ok(Self {
            id,
            name,
            uuid,
            partitions: partitions as i32,
            replication_factor: rf as i16,
            configs,
            created_ms,
        })
    }

    /// The override for `name`, if the topic has one.
    pub fn config(&self, name: &str) -> Option<&str> {
        self.configs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Partition `partition` of this topic, if the topic has it.
    pub fn partition(&self, partition: i32) -> Option<crate::ids::PartitionId> {
        (0..self.partitions)
            .contains(&partition)
            .then_some(crate::ids::PartitionId::new(self.id, partition))
    }
}

/// The offsets and counters of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// First offset still stored (Kafka's log start offset).
    pub log_start: i64,
    /// Offset the next record gets; also the high watermark (every stored record is committed).
    pub next_offset: i64,
    /// Largest record timestamp seen, -1 if none.
    pub max_timestamp: i64,
    /// Offset of the record batch holding `max_timestamp` (its last offset), -1 if none.
    pub max_timestamp_offset: i64,
    /// Bytes of record batches stored.
    pub bytes: i64,
    /// First offset of the oldest transaction still open in this partition, -1 when none: the last
    /// stable offset (see [`PartitionState::last_stable`]).
    pub first_open: i64,
}

impl Default for PartitionState {
    fn default() -> Self {
        Self {
            log_start: 0,
            next_offset: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            bytes: 0,
            first_open: -1,
        }
    }
}

type StateTupleV1 = (i64, i64, i64, i64, i64, i64);
type StateTuple = (i64, i64, i64, i64, i64, i64, i64);

impl PartitionState {
    /// Kafka's last stable offset: below it every transaction is decided (committed or aborted);
    /// the high watermark when no transaction is open.
    pub fn last_stable(&self) -> i64 {
        if self.first_open >= 0 {
            self.first_open
        } else {
            self.next_offset
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: StateTuple = (
            V2,
            self.log_start,
            self.next_offset,
            self.max_timestamp,
            self.max_timestamp_offset,
            self.bytes,
            self.first_open,
        );
        pack(&t)
    }

    /// Decodes format 2 and format 1 (written before transactions; no open transaction).
    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, log_start, next_offset, max_timestamp, max_timestamp_offset, bytes, first_open) =
            match unpack::<StateTuple>(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let (v, a, b, c, d, e1): StateTupleV1 =
                        unpack(bytes).map_err(|_| corrupt("partition state", e))?;
                    expect_version("partition state", v, V1)?;
                    (V2, a, b, c, d, e1, -1)
                }
            };
        expect_version("partition state", v, V2)?;
        Ok(Self {
            log_start,
            next_offset,
            max_timestamp,
            max_timestamp_offset,
            bytes,
            first_open,
        })
    }
}

/// Who appends to a partition or coordinates a group: the broker node and its ownership epoch
/// (for a partition, Kafka's leader epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Node id of the owning broker.
    pub node: i32,
    /// Increases on every change of owner.
    pub epoch: i32,
}

impl Owner {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, i64::from(self.node), i64::from(self.epoch)))
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, node, epoch): (i64, i64, i64) = unpack(bytes).map_err(|e| corrupt("owner", e))?;
        expect_version("owner", v, V1)?;
        Ok(Self {
            node: node as i32,
            epoch: epoch as i32,
        })
    }
}

// ---- idempotent producers and the partition side of transactions ------------------------------

/// A batch already appended: its sequence range and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqEntry {
    /// Sequence of its first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record.
    pub base_offset: i64,
}

/// One producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer's epoch in this partition.
    pub epoch: i16,
    /// Its last few batches, oldest first (for duplicate detection).
    pub batches: VecDeque<SeqEntry>,
    /// Last append (ms), for `producer.id.expiration.ms`.
    pub last_ms: i64,
}

type ProducerTuple = (i64, i64, i64, Vec<(i64, i64, i64)>);

impl ProducerState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: ProducerTuple = (
            V1,
            i64::from(self.epoch),
            self.last_ms,
            self.batches
                .iter()
                .map(|b| (i64::from(b.first_seq), i64::from(b.last_seq), b.base_offset))
                .collect(),
        );
        pack(&t)
    }

    pub(crate) fn decode(b: &[u8]) -> LogResult<Self> {
        let (v, epoch, last_ms, batches): ProducerTuple =
            unpack(b).map_err(|e| corrupt("producer state", e))?;
        expect_version("producer state", v, V1)?;
        Ok(Self {
            epoch: epoch as i16,
            last_ms,
            batches: batches
                .into_iter()
                .map(|(f, l, o)| SeqEntry {
                    first_seq: f as i32,
                    last_seq: l as i32,
                    base_offset: o,
                })
                .collect(),
        })
    }
}

/// An aborted transaction in a partition's aborted-transaction index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first record in the partition.
    pub first_offset: i64,
    /// The partition's last stable offset right after the abort marker: a fetch's scan of the
    /// index stops at the first entry past what it read.
    pub last_stable: i64,
}

impl AbortedTxn {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, self.producer_id, self.first_offset, self.last_stable))
    }

    /// Format 1, or the unversioned `(pid, first, stable)` written before.
    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (producer_id, first_offset, last_stable): (i64, i64, i64) =
            match unpack::<(i64, i64, i64, i64)>(bytes) {
                Ok((v, a, b, c)) => {
                    expect_version("aborted transaction", v, V1)?;
                    (a, b, c)
                }
                Err(e) => unpack(bytes).map_err(|_| corrupt("aborted transaction", e))?,
            };
        Ok(Self {
            producer_id,
            first_offset,
            last_stable,
        })
    }
}

// ---- the transaction coordinator --------------------------------------------------------------

/// Where a transactional id's transaction stands (Kafka's coordinator states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction open.
    Empty,
    /// Partitions or offsets were added.
    Ongoing,
    /// Commit decided, markers being written.
    PrepareCommit,
    /// Abort decided, markers being written.
    PrepareAbort,
    /// Last transaction committed.
    CompleteCommit,
    /// Last transaction aborted.
    CompleteAbort,
}

impl TxnStatus {
    const ALL: [TxnStatus; 6] = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
    ];

    /// Kafka's name for the state (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state named `name`, if Kafka has one by that name that kfdb uses.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    fn code(self) -> i64 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as i64
    }

    fn from_code(c: i64) -> LogResult<Self> {
        usize::try_from(c)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or_else(|| corrupt("transaction state", format!("status {c}")))
    }

    /// A decision taken, markers still being written.
    pub fn prepared(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }

    /// No transaction open or being ended.
    pub fn idle(self) -> bool {
        matches!(
            self,
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
        )
    }
}

/// A transactional id's coordinator state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnState {
    /// The producer id serving this transactional id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// Where the transaction stands.
    pub status: TxnStatus,
    /// When the open transaction started (ms), -1 when none is open.
    pub start_ms: i64,
    /// Last change (ms).
    pub last_ms: i64,
    /// The producer id and epoch an InitProducerId bumped from (KIP-360), so that a retry of that
    /// call gets the same answer; -1 when the last bump was not asked for by the producer itself.
    pub prev_producer_id: i64,
    /// See `prev_producer_id`.
    pub prev_epoch: i16,
}

type TxnTupleV1 = (i64, i64, i64, i64, i64, i64, i64);
type TxnTuple = (i64, i64, i64, i64, i64, i64, i64, i64, i64);

impl TxnState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: TxnTuple = (
            V2,
            self.producer_id,
            i64::from(self.producer_epoch),
            i64::from(self.timeout_ms),
            self.status.code(),
            self.start_ms,
            self.last_ms,
            self.prev_producer_id,
            i64::from(self.prev_epoch),
        );
        pack(&t)
    }

    /// Decodes format 2 and format 1 (without the previous producer id and epoch).
    pub(crate) fn decode(b: &[u8]) -> LogResult<Self> {
        let t: TxnTuple = match unpack::<TxnTuple>(b) {
            Ok(t) => t,
            Err(e) => {
                let (v, a, b1, c, d, e1, f): TxnTupleV1 =
                    unpack(b).map_err(|_| corrupt("transaction state", e))?;
                expect_version("transaction state", v, V1)?;
                (V2, a, b1, c, d, e1, f, -1, -1)
            }
        };
        let (v, producer_id, epoch, timeout, status, start_ms, last_ms, prev_pid, prev_epoch) = t;
        expect_version("transaction state", v, V2)?;
        Ok(Self {
            producer_id,
            producer_epoch: epoch as i16,
            timeout_ms: timeout as i32,
            status: TxnStatus::from_code(status)?,
            start_ms,
            last_ms,
            prev_producer_id: prev_pid,
            prev_epoch: prev_epoch as i16,
        })
    }
}

/// A partition added to a transactional id's open transaction: by which producer, at which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnPartition {
    pub producer_id: i64,
    pub epoch: i16,
}

impl TxnPartition {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, self.producer_id, i64::from(self.epoch)))
    }

    /// Format 1, or the unversioned `(pid, epoch)` written before.
    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (producer_id, epoch): (i64, i64) = match unpack::<(i64, i64, i64)>(bytes) {
            Ok((v, pid, epoch)) => {
                expect_version("transaction partition", v, V1)?;
                (pid, epoch)
            }
            Err(e) => unpack(bytes).map_err(|_| corrupt("transaction partition", e))?,
        };
        Ok(Self {
            producer_id,
            epoch: epoch as i16,
        })
    }
}

// ---- users ---------------------------------------------------------------------------------------

/// A SASL/SCRAM user's salted credential (RFC 5802): what the broker needs to check a password
/// proof without knowing the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl ScramCredential {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(
            V1,
            &self.salt,
            &self.stored_key,
            &self.server_key,
            self.iterations,
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, salt, stored_key, server_key, iterations): (i64, Vec<u8>, Vec<u8>, Vec<u8>, i32) =
            unpack(bytes).map_err(|e| corrupt("scram credential", e))?;
        expect_version("scram credential", v, V1)?;
        Ok(Self {
            salt,
            stored_key,
            server_key,
            iterations,
        })
    }
}

// ---- consumer groups ----------------------------------------------------------------------------

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_ms: i64,
}

type OffsetTuple = (i64, i64, i64, String, i64);

impl CommittedOffset {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: OffsetTuple = (
            V1,
            self.offset,
            i64::from(self.leader_epoch),
            self.metadata.clone(),
            self.commit_ms,
        );
        pack(&t)
    }

    pub(crate) fn decode(b: &[u8]) -> LogResult<Self> {
        let (v, offset, leader_epoch, metadata, commit_ms): OffsetTuple =
            unpack(b).map_err(|e| corrupt("committed offset", e))?;
        expect_version("committed offset", v, V1)?;
        Ok(Self {
            offset,
            leader_epoch: leader_epoch as i32,
            metadata,
            commit_ms,
        })
    }
}

/// A group member as persisted after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id.
    pub member_id: String,
    /// Static membership id (`group.instance.id`).
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (its subscription).
    pub metadata: Bytes,
    /// The assignment the leader gave it.
    pub assignment: Bytes,
}

type MemberTuple = (
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
);

impl MemberRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: MemberTuple = (
            V1,
            self.member_id.clone(),
            self.instance_id.clone(),
            self.client_id.clone(),
            self.client_host.clone(),
            i64::from(self.session_timeout_ms),
            i64::from(self.rebalance_timeout_ms),
            self.metadata.to_vec(),
            self.assignment.to_vec(),
        );
        pack(&t)
    }

    pub(crate) fn decode(b: &[u8]) -> LogResult<Self> {
        let (
            v,
            member_id,
            instance_id,
            client_id,
            client_host,
            session,
            rebalance,
            metadata,
            assignment,
        ): MemberTuple = unpack(b).map_err(|e| corrupt("group member", e))?;
        expect_version("group member", v, V1)?;
        Ok(Self {
            member_id,
            instance_id,
            client_id,
            client_host,
            session_timeout_ms: session as i32,
            rebalance_timeout_ms: rebalance as i32,
            metadata: Bytes::from(metadata),
            assignment: Bytes::from(assignment),
        })
    }
}

/// A group's last stable state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRecord {
    /// Generation of the last completed rebalance.
    pub generation: i32,
    /// `consumer` for consumer groups (any string for other clients of the protocol).
    pub protocol_type: Option<String>,
    /// The chosen assignor (e.g. `range`).
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members with their assignments (stored under their own keys).
    pub members: Vec<MemberRecord>,
}

type GroupTuple = (i64, i64, Option<String>, Option<String>, Option<String>);

impl GroupRecord {
    /// The group's own value (its members are stored apart, one key each).
    pub(crate) fn encode_meta(&self) -> Vec<u8> {
        let t: GroupTuple = (
            V1,
            i64::from(self.generation),
            self.protocol_type.clone(),
            self.protocol.clone(),
            self.leader.clone(),
        );
        pack(&t)
    }

    /// The group's own value, with `members` read from their keys.
    pub(crate) fn decode_meta(b: &[u8], members: Vec<MemberRecord>) -> LogResult<Self> {
        let (v, generation, protocol_type, protocol, leader): GroupTuple =
            unpack(b).map_err(|e| corrupt("group", e))?;
        expect_version("group", v, V1)?;
        Ok(Self {
            generation: generation as i32,
            protocol_type,
            protocol,
            leader,
            members,
        })
    }
}

/// A partition as a KIP-848 assignment names it: topic id and index.
pub type AssignedPartition = (Uuid, i32);

/// A KIP-848 consumer group member as stored (what a new coordinator needs to carry on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberRecord {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Member epoch.
    pub epoch: i32,
    /// The epoch before the last bump.
    pub previous_epoch: i32,
    /// Subscribed topic names.
    pub subscribed: Vec<String>,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// What the member has been told it owns.
    pub current: Vec<AssignedPartition>,
    /// What it should own.
    pub target: Vec<AssignedPartition>,
}

/// A KIP-848 consumer group as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupRecord {
    /// Group epoch.
    pub group_epoch: i32,
    /// Epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Server-side assignor in use.
    pub assignor: String,
    /// Subscribed topics as of the last target computation: (name, topic id, partitions).
    pub topology: Vec<(String, Uuid, i32)>,
    /// Members (stored under their own keys).
    pub members: Vec<ConsumerMemberRecord>,
}

type PartsTuple = Vec<(Vec<u8>, i64)>;

fn encode_parts(parts: &[AssignedPartition]) -> PartsTuple {
    parts
        .iter()
        .map(|(id, p)| (id.as_bytes().to_vec(), i64::from(*p)))
        .collect()
}

fn decode_parts(parts: PartsTuple) -> LogResult<Vec<AssignedPartition>> {
    parts
        .into_iter()
        .map(|(id, p)| {
            Uuid::from_slice(&id)
                .map(|u| (u, p as i32))
                .map_err(|e| corrupt("assigned partition", e))
        })
        .collect()
}

type ConsumerMemberTuple = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    (i64, i64, i64),
    Vec<String>,
    PartsTuple,
    PartsTuple,
);

impl ConsumerMemberRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: ConsumerMemberTuple = (
            V1,
            self.member_id.clone(),
            self.instance_id.clone(),
            self.rack_id.clone(),
            self.client_id.clone(),
            self.client_host.clone(),
            (
                i64::from(self.epoch),
                i64::from(self.previous_epoch),
                i64::from(self.rebalance_timeout_ms),
            ),
            self.subscribed.clone(),
            encode_parts(&self.current),
            encode_parts(&self.target),
        );
        pack(&t)
    }

    pub(crate) fn decode(b: &[u8]) -> LogResult<Self> {
        let (
            v,
            member_id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            epochs,
            subscribed,
            current,
            target,
        ): ConsumerMemberTuple = unpack(b).map_err(|e| corrupt("consumer group member", e))?;
        expect_version("consumer group member", v, V1)?;
        Ok(Self {
            member_id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            epoch: epochs.0 as i32,
            previous_epoch: epochs.1 as i32,
            rebalance_timeout_ms: epochs.2 as i32,
            subscribed,
            current: decode_parts(current)?,
            target: decode_parts(target)?,
        })
    }
}

type ConsumerGroupTuple = (i64, i64, i64, String, Vec<(String, Vec<u8>, i64)>);

impl ConsumerGroupRecord {
    /// The group's own value (its members are stored apart, one key each).
    pub(crate) fn encode_meta(&self) -> Vec<u8> {
        let t: ConsumerGroupTuple = (
            V1,
            i64::from(self.group_epoch),
            i64::from(self.assignment_epoch),
            self.assignor.clone(),
            self.topology
                .iter()
                .map(|(n, id, p)| (n.clone(), id.as_bytes().to_vec(), i64::from(*p)))
                .collect(),
        );
        pack(&t)
    }

    /// The group's own value, with `members` read from their keys.
    pub(crate) fn decode_meta(b: &[u8], members: Vec<ConsumerMemberRecord>) -> LogResult<Self> {
        let (v, group_epoch, assignment_epoch, assignor, topology): ConsumerGroupTuple =
            unpack(b).map_err(|e| corrupt("consumer group", e))?;
        expect_version("consumer group", v, V1)?;
        Ok(Self {
            group_epoch: group_epoch as i32,
            assignment_epoch: assignment_epoch as i32,
            assignor,
            topology: topology
                .into_iter()
                .map(|(n, id, p)| {
                    Uuid::from_slice(&id)
                        .map(|u| (n, u, p as i32))
                        .map_err(|e| corrupt("consumer group topology", e))
                })
                .collect::<LogResult<_>>()?,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let t = TopicMeta {
            id: 42,
            name: "orders".into(),
            uuid: Uuid::from_u128(0x1234),
            partitions: 3,
            replication_factor: 1,
            configs: vec![("retention.ms".into(), "1000".into())],
            created_ms: 5,
        };
        assert_eq!(TopicMeta::decode(42, &t.encode()).unwrap(), t);
        assert_eq!(t.config("retention.ms"), Some("1000"));
        assert_eq!(t.partition(2), Some(crate::ids::PartitionId::new(42, 2)));
        assert_eq!(t.partition(3), None);
        let s = PartitionState {
            log_start: 3,
            next_offset: 10,
            max_timestamp: 77,
            max_timestamp_offset: 9,
            bytes: 1000,
            first_open: 4,
        };
        assert_eq!(PartitionState::decode(&s.encode()).unwrap(), s);
        assert_eq!(s.last_stable(), 4);
        let o = Owner { node: 1, epoch: 2 };
        assert_eq!(Owner::decode(&o.encode()).unwrap(), o);
        let b = BatchInfo {
            base_offset: 1,
            last_offset: 4,
            max_timestamp: 9,
            size: 100,
        };
        assert_eq!(BatchInfo::decode(4, &b.encode()).unwrap(), b);
        for full_key in [Vec::new(), vec![7u8; 3000]] {
            let k = KeyIndexEntry {
                offset: 12,
                timestamp: -1,
                tombstone: true,
                horizon_ms: 77,
                full_key,
            };
            assert_eq!(KeyIndexEntry::decode(&k.encode()).unwrap(), k);
        }
        let c = CleanerState {
            clean_offset: 5,
            clean_bytes: 900,
            cleaned_ms: 3,
            horizon_ms: 44,
        };
        assert_eq!(CleanerState::decode(&c.encode()).unwrap(), c);
        let p = ProducerState {
            epoch: 3,
            batches: VecDeque::from([SeqEntry {
                first_seq: 0,
                last_seq: 4,
                base_offset: 10,
            }]),
            last_ms: 9,
        };
        assert_eq!(ProducerState::decode(&p.encode()).unwrap(), p);
        let a = AbortedTxn {
            producer_id: 7,
            first_offset: 3,
            last_stable: 12,
        };
        assert_eq!(AbortedTxn::decode(&a.encode()).unwrap(), a);
        let tp = TxnPartition {
            producer_id: 7,
            epoch: 2,
        };
        assert_eq!(TxnPartition::decode(&tp.encode()).unwrap(), tp);
        let ts = TxnState {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: TxnStatus::PrepareAbort,
            start_ms: 100,
            last_ms: 200,
            prev_producer_id: 7,
            prev_epoch: 2,
        };
        assert_eq!(TxnState::decode(&ts.encode()).unwrap(), ts);
        for st in TxnStatus::ALL {
            assert_eq!(TxnStatus::from_name(st.name()), Some(st));
            assert_eq!(TxnStatus::from_code(st.code()).unwrap(), st);
        }
        assert!(TxnStatus::from_code(99).is_err());
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_ms: 1,
        };
        assert_eq!(CommittedOffset::decode(&c.encode()).unwrap(), c);
        let m = MemberRecord {
            member_id: "m-1".into(),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            metadata: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        };
        assert_eq!(MemberRecord::decode(&m.encode()).unwrap(), m);
        let g = GroupRecord {
            generation: 4,
            protocol_type: Some("consumer".into()),
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            members: vec![m.clone()],
        };
        assert_eq!(
            GroupRecord::decode_meta(&g.encode_meta(), vec![m]).unwrap(),
            g
        );
        assert_eq!(decode_topic_id(&encode_topic_id(9)).unwrap(), 9);
        assert_eq!(decode_counter("c", &encode_counter(1000)).unwrap(), 1000);
        assert_eq!(decode_open_txn(&encode_open_txn(17)).unwrap(), 17);
        assert_eq!(decode_cluster_id(&encode_cluster_id("abc")), "abc");
        assert_eq!(decode_transactional_id(&encode_transactional_id("t")), "t");
        assert_eq!(decode_chunk(&[CHUNK_FORMAT, b'x', b'y']).unwrap(), b"xy");
        assert_eq!(decode_node(&encode_node(7)).unwrap(), 7);
        let cm = ConsumerMemberRecord {
            member_id: "m".into(),
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/1.2.3.4".into(),
            epoch: 5,
            previous_epoch: 4,
            subscribed: vec!["t".into()],
            rebalance_timeout_ms: 300_000,
            current: vec![(Uuid::from_u128(9), 1)],
            target: vec![(Uuid::from_u128(9), 1), (Uuid::from_u128(9), 2)],
        };
        assert_eq!(ConsumerMemberRecord::decode(&cm.encode()).unwrap(), cm);
        let cg = ConsumerGroupRecord {
            group_epoch: 5,
            assignment_epoch: 5,
            assignor: "uniform".into(),
            topology: vec![("t".into(), Uuid::from_u128(9), 3)],
            members: vec![cm.clone()],
        };
        assert_eq!(
            ConsumerGroupRecord::decode_meta(&cg.encode_meta(), vec![cm]).unwrap(),
            cg
        );
        let b = BrokerRecord {
            node_id: 2,
            incarnation: -5,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9094,
            }],
            rack: Some("eu-1a".into()),
            started_ms: 1,
            lease_until_ms: 10,
            leaving: false,
        };
        assert_eq!(BrokerRecord::decode(&b.encode()).unwrap(), b);
        assert!(b.live(9) && !b.live(10));
    }

    /// Values written before they carried a version still read (stores of earlier kfdb versions).
    #[test]
    fn unversioned_values_of_earlier_stores_still_read() {
        assert_eq!(decode_topic_id(&pack(&9i64)).unwrap(), 9);
        assert_eq!(decode_counter("c", &pack(&1000i64)).unwrap(), 1000);
        assert_eq!(decode_open_txn(&pack(&17i64)).unwrap(), 17);
        assert_eq!(
            decode_cluster_id(b"AAAAAAAAAAAAAAAAAAAAAA"),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(decode_transactional_id(b"my-txn"), "my-txn");
        assert_eq!(
            AbortedTxn::decode(&pack(&(7i64, 3i64, 12i64))).unwrap(),
            AbortedTxn {
                producer_id: 7,
                first_offset: 3,
                last_stable: 12
            }
        );
        assert_eq!(
            TxnPartition::decode(&pack(&(7i64, 2i64))).unwrap(),
            TxnPartition {
                producer_id: 7,
                epoch: 2
            }
        );
        let v1 = pack(&(V1, 3i64, 10i64, 77i64, 9i64, 1000i64));
        assert_eq!(
            PartitionState::decode(&v1).unwrap().first_open,
            -1,
            "partition state format 1 reads with no open transaction"
        );
        let txn_v1 = pack(&(V1, 7i64, 3i64, 60_000i64, 1i64, 100i64, 200i64));
        assert_eq!(TxnState::decode(&txn_v1).unwrap().prev_producer_id, -1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(PartitionState::decode(b"\xff\x00garbage").is_err());
        assert!(TopicMeta::decode(1, b"").is_err());
        assert!(decode_topic_id(b"\x02nope\x00").is_err());
        assert!(decode_chunk(b"").is_err());
        assert!(decode_chunk(b"\x09abc").is_err());
        assert!(AbortedTxn::decode(b"\x15").is_err());
        // A future format version is reported, not misread.
        assert!(decode_topic_id(&pack(&(2i64, 9i64))).is_err());
    }
}
