//! Domain errors of the data model, each with its cause. The broker maps them to Kafka error codes
//! (kfdb-broker `error_code.rs`); storage errors keep their `KvError` so retries still work.

use kfdb_kv::{KvError, TxError};
use std::fmt;

/// What can go wrong in kfdb-log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogError {
    /// The store failed (retryable or not; see `KvError`).
    Kv(KvError),
    /// No topic with that name or id.
    UnknownTopic,
    /// The topic exists but not that partition.
    UnknownPartition,
    /// CreateTopics for a name that exists.
    TopicExists,
    /// The name is not a legal Kafka topic name.
    InvalidTopic(String),
    /// A partition count that is not allowed.
    InvalidPartitions(String),
    /// A replication factor that is not allowed.
    InvalidReplicationFactor(String),
    /// An unknown config name or a bad value.
    InvalidConfig(String),
    /// A malformed record batch.
    CorruptMessage(String),
    /// A batch larger than `max.message.bytes`.
    MessageTooLarge(String),
    /// Message format the broker does not accept (magic < 2).
    UnsupportedMessageFormat,
    /// The offset is outside `[log start, high watermark]`.
    OffsetOutOfRange,
    /// Another broker owns the partition.
    NotLeader,
    /// A batch names an idempotent producer this broker does not know.
    UnknownProducerId(i64),
    /// A batch's sequence number is not the next one.
    OutOfOrderSequence(String),
    /// A batch from an older epoch of its producer.
    InvalidProducerEpoch,
    /// A newer producer with the same transactional id (higher epoch) exists.
    ProducerFenced,
    /// The producer id does not belong to that transactional id.
    InvalidProducerIdMapping,
    /// The transaction is not in a state that allows the request.
    InvalidTxnState(String),
    /// A transaction timeout above `transaction.max.timeout.ms` (or not positive).
    InvalidTransactionTimeout(i32),
    /// Another operation on the same transaction is completing; retry.
    ConcurrentTransactions,
    /// No transactional id by that name.
    TransactionalIdNotFound,
    /// A request that is valid Kafka but asks for something kfdb does not do.
    InvalidRequest(String),
    /// A stored value could not be decoded: a bug or a newer format.
    Corrupt(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Kv(e) => write!(f, "store: {e}"),
            LogError::UnknownTopic => write!(f, "unknown topic"),
            LogError::UnknownPartition => write!(f, "unknown partition"),
            LogError::TopicExists => write!(f, "topic already exists"),
            LogError::InvalidTopic(m) => write!(f, "invalid topic: {m}"),
            LogError::InvalidPartitions(m) => write!(f, "invalid partitions: {m}"),
            LogError::InvalidReplicationFactor(m) => write!(f, "invalid replication factor: {m}"),
            LogError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            LogError::CorruptMessage(m) => write!(f, "corrupt message: {m}"),
            LogError::MessageTooLarge(m) => write!(f, "message too large: {m}"),
            LogError::UnsupportedMessageFormat => write!(f, "message format older than v2"),
            LogError::OffsetOutOfRange => write!(f, "offset out of range"),
            LogError::NotLeader => write!(f, "not the owner of this partition"),
            LogError::UnknownProducerId(id) => write!(f, "unknown producer id {id}"),
            LogError::OutOfOrderSequence(m) => write!(f, "out of order sequence: {m}"),
            LogError::InvalidProducerEpoch => {
                write!(f, "producer epoch is older than the partition's")
            }
            LogError::ProducerFenced => {
                write!(f, "a newer producer with this transactional id exists")
            }
            LogError::InvalidProducerIdMapping => {
                write!(f, "producer id does not match the transactional id")
            }
            LogError::InvalidTxnState(m) => write!(f, "invalid transaction state: {m}"),
            LogError::InvalidTransactionTimeout(t) => {
                write!(f, "invalid transaction timeout {t} ms")
            }
            LogError::ConcurrentTransactions => write!(f, "transaction is being completed"),
            LogError::TransactionalIdNotFound => write!(f, "unknown transactional id"),
            LogError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            LogError::Corrupt(m) => write!(f, "stored value unreadable: {m}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Kv(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KvError> for LogError {
    fn from(e: KvError) -> Self {
        LogError::Kv(e)
    }
}

impl TxError for LogError {
    fn kv_error(&self) -> Option<&KvError> {
        match self {
            LogError::Kv(e) => Some(e),
            _ => None,
        }
    }
}

/// Result alias for the data model.
pub type LogResult<T> = Result<T, LogError>;
