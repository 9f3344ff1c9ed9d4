//! kfdb-log over the embedded store: appends get dense offsets under concurrency and retries,
//! fetches return the stored bytes, offsets lookups, DeleteRecords, retention, topic lifecycle,
//! restart.

use bytes::BytesMut;
use kafka_protocol::records::Compression;
use kfdb_log::{LogConfig, LogError, NewTopic, PartitionId, TopicId, batch};
use std::collections::BTreeSet;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_offsets_even_through_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (log, db) = open_with_store(dir.path(), LogConfig::default()).await;
    let t = topic(&log, "dense", 2, &[]).await;
    // Every fifth commit conflicts at first: the writer's retry must not skip or repeat offsets.
    db.as_embedded().unwrap().inject_conflicts(10);
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let (log, t) = (log.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let v1 = format!("m{i}-a");
            let v2 = format!("m{i}-b");
            let r = log
                .writers()
                .append(
                    &t,
                    (i % 2) as i32,
                    batch_of(&[v1.as_bytes(), v2.as_bytes()], 1_000),
                )
                .await
                .unwrap();
            ((i % 2) as i32, r.base_offset, i)
        }));
    }
    let mut bases: Vec<(i32, i64, u32)> = Vec::new();
    for t in tasks {
        bases.push(t.await.unwrap());
    }
    for p in 0..2 {
        let mut offs: Vec<i64> = bases.iter().filter(|b| b.0 == p).map(|b| b.1).collect();
        offs.sort();
        let expect: Vec<i64> = (0..20).map(|i| i * 2).collect();
        assert_eq!(
            offs, expect,
            "partition {p}: base offsets dense, two records each"
        );
        let all = fetch_all(&log, &t, p, 0).await;
        assert_eq!(all.len(), 40);
        assert!(
            all.iter().enumerate().all(|(i, (o, _))| *o == i as i64),
            "dense offsets"
        );
        // Each request's records sit at its reported base offset.
        for (_, base, i) in bases.iter().filter(|b| b.0 == p) {
            assert_eq!(all[*base as usize].1, format!("m{i}-a").into_bytes());
            assert_eq!(all[*base as usize + 1].1, format!("m{i}-b").into_bytes());
        }
        let state = log
            .reader()
            .partition_state(PartitionId::new(t.id, p))
            .await
            .unwrap();
        assert_eq!((state.log_start, state.next_offset), (0, 40));
    }
}

#[tokio::test]
async fn big_batches_are_chunked_and_come_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "big", 1, &[]).await;
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    let raw = records(&[&big, b"small"], &[5, 6], Compression::None);
    let stored = batch::parse_batches(&raw).unwrap();
    log.writers().append(&t, 0, stored).await.unwrap();
    let first = log.reader().fetch(&t, 0, 0, 1).await.unwrap();
    assert!(
        first.records.len() > 400_000,
        "the first batch is whole even above max_bytes"
    );
    let f = log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap();
    assert_eq!(
        mask(&f.records.to_bytes()),
        mask(&raw),
        "same bytes; only broker-owned fields differ"
    );
    let recs = decode(f.records.to_bytes());
    assert_eq!(recs[0].1, big);
    assert_eq!(recs[1], (1, b"small".to_vec()));
    // Read back from the store's chunk rows, not the hot-segment cache.
    drop(log);
    let log = open(dir.path()).await;
    let t = log.topics().get("big").await.unwrap().unwrap();
    let again = log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap();
    assert_eq!(
        again.records, f.records,
        "the chunks join to the same bytes"
    );
}

#[tokio::test]
async fn restart_keeps_bytes_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (tid, before) = {
        let log = open(dir.path()).await;
        let t = topic(&log, "durable", 1, &[]).await;
        for i in 0..5 {
            let v = format!("v{i}");
            log.writers()
                .append(&t, 0, batch_of(&[v.as_bytes()], i))
                .await
                .unwrap();
        }
        (
            t.id,
            log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap().records,
        )
    };
    let log = open(dir.path()).await;
    let t = log.topics().get("durable").await.unwrap().unwrap();
    assert_eq!(t.id, tid);
    let after = log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap();
    assert_eq!(after.records, before);
    assert_eq!(after.high_watermark, 5);
    let r = log
        .writers()
        .append(&t, 0, batch_of(&[b"next"], 9))
        .await
        .unwrap();
    assert_eq!(r.base_offset, 5);
}

#[tokio::test]
async fn list_offsets_by_time_and_extremes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "times", 1, &[]).await;
    // Timestamps: batch 0: 100,101  batch 1: 300,301  batch 2: 200 (older than the max so far).
    log.writers()
        .append(&t, 0, batch_of(&[b"a", b"b"], 100))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"c", b"d"], 300))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"e"], 200))
        .await
        .unwrap();
    let at = |ts: i64| {
        let (log, t) = (log.clone(), t.clone());
        async move { log.reader().lookup_offset(&t, 0, ts).await.unwrap() }
    };
    assert_eq!(at(-2).await.offset, 0);
    assert_eq!(at(-1).await.offset, 5);
    assert_eq!((at(0).await.offset, at(0).await.timestamp), (0, 100));
    assert_eq!((at(101).await.offset, at(101).await.timestamp), (1, 101));
    assert_eq!((at(150).await.offset, at(150).await.timestamp), (2, 300));
    assert_eq!(at(302).await.offset, -1);
    let max = at(-3).await;
    assert_eq!((max.offset, max.timestamp), (3, 301));
}

#[tokio::test]
async fn delete_records_and_retention_advance_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "ret", 1, &[("retention.ms", "1000")]).await;
    let now = kfdb_log::now_ms();
    log.writers()
        .append(&t, 0, batch_of(&[b"old1", b"old2"], now - 10_000))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"old3"], now - 9_000))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"new"], now))
        .await
        .unwrap();
    // DeleteRecords to the middle of the first batch: log start moves, the batch stays.
    assert_eq!(log.retention().delete_records(&t, 0, 1).await.unwrap(), 1);
    assert_eq!(
        log.reader().fetch(&t, 0, 0, 100).await.unwrap_err(),
        LogError::OffsetOutOfRange
    );
    assert_eq!(fetch_all(&log, &t, 0, 1).await.first().unwrap().1, b"old2");
    // Retention drops the two old batches whole.
    assert_eq!(log.retention().pass().await.unwrap(), 2);
    let state = log
        .reader()
        .partition_state(PartitionId::new(t.id, 0))
        .await
        .unwrap();
    assert_eq!((state.log_start, state.next_offset), (3, 4));
    assert_eq!(fetch_all(&log, &t, 0, 3).await, vec![(3, b"new".to_vec())]);
    assert!(log.retention().delete_records(&t, 0, 99).await.is_err());
    assert_eq!(log.retention().delete_records(&t, 0, -1).await.unwrap(), 4);
}

#[tokio::test]
async fn size_retention_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let now = kfdb_log::now_ms();
    let t = topic(
        &log,
        "sized",
        1,
        &[("retention.bytes", "200"), ("retention.ms", "-1")],
    )
    .await;
    for i in 0..10 {
        log.writers()
            .append(&t, 0, batch_of(&[&[i as u8; 100]], now))
            .await
            .unwrap();
    }
    log.retention().pass().await.unwrap();
    let state = log
        .reader()
        .partition_state(PartitionId::new(t.id, 0))
        .await
        .unwrap();
    assert!(state.bytes >= 200, "kept {} bytes", state.bytes);
    assert!(state.log_start > 0 && state.log_start < 10);
    assert_eq!(
        fetch_all(&log, &t, 0, state.log_start).await.len() as i64,
        10 - state.log_start
    );
}

#[tokio::test]
async fn topics_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "life", 2, &[]).await;
    log.writers()
        .append(&t, 1, batch_of(&[b"x"], 1))
        .await
        .unwrap();
    let again = log
        .topics()
        .create(
            vec![NewTopic {
                name: "life".into(),
                partitions: 1,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .await;
    assert_eq!(again[0].as_ref().unwrap_err(), &LogError::TopicExists);
    assert!(matches!(
        log.writers().append(&t, 2, batch_of(&[b"x"], 1)).await,
        Err(LogError::UnknownPartition)
    ));
    let grown = log
        .topics()
        .create_partitions("life", 3, false)
        .await
        .unwrap();
    assert_eq!(grown.partitions, 3);
    log.writers()
        .append(&grown, 2, batch_of(&[b"x"], 1))
        .await
        .unwrap();
    assert_eq!(
        log.topics()
            .get_by_uuid(t.uuid)
            .await
            .unwrap()
            .unwrap()
            .name,
        "life"
    );
    log.delete_topic(TopicId::Name("life")).await.unwrap();
    assert!(log.topics().get("life").await.unwrap().is_none());
    assert!(matches!(
        log.writers().append(&grown, 0, batch_of(&[b"x"], 1)).await,
        Err(LogError::UnknownTopic)
    ));
    let fresh = topic(&log, "life", 1, &[]).await;
    assert_ne!(fresh.id, t.id);
    assert_ne!(fresh.uuid, t.uuid);
    assert_eq!(
        log.reader()
            .fetch(&fresh, 0, 0, 100)
            .await
            .unwrap()
            .high_watermark,
        0
    );
    let names: BTreeSet<String> = log
        .topics()
        .list(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, BTreeSet::from(["life".to_string()]));
}

#[tokio::test]
async fn idle_topics_are_not_cached_and_the_cache_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let n = 10_050;
    let specs = (0..n)
        .map(|i| NewTopic {
            name: format!("idle-{i:05}"),
            partitions: 1,
            replication_factor: 1,
            configs: vec![],
        })
        .collect();
    assert!(
        log.topics()
            .create(specs, false)
            .await
            .iter()
            .all(|r| r.is_ok())
    );
    assert_eq!(
        log.topics().cached(),
        0,
        "creating topics caches none of them"
    );
    assert_eq!(
        log.topics().get("idle-00007").await.unwrap().unwrap().name,
        "idle-00007"
    );
    assert_eq!(log.topics().cached(), 1, "a topic in use is cached");
    for i in 0..n {
        assert!(
            log.topics()
                .get(&format!("idle-{i:05}"))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        log.topics().cached() <= 10_000,
        "bounded: {}",
        log.topics().cached()
    );
}

#[tokio::test]
async fn a_request_spanning_several_transactions_answers_each_topic_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let spec = |name: String| NewTopic {
        name,
        partitions: 1,
        replication_factor: 1,
        configs: vec![],
    };
    // Every 100th of the names below exists already.
    let existing: Vec<NewTopic> = (0..1_300)
        .step_by(100)
        .map(|i| spec(format!("t-{i:04}")))
        .collect();
    assert!(
        log.topics()
            .create(existing, false)
            .await
            .iter()
            .all(|r| r.is_ok())
    );
    // 1,300 names (three store transactions), one invalid and one named twice among them.
    let mut specs: Vec<NewTopic> = (0..1_300).map(|i| spec(format!("t-{i:04}"))).collect();
    specs[777].name = "bad/name".into();
    specs[1_111].name = "t-0005".into();
    let results = log.topics().create(specs, false).await;
    assert_eq!(results.len(), 1_300);
    for (i, r) in results.iter().enumerate() {
        match i {
            777 => assert!(matches!(r, Err(LogError::InvalidTopic(_))), "{i}: {r:?}"),
            1_111 => assert!(matches!(r, Err(LogError::InvalidRequest(_))), "{i}: {r:?}"),
            _ if i % 100 == 0 => assert!(matches!(r, Err(LogError::TopicExists)), "{i}: {r:?}"),
            _ => assert_eq!(r.as_ref().unwrap().name, format!("t-{i:04}")),
        }
    }
    let ids: BTreeSet<i64> = results.iter().flatten().map(|m| m.id).collect();
    assert_eq!(
        ids.len(),
        1_300 - 13 - 2,
        "every created topic has its own id"
    );
    assert_eq!(
        log.topics()
            .get("t-1299")
            .await
            .unwrap()
            .unwrap()
            .partitions,
        1
    );
}

#[tokio::test]
async fn bad_input_is_rejected_with_domain_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "small", 1, &[("max.message.bytes", "100")]).await;
    let big = batch_of(&[&[0u8; 200]], 1);
    assert!(matches!(
        log.writers().append(&t, 0, big).await,
        Err(LogError::MessageTooLarge(_))
    ));
    let bad = log
        .topics()
        .create(
            vec![NewTopic {
                name: "bad name".into(),
                partitions: 1,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .await;
    assert!(matches!(bad[0], Err(LogError::InvalidTopic(_))));
    let bad_cfg = log
        .topics()
        .alter_configs(
            "small",
            &[kfdb_log::AlterOp::Set("retention.ms".into(), "x".into())],
            false,
            false,
        )
        .await;
    assert!(matches!(bad_cfg, Err(LogError::InvalidConfig(_))));
}

#[tokio::test]
async fn compressed_batches_pass_through_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "zipped", 1, &[]).await;
    for c in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let raw = records(&[b"one", b"two"], &[1, 2], c);
        let r = log
            .writers()
            .append(&t, 0, batch::parse_batches(&raw).unwrap())
            .await
            .unwrap();
        let f = log
            .reader()
            .fetch(&t, 0, r.base_offset, 1 << 20)
            .await
            .unwrap();
        assert_eq!(mask(&f.records.to_bytes()), mask(&raw), "{c:?}");
        let recs = decode(f.records.to_bytes());
        assert_eq!(recs[1], (r.base_offset + 1, b"two".to_vec()));
    }
}

#[tokio::test]
async fn idempotent_producers_never_duplicate_or_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "idem", 1, &[]).await;
    let pid = log.producers().allocate_id().await.unwrap();
    let other = log.producers().allocate_id().await.unwrap();
    assert_ne!(pid, other, "fresh ids");
    let first = log
        .writers()
        .append(&t, 0, idem(&[b"a", b"b", b"c"], pid, 0, 0))
        .await
        .unwrap();
    assert_eq!(first.base_offset, 0);
    // A retry of the same batch is answered with its original offset and appends nothing.
    let retry = log
        .writers()
        .append(&t, 0, idem(&[b"a", b"b", b"c"], pid, 0, 0))
        .await
        .unwrap();
    assert_eq!(retry.base_offset, 0);
    assert_eq!(
        log.reader()
            .partition_state(PartitionId::new(t.id, 0))
            .await
            .unwrap()
            .next_offset,
        3
    );
    let next = log
        .writers()
        .append(&t, 0, idem(&[b"d"], pid, 0, 3))
        .await
        .unwrap();
    assert_eq!(next.base_offset, 3);
    assert!(matches!(
        log.writers()
            .append(&t, 0, idem(&[b"gap"], pid, 0, 9))
            .await,
        Err(LogError::OutOfOrderSequence(_))
    ));
    // A producer the partition does not know (new, or expired) may start at any sequence.
    assert_eq!(
        log.writers()
            .append(&t, 0, idem(&[b"x"], other, 0, 5))
            .await
            .unwrap()
            .base_offset,
        4
    );
    // A new epoch starts at sequence 0 and fences the old one.
    assert_eq!(
        log.writers()
            .append(&t, 0, idem(&[b"e"], pid, 1, 0))
            .await
            .unwrap()
            .base_offset,
        5
    );
    assert_eq!(
        log.writers()
            .append(&t, 0, idem(&[b"late"], pid, 0, 4))
            .await
            .unwrap_err(),
        LogError::InvalidProducerEpoch
    );
    let values: Vec<Vec<u8>> = fetch_all(&log, &t, 0, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        values,
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"d".to_vec(),
            b"x".to_vec(),
            b"e".to_vec()
        ]
    );
    // State survives a restart: the retry of the last batch is still recognised.
    drop(log);
    let log = open(dir.path()).await;
    let t = log.topics().get("idem").await.unwrap().unwrap();
    assert_eq!(
        log.writers()
            .append(&t, 0, idem(&[b"e"], pid, 1, 0))
            .await
            .unwrap()
            .base_offset,
        5
    );
    assert_eq!(
        log.reader()
            .partition_state(PartitionId::new(t.id, 0))
            .await
            .unwrap()
            .next_offset,
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_under_conflicts_stay_dense() {
    let dir = tempfile::tempdir().unwrap();
    let (log, db) = open_with_store(dir.path(), LogConfig::default()).await;
    let t = topic(&log, "idem-conflicts", 1, &[]).await;
    let pid = log.producers().allocate_id().await.unwrap();
    db.as_embedded().unwrap().inject_conflicts(7);
    // Each batch is sent twice concurrently (a client retry racing its original).
    for seq in 0..20 {
        let v = format!("m{seq}");
        let (a, b) = tokio::join!(
            log.writers()
                .append(&t, 0, idem(&[v.as_bytes()], pid, 0, seq)),
            log.writers()
                .append(&t, 0, idem(&[v.as_bytes()], pid, 0, seq)),
        );
        assert_eq!(a.unwrap().base_offset, i64::from(seq));
        assert_eq!(b.unwrap().base_offset, i64::from(seq));
    }
    let all = fetch_all(&log, &t, 0, 0).await;
    assert_eq!(all.len(), 20);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, (o, v))| *o == i as i64 && *v == format!("m{i}").into_bytes())
    );
}

#[tokio::test]
async fn the_hot_cache_answers_exactly_what_the_store_does() {
    let dir = tempfile::tempdir().unwrap();
    let small_cache = LogConfig {
        hot_cache_bytes: 4_000,
        ..LogConfig::default()
    };
    let log = open_with(dir.path(), small_cache).await;
    let t = topic(&log, "cached", 2, &[]).await;
    for i in 0..40u8 {
        let v = vec![i; 50 + usize::from(i) * 7];
        log.writers()
            .append(&t, i32::from(i % 2), batch_of(&[&v, b"x"], i64::from(i)))
            .await
            .unwrap();
    }
    log.retention().delete_records(&t, 1, 10).await.unwrap();
    let mut cached = Vec::new();
    for p in 0..2 {
        for offset in [0, 5, 10, 31, 38, 39, 40, 41] {
            for max in [1, 100, 1_000, 100_000] {
                cached.push(
                    log.reader()
                        .fetch(&t, p, offset, max)
                        .await
                        .map(|f| (f.records, f.high_watermark, f.log_start_offset)),
                );
            }
        }
    }
    let stats = log.tails().cache_stats();
    assert!(
        stats.hits > 0 && stats.misses > 0,
        "both paths exercised: {stats:?}"
    );
    assert!(stats.bytes <= 4_000);
    drop(log);
    let uncached = open_with(
        dir.path(),
        LogConfig {
            hot_cache_bytes: 0,
            ..LogConfig::default()
        },
    )
    .await;
    let t = uncached.topics().get("cached").await.unwrap().unwrap();
    let mut stored = Vec::new();
    for p in 0..2 {
        for offset in [0, 5, 10, 31, 38, 39, 40, 41] {
            for max in [1, 100, 1_000, 100_000] {
                stored.push(
                    uncached
                        .reader()
                        .fetch(&t, p, offset, max)
                        .await
                        .map(|f| (f.records, f.high_watermark, f.log_start_offset)),
                );
            }
        }
    }
    assert_eq!(cached, stored);
    assert_eq!(uncached.tails().cache_stats().hits, 0);
}

#[tokio::test]
async fn one_request_may_carry_several_batches_of_one_producer() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "multi", 1, &[]).await;
    let pid = log.producers().allocate_id().await.unwrap();
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&producer_records(
        &[b"a", b"b"],
        &[0, 1],
        Compression::None,
        (pid, 0, 0),
    ));
    raw.extend_from_slice(&producer_records(
        &[b"c", b"d"],
        &[2, 3],
        Compression::None,
        (pid, 0, 2),
    ));
    let batches = batch::parse_batches(&raw.freeze()).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        log.writers()
            .append(&t, 0, batches.clone())
            .await
            .unwrap()
            .base_offset,
        0
    );
    // The same request again is a duplicate as a whole.
    assert_eq!(
        log.writers()
            .append(&t, 0, batches)
            .await
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(
        log.writers()
            .append(&t, 0, idem(&[b"e"], pid, 0, 4))
            .await
            .unwrap()
            .base_offset,
        4
    );
    assert_eq!(
        log.reader()
            .partition_state(PartitionId::new(t.id, 0))
            .await
            .unwrap()
            .next_offset,
        5
    );
}

#[tokio::test]
async fn idle_partitions_keep_no_writer_or_watch_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "many", 50, &[]).await;
    for p in 0..50 {
        let rx = log.tails().watch(PartitionId::new(t.id, p));
        log.writers()
            .append(&t, p, batch_of(&[b"v"], 1))
            .await
            .unwrap();
        drop(rx);
        log.tails().unwatch(PartitionId::new(t.id, p));
    }
    assert_eq!(log.tails().watched(), 0);
    // A writer retires right after answering its last append.
    for _ in 0..1_000 {
        if log.writers().active() == 0 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(
        log.writers().active(),
        0,
        "writers of idle partitions retired"
    );
    // And a partition written again gets a new one that works.
    let r = log
        .writers()
        .append(&t, 3, batch_of(&[b"w"], 2))
        .await
        .unwrap();
    assert_eq!(r.base_offset, 1);
}

/// Renaming moves the name only: the records, the topic id and the group's committed offsets
/// are the ones the old name had; the old name is free, a taken name is refused.
#[tokio::test]
async fn rename_keeps_the_data_ids_and_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "before", 1, &[]).await;
    topic(&log, "taken", 1, &[]).await;
    log.writers()
        .append(&t, 0, batch_of(&[b"one", b"two"], 1))
        .await
        .unwrap();
    let p = kfdb_log::PartitionId::new(t.id, 0);
    log.groups()
        .commit_offsets("g", &[(p, kfdb_log::committed(1, -1, String::new()))])
        .await
        .unwrap();
    assert!(matches!(
        log.topics().rename("before", "taken").await,
        Err(LogError::TopicExists)
    ));
    assert!(matches!(
        log.topics().rename("missing", "x").await,
        Err(LogError::UnknownTopic)
    ));
    assert!(matches!(
        log.topics().rename("before", "bad/name").await,
        Err(LogError::InvalidTopic(_))
    ));
    let renamed = log.topics().rename("before", "after").await.unwrap();
    assert_eq!((renamed.id, renamed.uuid), (t.id, t.uuid));
    assert!(log.topics().get("before").await.unwrap().is_none());
    let found = log.topics().get("after").await.unwrap().unwrap();
    assert_eq!(found.id, t.id);
    let values: Vec<Vec<u8>> = fetch_all(&log, &found, 0, 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec![b"one".to_vec(), b"two".to_vec()]);
    let offsets = log.groups().fetch_offsets("g", None).await.unwrap();
    assert_eq!(offsets.len(), 1);
    assert_eq!((offsets[0].0, offsets[0].1.offset), (p, 1));
    // The old name can be used again, for a new topic.
    let again = topic(&log, "before", 1, &[]).await;
    assert_ne!(again.id, t.id);
}

#[tokio::test]
async fn client_quotas_are_stored_by_entity_and_survive_a_restart() {
    use kfdb_log::{EntityName, QuotaEntity};
    let dir = tempfile::tempdir().unwrap();
    let alice = QuotaEntity {
        user: Some(EntityName::Named("alice".into())),
        client_id: Some(EntityName::Default),
        ip: None,
    };
    let any_ip = QuotaEntity {
        ip: Some(EntityName::Default),
        ..Default::default()
    };
    {
        let log = common::open(dir.path()).await;
        let quotas = log.quotas();
        let (before, none) = quotas.list().await.unwrap();
        assert!(none.is_empty());
        quotas
            .alter(&[
                (
                    alice.clone(),
                    vec![
                        ("producer_byte_rate".into(), Some(1024.0)),
                        ("request_percentage".into(), Some(12.5)),
                    ],
                ),
                (
                    any_ip.clone(),
                    vec![("connection_creation_rate".into(), Some(3.0))],
                ),
            ])
            .await
            .unwrap();
        assert_ne!(quotas.version().await.unwrap(), before);
        // Removing one key keeps the other; removing an absent key does nothing.
        quotas
            .alter(&[(
                alice.clone(),
                vec![
                    ("producer_byte_rate".into(), None),
                    ("consumer_byte_rate".into(), None),
                ],
            )])
            .await
            .unwrap();
    }
    let log = common::open(dir.path()).await;
    let (_, listed) = log.quotas().list().await.unwrap();
    let mut listed = listed;
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (alice, vec![("request_percentage".to_string(), 12.5)]),
        (any_ip, vec![("connection_creation_rate".to_string(), 3.0)]),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, want);
}

/// Batches of exactly one and two chunk rows (90,000 bytes each), and one over several chunks on
/// a `LogAppendTime` topic (its CRC recomputed over the stamped header and the unchanged body),
/// come back from the hot-segment cache and, after a restart, from the store: same records, valid
/// CRCs, the append time stamped.
#[tokio::test]
async fn batches_at_chunk_boundaries_and_append_time_batches_come_back() {
    // A one-record batch of exactly `size` bytes (the value's varint length may shift the size by
    // a byte or two: adjust until it fits).
    fn batch_of_size(size: usize) -> (bytes::Bytes, Vec<u8>) {
        let mut value_len = size - 80;
        loop {
            let value: Vec<u8> = (0..value_len).map(|i| (i % 253) as u8).collect();
            let raw = records(&[&value], &[5], Compression::None);
            match raw.len().cmp(&size) {
                std::cmp::Ordering::Equal => return (raw, value),
                std::cmp::Ordering::Less => value_len += 1,
                std::cmp::Ordering::Greater => value_len -= 1,
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let plain = topic(&log, "edges", 1, &[]).await;
    let stamped = topic(
        &log,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let mut values = Vec::new();
    for size in [90_000, 180_000] {
        let (raw, value) = batch_of_size(size);
        let stored = batch::parse_batches(&raw).unwrap();
        log.writers().append(&plain, 0, stored).await.unwrap();
        values.push(value);
    }
    let big: Vec<u8> = (0..250_000u32).map(|i| (i % 241) as u8).collect();
    let raw = records(&[&big, b"tail"], &[5, 6], Compression::None);
    log.writers()
        .append(&stamped, 0, batch::parse_batches(&raw).unwrap())
        .await
        .unwrap();
    check_edges(&log, &plain, &stamped, &values, &big).await;
    drop(log);
    let log = open(dir.path()).await;
    let plain = log.topics().get("edges").await.unwrap().unwrap();
    let stamped = log.topics().get("stamped").await.unwrap().unwrap();
    check_edges(&log, &plain, &stamped, &values, &big).await;
}

async fn check_edges(
    log: &kfdb_log::Log,
    plain: &kfdb_log::TopicMeta,
    stamped: &kfdb_log::TopicMeta,
    values: &[Vec<u8>],
    big: &[u8],
) {
    let f = log.reader().fetch(plain, 0, 0, 1 << 20).await.unwrap();
    let bytes = f.records.to_bytes();
    assert_eq!(bytes.len(), 270_000);
    let got = decode(bytes);
    assert_eq!(got, vec![(0, values[0].clone()), (1, values[1].clone())]);
    let f = log.reader().fetch(stamped, 0, 0, 1 << 20).await.unwrap();
    let bytes = f.records.to_bytes();
    let parsed = batch::parse_batches(&bytes).expect("CRC valid after stamping");
    assert!(parsed[0].is_log_append_time());
    assert!(
        parsed[0].max_timestamp > 1_000_000,
        "the append time, not the client's"
    );
    assert_eq!(
        decode(bytes),
        vec![(0, big.to_vec()), (1, b"tail".to_vec())]
    );
}
