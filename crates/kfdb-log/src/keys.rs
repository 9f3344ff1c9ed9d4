//! # Key Schema
//!
//! The only place in kfdb that builds and parses store keys. Every key is FoundationDB-tuple
//! encoded under one root prefix, `("kfdb",)`; topics get a short integer id (`tid`) so data keys
//! stay small and a topic's name can be long. Integers in the tuple encoding sort numerically, so
//! offsets order correctly across byte-length boundaries. Values are encoded in `values.rs`.
//!
//! ```text
//! ("kfdb", "cluster")                                  → cluster id
//! ("kfdb", "topic_seq")                                → highest topic id reserved by any broker
//! ("kfdb", "topic_name", name)                         → topic id
//! ("kfdb", "topic_uuid", uuid_bytes)                   → topic id
//! ("kfdb", "topic", tid)                               → TopicMeta
//! ("kfdb", "part", tid, partition, "state")            → PartitionState
//! ("kfdb", "part", tid, partition, "owner")            → Owner: node id + epoch
//! ("kfdb", "log", tid, partition, last_offset, chunk)  → record-batch bytes, chunk ≤ 90,000 B
//! ("kfdb", "bidx", tid, partition, last_offset)        → BatchInfo: base offset, max timestamp, size
//! ("kfdb", "tidx", tid, partition, max_ts, last_offset) → () : time index, written when a batch
//!                                                         raises the partition's max timestamp
//! ("kfdb", "pid_block")                               → next unreserved producer id
//! ("kfdb", "part", tid, partition, "producer", pid)    → ProducerState
//! ("kfdb", "part", tid, partition, "open", pid)        → first offset of pid's open transaction
//! ("kfdb", "part", tid, partition, "aborted", marker)  → AbortedTxn: aborted transaction index,
//!                                                         keyed by its abort marker's offset
//! ("kfdb", "part", tid, partition, "cleaner")          → CleanerState: how far compaction got
//! ("kfdb", "txn_state", transactional_id)              → TxnState
//! ("kfdb", "txn_pid", pid)                             → transactional id owning that producer id
//! ("kfdb", "txn_deadline", deadline_ms, transactional_id) → () : open transactions by timeout
//! ("kfdb", "txn", transactional_id, "part", tid, partition) → TxnPartition (pid, epoch):
//!                                                         partitions in the open transaction
//! ("kfdb", "txn", transactional_id, "group", group)    → () : groups in the open transaction
//! ("kfdb", "txn", transactional_id, "offset", group, tid, partition) → CommittedOffset, pending
//! ("kfdb", "group", group, "pending", tid, partition, transactional_id) → () : an offset pending
//!                                                         in that transaction
//! ("kfdb", "groups", group)                            → () : index of consumer groups
//! ("kfdb", "group", group, "meta")                     → GroupMeta
//! ("kfdb", "group", group, "member", member_id)        → MemberRecord
//! ("kfdb", "group", group, "owner")                    → Owner: the coordinating broker
//! ("kfdb", "group", group, "offset", tid, partition)   → CommittedOffset
//! ("kfdb", "group", group, "cmember", member_id)       → ConsumerMember: a KIP-848 member
//! ("kfdb", "group", group, "cmeta")                    → ConsumerGroupMeta: a KIP-848 group's epochs
//! ("kfdb", "group", group, "config")                   → [(name, value)]: the group's configs
//!                                                          (config resource GROUP)
//! ("kfdb", "broker", node_id)                          → BrokerRecord: a broker's lease
//! ("kfdb", "members_version")                          → counter: bumped when a broker joins or leaves
//! ("kfdb", "topics_version")                           → counter: bumped when a topic is deleted or altered
//!                                                          (or renamed, or the broker defaults change)
//! ("kfdb", "broker_defaults")                          → [(name, value)]: cluster-wide dynamic broker
//!                                                          configs (log.retention.ms, ...)
//! ("kfdb", "pin", tid, partition)                      → node id: an operator's leader pin
//! ("kfdb", "part", tid, partition, "epoch", epoch)     → first offset written in that leader epoch
//! ("kfdb", "inbox", node_id, tid, partition)           → () : a partition another broker changed
//!                                                         (a transaction marker) that node_id leads
//! ("kfdb", "inbox_version", node_id)                   → counter: bumped with each inbox entry
//! ("kfdb", "kidx", tid, partition, "k", key)           → KeyIndexEntry: the latest record of a key
//!                                                         (compacted or `kfdb.key.index` topics)
//! ("kfdb", "kidx", tid, partition, "h", hash, n)       → KeyIndexEntry with its full key: keys too
//!                                                         long for a store key, chained by hash
//! ("kfdb", "scram", user, mechanism)                   → ScramCredential: a SASL/SCRAM user's salted
//!                                                         credential (mechanism "SCRAM-SHA-256"/"-512")
//! ("kfdb", "acl", resource_type, pattern_type, resource_name, principal, host, operation, permission)
//!                                                      → () : an ACL binding (Kafka's codes)
//! ("kfdb", "acls_version")                             → counter: bumped with every ACL change
//! ("kfdb", "quota", user_kind, user, client_kind, client_id, ip_kind, ip, key)
//!                                                      → f64 (LE): one client quota value; a kind is
//!                                                         0 absent, 1 the default entity, 2 named
//! ("kfdb", "quotas_version")                           → counter: bumped with every quota change
//! ```
//!
//! Record batches are keyed by their **last** offset: the batch holding offset `f` is the first key
//! `>= ("log", tid, p, f)`, so a fetch is a single forward range read with no selector. A batch
//! bigger than one value is split into chunks `0..n` under the same last offset.
//!
//! All keys of a topic except its name/uuid index entries and its metadata live under
//! `("kfdb", "part", tid)`, `("kfdb", "log", tid)`, `("kfdb", "bidx", tid)`, `("kfdb", "tidx", tid)`
//! ([`topic_data`], with its leader pins and key index), so deleting a topic is six range clears.
//!
//! `topic_seq` keeps its historical name: it once held the last topic id allocated, one
//! CreateTopics at a time; it now holds the end of the last block of ids a broker reserved
//! (`catalog.rs`), which is the same number for a store written before blocks existed.

use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use kfdb_kv::tuple::{Subspace, TuplePack, TupleUnpack, Uuid};

/// The root of all of kfdb's keys.
fn root() -> Subspace {
    Subspace::from_bytes(kfdb_kv::tuple::pack(&"kfdb"))
}

/// Largest chunk of a record batch stored in one value (FoundationDB allows 100,000 bytes).
pub const CHUNK_BYTES: usize = 90_000;

const PART: &str = "part";
const LOG: &str = "log";
const BATCH_INDEX: &str = "bidx";
const TIME_INDEX: &str = "tidx";
const PIN: &str = "pin";
const KEY_INDEX: &str = "kidx";

/// Decode the part of `key` after `space`'s prefix as `T`, naming `what` in the error.
fn parse<'de, T: TupleUnpack<'de>>(space: &Subspace, key: &'de [u8], what: &str) -> LogResult<T> {
    space
        .unpack::<T>(key)
        .map_err(|e| LogError::corrupt(&format!("{what} key"), e))
}

/// A key's `[begin, end)` range as a pair, for range reads and clears.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

fn range_of(space: &Subspace) -> KeyRange {
    space.range()
}

fn pack<T: TuplePack>(t: &T) -> Vec<u8> {
    root().pack(t)
}

// ---- cluster and topics -------------------------------------------------------------------

pub(crate) fn cluster_id() -> Vec<u8> {
    pack(&"cluster")
}

/// Where brokers reserve blocks of topic ids (stored name `topic_seq`, see the module docs).
pub(crate) fn topic_id_block() -> Vec<u8> {
    pack(&"topic_seq")
}

pub(crate) fn topic_name(name: &str) -> Vec<u8> {
    pack(&("topic_name", name))
}

/// Every topic-name index entry, in name order.
pub(crate) fn topic_names() -> KeyRange {
    range_of(&root().subspace(&"topic_name"))
}

pub(crate) fn topic_uuid(uuid: Uuid) -> Vec<u8> {
    pack(&("topic_uuid", uuid.as_bytes().to_vec()))
}

pub(crate) fn topic_meta(tid: i64) -> Vec<u8> {
    pack(&("topic", tid))
}

/// The six ranges holding all of a topic's partition data (state, producers and transactions,
/// record batches, batch index, time index, leader pins, key index).
pub(crate) fn topic_data(tid: i64) -> [KeyRange; 6] {
    [PART, LOG, BATCH_INDEX, TIME_INDEX, PIN, KEY_INDEX]
        .map(|kind| range_of(&root().subspace(&(kind, tid))))
}

// ---- one partition --------------------------------------------------------------------------

fn partition_space(p: PartitionId) -> Subspace {
    root().subspace(&(PART, p.tid, p.partition))
}

pub(crate) fn partition_state(p: PartitionId) -> Vec<u8> {
    partition_space(p).pack(&"state")
}

pub(crate) fn partition_owner(p: PartitionId) -> Vec<u8> {
    partition_space(p).pack(&"owner")
}

fn log_space(p: PartitionId) -> Subspace {
    root().subspace(&(LOG, p.tid, p.partition))
}

/// The record-batch chunks of one partition.
pub(crate) fn log_range(p: PartitionId) -> KeyRange {
    range_of(&log_space(p))
}

pub(crate) fn log_chunk(p: PartitionId, last_offset: i64, chunk: i32) -> Vec<u8> {
    log_space(p).pack(&(last_offset, chunk))
}

/// First key of the batch that holds `offset` or the first batch after it; also the end of the
/// range of every batch whose last offset is below `offset`.
pub(crate) fn log_from(p: PartitionId, offset: i64) -> Vec<u8> {
    log_space(p).pack(&offset)
}

/// `(last offset, chunk number)` of a record-batch chunk key of partition `p`.
pub(crate) fn parse_log_chunk(p: PartitionId, key: &[u8]) -> LogResult<(i64, i32)> {
    parse(&log_space(p), key, "log chunk")
}

fn batch_index_space(p: PartitionId) -> Subspace {
    root().subspace(&(BATCH_INDEX, p.tid, p.partition))
}

pub(crate) fn batch_index_range(p: PartitionId) -> KeyRange {
    range_of(&batch_index_space(p))
}

pub(crate) fn batch_index(p: PartitionId, last_offset: i64) -> Vec<u8> {
    batch_index_space(p).pack(&last_offset)
}

/// The last offset of a batch-index key of partition `p`.
pub(crate) fn parse_batch_index(p: PartitionId, key: &[u8]) -> LogResult<i64> {
    parse(&batch_index_space(p), key, "batch index")
}

fn key_index_space(p: PartitionId) -> Subspace {
    root().subspace(&(KEY_INDEX, p.tid, p.partition))
}

/// The key-index entry of a record key short enough to be part of a store key
/// (`keyindex::MAX_INLINE_KEY` bytes at most).
pub(crate) fn key_index(p: PartitionId, key: &[u8]) -> Vec<u8> {
    key_index_space(p).pack(&("k", key.to_vec()))
}

/// The key-index entries of every long record key whose hash is `hash` (a chain: each entry's
/// value holds its full key).
pub(crate) fn key_index_chain(p: PartitionId, hash: u64) -> KeyRange {
    range_of(&key_index_space(p).subspace(&("h", hash as i64)))
}

/// Entry `n` of the chain of long record keys hashing to `hash`.
pub(crate) fn key_index_hashed(p: PartitionId, hash: u64, n: i64) -> Vec<u8> {
    key_index_space(p).pack(&("h", hash as i64, n))
}

/// The position `n` of a chained key-index entry of partition `p` for `hash`.
pub(crate) fn parse_key_index_hashed(p: PartitionId, hash: u64, key: &[u8]) -> LogResult<i64> {
    parse(
        &key_index_space(p).subspace(&("h", hash as i64)),
        key,
        "key index chain",
    )
}

fn time_index_space(p: PartitionId) -> Subspace {
    root().subspace(&(TIME_INDEX, p.tid, p.partition))
}

pub(crate) fn time_index_range(p: PartitionId) -> KeyRange {
    range_of(&time_index_space(p))
}

pub(crate) fn time_index(p: PartitionId, max_ts: i64, last_offset: i64) -> Vec<u8> {
    time_index_space(p).pack(&(max_ts, last_offset))
}

/// `(max timestamp, last offset)` of a time-index key of partition `p`.
pub(crate) fn parse_time_index(p: PartitionId, key: &[u8]) -> LogResult<(i64, i64)> {
    parse(&time_index_space(p), key, "time index")
}

fn epoch_space(p: PartitionId) -> Subspace {
    partition_space(p).subspace(&"epoch")
}

/// The first offset written in leader epoch `epoch` of partition `p`.
pub(crate) fn leader_epoch_start(p: PartitionId, epoch: i32) -> Vec<u8> {
    epoch_space(p).pack(&epoch)
}

pub(crate) fn leader_epochs(p: PartitionId) -> KeyRange {
    range_of(&epoch_space(p))
}

/// The epoch of a leader-epoch key of partition `p`.
pub(crate) fn parse_leader_epoch(p: PartitionId, key: &[u8]) -> LogResult<i32> {
    parse(&epoch_space(p), key, "leader epoch")
}

// ---- producers and the partition side of transactions ---------------------------------------

pub(crate) fn producer_id_block() -> Vec<u8> {
    pack(&"pid_block")
}

pub(crate) fn producer_state(p: PartitionId, pid: i64) -> Vec<u8> {
    partition_space(p).pack(&("producer", pid))
}

fn producer_space(p: PartitionId) -> Subspace {
    partition_space(p).subspace(&"producer")
}

/// Every producer's state in one partition.
pub(crate) fn producer_states(p: PartitionId) -> KeyRange {
    range_of(&producer_space(p))
}

/// The producer id of a producer-state key of partition `p`.
pub(crate) fn parse_producer_state(p: PartitionId, key: &[u8]) -> LogResult<i64> {
    parse(&producer_space(p), key, "producer state")
}

fn open_space(p: PartitionId) -> Subspace {
    partition_space(p).subspace(&"open")
}

pub(crate) fn open_txns(p: PartitionId) -> KeyRange {
    range_of(&open_space(p))
}

pub(crate) fn open_txn(p: PartitionId, pid: i64) -> Vec<u8> {
    open_space(p).pack(&pid)
}

/// The producer id of an open-transaction key of partition `p`.
pub(crate) fn parse_open_txn(p: PartitionId, key: &[u8]) -> LogResult<i64> {
    parse(&open_space(p), key, "open transaction")
}

fn aborted_space(p: PartitionId) -> Subspace {
    partition_space(p).subspace(&"aborted")
}

pub(crate) fn aborted_txns(p: PartitionId) -> KeyRange {
    range_of(&aborted_space(p))
}

pub(crate) fn aborted_txn(p: PartitionId, marker_offset: i64) -> Vec<u8> {
    aborted_space(p).pack(&marker_offset)
}

/// The abort marker's offset of an aborted-transaction key of partition `p`.
pub(crate) fn parse_aborted_txn(p: PartitionId, key: &[u8]) -> LogResult<i64> {
    parse(&aborted_space(p), key, "aborted transaction")
}

/// The cleaner state of partition `p` (how far compaction got).
pub(crate) fn cleaner_state(p: PartitionId) -> Vec<u8> {
    partition_space(p).pack(&"cleaner")
}

/// Every partition's metadata (state, owner, producers, open and aborted transactions): what the
/// sweeps walk. A partition has keys here only once it has been claimed or written, so a topic
/// created and never used adds nothing to the walk.
pub(crate) fn all_partition_metadata() -> KeyRange {
    range_of(&root().subspace(&PART))
}

/// A key from [`all_partition_metadata`], as far as the sweeps care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartitionMetaKey {
    /// A producer's state: `(partition, producer id)`.
    Producer(PartitionId, i64),
    /// The partition's state: it has been appended to.
    State(PartitionId),
    /// Any other partition key (owner, open or aborted transactions, ...).
    Other,
}

/// Classify a key of [`all_partition_metadata`].
pub(crate) fn parse_partition_meta(key: &[u8]) -> LogResult<PartitionMetaKey> {
    let space = root().subspace(&PART);
    // Producer and state keys have exactly these shapes; every other shape is another kind of key.
    if let Ok((tid, partition, kind)) = space.unpack::<(i64, i32, String)>(key) {
        return Ok(if kind == "state" {
            PartitionMetaKey::State(PartitionId::new(tid, partition))
        } else {
            PartitionMetaKey::Other
        });
    }
    match space.unpack::<(i64, i32, String, i64)>(key) {
        Ok((tid, partition, kind, pid)) if kind == "producer" => Ok(PartitionMetaKey::Producer(
            PartitionId::new(tid, partition),
            pid,
        )),
        Ok(_) => Ok(PartitionMetaKey::Other),
        Err(_) => {
            // Still a key of some partition: `(tid, partition, ...)` must decode as a prefix.
            if key.starts_with(space.bytes()) {
                Ok(PartitionMetaKey::Other)
            } else {
                Err(LogError::corrupt(
                    "partition key",
                    "outside the partition space",
                ))
            }
        }
    }
}

// ---- transactional ids (the coordinator side) -----------------------------------------------

fn txn_state_space() -> Subspace {
    root().subspace(&"txn_state")
}

/// Every transactional id's state, in id order.
pub(crate) fn txn_states() -> KeyRange {
    range_of(&txn_state_space())
}

pub(crate) fn txn_state(id: &str) -> Vec<u8> {
    txn_state_space().pack(&id)
}

/// The transactional id of a transaction-state key.
pub(crate) fn parse_txn_state(key: &[u8]) -> LogResult<String> {
    parse(&txn_state_space(), key, "transaction state")
}

pub(crate) fn txn_pid(pid: i64) -> Vec<u8> {
    pack(&("txn_pid", pid))
}

fn txn_deadline_space() -> Subspace {
    root().subspace(&"txn_deadline")
}

/// Open transactions by deadline, up to (not including) `deadline_ms`.
pub(crate) fn txn_deadlines_before(deadline_ms: i64) -> KeyRange {
    let (begin, _) = range_of(&txn_deadline_space());
    (begin, txn_deadline(deadline_ms, ""))
}

pub(crate) fn txn_deadline(deadline_ms: i64, id: &str) -> Vec<u8> {
    txn_deadline_space().pack(&(deadline_ms, id))
}

/// `(deadline, transactional id)` of a deadline key.
pub(crate) fn parse_txn_deadline(key: &[u8]) -> LogResult<(i64, String)> {
    parse(&txn_deadline_space(), key, "transaction deadline")
}

/// Everything of one transactional id's open transaction.
fn txn_space(id: &str) -> Subspace {
    root().subspace(&("txn", id))
}

/// Everything of one transactional id's open transaction, as a range.
pub(crate) fn txn_all(id: &str) -> KeyRange {
    range_of(&txn_space(id))
}

fn txn_partition_space(id: &str) -> Subspace {
    txn_space(id).subspace(&"part")
}

pub(crate) fn txn_partitions(id: &str) -> KeyRange {
    range_of(&txn_partition_space(id))
}

pub(crate) fn txn_partition(id: &str, p: PartitionId) -> Vec<u8> {
    txn_partition_space(id).pack(&(p.tid, p.partition))
}

/// The partition of a transaction-partition key of `id`.
pub(crate) fn parse_txn_partition(id: &str, key: &[u8]) -> LogResult<PartitionId> {
    let (tid, partition) = parse(&txn_partition_space(id), key, "transaction partition")?;
    Ok(PartitionId::new(tid, partition))
}

pub(crate) fn txn_group(id: &str, group: &str) -> Vec<u8> {
    txn_space(id).pack(&("group", group))
}

fn txn_offset_space(id: &str) -> Subspace {
    txn_space(id).subspace(&"offset")
}

pub(crate) fn txn_offsets(id: &str) -> KeyRange {
    range_of(&txn_offset_space(id))
}

pub(crate) fn txn_offset(id: &str, group: &str, p: PartitionId) -> Vec<u8> {
    txn_offset_space(id).pack(&(group, p.tid, p.partition))
}

/// `(group, partition)` of a pending transactional offset key of `id`.
pub(crate) fn parse_txn_offset(id: &str, key: &[u8]) -> LogResult<(String, PartitionId)> {
    let (group, tid, partition): (String, i64, i32) =
        parse(&txn_offset_space(id), key, "transactional offset")?;
    Ok((group, PartitionId::new(tid, partition)))
}

// ---- consumer groups ------------------------------------------------------------------------

fn group_space(group: &str) -> Subspace {
    root().subspace(&("group", group))
}

/// Everything of one group.
pub(crate) fn group_all(group: &str) -> KeyRange {
    range_of(&group_space(group))
}

fn group_pending_space(group: &str) -> Subspace {
    group_space(group).subspace(&"pending")
}

pub(crate) fn group_pendings(group: &str) -> KeyRange {
    range_of(&group_pending_space(group))
}

pub(crate) fn group_pending(group: &str, p: PartitionId, txn_id: &str) -> Vec<u8> {
    group_pending_space(group).pack(&(p.tid, p.partition, txn_id))
}

/// `(partition, transactional id)` of a pending-offset key of `group`.
pub(crate) fn parse_group_pending(group: &str, key: &[u8]) -> LogResult<(PartitionId, String)> {
    let (tid, partition, txn_id): (i64, i32, String) =
        parse(&group_pending_space(group), key, "pending offset")?;
    Ok((PartitionId::new(tid, partition), txn_id))
}

fn group_index_space() -> Subspace {
    root().subspace(&"groups")
}

pub(crate) fn group_index(group: &str) -> Vec<u8> {
    group_index_space().pack(&group)
}

/// Every group-index entry, in group order.
pub(crate) fn group_indexes() -> KeyRange {
    range_of(&group_index_space())
}

/// The group id of a group-index key.
pub(crate) fn parse_group_index(key: &[u8]) -> LogResult<String> {
    parse(&group_index_space(), key, "group index")
}

pub(crate) fn group_config(group: &str) -> Vec<u8> {
    group_space(group).pack(&"config")
}

pub(crate) fn group_meta(group: &str) -> Vec<u8> {
    group_space(group).pack(&"meta")
}

fn group_member_space(group: &str) -> Subspace {
    group_space(group).subspace(&"member")
}

pub(crate) fn group_members(group: &str) -> KeyRange {
    range_of(&group_member_space(group))
}

pub(crate) fn group_member(group: &str, member_id: &str) -> Vec<u8> {
    group_member_space(group).pack(&member_id)
}

pub(crate) fn group_owner(group: &str) -> Vec<u8> {
    group_space(group).pack(&"owner")
}

fn group_offset_space(group: &str) -> Subspace {
    group_space(group).subspace(&"offset")
}

pub(crate) fn group_offsets(group: &str) -> KeyRange {
    range_of(&group_offset_space(group))
}

pub(crate) fn group_offset(group: &str, p: PartitionId) -> Vec<u8> {
    group_offset_space(group).pack(&(p.tid, p.partition))
}

/// The partition of a committed-offset key of `group`.
pub(crate) fn parse_group_offset(group: &str, key: &[u8]) -> LogResult<PartitionId> {
    let (tid, partition) = parse(&group_offset_space(group), key, "committed offset")?;
    Ok(PartitionId::new(tid, partition))
}

fn consumer_member_space(group: &str) -> Subspace {
    group_space(group).subspace(&"cmember")
}

pub(crate) fn consumer_members(group: &str) -> KeyRange {
    range_of(&consumer_member_space(group))
}

pub(crate) fn consumer_member(group: &str, member_id: &str) -> Vec<u8> {
    consumer_member_space(group).pack(&member_id)
}

pub(crate) fn consumer_group_meta(group: &str) -> Vec<u8> {
    group_space(group).pack(&"cmeta")
}

// ---- the cluster: brokers, leaders, notifications ----------------------------------------------

fn broker_space() -> Subspace {
    root().subspace(&"broker")
}

pub(crate) fn broker(node: i32) -> Vec<u8> {
    broker_space().pack(&node)
}

/// Every broker's record, by node id.
pub(crate) fn brokers() -> KeyRange {
    range_of(&broker_space())
}

pub(crate) fn members_version() -> Vec<u8> {
    pack(&"members_version")
}

pub(crate) fn topics_version() -> Vec<u8> {
    pack(&"topics_version")
}

pub(crate) fn broker_defaults() -> Vec<u8> {
    pack(&"broker_defaults")
}

fn pin_space() -> Subspace {
    root().subspace(&PIN)
}

pub(crate) fn pin(p: PartitionId) -> Vec<u8> {
    pin_space().pack(&(p.tid, p.partition))
}

/// Every leader pin.
pub(crate) fn pins() -> KeyRange {
    range_of(&pin_space())
}

/// The partition of a pin key.
pub(crate) fn parse_pin(key: &[u8]) -> LogResult<PartitionId> {
    let (tid, partition) = parse(&pin_space(), key, "pin")?;
    Ok(PartitionId::new(tid, partition))
}

fn inbox_space(node: i32) -> Subspace {
    root().subspace(&("inbox", node))
}

pub(crate) fn inbox_entry(node: i32, p: PartitionId) -> Vec<u8> {
    inbox_space(node).pack(&(p.tid, p.partition))
}

/// Every inbox entry of `node`.
pub(crate) fn inbox(node: i32) -> KeyRange {
    range_of(&inbox_space(node))
}

/// The partition of an inbox key of `node`.
pub(crate) fn parse_inbox_entry(node: i32, key: &[u8]) -> LogResult<PartitionId> {
    let (tid, partition) = parse(&inbox_space(node), key, "inbox")?;
    Ok(PartitionId::new(tid, partition))
}

pub(crate) fn inbox_version(node: i32) -> Vec<u8> {
    pack(&("inbox_version", node))
}

// ---- users ---------------------------------------------------------------------------------

fn scram_space() -> Subspace {
    root().subspace(&"scram")
}

pub(crate) fn scram_credential(user: &str, mechanism: &str) -> Vec<u8> {
    scram_space().pack(&(user, mechanism))
}

/// Every user's credentials, by user and mechanism.
pub(crate) fn scram_credentials() -> KeyRange {
    range_of(&scram_space())
}

/// One user's credentials (all mechanisms).
pub(crate) fn scram_user(user: &str) -> KeyRange {
    range_of(&scram_space().subspace(&user))
}

/// The user and mechanism of a credential key.
pub(crate) fn parse_scram_credential(key: &[u8]) -> LogResult<(String, String)> {
    parse(&scram_space(), key, "scram credential")
}

// ---- ACLs ----------------------------------------------------------------------------------

fn acl_space() -> Subspace {
    root().subspace(&"acl")
}

/// One ACL binding's key: `(resource_type, pattern_type, name, principal, host, operation,
/// permission)`.
pub(crate) type AclKey = (i64, i64, String, String, String, i64, i64);

pub(crate) fn acl(k: &AclKey) -> Vec<u8> {
    acl_space().pack(k)
}

/// Every ACL binding.
pub(crate) fn acls() -> KeyRange {
    range_of(&acl_space())
}

/// The binding of an ACL key.
pub(crate) fn parse_acl(key: &[u8]) -> LogResult<AclKey> {
    parse(&acl_space(), key, "acl")
}

pub(crate) fn acls_version() -> Vec<u8> {
    pack(&"acls_version")
}

// ---- client quotas -------------------------------------------------------------------------

fn quota_space() -> Subspace {
    root().subspace(&"quota")
}

/// One quota value's key: `(user_kind, user, client_kind, client_id, ip_kind, ip, key)`, each
/// kind 0 (absent), 1 (the default entity) or 2 (named).
pub(crate) type QuotaKey = (i64, String, i64, String, i64, String, String);

pub(crate) fn client_quota(k: &QuotaKey) -> Vec<u8> {
    quota_space().pack(k)
}

/// Every client quota value.
pub(crate) fn client_quotas() -> KeyRange {
    range_of(&quota_space())
}

/// The entity and key of a quota key.
pub(crate) fn parse_client_quota(key: &[u8]) -> LogResult<QuotaKey> {
    parse(&quota_space(), key, "client quota")
}

pub(crate) fn quotas_version() -> Vec<u8> {
    pack(&"quotas_version")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tid: i64, partition: i32) -> PartitionId {
        PartitionId::new(tid, partition)
    }

    fn inside(k: &[u8], (b, e): &KeyRange) -> bool {
        k >= b.as_slice() && k < e.as_slice()
    }

    #[test]
    fn offsets_order_numerically_across_byte_boundaries() {
        let offsets = [0i64, 1, 255, 256, 65_535, 65_536, 1 << 40, i64::MAX];
        for w in offsets.windows(2) {
            assert!(
                log_chunk(p(1, 0), w[0], 0) < log_chunk(p(1, 0), w[1], 0),
                "{w:?}"
            );
            assert!(
                batch_index(p(1, 0), w[0]) < batch_index(p(1, 0), w[1]),
                "{w:?}"
            );
        }
        // All chunks of a batch sort before the next batch.
        assert!(log_chunk(p(1, 0), 5, 9) < log_chunk(p(1, 0), 6, 0));
        // The batch holding offset 5 (last offset 5) is found from log_from(5).
        assert!(log_from(p(1, 0), 5) <= log_chunk(p(1, 0), 5, 0));
        assert!(log_from(p(1, 0), 6) > log_chunk(p(1, 0), 5, 3));
    }

    #[test]
    fn topic_name_is_not_a_prefix_of_a_longer_name() {
        let a = topic_name("a");
        let ab = topic_name("ab");
        assert!(!ab.starts_with(&a));
        // Partitions and topics do not interleave.
        let [_, log, _, _, _, _] = topic_data(7);
        assert!(inside(&log_chunk(p(7, 3), 100, 0), &log));
        assert!(!inside(&log_chunk(p(8, 0), 0, 0), &log));
        assert!(!inside(&log_chunk(p(70, 0), 0, 0), &log));
    }

    #[test]
    fn one_group_is_not_a_prefix_of_another() {
        let mine = group_all("g");
        assert!(!inside(&group_offset("g2", p(1, 0)), &mine));
        assert!(inside(&group_offset("g", p(1, 0)), &mine));
        assert!(inside(&group_member("g", "m"), &mine));
        assert!(inside(&group_member("g", "m"), &group_members("g")));
    }

    #[test]
    fn one_transactional_id_is_not_a_prefix_of_another() {
        let mine = txn_all("t");
        assert!(!inside(&txn_partition("t2", p(1, 0)), &mine));
        assert!(inside(&txn_offset("t", "g", p(1, 0)), &mine));
        // Per-partition transaction keys are cleared with their topic.
        let [part, ..] = topic_data(7);
        for k in [open_txn(p(7, 0), 3), aborted_txn(p(7, 2), 100)] {
            assert!(inside(&k, &part));
        }
    }

    #[test]
    fn time_index_orders_by_timestamp_then_offset() {
        assert!(time_index(p(1, 0), 10, 99) < time_index(p(1, 0), 11, 0));
        assert!(time_index(p(1, 0), -1, 5) < time_index(p(1, 0), 0, 0));
    }

    #[test]
    fn every_parser_reads_back_what_its_builder_wrote() {
        let q = p(7, 3);
        assert_eq!(parse_log_chunk(q, &log_chunk(q, 42, 2)).unwrap(), (42, 2));
        assert_eq!(parse_batch_index(q, &batch_index(q, 42)).unwrap(), 42);
        assert_eq!(parse_time_index(q, &time_index(q, 9, 42)).unwrap(), (9, 42));
        assert_eq!(
            parse_producer_state(q, &producer_state(q, 1000)).unwrap(),
            1000
        );
        assert_eq!(parse_open_txn(q, &open_txn(q, 5)).unwrap(), 5);
        assert_eq!(parse_txn_state(&txn_state("tx-1")).unwrap(), "tx-1");
        assert_eq!(
            parse_txn_deadline(&txn_deadline(77, "tx-1")).unwrap(),
            (77, "tx-1".to_string())
        );
        assert_eq!(
            parse_txn_partition("tx", &txn_partition("tx", q)).unwrap(),
            q
        );
        assert_eq!(
            parse_txn_offset("tx", &txn_offset("tx", "g", q)).unwrap(),
            ("g".to_string(), q)
        );
        assert_eq!(
            parse_group_pending("g", &group_pending("g", q, "tx")).unwrap(),
            (q, "tx".to_string())
        );
        assert_eq!(parse_group_index(&group_index("g")).unwrap(), "g");
        assert_eq!(parse_group_offset("g", &group_offset("g", q)).unwrap(), q);
        assert_eq!(parse_pin(&pin(q)).unwrap(), q);
        assert_eq!(parse_inbox_entry(2, &inbox_entry(2, q)).unwrap(), q);
        assert!(parse_inbox_entry(3, &inbox_entry(2, q)).is_err());
        assert_eq!(parse_leader_epoch(q, &leader_epoch_start(q, 4)).unwrap(), 4);
        assert_eq!(
            parse_partition_meta(&producer_state(q, 9)).unwrap(),
            PartitionMetaKey::Producer(q, 9)
        );
        assert_eq!(
            parse_partition_meta(&partition_state(q)).unwrap(),
            PartitionMetaKey::State(q)
        );
        for other in [
            partition_owner(q),
            cleaner_state(q),
            aborted_txn(q, 9),
            open_txn(q, 9),
            leader_epoch_start(q, 2),
        ] {
            assert_eq!(
                parse_partition_meta(&other).unwrap(),
                PartitionMetaKey::Other
            );
        }
        // A key of another shape is an error, not a panic.
        assert!(parse_log_chunk(q, &batch_index(q, 1)).is_err());
        assert!(parse_partition_meta(&topic_meta(1)).is_err());
    }
}
