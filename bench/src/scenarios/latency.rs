//! `latency`: end-to-end latency (send -> a tailing consumer receives it) at a fixed rate, by
//! default half the peak the same producers reach; also the produce part alone, kfdb's own
//! Produce and commit times from its metrics, and the disk's fdatasync latency for context.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::produce::produce_records;
use crate::baseline::fsync_probe;
use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{
    Counts, Ctx, consumer, create_topic, producer, producer_with, runtime, send, serve_then_sleep,
};
use crate::kfdb::Kfdb;
use crate::stats::{met, pct};
use crate::workload::{MIB, RECORD_BYTES, now_ns, payload};

const TOPIC: &str = "bench-latency";

/// What one latency run measured: latencies (ms, sorted) of the records after the first second.
pub struct LatencyRun {
    pub total: u64,
    pub received: u64,
    pub errors: u64,
    /// End-to-end: send -> the tailing consumer has it.
    pub e2e_ms: Vec<f64>,
    /// Produce alone: send -> delivery report (acks=all).
    pub ack_ms: Vec<f64>,
}

impl LatencyRun {
    /// Percentile `p` of the end-to-end latencies, ms.
    pub fn e2e(&self, p: f64) -> f64 {
        pct(&self.e2e_ms, p)
    }

    /// Percentile `p` of the produce latencies, ms.
    pub fn ack(&self, p: f64) -> f64 {
        pct(&self.ack_ms, p)
    }

    /// Every record sent arrived, none failed.
    pub fn complete(&self) -> bool {
        self.received == self.total && self.errors == 0
    }
}

pub fn run(s: &Settings) -> bool {
    let rt = runtime();
    let (rate, peak) = match s.rate {
        Some(r) => (r, None),
        None => {
            let peak = peak_rate(s, &rt);
            (peak / 2.0, Some(peak))
        }
    };
    describe(s, rate);
    let probe = fsync_probe(500);
    println!(
        "  disk: 1 KiB append + fdatasync x {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        probe.len(),
        pct(&probe, 50.0),
        pct(&probe, 99.0),
        pct(&probe, 100.0)
    );
    let kfdb = Kfdb::start();
    let run = measure(&kfdb, s, rate, &rt);
    let produce_time = kfdb.request_time("Produce");
    if let Some(h) = produce_time {
        println!(
            "  kfdb's own Produce handling (its metrics, whole run): {} requests, mean {:.2} ms, {:.0} % within 1 ms, {:.0} % within 5 ms; store: {} commits in {} fsyncs",
            h.count,
            h.mean_ms,
            h.within_1ms * 100.0,
            h.within_5ms * 100.0,
            kfdb.counter("kfdb_store_commits_total").unwrap_or(f64::NAN),
            kfdb.counter("kfdb_store_fsyncs_total").unwrap_or(f64::NAN)
        );
    }
    if let Some(h) = kfdb.histogram("kfdb_store_commit_duration_seconds", "") {
        println!(
            "  kfdb's store commits (commit -> durable): {}, mean {:.2} ms, {:.0} % within 1 ms, {:.0} % within 5 ms",
            h.count,
            h.mean_ms,
            h.within_1ms * 100.0,
            h.within_5ms * 100.0
        );
    }
    drop(kfdb);
    let ok = run.complete();
    println!(
        "bench scenario=latency producers={} partitions={} linger_ms={} peak_records_s={} rate_records_s={rate:.0} rate_mb_s={:.1} secs={} records={} received={} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2} produce_ack_p50_ms={:.2} produce_ack_p99_ms={:.2} \
         kfdb_produce_mean_ms={:.2} disk_fsync_p50_ms={:.2} disk_fsync_p99_ms={:.2} target_p99_ms=5 met={} delivered_all={ok}",
        s.producers,
        s.partitions,
        s.latency_linger_ms,
        peak.map(|p| format!("{p:.0}"))
            .unwrap_or_else(|| "na".into()),
        rate * RECORD_BYTES as f64 / 1e6,
        s.latency_secs,
        run.total,
        run.received,
        run.e2e(50.0),
        run.e2e(90.0),
        run.e2e(99.0),
        run.e2e(99.9),
        run.e2e(100.0),
        run.ack(50.0),
        run.ack(99.0),
        produce_time.map(|h| h.mean_ms).unwrap_or(f64::NAN),
        pct(&probe, 50.0),
        pct(&probe, 99.0),
        met(run.e2e(99.0) <= 5.0)
    );
    ok
}

/// The run's description line.
pub fn describe(s: &Settings, rate: f64) {
    println!(
        "latency: {} producers (one connection each, linger.ms={}, acks=all, producer i -> partition i mod {}) \
         together at {rate:.0} records/s for {} s ({} records, {:.1} MB/s); one consumer (manual assign of all \
         {} partitions, fetch.wait.max.ms=100) tails the topic; latency = consumer receive time - send time in the \
         payload; first second excluded",
        s.producers,
        s.latency_linger_ms,
        s.partitions,
        s.latency_secs,
        (rate * s.latency_secs) as u64,
        rate * RECORD_BYTES as f64 / 1e6,
        s.partitions
    );
}

/// The latency load against `broker` (the topic created here): paced producers at `rate`
/// records/s for `s.latency_secs`, one consumer tailing; prints and returns what it measured.
pub fn measure(
    broker: &dyn Broker,
    s: &Settings,
    rate: f64,
    rt: &tokio::runtime::Runtime,
) -> LatencyRun {
    let total = (rate * s.latency_secs) as u64;
    let warmup_records = rate as u64; // the first second is not counted
    let partitions = s.partitions;
    create_topic(rt, broker.bootstrap(), TOPIC, partitions);
    let ready = Arc::new(AtomicBool::new(false));
    let cons = tail_consumer(broker.bootstrap(), partitions, total, ready.clone());
    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let counts = Arc::new(Counts::default());
    warm_up(broker.bootstrap(), s, &ready);
    let (sent, send_secs, behind_max) = paced_producers(broker, s, rate, total, &acks, &counts);
    let mut lat = cons.join().expect("consumer thread");
    let received = lat.len() as u64;
    let errors = counts.err.load(Ordering::Relaxed);
    if let Some(e) = counts.first_err.lock().unwrap().clone() {
        println!("  ! first delivery error: {e}");
    }
    let mut e2e_ms: Vec<f64> = lat
        .split_off((warmup_records as usize).min(lat.len()))
        .into_iter()
        .map(|us| us / 1e3)
        .collect();
    e2e_ms.sort_by(f64::total_cmp);
    let mut ack = std::mem::take(&mut *acks.lock().unwrap());
    let mut ack_ms: Vec<f64> = ack
        .split_off((warmup_records as usize).min(ack.len()))
        .into_iter()
        .map(|us| us / 1e3)
        .collect();
    ack_ms.sort_by(f64::total_cmp);
    let run = LatencyRun {
        total,
        received,
        errors,
        e2e_ms,
        ack_ms,
    };
    let mean = run.e2e_ms.iter().sum::<f64>() / run.e2e_ms.len().max(1) as f64;
    println!(
        "  sent {sent} in {send_secs:.2} s ({:.0} records/s; most records due at once in one producer {behind_max}); received {received}; delivery errors {errors}",
        sent as f64 / send_secs
    );
    println!(
        "  latency over {} records: mean {mean:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        run.e2e_ms.len(),
        run.e2e(50.0),
        run.e2e(90.0),
        run.e2e(99.0),
        run.e2e(99.9),
        run.e2e(100.0)
    );
    println!(
        "  of which produce (send -> delivery report, acks=all): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        run.ack(50.0),
        run.ack(90.0),
        run.ack(99.0),
        run.ack(99.9),
        run.ack(100.0)
    );
    run
}

/// Records/s of the `produce` load with the latency run's linger.ms, on a fresh kfdb.
fn peak_rate(s: &Settings, rt: &tokio::runtime::Runtime) -> f64 {
    let records = (s.peak_mib * MIB / RECORD_BYTES) as u64;
    println!(
        "latency: peak throughput first: {} MiB with the produce settings but linger.ms={} ({} producers, {} partitions)",
        s.peak_mib, s.latency_linger_ms, s.producers, s.partitions
    );
    let kfdb = Kfdb::start();
    create_topic(rt, kfdb.bootstrap(), "bench-peak", s.partitions);
    // The peak with the latency run's own client settings (linger.ms): half of a peak
    // reached with batching would be more than unbatched producers can sustain at all.
    let same_client = Settings {
        linger_ms: s.latency_linger_ms,
        ..s.clone()
    };
    let run = produce_records(&kfdb, "bench-peak", &same_client, records);
    drop(kfdb);
    let peak = run.delivered as f64 / run.secs;
    println!(
        "  peak {:.0} records/s ({:.1} MB/s)",
        peak,
        peak * RECORD_BYTES as f64 / 1e6
    );
    peak
}

/// The consumer thread: all partitions from the beginning; sets `ready` at the first warm-up
/// record (send time 0) and returns the latency of each other record in µs, until `total` arrived
/// or nothing did for 30 s.
fn tail_consumer(
    bootstrap: &str,
    partitions: i32,
    total: u64,
    ready: Arc<AtomicBool>,
) -> JoinHandle<Vec<f64>> {
    let bootstrap = bootstrap.to_string();
    std::thread::spawn(move || {
        let c = consumer(&bootstrap, "consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        c.fetch_metadata(Some(TOPIC), Duration::from_secs(10))
            .expect("consumer metadata");
        c.assign(&tpl).expect("assign");
        let mut lat_us = Vec::with_capacity(total as usize);
        let deadline_after_last = Duration::from_secs(30);
        let mut last_progress = Instant::now();
        while (lat_us.len() as u64) < total && last_progress.elapsed() < deadline_after_last {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let now = now_ns();
                    let p = m.payload().unwrap_or(&[]);
                    let ts = u64::from_le_bytes(p[..8].try_into().unwrap());
                    if ts == 0 {
                        ready.store(true, Ordering::Release);
                    } else {
                        lat_us.push((now.saturating_sub(ts)) as f64 / 1e3);
                    }
                    last_progress = Instant::now();
                }
                Some(Err(e)) => eprintln!("consumer error: {e}"),
                None => {}
            }
        }
        lat_us
    })
}

/// Warm-up records (timestamp 0) on every partition until the consumer has seen one: the
/// connections and metadata are up before the clock starts.
fn warm_up(bootstrap: &str, s: &Settings, ready: &AtomicBool) {
    let p = producer(bootstrap, 0, s.in_flight, "warm-up");
    let mut data = payload();
    data[..8].copy_from_slice(&0u64.to_le_bytes());
    let wait_start = Instant::now();
    while !ready.load(Ordering::Acquire) {
        for part in 0..s.partitions {
            send(&p, TOPIC, part, &data);
        }
        p.flush(Duration::from_secs(10)).ok();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            wait_start.elapsed() < Duration::from_secs(30),
            "consumer never saw the warm-up"
        );
    }
}

/// `producers` producers (own connection each), producer i on partition i mod partitions, each
/// paced at rate / producers, all starting together, the send time in each payload's first 8
/// bytes. Returns (records sent, seconds, most records due at once in one producer).
fn paced_producers(
    broker: &dyn Broker,
    s: &Settings,
    rate: f64,
    total: u64,
    acks: &Arc<Mutex<Vec<f64>>>,
    counts: &Arc<Counts>,
) -> (u64, f64, u64) {
    let n = s.producers;
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut handles = Vec::new();
    for i in 0..n {
        let share = total / n as u64 + u64::from((i as u64) < total % n as u64);
        let my_rate = rate * share as f64 / total as f64;
        let (bootstrap, barrier) = (broker.bootstrap().to_string(), barrier.clone());
        let ctx = Ctx {
            ack_us: Some(acks.clone()),
            counts: counts.clone(),
            ..Ctx::new("producer")
        };
        let (linger, in_flight, partition) =
            (s.latency_linger_ms, s.in_flight, i as i32 % s.partitions);
        handles.push(std::thread::spawn(move || {
            let p = producer_with(&bootstrap, linger, in_flight, ctx);
            let mut data = payload();
            // Connect and learn the leader before the clock starts.
            p.client()
                .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
                .expect("producer metadata");
            barrier.wait();
            let t0 = Instant::now();
            let (mut sent, mut behind_max) = (0u64, 0u64);
            while sent < share {
                let due = ((t0.elapsed().as_secs_f64() * my_rate) as u64 + 1).min(share);
                behind_max = behind_max.max(due.saturating_sub(sent));
                while sent < due {
                    data[..8].copy_from_slice(&now_ns().to_le_bytes());
                    send(&p, TOPIC, partition, &data);
                    sent += 1;
                }
                // Sleep until the next record is due (at most 1 ms, so reports stay timely).
                let next_due = Duration::from_secs_f64(sent as f64 / my_rate);
                let wait = next_due.saturating_sub(t0.elapsed());
                serve_then_sleep(&p, wait.min(Duration::from_millis(1)));
            }
            let secs = t0.elapsed().as_secs_f64();
            p.flush(Duration::from_secs(60)).ok();
            (sent, secs, behind_max)
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    barrier.wait();
    let (mut sent, mut send_secs, mut behind_max) = (0u64, 0f64, 0u64);
    for h in handles {
        let (a, b, c) = h.join().expect("producer thread");
        sent += a;
        send_secs = send_secs.max(b);
        behind_max = behind_max.max(c);
    }
    (sent, send_secs, behind_max)
}
