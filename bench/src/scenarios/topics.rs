//! `topics`: many topics. CreateTopics rate through the AdminClient and kfdb's memory per idle
//! topic; Metadata latency for named topics, raw (kfdb's own) and through rdkafka; and produce to /
//! consume from random topics among them.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{Ctx, admin, admin_options, consumer, create_topic, producer, runtime, send};
use crate::kfdb::Kfdb;
use crate::stats::{met, pct};
use crate::wire::{self, Connection};
use crate::workload::payload;

/// The Metadata version of the raw requests.
pub const METADATA_VERSION: i16 = 4;
/// Raw Metadata requests not counted (the connection and kfdb's topic cache warm up).
const METADATA_WARMUP: usize = 50;

pub fn topic_name(i: usize) -> String {
    format!("t{i:07}")
}

/// What the CreateTopics phase reports.
pub struct Created {
    pub created: u64,
    pub failed: u64,
    pub secs: f64,
    /// It stopped at the time limit before every topic was asked for.
    pub stopped: bool,
}

pub fn run(s: &Settings) -> bool {
    println!(
        "topics: create {} topics (1 partition each) through the AdminClient, {} per CreateTopics request, {} request(s) \
         in flight; kfdb VmRSS before/after; then a raw Metadata v4 request naming 10 topics x {} (one connection, \
         sequential), and rdkafka fetch_metadata(topic) x {}; then produce {} records to each of {} random topics and \
         consume them back; then the raw Metadata requests again once kfdb is idle (compactions done)",
        s.topics,
        s.topic_batch,
        s.topic_concurrency,
        s.metadata_reps,
        s.metadata_reps,
        s.records_per_topic,
        s.random_topics
    );
    let rt = runtime();
    let kfdb = Kfdb::start();
    let admin = admin(kfdb.bootstrap());
    // Warm-up: the admin client connected, one topic created and described (not counted).
    create_topic(&rt, kfdb.bootstrap(), "bench-warmup", 1);
    admin
        .inner()
        .fetch_metadata(Some("bench-warmup"), Duration::from_secs(10))
        .expect("warm-up metadata");
    std::thread::sleep(Duration::from_secs(1));
    let rss0 = kfdb.status_kib("VmRSS");

    let Created {
        created,
        failed,
        secs: create_secs,
        ..
    } = create_topics(&rt, &kfdb, &admin, s, None);
    let rate = created as f64 / create_secs;
    // RSS 2 s after the last CreateTopics, and once the store's 5 s conflict window (which holds
    // every key written in it) has passed: the second is what idle topics cost.
    std::thread::sleep(Duration::from_secs(2));
    let rss_2s = kfdb.status_kib("VmRSS");
    std::thread::sleep(Duration::from_secs(5));
    let rss1 = kfdb.status_kib("VmRSS");
    let hwm = kfdb.status_kib("VmHWM");
    let per_topic = (rss1 as f64 - rss0 as f64) * 1024.0 / created.max(1) as f64;
    println!(
        "  kfdb VmRSS {rss0} KiB before, {rss_2s} KiB 2 s after, {rss1} KiB 7 s after (VmHWM {hwm} KiB): {per_topic:.0} bytes per idle topic"
    );

    // Metadata for 10 named topics.
    let mut rng = rand::rng();
    let names: Vec<String> = rand::seq::index::sample(&mut rng, s.topics.max(10), 10)
        .into_iter()
        .map(|i| topic_name(i.min(s.topics.saturating_sub(1))))
        .collect();
    let (lat, mut md_ok) = raw_metadata(kfdb.bootstrap(), &names, s.metadata_reps);
    let (m50, m99, mmax) = (pct(&lat, 50.0), pct(&lat, 99.0), pct(&lat, 100.0));
    println!(
        "  raw Metadata v4 (10 named topics) x {}: p50 {m50:.3} ms, p99 {m99:.3} ms, p99.9 {:.3} ms, max {mmax:.3} ms (10 topics ok: {md_ok})",
        lat.len(),
        pct(&lat, 99.9)
    );
    let mut rlat = Vec::with_capacity(s.metadata_reps);
    let client = admin.inner();
    for i in 0..(s.metadata_reps + 10) {
        let t = Instant::now();
        let md = client
            .fetch_metadata(Some(&names[i % 10]), Duration::from_secs(10))
            .expect("fetch_metadata");
        let dt = t.elapsed().as_secs_f64() * 1e3;
        md_ok &= md.topics().len() == 1 && md.topics()[0].error().is_none();
        if i >= 10 {
            rlat.push(dt);
        }
    }
    rlat.sort_by(f64::total_cmp);
    let (r50, r99) = (pct(&rlat, 50.0), pct(&rlat, 99.0));
    println!(
        "  rdkafka fetch_metadata(one topic) x {}: p50 {r50:.3} ms, p99 {r99:.3} ms, max {:.3} ms",
        rlat.len(),
        pct(&rlat, 100.0)
    );

    // Produce to / consume from random topics.
    let k = s.random_topics.min(s.topics);
    let chosen: Vec<String> = rand::seq::index::sample(&mut rng, s.topics, k)
        .into_iter()
        .map(topic_name)
        .collect();
    let expected = (k * s.records_per_topic) as u64;
    let (delivered, consumed, random_ok) = random_topics(&kfdb, s, &chosen, expected);
    let rss2 = kfdb.status_kib("VmRSS");
    println!("  kfdb VmRSS at the end {rss2} KiB");

    // The same Metadata requests again once the store has finished compacting what the creation
    // wrote: the figure a client sees on a settled broker, next to the one above.
    let waited = wait_until_idle(&kfdb, IDLE_WAIT_LIMIT);
    let (idle_lat, idle_ok) = raw_metadata(kfdb.bootstrap(), &names, s.metadata_reps);
    md_ok &= idle_ok;
    let (i50, i99) = (pct(&idle_lat, 50.0), pct(&idle_lat, 99.0));
    println!(
        "  raw Metadata v4 (10 named topics) x {} once kfdb was idle ({waited:.0} s later): p50 {i50:.3} ms, p99 {i99:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        idle_lat.len(),
        pct(&idle_lat, 99.9),
        pct(&idle_lat, 100.0)
    );
    drop(admin);
    drop(kfdb);
    println!(
        "bench scenario=topics topics={created} failed={failed} batch={} concurrency={} create_s={create_secs:.2} \
         topics_per_s={rate:.0} target_topics_per_s=50000 met_rate={} rss_before_kib={rss0} rss_2s_kib={rss_2s} rss_after_kib={rss1} \
         bytes_per_topic={per_topic:.0} target_bytes_per_topic=50 met_bytes={} metadata_reps={} metadata_p50_ms={m50:.3} \
         metadata_p99_ms={m99:.3} metadata_max_ms={mmax:.3} rdkafka_metadata_p50_ms={r50:.3} rdkafka_metadata_p99_ms={r99:.3} \
         idle_after_s={waited:.0} idle_metadata_p50_ms={i50:.3} idle_metadata_p99_ms={i99:.3} \
         target_metadata_p99_ms=1 met_metadata={} met_idle_metadata={} random_topics={k} produced={delivered} consumed={consumed} random_ok={random_ok}",
        s.topic_batch,
        s.topic_concurrency,
        met(rate >= 50_000.0),
        met(per_topic <= 50.0),
        lat.len(),
        met(m99 <= 1.0),
        met(i99 <= 1.0)
    );
    failed == 0 && md_ok && random_ok
}

/// Creates `s.topics` topics of one partition, `s.topic_batch` per CreateTopics request,
/// `s.topic_concurrency` requests in flight, printing progress every tenth of the requests; no
/// request is sent after `limit` has passed.
pub fn create_topics(
    rt: &tokio::runtime::Runtime,
    broker: &dyn Broker,
    admin: &AdminClient<Ctx>,
    s: &Settings,
    limit: Option<Duration>,
) -> Created {
    let batches: Vec<Vec<NewTopic>> = (0..s.topics)
        .collect::<Vec<_>>()
        .chunks(s.topic_batch)
        .map(|c| {
            c.iter()
                .map(|&i| {
                    NewTopic::new(
                        Box::leak(topic_name(i).into_boxed_str()),
                        1,
                        TopicReplication::Fixed(1),
                    )
                })
                .collect()
        })
        .collect();
    let opts = admin_options();
    let created = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let first_err: Mutex<Option<String>> = Mutex::new(None);
    let slowest = Mutex::new(0f64);
    let cpu0 = broker.cpu_seconds();
    let start = Instant::now();
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let progress_every = (batches.len() / 10).max(1);
    rt.block_on(
        futures::stream::iter(batches.iter().enumerate())
            .map(|(bi, b)| {
                let opts = &opts;
                let (created, failed, first_err, slowest, stopped) =
                    (&created, &failed, &first_err, &slowest, &stopped);
                async move {
                    if limit.is_some_and(|l| start.elapsed() > l) {
                        stopped.store(true, Ordering::Relaxed);
                        return;
                    }
                    let t = Instant::now();
                    let r = admin.create_topics(b.iter(), opts).await;
                    let dt = t.elapsed().as_secs_f64();
                    {
                        let mut sl = slowest.lock().unwrap();
                        *sl = sl.max(dt);
                    }
                    match r {
                        Ok(results) => {
                            for r in results {
                                match r {
                                    Ok(_) => created.fetch_add(1, Ordering::Relaxed),
                                    Err((name, code)) => {
                                        let mut f = first_err.lock().unwrap();
                                        if f.is_none() {
                                            *f = Some(format!("{name}: {code:?}"));
                                        }
                                        failed.fetch_add(1, Ordering::Relaxed)
                                    }
                                };
                            }
                        }
                        Err(e) => {
                            let mut f = first_err.lock().unwrap();
                            if f.is_none() {
                                *f = Some(format!("request: {e}"));
                            }
                            failed.fetch_add(b.len() as u64, Ordering::Relaxed);
                        }
                    }
                    if (bi + 1) % progress_every == 0 {
                        println!(
                            "  ... {} topics created after {:.1} s (last request {:.0} ms)",
                            created.load(Ordering::Relaxed),
                            start.elapsed().as_secs_f64(),
                            dt * 1e3
                        );
                    }
                }
            })
            .buffer_unordered(s.topic_concurrency)
            .collect::<Vec<()>>(),
    );
    let secs = start.elapsed().as_secs_f64();
    let create_cpu = broker.cpu_seconds() - cpu0;
    let (created, failed) = (created.into_inner(), failed.into_inner());
    let rate = created as f64 / secs;
    if let Some(e) = first_err.into_inner().unwrap() {
        println!("  ! first CreateTopics error: {e}");
    }
    println!(
        "  created {created} topics ({failed} failed) in {secs:.2} s = {rate:.0} topics/s (slowest request {:.0} ms; broker CPU {create_cpu:.1} s)",
        slowest.into_inner().unwrap() * 1e3
    );
    Created {
        created,
        failed,
        secs,
        stopped: stopped.into_inner(),
    }
}

/// Longest wait for the broker to go idle after the topics were created.
const IDLE_WAIT_LIMIT: Duration = Duration::from_secs(300);

/// Waits until the broker used under 5 % of a core over a whole second (its compactions done), or
/// `limit` passed; the seconds waited.
fn wait_until_idle(broker: &dyn Broker, limit: Duration) -> f64 {
    let start = Instant::now();
    let mut cpu = broker.cpu_seconds();
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        let now = broker.cpu_seconds();
        if now - cpu < 0.05 {
            break;
        }
        cpu = now;
    }
    start.elapsed().as_secs_f64()
}

/// A Metadata request for the topics `names`, never creating them.
pub fn named_metadata(names: &[String]) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(false)
}

/// Metadata v4 requests naming `names` (no auto-creation) on one connection, one at a time,
/// `reps` counted after `METADATA_WARMUP`. Returns the sorted round-trip times in ms (encoding
/// and decoding not timed) and whether the first and the last response had every topic without
/// error and with one partition.
fn raw_metadata(bootstrap: &str, names: &[String], reps: usize) -> (Vec<f64>, bool) {
    let request = named_metadata(names);
    let mut conn = Connection::connect(bootstrap);
    let mut lat = Vec::with_capacity(reps);
    let mut ok = true;
    for i in 0..(reps + METADATA_WARMUP) {
        let frame = conn.encode(ApiKey::Metadata, METADATA_VERSION, &request);
        let t = Instant::now();
        let response = conn.round_trip(&frame);
        let dt = t.elapsed().as_secs_f64() * 1e3;
        if i >= METADATA_WARMUP {
            lat.push(dt);
        }
        if i == 0 || i == reps + METADATA_WARMUP - 1 {
            let response: MetadataResponse =
                wire::decode(ApiKey::Metadata, METADATA_VERSION, response);
            let topics: Vec<(String, i16, i32)> = response
                .topics
                .iter()
                .map(|t| {
                    let name = t.name.as_ref().map(|n| n.0.to_string());
                    (
                        name.unwrap_or_default(),
                        t.error_code,
                        t.partitions.len() as i32,
                    )
                })
                .collect();
            let good =
                topics.len() == names.len() && topics.iter().all(|(_, e, p)| *e == 0 && *p == 1);
            if !good {
                println!("  ! Metadata response: {topics:?}");
            }
            ok &= good;
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, ok)
}

/// `s.records_per_topic` records to each of `chosen` (partition 0) from one producer, then one
/// consumer assigned all of them reads them back; prints the outcome. Returns (records delivered,
/// records consumed, whether every record was delivered without error and read from its topic).
fn random_topics(kfdb: &Kfdb, s: &Settings, chosen: &[String], expected: u64) -> (u64, u64, bool) {
    let k = chosen.len();
    let p = producer(kfdb.bootstrap(), 5, s.in_flight, "random-producer");
    let data = payload();
    let t = Instant::now();
    for _ in 0..s.records_per_topic {
        for name in chosen {
            send(&p, name, 0, &data);
        }
        p.poll(Duration::ZERO);
    }
    let flushed = p.flush(Duration::from_secs(120));
    let produce_secs = t.elapsed().as_secs_f64();
    let delivered = p.context().counts.ok.load(Ordering::Relaxed);
    let perr = p.context().counts.err.load(Ordering::Relaxed);
    if let Some(e) = p.context().counts.first_err.lock().unwrap().clone() {
        println!("  ! first delivery error: {e}");
    }
    if let Err(e) = flushed {
        println!("  ! flush: {e}");
    }
    drop(p);
    let c = consumer(kfdb.bootstrap(), "random-consumer");
    let mut tpl = TopicPartitionList::new();
    for name in chosen {
        tpl.add_partition_offset(name, 0, Offset::Beginning)
            .unwrap();
    }
    let t = Instant::now();
    c.assign(&tpl).expect("assign");
    let mut consumed = 0u64;
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed < expected && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                consumed += 1;
                seen.insert(m.topic().to_string());
            }
            Some(Err(e)) => eprintln!("random consumer error: {e}"),
            None => {}
        }
    }
    let consume_secs = t.elapsed().as_secs_f64();
    drop(c);
    let random_ok = delivered == expected && perr == 0 && consumed == expected && seen.len() == k;
    println!(
        "  {k} random topics: produced {delivered}/{expected} in {produce_secs:.2} s ({perr} errors), consumed {consumed}/{expected} \
         from {} topics in {consume_secs:.2} s: {}",
        seen.len(),
        if random_ok { "ok" } else { "FAILED" }
    );
    (delivered, consumed, random_ok)
}
