//! Append-shaped write benchmark: kfdb-kv (embedded backend) against the raw fjall engine with the
//! same durability (every transaction fsync'd before it counts), measured in the same run.
//!
//! ```text
//! cargo run --release -p kfdb-kv --example kv_bench            # full run
//! cargo run --release -p kfdb-kv --example kv_bench -- --quick  # smaller, for a smoke test
//! ```
//!
//! Workloads (as in the storage-seam issue):
//! - `append64k`: 64 KiB values, 16 per transaction, 4 concurrent writers.
//! - `small1k`:   1 KiB values, 1 per transaction, 64 concurrent writers.
//!
//! Baselines, both on fjall directly with the same journal settings:
//! - `raw_each`: each writer thread commits a batch and fsyncs it before its next one (what a
//!   program does when every write must be durable before it is acknowledged).
//! - `raw_grouped`: one thread writes every batch and fsyncs once per `writers` batches: perfect group
//!   commit with no concurrency control at all, an upper bound for what batching can achieve.
//!
//! Each variant runs three times, interleaved, and the median is reported. `ratio_vs_each` compares
//! with the same durability contract (a commit is durable when acknowledged); `ratio_vs_grouped`
//! with the idealised single-writer upper bound. Each workload prints one summary line starting
//! with `kv_bench` that scripts can parse.

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::tuple::Subspace;
use kfdb_kv::{Database, KvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Workload {
    name: &'static str,
    value_bytes: usize,
    values_per_tx: usize,
    writers: usize,
    tx_per_writer: usize,
}

fn workloads(quick: bool) -> Vec<Workload> {
    let scale = if quick { 10 } else { 1 };
    vec![
        Workload {
            name: "append64k",
            value_bytes: 64 * 1024,
            values_per_tx: 16,
            writers: 4,
            tx_per_writer: 200 / scale,
        },
        Workload {
            name: "small1k",
            value_bytes: 1024,
            values_per_tx: 1,
            writers: 64,
            tx_per_writer: 300 / scale,
        },
    ]
}

fn value(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

struct Result {
    seconds: f64,
    bytes: usize,
    txs: usize,
}

impl Result {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
    fn tx_s(&self) -> f64 {
        self.txs as f64 / self.seconds
    }
}

async fn run_kfdb(w: &Workload, dir: &std::path::Path) -> std::result::Result<Result, KvError> {
    let db = Database::open_embedded(dir, EmbeddedOptions::default())?;
    let payload = Arc::new(value(w.value_bytes));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..w.writers {
        let db = db.clone();
        let payload = payload.clone();
        let (per_tx, txs) = (w.values_per_tx, w.tx_per_writer);
        tasks.push(tokio::spawn(async move {
            let space = Subspace::from_bytes(b"bench".to_vec()).subspace(&(writer as u64));
            for t in 0..txs {
                db.run(|tx, _| {
                    let (payload, space) = (payload.clone(), &space);
                    async move {
                        for i in 0..per_tx {
                            tx.set(&space.pack(&((t * per_tx + i) as u64)), &payload);
                        }
                        Ok::<_, KvError>(())
                    }
                })
                .await?;
            }
            Ok::<_, KvError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| KvError::new(KvError::INTERNAL_ERROR, e.to_string()))??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let stats = db.as_embedded().map(|e| e.stats()).unwrap_or_default();
    println!(
        "  kfdb-kv: {} commits in {} fsyncs ({:.1} commits per fsync)",
        stats.commits,
        stats.fsyncs,
        stats.commits as f64 / stats.fsyncs.max(1) as f64
    );
    Ok(Result {
        seconds,
        bytes: w.writers * w.tx_per_writer * w.values_per_tx * w.value_bytes,
        txs: w.writers * w.tx_per_writer,
    })
}

fn open_raw(dir: &std::path::Path) -> fjall::Result<kfdb_kv::embedded::RawEngine> {
    kfdb_kv::embedded::raw_engine(dir, &EmbeddedOptions::default())
}

fn raw_key(writer: usize, n: usize) -> Vec<u8> {
    Subspace::from_bytes(b"bench".to_vec())
        .subspace(&(writer as u64))
        .pack(&(n as u64))
}

fn run_raw_each(w: &Workload, dir: &std::path::Path) -> fjall::Result<Result> {
    let raw = open_raw(dir)?;
    let (db, ks) = (&raw.db, &raw.data);
    let payload = value(w.value_bytes);
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..w.writers)
            .map(|writer| {
                let (raw, db, ks, payload) = (&raw, &db, &ks, &payload);
                s.spawn(move || -> fjall::Result<()> {
                    for t in 0..w.tx_per_writer {
                        let mut batch = db.batch();
                        for i in 0..w.values_per_tx {
                            batch.insert(
                                ks,
                                raw_key(writer, t * w.values_per_tx + i),
                                payload.clone(),
                            );
                        }
                        batch.commit()?;
                        raw.rotate_full(ks)?;
                        db.persist(fjall::PersistMode::SyncAll)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or(Ok(())))
    })?;
    Ok(Result {
        seconds: start.elapsed().as_secs_f64(),
        bytes: w.writers * w.tx_per_writer * w.values_per_tx * w.value_bytes,
        txs: w.writers * w.tx_per_writer,
    })
}

fn run_raw_grouped(w: &Workload, dir: &std::path::Path) -> fjall::Result<Result> {
    let raw = open_raw(dir)?;
    let (db, ks) = (&raw.db, &raw.data);
    let payload = value(w.value_bytes);
    let start = Instant::now();
    for t in 0..w.tx_per_writer {
        for writer in 0..w.writers {
            let mut batch = db.batch();
            for i in 0..w.values_per_tx {
                batch.insert(
                    ks,
                    raw_key(writer, t * w.values_per_tx + i),
                    payload.clone(),
                );
            }
            batch.commit()?;
        }
        raw.rotate_full(ks)?;
        db.persist(fjall::PersistMode::SyncAll)?;
    }
    Ok(Result {
        seconds: start.elapsed().as_secs_f64(),
        bytes: w.writers * w.tx_per_writer * w.values_per_tx * w.value_bytes,
        txs: w.writers * w.tx_per_writer,
    })
}

fn median(mut runs: Vec<Result>) -> Result {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    runs.swap_remove(runs.len() / 2)
}

fn line(label: &str, r: &Result) {
    println!(
        "  {label:<12} {:>9.1} MB/s {:>9.0} tx/s  ({:.2} s)",
        r.mb_s(),
        r.tx_s(),
        r.seconds
    );
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let base = std::env::var_os("KFDB_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let reps = if quick { 1 } else { 3 };
    for w in workloads(quick) {
        println!(
            "{}: {} B values, {} per transaction, {} writers x {} transactions, median of {reps}",
            w.name, w.value_bytes, w.values_per_tx, w.writers, w.tx_per_writer
        );
        // Interleave the variants so drift in the machine's state hits all of them alike.
        let (mut each, mut grouped, mut kv) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let d = tempfile::tempdir_in(&base)?;
            each.push(run_raw_each(&w, d.path())?);
            let d = tempfile::tempdir_in(&base)?;
            grouped.push(run_raw_grouped(&w, d.path())?);
            let d = tempfile::tempdir_in(&base)?;
            kv.push(run_kfdb(&w, d.path()).await?);
        }
        let (each, grouped, kv) = (median(each), median(grouped), median(kv));
        line("raw_each", &each);
        line("raw_grouped", &grouped);
        line("kfdb-kv", &kv);
        println!(
            "kv_bench workload={} kfdb_kv_mb_s={:.1} kfdb_kv_tx_s={:.0} raw_each_mb_s={:.1} raw_grouped_mb_s={:.1} ratio_vs_each={:.2} ratio_vs_grouped={:.2}",
            w.name,
            kv.mb_s(),
            kv.tx_s(),
            each.mb_s(),
            grouped.mb_s(),
            kv.mb_s() / each.mb_s(),
            kv.mb_s() / grouped.mb_s()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
