//! Value types of the seam, each a copy of a FoundationDB concept: key selectors, range options,
//! mutation types, commit results and the size limits every backend enforces.

use bytes::Bytes;

/// Largest key FoundationDB accepts (bytes).
pub const MAX_KEY_SIZE: usize = 10_000;
/// Largest value FoundationDB accepts (bytes).
pub const MAX_VALUE_SIZE: usize = 100_000;
/// Largest transaction FoundationDB accepts (bytes of mutations and conflict ranges).
pub const MAX_TRANSACTION_SIZE: usize = 10_000_000;
/// FoundationDB's MVCC window: reads at a read version older than this fail (1007).
pub const MAX_TRANSACTION_AGE: std::time::Duration = std::time::Duration::from_secs(5);
/// Default cap on outstanding watches per database (FoundationDB's `too_many_watches`).
pub const MAX_WATCHES: usize = 10_000;
/// First key outside the user keyspace; range ends are clamped to it.
pub const USER_KEYSPACE_END: &[u8] = b"\xff";

/// The key immediately after `key` in byte order (`key + \x00`).
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// The first key that does not start with `prefix` (FoundationDB's `strinc`): strip trailing `\xff`
/// bytes and increment the last byte. `None` when the prefix is empty or all `\xff`.
pub fn strinc(prefix: &[u8]) -> Option<Vec<u8>> {
    let end = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut k = prefix[..=end].to_vec();
    k[end] += 1;
    Some(k)
}

/// The half-open range of every key starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = strinc(prefix).unwrap_or_else(|| USER_KEYSPACE_END.to_vec());
    (prefix.to_vec(), end)
}

/// A FoundationDB key selector: "the last key less than (or equal to, with `or_equal`) `key`, then
/// `offset` keys forward". Resolves to a key that exists in the database, or to `""` / `\xff` when it
/// falls off either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySelector {
    /// The reference key.
    pub key: Vec<u8>,
    /// Whether the reference key itself counts as "less than".
    pub or_equal: bool,
    /// How many keys to move forward from the base key (may be negative).
    pub offset: i32,
}

impl KeySelector {
    /// A selector from its three parts.
    pub fn new(key: impl Into<Vec<u8>>, or_equal: bool, offset: i32) -> Self {
        Self {
            key: key.into(),
            or_equal,
            offset,
        }
    }
    /// The first key `>= key`.
    pub fn first_greater_or_equal(key: impl Into<Vec<u8>>) -> Self {
        Self::new(key, false, 1)
    }
    /// The first key `> key`.
    pub fn first_greater_than(key: impl Into<Vec<u8>>) -> Self {
        Self::new(key, true, 1)
    }
    /// The last key `< key`.
    pub fn last_less_than(key: impl Into<Vec<u8>>) -> Self {
        Self::new(key, false, 0)
    }
    /// The last key `<= key`.
    pub fn last_less_or_equal(key: impl Into<Vec<u8>>) -> Self {
        Self::new(key, true, 0)
    }
    /// The same selector moved `by` keys.
    pub fn offset_by(mut self, by: i32) -> Self {
        self.offset += by;
        self
    }
    /// When this selector names exactly "first key >= k" (the common case), the key `k` itself, which
    /// needs no lookup to be used as a range bound.
    pub(crate) fn as_plain_begin(&self) -> Option<&[u8]> {
        (!self.or_equal && self.offset == 1).then_some(self.key.as_slice())
    }
}

/// A range read: bounds as selectors, a row limit, a byte target and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeOption {
    /// First key (selector resolved, inclusive).
    pub begin: KeySelector,
    /// End key (selector resolved, exclusive).
    pub end: KeySelector,
    /// Most rows to return in total; `None` for no limit.
    pub limit: Option<usize>,
    /// Soft byte budget for one batch (0: backend default). At least one row is always returned.
    pub target_bytes: usize,
    /// Newest-first when true.
    pub reverse: bool,
}

impl RangeOption {
    /// Every key in `[begin, end)`, forward, no limit.
    pub fn new(begin: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            begin: KeySelector::first_greater_or_equal(begin),
            end: KeySelector::first_greater_or_equal(end),
            limit: None,
            target_bytes: 0,
            reverse: false,
        }
    }
    /// Every key starting with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let (b, e) = prefix_range(prefix);
        Self::new(b, e)
    }
    /// The same range with a row limit.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    /// The same range, newest first.
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }
    /// The same range with a per-batch byte target.
    pub fn target_bytes(mut self, bytes: usize) -> Self {
        self.target_bytes = bytes;
        self
    }
}

/// One key-value pair read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
}

/// One batch of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The rows, in the requested direction.
    pub kvs: Vec<KeyValue>,
    /// True when the range holds more rows than this batch returned (and the limit is not reached).
    pub more: bool,
}

/// Atomic operations, numbered as FoundationDB's `FDBMutationType`. None of them adds a read
/// conflict; each is applied to the value current at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum MutationType {
    /// Little-endian integer addition (width of the parameter).
    Add = 2,
    /// Bitwise and; an absent value becomes the parameter.
    BitAnd = 6,
    /// Bitwise or.
    BitOr = 7,
    /// Bitwise xor.
    BitXor = 8,
    /// Append the parameter when the result still fits in a value.
    AppendIfFits = 9,
    /// Larger little-endian unsigned integer.
    Max = 12,
    /// Smaller little-endian unsigned integer; an absent value becomes the parameter.
    Min = 13,
    /// Set a key whose bytes contain the commit's versionstamp (offset in the last 4 bytes, LE).
    SetVersionstampedKey = 14,
    /// Set a value whose bytes contain the commit's versionstamp (offset in the last 4 bytes, LE).
    SetVersionstampedValue = 15,
    /// Lexicographically smaller byte string.
    ByteMin = 16,
    /// Lexicographically larger byte string.
    ByteMax = 17,
    /// Clear the key when its value equals the parameter.
    CompareAndClear = 20,
}

/// What a successful commit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit version; `-1` for a read-only transaction (nothing was committed).
    pub version: i64,
    /// The 10-byte versionstamp of the commit (8-byte version + 2-byte batch order), when it wrote.
    pub versionstamp: Option<[u8; 10]>,
}

/// Whether an earlier attempt of a retried transaction may have committed (its commit failed with
/// `commit_unknown_result`). Closures that are not idempotent must check their effect when true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeCommitted(pub bool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strinc_increments_last_non_ff_byte() {
        assert_eq!(strinc(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(strinc(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(strinc(b"\xff"), None);
        assert_eq!(strinc(b""), None);
    }

    #[test]
    fn prefix_range_excludes_longer_siblings_only_by_prefix() {
        let (b, e) = prefix_range(b"a");
        assert!(b.as_slice() <= b"a".as_slice() && b"ab".as_slice() < e.as_slice());
        assert!(b"b".as_slice() >= e.as_slice());
    }
}
