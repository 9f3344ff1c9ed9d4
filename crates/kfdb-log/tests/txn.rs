//! Transactions in kfdb-log over the embedded store: markers, the last stable offset, the aborted
//! index, read_committed fetches, fencing, timeouts, transactional offsets, chunked ends, restart.

mod common;
use common::*;

use kfdb_log::{Isolation, LogConfig, LogError, PartitionId, TxnAddition, TxnStatus, committed};

/// Start a transaction for `id` (a new producer) and write one record of it to `partition`.
async fn open_with_record(
    log: &std::sync::Arc<kfdb_log::Log>,
    id: &str,
    timeout_ms: i32,
    t: &std::sync::Arc<kfdb_log::TopicMeta>,
    partition: i32,
    value: &[u8],
) -> (i64, i16) {
    let (pid, e) = log
        .txns()
        .init_producer(id, timeout_ms, None)
        .await
        .unwrap();
    log.txns()
        .add(
            id,
            pid,
            e,
            TxnAddition::Partitions(&[PartitionId::new(t.id, partition)]),
        )
        .await
        .unwrap();
    log.writers()
        .append(t, partition, txn(&[value], pid, e, 0))
        .await
        .unwrap();
    (pid, e)
}

/// Records and control markers of a read: (offset, value or "<commit>"/"<abort>").
fn read_all(bytes: bytes::Bytes) -> Vec<(i64, String)> {
    let mut b = bytes;
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut b)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            let v = if r.control {
                match r.key.as_deref() {
                    Some([0, 0, 0, 1]) => "<commit>".to_string(),
                    _ => "<abort>".to_string(),
                }
            } else {
                String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned()
            };
            (r.offset, v)
        })
        .collect()
}

#[tokio::test]
async fn markers_move_the_last_stable_offset_and_aborts_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "tx", 2, &[]).await;
    let (pid, epoch) = log.txns().init_producer("app", 60_000, None).await.unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"plain"], 1))
        .await
        .unwrap();

    // Transaction 1: two partitions, committed.
    log.txns()
        .add(
            "app",
            pid,
            epoch,
            TxnAddition::Partitions(&[PartitionId::new(t.id, 0), PartitionId::new(t.id, 1)]),
        )
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, txn(&[b"c0", b"c1"], pid, epoch, 0))
        .await
        .unwrap();
    log.writers()
        .append(&t, 1, txn(&[b"c2"], pid, epoch, 0))
        .await
        .unwrap();
    let open_fetch = log
        .reader()
        .fetch_isolated(&t, 0, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(
        open_fetch.last_stable_offset, 1,
        "LSO at the open transaction"
    );
    assert_eq!(open_fetch.high_watermark, 3);
    assert_eq!(
        read_all(open_fetch.records.to_bytes()),
        vec![(0, "plain".into())]
    );
    assert_eq!(
        log.reader().last_stable_offset(&t, 0).await.unwrap(),
        1,
        "ListOffsets latest under read_committed"
    );
    let uncommitted = log.reader().fetch(&t, 0, 0, 1 << 20).await.unwrap();
    assert_eq!(read_all(uncommitted.records.to_bytes()).len(), 3);
    assert_eq!(
        log.producers().active(&t, 0).await.unwrap()[0].txn_start_offset,
        1
    );
    log.txns().end("app", pid, epoch, true).await.unwrap();
    log.txns()
        .end("app", pid, epoch, true)
        .await
        .expect("a retried EndTxn of the same outcome succeeds");
    assert!(matches!(
        log.txns().end("app", pid, epoch, false).await,
        Err(LogError::InvalidTxnState(_))
    ));
    let p0 = log
        .reader()
        .fetch_isolated(&t, 0, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(p0.last_stable_offset, 4);
    assert_eq!(p0.high_watermark, 4);
    assert_eq!(
        read_all(p0.records.to_bytes()),
        vec![
            (0, "plain".into()),
            (1, "c0".into()),
            (2, "c1".into()),
            (3, "<commit>".into())
        ]
    );
    assert_eq!(p0.aborted, Some(vec![]));
    let p1 = log.reader().fetch(&t, 1, 0, 1 << 20).await.unwrap();
    assert_eq!(
        read_all(p1.records.to_bytes()),
        vec![(0, "c2".into()), (1, "<commit>".into())]
    );

    // Transaction 2: partition 0 only, aborted; a plain append follows.
    log.txns()
        .add(
            "app",
            pid,
            epoch,
            TxnAddition::Partitions(&[PartitionId::new(t.id, 0)]),
        )
        .await
        .unwrap();
    log.writers()
        .append(&t, 0, txn(&[b"a0"], pid, epoch, 2))
        .await
        .unwrap();
    log.txns().end("app", pid, epoch, false).await.unwrap();
    log.writers()
        .append(&t, 0, batch_of(&[b"after"], 9))
        .await
        .unwrap();
    let p0 = log
        .reader()
        .fetch_isolated(&t, 0, 4, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(
        read_all(p0.records.to_bytes()),
        vec![(4, "a0".into()), (5, "<abort>".into()), (6, "after".into())]
    );
    assert_eq!(
        p0.aborted,
        Some(vec![(pid, 4)]),
        "the consumer drops offset 4"
    );
    let later = log
        .reader()
        .fetch_isolated(&t, 0, 6, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(later.aborted, Some(vec![]), "nothing aborted at or after 6");
    assert_eq!(
        log.txns().describe("app").await.unwrap().unwrap().0.status,
        TxnStatus::CompleteAbort
    );
}

#[tokio::test]
async fn only_added_partitions_open_a_transaction_and_fenced_producers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "fence", 2, &[]).await;
    let (pid, e0) = log.txns().init_producer("app", 60_000, None).await.unwrap();
    log.txns()
        .add(
            "app",
            pid,
            e0,
            TxnAddition::Partitions(&[PartitionId::new(t.id, 0)]),
        )
        .await
        .unwrap();
    assert!(matches!(
        log.writers().append(&t, 1, txn(&[b"x"], pid, e0, 0)).await,
        Err(LogError::InvalidTxnState(_))
    ));
    log.writers()
        .append(&t, 0, txn(&[b"zombie"], pid, e0, 0))
        .await
        .unwrap();

    // A new instance with the same transactional id: the open transaction is aborted with a
    // higher epoch, and the old producer is refused everywhere.
    let (pid2, e1) = log.txns().init_producer("app", 60_000, None).await.unwrap();
    assert_eq!(pid2, pid);
    assert!(e1 > e0);
    let p0 = log
        .reader()
        .fetch_isolated(&t, 0, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(p0.last_stable_offset, p0.high_watermark);
    assert_eq!(p0.aborted, Some(vec![(pid, 0)]));
    assert_eq!(
        log.writers()
            .append(&t, 0, txn(&[b"late"], pid, e0, 1))
            .await,
        Err(LogError::InvalidProducerEpoch)
    );
    assert_eq!(
        log.txns().end("app", pid, e0, true).await,
        Err(LogError::ProducerFenced)
    );
    assert_eq!(
        log.txns()
            .add(
                "app",
                pid,
                e0,
                TxnAddition::Partitions(&[PartitionId::new(t.id, 1)])
            )
            .await,
        Err(LogError::ProducerFenced)
    );
    assert_eq!(
        log.txns()
            .init_producer("app", 60_000, Some((pid, e0)))
            .await,
        Err(LogError::ProducerFenced),
        "KIP-360 re-init with a stale epoch"
    );
    assert!(matches!(
        log.txns().init_producer("app", 0, None).await,
        Err(LogError::InvalidTransactionTimeout(0))
    ));
    // The new instance works.
    log.txns()
        .add(
            "app",
            pid,
            e1,
            TxnAddition::Partitions(&[PartitionId::new(t.id, 1)]),
        )
        .await
        .unwrap();
    log.writers()
        .append(&t, 1, txn(&[b"new"], pid, e1, 0))
        .await
        .unwrap();
    log.txns().end("app", pid, e1, true).await.unwrap();
    let p1 = log
        .reader()
        .fetch_isolated(&t, 1, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(
        read_all(p1.records.to_bytes()),
        vec![(0, "new".into()), (1, "<commit>".into())]
    );
}

#[tokio::test]
async fn transactional_offsets_commit_with_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "offsets", 1, &[]).await;
    let (pid, e) = log.txns().init_producer("ctp", 60_000, None).await.unwrap();
    for (round, commit) in [(1i64, true), (2, false)] {
        log.txns()
            .add("ctp", pid, e, TxnAddition::Group("g"))
            .await
            .unwrap();
        log.txns()
            .commit_offsets(
                "ctp",
                pid,
                e,
                "g",
                &[(
                    PartitionId::new(t.id, 0),
                    committed(round * 10, -1, String::new()),
                )],
            )
            .await
            .unwrap();
        assert_eq!(
            log.groups().unstable_offsets("g").await.unwrap(),
            vec![PartitionId::new(t.id, 0)]
        );
        let before = log
            .groups()
            .fetch_offsets("g", Some(&[PartitionId::new(t.id, 0)]))
            .await
            .unwrap();
        assert_eq!(
            before.first().map(|o| o.1.offset),
            (round > 1).then_some(10),
            "pending offsets are not visible"
        );
        log.txns().end("ctp", pid, e, commit).await.unwrap();
        assert!(log.groups().unstable_offsets("g").await.unwrap().is_empty());
        let after = log
            .groups()
            .fetch_offsets("g", Some(&[PartitionId::new(t.id, 0)]))
            .await
            .unwrap();
        assert_eq!(
            after[0].1.offset, 10,
            "round {round}: abort keeps round 1's"
        );
    }
    assert!(matches!(
        log.txns().commit_offsets("ctp", pid, e, "g", &[]).await,
        Err(LogError::InvalidTxnState(_))
    ));
}

#[tokio::test]
async fn expired_transactions_are_aborted_and_their_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let t = topic(&log, "slow", 1, &[]).await;
    let (pid, e) = open_with_record(&log, "slow", 50, &t, 0, b"x").await;
    assert_eq!(log.txns().abort_expired().await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(log.txns().abort_expired().await.unwrap(), 1);
    assert_eq!(log.txns().abort_expired().await.unwrap(), 0);
    let (state, parts) = log.txns().describe("slow").await.unwrap().unwrap();
    assert_eq!(state.status, TxnStatus::CompleteAbort);
    assert_eq!(state.producer_epoch, e + 1);
    assert!(parts.is_empty());
    assert_eq!(
        log.txns().end("slow", pid, e, true).await,
        Err(LogError::ProducerFenced)
    );
    assert_eq!(log.reader().last_stable_offset(&t, 0).await.unwrap(), 2);
    let listed = log.txns().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, "slow");
}

#[tokio::test]
async fn big_transactions_end_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with(
        dir.path(),
        LogConfig {
            markers_per_txn: 2,
            ..LogConfig::default()
        },
    )
    .await;
    let t = topic(&log, "wide", 5, &[]).await;
    let (pid, e) = log
        .txns()
        .init_producer("wide", 60_000, None)
        .await
        .unwrap();
    let parts: Vec<PartitionId> = (0..5).map(|p| PartitionId::new(t.id, p)).collect();
    log.txns()
        .add("wide", pid, e, TxnAddition::Partitions(&parts))
        .await
        .unwrap();
    for p in 0..5 {
        log.writers()
            .append(&t, p, txn(&[b"v"], pid, e, 0))
            .await
            .unwrap();
    }
    log.txns().end("wide", pid, e, true).await.unwrap();
    for p in 0..5 {
        let f = log
            .reader()
            .fetch_isolated(&t, p, 0, 1 << 20, Isolation::ReadCommitted)
            .await
            .unwrap();
        assert_eq!(
            read_all(f.records.to_bytes()),
            vec![(0, "v".into()), (1, "<commit>".into())],
            "partition {p}"
        );
    }
    assert_eq!(
        log.txns().describe("wide").await.unwrap().unwrap().0.status,
        TxnStatus::CompleteCommit
    );
}

#[tokio::test]
async fn an_open_transaction_survives_a_restart_until_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let (tid, pid, e) = {
        let log = open(dir.path()).await;
        let t = topic(&log, "crash", 1, &[]).await;
        let (pid, e) = log
            .txns()
            .init_producer("crash", 60_000, None)
            .await
            .unwrap();
        log.txns()
            .add(
                "crash",
                pid,
                e,
                TxnAddition::Partitions(&[PartitionId::new(t.id, 0)]),
            )
            .await
            .unwrap();
        log.writers()
            .append(&t, 0, txn(&[b"open"], pid, e, 0))
            .await
            .unwrap();
        (t.id, pid, e)
    };
    let log = open(dir.path()).await;
    let t = log.topics().get_by_tid(tid).await.unwrap().unwrap();
    assert_eq!(log.reader().last_stable_offset(&t, 0).await.unwrap(), 0);
    let (_, e2) = log
        .txns()
        .init_producer("crash", 60_000, None)
        .await
        .unwrap();
    assert!(e2 > e);
    let f = log
        .reader()
        .fetch_isolated(&t, 0, 0, 1 << 20, Isolation::ReadCommitted)
        .await
        .unwrap();
    assert_eq!(f.last_stable_offset, 2);
    assert_eq!(f.aborted, Some(vec![(pid, 0)]));
}

#[tokio::test]
async fn a_retried_kip360_bump_gets_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let (pid, e0) = log.txns().init_producer("r", 60_000, None).await.unwrap();
    let bumped = log
        .txns()
        .init_producer("r", 60_000, Some((pid, e0)))
        .await
        .unwrap();
    assert_eq!(bumped, (pid, e0 + 1));
    assert_eq!(
        log.txns()
            .init_producer("r", 60_000, Some((pid, e0)))
            .await
            .unwrap(),
        bumped,
        "the answer of a lost response, not PRODUCER_FENCED"
    );
    // A bump by someone else (no expected epoch) ends that: the old epoch is fenced.
    let other = log.txns().init_producer("r", 60_000, None).await.unwrap();
    assert_eq!(other, (pid, e0 + 2));
    assert_eq!(
        log.txns()
            .init_producer("r", 60_000, Some((pid, e0 + 1)))
            .await,
        Err(LogError::ProducerFenced)
    );
}

#[tokio::test]
async fn idle_producers_and_transactional_ids_expire_but_open_transactions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with(
        dir.path(),
        LogConfig {
            producer_id_expiration_ms: 50,
            transactional_id_expiration_ms: 50,
            ..LogConfig::default()
        },
    )
    .await;
    let t = topic(&log, "expiring", 2, &[]).await;
    // An idempotent producer in partition 0; a transactional one that commits ("done") and one
    // that stays open ("open"), both in partition 1.
    let idem_pid = log.producers().allocate_id().await.unwrap();
    log.writers()
        .append(&t, 0, idem(&[b"i"], idem_pid, 0, 0))
        .await
        .unwrap();
    let (done, de) = open_with_record(&log, "done", 60_000, &t, 1, b"d").await;
    log.txns().end("done", done, de, true).await.unwrap();
    let (open_pid, oe) = open_with_record(&log, "open", 60_000, &t, 1, b"o").await;

    // Nothing is idle long enough yet.
    assert_eq!(log.producers().expire().await.unwrap(), 0);
    assert_eq!(log.txns().expire_ids().await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;

    // The idempotent producer's and "done"'s states go; "open"'s stays (its transaction is open).
    assert_eq!(log.producers().expire().await.unwrap(), 2);
    assert_eq!(log.producers().expire().await.unwrap(), 0);
    assert!(log.producers().active(&t, 0).await.unwrap().is_empty());
    let in_1: Vec<i64> = log
        .producers()
        .active(&t, 1)
        .await
        .unwrap()
        .iter()
        .map(|p| p.producer_id)
        .collect();
    assert_eq!(in_1, vec![open_pid]);

    // "done" is forgotten, "open" is not.
    assert_eq!(log.txns().expire_ids().await.unwrap(), 1);
    let ids: Vec<String> = log
        .txns()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec!["open".to_string()]);
    assert!(log.txns().describe("done").await.unwrap().is_none());
    // A producer coming back under the expired id starts afresh; the open one still commits.
    let (again, _) = log
        .txns()
        .init_producer("done", 60_000, None)
        .await
        .unwrap();
    assert_ne!(again, done);
    log.txns().end("open", open_pid, oe, true).await.unwrap();
    assert_eq!(log.reader().last_stable_offset(&t, 1).await.unwrap(), 4);
}

#[tokio::test]
async fn list_transactions_pages_through_every_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let n = 1_005; // more than one page of 1,000
    for i in 0..n {
        log.txns()
            .init_producer(&format!("id-{i:04}"), 60_000, None)
            .await
            .unwrap();
    }
    let ids: Vec<String> = log
        .txns()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("id-{i:04}")).collect();
    assert_eq!(ids, want);
}
