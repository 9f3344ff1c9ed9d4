//! Behaviour specific to the embedded backend: durability across reopen, group commit, injected
//! conflicts driving the retry loop, and the artificial commit latency.

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::{Database, KvError, RunOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn open(dir: &std::path::Path, options: EmbeddedOptions) -> Database {
    Database::open_embedded(dir, options).unwrap()
}

async fn set(db: &Database, key: &[u8], value: &[u8]) {
    db.run(|tx, _| async move {
        tx.set(key, value);
        Ok::<_, KvError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn data_and_versions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    set(&db, b"k", b"v1").await;
    let before = db.as_embedded().unwrap().committed_version();
    drop(db);
    let db = open(dir.path(), EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    assert_eq!(
        tx.get(b"k", false).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(db.as_embedded().unwrap().committed_version(), before);
    set(&db, b"k", b"v2").await;
    assert!(db.as_embedded().unwrap().committed_version() > before);
}

/// 64 tasks at once, each running `commit(db, task, n)` for n in 0..4, one after another: 256
/// concurrent commits for the pipeline to group.
async fn commit_from_64_tasks<F, Fut>(db: &Database, commit: F)
where
    F: Fn(Database, u32, u32) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..64u32)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                for j in 0..4u32 {
                    commit(db.clone(), i, j).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    commit_from_64_tasks(&db, |db, i, j| async move {
        set(&db, format!("g/{i}/{j}").as_bytes(), b"x").await;
    })
    .await;
    let stats = db.as_embedded().unwrap().stats();
    assert_eq!(stats.commits, 256);
    assert!(
        stats.fsyncs < stats.commits,
        "group commit: {} fsyncs for {} commits",
        stats.fsyncs,
        stats.commits
    );
}

/// Transactions that log large values share the value log's fdatasync with the rest of their
/// group, and a transaction folded after them still reads their writes: an atomic add's base and
/// the keys a small range clear deletes come from the batches before it in the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_the_value_log_sync_and_reads_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    commit_from_64_tasks(&db, |db, i, j| async move {
        db.run(|tx, _| async move {
            let value = vec![(i * 4 + j) as u8; 2_000];
            tx.set(format!("big/{i:02}/{j}").as_bytes(), &value);
            // The previous task's last row: usually written in this same group.
            let prev = (i + 63) % 64;
            if j == 3 {
                tx.atomic_op(b"count", &1u64.to_le_bytes(), kfdb_kv::MutationType::Add);
                tx.clear_range(
                    format!("big/{prev:02}/3").as_bytes(),
                    format!("big/{prev:02}/4").as_bytes(),
                );
            }
            Ok::<_, KvError>(())
        })
        .await
        .unwrap();
    })
    .await;
    let stats = db.as_embedded().unwrap().stats();
    assert_eq!(stats.commits, 256);
    assert!(
        stats.value_log_syncs < stats.commits,
        "{} value log syncs for {} commits",
        stats.value_log_syncs,
        stats.commits
    );
    let tx = db.create_transaction().unwrap();
    let count = tx.get(b"count", false).await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(count[..].try_into().unwrap()), 64);
    let rows = tx
        .get_range_all(kfdb_kv::RangeOption::new(&b"big/"[..], &b"big0"[..]), true)
        .await
        .unwrap();
    // Each task's rows 0..=2 stay; its row 3 is gone if the next task cleared it after it was
    // written, and stays otherwise (the clear came first). Either way every value is whole.
    assert!((192..=256).contains(&rows.len()), "{} rows", rows.len());
    for row in &rows {
        let key = String::from_utf8_lossy(&row.key).to_string();
        let (i, j): (u32, u32) = (key[4..6].parse().unwrap(), key[7..].parse().unwrap());
        assert_eq!(&row.value[..], &vec![(i * 4 + j) as u8; 2_000][..], "{key}");
    }
    let cleared_after = 256 - rows.len();
    eprintln!(
        "{} groups, {} value log syncs, {cleared_after} rows cleared",
        stats.groups, stats.value_log_syncs
    );
}

#[tokio::test]
async fn injected_conflicts_are_retried_until_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let attempt = |db: Database, calls: Arc<AtomicUsize>| async move {
        db.run(|tx, maybe| {
            let calls = calls.clone();
            async move {
                assert!(!maybe.0, "not_committed is certainly not committed");
                calls.fetch_add(1, Ordering::SeqCst);
                tx.set(b"r", b"1");
                Ok::<_, KvError>(())
            }
        })
        .await
    };
    db.as_embedded().unwrap().inject_conflicts(3);
    attempt(db.clone(), calls.clone()).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "three conflicts, then success"
    );
    assert_eq!(db.as_embedded().unwrap().stats().conflicts, 3);

    let limited = db.clone().with_run_options(RunOptions {
        retry_limit: 2,
        ..RunOptions::default()
    });
    limited.as_embedded().unwrap().inject_conflicts(10);
    calls.store(0, Ordering::SeqCst);
    let err = attempt(limited, calls.clone()).await.unwrap_err();
    assert_eq!(err.code(), KvError::NOT_COMMITTED);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "first try plus two retries"
    );
    db.as_embedded().unwrap().inject_conflicts(0);
}

#[tokio::test]
async fn retry_loop_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default()).with_run_options(RunOptions {
        retry_limit: u32::MAX,
        timeout: Duration::from_millis(200),
        ..RunOptions::default()
    });
    db.as_embedded().unwrap().inject_conflicts(u32::MAX);
    let err = db
        .run(|tx, _| async move {
            tx.set(b"t", b"1");
            Ok::<_, KvError>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), KvError::TRANSACTION_TIMED_OUT);
}

#[tokio::test]
async fn commit_latency_delays_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let latency = Duration::from_millis(20);
    let db = open(
        dir.path(),
        EmbeddedOptions {
            commit_latency: latency,
            ..EmbeddedOptions::default()
        },
    );
    let start = Instant::now();
    set(&db, b"l", b"1").await;
    assert!(
        start.elapsed() >= latency,
        "the reply came before the configured latency"
    );
}

async fn fill(db: &Database, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
        db.run(|tx, _| async move {
            for i in chunk {
                tx.set(format!("{prefix}{i:08}").as_bytes(), &[7u8; 100]);
            }
            Ok::<_, KvError>(())
        })
        .await
        .unwrap();
    }
}

async fn count(db: &Database, begin: &[u8], end: &[u8]) -> usize {
    let tx = db.create_transaction().unwrap();
    tx.get_range_all(kfdb_kv::RangeOption::new(begin, end), true)
        .await
        .unwrap()
        .len()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A large clear is a tombstone at once and its keys are deleted afterwards, step by step.
#[tokio::test]
async fn large_clears_are_deleted_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    fill(&db, "t/", 50_000).await;
    db.run(|tx, _| async move {
        tx.clear_range(b"t/", b"t0");
        Ok::<_, KvError>(())
    })
    .await
    .unwrap();
    assert_eq!(count(&db, b"t/", b"t0").await, 0, "hidden at once");
    let e = db.as_embedded().unwrap().clone();
    wait_for("the purge", || e.stats().range_tombstones == 0).await;
    assert_eq!(e.stats().purged_keys, 50_000);
    assert_eq!(count(&db, b"t/", b"t0").await, 0);
    // Small clears are still applied inline.
    fill(&db, "s/", 10).await;
    db.run(|tx, _| async move {
        tx.clear_range(b"s/", b"s0");
        Ok::<_, KvError>(())
    })
    .await
    .unwrap();
    assert_eq!(e.stats().range_tombstones, 0);
    assert_eq!(count(&db, b"s/", b"s0").await, 0);
}

/// A pending clear survives a restart (the keys stay hidden, later writes stay visible) and its
/// deletion resumes.
#[tokio::test]
async fn a_pending_clear_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    fill(&db, "t/", 40_000).await;
    db.run(|tx, _| async move {
        tx.clear_range(b"t/", b"t0");
        tx.set(b"t/00000007", b"kept");
        Ok::<_, KvError>(())
    })
    .await
    .unwrap();
    set(&db, b"t/00000009", b"later").await;
    drop(db);
    let db = open(dir.path(), EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    let rows = tx
        .get_range_all(kfdb_kv::RangeOption::new(&b"t/"[..], &b"t0"[..]), true)
        .await
        .unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = rows
        .iter()
        .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"t/00000007".to_vec(), b"kept".to_vec()),
            (b"t/00000009".to_vec(), b"later".to_vec())
        ]
    );
    let e = db.as_embedded().unwrap().clone();
    wait_for("the purge", || e.stats().range_tombstones == 0).await;
    assert_eq!(count(&db, b"t/", b"t0").await, 2);
}

/// An injected commit_unknown_result after the commit landed: the data is there, and the caller
/// was told the outcome is unknown.
#[tokio::test]
async fn injected_unknown_results_land_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    for (landed, key) in [(true, &b"landed"[..]), (false, &b"lost"[..])] {
        db.as_embedded().unwrap().inject_unknown_results(1, landed);
        let tx = db.create_transaction().unwrap();
        tx.set(key, b"v");
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.code(), KvError::COMMIT_UNKNOWN_RESULT);
        let tx = db.create_transaction().unwrap();
        assert_eq!(tx.get(key, false).await.unwrap().is_some(), landed);
    }
}

/// Once fjall seals a journal and the data written to it has been flushed, the journal goes: the
/// meta keyspace's one small write per commit does not keep it (and every later restart
/// replaying it) alive.
#[tokio::test]
async fn sealed_journals_are_let_go_once_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    let e = db.as_embedded().unwrap().clone();
    // Values under the value log's threshold, so that they go through fjall's journal.
    let value = vec![7u8; 1_000];
    let commit = |round: usize| {
        let (db, value) = (db.clone(), value.clone());
        async move {
            db.run(|tx, _| {
                let value = value.clone();
                async move {
                    for k in 0..900 {
                        tx.set(format!("j/{round:06}/{k:03}").as_bytes(), &value);
                    }
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        }
    };
    // fjall seals its journal at a flush once it is past 64 MB.
    let mut round = 0;
    while e.stats().journal_files < 2 {
        assert!(
            round < 400,
            "no journal was sealed after {round} commits of 0.9 MB"
        );
        commit(round).await;
        round += 1;
    }
    // Two more memtables' worth, so the data keyspace flushes what it wrote to the sealed one.
    for _ in 0..20 {
        commit(round).await;
        round += 1;
    }
    wait_for("the sealed journal to go", || e.stats().journal_files == 1).await;
}

/// A new store's memtables are sealed by kfdb-kv (fjall's own rotation is off in it), at the
/// configured size, and what they held is read back after a restart.
#[tokio::test]
async fn kfdb_kv_seals_full_memtables() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        memtable_bytes: 1 << 20,
        ..EmbeddedOptions::default()
    };
    // Values under the value log's threshold, so that they fill fjall's memtables.
    let value = vec![3u8; 1_000];
    {
        let db = open(dir.path(), options.clone());
        for round in 0..40u32 {
            let value = value.clone();
            db.run(|tx, _| {
                let value = value.clone();
                async move {
                    for k in 0..250u32 {
                        tx.set(format!("m/{round:04}/{k:03}").as_bytes(), &value);
                    }
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        }
        // 10 MB written into 1 MiB memtables: sealed on the seal thread, which may lag (then
        // the memtables it seals are larger and fewer); never more than ten.
        let e = db.as_embedded().unwrap().clone();
        wait_for("a memtable to be sealed", || {
            e.stats().memtables_sealed >= 1
        })
        .await;
        let sealed = e.stats().memtables_sealed;
        assert!(sealed <= 10, "sealed {sealed}");
    }
    let db = open(dir.path(), options);
    let tx = db.create_transaction().unwrap();
    let rows = tx
        .get_range_all(kfdb_kv::RangeOption::new(&b"m/"[..], &b"m0"[..]), true)
        .await
        .unwrap();
    assert_eq!(rows.len(), 10_000);
    assert!(rows.iter().all(|kv| kv.value[..] == value[..]));
}

/// Values of 1 KiB and more are kept in the store's value log, fjall holding a pointer: they read
/// back the same, point by point and by range, after a restart too, and `verify` reads them.
#[tokio::test]
async fn large_values_live_in_the_value_log() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<Vec<u8>> = (0..10u8)
        .map(|n| (0..90_000).map(|i| (i as u8).wrapping_mul(n + 1)).collect())
        .collect();
    {
        let db = open(dir.path(), EmbeddedOptions::default());
        let values = values.clone();
        db.run(|tx, _| {
            let values = values.clone();
            async move {
                for (n, v) in values.iter().enumerate() {
                    tx.set(format!("big/{n}").as_bytes(), v);
                }
                tx.set(b"small", b"stays in fjall");
                Ok::<_, KvError>(())
            }
        })
        .await
        .unwrap();
    }
    // The log holds the values' bytes (and their keys), fjall does not need to.
    let logged: u64 = std::fs::read_dir(dir.path().join("vlog"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(logged >= 900_000, "value log holds {logged} bytes");
    let db = open(dir.path(), EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    for (n, v) in values.iter().enumerate() {
        let got = tx.get(format!("big/{n}").as_bytes(), false).await.unwrap();
        assert_eq!(got.as_deref(), Some(&v[..]));
    }
    let rows = tx
        .get_range_all(kfdb_kv::RangeOption::new(&b"big/"[..], &b"big0"[..]), true)
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    for (row, n) in rows.iter().zip(0..) {
        assert_eq!(&row.value[..], &values[n][..]);
    }
    assert_eq!(
        tx.get(b"small", false).await.unwrap().as_deref(),
        Some(&b"stays in fjall"[..])
    );
    let (entries, bytes) = db.as_embedded().unwrap().verify().unwrap();
    assert!(
        entries >= 11 && bytes >= 900_000,
        "{entries} entries, {bytes} bytes"
    );
    let stats = db.as_embedded().unwrap().stats();
    assert!(stats.value_log_segments >= 1, "{stats:?}");
    assert_eq!(
        stats.value_log_bytes, logged,
        "the stats count the files' bytes"
    );
}

/// A logged value whose bytes were damaged on disk is a store fault (I/O error) for its reader
/// and for `verify`, never wrong bytes or a missing key.
#[tokio::test]
async fn a_damaged_logged_value_is_a_store_fault() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), EmbeddedOptions::default());
        set(&db, b"big", &[5u8; 50_000]).await;
    }
    let segment = std::fs::read_dir(dir.path().join("vlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a value log segment with data");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let db = open(dir.path(), EmbeddedOptions::default());
    let tx = db.create_transaction().unwrap();
    let err = tx.get(b"big", false).await.unwrap_err();
    assert_eq!(err.code(), KvError::IO_ERROR);
    let err = db.as_embedded().unwrap().verify().unwrap_err();
    assert_eq!(err.code(), KvError::IO_ERROR);
}

/// A store whose value log collector works in milliseconds, on 256 KiB segments.
fn collecting() -> EmbeddedOptions {
    EmbeddedOptions {
        value_log_segment_bytes: 256 * 1024,
        value_log_collect_every: Duration::from_millis(20),
        value_log_grace: Duration::from_millis(100),
        value_log_rewalk: Duration::from_millis(200),
        ..EmbeddedOptions::default()
    }
}

fn value_log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("vlog"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn big(n: usize) -> Vec<u8> {
    (0..50_000).map(|i| (i + n) as u8).collect()
}

async fn write_big(db: &Database, keys: std::ops::Range<usize>) {
    for n in keys {
        let v = big(n);
        db.run(|tx, _| {
            let v = v.clone();
            async move {
                tx.set(format!("v/{n:04}").as_bytes(), &v);
                Ok::<_, KvError>(())
            }
        })
        .await
        .unwrap();
    }
}

async fn check_big(db: &Database, keys: impl Iterator<Item = usize>) {
    let tx = db.create_transaction().unwrap();
    for n in keys {
        let got = tx.get(format!("v/{n:04}").as_bytes(), false).await.unwrap();
        assert_eq!(got.as_deref(), Some(&big(n)[..]), "v/{n:04}");
    }
}

fn segment_ids(dir: &std::path::Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir.join("vlog"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
        })
        .collect();
    ids.sort();
    ids
}

/// Logged values that were cleared or overwritten give their space back: segments with nothing
/// live are deleted, and the live values of mostly dead ones are moved first; every live value
/// still reads back, also after a restart.
#[tokio::test]
async fn the_value_log_gives_back_the_space_of_dead_values() {
    let dir = tempfile::tempdir().unwrap();
    let kept = |n: usize| (n < 40 && n.is_multiple_of(5)) || n >= 50;
    {
        let db = open(dir.path(), collecting());
        write_big(&db, 0..60).await; // 3 MB, 5 values per 256 KiB segment
        let before = value_log_bytes(dir.path());
        assert!(before >= 3_000_000, "{before}");
        // 0..40: four values in five cleared one by one, so each of the first eight segments
        // keeps one live value (moved before the segment goes); 40..50 cleared as a range;
        // 50..55 overwritten; 55..60 untouched.
        db.run(|tx, _| async move {
            for n in (0..40usize).filter(|n| !n.is_multiple_of(5)) {
                tx.clear(format!("v/{n:04}").as_bytes());
            }
            tx.clear_range(b"v/0040", b"v/0050");
            Ok::<_, KvError>(())
        })
        .await
        .unwrap();
        write_big(&db, 50..55).await;
        wait_for("the first segments to be collected", || {
            segment_ids(dir.path()).first().is_some_and(|id| *id >= 10)
        })
        .await;
        assert!(value_log_bytes(dir.path()) < before / 2);
        // The eight segments that kept one live value each had it moved first.
        let stats = db.as_embedded().unwrap().stats();
        assert!(stats.value_log_segments_removed >= 10, "{stats:?}");
        assert!(stats.value_log_values_moved >= 8, "{stats:?}");
        assert!(stats.value_log_bytes_moved >= 8 * 50_000, "{stats:?}");
        check_big(&db, (0..60).filter(|n| kept(*n))).await;
        let tx = db.create_transaction().unwrap();
        for n in (0..60).filter(|n| !kept(*n)) {
            let got = tx.get(format!("v/{n:04}").as_bytes(), false).await.unwrap();
            assert_eq!(got, None, "v/{n:04}");
        }
    }
    let db = open(dir.path(), EmbeddedOptions::default());
    check_big(&db, (0..60).filter(|n| kept(*n))).await;
    let (entries, _) = db.as_embedded().unwrap().verify().unwrap();
    assert!(entries >= 18, "{entries}");
}
