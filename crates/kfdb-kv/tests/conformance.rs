//! The conformance suite of the storage seam: one set of cases, run against every backend.
//!
//! `embedded` always runs. `fdb` runs when built with `--features fdb` and `KFDB_FDB_CLUSTER_FILE`
//! set (see build.rs); otherwise its tests are reported as ignored. Each case works under its own
//! key prefix, so the FoundationDB variant can share a cluster with other data.

use bytes::Bytes;
use futures::FutureExt;
use kfdb_kv::tuple::{Subspace, Versionstamp};
use kfdb_kv::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Ctx {
    db: Database,
    prefix: Vec<u8>,
    _dir: Option<tempfile::TempDir>,
}

impl Ctx {
    fn k(&self, name: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(name.as_bytes());
        k
    }
    fn end(&self) -> Vec<u8> {
        strinc(&self.prefix).expect("non-empty prefix")
    }
    async fn cleanup(&self) {
        let (b, e) = (self.prefix.clone(), self.end());
        let _ = self
            .db
            .run(|tx, _| {
                let (b, e) = (b.clone(), e.clone());
                async move {
                    tx.clear_range(&b, &e);
                    Ok::<_, KvError>(())
                }
            })
            .await;
    }
    async fn put(&self, pairs: &[(&str, &str)]) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (self.k(k), v.as_bytes().to_vec()))
            .collect();
        self.db
            .run(|tx, _| {
                let pairs = pairs.clone();
                async move {
                    for (k, v) in &pairs {
                        tx.set(k, v);
                    }
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
    }
    async fn read(&self, name: &str) -> Option<Bytes> {
        let tx = self.db.create_transaction().unwrap();
        tx.get(&self.k(name), true).await.unwrap()
    }
}

async fn open_embedded() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let db =
        Database::open_embedded(dir.path(), kfdb_kv::embedded::EmbeddedOptions::default()).unwrap();
    Ctx {
        db,
        prefix: b"conformance/".to_vec(),
        _dir: Some(dir),
    }
}

#[allow(unreachable_code)]
async fn open_fdb() -> Ctx {
    #[cfg(feature = "fdb")]
    {
        let cluster = std::env::var("KFDB_FDB_CLUSTER_FILE").expect("KFDB_FDB_CLUSTER_FILE");
        let db = Database::open_fdb(Some(&cluster)).unwrap();
        let prefix = format!("kfdb-conformance/{:016x}/", rand_id()).into_bytes();
        return Ctx {
            db,
            prefix,
            _dir: None,
        };
    }
    panic!("built without the fdb feature")
}

#[cfg(feature = "fdb")]
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

macro_rules! suite {
    ($backend:ident, $open:path, $attr:meta, $($case:ident),* $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[$attr]
                async fn $case() {
                    let ctx = $open().await;
                    cases::$case(&ctx).await;
                    ctx.cleanup().await;
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($case:ident),* $(,)?) => {
        suite!(embedded, open_embedded, cfg_attr(any(), ignore), $($case),*);
        suite!(
            fdb,
            open_fdb,
            cfg_attr(not(kfdb_fdb_live), ignore = "needs --features fdb and KFDB_FDB_CLUSTER_FILE"),
            $($case),*
        );
    };
}

all_backends!(
    read_your_writes,
    concurrent_read_modify_write_retries,
    snapshot_reads_and_atomic_ops_do_not_conflict,
    range_conflicts_cover_what_was_read,
    range_reads_forward_reverse_limits,
    range_stream_pages_through_large_ranges,
    key_selectors,
    atomic_operations,
    versionstamps_order_and_placement,
    watches_fire_after_change,
    key_and_value_limits,
    transaction_size_limit,
    transaction_too_old,
    illegal_keys_and_ranges,
    retry_loop_stops_on_fatal_errors,
    read_only_commit,
    large_range_clears,
    commit_unknown_result_is_retried_as_maybe_committed,
);

mod cases {
    use super::*;

    /// A clear over thousands of keys (the embedded store makes it a tombstone and deletes the
    /// keys later): readers after it see nothing of the old keys, readers before it see them all,
    /// keys written after it (in the same transaction or later) are seen, atomic operations treat
    /// cleared keys as absent, and watches on cleared keys fire.
    pub async fn large_range_clears(c: &Ctx) {
        const N: usize = 3_000;
        let key = |i: usize| c.k(&format!("big/{i:05}"));
        for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
            let tx = c.db.create_transaction().unwrap();
            for &i in chunk {
                tx.set(&key(i), format!("v{i}").as_bytes());
            }
            tx.commit().await.unwrap();
        }
        c.put(&[("bigger", "outside"), ("counter", "\x05")]).await;
        let counter = c.k("big/counter");
        let tx = c.db.create_transaction().unwrap();
        tx.atomic_op(&counter, &7u64.to_le_bytes(), MutationType::Add);
        tx.commit().await.unwrap();
        // A reader from before the clear.
        let before = c.db.create_transaction().unwrap();
        assert!(before.get(&key(1), true).await.unwrap().is_some());
        let watched = c.db.create_transaction().unwrap();
        watched.get(&key(7), false).await.unwrap();
        let watch = watched.watch(&key(7));
        watched.commit().await.unwrap();
        let (b, e) = (c.k("big/"), c.k("big0"));
        let tx = c.db.create_transaction().unwrap();
        tx.clear_range(&b, &e);
        tx.set(&key(5), b"again");
        let inside = tx
            .get_range_all(RangeOption::new(b.clone(), e.clone()), false)
            .await
            .unwrap();
        assert_eq!(inside.len(), 1, "the same transaction sees its own clear");
        tx.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), watch)
            .await
            .expect("a watch on a cleared key fires")
            .unwrap();
        let rows = |reverse: bool| {
            let (b, e) = (b.clone(), e.clone());
            let db = c.db.clone();
            async move {
                let tx = db.create_transaction().unwrap();
                tx.get_range_all(RangeOption::new(b, e).reverse(reverse), false)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(rows(false).await, vec![(key(5), b"again".to_vec())]);
        assert_eq!(rows(true).await, vec![(key(5), b"again".to_vec())]);
        let tx = c.db.create_transaction().unwrap();
        assert_eq!(tx.get(&key(1), false).await.unwrap(), None);
        assert_eq!(tx.get(&counter, false).await.unwrap(), None);
        assert_eq!(
            tx.get_key(&KeySelector::first_greater_or_equal(b.clone()), false)
                .await
                .unwrap()
                .to_vec(),
            key(5)
        );
        assert_eq!(c.read("bigger").await.as_deref(), Some(&b"outside"[..]));
        // The reader from before still sees every old key (its snapshot predates the clear).
        let old = before
            .get_range_all(RangeOption::new(b.clone(), e.clone()), true)
            .await
            .unwrap();
        assert_eq!(old.len(), N + 1);
        // Writes after the clear: a set, an atomic add on a cleared key (starts from nothing).
        let tx = c.db.create_transaction().unwrap();
        tx.set(&key(9), b"later");
        tx.atomic_op(&counter, &1u64.to_le_bytes(), MutationType::Add);
        tx.commit().await.unwrap();
        let got = rows(false).await;
        assert_eq!(
            got.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![key(5), key(9), counter.clone()]
        );
        assert_eq!(got[2].1, 1u64.to_le_bytes().to_vec());
        // Cleared again, then one more key: only that one.
        let tx = c.db.create_transaction().unwrap();
        tx.clear_range(&b, &e);
        tx.commit().await.unwrap();
        c.put(&[("big/00002", "last")]).await;
        // Give a lazy backend time to finish its deletion, then check once more.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rows(false).await, vec![(key(2), b"last".to_vec())]);
    }

    /// A commit that fails with commit_unknown_result may have landed; the retry loop retries it
    /// and tells the closure so (`MaybeCommitted(true)`).
    pub async fn commit_unknown_result_is_retried_as_maybe_committed(c: &Ctx) {
        let Some(embedded) = c.db.as_embedded() else {
            // Only the embedded store can be made to lose an answer on purpose.
            return;
        };
        for landed in [true, false] {
            let key = c.k(&format!("unknown-{landed}"));
            embedded.inject_unknown_results(1, landed);
            let attempts = Arc::new(AtomicUsize::new(0));
            let seen =
                c.db.run(|tx, maybe| {
                    let (key, attempts) = (key.clone(), attempts.clone());
                    async move {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let before = tx.get(&key, false).await?;
                        tx.atomic_op(&key, &1u64.to_le_bytes(), MutationType::Add);
                        Ok::<_, KvError>((maybe.0, before.is_some()))
                    }
                })
                .await
                .unwrap();
            assert_eq!(attempts.load(Ordering::SeqCst), 2);
            assert_eq!(
                seen,
                (true, landed),
                "the retry knows the first attempt may have landed, and finds it did when it did"
            );
            let expected = if landed { 2u64 } else { 1u64 };
            assert_eq!(
                c.read(&format!("unknown-{landed}")).await.unwrap().to_vec(),
                expected.to_le_bytes().to_vec()
            );
        }
    }

    pub async fn read_your_writes(c: &Ctx) {
        c.put(&[("a", "1"), ("c", "3")]).await;
        let tx = c.db.create_transaction().unwrap();
        tx.set(&c.k("b"), b"2");
        tx.clear(&c.k("c"));
        assert_eq!(
            tx.get(&c.k("b"), false).await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(tx.get(&c.k("c"), false).await.unwrap(), None);
        let rows = tx
            .get_range_all(RangeOption::new(c.k(""), c.end()), false)
            .await
            .unwrap();
        let keys: Vec<_> = rows.iter().map(|kv| kv.key.to_vec()).collect();
        assert_eq!(keys, vec![c.k("a"), c.k("b")]);
        // Not visible to others before commit, visible after.
        assert_eq!(c.read("b").await, None);
        let info = tx.commit().await.unwrap();
        assert!(info.version > 0);
        assert_eq!(c.read("b").await.as_deref(), Some(&b"2"[..]));
        assert_eq!(c.read("c").await, None);
    }

    pub async fn concurrent_read_modify_write_retries(c: &Ctx) {
        // Two transactions read the same key; the second to commit must conflict.
        c.put(&[("n", "0")]).await;
        let t1 = c.db.create_transaction().unwrap();
        let t2 = c.db.create_transaction().unwrap();
        let v1 = t1.get(&c.k("n"), false).await.unwrap();
        let v2 = t2.get(&c.k("n"), false).await.unwrap();
        assert_eq!(v1, v2);
        t1.set(&c.k("n"), b"1");
        t2.set(&c.k("n"), b"2");
        t1.commit().await.unwrap();
        let err = t2.commit().await.unwrap_err();
        assert_eq!(err.code(), KvError::NOT_COMMITTED, "{err}");
        assert!(err.is_retryable());

        // Through the retry loop, concurrent increments all land exactly once.
        let key = c.k("counter");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let db = c.db.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        db.run(|tx, _| {
                            let key = key.clone();
                            async move {
                                let n = match tx.get(&key, false).await? {
                                    Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap()),
                                    None => 0,
                                };
                                tx.set(&key, &(n + 1).to_be_bytes());
                                Ok::<_, KvError>(())
                            }
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let v =
            c.db.create_transaction()
                .unwrap()
                .get(&key, false)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(u64::from_be_bytes(v.as_ref().try_into().unwrap()), 80);
    }

    pub async fn snapshot_reads_and_atomic_ops_do_not_conflict(c: &Ctx) {
        c.put(&[("s", "x")]).await;
        let t1 = c.db.create_transaction().unwrap();
        let t2 = c.db.create_transaction().unwrap();
        t1.get(&c.k("s"), true).await.unwrap();
        t2.get(&c.k("s"), true).await.unwrap();
        t1.atomic_op(&c.k("sum"), &1u64.to_le_bytes(), MutationType::Add);
        t2.atomic_op(&c.k("sum"), &2u64.to_le_bytes(), MutationType::Add);
        t1.set(&c.k("s"), b"y");
        t2.set(&c.k("s2"), b"z");
        t1.commit().await.unwrap();
        t2.commit().await.unwrap();
        assert_eq!(c.read("sum").await.unwrap().as_ref(), 3u64.to_le_bytes());
    }

    pub async fn range_conflicts_cover_what_was_read(c: &Ctx) {
        c.put(&[("r/a", "1"), ("r/c", "1")]).await;
        // A write inside a range read → conflict.
        let t = c.db.create_transaction().unwrap();
        t.get_range(&RangeOption::new(c.k("r/"), c.k("r0")), false)
            .await
            .unwrap();
        c.put(&[("r/b", "new")]).await;
        t.set(&c.k("out"), b"1");
        assert_eq!(t.commit().await.unwrap_err().code(), KvError::NOT_COMMITTED);
        // A write outside it → no conflict.
        let t = c.db.create_transaction().unwrap();
        t.get_range(&RangeOption::new(c.k("r/"), c.k("r0")), false)
            .await
            .unwrap();
        c.put(&[("z", "new")]).await;
        t.set(&c.k("out"), b"1");
        t.commit().await.unwrap();
        // A limited read only conflicts on the part it returned.
        let t = c.db.create_transaction().unwrap();
        let r = t
            .get_range(&RangeOption::new(c.k("r/"), c.k("r0")).limit(1), false)
            .await
            .unwrap();
        assert!(r.more);
        c.put(&[("r/zz", "beyond")]).await;
        t.set(&c.k("out"), b"2");
        t.commit().await.unwrap();
        // An explicit read conflict range works like a read, from the read version on.
        let t = c.db.create_transaction().unwrap();
        t.get_read_version().await.unwrap();
        t.add_read_conflict_range(&c.k("x/"), &c.k("x0")).unwrap();
        c.put(&[("x/1", "w")]).await;
        t.set(&c.k("out"), b"3");
        assert_eq!(t.commit().await.unwrap_err().code(), KvError::NOT_COMMITTED);
        // Without a read version before the other write (FoundationDB takes one at commit), the
        // range conflicts with nothing committed earlier.
        let t = c.db.create_transaction().unwrap();
        t.add_read_conflict_range(&c.k("x/"), &c.k("x0")).unwrap();
        c.put(&[("x/2", "w")]).await;
        t.set(&c.k("out"), b"4");
        t.commit().await.unwrap();
    }

    pub async fn range_reads_forward_reverse_limits(c: &Ctx) {
        let names: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        c.put(&pairs).await;
        let tx = c.db.create_transaction().unwrap();
        let all = RangeOption::new(c.k("k"), c.k("l"));
        let fwd = tx.get_range(&all, false).await.unwrap();
        assert_eq!(fwd.kvs.len(), 20);
        assert!(!fwd.more);
        assert_eq!(fwd.kvs[0].key.as_ref(), c.k("k00"));
        let rev = tx
            .get_range(&all.clone().reverse(true).limit(3), false)
            .await
            .unwrap();
        let rk: Vec<_> = rev.kvs.iter().map(|kv| kv.key.to_vec()).collect();
        assert_eq!(rk, vec![c.k("k19"), c.k("k18"), c.k("k17")]);
        assert!(rev.more);
        let lim = tx.get_range(&all.clone().limit(5), false).await.unwrap();
        assert_eq!(lim.kvs.len(), 5);
        assert!(lim.more);
        let exact = tx.get_range(&all.clone().limit(20), false).await.unwrap();
        assert_eq!(exact.kvs.len(), 20);
        // Selector bounds: from first key > k05 to last key <= k08 (exclusive end after it).
        let sel = RangeOption {
            begin: KeySelector::first_greater_than(c.k("k05")),
            end: KeySelector::first_greater_than(c.k("k08")),
            limit: None,
            target_bytes: 0,
            reverse: false,
        };
        let mid = tx.get_range(&sel, false).await.unwrap();
        let mk: Vec<_> = mid.kvs.iter().map(|kv| kv.key.to_vec()).collect();
        assert_eq!(mk, vec![c.k("k06"), c.k("k07"), c.k("k08")]);
        // Empty and inverted ranges return nothing.
        let none = tx
            .get_range(&RangeOption::new(c.k("l"), c.k("k")), false)
            .await
            .unwrap();
        assert!(none.kvs.is_empty() && !none.more);
    }

    pub async fn range_stream_pages_through_large_ranges(c: &Ctx) {
        let n = 2_500usize;
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let keys: Vec<Vec<u8>> = chunk.iter().map(|i| c.k(&format!("p{i:05}"))).collect();
            c.db.run(|tx, _| {
                let keys = keys.clone();
                async move {
                    for k in &keys {
                        tx.set(k, b"value");
                    }
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        }
        let tx = c.db.create_transaction().unwrap();
        let rows = tx
            .get_range_all(RangeOption::new(c.k("p"), c.k("q")), true)
            .await
            .unwrap();
        assert_eq!(rows.len(), n);
        assert!(rows.windows(2).all(|w| w[0].key < w[1].key));
        let rev = tx
            .get_range_all(
                RangeOption::new(c.k("p"), c.k("q"))
                    .reverse(true)
                    .limit(1_234),
                true,
            )
            .await
            .unwrap();
        assert_eq!(rev.len(), 1_234);
        assert_eq!(rev[0].key.as_ref(), c.k(&format!("p{:05}", n - 1)));
        assert!(rev.windows(2).all(|w| w[0].key > w[1].key));
    }

    pub async fn key_selectors(c: &Ctx) {
        c.put(&[("b", "1"), ("d", "1"), ("f", "1")]).await;
        let tx = c.db.create_transaction().unwrap();
        let get = |s: KeySelector| {
            let tx = tx.clone();
            async move { tx.get_key(&s, false).await.unwrap().to_vec() }
        };
        assert_eq!(
            get(KeySelector::first_greater_or_equal(c.k("c"))).await,
            c.k("d")
        );
        assert_eq!(
            get(KeySelector::first_greater_or_equal(c.k("d"))).await,
            c.k("d")
        );
        assert_eq!(
            get(KeySelector::first_greater_than(c.k("d"))).await,
            c.k("f")
        );
        assert_eq!(get(KeySelector::last_less_than(c.k("d"))).await, c.k("b"));
        assert_eq!(
            get(KeySelector::last_less_or_equal(c.k("d"))).await,
            c.k("d")
        );
        assert_eq!(
            get(KeySelector::first_greater_or_equal(c.k("b")).offset_by(2)).await,
            c.k("f")
        );
        assert_eq!(
            get(KeySelector::last_less_or_equal(c.k("f")).offset_by(-1)).await,
            c.k("d")
        );
        // Local writes are seen by selectors too.
        tx.set(&c.k("e"), b"local");
        assert_eq!(
            get(KeySelector::first_greater_than(c.k("d"))).await,
            c.k("e")
        );
        tx.clear(&c.k("e"));
        assert_eq!(
            get(KeySelector::first_greater_than(c.k("d"))).await,
            c.k("f")
        );
    }

    pub async fn atomic_operations(c: &Ctx) {
        let le = |n: u64| n.to_le_bytes().to_vec();
        c.put(&[("cas", "same"), ("cas2", "other"), ("app", "ab")])
            .await;
        let ops: Vec<(&str, Vec<u8>, MutationType)> = vec![
            ("add", le(5), MutationType::Add),
            ("add", le(7), MutationType::Add),
            ("max", le(3), MutationType::Max),
            ("max", le(9), MutationType::Max),
            ("max", le(4), MutationType::Max),
            ("min", le(9), MutationType::Min),
            ("min", le(2), MutationType::Min),
            ("min", le(5), MutationType::Min),
            ("bmin", b"m".to_vec(), MutationType::ByteMin),
            ("bmin", b"c".to_vec(), MutationType::ByteMin),
            ("bmax", b"m".to_vec(), MutationType::ByteMax),
            ("bmax", b"z".to_vec(), MutationType::ByteMax),
            ("and", vec![0x0f], MutationType::BitAnd),
            ("and", vec![0x3c], MutationType::BitAnd),
            ("or", vec![0x30], MutationType::BitOr),
            ("or", vec![0x03], MutationType::BitOr),
            ("xor", vec![0xff], MutationType::BitXor),
            ("xor", vec![0x0f], MutationType::BitXor),
            ("cas", b"same".to_vec(), MutationType::CompareAndClear),
            ("cas2", b"same".to_vec(), MutationType::CompareAndClear),
            ("app", b"cd".to_vec(), MutationType::AppendIfFits),
        ];
        // Each op in its own transaction (applied at commit on the store) ...
        for (k, p, op) in &ops {
            let key = c.k(k);
            let p = p.clone();
            let op = *op;
            c.db.run(|tx, _| {
                let (key, p) = (key.clone(), p.clone());
                async move {
                    tx.atomic_op(&key, &p, op);
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        }
        let expect: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("add", Some(le(12))),
            ("max", Some(le(9))),
            ("min", Some(le(2))),
            ("bmin", Some(b"c".to_vec())),
            ("bmax", Some(b"z".to_vec())),
            ("and", Some(vec![0x0c])),
            ("or", Some(vec![0x33])),
            ("xor", Some(vec![0xf0])),
            ("cas", None),
            ("cas2", Some(b"other".to_vec())),
            ("app", Some(b"abcd".to_vec())),
        ];
        for (k, v) in &expect {
            assert_eq!(c.read(k).await.map(|b| b.to_vec()), *v, "committed {k}");
        }
        // ... and all in one transaction, read back through read-your-writes before commit.
        let tx = c.db.create_transaction().unwrap();
        tx.clear_range(&c.k(""), &c.end());
        tx.set(&c.k("cas"), b"same");
        tx.set(&c.k("cas2"), b"other");
        tx.set(&c.k("app"), b"ab");
        for (k, p, op) in &ops {
            tx.atomic_op(&c.k(k), p, *op);
        }
        for (k, v) in &expect {
            let got = tx.get(&c.k(k), false).await.unwrap().map(|b| b.to_vec());
            assert_eq!(got, *v, "read-your-writes {k}");
        }
        tx.commit().await.unwrap();
        for (k, v) in &expect {
            assert_eq!(
                c.read(k).await.map(|b| b.to_vec()),
                *v,
                "one transaction {k}"
            );
        }
    }

    pub async fn versionstamps_order_and_placement(c: &Ctx) {
        let space = Subspace::from_bytes(c.k("vs/"));
        let mut stamps = Vec::new();
        for i in 0..3u16 {
            let key = space.pack_with_versionstamp(&(Versionstamp::incomplete(i), "x"));
            let vkey = c.k(&format!("val{i}"));
            let mut vparam = b"pre-".to_vec();
            vparam.extend_from_slice(&[0u8; 10]);
            vparam.extend_from_slice(&4u32.to_le_bytes());
            let (_, info) =
                c.db.run_versioned(|tx, _| {
                    let (key, vkey, vparam) = (key.clone(), vkey.clone(), vparam.clone());
                    async move {
                        tx.atomic_op(&key, b"payload", MutationType::SetVersionstampedKey);
                        tx.atomic_op(&vkey, &vparam, MutationType::SetVersionstampedValue);
                        Ok::<_, KvError>(())
                    }
                })
                .await
                .unwrap();
            let stamp = info
                .versionstamp
                .expect("a writing commit has a versionstamp");
            assert!(info.version > 0);
            assert_eq!(&stamp[..8], &(info.version as u64).to_be_bytes());
            let v = c.read(&format!("val{i}")).await.unwrap();
            assert_eq!(&v[..4], b"pre-");
            assert_eq!(&v[4..], &stamp);
            stamps.push(stamp);
        }
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
        let tx = c.db.create_transaction().unwrap();
        let (b, e) = space.range();
        let rows = tx
            .get_range_all(RangeOption::new(b, e), false)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        for (row, (i, stamp)) in rows.iter().zip(stamps.iter().enumerate()) {
            let (vs, s): (Versionstamp, String) = space.unpack(&row.key).unwrap();
            assert_eq!(vs.transaction_version(), stamp);
            assert_eq!(vs.user_version(), i as u16);
            assert_eq!(s, "x");
            assert_eq!(row.value.as_ref(), b"payload");
        }
        // A versionstamped value cannot be read back before commit.
        let tx = c.db.create_transaction().unwrap();
        let mut vparam = vec![0u8; 10];
        vparam.extend_from_slice(&0u32.to_le_bytes());
        tx.atomic_op(
            &c.k("unreadable"),
            &vparam,
            MutationType::SetVersionstampedValue,
        );
        let err = tx.get(&c.k("unreadable"), false).await.unwrap_err();
        assert_eq!(err.code(), KvError::ACCESSED_UNREADABLE);
    }

    pub async fn watches_fire_after_change(c: &Ctx) {
        c.put(&[("w", "1")]).await;
        let tx = c.db.create_transaction().unwrap();
        tx.get(&c.k("w"), false).await.unwrap();
        let mut watch = tx.watch(&c.k("w"));
        tx.commit().await.unwrap();
        c.put(&[("other", "x")]).await;
        assert!(
            (&mut watch).now_or_never().is_none(),
            "fired without a change"
        );
        c.put(&[("w", "2")]).await;
        tokio::time::timeout(Duration::from_secs(30), watch)
            .await
            .expect("watch never fired")
            .unwrap();
        // A watch set in a transaction that then fails does not stay pending.
        let tx = c.db.create_transaction().unwrap();
        let watch = tx.watch(&c.k("w"));
        tx.set(&[b'x'; 10_001], b"too long key");
        assert!(tx.commit().await.is_err());
        let r = tokio::time::timeout(Duration::from_secs(30), watch)
            .await
            .expect("pending");
        assert!(r.is_err());
    }

    pub async fn key_and_value_limits(c: &Ctx) {
        let code = |r: KvResult<CommitInfo>| r.unwrap_err().code();
        let tx = c.db.create_transaction().unwrap();
        let mut long = c.k("");
        long.resize(MAX_KEY_SIZE + 1, b'k');
        tx.set(&long, b"v");
        assert_eq!(code(tx.commit().await), KvError::KEY_TOO_LARGE);
        let tx = c.db.create_transaction().unwrap();
        tx.set(&c.k("big"), &vec![0u8; MAX_VALUE_SIZE + 1]);
        assert_eq!(code(tx.commit().await), KvError::VALUE_TOO_LARGE);
        // set_bytes (an owned value) has set's limits and semantics.
        let tx = c.db.create_transaction().unwrap();
        tx.set_bytes(&c.k("big"), Bytes::from(vec![0u8; MAX_VALUE_SIZE + 1]));
        assert_eq!(code(tx.commit().await), KvError::VALUE_TOO_LARGE);
        let tx = c.db.create_transaction().unwrap();
        let owned = Bytes::from(vec![9u8; MAX_VALUE_SIZE]);
        tx.set_bytes(&c.k("owned"), owned.clone());
        assert_eq!(
            tx.get(&c.k("owned"), false).await.unwrap(),
            Some(owned.clone())
        );
        tx.commit().await.unwrap();
        assert_eq!(c.read("owned").await, Some(owned));
        // Exactly at the limits is fine.
        let mut max_key = c.k("");
        max_key.resize(MAX_KEY_SIZE, b'k');
        let tx = c.db.create_transaction().unwrap();
        tx.set(&max_key, &vec![7u8; MAX_VALUE_SIZE]);
        tx.commit().await.unwrap();
        let tx = c.db.create_transaction().unwrap();
        assert_eq!(
            tx.get(&max_key, false).await.unwrap().unwrap().len(),
            MAX_VALUE_SIZE
        );
    }

    pub async fn transaction_size_limit(c: &Ctx) {
        let tx = c.db.create_transaction().unwrap();
        let value = vec![1u8; 99_000];
        for i in 0..102 {
            tx.set(&c.k(&format!("big{i:03}")), &value);
        }
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.code(), KvError::TRANSACTION_TOO_LARGE, "{err}");
        assert_eq!(
            c.read("big000").await,
            None,
            "nothing of a rejected transaction is applied"
        );
    }

    pub async fn transaction_too_old(c: &Ctx) {
        c.put(&[("old", "1")]).await;
        let tx = c.db.create_transaction().unwrap();
        tx.get(&c.k("old"), false).await.unwrap();
        tokio::time::sleep(MAX_TRANSACTION_AGE + Duration::from_millis(500)).await;
        let err = match tx.get(&c.k("old"), false).await {
            Err(e) => e,
            Ok(_) => {
                tx.set(&c.k("old"), b"2");
                tx.commit().await.unwrap_err()
            }
        };
        assert_eq!(err.code(), KvError::TRANSACTION_TOO_OLD, "{err}");
        assert!(err.is_retryable());
    }

    pub async fn illegal_keys_and_ranges(c: &Ctx) {
        let tx = c.db.create_transaction().unwrap();
        tx.set(b"\xff/system", b"no");
        assert_eq!(
            tx.commit().await.unwrap_err().code(),
            KvError::KEY_OUTSIDE_LEGAL_RANGE
        );
        let tx = c.db.create_transaction().unwrap();
        tx.clear_range(&c.k("b"), &c.k("a"));
        assert_eq!(
            tx.commit().await.unwrap_err().code(),
            KvError::INVERTED_RANGE
        );
        // clear_range removes exactly [begin, end).
        c.put(&[("a", "1"), ("b", "1"), ("c", "1")]).await;
        c.db.run(|tx, _| {
            let (b, e) = (c.k("a"), c.k("c"));
            async move {
                tx.clear_range(&b, &e);
                Ok::<_, KvError>(())
            }
        })
        .await
        .unwrap();
        assert_eq!(c.read("a").await, None);
        assert_eq!(c.read("b").await, None);
        assert!(c.read("c").await.is_some());
    }

    #[derive(Debug)]
    enum AppError {
        Kv(KvError),
        NotFound,
    }
    impl From<KvError> for AppError {
        fn from(e: KvError) -> Self {
            AppError::Kv(e)
        }
    }
    impl TxError for AppError {
        fn kv_error(&self) -> Option<&KvError> {
            match self {
                AppError::Kv(e) => Some(e),
                AppError::NotFound => None,
            }
        }
    }

    pub async fn retry_loop_stops_on_fatal_errors(c: &Ctx) {
        let calls = Arc::new(AtomicUsize::new(0));
        let r: Result<(), AppError> =
            c.db.run(|tx, _| {
                let calls = calls.clone();
                let key = c.k("x");
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tx.set(&key, b"never");
                    Err(AppError::NotFound)
                }
            })
            .await;
        assert!(matches!(r, Err(AppError::NotFound)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.read("x").await, None, "a failed closure commits nothing");
        let calls = Arc::new(AtomicUsize::new(0));
        let r =
            c.db.run(|tx, _| {
                let calls = calls.clone();
                let key = c.k("y");
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tx.set(&key, &vec![0u8; MAX_VALUE_SIZE + 1]);
                    Ok::<_, KvError>(())
                }
            })
            .await;
        assert_eq!(r.unwrap_err().code(), KvError::VALUE_TOO_LARGE);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "fatal errors are not retried"
        );
    }

    pub async fn read_only_commit(c: &Ctx) {
        c.put(&[("ro", "1")]).await;
        let tx = c.db.create_transaction().unwrap();
        tx.get(&c.k("ro"), false).await.unwrap();
        let info = tx.commit().await.unwrap();
        assert_eq!(info.version, -1);
        assert_eq!(info.versionstamp, None);
        assert!(
            tx.get(&c.k("ro"), false).await.is_err(),
            "used after commit"
        );
    }
}
