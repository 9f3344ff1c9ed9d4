//! `KvError`: the one error type of the storage seam.
//!
//! Every backend reports failures as a FoundationDB error code, so the retry loop and every layer above
//! decide "retry or give up" the same way on the embedded store and on FoundationDB. Codes and their
//! retry classes follow FoundationDB's `error_definitions.h` (`fdb_error_predicate`).
//!
//! A `KvError` keeps what caused it (the fjall or I/O error, the `FdbError`) as its `source`, so a
//! log line that prints the error chain says which file, syscall or cluster call failed.

use std::error::Error;
use std::sync::Arc;

/// A FoundationDB error code with a human-readable context and, when it came from below, its
/// cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name} ({code}){sep}{context}", name = name_of(*.code), sep = if .context.is_empty() { "" } else { ": " })]
pub struct KvError {
    code: i32,
    context: String,
    #[source]
    source: Option<Arc<dyn Error + Send + Sync>>,
}

/// Two errors are the same error when their code and context are; the cause is not compared.
impl PartialEq for KvError {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.context == other.context
    }
}

impl Eq for KvError {}

impl KvError {
    /// The transaction's reads are older than the 5 s MVCC window.
    pub const TRANSACTION_TOO_OLD: i32 = 1007;
    /// The cluster has not seen a version this new yet (FDB), retryable.
    pub const FUTURE_VERSION: i32 = 1009;
    /// A read of this transaction was written by a newer committed transaction.
    pub const NOT_COMMITTED: i32 = 1020;
    /// The commit may or may not have happened.
    pub const COMMIT_UNKNOWN_RESULT: i32 = 1021;
    /// The transaction was cancelled.
    pub const TRANSACTION_CANCELLED: i32 = 1025;
    /// The transaction (or the retry loop) ran past its timeout.
    pub const TRANSACTION_TIMED_OUT: i32 = 1031;
    /// More watches than the database allows.
    pub const TOO_MANY_WATCHES: i32 = 1032;
    /// A read touched a key whose value is only known at commit (versionstamped).
    pub const ACCESSED_UNREADABLE: i32 = 1036;
    /// Commit proxies are too busy (FDB), retryable.
    pub const PROXY_MEMORY_LIMIT_EXCEEDED: i32 = 1042;
    /// The operation was cancelled.
    pub const OPERATION_CANCELLED: i32 = 1101;
    /// A disk operation failed; the embedded store is poisoned after this.
    pub const IO_ERROR: i32 = 1510;
    /// An operation the client may not perform (bad versionstamp offset, ...).
    pub const CLIENT_INVALID_OPERATION: i32 = 2000;
    /// A key outside the legal user range (`\xff...`).
    pub const KEY_OUTSIDE_LEGAL_RANGE: i32 = 2004;
    /// A range whose begin is after its end.
    pub const INVERTED_RANGE: i32 = 2005;
    /// The versionstamp was asked for a transaction that wrote nothing.
    pub const NO_COMMIT_VERSION: i32 = 2021;
    /// The transaction affects more than 10,000,000 bytes.
    pub const TRANSACTION_TOO_LARGE: i32 = 2101;
    /// A key longer than 10,000 bytes.
    pub const KEY_TOO_LARGE: i32 = 2102;
    /// A value longer than 100,000 bytes.
    pub const VALUE_TOO_LARGE: i32 = 2103;
    /// An internal invariant failed.
    pub const INTERNAL_ERROR: i32 = 4100;

    /// An error with `code` and a context string.
    pub fn new(code: i32, context: impl Into<String>) -> Self {
        Self {
            code,
            context: context.into(),
            source: None,
        }
    }

    /// An error with `code`, a context string and the error that caused it.
    pub fn caused_by(
        code: i32,
        context: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            code,
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The FoundationDB error code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// FoundationDB's name for the code, for logs.
    pub fn name(&self) -> &'static str {
        name_of(self.code)
    }

    /// FoundationDB's `retryable` predicate: running the transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            Self::TRANSACTION_TOO_OLD
                | Self::FUTURE_VERSION
                | Self::NOT_COMMITTED
                | Self::COMMIT_UNKNOWN_RESULT
                | Self::PROXY_MEMORY_LIMIT_EXCEEDED
                | 1037 // process_behind
                | 1038 // database_locked
                | 1039 // cluster_version_changed
                | 1213 // tag_throttled
                | 1078 // grv_proxy_memory_limit_exceeded
                | 1040 // batch_transaction_throttled
        )
    }

    /// FoundationDB's `maybe_committed` predicate: the failed commit may have been applied.
    pub fn is_maybe_committed(&self) -> bool {
        matches!(self.code, Self::COMMIT_UNKNOWN_RESULT | 1039)
    }

    /// Retryable and certainly not applied: safe to retry even a non-idempotent transaction.
    pub fn is_retryable_not_committed(&self) -> bool {
        self.is_retryable() && !self.is_maybe_committed()
    }
}

/// FoundationDB's name for an error code.
fn name_of(code: i32) -> &'static str {
    match code {
        KvError::TRANSACTION_TOO_OLD => "transaction_too_old",
        KvError::FUTURE_VERSION => "future_version",
        KvError::NOT_COMMITTED => "not_committed",
        KvError::COMMIT_UNKNOWN_RESULT => "commit_unknown_result",
        KvError::TRANSACTION_CANCELLED => "transaction_cancelled",
        KvError::TRANSACTION_TIMED_OUT => "transaction_timed_out",
        KvError::TOO_MANY_WATCHES => "too_many_watches",
        KvError::ACCESSED_UNREADABLE => "accessed_unreadable",
        KvError::PROXY_MEMORY_LIMIT_EXCEEDED => "proxy_memory_limit_exceeded",
        KvError::OPERATION_CANCELLED => "operation_cancelled",
        KvError::IO_ERROR => "io_error",
        KvError::CLIENT_INVALID_OPERATION => "client_invalid_operation",
        KvError::KEY_OUTSIDE_LEGAL_RANGE => "key_outside_legal_range",
        KvError::INVERTED_RANGE => "inverted_range",
        KvError::NO_COMMIT_VERSION => "no_commit_version",
        KvError::TRANSACTION_TOO_LARGE => "transaction_too_large",
        KvError::KEY_TOO_LARGE => "key_too_large",
        KvError::VALUE_TOO_LARGE => "value_too_large",
        KvError::INTERNAL_ERROR => "internal_error",
        _ => "unknown_error",
    }
}

/// An error a transaction closure can return: either a storage error (maybe retryable) or one of the
/// caller's own domain errors (never retried). [`crate::Database::run`] asks this to decide.
pub trait TxError: From<KvError> {
    /// The storage error inside, if this error came from the store.
    fn kv_error(&self) -> Option<&KvError>;
}

impl TxError for KvError {
    fn kv_error(&self) -> Option<&KvError> {
        Some(self)
    }
}

/// Result alias for the seam.
pub type KvResult<T> = Result<T, KvError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classes_match_foundationdb() {
        let table = [
            (KvError::NOT_COMMITTED, true, false),
            (KvError::TRANSACTION_TOO_OLD, true, false),
            (KvError::COMMIT_UNKNOWN_RESULT, true, true),
            (KvError::KEY_TOO_LARGE, false, false),
            (KvError::VALUE_TOO_LARGE, false, false),
            (KvError::TRANSACTION_TOO_LARGE, false, false),
            (KvError::IO_ERROR, false, false),
            (KvError::TRANSACTION_TIMED_OUT, false, false),
        ];
        for (code, retryable, maybe) in table {
            let e = KvError::new(code, "");
            assert_eq!(e.is_retryable(), retryable, "{e}");
            assert_eq!(e.is_maybe_committed(), maybe, "{e}");
        }
    }

    #[test]
    fn display_names_the_code() {
        let e = KvError::new(KvError::KEY_TOO_LARGE, "10001 bytes");
        assert_eq!(e.to_string(), "key_too_large (2102): 10001 bytes");
        assert_eq!(
            KvError::new(KvError::NOT_COMMITTED, "").to_string(),
            "not_committed (1020)"
        );
    }

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
        let e = KvError::caused_by(KvError::IO_ERROR, "fsync of the journal", io);
        assert_eq!(e.to_string(), "io_error (1510): fsync of the journal");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "no space left on device");
        assert_eq!(e, KvError::new(KvError::IO_ERROR, "fsync of the journal"));
    }
}
