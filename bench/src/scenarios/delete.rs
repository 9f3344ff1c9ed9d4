//! `delete`: what deleting a big topic costs everyone else. Topic A is filled with `--delete-mib`
//! of small batches (at most 4 KiB: four 1 KiB records each, a quarter of a million batches per
//! GiB, as many small producers write them); a producer on topic B sends at a steady rate (acks=all, linger.ms=0) and
//! every acknowledgement's latency is recorded; after a baseline window, A is deleted (one
//! DeleteTopics) and B's acknowledgements are watched for `--delete-watch-secs` more. Prints B's
//! ack latency before and while the delete runs, and how long the DeleteTopics call took. Run it
//! with `KFDB_BIN` set to different kfdb builds to compare them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{
    Ctx, admin, admin_options, create_topic, producer_with, runtime, send, serve_then_sleep,
    small_batch_producer,
};
use crate::kfdb::Kfdb;
use crate::stats::pct;
use crate::workload::{MIB, RECORD_BYTES, now_ns, payload};

const DOOMED: &str = "bench-delete-big";
const PROBE: &str = "bench-delete-probe";
/// Records per second of the probe producer on topic B.
const PROBE_RATE: u64 = 500;

pub fn run(s: &Settings) -> bool {
    let rt = runtime();
    let kfdb = Kfdb::start();
    create_topic(&rt, kfdb.bootstrap(), DOOMED, s.partitions);
    create_topic(&rt, kfdb.bootstrap(), PROBE, 1);
    // Small batches, as many producers write them: many keys to delete.
    let records = (s.delete_mib * MIB / RECORD_BYTES) as u64;
    let t = Instant::now();
    let fillers: Vec<_> = (0..s.producers)
        .map(|i| {
            let bootstrap = kfdb.bootstrap().to_string();
            let share = records / s.producers as u64;
            let partition = i as i32 % s.partitions;
            std::thread::spawn(move || {
                let p = small_batch_producer(&bootstrap, 4 * 1024);
                let data = payload();
                for _ in 0..share {
                    send(&p, DOOMED, partition, &data);
                }
                let _ = p.flush(Duration::from_secs(300));
                let c = &p.context().counts;
                (c.ok.load(Ordering::Relaxed), c.err.load(Ordering::Relaxed))
            })
        })
        .collect();
    let (mut delivered, mut errors) = (0, 0);
    for f in fillers {
        let (ok, err) = f.join().expect("filler thread");
        delivered += ok;
        errors += err;
    }
    let batches = kfdb.counter("kfdb_requests_total{api=\"Produce\"}");
    println!(
        "delete: topic A filled with {} MiB ({delivered} records, {errors} errors) in {:.1} s, {} Produce requests",
        s.delete_mib,
        t.elapsed().as_secs_f64(),
        batches
            .map(|b| format!("{b:.0}"))
            .unwrap_or_else(|| "?".into())
    );
    // Let the store settle after the fill (its compactions), so both windows see the same store.
    std::thread::sleep(Duration::from_secs(if s.quick { 1 } else { 5 }));
    // The probe: B at a steady rate, each ack's latency recorded in delivery order.
    let acks = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (bootstrap, acks, stop) = (kfdb.bootstrap().to_string(), acks.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut ctx = Ctx::new("probe");
            ctx.ack_us = Some(acks);
            let p = producer_with(&bootstrap, 0, 5, ctx);
            let mut data = payload();
            let start = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_micros(sent * 1_000_000 / PROBE_RATE);
                // Acks are timed when their report is served: sleep at most 1 ms at a time.
                while Instant::now() < due {
                    serve_then_sleep(
                        &p,
                        due.saturating_duration_since(Instant::now())
                            .min(Duration::from_millis(1)),
                    );
                }
                data[..8].copy_from_slice(&now_ns().to_le_bytes());
                send(&p, PROBE, 0, &data);
                sent += 1;
            }
            let _ = p.flush(Duration::from_secs(60));
            sent
        })
    };
    let baseline_secs = if s.quick { 2 } else { 5 };
    std::thread::sleep(Duration::from_secs(baseline_secs));
    let before_len = acks.lock().unwrap().len();
    let admin = admin(kfdb.bootstrap());
    let t = Instant::now();
    let result = rt.block_on(admin.delete_topics(&[DOOMED], &admin_options()));
    let delete_secs = t.elapsed().as_secs_f64();
    let deleted = matches!(&result, Ok(r) if r.iter().all(|x| x.is_ok()));
    std::thread::sleep(Duration::from_secs(s.delete_watch_secs));
    stop.store(true, Ordering::Relaxed);
    let sent = probe.join().expect("probe thread");
    let all = acks.lock().unwrap().clone();
    let mut before: Vec<f64> = all[..before_len.min(all.len())]
        .iter()
        .map(|us| us / 1e3)
        .collect();
    let mut during: Vec<f64> = all[before_len.min(all.len())..]
        .iter()
        .map(|us| us / 1e3)
        .collect();
    // The first second warms the producer up.
    let warm = (PROBE_RATE as usize).min(before.len());
    before.drain(..warm);
    before.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    let line = |name: &str, v: &[f64]| {
        println!(
            "  B's acks {name}: {} records, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            pct(v, 50.0),
            pct(v, 99.0),
            pct(v, 100.0)
        );
    };
    println!(
        "  DeleteTopics of A took {:.3} s ({}); B: {PROBE_RATE} records/s, {sent} sent, {} acked",
        delete_secs,
        if deleted { "ok" } else { "FAILED" },
        all.len()
    );
    line("before the delete", &before);
    line(
        &format!("from the delete on ({} s)", s.delete_watch_secs),
        &during,
    );
    println!(
        "bench scenario=delete delete_mib={} produce_requests={} delete_s={delete_secs:.3} before_p50_ms={:.2} before_p99_ms={:.2} \
         before_max_ms={:.2} during_p50_ms={:.2} during_p99_ms={:.2} during_max_ms={:.2} acked={} sent={sent} deleted={deleted}",
        s.delete_mib,
        batches
            .map(|b| format!("{b:.0}"))
            .unwrap_or_else(|| "?".into()),
        pct(&before, 50.0),
        pct(&before, 99.0),
        pct(&before, 100.0),
        pct(&during, 50.0),
        pct(&during, 99.0),
        pct(&during, 100.0),
        all.len(),
    );
    deleted && all.len() as u64 == sent
}
