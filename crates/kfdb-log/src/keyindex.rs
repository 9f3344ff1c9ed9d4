//! The key index: for every partition of a topic that compacts (`cleanup.policy` with `compact`)
//! or asks for it (`kfdb.key.index=true`), where the latest record of each key is — its offset,
//! timestamp and whether it is a tombstone — kept exact by the store transaction that appends the
//! record. Compaction keeps exactly the records the index points at, and a key's latest value can
//! be read back at once, on any broker, with read-your-writes (`PartitionReader::latest_by_key`).
//!
//! - A record of a plain or idempotent batch is indexed by its append transaction (`append.rs`).
//! - A record of a transactional batch is indexed when its transaction commits, by the commit
//!   marker's transaction (`markers.rs`), which reads the producer's batches back from the log;
//!   records of aborted or still open transactions are never indexed, so the index shows what a
//!   read_committed consumer would see.
//! - Keys of at most [`MAX_INLINE_KEY`] bytes are part of their store key. Longer keys are
//!   indexed by a 64-bit hash (xxh3): the entries of keys sharing a hash form a chain `0..n` and
//!   each holds its full key, so a collision costs a longer chain, never a wrong answer.
//!
//! Keys and values: `keys::key_index*` and `values::KeyIndexEntry`.

use crate::batch::Batch;
use crate::error::{LogError, LogResult};
use crate::ids::PartitionId;
use crate::keys;
use crate::values::KeyIndexEntry;
use bytes::Bytes;
use kfdb_kv::{RangeOption, Transaction};

/// Longest record key stored inline in its index key; longer ones are chained by hash.
/// (FoundationDB keys may be 10,000 bytes; short index keys keep the index cheap to scan.)
pub const MAX_INLINE_KEY: usize = 2048;

/// What the index needs of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRecord {
    /// Offset of the record relative to its batch's first.
    pub delta: i32,
    /// The record's key (`None`: a record without one, which is never indexed).
    pub key: Option<Bytes>,
    /// The record's timestamp as the producer set it.
    pub timestamp: i64,
    /// A null value: a tombstone.
    pub tombstone: bool,
}

/// The records of `batch` as the index sees them, decompressing them if needed (a walk over the
/// raw records, `records.rs`: no record is decoded further than its key).
pub fn records_of(batch: &Batch) -> LogResult<Vec<IndexedRecord>> {
    let raw = crate::records::produced_records(batch)?;
    Ok(raw
        .into_iter()
        .map(|r| IndexedRecord {
            delta: r.offset_delta,
            key: r.key,
            timestamp: batch.base_timestamp.saturating_add(r.timestamp_delta),
            tombstone: r.tombstone,
        })
        .collect())
}

/// The position of the first record without a key, if any (a compacted topic refuses it).
pub fn first_keyless(records: &[IndexedRecord]) -> Option<i32> {
    records
        .iter()
        .position(|r| r.key.is_none())
        .map(|i| i as i32)
}

/// The partition Kafka's default partitioner picks for a keyed record: the positive part of the
/// key's murmur2 hash (Kafka's seed) modulo the partition count.
pub fn default_partition(key: &[u8], partitions: i32) -> i32 {
    let h = murmur2::murmur2(key, murmur2::KAFKA_SEED) & 0x7fff_ffff;
    (h % partitions.max(1) as u32) as i32
}

/// The latest record of a key, as the key index and the log hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRecord {
    /// The partition it is in.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (the append time on `LogAppendTime` topics).
    pub timestamp: i64,
    /// Its value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The record at `offset` in stored batch bytes (the batch that holds it first), if there.
pub(crate) fn record_at(stored: &Bytes, offset: i64) -> LogResult<Option<KeyedRecord>> {
    let Some(batch) = crate::batch::stored_batches(stored).into_iter().next() else {
        return Ok(None);
    };
    let append_time = batch.is_log_append_time().then_some(batch.max_timestamp);
    // kafka-protocol's decoder decompresses without a bound: check the bound first.
    crate::records::check_decompressed(&batch)?;
    let mut bytes = batch.bytes.clone();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| LogError::corrupt("stored record batch", e))?;
    Ok(sets
        .into_iter()
        .flat_map(|s| s.records)
        .find(|r| r.offset == offset)
        .map(|r| KeyedRecord {
            partition: -1,
            offset,
            timestamp: append_time.unwrap_or(r.timestamp),
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }))
}

/// The hash that chains long keys (stable across processes and versions: xxh3, 64 bits).
fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// How a batch's records enter the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Indexing {
    /// Appended now: each record is the newest of its key.
    Appended,
    /// Committed now, appended earlier: a record enters only where the index holds no newer
    /// record of its key (a plain record, or another transaction's, may have come after it).
    Committed,
}

/// Index the records of a batch stored at `base_offset` in `p` (in `tx`, the transaction that
/// appends or commits them). `append_time` is the batch's append time on `LogAppendTime` topics.
pub(crate) async fn index_batch(
    tx: &Transaction,
    p: PartitionId,
    base_offset: i64,
    records: &[IndexedRecord],
    append_time: Option<i64>,
    how: Indexing,
) -> LogResult<()> {
    for r in records {
        let Some(key) = &r.key else { continue };
        let offset = base_offset + i64::from(r.delta);
        if how == Indexing::Committed
            && get(tx, p, key, false)
                .await?
                .is_some_and(|e| e.offset > offset)
        {
            continue;
        }
        let entry = KeyIndexEntry {
            offset,
            timestamp: append_time.unwrap_or(r.timestamp),
            tombstone: r.tombstone,
            horizon_ms: -1,
            full_key: Vec::new(),
        };
        put(tx, p, key, entry).await?;
    }
    Ok(())
}

/// Point `key`'s entry in `p` at `entry`.
pub(crate) async fn put(
    tx: &Transaction,
    p: PartitionId,
    key: &[u8],
    entry: KeyIndexEntry,
) -> LogResult<()> {
    if key.len() <= MAX_INLINE_KEY {
        tx.set(&keys::key_index(p, key), &entry.encode());
        Ok(())
    } else {
        put_chained(tx, p, key, hash(key), entry).await
    }
}

/// Put a long key's entry into the chain for `h`: over its own entry if it has one, else at the
/// chain's end.
async fn put_chained(
    tx: &Transaction,
    p: PartitionId,
    key: &[u8],
    h: u64,
    entry: KeyIndexEntry,
) -> LogResult<()> {
    let chain = read_chain(tx, p, h, false).await?;
    let n = chain
        .iter()
        .find(|(_, e)| e.full_key == key)
        .map(|(n, _)| *n)
        .unwrap_or_else(|| chain.last().map_or(0, |(n, _)| n + 1));
    let entry = KeyIndexEntry {
        full_key: key.to_vec(),
        ..entry
    };
    tx.set(&keys::key_index_hashed(p, h, n), &entry.encode());
    Ok(())
}

async fn read_chain(
    tx: &Transaction,
    p: PartitionId,
    h: u64,
    snapshot: bool,
) -> LogResult<Vec<(i64, KeyIndexEntry)>> {
    let (b, e) = keys::key_index_chain(p, h);
    let rows = tx.get_range_all(RangeOption::new(b, e), snapshot).await?;
    rows.iter()
        .map(|kv| {
            Ok((
                keys::parse_key_index_hashed(p, h, &kv.key)?,
                KeyIndexEntry::decode(&kv.value)?,
            ))
        })
        .collect()
}

/// Remove `key`'s entry from `p` (compaction dropped its last record, a tombstone).
pub(crate) async fn remove(tx: &Transaction, p: PartitionId, key: &[u8]) -> LogResult<()> {
    if key.len() <= MAX_INLINE_KEY {
        tx.clear(&keys::key_index(p, key));
        return Ok(());
    }
    let h = hash(key);
    if let Some((n, _)) = read_chain(tx, p, h, false)
        .await?
        .into_iter()
        .find(|(_, e)| e.full_key == key)
    {
        tx.clear(&keys::key_index_hashed(p, h, n));
    }
    Ok(())
}

/// `key`'s entry in `p`, if the index has one.
pub(crate) async fn get(
    tx: &Transaction,
    p: PartitionId,
    key: &[u8],
    snapshot: bool,
) -> LogResult<Option<KeyIndexEntry>> {
    if key.len() <= MAX_INLINE_KEY {
        match tx.get(&keys::key_index(p, key), snapshot).await? {
            Some(v) => KeyIndexEntry::decode(&v).map(Some),
            None => Ok(None),
        }
    } else {
        get_chained(tx, p, key, hash(key), snapshot).await
    }
}

async fn get_chained(
    tx: &Transaction,
    p: PartitionId,
    key: &[u8],
    h: u64,
    snapshot: bool,
) -> LogResult<Option<KeyIndexEntry>> {
    Ok(read_chain(tx, p, h, snapshot)
        .await?
        .into_iter()
        .find(|(_, e)| e.full_key == key)
        .map(|(_, e)| KeyIndexEntry {
            full_key: Vec::new(),
            ..e
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kfdb_kv::Database;

    fn entry(offset: i64) -> KeyIndexEntry {
        KeyIndexEntry {
            offset,
            timestamp: 100 + offset,
            tombstone: offset % 2 == 1,
            horizon_ms: -1,
            full_key: Vec::new(),
        }
    }

    #[test]
    fn the_default_partition_is_kafkas() {
        // Kafka's murmur2 of these strings, as signed 32-bit integers (Kafka's UtilsTest).
        for (key, kafka) in [
            ("21", -973_932_308i32),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("abc", 479_470_107),
        ] {
            let ours = murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED) as i32;
            assert_eq!(ours, kafka, "{key}");
            let positive = (kafka & 0x7fff_ffff) as u32;
            assert_eq!(default_partition(key.as_bytes(), 7), (positive % 7) as i32);
        }
    }

    #[test]
    fn reads_keys_tombstones_and_deltas_also_from_compressed_batches() {
        use crate::batch::{NewRecord, new_batch, parse_batches};
        use kafka_protocol::records::Compression;
        let encode = |keys: &[Option<&'static str>], compression| {
            let records: Vec<NewRecord> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| NewRecord {
                    key: k.map(|k| Bytes::from_static(k.as_bytes())),
                    // Every third record a tombstone.
                    value: (i % 3 != 2).then(|| Bytes::from_static(b"v")),
                    headers: Vec::new(),
                    timestamp: 10 + i as i64,
                })
                .collect();
            let mut batches = new_batch(&records, compression).unwrap();
            assert_eq!(batches.len(), 1);
            batches.remove(0)
        };
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let keyed =
                records_of(&encode(&[Some("a"), Some("b"), Some("a")], compression)).unwrap();
            assert_eq!(first_keyless(&keyed), None);
            let seen: Vec<(i32, Option<&[u8]>, i64, bool)> = keyed
                .iter()
                .map(|r| (r.delta, r.key.as_deref(), r.timestamp, r.tombstone))
                .collect();
            assert_eq!(
                seen,
                vec![
                    (0, Some(&b"a"[..]), 10, false),
                    (1, Some(&b"b"[..]), 11, false),
                    (2, Some(&b"a"[..]), 12, true),
                ]
            );
            let second = records_of(&encode(&[Some("a"), None, None], compression)).unwrap();
            assert_eq!(first_keyless(&second), Some(1));
        }
        let bare = parse_batches(&Bytes::from(crate::batch::tests::batch(2, 1, 2)))
            .unwrap()
            .remove(0);
        assert_eq!(first_keyless(&records_of(&bare).unwrap()), Some(0));
    }

    #[tokio::test]
    async fn long_keys_sharing_a_hash_keep_their_own_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_embedded(dir.path(), Default::default()).unwrap();
        let p = PartitionId {
            tid: 1,
            partition: 0,
        };
        let a = vec![b'a'; MAX_INLINE_KEY + 1];
        let b = vec![b'b'; MAX_INLINE_KEY + 5];
        let c = vec![b'c'; MAX_INLINE_KEY + 9];
        let (a2, b2) = (a.clone(), b.clone());
        // Every key forced onto one hash: a collision chain of three.
        db.run(move |tx, _| {
            let (a, b) = (a2.clone(), b2.clone());
            async move {
                put_chained(&tx, p, &a, 7, entry(1)).await?;
                put_chained(&tx, p, &b, 7, entry(2)).await?;
                // Rewritten in the same transaction: replaces its own entry, no new one.
                put_chained(&tx, p, &a, 7, entry(3)).await?;
                Ok::<_, LogError>(())
            }
        })
        .await
        .unwrap();
        db.run(move |tx, _| {
            let (a, b, c) = (a.clone(), b.clone(), c.clone());
            async move {
                assert_eq!(get_chained(&tx, p, &a, 7, true).await?, Some(entry(3)));
                assert_eq!(get_chained(&tx, p, &b, 7, true).await?, Some(entry(2)));
                assert_eq!(get_chained(&tx, p, &c, 7, true).await?, None);
                assert_eq!(read_chain(&tx, p, 7, true).await?.len(), 2);
                // A key of the same hash but another length is still not confused with them.
                assert_eq!(get_chained(&tx, p, &c[..c.len() - 1], 7, true).await?, None);
                Ok::<_, LogError>(())
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn short_and_long_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_embedded(dir.path(), Default::default()).unwrap();
        let p = PartitionId {
            tid: 3,
            partition: 2,
        };
        let long = vec![9u8; 9000];
        db.run(move |tx, _| {
            let long = long.clone();
            async move {
                put(&tx, p, b"k", entry(4)).await?;
                put(&tx, p, b"", entry(5)).await?;
                put(&tx, p, &long, entry(6)).await?;
                assert_eq!(get(&tx, p, b"k", false).await?, Some(entry(4)));
                assert_eq!(get(&tx, p, b"", false).await?, Some(entry(5)));
                assert_eq!(get(&tx, p, &long, false).await?, Some(entry(6)));
                assert_eq!(get(&tx, p, b"missing", false).await?, None);
                Ok::<_, LogError>(())
            }
        })
        .await
        .unwrap();
    }
}
