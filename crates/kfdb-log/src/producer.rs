//! Idempotent producers: producer-id allocation and per-partition sequence state.
//!
//! Producer ids come from blocks of `PID_BLOCK` reserved with one transaction on a counter key, so
//! the counter is written once per thousand producers, not per producer. Each partition keeps, per
//! producer id, its epoch and the sequence ranges of its last five batches (Kafka keeps five), in a
//! key written by the same transaction as the append: a retried batch is recognised and answered
//! with its original offset, even across a broker crash, and nothing can be appended twice.
//!
//! A state idle for longer than `producer.id.expiration.ms` is ignored by appends at once and its
//! key deleted by a periodic sweep ([`Log::run_producer_expiry`]) unless the producer has a
//! transaction open in that partition.

use crate::batch::Batch;
use crate::error::{LogError, LogResult};
use crate::{Log, keys};
use kfdb_kv::KvError;
use kfdb_kv::tuple::{pack, unpack};
use std::collections::VecDeque;
use std::sync::Arc;

/// Producer ids reserved per store transaction.
pub const PID_BLOCK: i64 = 1_000;
/// Rows of partition metadata the producer-expiry sweep reads per store transaction.
const EXPIRY_ROWS: usize = 1_000;
/// Batches remembered per producer and partition for duplicate detection.
const REMEMBERED: usize = 5;
const V1: i64 = 1;

/// A batch already appended: its sequence range and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqEntry {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

/// One producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: i16,
    pub batches: VecDeque<SeqEntry>,
    /// Last append (ms), for `producer.id.expiration.ms`.
    pub last_ms: i64,
}

type StateTuple = (i64, i64, i64, Vec<(i64, i64, i64)>);

impl ProducerState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: StateTuple = (
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
        let (v, epoch, last_ms, batches): StateTuple =
            unpack(b).map_err(|e| LogError::Corrupt(format!("producer state: {e}")))?;
        if v != V1 {
            return Err(LogError::Corrupt(format!(
                "producer state format version {v}"
            )));
        }
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

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub fn next_seq(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqCheck {
    /// New and in order: append it.
    Append,
    /// Already appended at this base offset: answer with it, write nothing.
    Duplicate(i64),
    /// Refuse it.
    Reject(LogError),
}

/// Kafka's sequence rules for `batch` given the producer's current state in the partition.
pub fn check(state: Option<&ProducerState>, batch: &Batch) -> SeqCheck {
    let last = next_seq(batch.base_sequence, batch.last_offset_delta);
    if batch.base_sequence < 0 {
        return SeqCheck::Reject(LogError::CorruptMessage(format!(
            "producer {} sent sequence {}",
            batch.producer_id, batch.base_sequence
        )));
    }
    // No state (new, or expired after producer.id.expiration.ms): any sequence starts it, as in
    // Kafka since KIP-360; refusing would leave a long-idle producer retrying forever.
    let Some(s) = state else {
        return SeqCheck::Append;
    };
    if batch.producer_epoch < s.epoch {
        return SeqCheck::Reject(LogError::InvalidProducerEpoch);
    }
    if batch.producer_epoch > s.epoch {
        return if batch.base_sequence == 0 {
            SeqCheck::Append
        } else {
            SeqCheck::Reject(LogError::OutOfOrderSequence(format!(
                "new epoch {} must start at sequence 0, not {}",
                batch.producer_epoch, batch.base_sequence
            )))
        };
    }
    if let Some(dup) = s
        .batches
        .iter()
        .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last)
    {
        return SeqCheck::Duplicate(dup.base_offset);
    }
    let expected = s
        .batches
        .back()
        .map(|b| next_seq(b.last_seq, 1))
        .unwrap_or(0);
    if batch.base_sequence != expected {
        return SeqCheck::Reject(LogError::OutOfOrderSequence(format!(
            "expected sequence {expected}, got {}",
            batch.base_sequence
        )));
    }
    SeqCheck::Append
}

/// Remember an appended batch.
pub fn record(state: &mut Option<ProducerState>, batch: &Batch, base_offset: i64, now: i64) {
    let entry = SeqEntry {
        first_seq: batch.base_sequence,
        last_seq: next_seq(batch.base_sequence, batch.last_offset_delta),
        base_offset,
    };
    match state {
        Some(s) if s.epoch == batch.producer_epoch => {
            s.batches.push_back(entry);
            while s.batches.len() > REMEMBERED {
                s.batches.pop_front();
            }
            s.last_ms = now;
        }
        _ => {
            *state = Some(ProducerState {
                epoch: batch.producer_epoch,
                batches: VecDeque::from([entry]),
                last_ms: now,
            })
        }
    }
}

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

impl Log {
    /// The producers a partition remembers (not yet expired), with their open transactions.
    pub async fn active_producers(
        &self,
        topic: &crate::TopicMeta,
        partition: i32,
    ) -> LogResult<Vec<ActiveProducer>> {
        if partition < 0 || partition >= topic.partitions {
            return Err(LogError::UnknownPartition);
        }
        let (tid, expiration) = (topic.id, self.config.producer_id_expiration_ms);
        self.db
            .run(|tx, _| async move {
                let now = crate::now_ms();
                let space = keys::producer_states(tid, partition);
                let (b, e) = space.range();
                let rows = tx
                    .get_range_all(kfdb_kv::RangeOption::new(b, e), true)
                    .await?;
                let mut out = Vec::new();
                for kv in rows.iter() {
                    let pid: i64 = space
                        .unpack(&kv.key)
                        .map_err(|e| LogError::Corrupt(format!("producer key: {e}")))?;
                    let state = ProducerState::decode(&kv.value)?;
                    let open = crate::append::read_open(&tx, tid, partition, pid).await?;
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
    /// transactions of `EXPIRY_ROWS` rows. The append path already ignores such states; this
    /// gives their keys back. Returns how many were deleted.
    pub async fn expire_producer_states(&self) -> LogResult<usize> {
        let expiration = self.config.producer_id_expiration_ms;
        let space = keys::partition_metadata();
        let (begin, end) = space.range();
        let deleted = crate::walk::walk_pages(&self.db, begin, end, EXPIRY_ROWS, |tx, rows| {
            let space = space.clone();
            async move {
                let now = crate::now_ms();
                let mut n = 0;
                for kv in &rows {
                    let Ok((tid, partition, kind, pid)) =
                        space.unpack::<(i64, i32, String, i64)>(&kv.key)
                    else {
                        continue; // state, owner: other shapes
                    };
                    if kind != "producer"
                        || now - ProducerState::decode(&kv.value)?.last_ms <= expiration
                    {
                        continue;
                    }
                    // A candidate: read it again with a conflict, so that an append of this
                    // producer racing the sweep makes one of them retry (and only then).
                    let Some(v) = tx.get(&kv.key, false).await? else {
                        continue;
                    };
                    let state = ProducerState::decode(&v)?;
                    if now - state.last_ms > expiration
                        && crate::append::read_open(&tx, tid, partition, pid)
                            .await?
                            .is_none()
                    {
                        tx.clear(&kv.key);
                        n += 1;
                    }
                }
                Ok(n)
            }
        })
        .await?;
        Ok(deleted.into_iter().sum())
    }

    /// Run [`Log::expire_producer_states`] every `producer.id.expiration.check.interval.ms`.
    pub async fn run_producer_expiry(self: Arc<Self>) {
        let every = self.config.producer_expiry_interval;
        crate::run_every(
            every,
            Some("expired idle producer states"),
            "producer expiry sweep failed",
            || self.expire_producer_states(),
        )
        .await
    }

    /// A fresh producer id, from this broker's reserved block (reserving a new block when empty).
    pub async fn allocate_producer_id(&self) -> LogResult<i64> {
        if let Some(id) = self.take_local_pid() {
            return Ok(id);
        }
        let start = self
            .db
            .run(|tx, _| async move {
                let key = keys::producer_id_block();
                let next = match tx.get(&key, false).await? {
                    Some(v) => unpack::<i64>(&v).map_err(|e| {
                        KvError::new(KvError::INTERNAL_ERROR, format!("pid block: {e}"))
                    })?,
                    None => 0,
                };
                tx.set(&key, &pack(&(next + PID_BLOCK)));
                Ok::<_, KvError>(next)
            })
            .await?;
        let mut block = match self.pid_block.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *block = (start + 1, start + PID_BLOCK);
        Ok(start)
    }

    fn take_local_pid(&self) -> Option<i64> {
        let mut block = match self.pid_block.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::batch;
    use bytes::Bytes;

    fn idem(base_seq: i32, count: i32, epoch: i16) -> Batch {
        let mut b = crate::batch::parse_batches(&Bytes::from(batch(count, 1, 1)))
            .unwrap()
            .remove(0);
        b.producer_id = 7;
        b.producer_epoch = epoch;
        b.base_sequence = base_seq;
        b
    }

    #[test]
    fn sequences_wrap_like_kafkas() {
        assert_eq!(next_seq(5, 1), 6);
        assert_eq!(next_seq(i32::MAX, 1), 0);
        assert_eq!(next_seq(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn in_order_duplicate_gap_and_epochs() {
        let mut s = None;
        assert_eq!(
            check(s.as_ref(), &idem(3, 1, 0)),
            SeqCheck::Append,
            "unknown producers may start at any sequence"
        );
        let b0 = idem(0, 3, 0);
        assert_eq!(check(s.as_ref(), &b0), SeqCheck::Append);
        record(&mut s, &b0, 100, 1);
        let b1 = idem(3, 2, 0);
        assert_eq!(check(s.as_ref(), &b1), SeqCheck::Append);
        record(&mut s, &b1, 103, 2);
        assert_eq!(check(s.as_ref(), &idem(0, 3, 0)), SeqCheck::Duplicate(100));
        assert_eq!(check(s.as_ref(), &idem(3, 2, 0)), SeqCheck::Duplicate(103));
        assert!(matches!(
            check(s.as_ref(), &idem(9, 1, 0)),
            SeqCheck::Reject(LogError::OutOfOrderSequence(_))
        ));
        assert_eq!(check(s.as_ref(), &idem(5, 1, 0)), SeqCheck::Append);
        assert_eq!(
            check(s.as_ref(), &idem(0, 1, 1)),
            SeqCheck::Append,
            "new epoch restarts at 0"
        );
        assert!(matches!(
            check(s.as_ref(), &idem(4, 1, 1)),
            SeqCheck::Reject(LogError::OutOfOrderSequence(_))
        ));
        let mut bumped = s.clone();
        record(&mut bumped, &idem(0, 1, 1), 200, 3);
        assert_eq!(
            check(bumped.as_ref(), &idem(5, 1, 0)),
            SeqCheck::Reject(LogError::InvalidProducerEpoch)
        );
        let state = s.unwrap();
        assert_eq!(ProducerState::decode(&state.encode()).unwrap(), state);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = None;
        for i in 0..7 {
            let b = idem(i, 1, 0);
            record(&mut s, &b, 10 + i64::from(i), 0);
        }
        let s = s.unwrap();
        assert_eq!(s.batches.len(), 5);
        assert_eq!(s.batches.front().unwrap().first_seq, 2);
    }
}
