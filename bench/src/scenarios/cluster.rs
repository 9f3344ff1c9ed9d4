//! `cluster`: kfdb as a cluster of brokers over one store.
//!
//! 1. Produce throughput with 1, 2 and 3 brokers (the 1-broker run is the baseline): `--producers`
//!    producers, each bootstrapped with every broker, write `--cluster-mib` MiB round-robin over a
//!    topic of `--cluster-partitions` partitions, whose leaders the cluster spreads over the brokers.
//! 2. Failover with 3 brokers: an idempotent acks=all producer sends `--failover-rate` records/s
//!    round-robin over every partition; one broker is stopped (SIGTERM: it hands its partitions over
//!    before exiting), later another is killed (SIGKILL: the others take over when its lease runs
//!    out, `broker.session.timeout.ms` = 9 s, kfdb's default). For each, the time from the stop or
//!    kill to the first acknowledgement, for each partition the broker led, of a record sent after
//!    it (so answered by the new leader); the target for the kill is at most the session timeout
//!    plus 1 s. Then everything is read back: every acknowledged record exactly once where its
//!    acknowledgement put it, offsets dense.
//!
//! On FoundationDB (`KFDB_BENCH_FDB_CLUSTER_FILE`) each broker is its own `kfdb serve --store fdb`
//! process. The embedded store can be opened by one process only, so there the brokers run in one
//! process (`kfdb serve --brokers N`), stopped and killed through its HTTP control; that measures
//! the same protocol (leases, claims, clients moving), on one store.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{consumer, create_topic, producer, runtime, send, serve_then_sleep};
use crate::fdb;
use crate::kfdb::Kfdb;
use crate::metrics;
use crate::stats::{mb_s, median, met};
use crate::workload::{MIB, RECORD_BYTES, now_ns, payload};

const TOPIC: &str = "bench-cluster";
const HEARTBEAT_MS: u64 = 2_000;
const SESSION_MS: u64 = 9_000;

/// The brokers of one run.
enum Brokers {
    /// One `kfdb serve --store fdb` process per broker (None: stopped or killed).
    Processes(Vec<Option<Kfdb>>),
    /// `kfdb serve --brokers n`: broker `i` on the first port + `i`.
    InProcess { kfdb: Box<Kfdb>, n: usize },
}

impl Brokers {
    fn start(n: usize) -> Brokers {
        let (hb, session) = (HEARTBEAT_MS.to_string(), SESSION_MS.to_string());
        let timing = [
            "--broker-heartbeat-interval-ms",
            hb.as_str(),
            "--broker-session-timeout-ms",
            session.as_str(),
        ];
        if fdb::cluster_file().is_some() {
            Brokers::Processes(
                (0..n)
                    .map(|i| Some(Kfdb::start_with(&timing, i == 0)))
                    .collect(),
            )
        } else {
            let count = n.to_string();
            let mut args = timing.to_vec();
            args.extend(["--brokers", count.as_str()]);
            Brokers::InProcess {
                kfdb: Box::new(Kfdb::start_with(&args, true)),
                n,
            }
        }
    }

    /// Broker `i`'s address.
    fn addr(&self, i: usize) -> String {
        match self {
            Brokers::Processes(ps) => ps[i].as_ref().expect("running").bootstrap().to_string(),
            Brokers::InProcess { kfdb, .. } => {
                let (host, port) = kfdb.bootstrap().rsplit_once(':').expect("host:port");
                let port: usize = port.parse().expect("a port");
                format!("{host}:{}", port + i)
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Brokers::Processes(ps) => ps.len(),
            Brokers::InProcess { n, .. } => *n,
        }
    }

    /// Every broker's address, comma-separated (stopped ones too: clients skip them).
    fn bootstrap(&self) -> String {
        match self {
            Brokers::Processes(ps) => ps
                .iter()
                .flatten()
                .map(|k| k.bootstrap().to_string())
                .collect::<Vec<_>>()
                .join(","),
            Brokers::InProcess { .. } => (0..self.len())
                .map(|i| self.addr(i))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The index of the broker listening on `addr`.
    fn index_of(&self, addr: &str) -> Option<usize> {
        (0..self.len()).find(|&i| match self {
            Brokers::Processes(ps) => ps[i].as_ref().is_some_and(|k| k.bootstrap() == addr),
            Brokers::InProcess { .. } => self.addr(i) == addr,
        })
    }

    /// Controlled stop of broker `i` (it leaves the cluster first); returns when it is down.
    fn stop(&mut self, i: usize) {
        match self {
            Brokers::Processes(ps) => {
                let mut k = ps[i].take().expect("running");
                if !k.stop() {
                    println!("  ! broker {i} did not exit cleanly on SIGTERM");
                }
            }
            Brokers::InProcess { kfdb, .. } => {
                metrics::post(kfdb.metrics_addr(), &format!("/brokers/{i}/stop"))
                    .expect("stop a broker")
            }
        }
    }

    /// Kill broker `i` at once, as a crash.
    fn kill(&mut self, i: usize) {
        match self {
            Brokers::Processes(ps) => ps[i].as_mut().expect("running").kill(),
            Brokers::InProcess { kfdb, .. } => {
                metrics::post(kfdb.metrics_addr(), &format!("/brokers/{i}/kill"))
                    .expect("kill a broker")
            }
        }
    }

    /// CPU seconds of every kfdb process so far.
    fn cpu_seconds(&self) -> f64 {
        match self {
            Brokers::Processes(ps) => ps.iter().flatten().map(|k| k.cpu_seconds()).sum(),
            Brokers::InProcess { kfdb, .. } => kfdb.cpu_seconds(),
        }
    }
}

/// Partition -> the index of the broker leading it, once every partition has a live leader and
/// the metadata lists `brokers` brokers.
fn leaders(b: &Brokers, partitions: i32, brokers: usize) -> BTreeMap<i32, usize> {
    let c = consumer(&b.bootstrap(), "metadata");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(md) = c.fetch_metadata(Some(TOPIC), Duration::from_secs(10)) {
            let addrs: HashMap<i32, String> = md
                .brokers()
                .iter()
                .map(|x| (x.id(), format!("{}:{}", x.host(), x.port())))
                .collect();
            let found: BTreeMap<i32, usize> = md
                .topics()
                .iter()
                .flat_map(|t| t.partitions())
                .filter_map(|p| {
                    let addr = addrs.get(&p.leader())?;
                    Some((p.id(), b.index_of(addr)?))
                })
                .collect();
            if addrs.len() == brokers && found.len() == partitions as usize {
                return found;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leaders for every partition of {TOPIC} on {brokers} brokers within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn run(s: &Settings) -> bool {
    let mode = if fdb::cluster_file().is_some() {
        "FoundationDB: one process per broker"
    } else {
        "embedded store: the brokers in one process (--brokers N)"
    };
    println!(
        "cluster ({mode}): {} MiB from {} producers over {} partitions with 1, 2, 3 brokers",
        s.cluster_mib, s.producers, s.cluster_partitions
    );
    let mut ok = true;
    let mut rates = Vec::new();
    for n in 1..=3 {
        let (rate, fine) = throughput(n, s);
        ok &= fine;
        rates.push(rate);
    }
    let failover = failover(s);
    ok &= failover.ok;
    let kill_ok = failover.kill_max_ms <= (SESSION_MS + 1_000) as f64;
    println!(
        "bench cluster brokers1_mb_s={:.1} brokers2_mb_s={:.1} brokers3_mb_s={:.1} \
         stop_failover_ms_max={:.0} kill_failover_ms_max={:.0} kill_failover_ms_min={:.0} \
         session_ms={SESSION_MS} kill_target_ms={} met={} acked={} lost={} duplicated={}",
        rates[0],
        rates[1],
        rates[2],
        failover.stop_max_ms,
        failover.kill_max_ms,
        failover.kill_min_ms,
        SESSION_MS + 1_000,
        met(kill_ok),
        failover.acked,
        failover.lost,
        failover.duplicated,
    );
    ok
}

/// MB/s of `s.cluster_mib` with `n` brokers, and whether every record was delivered.
fn throughput(n: usize, s: &Settings) -> (f64, bool) {
    let brokers = Brokers::start(n);
    let rt = runtime();
    create_topic(&rt, &brokers.bootstrap(), TOPIC, s.cluster_partitions);
    let spread = leaders(&brokers, s.cluster_partitions, n);
    let records = (s.cluster_mib * MIB / RECORD_BYTES) as u64;
    let barrier = Arc::new(Barrier::new(s.producers + 1));
    let handles: Vec<_> = (0..s.producers)
        .map(|i| {
            let (bootstrap, barrier) = (brokers.bootstrap(), barrier.clone());
            let share = records / s.producers as u64;
            let (linger, in_flight, partitions) = (s.linger_ms, s.in_flight, s.cluster_partitions);
            std::thread::spawn(move || {
                let p = producer(&bootstrap, linger, in_flight, "producer");
                let data = payload();
                // Warm up: a record to every partition (connections to every leader).
                for q in 0..partitions {
                    send(&p, TOPIC, q, &data);
                }
                p.flush(Duration::from_secs(60)).expect("warm-up flush");
                let warm = p.context().counts.ok.load(Ordering::Relaxed);
                barrier.wait();
                for k in 0..share {
                    send(
                        &p,
                        TOPIC,
                        ((i as u64 + k) % partitions as u64) as i32,
                        &data,
                    );
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
                    c.ok.load(Ordering::Relaxed) - warm,
                    c.err.load(Ordering::Relaxed),
                    c.first_err.lock().unwrap().clone(),
                )
            })
        })
        .collect();
    barrier.wait();
    let (start, cpu0) = (Instant::now(), brokers.cpu_seconds());
    let (mut end, mut delivered, mut errors, mut first_err) = (start, 0, 0, None);
    for h in handles {
        let (e, ok, err, fe) = h.join().expect("producer thread");
        end = end.max(e);
        delivered += ok;
        errors += err;
        first_err = first_err.or(fe);
    }
    let secs = end.duration_since(start).as_secs_f64();
    let cpu = brokers.cpu_seconds() - cpu0;
    let sent = records / s.producers as u64 * s.producers as u64;
    let rate = mb_s(delivered * RECORD_BYTES as u64, secs);
    let mut per_broker = vec![0; n];
    for b in spread.values() {
        per_broker[*b] += 1;
    }
    println!(
        "  {n} broker(s): {rate:.1} MB/s ({delivered} of {sent} records in {secs:.2} s, kfdb CPU {cpu:.1} s), partitions led per broker {per_broker:?}"
    );
    if errors > 0 {
        println!(
            "  ! {errors} delivery errors, first: {}",
            first_err.unwrap_or_default()
        );
    }
    (rate, errors == 0 && delivered == sent)
}

struct Failover {
    stop_max_ms: f64,
    kill_max_ms: f64,
    kill_min_ms: f64,
    acked: usize,
    lost: usize,
    duplicated: usize,
    ok: bool,
}

/// One acknowledged record: sequence number, partition, offset, send time and ack time (ns since
/// the epoch).
type Ack = (u64, i32, i64, u64, u64);

/// A record's (send time, sequence number), from its payload.
fn stamp(payload: Option<&[u8]>) -> (u64, u64) {
    let word = |r: std::ops::Range<usize>| {
        payload
            .and_then(|p| p.get(r))
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(u64::MAX)
    };
    (word(0..8), word(8..16))
}

#[derive(Clone)]
struct AckLog {
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for AckLog {}

impl ProducerContext for AckLog {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let (sent, seq) = stamp(m.payload());
                self.acks
                    .lock()
                    .unwrap()
                    .push((seq, m.partition(), m.offset(), sent, now_ns()));
            }
            Err((e, _)) => self.errors.lock().unwrap().push(e.to_string()),
        }
    }
}

/// Records: send time (ns) in bytes 0..8, sequence number in 8..16.
fn failover(s: &Settings) -> Failover {
    let mut brokers = Brokers::start(3);
    let rt = runtime();
    let partitions = s.cluster_partitions;
    create_topic(&rt, &brokers.bootstrap(), TOPIC, partitions);
    let before = leaders(&brokers, partitions, 3);
    let log = AckLog {
        acks: Arc::default(),
        errors: Arc::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (bootstrap, log, stop) = (brokers.bootstrap(), log.clone(), stop.clone());
        let rate = s.failover_rate;
        std::thread::spawn(move || {
            let p: BaseProducer<AckLog> = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("broker.address.family", "v4")
                .set("socket.nagle.disable", "true")
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("message.timeout.ms", "120000")
                .set("log_level", "3")
                .create_with_context(log)
                .expect("create producer");
            let mut data = payload();
            let start = Instant::now();
            let mut seq: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Catch up to `rate` records per second.
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while seq < due {
                    data[..8].copy_from_slice(&now_ns().to_le_bytes());
                    data[8..16].copy_from_slice(&seq.to_le_bytes());
                    let partition = (seq % partitions as u64) as i32;
                    let record = BaseRecord::<[u8], [u8]>::to(TOPIC)
                        .payload(&data)
                        .partition(partition);
                    if p.send(record).is_err() {
                        break; // queue full: try again next tick
                    }
                    seq += 1;
                }
                serve_then_sleep(&p, Duration::from_millis(1));
            }
            let _ = p.flush(Duration::from_secs(180));
            seq
        })
    };
    std::thread::sleep(Duration::from_secs(3));

    // A controlled stop of the broker leading partition 0.
    let stopped = before[&0];
    let stop_at = now_ns();
    brokers.stop(stopped);
    let stop_ms = first_acks_after(&log, &before, stopped, stop_at, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));

    // A kill of another broker, leading some partitions now.
    let now = leaders(&brokers, partitions, 2);
    let killed = (0..3)
        .find(|&i| i != stopped && now.values().any(|&b| b == i) && i != now[&0])
        .or_else(|| (0..3).find(|&i| i != stopped && now.values().any(|&b| b == i)))
        .expect("a live broker leading something");
    let kill_at = now_ns();
    brokers.kill(killed);
    let kill_ms = first_acks_after(
        &log,
        &now,
        killed,
        kill_at,
        Duration::from_millis(SESSION_MS * 3),
    );
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender thread");

    report_times("controlled stop (SIGTERM)", stopped, &stop_ms);
    report_times("kill -9", killed, &kill_ms);
    let errors = log.errors.lock().unwrap().clone();
    let acks = log.acks.lock().unwrap().clone();
    let (lost, duplicated, dense) = read_back(&brokers, partitions, &acks);
    println!(
        "  read back: {sent} sent, {} acknowledged, {} delivery errors, {lost} acknowledged records missing or moved, {duplicated} duplicated, offsets dense: {dense}",
        acks.len(),
        errors.len()
    );
    if let Some(e) = errors.first() {
        println!("  ! first delivery error: {e}");
    }
    let max = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::max);
    let min = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::min);
    Failover {
        stop_max_ms: max(&stop_ms),
        kill_max_ms: max(&kill_ms),
        kill_min_ms: min(&kill_ms),
        acked: acks.len(),
        lost,
        duplicated,
        ok: lost == 0
            && duplicated == 0
            && dense
            && errors.is_empty()
            && !stop_ms.is_empty()
            && !kill_ms.is_empty(),
    }
}

/// For each partition `victim` led in `led`: ms from `at` to the first acknowledgement of a record
/// sent after `at`; waits up to `timeout` for all of them.
fn first_acks_after(
    log: &AckLog,
    led: &BTreeMap<i32, usize>,
    victim: usize,
    at: u64,
    timeout: Duration,
) -> Vec<f64> {
    let theirs: Vec<i32> = led
        .iter()
        .filter(|(_, b)| **b == victim)
        .map(|(p, _)| *p)
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let firsts: BTreeMap<i32, u64> = {
            let acks = log.acks.lock().unwrap();
            let mut f = BTreeMap::new();
            for &(_, p, _, sent, acked) in acks.iter() {
                if sent > at && theirs.contains(&p) {
                    let first = f.entry(p).or_insert(acked);
                    *first = (*first).min(acked);
                }
            }
            f
        };
        if firsts.len() == theirs.len() || Instant::now() >= deadline {
            return firsts.values().map(|t| (t - at) as f64 / 1e6).collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report_times(what: &str, broker: usize, ms: &[f64]) {
    if ms.is_empty() {
        println!("  ! {what} of broker {broker}: no acknowledgement from a new leader");
        return;
    }
    println!(
        "  {what} of broker {broker}: its {} partitions acknowledged by their new leaders after {:.0} ms (first) .. {:.0} ms (last), median {:.0} ms",
        ms.len(),
        ms.iter().cloned().fold(f64::NAN, f64::min),
        ms.iter().cloned().fold(f64::NAN, f64::max),
        median(ms.to_vec())
    );
}

/// Read every partition from the start: (acknowledged records not found at their offset,
/// records appearing more than once, offsets dense in every partition).
fn read_back(brokers: &Brokers, partitions: i32, acks: &[Ack]) -> (usize, usize, bool) {
    let c: BaseConsumer<_> = consumer(&brokers.bootstrap(), "verifier");
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (_, high) = c
            .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
            .expect("watermarks");
        ends.insert(p, high);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("assign");
    }
    c.assign(&tpl).expect("assign");
    let mut at: HashMap<(i32, i64), u64> = HashMap::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut dense = true;
    let total: i64 = ends.values().sum();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (at.len() as i64) < total && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let (_, seq) = stamp(m.payload());
            let expected = next.entry(m.partition()).or_insert(0);
            dense &= m.offset() == *expected;
            *expected = m.offset() + 1;
            at.insert((m.partition(), m.offset()), seq);
            *seen.entry(seq).or_default() += 1;
        }
    }
    dense &= at.len() as i64 == total;
    let lost = acks
        .iter()
        .filter(|(seq, p, o, _, _)| at.get(&(*p, *o)) != Some(seq))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    (lost, duplicated, dense)
}
