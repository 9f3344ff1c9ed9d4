//! Producer ids and the producer states partitions keep: allocation of producer ids,
//! DescribeProducers, and deletion of states idle past `producer.id.expiration.ms`.
//!
//! Producer ids come from blocks of `PID_BLOCK` reserved with one transaction on a counter key, so
//! the counter is written once per thousand producers, not per producer. A block reserved twice
//! (a retry after `commit_unknown_result`) only skips ids.
//!
//! A state idle for longer than `producer.id.expiration.ms` is ignored by appends at once
//! (`append.rs`) and its key deleted by the sweep ([`ProducerStates::expire`]) unless the producer
//! has a transaction open in that partition.

use crate::clock::now_ms;
use crate::error::{LogError, LogResult};
use crate::keys::{self, PartitionMetaKey};
use crate::leadership::Leadership;
use crate::partition;
use crate::values::{self, ProducerState, TopicMeta};
use crate::walk::walk_pages;
use kfdb_kv::{Database, RangeOption};
use std::sync::{Arc, Mutex};

/// Producer ids reserved per store transaction.
pub const PID_BLOCK: i64 = 1_000;
/// Rows of partition metadata the producer-expiry sweep reads per store transaction.
const EXPIRY_ROWS: usize = 1_000;

/// A producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch in the partition.
    pub producer_epoch: i16,
    /// Sequence of its last appended record, -1 if none.
    pub last_sequence: i32,
    /// Its last append (ms).
    pub last_timestamp: i64,
    /// First offset of its open transaction in the partition, -1 if none.
    pub txn_start_offset: i64,
}

/// See the module documentation.
pub struct ProducerStates {
    db: Database,
    leadership: Arc<Leadership>,
    /// `producer.id.expiration.ms`.
    expiration_ms: i64,
    /// This broker's reserved producer ids: `[next, end)`.
    block: Mutex<(i64, i64)>,
}

impl ProducerStates {
    pub(crate) fn new(db: Database, expiration_ms: i64, leadership: Arc<Leadership>) -> Self {
        Self {
            db,
            leadership,
            expiration_ms,
            block: Mutex::new((0, 0)),
        }
    }

    /// The producers a partition remembers (not yet expired), with their open transactions.
    pub async fn active(
        &self,
        topic: &TopicMeta,
        partition: i32,
    ) -> LogResult<Vec<ActiveProducer>> {
        let p = topic
            .partition(partition)
            .ok_or(LogError::UnknownPartition)?;
        let expiration = self.expiration_ms;
        self.db
            .run(|tx, _| async move {
                let now = now_ms();
                let (b, e) = keys::producer_states(p);
                let rows = tx.get_range_all(RangeOption::new(b, e), true).await?;
                let mut out = Vec::new();
                for kv in rows.iter() {
                    let pid = keys::parse_producer_state(p, &kv.key)?;
                    let state = ProducerState::decode(&kv.value)?;
                    let open = partition::read_open(&tx, p, pid).await?;
                    if now - state.last_ms > expiration && open.is_none() {
                        continue;
                    }
                    out.push(ActiveProducer {
                        producer_id: pid,
                        producer_epoch: state.epoch,
                        last_sequence: state.batches.back().map(|b| b.last_seq).unwrap_or(-1),
                        last_timestamp: state.last_ms,
                        txn_start_offset: open.unwrap_or(-1),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Delete the states of producers idle for longer than `producer.id.expiration.ms` (and with
    /// no transaction open in that partition), walking every partition's metadata in store
    /// transactions of `EXPIRY_ROWS` rows, deleting only in partitions this broker leads (each
    /// broker sweeps its own). The append path already ignores such states; this gives their
    /// keys back. Returns how many were deleted.
    pub async fn expire(&self) -> LogResult<usize> {
        let expiration = self.expiration_ms;
        let leadership = &self.leadership;
        let (begin, end) = keys::all_partition_metadata();
        let deleted = walk_pages(&self.db, begin, end, EXPIRY_ROWS, |tx, rows| async move {
            let now = now_ms();
            let mut n = 0;
            for kv in &rows {
                let PartitionMetaKey::Producer(p, pid) = keys::parse_partition_meta(&kv.key)?
                else {
                    continue;
                };
                if !leadership.leads(p) {
                    continue;
                }
                if now - ProducerState::decode(&kv.value)?.last_ms <= expiration {
                    continue;
                }
                // A candidate: read it again with a conflict, so that an append of this producer
                // racing the sweep makes one of them retry (and only then).
                let Some(state) = partition::read_producer(&tx, p, pid, false).await? else {
                    continue;
                };
                if now - state.last_ms > expiration
                    && partition::read_open(&tx, p, pid).await?.is_none()
                {
                    tx.clear(&kv.key);
                    n += 1;
                }
            }
            Ok(n)
        })
        .await?;
        Ok(deleted.into_iter().sum())
    }

    /// A fresh producer id, from this broker's reserved block (reserving a new block when empty).
    pub async fn allocate_id(&self) -> LogResult<i64> {
        if let Some(id) = self.take_local() {
            return Ok(id);
        }
        let start = self
            .db
            .run(|tx, _| async move {
                let key = keys::producer_id_block();
                let next = match tx.get(&key, false).await? {
                    Some(v) => values::decode_counter("producer id block", &v)?,
                    None => 0,
                };
                tx.set(&key, &values::encode_counter(next + PID_BLOCK));
                Ok::<_, LogError>(next)
            })
            .await?;
        *self.block.lock().unwrap_or_else(|p| p.into_inner()) = (start + 1, start + PID_BLOCK);
        Ok(start)
    }

    fn take_local(&self) -> Option<i64> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }
}
