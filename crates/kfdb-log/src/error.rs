//! Domain errors of the data model, each with its cause. The broker maps them to Kafka error codes
//! (kfdb-broker `error_code.rs`); a store failure stays a store failure (`LogError::Store`, with
//! the `KvError` and its source chain), so the retry loop still sees it and a client is never told
//! "no such topic" when the store could not be read.

use kfdb_kv::{KvError, TxError};

/// What can go wrong in kfdb-log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The store failed (retryable or not; see [`LogError::store_fault`]).
    #[error("store: {0}")]
    Store(#[from] KvError),
    /// No topic with that name or id.
    #[error("unknown topic")]
    UnknownTopic,
    /// The topic exists but not that partition.
    #[error("unknown partition")]
    UnknownPartition,
    /// CreateTopics for a name that exists.
    #[error("topic already exists")]
    TopicExists,
    /// The name is not a legal Kafka topic name.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// A partition count that is not allowed.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A replication factor that is not allowed.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// An unknown config name or a bad value.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A malformed record batch.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// A batch larger than `max.message.bytes`.
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    /// A CreateTime timestamp outside `message.timestamp.before/after.max.ms` of the broker's
    /// clock.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),

    /// A record the topic refuses (a compacted topic's record without a key): `index` is the
    /// record's position in its batch, as Produce's `record_errors` report it (KIP-467).
    #[error("invalid record: {message}")]
    InvalidRecord { index: i32, message: String },
    /// Message format the broker does not accept (magic < 2).
    #[error("message format older than v2")]
    UnsupportedMessageFormat,
    /// The offset is outside `[log start, high watermark]`.
    #[error("offset out of range")]
    OffsetOutOfRange,
    /// Another broker owns the partition.
    #[error("not the owner of this partition")]
    NotLeader,
    /// A batch names an idempotent producer this broker does not know.
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    /// A batch's sequence number is not the next one.
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// A batch from an older epoch of its producer.
    #[error("producer epoch is older than the partition's")]
    InvalidProducerEpoch,
    /// A newer producer with the same transactional id (higher epoch) exists.
    #[error("a newer producer with this transactional id exists")]
    ProducerFenced,
    /// The producer id does not belong to that transactional id.
    #[error("producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    /// The transaction is not in a state that allows the request.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction timeout above `transaction.max.timeout.ms` (or not positive).
    #[error("invalid transaction timeout {0} ms")]
    InvalidTransactionTimeout(i32),
    /// Another operation on the same transaction is completing; retry.
    #[error("transaction is being completed")]
    ConcurrentTransactions,
    /// No transactional id by that name.
    #[error("unknown transactional id")]
    TransactionalIdNotFound,
    /// A conditional append's condition did not hold: `current` is the partition's end offset or
    /// the key's latest offset (-1: none), whichever the condition named. Nothing was written.
    #[error("condition failed: the current value is {current}")]
    ConditionFailed { current: i64 },
    /// A request that is valid Kafka but asks for something kfdb does not do.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A stored value could not be decoded: a bug or a newer format.
    #[error("stored value unreadable: {0}")]
    Corrupt(String),
    /// Another broker coordinates this transactional id (or group).
    #[error("this broker is not the coordinator")]
    NotCoordinator,
    /// A broker's node id is taken by another live broker.
    #[error("{0}")]
    NodeIdInUse(String),
    /// The request was abandoned before it finished (the writer task failed or the broker is
    /// stopping); whether it took effect is unknown, as with a lost response.
    #[error("request abandoned: {0}")]
    Abandoned(String),
}

/// How a store failure should be reported to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The store did not answer in time (the retry loop's deadline passed).
    TimedOut,
    /// The store is unavailable or failed in a way a retry may get past (conflicts that kept
    /// happening, an I/O error, a store that is down).
    Unavailable,
    /// The store refused the request itself (a key or value too large, an invalid operation):
    /// retrying will not help.
    Refused,
}

impl LogError {
    /// For a store failure, what kind it is; `None` for every domain error.
    pub fn store_fault(&self) -> Option<StoreFault> {
        let LogError::Store(e) = self else {
            return None;
        };
        Some(if e.code() == KvError::TRANSACTION_TIMED_OUT {
            StoreFault::TimedOut
        } else if e.is_retryable()
            || e.code() == KvError::IO_ERROR
            || e.code() == KvError::OPERATION_CANCELLED
        {
            StoreFault::Unavailable
        } else {
            StoreFault::Refused
        })
    }

    /// A store failure of the given FoundationDB error code: for tests of error mapping in crates
    /// that do not depend on kfdb-kv.
    pub fn store_failure(code: i32, context: &str) -> Self {
        LogError::Store(KvError::new(code, context))
    }

    /// An unreadable stored value, with what was being read.
    pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Self {
        LogError::Corrupt(format!("{what}: {e}"))
    }
}

impl TxError for LogError {
    fn kv_error(&self) -> Option<&KvError> {
        match self {
            LogError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Result alias for the data model.
pub type LogResult<T> = Result<T, LogError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_classified_and_keep_their_source() {
        let cases = [
            (KvError::TRANSACTION_TIMED_OUT, StoreFault::TimedOut),
            (KvError::NOT_COMMITTED, StoreFault::Unavailable),
            (KvError::IO_ERROR, StoreFault::Unavailable),
            (KvError::VALUE_TOO_LARGE, StoreFault::Refused),
        ];
        for (code, fault) in cases {
            let e = LogError::store_failure(code, "x");
            assert_eq!(e.store_fault(), Some(fault), "{e}");
            let source = std::error::Error::source(&e).expect("a store error has a source");
            assert!(source.to_string().contains(&code.to_string()), "{source}");
        }
        assert_eq!(LogError::UnknownTopic.store_fault(), None);
    }
}
