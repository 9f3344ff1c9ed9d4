//! `produce`: kfdb's produce throughput through rdkafka producers (acks=all), each repetition on a
//! fresh kfdb, interleaved with the raw-engine baselines (or raw FoundationDB in FoundationDB
//! mode); medians. Also the producer load the other scenarios reuse (`produce_records`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::baseline;
use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{create_topic, producer, runtime, send};
use crate::fdb;
use crate::kfdb::Kfdb;
use crate::stats::{mb_s, median, met, range};
use crate::workload::{MIB, RECORD_BYTES, RecordPool};

pub struct ProduceRun {
    pub secs: f64,
    pub records: u64,
    pub delivered: u64,
    pub errors: u64,
    pub first_err: Option<String>,
    /// Records sent before the timed part (one per producer, to connect and learn metadata).
    pub warmup: u64,
    /// The broker's CPU time during the timed part.
    pub broker_cpu_s: f64,
}

impl ProduceRun {
    /// Print the run's line, `label` first, and its first error; true if every record was
    /// delivered without error.
    pub fn report(&self, label: &str) -> bool {
        println!(
            "  {label} {:>8.1} MB/s {:>9.0} records/s ({:.2} s; delivered {}/{}, errors {}; broker CPU {:.1} s = {:.0} % of one core)",
            mb_s(self.records * RECORD_BYTES as u64, self.secs),
            self.records as f64 / self.secs,
            self.secs,
            self.delivered,
            self.records,
            self.errors,
            self.broker_cpu_s,
            self.broker_cpu_s / self.secs * 100.0
        );
        if let Some(e) = &self.first_err {
            println!("  ! first error: {e}");
        }
        self.complete()
    }

    /// Every record was delivered without error.
    pub fn complete(&self) -> bool {
        self.errors == 0 && self.delivered == self.records
    }
}

/// `producers` threads against `broker`, each with its own BaseProducer (own connection), producer
/// i writing partitions i, i + n, i + 2n, ... in turn (n producers; with as many partitions as
/// producers, one each), together `records` distinct incompressible records of 1 KiB
/// ([`RecordPool`]); timed from the common start to the last delivery report.
pub fn produce_records(broker: &dyn Broker, topic: &str, s: &Settings, records: u64) -> ProduceRun {
    let n = s.producers;
    let barrier = Arc::new(Barrier::new(n + 1));
    // One pool for all producers (the same bytes each would generate).
    let pool = Arc::new(RecordPool::new());
    let mut handles = Vec::new();
    for i in 0..n {
        let share = records / n as u64 + u64::from((i as u64) < records % n as u64);
        let (bootstrap, topic, barrier, pool) = (
            broker.bootstrap().to_string(),
            topic.to_string(),
            barrier.clone(),
            pool.clone(),
        );
        let (linger, in_flight, partition, partitions) = (
            s.linger_ms,
            s.in_flight,
            i as i32 % s.partitions,
            s.partitions,
        );
        handles.push(std::thread::spawn(move || {
            let p = producer(&bootstrap, linger, in_flight, "producer");
            send(&p, &topic, partition, pool.record(0));
            p.flush(Duration::from_secs(60)).expect("warm-up flush");
            let warm_ok = p.context().counts.ok.load(Ordering::Relaxed);
            barrier.wait();
            for k in 0..share {
                // Producer i writes partitions i, i + n, i + 2n, ... in turn.
                let partition = ((partition as u64 + n as u64 * k) % partitions as u64) as i32;
                send(&p, &topic, partition, pool.record(k));
                if k % 256 == 0 {
                    // One delivery-report event per call (rdkafka's poll(0)); QueueFull in `send`
                    // waits, serving the rest.
                    p.poll(Duration::ZERO);
                }
            }
            if let Err(e) = p.flush(Duration::from_secs(300)) {
                p.context().counts.note_err(format!("flush: {e}"));
            }
            let end = Instant::now();
            let c = &p.context().counts;
            (
                end,
                c.ok.load(Ordering::Relaxed) - warm_ok,
                c.err.load(Ordering::Relaxed),
                c.first_err.lock().unwrap().clone(),
            )
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let cpu0 = broker.cpu_seconds();
    let mut run = ProduceRun {
        secs: 0.0,
        records,
        delivered: 0,
        errors: 0,
        first_err: None,
        warmup: n as u64,
        broker_cpu_s: 0.0,
    };
    for h in handles {
        let (end, ok, err, first) = h.join().expect("producer thread");
        run.secs = run.secs.max(end.duration_since(start).as_secs_f64());
        run.delivered += ok;
        run.errors += err;
        run.first_err = run.first_err.or(first);
    }
    run.broker_cpu_s = broker.cpu_seconds() - cpu0;
    run
}

pub fn run(s: &Settings) -> bool {
    let records = (s.produce_mib * MIB / RECORD_BYTES) as u64;
    let bytes = records * RECORD_BYTES as u64;
    println!(
        "produce: {records} records x {RECORD_BYTES} B ({} MiB), acks=all, idempotence off, {} producers \
         (one BaseProducer + connection each, linger.ms={}, max.in.flight={}), topic with {} partitions \
         (producer i -> partition i mod {}); {} rep(s), fresh kfdb each, interleaved with two raw-engine \
         baselines (one writer, 1 MiB write batch + fsync per batch; values of 1 KiB = one per record, and of \
         90,000 B = kfdb's record-batch chunk size); median reported",
        s.produce_mib, s.producers, s.linger_ms, s.in_flight, s.partitions, s.partitions, s.reps
    );
    let rt = runtime();
    let (mut kf, mut raw, mut raw90) = (Vec::new(), Vec::new(), Vec::new());
    let mut all_ok = true;
    let on_fdb = fdb::cluster_file();
    if on_fdb.is_some() {
        println!(
            "  FoundationDB mode: the baselines are raw FoundationDB write loops ({} concurrent writers, \
             1 MiB per transaction) instead of the raw embedded engine",
            s.partitions
        );
    }
    let raw_run = |value_bytes: usize| match &on_fdb {
        Some(cf) => fdb::raw_append(cf, bytes, value_bytes, s.partitions as usize),
        None => baseline::raw_append(records, value_bytes),
    };
    for rep in 0..s.reps {
        let r = raw_run(RECORD_BYTES);
        println!(
            "  rep {rep}: raw engine, 1 KiB values   {:>8.1} MB/s  ({r:.2} s)",
            mb_s(bytes, r)
        );
        raw.push(mb_s(bytes, r));
        let r = raw_run(90_000);
        println!(
            "  rep {rep}: raw engine, 90,000 B values {:>7.1} MB/s  ({r:.2} s)",
            mb_s(bytes, r)
        );
        raw90.push(mb_s(bytes, r));
        let kfdb = Kfdb::start();
        create_topic(&rt, kfdb.bootstrap(), "bench-produce", s.partitions);
        let run = produce_records(&kfdb, "bench-produce", s, records);
        all_ok &= run.report(&format!("rep {rep}: kfdb produce               "));
        kf.push(mb_s(bytes, run.secs));
        drop(kfdb);
    }
    let (k, r, r90) = (
        median(kf.clone()),
        median(raw.clone()),
        median(raw90.clone()),
    );
    let ratio = k / r;
    println!(
        "bench scenario=produce store={} records={records} record_bytes={RECORD_BYTES} producers={} partitions={} reps={} \
         kfdb_mb_s={k:.1} kfdb_records_s={:.0} kfdb_mb_s_range={} raw_mb_s={r:.1} raw_records_s={:.0} raw_mb_s_range={} \
         ratio={ratio:.2} target_ratio=0.9 met={} raw90k_mb_s={r90:.1} raw90k_mb_s_range={} ratio_vs_raw90k={:.2} delivered_all={}",
        if on_fdb.is_some() { "fdb" } else { "embedded" },
        s.producers,
        s.partitions,
        s.reps,
        k * 1e6 / RECORD_BYTES as f64,
        range(&kf),
        r * 1e6 / RECORD_BYTES as f64,
        range(&raw),
        met(ratio >= 0.9),
        range(&raw90),
        k / r90,
        all_ok
    );
    all_ok
}
