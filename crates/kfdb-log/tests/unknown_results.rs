//! Every store transaction of the data model survives a lost commit answer: the embedded store
//! answers `commit_unknown_result` for one commit, after applying it (`landed`) or without, the
//! retry loop runs the transaction again with `maybe_committed`, and the operation reports what
//! happened exactly once — no TOPIC_ALREADY_EXISTS for a topic it created, no record appended
//! twice, no epoch bumped twice, no second transaction marker.

mod common;
use common::*;

use kfdb_kv::Database;
use kfdb_log::{
    AlterOp, Log, LogConfig, NewTopic, PartitionId, TopicId, TxnAddition, TxnStatus, committed,
};
use std::sync::Arc;

const BOTH: [bool; 2] = [true, false];

async fn setup() -> (tempfile::TempDir, Arc<Log>, Database) {
    let dir = tempfile::tempdir().unwrap();
    let (log, db) = open_with_store(dir.path(), LogConfig::default()).await;
    // Reserve this broker's topic-id and producer-id blocks now, so that the injected failure
    // hits the operation under test and not a block reservation.
    topic(&log, "warm-up", 1, &[]).await;
    log.producers().allocate_id().await.unwrap();
    (dir, log, db)
}

fn lose_next_answer(db: &Database, landed: bool) {
    db.as_embedded().unwrap().inject_unknown_results(1, landed);
}

fn spec(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: -1,
        configs: Vec::new(),
    }
}

#[tokio::test]
async fn create_topics_answers_created_not_already_exists() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        lose_next_answer(&db, landed);
        let created = log
            .topics()
            .create(vec![spec("orders", 3), spec("audit", 1)], false)
            .await;
        for r in &created {
            assert!(r.is_ok(), "landed={landed}: {r:?}");
        }
        let t = log.topics().get("orders").await.unwrap().unwrap();
        assert_eq!(t.uuid, created[0].as_ref().unwrap().uuid);
        assert_eq!(t.partitions, 3);
        let again = log.topics().create(vec![spec("orders", 3)], false).await;
        assert!(matches!(again[0], Err(kfdb_log::LogError::TopicExists)));
    }
}

#[tokio::test]
async fn delete_create_partitions_and_alter_configs_report_their_own_change() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        topic(&log, "t", 1, &[]).await;
        lose_next_answer(&db, landed);
        let grown = log.topics().create_partitions("t", 3, false).await.unwrap();
        assert_eq!(grown.partitions, 3, "landed={landed}");
        lose_next_answer(&db, landed);
        let altered = log
            .topics()
            .alter_configs(
                "t",
                &[AlterOp::Append("cleanup.policy".into(), "compact".into())],
                false,
                false,
            )
            .await
            .unwrap();
        assert_eq!(altered.config("cleanup.policy"), Some("delete,compact"));
        lose_next_answer(&db, landed);
        log.delete_topic(TopicId::Name("t")).await.unwrap();
        assert!(log.topics().get("t").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn appends_land_exactly_once() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        let t = topic(&log, "t", 1, &[]).await;
        log.writers()
            .append(&t, 0, batch_of(&[b"a"], 1))
            .await
            .unwrap();
        lose_next_answer(&db, landed);
        let r = log
            .writers()
            .append(&t, 0, batch_of(&[b"b", b"c"], 2))
            .await
            .unwrap();
        assert_eq!(r.base_offset, 1, "landed={landed}");
        let pid = log.producers().allocate_id().await.unwrap();
        lose_next_answer(&db, landed);
        let r = log
            .writers()
            .append(&t, 0, idem(&[b"d"], pid, 0, 0))
            .await
            .unwrap();
        assert_eq!(r.base_offset, 3);
        let values: Vec<(i64, Vec<u8>)> = fetch_all(&log, &t, 0, 0).await;
        assert_eq!(
            values,
            vec![
                (0, b"a".to_vec()),
                (1, b"b".to_vec()),
                (2, b"c".to_vec()),
                (3, b"d".to_vec())
            ],
            "landed={landed}: dense, nothing twice"
        );
    }
}

#[tokio::test]
async fn init_producer_id_creates_and_bumps_once() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        lose_next_answer(&db, landed);
        let (pid, epoch) = log.txns().init_producer("app", 60_000, None).await.unwrap();
        assert_eq!(epoch, 0, "landed={landed}");
        lose_next_answer(&db, landed);
        let bumped = log.txns().init_producer("app", 60_000, None).await.unwrap();
        assert_eq!(bumped, (pid, 1), "landed={landed}: one bump");
        let (state, _) = log.txns().describe("app").await.unwrap().unwrap();
        assert_eq!((state.producer_id, state.producer_epoch), (pid, 1));
    }
}

#[tokio::test]
async fn ending_a_transaction_writes_one_marker() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        let t = topic(&log, "t", 1, &[]).await;
        let (pid, e) = log.txns().init_producer("app", 60_000, None).await.unwrap();
        let p = PartitionId::new(t.id, 0);
        lose_next_answer(&db, landed);
        log.txns()
            .add("app", pid, e, TxnAddition::Partitions(&[p]))
            .await
            .unwrap();
        log.writers()
            .append(&t, 0, txn(&[b"x"], pid, e, 0))
            .await
            .unwrap();
        log.txns()
            .add("app", pid, e, TxnAddition::Group("g"))
            .await
            .unwrap();
        lose_next_answer(&db, landed);
        log.txns()
            .commit_offsets("app", pid, e, "g", &[(p, committed(1, -1, String::new()))])
            .await
            .unwrap();
        lose_next_answer(&db, landed);
        log.txns().end("app", pid, e, true).await.unwrap();
        let offsets = log.groups().fetch_offsets("g", None).await.unwrap();
        assert_eq!(offsets.len(), 1);
        assert_eq!(
            offsets[0].1.offset, 1,
            "the transaction's offset committed with it"
        );
        let (state, _) = log.txns().describe("app").await.unwrap().unwrap();
        assert_eq!(state.status, TxnStatus::CompleteCommit);
        let fetched = log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap();
        assert_eq!(
            fetched.high_watermark, 2,
            "landed={landed}: one record and one commit marker"
        );
        assert_eq!(fetched.last_stable_offset, 2);
    }
}

#[tokio::test]
async fn offsets_and_delete_records_are_idempotent() {
    for landed in BOTH {
        let (_dir, log, db) = setup().await;
        let t = topic(&log, "t", 1, &[]).await;
        for i in 0..5 {
            log.writers()
                .append(&t, 0, batch_of(&[format!("v{i}").as_bytes()], i))
                .await
                .unwrap();
        }
        let p = PartitionId::new(t.id, 0);
        lose_next_answer(&db, landed);
        log.groups()
            .commit_offsets("g", &[(p, committed(3, -1, "m".into()))])
            .await
            .unwrap();
        let got = log.groups().fetch_offsets("g", None).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.offset, 3);
        lose_next_answer(&db, landed);
        let start = log.retention().delete_records(&t, 0, 2).await.unwrap();
        assert_eq!(start, 2, "landed={landed}");
        assert_eq!(log.reader().partition_state(p).await.unwrap().log_start, 2);
    }
}
