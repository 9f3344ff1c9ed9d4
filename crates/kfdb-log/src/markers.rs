//! Transaction markers, the partition side of ending a transaction: a control batch (commit or
//! abort) appended to a partition for one producer, which closes that producer's open transaction
//! there, moves the partition's last stable offset, records an aborted transaction in the
//! partition's aborted-transaction index, and raises the producer's epoch in the partition when the
//! coordinator fenced it.
//!
//! Markers are written inside a store transaction the coordinator (`txn.rs`) drives, so all markers
//! of a Kafka transaction, its offsets and its new coordinator state commit together. The caller
//! holds the partitions' writers ([`Log::acquire_writer`]) and reports the result to the hot cache
//! and waiting fetches with [`Log::markers_landed`] after the commit.

use crate::append::{begin_partition_write, read_open, write_batch};
use crate::batch::Batch;
use crate::error::{LogError, LogResult};
use crate::producer::ProducerState;
use crate::values::PartitionState;
use crate::{Log, keys};
use bytes::Bytes;
use kfdb_kv::tuple::{pack, unpack};
use kfdb_kv::{RangeOption, Transaction};

/// A marker written by a store transaction, for the cache once it committed.
pub(crate) struct Landed {
    tid: i64,
    partition: i32,
    batch: (i64, i64, Bytes),
    state: PartitionState,
}

/// What ends the transaction: whose, with which epoch, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub now: i64,
}

/// Write `marker` into one partition in `tx`. `None` when the topic no longer exists.
pub(crate) async fn write_marker(
    tx: &Transaction,
    node: i32,
    tid: i64,
    partition: i32,
    marker: Marker,
) -> LogResult<Option<Landed>> {
    let Some((owner, mut state)) = begin_partition_write(tx, tid, partition, node).await? else {
        return Ok(None);
    };
    let pid = marker.producer_id;
    let producer_key = keys::producer_state(tid, partition, pid);
    let producer = match tx.get(&producer_key, false).await? {
        Some(v) => Some(ProducerState::decode(&v)?),
        None => None,
    };
    let first = read_open(tx, tid, partition, pid).await?;
    let control = Batch::control_marker(pid, marker.producer_epoch, marker.commit, marker.now);
    let written = write_batch(tx, tid, partition, owner.epoch, &control, None, &mut state);
    let marker_offset = written.0;
    // The producer's epoch in this partition rises to the marker's, so a fenced producer's late
    // batches are refused; its sequence numbers start over in a new epoch. (Where it never wrote,
    // it has no state to raise: a late batch there cannot open a transaction, see append.rs.)
    if let Some(mut p) = producer
        && p.epoch < marker.producer_epoch
    {
        p.epoch = marker.producer_epoch;
        p.batches.clear();
        p.last_ms = marker.now;
        tx.set(&producer_key, &p.encode());
    }
    if let Some(first) = first {
        tx.clear(&keys::open_txn(tid, partition, pid));
        if state.first_open == first {
            state.first_open = oldest_open(tx, tid, partition, pid).await?;
        }
        if !marker.commit {
            // With the last stable offset after this marker, which ends a fetch's scan of the
            // index (as Kafka's aborted-transaction index does).
            tx.set(
                &keys::aborted_txn(tid, partition, marker_offset),
                &pack(&(pid, first, state.last_stable())),
            );
        }
    }
    tx.set(&keys::partition_state(tid, partition), &state.encode());
    Ok(Some(Landed {
        tid,
        partition,
        batch: written,
        state,
    }))
}

/// The first offset of the oldest transaction open in the partition other than `except`'s, -1
/// when none.
async fn oldest_open(tx: &Transaction, tid: i64, partition: i32, except: i64) -> LogResult<i64> {
    let space = keys::open_txns(tid, partition);
    let (b, e) = space.range();
    let rows = tx.get_range_all(RangeOption::new(b, e), false).await?;
    let mut oldest = -1;
    for kv in rows.iter() {
        let pid: i64 = space
            .unpack(&kv.key)
            .map_err(|e| LogError::Corrupt(format!("open transaction key: {e}")))?;
        if pid == except {
            continue;
        }
        let first: i64 =
            unpack(&kv.value).map_err(|e| LogError::Corrupt(format!("open transaction: {e}")))?;
        if oldest < 0 || first < oldest {
            oldest = first;
        }
    }
    Ok(oldest)
}

impl Log {
    /// Markers committed: feed the hot cache and wake fetches waiting on these partitions.
    pub(crate) fn markers_landed(&self, landed: Vec<Landed>) {
        for l in landed {
            let key = (l.tid, l.partition);
            self.cache.appended(
                key,
                vec![l.batch],
                l.state.log_start,
                l.state.next_offset,
                l.state.last_stable(),
            );
            self.announce(l.tid, l.partition, l.state.next_offset);
        }
    }
}
