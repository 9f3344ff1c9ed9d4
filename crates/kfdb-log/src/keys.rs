//! # Key Schema
//!
//! The only place in kfdb that builds store keys. Every key is FoundationDB-tuple encoded under one
//! root prefix, `("kfdb",)`; topics get a short integer id so data keys stay small and a topic's
//! name can be long. Integers in the tuple encoding sort numerically, so offsets order correctly
//! across byte-length boundaries.
//!
//! ```text
//! ("kfdb", "cluster")                                  → cluster id (UTF-8)
//! ("kfdb", "topic_seq")                                → last allocated topic id (tuple int)
//! ("kfdb", "topic_name", name)                         → topic id (tuple int)
//! ("kfdb", "topic_uuid", uuid_bytes)                   → topic id (tuple int)
//! ("kfdb", "topic", tid)                               → TopicMeta (values.rs)
//! ("kfdb", "part", tid, partition, "state")            → PartitionState (values.rs)
//! ("kfdb", "part", tid, partition, "owner")            → Owner: node id + epoch (values.rs)
//! ("kfdb", "log", tid, partition, last_offset, chunk)  → record-batch bytes, chunk ≤ 90,000 B
//! ("kfdb", "bidx", tid, partition, last_offset)        → BatchInfo: base offset, max timestamp, size
//! ("kfdb", "tidx", tid, partition, max_ts, last_offset) → () : time index, written when a batch
//!                                                         raises the partition's max timestamp
//! ("kfdb", "pid_block")                               → next unreserved producer id (tuple int)
//! ("kfdb", "part", tid, partition, "producer", pid)    → ProducerState (producer.rs)
//! ("kfdb", "part", tid, partition, "open", pid)        → first offset of pid's open transaction
//! ("kfdb", "part", tid, partition, "aborted", marker)  → (pid, first offset): aborted transaction
//!                                                         index, keyed by its abort marker's offset
//! ("kfdb", "txn_state", transactional_id)              → TxnState (txn.rs)
//! ("kfdb", "txn_pid", pid)                             → transactional id owning that producer id
//! ("kfdb", "txn_deadline", deadline_ms, transactional_id) → () : open transactions by timeout
//! ("kfdb", "txn", transactional_id, "part", tid, partition) → (pid, epoch): partitions in the
//!                                                         open transaction
//! ("kfdb", "txn", transactional_id, "group", group)    → () : groups in the open transaction
//! ("kfdb", "txn", transactional_id, "offset", group, tid, partition) → CommittedOffset, pending
//! ("kfdb", "group", group, "pending", tid, partition, transactional_id) → () : an offset pending
//!                                                         in that transaction
//! ("kfdb", "groups", group)                            → () : index of consumer groups
//! ("kfdb", "group", group, "meta")                     → GroupRecord (groups.rs)
//! ("kfdb", "group", group, "member", member_id)        → MemberRecord (groups.rs)
//! ("kfdb", "group", group, "owner")                    → Owner: the coordinating broker
//! ("kfdb", "group", group, "offset", tid, partition)   → CommittedOffset (groups.rs)
//! ```
//!
//! Record batches are keyed by their **last** offset: the batch holding offset `f` is the first key
//! `>= ("log", tid, p, f)`, so a fetch is a single forward range read with no selector. A batch
//! bigger than one value is split into chunks `0..n` under the same last offset.
//!
//! All keys of a topic except its name/uuid index entries and its metadata live under
//! `("kfdb", "part", tid)`, `("kfdb", "log", tid)`, `("kfdb", "bidx", tid)`, `("kfdb", "tidx", tid)`, so
//! deleting a topic is four range clears.

use kfdb_kv::tuple::{Subspace, Uuid};

/// The root of all of kfdb's keys.
pub(crate) fn root() -> Subspace {
    Subspace::from_bytes(kfdb_kv::tuple::pack(&"kfdb"))
}

/// Largest chunk of a record batch stored in one value (FoundationDB allows 100,000 bytes).
pub const CHUNK_BYTES: usize = 90_000;

pub(crate) fn cluster_id() -> Vec<u8> {
    root().pack(&"cluster")
}

pub(crate) fn topic_seq() -> Vec<u8> {
    root().pack(&"topic_seq")
}

pub(crate) fn topic_name(name: &str) -> Vec<u8> {
    root().pack(&("topic_name", name))
}

/// The range of every topic-name index entry, in name order.
pub(crate) fn topic_names() -> Subspace {
    root().subspace(&"topic_name")
}

pub(crate) fn topic_uuid(uuid: Uuid) -> Vec<u8> {
    root().pack(&("topic_uuid", uuid.as_bytes().to_vec()))
}

pub(crate) fn topic_meta(tid: i64) -> Vec<u8> {
    root().pack(&("topic", tid))
}

pub(crate) fn partition_state(tid: i64, p: i32) -> Vec<u8> {
    root().pack(&("part", tid, p, "state"))
}

pub(crate) fn partition_owner(tid: i64, p: i32) -> Vec<u8> {
    root().pack(&("part", tid, p, "owner"))
}

/// Everything of a topic under `kind` ("part", "log", "bidx", "tidx").
pub(crate) fn topic_space(kind: &str, tid: i64) -> Subspace {
    root().subspace(&(kind, tid))
}

/// The record-batch chunks of one partition.
pub(crate) fn log_space(tid: i64, p: i32) -> Subspace {
    root().subspace(&("log", tid, p))
}

pub(crate) fn log_chunk(tid: i64, p: i32, last_offset: i64, chunk: i32) -> Vec<u8> {
    log_space(tid, p).pack(&(last_offset, chunk))
}

/// First key of the batch that holds `offset` or the first batch after it.
pub(crate) fn log_from(tid: i64, p: i32, offset: i64) -> Vec<u8> {
    log_space(tid, p).pack(&offset)
}

pub(crate) fn batch_index_space(tid: i64, p: i32) -> Subspace {
    root().subspace(&("bidx", tid, p))
}

pub(crate) fn batch_index(tid: i64, p: i32, last_offset: i64) -> Vec<u8> {
    batch_index_space(tid, p).pack(&last_offset)
}

pub(crate) fn time_index_space(tid: i64, p: i32) -> Subspace {
    root().subspace(&("tidx", tid, p))
}

pub(crate) fn time_index(tid: i64, p: i32, max_ts: i64, last_offset: i64) -> Vec<u8> {
    time_index_space(tid, p).pack(&(max_ts, last_offset))
}

pub(crate) fn producer_id_block() -> Vec<u8> {
    root().pack(&"pid_block")
}

pub(crate) fn producer_state(tid: i64, p: i32, pid: i64) -> Vec<u8> {
    root().pack(&("part", tid, p, "producer", pid))
}

/// Per-partition metadata of every partition (state, owner, producers, open and aborted
/// transactions): what the producer-expiry sweep walks.
pub(crate) fn partition_metadata() -> Subspace {
    root().subspace(&"part")
}

/// Every producer's state in one partition.
pub(crate) fn producer_states(tid: i64, p: i32) -> Subspace {
    root().subspace(&("part", tid, p, "producer"))
}

pub(crate) fn open_txns(tid: i64, p: i32) -> Subspace {
    root().subspace(&("part", tid, p, "open"))
}

pub(crate) fn open_txn(tid: i64, p: i32, pid: i64) -> Vec<u8> {
    open_txns(tid, p).pack(&pid)
}

pub(crate) fn aborted_txns(tid: i64, p: i32) -> Subspace {
    root().subspace(&("part", tid, p, "aborted"))
}

pub(crate) fn aborted_txn(tid: i64, p: i32, marker_offset: i64) -> Vec<u8> {
    aborted_txns(tid, p).pack(&marker_offset)
}

pub(crate) fn txn_states() -> Subspace {
    root().subspace(&"txn_state")
}

pub(crate) fn txn_state(id: &str) -> Vec<u8> {
    txn_states().pack(&id)
}

pub(crate) fn txn_pid(pid: i64) -> Vec<u8> {
    root().pack(&("txn_pid", pid))
}

pub(crate) fn txn_deadlines() -> Subspace {
    root().subspace(&"txn_deadline")
}

pub(crate) fn txn_deadline(deadline_ms: i64, id: &str) -> Vec<u8> {
    txn_deadlines().pack(&(deadline_ms, id))
}

/// Everything of one transactional id's open transaction.
pub(crate) fn txn_space(id: &str) -> Subspace {
    root().subspace(&("txn", id))
}

pub(crate) fn txn_partitions(id: &str) -> Subspace {
    txn_space(id).subspace(&"part")
}

pub(crate) fn txn_partition(id: &str, tid: i64, p: i32) -> Vec<u8> {
    txn_partitions(id).pack(&(tid, p))
}

pub(crate) fn txn_group(id: &str, group: &str) -> Vec<u8> {
    txn_space(id).pack(&("group", group))
}

pub(crate) fn txn_offsets(id: &str) -> Subspace {
    txn_space(id).subspace(&"offset")
}

pub(crate) fn txn_offset(id: &str, group: &str, tid: i64, p: i32) -> Vec<u8> {
    txn_offsets(id).pack(&(group, tid, p))
}

pub(crate) fn group_pendings(group: &str) -> Subspace {
    group_space(group).subspace(&"pending")
}

pub(crate) fn group_pending(group: &str, tid: i64, p: i32, txn_id: &str) -> Vec<u8> {
    group_pendings(group).pack(&(tid, p, txn_id))
}

pub(crate) fn group_index(group: &str) -> Vec<u8> {
    root().pack(&("groups", group))
}

pub(crate) fn group_index_space() -> Subspace {
    root().subspace(&"groups")
}

/// Everything of one group.
pub(crate) fn group_space(group: &str) -> Subspace {
    root().subspace(&("group", group))
}

pub(crate) fn group_meta(group: &str) -> Vec<u8> {
    group_space(group).pack(&"meta")
}

pub(crate) fn group_members(group: &str) -> Subspace {
    group_space(group).subspace(&"member")
}

pub(crate) fn group_owner(group: &str) -> Vec<u8> {
    group_space(group).pack(&"owner")
}

pub(crate) fn group_offsets(group: &str) -> Subspace {
    group_space(group).subspace(&"offset")
}

pub(crate) fn group_offset(group: &str, tid: i64, p: i32) -> Vec<u8> {
    group_offsets(group).pack(&(tid, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_order_numerically_across_byte_boundaries() {
        let offsets = [0i64, 1, 255, 256, 65_535, 65_536, 1 << 40, i64::MAX];
        for w in offsets.windows(2) {
            assert!(log_chunk(1, 0, w[0], 0) < log_chunk(1, 0, w[1], 0), "{w:?}");
            assert!(batch_index(1, 0, w[0]) < batch_index(1, 0, w[1]), "{w:?}");
        }
        // All chunks of a batch sort before the next batch.
        assert!(log_chunk(1, 0, 5, 9) < log_chunk(1, 0, 6, 0));
        // The batch holding offset 5 (last offset 5) is found from log_from(5).
        assert!(log_from(1, 0, 5) <= log_chunk(1, 0, 5, 0));
        assert!(log_from(1, 0, 6) > log_chunk(1, 0, 5, 3));
    }

    #[test]
    fn topic_name_is_not_a_prefix_of_a_longer_name() {
        let a = topic_name("a");
        let ab = topic_name("ab");
        assert!(!ab.starts_with(&a));
        // Partitions and topics do not interleave.
        let (b, e) = topic_space("log", 7).range();
        assert!(log_chunk(7, 3, 100, 0) > b && log_chunk(7, 3, 100, 0) < e);
        assert!(log_chunk(8, 0, 0, 0) > e);
        assert!(log_chunk(70, 0, 0, 0) > e);
    }

    #[test]
    fn one_group_is_not_a_prefix_of_another() {
        let (b, e) = group_space("g").range();
        let other = group_offset("g2", 1, 0);
        assert!(other < b || other >= e);
        assert!(group_offset("g", 1, 0) > b && group_offset("g", 1, 0) < e);
    }

    #[test]
    fn one_transactional_id_is_not_a_prefix_of_another() {
        let (b, e) = txn_space("t").range();
        let other = txn_partition("t2", 1, 0);
        assert!(other < b || other >= e);
        let mine = txn_offset("t", "g", 1, 0);
        assert!(mine > b && mine < e);
        // Per-partition transaction keys are cleared with their topic.
        let (b, e) = topic_space("part", 7).range();
        for k in [open_txn(7, 0, 3), aborted_txn(7, 2, 100)] {
            assert!(k > b && k < e);
        }
    }

    #[test]
    fn time_index_orders_by_timestamp_then_offset() {
        assert!(time_index(1, 0, 10, 99) < time_index(1, 0, 11, 0));
        assert!(time_index(1, 0, -1, 5) < time_index(1, 0, 0, 0));
    }
}
