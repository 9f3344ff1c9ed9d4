//! Kafka's rules for idempotent producers' sequence numbers, as pure functions: whether a batch
//! is the next in sequence, a duplicate of one of the last five (Kafka keeps five), or refused,
//! given the producer's state in the partition; and how that state records an appended batch.
//!
//! The state itself is a stored value (`values::ProducerState`) written by the append
//! transaction (`append.rs`), so a retried batch is recognised and answered with its original
//! offset even across a broker crash.

use crate::batch::Batch;
use crate::error::LogError;
use crate::values::{ProducerState, SeqEntry};
use std::collections::VecDeque;

/// Batches remembered per producer and partition for duplicate detection.
const REMEMBERED: usize = 5;

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub(crate) fn next_seq(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// New and in order: append it.
    Append,
    /// Already appended at this base offset: answer with it, write nothing.
    Duplicate(i64),
    /// Refuse it.
    Reject(LogError),
}

/// Kafka's sequence rules for `batch` given the producer's current state in the partition.
pub(crate) fn check(state: Option<&ProducerState>, batch: &Batch) -> SeqCheck {
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
pub(crate) fn record(state: &mut Option<ProducerState>, batch: &Batch, base_offset: i64, now: i64) {
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
