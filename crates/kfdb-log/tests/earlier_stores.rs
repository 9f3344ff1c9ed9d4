//! A store written by an earlier kfdb still opens and serves. The fixture below writes, with the
//! tuple encoding directly, the key layout and value formats kfdb wrote before values all carried
//! a version tag (commit 718ec82): bare integers for topic ids, counters and open transactions,
//! an unversioned `(pid, first, stable)` for aborted transactions and `(pid, epoch)` for a
//! transaction's partitions, raw UTF-8 for the cluster id and a producer id's transactional id,
//! and the first partition-state format. The data model must read all of it and keep working on
//! top of it: no migration step is needed.

mod common;
use common::*;

use bytes::Bytes;
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::tuple::{Subspace, pack};
use kfdb_log::{
    Isolation, Log, LogConfig, NewTopic, PartitionId, TopicId, TxnAddition, TxnStatus, batch,
};

const TID: i64 = 7;
const PID: i64 = 1000;

fn root() -> Subspace {
    Subspace::from_bytes(pack(&"kfdb"))
}

/// A stored record batch of one record at `offset`.
fn stored_batch(offset: i64) -> Bytes {
    let value = format!("old-{offset}");
    let b = batch::parse_batches(&records(
        &[value.as_bytes()],
        &[offset],
        kafka_protocol::records::Compression::None,
    ))
    .unwrap()
    .remove(0);
    b.stamped(offset, 0, None)
}

async fn write_earlier_store(dir: &std::path::Path) {
    let db = Database::open_embedded(dir, EmbeddedOptions::default()).unwrap();
    let r = root();
    let uuid = kfdb_kv::tuple::Uuid::from_u128(0xfeed);
    let batches: Vec<Bytes> = (0..5).map(stored_batch).collect();
    let total: i64 = batches.iter().map(|b| b.len() as i64).sum();
    db.run(|tx, _| {
        let (r, batches) = (r.clone(), batches.clone());
        async move {
            tx.set(&r.pack(&"cluster"), b"OldClusterIdAAAAAAAAAA");
            tx.set(&r.pack(&"topic_seq"), &pack(&TID));
            tx.set(&r.pack(&("topic_name", "legacy")), &pack(&TID));
            tx.set(
                &r.pack(&("topic_uuid", uuid.as_bytes().to_vec())),
                &pack(&TID),
            );
            let meta = (
                1i64,
                "legacy".to_string(),
                uuid.as_bytes().to_vec(),
                2i64,
                1i64,
                vec![("retention.ms".to_string(), "-1".to_string())],
                5i64,
            );
            tx.set(&r.pack(&("topic", TID)), &pack(&meta));
            // Partition 0: two batches, the first partition-state format (no open transactions).
            tx.set(
                &r.pack(&("part", TID, 0i32, "state")),
                &pack(&(1i64, 0i64, 5i64, 4i64, 4i64, total)),
            );
            tx.set(
                &r.pack(&("part", TID, 0i32, "owner")),
                &pack(&(1i64, 1i64, 0i64)),
            );
            for (offset, batch) in (0i64..).zip(&batches) {
                let mut chunk = vec![1u8];
                chunk.extend_from_slice(batch);
                tx.set(&r.pack(&("log", TID, 0i32, offset, 0i32)), &chunk);
                tx.set(
                    &r.pack(&("bidx", TID, 0i32, offset)),
                    &pack(&(1i64, offset, offset, batch.len() as i64)),
                );
            }
            tx.set(&r.pack(&("tidx", TID, 0i32, 4i64, 4i64)), b"");
            // Partition 1: a transaction of producer PID is open at offset 0 (state format 2,
            // open-transaction value a bare integer), and an earlier one was aborted.
            tx.set(
                &r.pack(&("part", TID, 1i32, "state")),
                &pack(&(2i64, 0i64, 0i64, -1i64, -1i64, 0i64, -1i64)),
            );
            tx.set(
                &r.pack(&("part", TID, 1i32, "aborted", 9i64)),
                &pack(&(PID, 2i64, 10i64)),
            );
            tx.set(&r.pack(&"pid_block"), &pack(&(PID + 1000)));
            // A transactional id with an open transaction over partition 1 (its record never
            // written: the partition has no open key), state format 2.
            let state = (2i64, PID, 4i64, 60_000i64, 1i64, 1i64, 2i64, -1i64, -1i64);
            tx.set(&r.pack(&("txn_state", "old-app")), &pack(&state));
            tx.set(&r.pack(&("txn_pid", PID)), b"old-app");
            tx.set(
                &r.pack(&("txn", "old-app", "part", TID, 1i32)),
                &pack(&(PID, 4i64)),
            );
            tx.set(&r.pack(&("txn_deadline", 60_001i64, "old-app")), b"");
            // A group with a committed offset.
            tx.set(&r.pack(&("groups", "old-group")), b"");
            tx.set(
                &r.pack(&("group", "old-group", "offset", TID, 0i32)),
                &pack(&(1i64, 4i64, -1i64, "meta".to_string(), 9i64)),
            );
            Ok::<_, kfdb_kv::KvError>(())
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_store_written_before_versioned_values_opens_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    write_earlier_store(dir.path()).await;
    let log = open_with(dir.path(), LogConfig::default()).await;
    assert_eq!(log.cluster_id(), "OldClusterIdAAAAAAAAAA");
    let t = log.topics().get("legacy").await.unwrap().unwrap();
    assert_eq!((t.id, t.partitions), (TID, 2));
    assert_eq!(
        log.topics()
            .lookup(TopicId::Uuid(t.uuid))
            .await
            .unwrap()
            .unwrap()
            .name,
        "legacy"
    );
    // The old records read back, and new ones follow them densely.
    let r = log
        .writers()
        .append(&t, 0, batch_of(&[b"new"], 10))
        .await
        .unwrap();
    assert_eq!(r.base_offset, 5);
    let all = fetch_all(&log, &t, 0, 0).await;
    let values: Vec<String> = all
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(values, ["old-0", "old-1", "old-2", "old-3", "old-4", "new"]);
    // Committed offsets of the old group.
    let offsets = log.groups().fetch_offsets("old-group", None).await.unwrap();
    assert_eq!(offsets[0].0, PartitionId::new(TID, 0));
    assert_eq!(offsets[0].1.offset, 4);
    // The old transactional id: its open transaction, then a new producer fences it (the abort
    // writes a marker into partition 1, read through the old unversioned partition value).
    let (state, parts) = log.txns().describe("old-app").await.unwrap().unwrap();
    assert_eq!(state.status, TxnStatus::Ongoing);
    assert_eq!(parts, vec![PartitionId::new(TID, 1)]);
    let (pid, epoch) = log
        .txns()
        .init_producer("old-app", 60_000, None)
        .await
        .unwrap();
    assert_eq!(
        (pid, epoch),
        (PID, 6),
        "aborted with epoch 5, then bumped to 6"
    );
    let p1 = log
        .reader()
        .partition_state(PartitionId::new(TID, 1))
        .await
        .unwrap();
    assert_eq!(p1.next_offset, 1, "one abort marker");
    // The producer id mapping (raw UTF-8 before) still resolves: a new transaction works.
    log.txns()
        .add(
            "old-app",
            pid,
            epoch,
            TxnAddition::Partitions(&[PartitionId::new(TID, 1)]),
        )
        .await
        .unwrap();
    log.writers()
        .append(&t, 1, txn(&[b"t"], pid, epoch, 0))
        .await
        .unwrap();
    log.txns().end("old-app", pid, epoch, true).await.unwrap();
    // The aborted-transaction index (old value format) is read by read_committed fetches.
    let f = log
        .reader()
        .fetch_isolated(&t, 1, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(f.last_stable_offset, 3);
    // New producer ids and topic ids continue after the old blocks.
    assert!(log.producers().allocate_id().await.unwrap() >= PID + 1000);
    let created = log
        .topics()
        .create(
            vec![NewTopic {
                name: "fresh".into(),
                partitions: 1,
                replication_factor: -1,
                configs: Vec::new(),
            }],
            false,
        )
        .await
        .remove(0)
        .unwrap();
    assert!(created.id > TID);
    // Restarting on the now mixed store works too.
    drop(log);
    let log: std::sync::Arc<Log> = open_with(dir.path(), LogConfig::default()).await;
    assert_eq!(fetch_all(&log, &t, 0, 0).await.len(), 6);
}
