//! Kafka error codes, and the one mapping from data-model errors to them.

use kfdb_log::{LogError, StoreFault};

/// No error.
pub const NONE: i16 = 0;
/// Unexpected server error.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// The offset is outside the log.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// A record batch failed validation.
pub const CORRUPT_MESSAGE: i16 = 2;
/// No such topic or partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// No broker leads the partition right now (no broker is live).
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// Another broker leads the partition.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// The request's leader epoch is older than the leader's.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// The request's leader epoch is newer than the leader's.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
/// No replica log directory by that name (AlterReplicaLogDirs).
pub const LOG_DIR_NOT_FOUND: i16 = 57;
/// No partition reassignment in progress (AlterPartitionReassignments cancelling none).
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
/// ElectLeaders: the preferred leader already leads.
pub const ELECTION_NOT_NEEDED: i16 = 84;
/// ElectLeaders: the preferred leader is not available.
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// The request ran past its time.
pub const REQUEST_TIMED_OUT: i16 = 7;
/// A record timestamp outside `message.timestamp.before/after.max.ms`.
pub const INVALID_TIMESTAMP: i16 = 32;
/// The request breaks a broker policy (CreateTopics: more than 10,000 partitions at once).
pub const POLICY_VIOLATION: i16 = 44;
/// The offset commit's metadata string is too long.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The coordinator is not available (e.g. transactions before they exist).
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Not the coordinator for this group.
pub const NOT_COORDINATOR: i16 = 16;
/// The generation is not the group's.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The member's protocols do not match the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// Empty or otherwise invalid group id.
pub const INVALID_GROUP_ID: i16 = 24;
/// The member id is not in the group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// Session timeout outside the broker's bounds.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing: rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// The group still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// No such group.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// Rejoin with the member id given in this response (KIP-394).
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// Another member took over this static instance id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// The group's members consume the topic whose offsets were to be deleted.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// KIP-848: the member's epoch is behind the group's; rejoin.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// KIP-848: a static member joined while another live member holds its instance id.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// KIP-848: unknown server-side assignor.
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
/// KIP-848: an offset commit carries an old member epoch.
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// A batch is larger than `max.message.bytes`.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// Not a legal topic name.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// acks other than -1, 0, 1.
pub const INVALID_REQUIRED_ACKS: i16 = 21;
/// Not allowed on the topic (ACLs).
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
/// Not allowed on the group (ACLs).
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
/// Not allowed on the cluster (ACLs).
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// Not allowed on the transactional id (ACLs).
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// No authorizer is configured (the ACL APIs).
pub const SECURITY_DISABLED: i16 = 54;
/// The SASL mechanism is not enabled on this listener.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// A SASL request out of order (or on a listener without SASL).
pub const ILLEGAL_SASL_STATE: i16 = 34;
/// SASL authentication failed.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// No such resource (a SCRAM credential to delete or describe).
pub const RESOURCE_NOT_FOUND: i16 = 91;
/// The same resource twice in one request.
pub const DUPLICATE_RESOURCE: i16 = 92;
/// A credential Kafka would not accept (empty user, iterations out of range).
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
/// The API version is not supported.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// The topic exists already.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Bad partition count.
pub const INVALID_PARTITIONS: i16 = 37;
/// Bad replication factor.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Bad replica assignment.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// Bad config name or value.
pub const INVALID_CONFIG: i16 = 40;
/// Malformed or contradictory request.
pub const INVALID_REQUEST: i16 = 42;
/// Message format older than v2.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// An idempotent producer's batch is not the next in sequence.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// An idempotent producer's epoch is older than the partition knows.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// The store failed; clients retry.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// The producer id is not known.
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
/// The topic id is not known.
pub const UNKNOWN_TOPIC_ID: i16 = 100;

/// A transactional operation on a producer whose epoch is stale.
pub const INVALID_TXN_STATE: i16 = 48;
/// Producer id not mapped to that transactional id.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
/// Transaction timeout above `transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
/// The transaction is being completed; retry.
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
/// Not attempted because another part of the request failed.
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
/// A record the topic refuses, e.g. one without a key on a compacted topic (KIP-467).
pub const INVALID_RECORD: i16 = 87;
/// Offsets of that partition are part of an open transaction (OffsetFetch with require_stable).
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// A topic refused under `controller_mutation_rate` (KIP-599).
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
/// A newer producer with the same transactional id exists (KIP-588).
pub const PRODUCER_FENCED: i16 = 90;
/// DescribeTransactions of an unknown transactional id.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// Kafka error codes answered since the process started (data-model errors and group answers), by code + 1
/// (UNKNOWN_SERVER_ERROR is -1); read by the metrics endpoint.
static ANSWERED: [std::sync::atomic::AtomicU64; 160] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 160];

/// `(code, count)` of every error code answered so far for a data-model error.
pub fn answered_counts() -> Vec<(i16, u64)> {
    ANSWERED
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i16 - 1, n.load(std::sync::atomic::Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Count `code` as answered (for the metrics; 0 is not an error and not counted) and return it.
/// Used where a code does not come from [`from_log_error`]: the group state machines' answers and
/// the group handlers' own checks.
pub fn answered(code: i16) -> i16 {
    if code != NONE
        && let Some(n) = usize::try_from(i32::from(code) + 1)
            .ok()
            .and_then(|i| ANSWERED.get(i))
    {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    code
}

/// The Kafka error code for a data-model error (counted for the metrics). Exhaustive on purpose:
/// a new `LogError` variant must be given a code here.
pub fn from_log_error(e: &LogError) -> i16 {
    answered(code_of(e))
}

fn code_of(e: &LogError) -> i16 {
    match e {
        LogError::Store(_) => match e.store_fault() {
            Some(fault) => from_store_fault(fault),
            None => UNKNOWN_SERVER_ERROR,
        },
        LogError::UnknownTopic | LogError::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        LogError::TopicExists => TOPIC_ALREADY_EXISTS,
        LogError::InvalidTopic(_) => INVALID_TOPIC_EXCEPTION,
        LogError::InvalidPartitions(_) => INVALID_PARTITIONS,
        LogError::InvalidReplicationFactor(_) => INVALID_REPLICATION_FACTOR,
        LogError::InvalidConfig(_) => INVALID_CONFIG,
        LogError::CorruptMessage(_) => CORRUPT_MESSAGE,
        LogError::MessageTooLarge(_) => MESSAGE_TOO_LARGE,
        LogError::InvalidTimestamp(_) => INVALID_TIMESTAMP,
        LogError::InvalidRecord { .. } => INVALID_RECORD,
        LogError::UnsupportedMessageFormat => UNSUPPORTED_FOR_MESSAGE_FORMAT,
        LogError::OffsetOutOfRange => OFFSET_OUT_OF_RANGE,
        LogError::NotLeader => NOT_LEADER_OR_FOLLOWER,
        LogError::UnknownProducerId(_) => UNKNOWN_PRODUCER_ID,
        LogError::OutOfOrderSequence(_) => OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch => INVALID_PRODUCER_EPOCH,
        LogError::ProducerFenced => PRODUCER_FENCED,
        LogError::InvalidProducerIdMapping => INVALID_PRODUCER_ID_MAPPING,
        LogError::InvalidTxnState(_) => INVALID_TXN_STATE,
        LogError::InvalidTransactionTimeout(_) => INVALID_TRANSACTION_TIMEOUT,
        LogError::ConcurrentTransactions => CONCURRENT_TRANSACTIONS,
        LogError::TransactionalIdNotFound => TRANSACTIONAL_ID_NOT_FOUND,
        LogError::InvalidRequest(_) => INVALID_REQUEST,
        LogError::Corrupt(_) => UNKNOWN_SERVER_ERROR,
        // Whether it took effect is unknown: the client retries, as after a timeout.
        LogError::Abandoned(_) => REQUEST_TIMED_OUT,
        // Only kfdb's HTTP API appends conditionally; no Kafka request can meet it.
        LogError::ConditionFailed { .. } => INVALID_REQUEST,
        LogError::NodeIdInUse(_) => UNKNOWN_SERVER_ERROR,
        LogError::NotCoordinator => NOT_COORDINATOR,
    }
}

/// A data-model error as a group API reports it: store trouble becomes COORDINATOR_NOT_AVAILABLE
/// or NOT_COORDINATOR, which consumers handle by finding the coordinator again (Kafka maps
/// REQUEST_TIMED_OUT and KAFKA_STORAGE_ERROR the same way for group requests).
pub fn for_group(e: &LogError) -> i16 {
    for_coordinator(e)
}

/// The same mapping for transaction-coordinator APIs, with one more rule: before KIP-588 (the
/// versions below `fenced_from`) a fenced producer is told INVALID_PRODUCER_EPOCH.
pub fn for_txn(e: &LogError, version: i16, fenced_from: i16) -> i16 {
    match for_coordinator(e) {
        PRODUCER_FENCED if version < fenced_from => INVALID_PRODUCER_EPOCH,
        other => other,
    }
}

fn for_coordinator(e: &LogError) -> i16 {
    match from_log_error(e) {
        REQUEST_TIMED_OUT => COORDINATOR_NOT_AVAILABLE,
        KAFKA_STORAGE_ERROR | UNKNOWN_SERVER_ERROR => NOT_COORDINATOR,
        other => other,
    }
}

/// Store failures: a timeout becomes `REQUEST_TIMED_OUT`, an unavailable store
/// `KAFKA_STORAGE_ERROR` (clients retry both), a refused request `UNKNOWN_SERVER_ERROR`.
pub fn from_store_fault(fault: StoreFault) -> i16 {
    match fault {
        StoreFault::TimedOut => REQUEST_TIMED_OUT,
        StoreFault::Unavailable => KAFKA_STORAGE_ERROR,
        StoreFault::Refused => UNKNOWN_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let table = [
            (LogError::UnknownTopic, UNKNOWN_TOPIC_OR_PARTITION),
            (LogError::TopicExists, TOPIC_ALREADY_EXISTS),
            (LogError::OffsetOutOfRange, OFFSET_OUT_OF_RANGE),
            (LogError::CorruptMessage("x".into()), CORRUPT_MESSAGE),
            (LogError::MessageTooLarge("x".into()), MESSAGE_TOO_LARGE),
            (
                LogError::InvalidRecord {
                    index: 0,
                    message: "x".into(),
                },
                INVALID_RECORD,
            ),
            (LogError::InvalidConfig("x".into()), INVALID_CONFIG),
            // FoundationDB codes: not_committed, io_error, transaction_timed_out, key_too_large.
            (LogError::store_failure(1020, ""), KAFKA_STORAGE_ERROR),
            (LogError::store_failure(1510, ""), KAFKA_STORAGE_ERROR),
            (LogError::store_failure(1031, ""), REQUEST_TIMED_OUT),
            (LogError::store_failure(2102, ""), UNKNOWN_SERVER_ERROR),
            (LogError::Abandoned("x".into()), REQUEST_TIMED_OUT),
        ];
        for (e, code) in table {
            assert_eq!(from_log_error(&e), code, "{e}");
        }
    }
}
