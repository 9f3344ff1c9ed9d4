//! FoundationDB mode of the bench (`KFDB_BENCH_FDB_CLUSTER_FILE`, built with `--features fdb`):
//! kfdb runs with `--store fdb` on that cluster (the database is cleared before each start), and
//! the produce baseline is a raw FoundationDB write loop through the `foundationdb` crate: the same
//! payload, cut into values of the same size, in transactions of 1 MiB, from as many concurrent
//! writers as the kfdb run has partitions (kfdb has one commit in flight per partition).

/// The cluster file of FoundationDB mode, if it is on.
pub fn cluster_file() -> Option<String> {
    std::env::var("KFDB_BENCH_FDB_CLUSTER_FILE")
        .ok()
        .filter(|s| !s.is_empty())
}

#[cfg(not(feature = "fdb"))]
pub fn clear(_cluster_file: &str) {
    panic!("KFDB_BENCH_FDB_CLUSTER_FILE is set but kfdb-bench was built without --features fdb");
}

#[cfg(not(feature = "fdb"))]
pub fn raw_append(_cluster_file: &str, _bytes: u64, _value_bytes: usize, _writers: usize) -> f64 {
    panic!("KFDB_BENCH_FDB_CLUSTER_FILE is set but kfdb-bench was built without --features fdb");
}

/// Empty the database (every key below `\xff`).
#[cfg(feature = "fdb")]
pub fn clear(cluster_file: &str) {
    let rt = crate::client::runtime();
    let db = kfdb_kv::Database::open_fdb(Some(cluster_file)).expect("open FoundationDB");
    rt.block_on(db.run(|tx, _| async move {
        tx.clear_range(b"", b"\xff");
        Ok::<_, kfdb_kv::KvError>(())
    }))
    .expect("clear FoundationDB");
}

/// Seconds to write `bytes` of payload as values of `value_bytes`, 1 MiB per transaction, from
/// `writers` concurrent writers.
#[cfg(feature = "fdb")]
pub fn raw_append(cluster_file: &str, bytes: u64, value_bytes: usize, writers: usize) -> f64 {
    // kfdb-kv boots the process's one FoundationDB network; the raw loop then uses the crate.
    clear(cluster_file);
    let db = std::sync::Arc::new(foundationdb::Database::new(Some(cluster_file)).expect("open"));
    let rt = crate::client::runtime();
    let data: std::sync::Arc<Vec<u8>> = std::sync::Arc::new(
        (0..crate::workload::MIB)
            .map(|i| (i * 31 + 7) as u8)
            .collect(),
    );
    let per_writer = bytes.div_ceil(writers as u64);
    let start = std::time::Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (db, data) = (db.clone(), data.clone());
                tokio::spawn(async move {
                    let mut left = per_writer;
                    let mut key = 0u64;
                    while left > 0 {
                        let n = left.min(crate::workload::MIB as u64) as usize;
                        let first = key;
                        let data = &data;
                        db.run(|trx, _| async move {
                            for (i, chunk) in data[..n].chunks(value_bytes).enumerate() {
                                let k = foundationdb::tuple::pack(&(
                                    "bench",
                                    w as i64,
                                    first + i as u64,
                                ));
                                trx.set(&k, chunk);
                            }
                            Ok(())
                        })
                        .await
                        .expect("raw FoundationDB commit");
                        key += n.div_ceil(value_bytes) as u64;
                        left -= n as u64;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
    });
    start.elapsed().as_secs_f64()
}
