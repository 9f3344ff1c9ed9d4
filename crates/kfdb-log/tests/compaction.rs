//! Compaction against the log: what a consumer reads from the beginning afterwards is the latest
//! record of every key (plus the untouched head), offsets increasing with gaps; tombstones go
//! after `delete.retention.ms`; aborted records and old markers go; idempotent batches keep their
//! producer fields; records newer than `min.compaction.lag.ms` stay; turning compaction on for
//! a topic with data loses no key's latest record.

mod common;

use common::*;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kfdb_log::{AlterOp, Isolation, Log, PartitionId, TopicMeta, TxnAddition};
use std::collections::HashMap;
use std::sync::Arc;

/// A record as read back: offset, key, value, producer id.
type Read = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record from the beginning: (offset, key, value), with the batch's producer id.
async fn read_all(log: &Log, t: &TopicMeta) -> Vec<Read> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = log.reader().fetch(t, 0, offset, 1 << 20).await.unwrap();
        if f.records.is_empty() {
            return out;
        }
        // Every stored batch is still valid (CRC, lengths) as a client checks it.
        let mut check = f.records.to_bytes();
        let batches = RecordBatchDecoder::decode_all(&mut check).unwrap();
        for set in batches {
            for r in set.records {
                offset = r.offset + 1;
                out.push((
                    r.offset,
                    r.key.map(|k| k.to_vec()),
                    r.value.map(|v| v.to_vec()),
                    r.producer_id,
                ));
            }
        }
    }
}

fn latest(records: &[Read]) -> HashMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut out = HashMap::new();
    for (o, k, v, _) in records {
        if let Some(k) = k {
            out.insert(k.clone(), (*o, v.clone()));
        }
    }
    out
}

async fn compacted_topic(log: &Log, name: &str, extra: &[(&str, &str)]) -> Arc<TopicMeta> {
    let mut configs = vec![("cleanup.policy", "compact")];
    configs.extend_from_slice(extra);
    topic(log, name, 1, &configs).await
}

#[tokio::test]
async fn a_compacted_log_keeps_the_latest_record_of_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = compacted_topic(&log, "table", &[]).await;
    for round in 0..20u8 {
        let values: Vec<Vec<u8>> = (0..5u8).map(|k| vec![round, k]).collect();
        let keys: Vec<Vec<u8>> = (0..5u8)
            .map(|k| format!("k{}", (k + round) % 7).into_bytes())
            .collect();
        let records: Vec<KeyValue<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        let compression =
            [Compression::None, Compression::Gzip, Compression::Zstd][round as usize % 3];
        log.writers()
            .append(&t, 0, keyed(&records, compression, (-1, -1, -1), false))
            .await
            .unwrap();
    }
    let before = read_all(&log, &t).await;
    assert_eq!(before.len(), 100);
    let done = log.compactor().compact(&t, 0).await.unwrap();
    assert!(done.ran);
    let after = read_all(&log, &t).await;
    assert_eq!(
        latest(&after),
        latest(&before),
        "every key keeps its latest record"
    );
    let last_batch_base = 95;
    for (o, k, _, _) in &after {
        let newest = latest(&before)[k.as_ref().unwrap()].0;
        assert!(
            *o == newest || *o >= last_batch_base,
            "offset {o} is neither its key's latest ({newest}) nor in the untouched last batch"
        );
    }
    assert!(
        after.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase"
    );
    let mut kept: std::collections::BTreeSet<i64> =
        latest(&before).values().map(|(o, _)| *o).collect();
    kept.extend(last_batch_base..100);
    let offsets: Vec<i64> = after.iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        kept.into_iter().collect::<Vec<_>>(),
        "7 keys' latest, the last batch whole"
    );
    assert_eq!(done.records_removed as usize, before.len() - after.len());
    let state = log
        .reader()
        .partition_state(PartitionId::new(t.id, 0))
        .await
        .unwrap();
    assert_eq!(
        (state.log_start, state.next_offset),
        (0, 100),
        "offsets keep their gaps"
    );
    // Nothing written since: the next look does not run.
    assert!(!log.compactor().compact(&t, 0).await.unwrap().ran);
    // A fetch inside a gap gets the next records.
    let f = log.reader().fetch(&t, 0, 1, 1 << 20).await.unwrap();
    let first = decode(f.records.to_bytes())[0].0;
    assert!(first > 1 && first == after.iter().find(|r| r.0 >= 1).unwrap().0);
    // The lookups still agree, and the log survives a restart as compacted.
    for (k, (o, v)) in latest(&after) {
        let r = log
            .reader()
            .latest_by_key(&t, 0, &k)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.offset, r.value.map(|v| v.to_vec())), (o, v));
    }
    drop(log);
    let log = reopen(dir.path()).await;
    let t = log.topics().get("table").await.unwrap().unwrap();
    assert_eq!(read_all(&log, &t).await, after);
}

#[tokio::test]
async fn tombstones_go_after_delete_retention_and_take_their_key_along() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = compacted_topic(
        &log,
        "tomb",
        &[
            ("delete.retention.ms", "0"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    log.writers()
        .append(
            &t,
            0,
            plain(&[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"1"))]),
        )
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, plain(&[(Some(b"a"), None)]))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, plain(&[(Some(b"c"), Some(b"head"))]))
        .await
        .unwrap();
    log.compactor().compact(&t, 0).await.unwrap();
    let once: Vec<(i64, Option<Vec<u8>>)> = read_all(&log, &t)
        .await
        .into_iter()
        .map(|(o, _, v, _)| (o, v))
        .collect();
    assert_eq!(
        once,
        vec![
            (1, Some(b"1".to_vec())),
            (2, None),
            (3, Some(b"head".to_vec()))
        ],
        "the first pass keeps the tombstone (its delete horizon starts)"
    );
    // No new writes: the passed delete horizon (0 ms) alone makes the partition due.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(log.compactor().compact(&t, 0).await.unwrap().ran);
    let twice: Vec<i64> = read_all(&log, &t).await.into_iter().map(|r| r.0).collect();
    assert_eq!(twice, vec![1, 3], "the tombstone is gone");
    assert!(
        !log.compactor().compact(&t, 0).await.unwrap().ran,
        "then clean"
    );
    assert!(
        log.reader()
            .latest_by_key(&t, 0, b"a")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn aborted_records_and_old_markers_go_idempotent_batches_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = compacted_topic(&log, "txc", &[("delete.retention.ms", "0")]).await;
    let p = [PartitionId::new(t.id, 0)];
    let (pid, epoch) = log.txns().init_producer("app", 60_000, None).await.unwrap();
    // Committed: k1=c (offset 0), marker 1.
    log.txns()
        .add("app", pid, epoch, TxnAddition::Partitions(&p))
        .await
        .unwrap();
    let c = [(Some(&b"k1"[..]), Some(&b"c"[..]))];
    log.writers()
        .append(&t, 0, keyed(&c, Compression::None, (pid, epoch, 0), true))
        .await
        .unwrap();
    log.txns().end("app", pid, epoch, true).await.unwrap();
    // Aborted: k1=x, k2=x (2, 3), marker 4.
    log.txns()
        .add("app", pid, epoch, TxnAddition::Partitions(&p))
        .await
        .unwrap();
    let x = [
        (Some(&b"k1"[..]), Some(&b"x"[..])),
        (Some(&b"k2"[..]), Some(&b"x"[..])),
    ];
    log.writers()
        .append(&t, 0, keyed(&x, Compression::Snappy, (pid, epoch, 1), true))
        .await
        .unwrap();
    log.txns().end("app", pid, epoch, false).await.unwrap();
    // An idempotent producer: k3=i0, k3=i1, k4=i (5..8) in one batch, then the head.
    let ipid = log.producers().allocate_id().await.unwrap();
    let i = [
        (Some(&b"k3"[..]), Some(&b"i0"[..])),
        (Some(&b"k3"[..]), Some(&b"i1"[..])),
        (Some(&b"k4"[..]), Some(&b"i"[..])),
    ];
    log.writers()
        .append(&t, 0, keyed(&i, Compression::Lz4, (ipid, 0, 0), false))
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, plain(&[(Some(b"k5"), Some(b"head"))]))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    log.compactor().compact(&t, 0).await.unwrap();
    let after: Vec<(i64, Vec<u8>, i64)> = read_all(&log, &t)
        .await
        .into_iter()
        .map(|(o, _, v, pid)| (o, v.unwrap_or_default(), pid))
        .collect();
    assert_eq!(
        after,
        vec![
            (0, b"c".to_vec(), pid),
            (6, b"i1".to_vec(), ipid),
            (7, b"i".to_vec(), ipid),
            (8, b"head".to_vec(), -1),
        ],
        "aborted records and both markers gone, the idempotent batch keeps its producer"
    );
    let committed = log
        .reader()
        .fetch_isolated(&t, 0, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(decode(committed.records.to_bytes()).len(), 4);
    // The idempotent producer's retry of its compacted batch is still recognised.
    let retry = log
        .writers()
        .append(&t, 0, keyed(&i, Compression::Lz4, (ipid, 0, 0), false))
        .await
        .unwrap();
    assert_eq!(
        retry.base_offset, 5,
        "a duplicate is answered with its original offset"
    );
}

#[tokio::test]
async fn young_records_and_the_dirty_ratio_hold_compaction_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    // Stamped with the append time, i.e. now: younger than the lag.
    let lagged = compacted_topic(
        &log,
        "lag",
        &[
            ("min.compaction.lag.ms", "3600000"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    for _ in 0..3 {
        log.writers()
            .append(&lagged, 0, plain(&[(Some(b"k"), Some(b"v"))]))
            .await
            .unwrap();
    }
    // Records stamped now are younger than the lag: nothing is touched.
    log.compactor().compact(&lagged, 0).await.unwrap();
    assert_eq!(read_all(&log, &lagged).await.len(), 3);

    let lazy = compacted_topic(&log, "ratio", &[("min.cleanable.dirty.ratio", "0.5")]).await;
    for i in 0..10u8 {
        let k = [b'k', i];
        log.writers()
            .append(&lazy, 0, plain(&[(Some(&k), Some(b"v"))]))
            .await
            .unwrap();
    }
    assert!(
        log.compactor().compact(&lazy, 0).await.unwrap().ran,
        "all dirty: due"
    );
    assert_eq!(
        read_all(&log, &lazy).await.len(),
        10,
        "ten keys, ten records"
    );
    log.writers()
        .append(&lazy, 0, plain(&[(Some(&[b'k', 0]), Some(b"w"))]))
        .await
        .unwrap();
    assert!(
        !log.compactor().compact(&lazy, 0).await.unwrap().ran,
        "one dirty batch of ten is below a 0.5 dirty ratio"
    );
    for i in 1..9u8 {
        log.writers()
            .append(&lazy, 0, plain(&[(Some(&[b'k', i]), Some(b"w"))]))
            .await
            .unwrap();
    }
    assert!(
        log.compactor().compact(&lazy, 0).await.unwrap().ran,
        "nine of eighteen: due"
    );
    assert_eq!(
        read_all(&log, &lazy).await.len(),
        10,
        "ten keys' latest; the head whole"
    );
}

#[tokio::test]
async fn turning_compaction_on_keeps_every_keys_latest_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "late", 1, &[]).await;
    for i in 0..6u8 {
        let k = [b'k', b'0' + i % 3];
        log.writers()
            .append(&t, 0, plain(&[(Some(&k), Some(&[i]))]))
            .await
            .unwrap();
    }
    let before = read_all(&log, &t).await;
    log.topics()
        .alter_configs(
            "late",
            &[AlterOp::Set("cleanup.policy".into(), "compact".into())],
            false,
            false,
        )
        .await
        .unwrap();
    let t = log.topics().get("late").await.unwrap().unwrap();
    log.writers()
        .append(&t, 0, plain(&[(Some(b"z"), Some(b"z"))]))
        .await
        .unwrap();
    // Nothing was indexed before: a pass that has to index keeps everything and leaves the
    // partition due, until a pass finds the index complete.
    let mut passes = 0;
    while log.compactor().compact(&t, 0).await.unwrap().ran {
        passes += 1;
        assert!(passes < 5, "compaction converges");
    }
    assert!(passes >= 2);
    let after = read_all(&log, &t).await;
    let mut expected = latest(&before);
    expected.insert(b"z".to_vec(), (6, Some(b"z".to_vec())));
    assert_eq!(latest(&after), expected);
    assert_eq!(after.len(), 4);
}

#[tokio::test]
async fn a_pass_over_many_records_spans_several_bounded_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = compacted_topic(&log, "many", &[]).await;
    // 6,000 records over 50 keys in 60 batches: more than one transaction's records.
    for round in 0..60u32 {
        let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..100u32)
            .map(|i| {
                let n = round * 100 + i;
                (
                    format!("k{}", n % 50).into_bytes(),
                    n.to_be_bytes().to_vec(),
                )
            })
            .collect();
        let records: Vec<KeyValue<'_>> = owned
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
            .collect();
        log.writers()
            .append(
                &t,
                0,
                keyed(&records, Compression::Lz4, (-1, -1, -1), false),
            )
            .await
            .unwrap();
    }
    let before = read_all(&log, &t).await;
    assert!(log.compactor().compact(&t, 0).await.unwrap().ran);
    let after = read_all(&log, &t).await;
    assert_eq!(latest(&after), latest(&before));
    // 50 latest records (all in the last batch) plus the rest of that untouched batch.
    assert_eq!(after.len(), 100);
    assert_eq!(after[0].0, 5_900);
}

/// Every record of one partition from the beginning, as offsets.
async fn offsets_of(log: &Log, t: &TopicMeta, partition: i32) -> Vec<i64> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let f = log
            .reader()
            .fetch(t, partition, offset, 1 << 20)
            .await
            .unwrap();
        if f.records.is_empty() {
            return out;
        }
        for (o, _) in decode(f.records.to_bytes()) {
            out.push(o);
            offset = o + 1;
        }
    }
}

#[tokio::test]
async fn a_full_pass_compacts_the_written_partitions_of_compacted_topics_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    // Created first, so its partitions' keys come first in the walk: 400 written partitions hold
    // 1,200 keys (state, owner, leader epoch), more than one page of the walk.
    let many = topic(&log, "many", 400, &[]).await;
    let table = topic(&log, "table2", 2, &[("cleanup.policy", "compact")]).await;
    let plain = topic(&log, "plain", 1, &[]).await;
    let idle = compacted_topic(&log, "idle", &[]).await;
    for partition in 0..400 {
        let records: Vec<KeyValue<'_>> = vec![(Some(b"k".as_slice()), Some(b"v".as_slice()))];
        log.writers()
            .append(
                &many,
                partition,
                keyed(&records, Compression::None, (-1, -1, -1), false),
            )
            .await
            .unwrap();
    }
    // Ten batches of one record each, all of key "k", in both partitions of the compacted topic
    // and in the topic that deletes; partition 0 of the compacted topic from 1,100 idempotent
    // producers, whose states sort before the partition's state key and fill more than a page.
    for (t, partition) in [(&table, 0), (&table, 1), (&plain, 0)] {
        for round in 0..10u8 {
            let value = [round, partition as u8];
            let records: Vec<KeyValue<'_>> = vec![(Some(b"k".as_slice()), Some(value.as_slice()))];
            log.writers()
                .append(
                    t,
                    partition,
                    keyed(&records, Compression::None, (-1, -1, -1), false),
                )
                .await
                .unwrap();
        }
    }
    for pid in 0..1_100i64 {
        let records: Vec<KeyValue<'_>> = vec![(Some(b"other".as_slice()), Some(b"x".as_slice()))];
        log.writers()
            .append(
                &table,
                0,
                keyed(&records, Compression::None, (pid, 0, 0), false),
            )
            .await
            .unwrap();
    }
    let last = log
        .writers()
        .append(
            &table,
            0,
            keyed(
                &[(Some(b"k".as_slice()), Some(b"last".as_slice()))],
                Compression::None,
                (-1, -1, -1),
                false,
            ),
        )
        .await
        .unwrap()
        .base_offset;
    drop(log);
    let log = reopen(dir.path()).await;
    // After a start nothing is known to be dirty: only the full pass finds the two partitions.
    assert_eq!(log.compactor().pass(false).await.unwrap(), 0);
    assert_eq!(offsets_of(&log, &table, 1).await.len(), 10);
    assert_eq!(log.compactor().pass(true).await.unwrap(), 2);
    // Partition 0: the latest record of "other" and of "k" (the last batch, left whole).
    assert_eq!(offsets_of(&log, &table, 0).await, vec![last - 1, last]);
    // Partition 1: the key's latest record is in the last batch, which a pass leaves whole.
    assert_eq!(offsets_of(&log, &table, 1).await, vec![9]);
    assert_eq!(
        offsets_of(&log, &plain, 0).await,
        (0..10).collect::<Vec<_>>()
    );
    assert!(offsets_of(&log, &idle, 0).await.is_empty());
    assert_eq!(offsets_of(&log, &many, 399).await, vec![0]);
    // Nothing written since: the next full pass compacts nothing.
    assert_eq!(log.compactor().pass(true).await.unwrap(), 0);
}
