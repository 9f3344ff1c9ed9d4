//! Transaction markers, the partition side of ending a transaction: a control batch (commit or
//! abort) appended to a partition for one producer, which closes that producer's open transaction
//! there, moves the partition's last stable offset, records an aborted transaction in the
//! partition's aborted-transaction index, and raises the producer's epoch in the partition when the
//! coordinator fenced it.
//!
//! A commit marker also enters the transaction's records into the partition's key index, when
//! the topic keeps one (`keyindex.rs`): until then they were not the latest committed records.
//!
//! Markers are written inside a store transaction the coordinator (`txn.rs`) drives, so all markers
//! of a Kafka transaction, its offsets and its new coordinator state commit together. The caller
//! holds the partitions' writers (`PartitionWriters::acquire`) and hands what landed to the tails
//! (`Tails::appended`) after the commit.

use crate::batch::{self, Batch};
use crate::cache::NewBatch;
use crate::error::LogResult;
use crate::ids::PartitionId;
use crate::keyindex;
use crate::keys;
use crate::partition;
use crate::values::{AbortedTxn, PartitionState};
use kfdb_kv::Transaction;

/// A marker written by a store transaction, for the tails once it committed.
pub(crate) struct Landed {
    pub partition: PartitionId,
    /// Whether this broker leads the partition (only then is its tail cached here).
    pub local: bool,
    pub batch: NewBatch,
    pub state: PartitionState,
}

/// What ends the transaction: whose, with which epoch, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub now: i64,
}

/// Write `marker` into partition `p` in `tx`, as the coordinator on broker `node`; `index_keys`:
/// the topic keeps a key index (from its cached metadata). `None` when the topic no longer exists. A partition another broker leads gets an inbox entry, so that
/// broker's cached tail of it does not go stale.
pub(crate) async fn write_marker(
    tx: &Transaction,
    node: i32,
    p: PartitionId,
    marker: Marker,
    index_keys: bool,
) -> LogResult<Option<Landed>> {
    let Some((owner, mut state)) = partition::begin_marker_write(tx, p).await? else {
        return Ok(None);
    };
    let epoch = owner.map(|o| o.epoch).unwrap_or(0);
    if let Some(o) = owner
        && o.node != node
    {
        partition::notify(tx, o.node, p);
    }
    let pid = marker.producer_id;
    let producer = partition::read_producer(tx, p, pid, false).await?;
    let first = partition::read_open(tx, p, pid).await?;
    if marker.commit
        && index_keys
        && let Some(first) = first
    {
        index_committed(tx, p, pid, first, state.next_offset).await?;
    }
    let control = Batch::control_marker(pid, marker.producer_epoch, marker.commit, marker.now);
    let written = partition::write_batch(tx, p, epoch, &control, None, &mut state);
    let marker_offset = written.base_offset;
    // The producer's epoch in this partition rises to the marker's, so a fenced producer's late
    // batches are refused; its sequence numbers start over in a new epoch. (Where it never wrote,
    // it has no state to raise: a late batch there cannot open a transaction, see append.rs.)
    if let Some(mut s) = producer
        && s.epoch < marker.producer_epoch
    {
        s.epoch = marker.producer_epoch;
        s.batches.clear();
        s.last_ms = marker.now;
        partition::write_producer(tx, p, pid, &s);
    }
    if let Some(first) = first {
        partition::clear_open(tx, p, pid);
        if state.first_open == first {
            state.first_open = partition::oldest_open(tx, p, pid).await?;
        }
        if !marker.commit {
            // With the last stable offset after this marker, which ends a fetch's scan of the
            // index (as Kafka's aborted-transaction index does).
            let aborted = AbortedTxn {
                producer_id: pid,
                first_offset: first,
                last_stable: state.last_stable(),
            };
            tx.set(&keys::aborted_txn(p, marker_offset), &aborted.encode());
        }
    }
    partition::write_state(tx, p, &state);
    Ok(Some(Landed {
        partition: p,
        local: owner.is_none_or(|o| o.node == node),
        batch: written,
        state,
    }))
}

/// Enter the records of `pid`'s committing transaction in `p` (its batches between `first`, where
/// it opened there, and `until`, the marker's offset) into the key index.
async fn index_committed(
    tx: &Transaction,
    p: PartitionId,
    pid: i64,
    first: i64,
    until: i64,
) -> LogResult<()> {
    let stored = partition::read_log(tx, p, first, until, usize::MAX)
        .await?
        .to_bytes();
    for b in batch::stored_batches(&stored) {
        if b.producer_id != pid || !b.is_transactional() || b.is_control() {
            continue;
        }
        let base = b.base_offset();
        let append_time = b.is_log_append_time().then_some(b.max_timestamp);
        let records = keyindex::records_of(&b)?;
        keyindex::index_batch(
            tx,
            p,
            base,
            &records,
            append_time,
            keyindex::Indexing::Committed,
        )
        .await?;
    }
    Ok(())
}
