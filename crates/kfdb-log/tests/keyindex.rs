//! The key index against the log: after every append the latest record of each key, as the index
//! answers it, is the one a scan of the log finds (random keys, values, tombstones, long keys,
//! compression, across a restart); transactional records count once committed, never when
//! aborted; topics without an index refuse lookups.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use kfdb_log::{Log, LogError, MAX_INLINE_KEY, PartitionId, TopicMeta, TxnAddition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// What the index answers for `key`: `(offset, value)`, the value `None` for a tombstone.
async fn lookup(log: &Log, t: &TopicMeta, key: &[u8]) -> Option<(i64, Option<Vec<u8>>)> {
    log.reader()
        .latest_by_key(t, 0, key)
        .await
        .unwrap()
        .map(|r| (r.offset, r.value.map(|v| v.to_vec())))
}

/// The latest record of every key, from a scan of the whole log (what compaction must keep).
async fn scan(log: &Log, t: &TopicMeta) -> HashMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut latest = HashMap::new();
    let mut offset = 0;
    loop {
        let f = log.reader().fetch(t, 0, offset, 1 << 20).await.unwrap();
        if f.records.is_empty() {
            return latest;
        }
        let mut bytes = f.records.to_bytes();
        for r in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
        {
            offset = r.offset + 1;
            if let Some(k) = r.key {
                latest.insert(k.to_vec(), (r.offset, r.value.map(|v| v.to_vec())));
            }
        }
    }
}

async fn agree(log: &Log, t: &TopicMeta, pool: &[Vec<u8>], seed: u64, step: usize) {
    let latest = scan(log, t).await;
    for k in pool {
        assert_eq!(
            lookup(log, t, k).await,
            latest.get(k).cloned(),
            "seed {seed}, step {step}, key of {} bytes",
            k.len()
        );
    }
}

#[tokio::test]
async fn the_index_agrees_with_the_log_after_every_append_and_a_restart() {
    let seed: u64 = std::env::var("KFDB_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (KFDB_TEST_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut pool: Vec<Vec<u8>> = (0..12).map(|i| format!("key-{i}").into_bytes()).collect();
    pool.push(Vec::new());
    pool.push(vec![b'x'; MAX_INLINE_KEY]);
    pool.push(vec![b'x'; MAX_INLINE_KEY + 1]);
    pool.push(vec![b'y'; 5_000]);
    {
        let log = open(dir.path()).await;
        let t = topic(&log, "table", 1, &[("cleanup.policy", "compact")]).await;
        for step in 0..60 {
            let n = rng.random_range(1..=6);
            let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
                .map(|_| {
                    let k = pool[rng.random_range(0..pool.len())].clone();
                    let v = (!rng.random_bool(0.2)).then(|| {
                        let len = rng.random_range(0..40);
                        (0..len).map(|_| rng.random::<u8>()).collect()
                    });
                    (k, v)
                })
                .collect();
            let records: Vec<KeyValue<'_>> = owned
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                .collect();
            let compression =
                [Compression::None, Compression::Gzip, Compression::Zstd][rng.random_range(0..3)];
            log.writers()
                .append(&t, 0, keyed(&records, compression, (-1, -1, -1), false))
                .await
                .unwrap();
            agree(&log, &t, &pool, seed, step).await;
        }
    }
    let log = open(dir.path()).await;
    let t = log.topics().get("table").await.unwrap().unwrap();
    agree(&log, &t, &pool, seed, usize::MAX).await;
}

#[tokio::test]
async fn transactional_records_count_once_committed_and_never_when_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "txt", 1, &[("cleanup.policy", "compact")]).await;
    let p = [PartitionId::new(t.id, 0)];
    log.writers()
        .append(
            &t,
            0,
            plain(&[(Some(b"a"), Some(b"a0")), (Some(b"b"), Some(b"b0"))]),
        )
        .await
        .unwrap();
    let (pid, epoch) = log.txns().init_producer("app", 60_000, None).await.unwrap();

    log.txns()
        .add("app", pid, epoch, TxnAddition::Partitions(&p))
        .await
        .unwrap();
    let one = [(Some(&b"a"[..]), Some(&b"a1"[..]))];
    log.writers()
        .append(&t, 0, keyed(&one, Compression::None, (pid, epoch, 0), true))
        .await
        .unwrap();
    assert_eq!(
        lookup(&log, &t, b"a").await,
        Some((0, Some(b"a0".to_vec()))),
        "an open transaction's record is not the latest yet"
    );
    log.txns().end("app", pid, epoch, true).await.unwrap();
    assert_eq!(
        lookup(&log, &t, b"a").await,
        Some((2, Some(b"a1".to_vec())))
    );

    log.txns()
        .add("app", pid, epoch, TxnAddition::Partitions(&p))
        .await
        .unwrap();
    let two = [(Some(&b"b"[..]), None), (Some(&b"c"[..]), Some(&b"c1"[..]))];
    log.writers()
        .append(&t, 0, keyed(&two, Compression::Gzip, (pid, epoch, 1), true))
        .await
        .unwrap();
    // A plain record of another producer interleaved with the transaction is indexed at once.
    log.writers()
        .append(&t, 0, plain(&[(Some(b"d"), Some(b"d0"))]))
        .await
        .unwrap();
    assert_eq!(
        lookup(&log, &t, b"d").await,
        Some((6, Some(b"d0".to_vec())))
    );
    log.txns().end("app", pid, epoch, false).await.unwrap();
    assert_eq!(
        lookup(&log, &t, b"b").await,
        Some((1, Some(b"b0".to_vec()))),
        "an aborted tombstone does not count"
    );
    assert_eq!(lookup(&log, &t, b"c").await, None);

    // A transaction committing after a later plain record of the same key does not take the key
    // back to its older record.
    log.txns()
        .add("app", pid, epoch, TxnAddition::Partitions(&p))
        .await
        .unwrap();
    let old = [(Some(&b"e"[..]), Some(&b"in-txn"[..]))];
    let r = log
        .writers()
        .append(&t, 0, keyed(&old, Compression::None, (pid, epoch, 3), true))
        .await
        .unwrap();
    let later = log
        .writers()
        .append(&t, 0, plain(&[(Some(b"e"), Some(b"plain-later"))]))
        .await
        .unwrap();
    assert!(later.base_offset > r.base_offset);
    log.txns().end("app", pid, epoch, true).await.unwrap();
    assert_eq!(
        lookup(&log, &t, b"e").await,
        Some((later.base_offset, Some(b"plain-later".to_vec())))
    );

    // An idempotent producer's records are indexed with their append.
    let (ipid, iepoch) = (log.producers().allocate_id().await.unwrap(), 0);
    let three = [(Some(&b"c"[..]), Some(&b"c2"[..]))];
    let r = log
        .writers()
        .append(
            &t,
            0,
            keyed(&three, Compression::Lz4, (ipid, iepoch, 0), false),
        )
        .await
        .unwrap();
    assert_eq!(
        lookup(&log, &t, b"c").await,
        Some((r.base_offset, Some(b"c2".to_vec())))
    );
}

#[tokio::test]
async fn lookups_follow_the_topic_config_and_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let plain_topic = topic(&log, "events", 1, &[]).await;
    assert!(matches!(
        log.reader().latest_by_key(&plain_topic, 0, b"a").await,
        Err(LogError::InvalidRequest(_))
    ));
    // Opt-in on a deleting topic: keyless records are accepted there, and not indexed.
    let t = topic(&log, "indexed", 2, &[("kfdb.key.index", "true")]).await;
    log.writers()
        .append(
            &t,
            0,
            plain(&[(None, Some(b"x")), (Some(b"a"), Some(b"a0"))]),
        )
        .await
        .unwrap();
    assert_eq!(
        lookup(&log, &t, b"a").await,
        Some((1, Some(b"a0".to_vec())))
    );
    let r = log
        .reader()
        .latest_by_key(&t, 0, b"a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.partition, r.timestamp), (0, 1_001));
    assert_eq!(log.reader().latest_by_key(&t, 1, b"a").await.unwrap(), None);
    assert!(matches!(
        log.reader().latest_by_key(&t, 2, b"a").await,
        Err(LogError::UnknownPartition)
    ));
    // Records below the log start are gone for lookups too.
    log.retention().delete_records(&t, 0, 2).await.unwrap();
    assert_eq!(lookup(&log, &t, b"a").await, None);
}

#[tokio::test]
async fn conditional_appends_check_inside_their_transaction() {
    use kfdb_log::Condition;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "stream", 1, &[("kfdb.key.index", "true")]).await;
    let w = log.writers();
    let r = w
        .append_if(
            &t,
            0,
            plain(&[(Some(b"order-1"), Some(b"created"))]),
            Condition::EndOffset(0),
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 0);
    assert_eq!(
        w.append_if(
            &t,
            0,
            plain(&[(Some(b"x"), Some(b"y"))]),
            Condition::EndOffset(0)
        )
        .await,
        Err(LogError::ConditionFailed { current: 1 })
    );
    // Two appends expecting the same end offset, racing: exactly one lands.
    let (a, b) = tokio::join!(
        w.append_if(
            &t,
            0,
            plain(&[(Some(b"order-1"), Some(b"paid"))]),
            Condition::EndOffset(1)
        ),
        w.append_if(
            &t,
            0,
            plain(&[(Some(b"order-1"), Some(b"cancelled"))]),
            Condition::EndOffset(1)
        ),
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    // By key: the latest offset of order-1 is 1; of a new key, -1 (none).
    let key = |k: &'static [u8], offset| Condition::KeyOffset {
        key: bytes::Bytes::from_static(k),
        offset,
    };
    assert_eq!(
        w.append_if(
            &t,
            0,
            plain(&[(Some(b"order-1"), Some(b"late"))]),
            key(b"order-1", 0)
        )
        .await,
        Err(LogError::ConditionFailed { current: 1 })
    );
    let r = w
        .append_if(
            &t,
            0,
            plain(&[(Some(b"order-1"), Some(b"shipped"))]),
            key(b"order-1", 1),
        )
        .await
        .unwrap();
    assert_eq!(r.base_offset, 2);
    w.append_if(
        &t,
        0,
        plain(&[(Some(b"order-2"), Some(b"created"))]),
        key(b"order-2", -1),
    )
    .await
    .unwrap();
    assert_eq!(
        lookup(&log, &t, b"order-1").await,
        Some((2, Some(b"shipped".to_vec())))
    );
    // Without a key index, a key condition is refused before anything is queued.
    let plain_topic = topic(&log, "events", 1, &[]).await;
    assert!(matches!(
        w.append_if(
            &plain_topic,
            0,
            plain(&[(Some(b"k"), Some(b"v"))]),
            key(b"k", -1)
        )
        .await,
        Err(LogError::InvalidRequest(_))
    ));
}
