//! `store-shapes`: the embedded store's commit path as it is, next to two shapes kfdb-kv could
//! take, measured raw in this process (no broker, no Kafka client) so that a redesign is chosen by
//! numbers (issue #18's produce and 20k-latency misses):
//!
//! - `inline` (today): each commit is a fjall write batch (journal, kv-separated values written
//!   again to blob files when the memtable is flushed), the full memtable sealed, then fjall's
//!   journal fdatasync'd; the commit is acknowledged after that.
//! - `wal-behind`: each commit is appended to a log file of kfdb-kv's own (length, CRC32, body) and
//!   fdatasync'd, then acknowledged; a second thread applies the same writes to fjall afterwards
//!   (no fsync on the ack path; fjall's journal persisted once per 64 MiB applied, as a log trim
//!   would need). fjall's flushes, compactions and their locks are off the ack path.
//! - `wal-values`: as `wal-behind`, but the log also keeps the values: fjall gets one 16-byte
//!   pointer (segment, offset, length) per value, so each produced byte is written once.
//! - `values-inline`: the log keeps the values only (no applier): each commit appends its values
//!   to the log and fdatasyncs it, then writes the pointers through fjall as `inline` does (its
//!   journal fdatasync'd too, on the ack path) — the value log without a read overlay for
//!   writes not yet in fjall.
//!
//! Two loads, one writer: throughput (`--mib` MiB in 1 MiB commits of 90,000 B values, kfdb's
//! record-batch chunk) timed until the last commit is acknowledged and until fjall has applied it;
//! and commit latency at a fixed 20 MB/s for `--secs` seconds after 64 MiB written at full speed
//! (the vs-latency load's byte rate): each commit takes every 1 KiB record due since the last one
//! (as a group commit does), in values of 4 KiB, and each record's latency is acknowledgement time
//! minus due time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kfdb_kv::embedded::{EmbeddedOptions, RawEngine, raw_engine};

use crate::cli::Settings;
use crate::stats::{mb_s, pct};
use crate::workload::{MIB, RECORD_BYTES, bench_dir, incompressible};

/// kfdb's record-batch chunk: the value size of large produce requests.
const CHUNK: usize = 90_000;
/// A log segment's size before the next file is started.
const SEGMENT: u64 = 64 * MIB as u64;
/// Bytes applied to fjall between persists of its journal (`wal-*`).
const APPLY_PERSIST: u64 = 64 * MIB as u64;
/// The fixed rate of the latency load, bytes per second.
const RATE: f64 = 20e6;
/// Value size in the latency load.
const SMALL: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Inline,
    WalBehind,
    WalValues,
    ValuesInline,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Inline => "inline",
            Shape::WalBehind => "wal-behind",
            Shape::WalValues => "wal-values",
            Shape::ValuesInline => "values-inline",
        }
    }
}

/// One commit: keys and their values.
type Batch = Vec<(Vec<u8>, Bytes)>;

/// An append-only log in 64 MiB segment files: each commit one record (u32 length, u32 CRC32 of
/// the body, body = the commit's keys and values, length-prefixed), fdatasync'd.
struct Log {
    dir: PathBuf,
    file: File,
    /// Size after which the next record starts a new segment.
    segment_bytes: u64,
    segment: u64,
    pos: u64,
    buf: Vec<u8>,
}

impl Log {
    fn open(dir: &Path, segment_bytes: u64) -> Log {
        Log {
            dir: dir.to_path_buf(),
            file: File::create(dir.join("0.log")).expect("create log segment"),
            segment_bytes,
            segment: 0,
            pos: 0,
            buf: Vec::with_capacity(2 * MIB),
        }
    }

    /// Append `batch` and make it durable; returns, per value, where its bytes are (segment,
    /// offset, length).
    fn append(&mut self, batch: &Batch) -> Vec<(u64, u64, u32)> {
        if self.pos >= self.segment_bytes {
            self.segment += 1;
            self.pos = 0;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{}.log", self.segment)))
                .expect("create log segment");
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; 8]);
        let mut places = Vec::with_capacity(batch.len());
        for (k, v) in batch {
            self.buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(k);
            self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            places.push((
                self.segment,
                self.pos + self.buf.len() as u64,
                v.len() as u32,
            ));
            self.buf.extend_from_slice(v);
        }
        let len = (self.buf.len() - 8) as u32;
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all(&self.buf).expect("log write");
        self.file.sync_data().expect("log fdatasync");
        self.pos += self.buf.len() as u64;
        places
    }
}

/// The thread that applies acknowledged commits to fjall (`wal-*`). Dropping the sender ends it;
/// `join` returns when everything sent is applied.
struct Applier {
    tx: Option<SyncSender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    fn start(raw: std::sync::Arc<RawEngine>) -> Applier {
        // Bounded: a writer that outruns fjall waits (and that wait is measured), memory stays
        // bounded.
        let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(64);
        let thread = std::thread::spawn(move || {
            let mut since_persist = 0u64;
            for batch in rx {
                let mut b = raw.db.batch();
                for (k, v) in batch {
                    since_persist += (k.len() + v.len()) as u64;
                    b.insert(&raw.data, k, v);
                }
                b.commit().expect("apply batch");
                raw.rotate_full(&raw.data).expect("memtable rotation");
                if since_persist >= APPLY_PERSIST {
                    raw.db
                        .persist(fjall::PersistMode::SyncData)
                        .expect("persist");
                    since_persist = 0;
                }
            }
        });
        Applier {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, batch: Batch) {
        self.tx
            .as_ref()
            .expect("applier running")
            .send(batch)
            .expect("applier alive");
    }

    fn join(mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            t.join().expect("applier thread");
        }
    }
}

/// One store of `shape`: commits a batch durably (returns once it may be acknowledged).
struct Store {
    shape: Shape,
    raw: std::sync::Arc<RawEngine>,
    log: Option<Log>,
    applier: Option<Applier>,
    _dir: tempfile::TempDir,
}

impl Store {
    fn open(shape: Shape) -> Store {
        let dir = tempfile::Builder::new()
            .prefix("kfdb-bench-shapes-")
            .tempdir_in(bench_dir())
            .expect("temp dir");
        let engine_dir = dir.path().join("fjall");
        let raw = std::sync::Arc::new(
            raw_engine(&engine_dir, &EmbeddedOptions::default()).expect("open raw engine"),
        );
        let (log, applier) = match shape {
            Shape::Inline => (None, None),
            Shape::ValuesInline => {
                let log_dir = dir.path().join("log");
                std::fs::create_dir_all(&log_dir).expect("log dir");
                (Some(Log::open(&log_dir, SEGMENT)), None)
            }
            Shape::WalBehind | Shape::WalValues => {
                let log_dir = dir.path().join("log");
                std::fs::create_dir_all(&log_dir).expect("log dir");
                (
                    Some(Log::open(&log_dir, SEGMENT)),
                    Some(Applier::start(raw.clone())),
                )
            }
        };
        Store {
            shape,
            raw,
            log,
            applier,
            _dir: dir,
        }
    }

    fn commit(&mut self, batch: Batch) {
        match self.shape {
            Shape::Inline => self.commit_inline(batch),
            Shape::WalBehind => {
                self.log.as_mut().expect("log").append(&batch);
                self.applier.as_ref().expect("applier").send(batch);
            }
            Shape::WalValues => {
                let pointers = self.log_values(batch);
                self.applier.as_ref().expect("applier").send(pointers);
            }
            Shape::ValuesInline => {
                let pointers = self.log_values(batch);
                self.commit_inline(pointers);
            }
        }
    }

    /// Append `batch` to the log (durable) and return its keys with a 16-byte pointer each.
    fn log_values(&mut self, batch: Batch) -> Batch {
        let places = self.log.as_mut().expect("log").append(&batch);
        batch
            .into_iter()
            .zip(places)
            .map(|((k, _), (seg, off, len))| {
                let mut p = Vec::with_capacity(16);
                p.extend_from_slice(&seg.to_be_bytes()[4..]);
                p.extend_from_slice(&off.to_be_bytes());
                p.extend_from_slice(&len.to_be_bytes());
                (k, Bytes::from(p))
            })
            .collect()
    }

    /// fjall's write batch, the full memtable sealed, fjall's journal fdatasync'd.
    fn commit_inline(&self, batch: Batch) {
        let mut b = self.raw.db.batch();
        for (k, v) in batch {
            b.insert(&self.raw.data, k, v);
        }
        b.commit().expect("batch commit");
        self.raw
            .rotate_full(&self.raw.data)
            .expect("memtable rotation");
        self.raw
            .db
            .persist(fjall::PersistMode::SyncData)
            .expect("fdatasync");
    }

    /// Wait until fjall has applied every commit (a no-op for the `*inline` shapes).
    fn finish(&mut self) {
        if let Some(a) = self.applier.take() {
            a.join();
        }
    }
}

fn key(n: u64) -> Vec<u8> {
    let mut k = b"bench/".to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// `bytes` of `data` in commits of `commit_bytes`, values of `value_bytes`; returns (seconds to
/// the last acknowledgement, seconds until applied).
fn throughput(shape: Shape, bytes: u64, data: &Bytes, value_bytes: usize) -> (f64, f64) {
    let mut store = Store::open(shape);
    let mut next = 0u64;
    let mut left = bytes;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        let batch = (0..n.div_ceil(value_bytes))
            .map(|i| {
                next += 1;
                let v = data.slice(i * value_bytes..((i + 1) * value_bytes).min(n));
                (key(next), v)
            })
            .collect();
        store.commit(batch);
        left -= n as u64;
    }
    let acked = start.elapsed().as_secs_f64();
    store.finish();
    let applied = start.elapsed().as_secs_f64();
    // Closing fjall and deleting the files are not timed.
    drop(store);
    (acked, applied)
}

/// After 64 MiB at full speed, `secs` at 20 MB/s: each commit takes the records due so far; the
/// latencies (ms, sorted) of the records due after the first second.
fn latency(shape: Shape, secs: f64, data: &Bytes) -> Vec<f64> {
    let mut store = Store::open(shape);
    let mut next = 0u64;
    for _ in 0..64 {
        let batch = (0..MIB.div_ceil(CHUNK))
            .map(|i| {
                next += 1;
                (key(next), data.slice(i * CHUNK..((i + 1) * CHUNK).min(MIB)))
            })
            .collect();
        store.commit(batch);
    }
    let records_per_s = RATE / RECORD_BYTES as f64;
    let total = (records_per_s * secs) as u64;
    let per_value = (SMALL / RECORD_BYTES) as u64;
    let mut lat = Vec::with_capacity(total as usize);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * records_per_s) as u64).min(total);
        if due == sent {
            let at = Duration::from_secs_f64((sent + 1) as f64 / records_per_s);
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            continue;
        }
        let batch = (sent..due)
            .step_by(per_value as usize)
            .map(|r| {
                next += 1;
                let n = (due - r).min(per_value) as usize * RECORD_BYTES;
                let off = (r as usize * RECORD_BYTES) % (data.len() - n);
                (key(next), data.slice(off..off + n))
            })
            .collect();
        store.commit(batch);
        let now = start.elapsed().as_secs_f64();
        for r in sent..due {
            let due_at = r as f64 / records_per_s;
            if due_at >= 1.0 {
                lat.push((now - due_at) * 1e3);
            }
        }
        sent = due;
    }
    store.finish();
    lat.sort_by(f64::total_cmp);
    lat
}

pub fn run(s: &Settings) -> bool {
    let bytes = (s.produce_mib * MIB) as u64;
    let data = Bytes::from(incompressible(4 * MIB));
    let shapes = [
        Shape::Inline,
        Shape::WalBehind,
        Shape::WalValues,
        Shape::ValuesInline,
    ];
    println!(
        "store-shapes: one writer, raw store in this process; throughput: {} MiB in 1 MiB commits of {CHUNK} B \
         values (median of {}); latency: {} s at 20 MB/s after 64 MiB, {SMALL} B values, first second excluded",
        s.produce_mib, s.reps, s.latency_secs
    );
    let mut fields = String::new();
    for shape in shapes {
        let mut acked = Vec::new();
        let mut applied = Vec::new();
        for _ in 0..s.reps {
            let (a, b) = throughput(shape, bytes, &data, CHUNK);
            acked.push(mb_s(bytes, a));
            applied.push(mb_s(bytes, b));
        }
        let (a, b) = (
            crate::stats::median(acked.clone()),
            crate::stats::median(applied.clone()),
        );
        println!(
            "  {:<10} throughput: acknowledged {a:.1} MB/s, applied to fjall {b:.1} MB/s (runs {})",
            shape.name(),
            crate::stats::range(&acked)
        );
        let lat = latency(shape, s.latency_secs, &data);
        let (p50, p99, p999, max) = (
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            lat.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "  {:<10} latency at 20 MB/s over {} records: p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms",
            shape.name(),
            lat.len()
        );
        let k = shape.name().replace('-', "_");
        fields.push_str(&format!(
            " {k}_acked_mb_s={a:.1} {k}_applied_mb_s={b:.1} {k}_p50_ms={p50:.2} {k}_p99_ms={p99:.2} {k}_p999_ms={p999:.2}"
        ));
    }
    println!("bench scenario=store_shapes mib={}{fields}", s.produce_mib);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_places_address_each_value_across_segments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = Log::open(dir.path(), 100);
        let batch = |n: u8| -> Batch {
            vec![
                (key(n as u64), Bytes::from(vec![n; 40])),
                (key(n as u64 + 100), Bytes::from(vec![n + 1; 70])),
            ]
        };
        let mut seen = Vec::new();
        for n in [1u8, 3, 5] {
            let b = batch(n);
            for ((_, v), place) in b.iter().zip(log.append(&b)) {
                seen.push((v.clone(), place));
            }
        }
        // Each record is longer than 100 bytes: every commit starts a new segment.
        assert_eq!(
            seen.iter().map(|(_, p)| p.0).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
        for (value, (seg, off, len)) in seen {
            let file = std::fs::read(dir.path().join(format!("{seg}.log"))).expect("segment");
            assert_eq!(&file[off as usize..off as usize + len as usize], &value[..]);
            // The record's header: body length and CRC32 of the body.
            let body_len = u32::from_le_bytes(file[..4].try_into().unwrap()) as usize;
            assert_eq!(body_len, file.len() - 8);
            let crc = u32::from_le_bytes(file[4..8].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(&file[8..]));
        }
    }
}
