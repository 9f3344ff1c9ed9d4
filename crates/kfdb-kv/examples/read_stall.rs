//! How long big range reads hold up other tasks on the same tokio workers, with reads run in place
//! on the worker and with reads handed off (`block_in_place`, `EmbeddedOptions::offload_reads`),
//! measured in the same run on the same store.
//!
//! ```text
//! cargo run --release -p kfdb-kv --example read_stall            # 512 MiB store, 5 s per variant
//! cargo run --release -p kfdb-kv --example read_stall -- --quick  # 64 MiB, 2 s
//! ```
//!
//! A store of 90,000-byte values (kfdb's record chunks) is written, then reopened with a small
//! block cache. On a runtime of two workers, four tasks read random 1 MiB ranges in a loop while a
//! probe task sleeps 1 ms at a time and records how late it wakes: a worker busy inside a read
//! cannot run the probe. Prints one `read_stall` line per variant: the probe's lateness (p50,
//! p99, max) and the read throughput.

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::{Database, KvError, RangeOption};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VALUE: usize = 90_000;

fn key(i: u64) -> Vec<u8> {
    let mut k = b"log/".to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

async fn fill(db: &Database, values: u64) {
    let value: Vec<u8> = (0..VALUE).map(|i| (i * 131 + 17) as u8).collect();
    let mut i = 0;
    while i < values {
        let end = (i + 64).min(values);
        let value = &value;
        db.run(|tx, _| async move {
            for j in i..end {
                tx.set(&key(j), value);
            }
            Ok::<_, KvError>(())
        })
        .await
        .unwrap();
        i = end;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run_variant(dir: &std::path::Path, values: u64, offload: bool, seconds: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = EmbeddedOptions {
            cache_bytes: 8 * 1024 * 1024,
            offload_reads: offload,
            ..EmbeddedOptions::default()
        };
        let db = Database::open_embedded(dir, options).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let read_bytes = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for r in 0..4u64 {
            let (db, stop, read_bytes) = (db.clone(), stop.clone(), read_bytes.clone());
            readers.push(tokio::spawn(async move {
                let mut x = r * 7919 + 1;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let start = (x >> 33) % values;
                    let tx = db.create_transaction().unwrap();
                    let rows = tx
                        .get_range(
                            &RangeOption::new(key(start), key(values)).target_bytes(1 << 20),
                            true,
                        )
                        .await
                        .unwrap();
                    let n: usize = rows.kvs.iter().map(|kv| kv.value.len()).sum();
                    read_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    // As a connection does between requests (it awaits its socket).
                    tokio::task::yield_now().await;
                }
            }));
        }
        let probe_stop = stop.clone();
        let probe = tokio::spawn(async move {
            let mut late = Vec::new();
            while !probe_stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                late.push((t.elapsed().as_secs_f64() - 0.001).max(0.0) * 1000.0);
            }
            late
        });
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut late = probe.await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        late.sort_by(f64::total_cmp);
        println!(
            "read_stall offload={} probe_late_p50_ms={:.3} probe_late_p99_ms={:.3} probe_late_max_ms={:.3} probes={} read_mb_s={:.0}",
            if offload { "on" } else { "off" },
            percentile(&late, 0.5),
            percentile(&late, 0.99),
            late.last().copied().unwrap_or(0.0),
            late.len(),
            read_bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
        );
    });
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (mib, seconds) = if quick { (64u64, 2) } else { (512u64, 5) };
    let values = mib * 1024 * 1024 / VALUE as u64;
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
            fill(&db, values).await;
        });
    }
    println!(
        "store: {mib} MiB in {values} values of {VALUE} bytes; 4 readers of 1 MiB ranges, 2 workers"
    );
    // Interleaved, twice each, so that neither variant gets only a warm or only a cold page cache.
    for offload in [false, true, false, true] {
        run_variant(dir.path(), values, offload, seconds);
    }
}
