//! `compaction`: what the key index costs and how fast compaction runs.
//!
//! 1. Index cost: the same keyed records (100 B values, one key per ten records) produced through
//!    rdkafka producers (acks=all) to a topic without a key index and to one with
//!    `kfdb.key.index=true` (what every compacted topic keeps), on one fresh kfdb per repetition,
//!    the order alternating; medians, their ratio and the index's cost per record.
//! 2. Compaction: a compacted topic filled with 1 KiB records over 1,000 keys while compaction
//!    waits (`--log-cleaner-backoff-ms` of an hour), then kfdb restarted on the same data with
//!    100 ms: its first sweep compacts every partition. Timed from the restart until the
//!    compaction counters stop moving; next to it the raw engine writing the same bytes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::baseline;
use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{create_topic_with, producer, runtime, send_keyed};
use crate::kfdb::Kfdb;
use crate::stats::{mb_s, median, range};
use crate::workload::{MIB, RECORD_BYTES};

const SMALL_VALUE: usize = 100;
const COMPACTION_KEYS: u64 = 1_000;

/// `s.producers` threads, producer i writing partition i mod partitions, `records` keyed records
/// of `value_bytes` in all (record n has key `key-{n / updates}` of its producer's keys); returns
/// (seconds from the common start to the last delivery, delivered, errors).
fn produce_keyed(
    kfdb: &Kfdb,
    topic: &str,
    s: &Settings,
    records: u64,
    value_bytes: usize,
    keys: u64,
) -> (f64, u64, u64) {
    let n = s.producers as u64;
    let barrier = Arc::new(Barrier::new(s.producers + 1));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let share = records / n + u64::from(i < records % n);
            let (bootstrap, topic, barrier) = (
                kfdb.bootstrap().to_string(),
                topic.to_string(),
                barrier.clone(),
            );
            let (linger, in_flight) = (s.linger_ms, s.in_flight);
            let partition = (i % s.partitions as u64) as i32;
            std::thread::spawn(move || {
                let p = producer(&bootstrap, linger, in_flight, "producer");
                let value = vec![b'v'; value_bytes];
                barrier.wait();
                for k in 0..share {
                    let key = format!("p{i}-key-{:08}", k % (keys / n).max(1));
                    send_keyed(&p, &topic, partition, Some(key.as_bytes()), &value);
                    if k % 256 == 0 {
                        p.poll(Duration::ZERO);
                    }
                }
                if let Err(e) = p.flush(Duration::from_secs(300)) {
                    p.context().counts.note_err(format!("flush: {e}"));
                }
                let c = &p.context().counts;
                (
                    Instant::now(),
                    c.ok.load(Ordering::Relaxed),
                    c.err.load(Ordering::Relaxed),
                )
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let (mut secs, mut ok, mut err) = (0f64, 0, 0);
    for h in handles {
        let (end, o, e) = h.join().expect("producer thread");
        secs = secs.max(end.duration_since(start).as_secs_f64());
        ok += o;
        err += e;
    }
    (secs, ok, err)
}

fn index_cost(s: &Settings) -> (f64, f64, bool) {
    let records: u64 = if s.quick { 200_000 } else { 2_000_000 };
    let keys = records / 10;
    println!(
        "compaction 1/2 index cost: {records} records x {SMALL_VALUE} B values, {keys} keys, \
         {} producers, {} partitions, acks=all; {} rep(s), fresh kfdb each, order alternating",
        s.producers, s.partitions, s.reps
    );
    let rt = runtime();
    let (mut plain, mut indexed) = (Vec::new(), Vec::new());
    let mut ok = true;
    for rep in 0..s.reps {
        let kfdb = Kfdb::start();
        create_topic_with(&rt, kfdb.bootstrap(), "plain", s.partitions, &[]);
        create_topic_with(
            &rt,
            kfdb.bootstrap(),
            "indexed",
            s.partitions,
            &[("kfdb.key.index", "true")],
        );
        let order = if rep % 2 == 0 {
            ["plain", "indexed"]
        } else {
            ["indexed", "plain"]
        };
        for topic in order {
            let (secs, delivered, errors) =
                produce_keyed(&kfdb, topic, s, records, SMALL_VALUE, keys);
            let rate = records as f64 / secs;
            println!(
                "  rep {rep}: {topic:<8} {rate:>9.0} records/s ({secs:.2} s; delivered {delivered}/{records}, errors {errors})"
            );
            ok &= delivered == records && errors == 0;
            if topic == "plain" {
                plain.push(rate);
            } else {
                indexed.push(rate);
            }
        }
    }
    let (p, i) = (median(plain.clone()), median(indexed.clone()));
    println!(
        "  plain {p:.0} records/s (range {}), indexed {i:.0} records/s (range {})",
        range(&plain),
        range(&indexed)
    );
    (p, i, ok)
}

fn compaction_speed(s: &Settings) -> (u64, f64, f64, u64, bool) {
    let records = (if s.quick { 16 } else { 256 } * MIB / RECORD_BYTES) as u64;
    let bytes = records * RECORD_BYTES as u64;
    println!(
        "compaction 2/2 throughput: {records} records x {RECORD_BYTES} B over {COMPACTION_KEYS} keys into a \
         compacted topic of {} partitions, compaction held back; then a restart with \
         --log-cleaner-backoff-ms 100, timed until compaction is done",
        s.partitions
    );
    let rt = runtime();
    let mut first = Kfdb::start_with(&["--log-cleaner-backoff-ms", "3600000"], true);
    create_topic_with(
        &rt,
        first.bootstrap(),
        "table",
        s.partitions,
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let (secs, delivered, errors) =
        produce_keyed(&first, "table", s, records, RECORD_BYTES, COMPACTION_KEYS);
    println!(
        "  filled: {:.1} MB/s ({secs:.2} s; delivered {delivered}/{records}, errors {errors})",
        mb_s(bytes, secs)
    );
    let start = Instant::now();
    let second = Kfdb::restart(&mut first, &["--log-cleaner-backoff-ms", "100"]);
    let counter = |name: &str| second.counter(name).unwrap_or(0.0) as u64;
    let (mut removed, mut last_change) = (0u64, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now_removed = counter("kfdb_compaction_records_removed_total");
        if now_removed != removed {
            removed = now_removed;
            last_change = Instant::now();
        }
        let passes = counter("kfdb_compaction_passes_total");
        if (passes >= s.partitions as u64 && last_change.elapsed() > Duration::from_millis(1_000))
            || Instant::now() > deadline
        {
            break;
        }
    }
    let took = last_change.duration_since(start).as_secs_f64();
    let shrunk = counter("kfdb_compaction_bytes_removed_total");
    println!(
        "  compaction: {removed} records ({shrunk} bytes) removed in {took:.2} s from the restart = {:.1} MB/s of log",
        mb_s(bytes, took)
    );
    let raw = baseline::raw_append(records, RECORD_BYTES);
    println!(
        "  raw engine writing the same bytes: {:.1} MB/s ({raw:.2} s)",
        mb_s(bytes, raw)
    );
    let ok = delivered == records && errors == 0 && removed > 0;
    drop(second);
    drop(first);
    (removed, mb_s(bytes, took), mb_s(bytes, raw), bytes, ok)
}

pub fn run(s: &Settings) -> bool {
    let (plain, indexed, ok1) = index_cost(s);
    let (removed, compact_mb_s, raw_mb_s, bytes, ok2) = compaction_speed(s);
    println!(
        "bench scenario=compaction plain_records_s={plain:.0} indexed_records_s={indexed:.0} \
         index_ratio={:.2} index_cost_us_per_record={:.2} compaction_bytes={bytes} \
         compaction_records_removed={removed} compaction_mb_s={compact_mb_s:.1} raw_write_mb_s={raw_mb_s:.1} \
         compaction_vs_raw_write={:.2} ok={}",
        indexed / plain,
        (1e6 / indexed - 1e6 / plain),
        compact_mb_s / raw_mb_s,
        ok1 && ok2
    );
    ok1 && ok2
}
