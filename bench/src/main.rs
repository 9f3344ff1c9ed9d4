//! kfdb-bench: benchmarks of a running kfdb through a real Kafka client (rdkafka, librdkafka built
//! from its bundled sources), each next to a baseline measured in the same run.
//!
//! ```text
//! cd bench && nice -n 10 cargo build --release
//! target/release/kfdb-bench all              # or: produce | latency | tail | topics
//! target/release/kfdb-bench all --quick      # everything shrunk, a smoke run
//! ```
//!
//! Every scenario (and every repetition of `produce`) starts a fresh kfdb (`KFDB_BIN`, default
//! `../target/release/kfdb` relative to this package) on a free loopback port with a fresh data
//! directory under `KFDB_BENCH_DIR` (default: the system temp dir), and stops it (SIGTERM) at the
//! end. Each scenario prints its numbers and then ONE summary line that starts with `bench ` and is
//! made of `key=value` fields. MB = 10^6 bytes of record payload; MiB = 2^20.
//!
//! `kfdb-bench help` lists the flags.

mod fdb;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const RECORD_BYTES: usize = 1024;
const MIB: usize = 1024 * 1024;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Settings {
    quick: bool,
    // produce
    produce_mib: usize,
    reps: usize,
    producers: usize,
    partitions: i32,
    linger_ms: u32,
    in_flight: u32,
    // latency
    peak_mib: usize,
    rate: Option<f64>,
    latency_secs: f64,
    latency_linger_ms: u32,
    // tail
    tail_mib: usize,
    // topics
    topics: usize,
    topic_batch: usize,
    topic_concurrency: usize,
    metadata_reps: usize,
    random_topics: usize,
    records_per_topic: usize,
}

impl Settings {
    fn new(quick: bool) -> Settings {
        Settings {
            quick,
            produce_mib: if quick { 16 } else { 256 },
            reps: if quick { 1 } else { 3 },
            producers: 4,
            partitions: 4,
            linger_ms: 5,
            in_flight: 5,
            peak_mib: if quick { 16 } else { 64 },
            rate: None,
            latency_secs: if quick { 3.0 } else { 10.0 },
            latency_linger_ms: 0,
            tail_mib: if quick { 32 } else { 256 },
            topics: if quick { 5_000 } else { 100_000 },
            topic_batch: if quick { 1_000 } else { 2_000 },
            topic_concurrency: 1,
            metadata_reps: if quick { 100 } else { 1_000 },
            random_topics: if quick { 100 } else { 1_000 },
            records_per_topic: 10,
        }
    }
}

const HELP: &str = "\
kfdb-bench <produce|latency|tail|topics|all> [flags]

  --quick                 shrink every scenario (smoke run); flags given after it still apply
  produce:  --mib N (256)  --reps N (3)  --producers N (4)  --partitions N (4)
            --linger-ms N (5)  --in-flight N (5)
  latency:  --peak-mib N (64, the peak-throughput run)  --rate RECORDS_PER_S (default: half the
            measured peak)  --secs S (10)  --latency-linger-ms N (0)
  tail:     --tail-mib N (256)
  topics:   --topics N (100000)  --topic-batch N (2000)  --topic-concurrency N (1)
            --metadata-reps N (1000)  --random-topics N (1000)  --records-per-topic N (10)

Environment: KFDB_BIN (default ../target/release/kfdb), KFDB_BENCH_DIR (data dirs; default temp dir),
KFDB_LOG (passed to kfdb), RDKAFKA_DEBUG (librdkafka debug contexts),
KFDB_BENCH_FDB_CLUSTER_FILE (FoundationDB mode: kfdb --store fdb, raw FoundationDB baseline;
build with --features fdb and a kfdb built with --features fdb).";

fn parse_args() -> Result<(String, Settings), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().cloned().unwrap_or_else(|| "help".into());
    let quick = args.iter().any(|a| a == "--quick");
    let mut s = Settings::new(quick);
    let mut i = 1;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--quick" {
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{flag}: missing value"))?;
        let n = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag {
            "--mib" => s.produce_mib = n()?,
            "--reps" => s.reps = n()?.max(1),
            "--producers" => s.producers = n()?.max(1),
            "--partitions" => s.partitions = n()?.max(1) as i32,
            "--linger-ms" => s.linger_ms = n()? as u32,
            "--in-flight" => s.in_flight = n()?.max(1) as u32,
            "--peak-mib" => s.peak_mib = n()?,
            "--rate" => {
                s.rate = Some(
                    value
                        .parse::<f64>()
                        .map_err(|_| format!("{flag}: not a number"))?,
                )
            }
            "--secs" => {
                s.latency_secs = value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag}: not a number"))?
            }
            "--latency-linger-ms" => s.latency_linger_ms = n()? as u32,
            "--tail-mib" => s.tail_mib = n()?,
            "--topics" => s.topics = n()?,
            "--topic-batch" => s.topic_batch = n()?.max(1),
            "--topic-concurrency" => s.topic_concurrency = n()?.max(1),
            "--metadata-reps" => s.metadata_reps = n()?.max(1),
            "--random-topics" => s.random_topics = n()?,
            "--records-per-topic" => s.records_per_topic = n()?.max(1),
            _ => return Err(format!("unknown flag {flag}\n\n{HELP}")),
        }
        i += 2;
    }
    Ok((scenario, s))
}

// ------------------------------------------------------------------------------------------------
// The kfdb process
// ------------------------------------------------------------------------------------------------

/// One kfdb process on a free loopback port with a temporary data directory; dropping it stops the
/// process (SIGTERM, SIGKILL after `STOP_TIMEOUT`) and reports warnings/errors from its log.
struct Kfdb {
    child: Child,
    bootstrap: String,
    /// kfdb's metrics address; with `KFDB_BENCH_METRICS=DIR`, /metrics is saved to DIR at stop.
    metrics: Option<String>,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn kfdb_bin() -> PathBuf {
    match std::env::var_os("KFDB_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/kfdb"),
    }
}

fn bench_dir() -> PathBuf {
    std::env::var_os("KFDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Kfdb {
    fn start() -> Kfdb {
        let bin = kfdb_bin();
        assert!(
            bin.is_file(),
            "kfdb binary {} not found (`cargo build --release -p kfdb` in the repository root, or set KFDB_BIN)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("kfdb-bench-")
            .tempdir_in(bench_dir())
            .expect("temp dir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("kfdb.stderr.log");
        let bootstrap = format!("127.0.0.1:{}", free_port());
        let log = File::create(&log_path).expect("create kfdb log file");
        let metrics = Some(format!("127.0.0.1:{}", free_port()));
        let mut cmd = Command::new(&bin);
        cmd.arg("serve");
        if let Some(cf) = fdb::cluster_file() {
            fdb::clear(&cf);
            cmd.args(["--store", "fdb", "--fdb-cluster-file", &cf]);
        }
        if let Some(m) = &metrics {
            cmd.args(["--metrics-listen", m]);
        }
        let child = cmd
            .args(["--listen", &bootstrap])
            .args(["--advertised-listener", &bootstrap])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut kfdb = Kfdb {
            child,
            bootstrap,
            metrics,
            log_path,
            _dir: dir,
        };
        let addr: SocketAddr = kfdb.bootstrap.parse().unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = kfdb.child.try_wait().expect("try_wait kfdb") {
                panic!("kfdb exited ({status}) before accepting connections");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "kfdb did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "  kfdb pid {} on {} (data in {})",
            kfdb.child.id(),
            kfdb.bootstrap,
            data_dir.display()
        );
        kfdb
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|r| r.strip_prefix(':'))
                    .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// kfdb's CPU time so far (user + system), from /proc/<pid>/stat.
    fn cpu_seconds(&self) -> f64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): state is field 3; utime 14, stime 15.
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Lines of kfdb's log at WARN or ERROR.
    fn problems(&self) -> Vec<String> {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text.lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
            .map(str::to_string)
            .collect()
    }
}

impl Kfdb {
    /// kfdb's Prometheus metrics text.
    fn metrics_text(&self) -> std::io::Result<String> {
        let addr = self.metrics.as_deref().unwrap_or("127.0.0.1:0");
        let mut s = TcpStream::connect(addr)?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: kfdb\r\n\r\n")?;
        let mut t = String::new();
        s.read_to_string(&mut t)?;
        Ok(t)
    }

    /// kfdb's own time to answer requests of one API (from `kfdb_request_duration_seconds`):
    /// (count, mean ms, fraction answered within 1 ms, within 5 ms).
    fn request_time(&self, api: &str) -> Option<(u64, f64, f64, f64)> {
        self.histogram("kfdb_request_duration_seconds", &format!("api=\"{api}\""))
    }

    /// A kfdb histogram (`labels` like `api="Produce"`, or empty): count, mean in ms, and the
    /// fractions within 1 ms and 5 ms.
    fn histogram(&self, metric: &str, labels: &str) -> Option<(u64, f64, f64, f64)> {
        let text = self.metrics_text().ok()?;
        let value = |prefix: String| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(&prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        };
        let (plain, sep) = if labels.is_empty() {
            (String::new(), "")
        } else {
            (format!("{{{labels}}}"), ",")
        };
        let count = value(format!("{metric}_count{plain} "))?;
        let sum = value(format!("{metric}_sum{plain} "))?;
        let le1 = value(format!("{metric}_bucket{{{labels}{sep}le=\"0.001\"}}"))?;
        let le5 = value(format!("{metric}_bucket{{{labels}{sep}le=\"0.005\"}}"))?;
        let c = count.max(1.0);
        Some((count as u64, sum / c * 1e3, le1 / c, le5 / c))
    }

    /// A kfdb store counter (`kfdb_store_commits_total`, `kfdb_store_fsyncs_total`, ...).
    fn counter(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().ok()?;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Kfdb {
    fn drop(&mut self) {
        if let (Some(_), Some(dir)) = (&self.metrics, std::env::var_os("KFDB_BENCH_METRICS")) {
            let text = self.metrics_text();
            let path = PathBuf::from(dir).join(format!("kfdb-metrics-{}.txt", self.child.id()));
            match text {
                Ok(t) => {
                    let _ = std::fs::write(&path, t);
                    println!("  kfdb metrics saved to {}", path.display());
                }
                Err(e) => println!("  ! metrics: {e}"),
            }
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                println!("  ! kfdb did not exit {STOP_TIMEOUT:?} after SIGTERM: killing it");
                let _ = self.child.kill();
            }
        }
        let status = self.child.wait();
        let problems = self.problems();
        if !problems.is_empty() || !matches!(status, Ok(s) if s.success()) {
            println!(
                "  ! kfdb exit {status:?}; {} WARN/ERROR log lines",
                problems.len()
            );
            for l in problems.iter().take(10) {
                println!("  ! {l}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Clients
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    err: AtomicU64,
    first_err: Mutex<Option<String>>,
}

impl Counts {
    fn note_err(&self, e: String) {
        self.err.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_err.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
    }
}

/// Logs librdkafka's warnings and errors; counts delivery reports.
#[derive(Clone)]
struct Ctx {
    name: &'static str,
    counts: Arc<Counts>,
    /// If set: per delivered record, delivery-report time - send time (first 8 payload bytes), in µs.
    ack_us: Option<Arc<Mutex<Vec<f64>>>>,
}

impl Ctx {
    fn new(name: &'static str) -> Ctx {
        Ctx {
            name,
            counts: Arc::default(),
            ack_us: None,
        }
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32)
            || std::env::var_os("RDKAFKA_DEBUG").is_some()
        {
            eprintln!(
                "[{:.3} rdkafka {} {level:?} {fac}] {log_message}",
                epoch().elapsed().as_secs_f64(),
                self.name
            );
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("[rdkafka {} error] {error}: {reason}", self.name);
    }
}

impl ConsumerContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.counts.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(acks) = &self.ack_us {
                    let now = now_ns();
                    if let Some(ts) = m.payload().and_then(|p| p.get(..8)) {
                        let ts = u64::from_le_bytes(ts.try_into().unwrap());
                        if ts != 0 {
                            acks.lock()
                                .unwrap()
                                .push(now.saturating_sub(ts) as f64 / 1e3);
                        }
                    }
                }
            }
            Err((e, _)) => self.counts.note_err(e.to_string()),
        }
    }
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        // TCP_NODELAY as the Java client sets it; librdkafka's default leaves Nagle on, and then a
        // small request sent while an earlier one is unacknowledged waits for the broker's (delayed) ACK.
        .set("socket.nagle.disable", "true");
    if let Ok(d) = std::env::var("RDKAFKA_DEBUG") {
        c.set("debug", d).set_log_level(RDKafkaLogLevel::Debug);
    } else {
        c.set_log_level(RDKafkaLogLevel::Warning);
    }
    c
}

fn producer(
    bootstrap: &str,
    linger_ms: u32,
    in_flight: u32,
    name: &'static str,
) -> BaseProducer<Ctx> {
    producer_with(bootstrap, linger_ms, in_flight, Ctx::new(name))
}

fn producer_with(bootstrap: &str, linger_ms: u32, in_flight: u32, ctx: Ctx) -> BaseProducer<Ctx> {
    config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("batch.num.messages", "10000")
        .set(
            "max.in.flight.requests.per.connection",
            in_flight.to_string(),
        )
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "120000")
        .create_with_context(ctx)
        .expect("create producer")
}

fn consumer(bootstrap: &str, name: &'static str) -> BaseConsumer<Ctx> {
    config(bootstrap)
        // Required by librdkafka; partitions are assigned by hand, the group is never joined.
        .set("group.id", "kfdb-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set("max.partition.fetch.bytes", "4194304")
        .create_with_context(Ctx::new(name))
        .expect("create consumer")
}

fn admin(bootstrap: &str) -> AdminClient<Ctx> {
    config(bootstrap)
        .create_with_context(Ctx::new("admin"))
        .expect("create AdminClient")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(120)))
        .operation_timeout(Some(Duration::from_secs(120)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn create_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str, partitions: i32) {
    let admin = admin(bootstrap);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = rt
        .block_on(admin.create_topics([&new], &admin_options()))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("CreateTopics {name}: {code:?}");
        }
    }
}

/// Send one record, waiting (polling delivery reports) while the local queue is full.
fn send(p: &BaseProducer<Ctx>, topic: &str, partition: i32, payload: &[u8]) {
    let mut record = BaseRecord::to(topic).payload(payload).partition(partition);
    loop {
        match p.send::<[u8], [u8]>(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => {
                p.context().counts.note_err(format!("enqueue: {e}"));
                return;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "no" }
}

fn payload() -> Vec<u8> {
    (0..RECORD_BYTES).map(|i| (i * 31 + 7) as u8).collect()
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

// ------------------------------------------------------------------------------------------------
// Produce (also used to pre-fill `tail` and to measure peak throughput for `latency`)
// ------------------------------------------------------------------------------------------------

struct ProduceRun {
    secs: f64,
    records: u64,
    delivered: u64,
    errors: u64,
    first_err: Option<String>,
    /// Records sent before the timed part (one per producer, to connect and learn metadata).
    warmup: u64,
    kfdb_cpu_s: f64,
}

/// `producers` threads, each with its own BaseProducer (own connection) writing partition
/// `i % partitions`, together `records` records of 1 KiB; timed from the common start to the last
/// delivery report.
fn produce_records(kfdb: &Kfdb, topic: &str, s: &Settings, records: u64) -> ProduceRun {
    let n = s.producers;
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut handles = Vec::new();
    for i in 0..n {
        let share = records / n as u64 + u64::from((i as u64) < records % n as u64);
        let (bootstrap, topic, barrier) =
            (kfdb.bootstrap.clone(), topic.to_string(), barrier.clone());
        let (linger, in_flight, partition) = (s.linger_ms, s.in_flight, i as i32 % s.partitions);
        handles.push(std::thread::spawn(move || {
            let p = producer(&bootstrap, linger, in_flight, "producer");
            let data = payload();
            send(&p, &topic, partition, &data);
            p.flush(Duration::from_secs(60)).expect("warm-up flush");
            let warm_ok = p.context().counts.ok.load(Ordering::Relaxed);
            barrier.wait();
            for k in 0..share {
                send(&p, &topic, partition, &data);
                if k % 256 == 0 {
                    // One delivery-report event per call (rdkafka's poll(0)); QueueFull in `send`
                    // polls for 1 ms, serving the rest.
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
    let cpu0 = kfdb.cpu_seconds();
    let mut run = ProduceRun {
        secs: 0.0,
        records,
        delivered: 0,
        errors: 0,
        first_err: None,
        warmup: n as u64,
        kfdb_cpu_s: 0.0,
    };
    for h in handles {
        let (end, ok, err, first) = h.join().expect("producer thread");
        run.secs = run.secs.max(end.duration_since(start).as_secs_f64());
        run.delivered += ok;
        run.errors += err;
        run.first_err = run.first_err.or(first);
    }
    run.kfdb_cpu_s = kfdb.cpu_seconds() - cpu0;
    run
}

/// The raw-engine baseline: fjall configured as the embedded backend configures it
/// (`kfdb_kv::embedded::raw_engine`), one writer, `records` x 1 KiB of payload in write batches of
/// 1 MiB, fsync (`PersistMode::SyncAll`) after every batch. `value_bytes` is the size of the values
/// the batch is cut into: 1,024 (one value per record) or 90,000 (kfdb's record-batch chunk size).
fn raw_append(records: u64, value_bytes: usize) -> f64 {
    let dir = tempfile::Builder::new()
        .prefix("kfdb-bench-raw-")
        .tempdir_in(bench_dir())
        .expect("temp dir");
    let (db, ks) =
        kfdb_kv::embedded::raw_engine(dir.path(), &kfdb_kv::embedded::EmbeddedOptions::default())
            .expect("open raw engine");
    let data: Vec<u8> = (0..MIB).map(|i| (i * 31 + 7) as u8).collect();
    let space = kfdb_kv::tuple::Subspace::from_bytes(b"bench".to_vec());
    let mut left = records * RECORD_BYTES as u64;
    let mut key = 0u64;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        let mut batch = db.batch();
        for chunk in data[..n].chunks(value_bytes) {
            batch.insert(&ks, space.pack(&(0u64, key)), chunk.to_vec());
            key += 1;
        }
        batch.commit().expect("raw batch commit");
        db.persist(fjall::PersistMode::SyncAll).expect("raw fsync");
        left -= n as u64;
    }
    start.elapsed().as_secs_f64()
}

fn scenario_produce(s: &Settings) -> bool {
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
        None => raw_append(records, value_bytes),
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
        create_topic(&rt, &kfdb.bootstrap, "bench-produce", s.partitions);
        let run = produce_records(&kfdb, "bench-produce", s, records);
        println!(
            "  rep {rep}: kfdb produce                {:>8.1} MB/s {:>9.0} records/s ({:.2} s; delivered {}/{}, errors {}; kfdb CPU {:.1} s = {:.0} % of one core)",
            mb_s(bytes, run.secs),
            records as f64 / run.secs,
            run.secs,
            run.delivered,
            run.records,
            run.errors,
            run.kfdb_cpu_s,
            run.kfdb_cpu_s / run.secs * 100.0
        );
        if let Some(e) = &run.first_err {
            println!("  ! first error: {e}");
        }
        all_ok &= run.errors == 0 && run.delivered == run.records;
        kf.push(mb_s(bytes, run.secs));
        drop(kfdb);
    }
    let (k, r, r90) = (
        median(kf.clone()),
        median(raw.clone()),
        median(raw90.clone()),
    );
    let ratio = k / r;
    let spread = |v: &[f64]| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        format!("{lo:.1}-{hi:.1}")
    };
    println!(
        "bench scenario=produce store={} records={records} record_bytes={RECORD_BYTES} producers={} partitions={} reps={} \
         kfdb_mb_s={k:.1} kfdb_records_s={:.0} kfdb_mb_s_range={} raw_mb_s={r:.1} raw_records_s={:.0} raw_mb_s_range={} \
         ratio={ratio:.2} target_ratio=0.9 met={} raw90k_mb_s={r90:.1} raw90k_mb_s_range={} ratio_vs_raw90k={:.2} delivered_all={}",
        if on_fdb.is_some() { "fdb" } else { "embedded" },
        s.producers,
        s.partitions,
        s.reps,
        k * 1e6 / RECORD_BYTES as f64,
        spread(&kf),
        r * 1e6 / RECORD_BYTES as f64,
        spread(&raw),
        met(ratio >= 0.9),
        spread(&raw90),
        k / r90,
        all_ok
    );
    all_ok
}

// ------------------------------------------------------------------------------------------------
// Latency

/// The disk's own durable-append latency, for context: `n` times append 1 KiB to a file in the
/// bench directory and fdatasync it; returns sorted latencies in ms.
fn fsync_probe(n: usize) -> Vec<f64> {
    let dir = tempfile::Builder::new()
        .prefix("kfdb-bench-fsync-")
        .tempdir_in(bench_dir())
        .expect("temp dir");
    let mut f = File::create(dir.path().join("probe")).expect("create probe file");
    let data = payload();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        f.write_all(&data).expect("write probe");
        let t = Instant::now();
        f.sync_data().expect("fdatasync probe");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    lat
}
// ------------------------------------------------------------------------------------------------

fn scenario_latency(s: &Settings) -> bool {
    let rt = runtime();
    let (rate, peak) = match s.rate {
        Some(r) => (r, None),
        None => {
            let records = (s.peak_mib * MIB / RECORD_BYTES) as u64;
            println!(
                "latency: peak throughput first: {} MiB with the produce settings but linger.ms={} ({} producers, {} partitions)",
                s.peak_mib, s.latency_linger_ms, s.producers, s.partitions
            );
            let kfdb = Kfdb::start();
            create_topic(&rt, &kfdb.bootstrap, "bench-peak", s.partitions);
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
            (peak / 2.0, Some(peak))
        }
    };
    let total = (rate * s.latency_secs) as u64;
    let warmup_records = rate as u64; // the first second is not counted
    println!(
        "latency: {} producers (one connection each, linger.ms={}, acks=all, producer i -> partition i mod {}) \
         together at {rate:.0} records/s for {} s ({total} records, {:.1} MB/s); one consumer (manual assign of all \
         {} partitions, fetch.wait.max.ms=100) tails the topic; latency = consumer receive time - send time in the \
         payload; first second excluded",
        s.producers,
        s.latency_linger_ms,
        s.partitions,
        s.latency_secs,
        rate * RECORD_BYTES as f64 / 1e6,
        s.partitions
    );
    let probe = fsync_probe(500);
    println!(
        "  disk: 1 KiB append + fdatasync x {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        probe.len(),
        pct(&probe, 50.0),
        pct(&probe, 99.0),
        pct(&probe, 100.0)
    );
    let kfdb = Kfdb::start();
    let topic = "bench-latency";
    let partitions = s.partitions;
    create_topic(&rt, &kfdb.bootstrap, topic, partitions);

    let ready = Arc::new(AtomicBool::new(false));
    let cons = {
        let (bootstrap, ready) = (kfdb.bootstrap.clone(), ready.clone());
        std::thread::spawn(move || {
            let c = consumer(&bootstrap, "consumer");
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.fetch_metadata(Some(topic), Duration::from_secs(10))
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
    };

    let acks = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let counts = Arc::new(Counts::default());
    // Warm-up records (timestamp 0) on every partition until the consumer has seen one: the
    // connections and metadata are up before the clock starts.
    {
        let p = producer(&kfdb.bootstrap, 0, s.in_flight, "warm-up");
        let mut data = payload();
        data[..8].copy_from_slice(&0u64.to_le_bytes());
        let wait_start = Instant::now();
        while !ready.load(Ordering::Acquire) {
            for part in 0..partitions {
                send(&p, topic, part, &data);
            }
            p.flush(Duration::from_secs(10)).ok();
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                wait_start.elapsed() < Duration::from_secs(30),
                "consumer never saw the warm-up"
            );
        }
    }
    // `producers` producers (own connection each), producer i on partition i mod partitions, each
    // paced at rate / producers, all starting together.
    let n = s.producers;
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut handles = Vec::new();
    for i in 0..n {
        let share = total / n as u64 + u64::from((i as u64) < total % n as u64);
        let my_rate = rate * share as f64 / total as f64;
        let (bootstrap, barrier) = (kfdb.bootstrap.clone(), barrier.clone());
        let ctx = Ctx {
            ack_us: Some(acks.clone()),
            counts: counts.clone(),
            ..Ctx::new("producer")
        };
        let (linger, in_flight, partition) =
            (s.latency_linger_ms, s.in_flight, i as i32 % partitions);
        handles.push(std::thread::spawn(move || {
            let p = producer_with(&bootstrap, linger, in_flight, ctx);
            let mut data = payload();
            // Connect and learn the leader before the clock starts.
            p.client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .expect("producer metadata");
            barrier.wait();
            let t0 = Instant::now();
            let (mut sent, mut behind_max) = (0u64, 0u64);
            while sent < share {
                let due = ((t0.elapsed().as_secs_f64() * my_rate) as u64 + 1).min(share);
                behind_max = behind_max.max(due.saturating_sub(sent));
                while sent < due {
                    data[..8].copy_from_slice(&now_ns().to_le_bytes());
                    send(&p, topic, partition, &data);
                    sent += 1;
                }
                // Serve the delivery reports that are ready, then sleep until the next record is
                // due (at most 1 ms, so reports stay timely). rdkafka's poll(timeout) waits in
                // whole milliseconds and spins below that; a spinning pacing loop in four producer
                // threads starves the broker under test on a 2-core machine.
                for _ in 0..8 {
                    p.poll(Duration::ZERO);
                }
                let next_due = Duration::from_secs_f64(sent as f64 / my_rate);
                let wait = next_due.saturating_sub(t0.elapsed());
                if !wait.is_zero() {
                    std::thread::sleep(wait.min(Duration::from_millis(1)));
                }
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
    let mut lat = cons.join().expect("consumer thread");
    let received = lat.len() as u64;
    let errors = counts.err.load(Ordering::Relaxed);
    if let Some(e) = counts.first_err.lock().unwrap().clone() {
        println!("  ! first delivery error: {e}");
    }
    let counted: Vec<f64> = lat.split_off((warmup_records as usize).min(lat.len()));
    let mut sorted = counted;
    sorted.sort_by(f64::total_cmp);
    let ms = |p: f64| pct(&sorted, p) / 1e3;
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64 / 1e3;
    println!(
        "  sent {sent} in {send_secs:.2} s ({:.0} records/s; most records due at once in one producer {behind_max}); received {received}; delivery errors {errors}",
        sent as f64 / send_secs
    );
    println!(
        "  latency over {} records: mean {mean:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        sorted.len(),
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(99.9),
        ms(100.0)
    );
    let mut ack = std::mem::take(&mut *acks.lock().unwrap());
    let mut ack = ack.split_off((warmup_records as usize).min(ack.len()));
    ack.sort_by(f64::total_cmp);
    let ams = |p: f64| pct(&ack, p) / 1e3;
    println!(
        "  of which produce (send -> delivery report, acks=all): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ams(50.0),
        ams(90.0),
        ams(99.0),
        ams(99.9),
        ams(100.0)
    );
    let produce_time = kfdb.request_time("Produce");
    if let Some((n, mean, le1, le5)) = produce_time {
        println!(
            "  kfdb's own Produce handling (its metrics, whole run): {n} requests, mean {mean:.2} ms, {:.0} % within 1 ms, {:.0} % within 5 ms; store: {} commits in {} fsyncs",
            le1 * 100.0,
            le5 * 100.0,
            kfdb.counter("kfdb_store_commits_total").unwrap_or(f64::NAN),
            kfdb.counter("kfdb_store_fsyncs_total").unwrap_or(f64::NAN)
        );
    }
    if let Some((n, mean, le1, le5)) = kfdb.histogram("kfdb_store_commit_duration_seconds", "") {
        println!(
            "  kfdb's store commits (commit -> durable): {n}, mean {mean:.2} ms, {:.0} % within 1 ms, {:.0} % within 5 ms",
            le1 * 100.0,
            le5 * 100.0
        );
    }
    drop(kfdb);
    let ok = received == total && errors == 0;
    println!(
        "bench scenario=latency producers={} partitions={} linger_ms={} peak_records_s={} rate_records_s={rate:.0} rate_mb_s={:.1} secs={} records={total} received={received} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2} produce_ack_p50_ms={:.2} produce_ack_p99_ms={:.2} \
         kfdb_produce_mean_ms={:.2} disk_fsync_p50_ms={:.2} disk_fsync_p99_ms={:.2} target_p99_ms=5 met={} delivered_all={ok}",
        s.producers,
        s.partitions,
        s.latency_linger_ms,
        peak.map(|p| format!("{p:.0}"))
            .unwrap_or_else(|| "na".into()),
        rate * RECORD_BYTES as f64 / 1e6,
        s.latency_secs,
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(99.9),
        ms(100.0),
        ams(50.0),
        ams(99.0),
        produce_time.map(|t| t.1).unwrap_or(f64::NAN),
        pct(&probe, 50.0),
        pct(&probe, 99.0),
        met(ms(99.0) <= 5.0)
    );
    ok
}

// ------------------------------------------------------------------------------------------------
// Tail
// ------------------------------------------------------------------------------------------------

/// One consumer, all partitions assigned from the beginning, reads `expected` records as fast as it
/// can; returns (seconds from assign to the last record, seconds from the first record to the last,
/// payload bytes).
fn tail_read(bootstrap: &str, topic: &str, partitions: i32, expected: u64) -> (f64, f64, u64) {
    let c = consumer(bootstrap, "tail");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    // Learn the partitions' leader first: assigned with an unknown leader, librdkafka waits for its
    // 500 ms offset-query retry timer before fetching, which is the client's start-up, not kfdb's.
    c.fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("consumer metadata");
    let start = Instant::now();
    c.assign(&tpl).expect("assign");
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut first = None;
    while n < expected {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(e)) => eprintln!("tail consumer error: {e}"),
            None => assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "tail consumer stalled at {n}/{expected}"
            ),
        }
    }
    let end = Instant::now();
    (
        end.duration_since(start).as_secs_f64(),
        end.duration_since(first.unwrap_or(start)).as_secs_f64(),
        bytes,
    )
}

/// CPU time (user + system) of this process so far.
fn self_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Loopback TCP copy of `bytes` between two sockets in this process, 1 MiB writes and reads.
fn tcp_copy(bytes: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; MIB];
        let mut got = 0u64;
        while got < bytes {
            let n = sock.read(&mut buf).expect("read");
            assert!(n > 0, "eof");
            got += n as u64;
        }
        Instant::now()
    });
    let data = vec![7u8; MIB];
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).expect("connect");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MIB as u64) as usize;
        sock.write_all(&data[..n]).expect("write");
        left -= n as u64;
    }
    let end = reader.join().expect("reader");
    end.duration_since(start).as_secs_f64()
}

/// kfdb's own serving rate, without a client library: one TCP connection sends Fetch v11 for all
/// partitions (4 MiB each, one request in flight, like librdkafka), reads each response into one
/// buffer and only walks the record-batch headers to find the next offsets (no record parsing,
/// no CRC check). Returns (seconds, payload bytes of record batches received).
fn raw_fetch_read(bootstrap: &str, topic: &str, partitions: i32, expected: u64) -> (f64, u64) {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    const VERSION: i16 = 11;
    let mut sock = TcpStream::connect(bootstrap).expect("connect");
    sock.set_nodelay(true).unwrap();
    let mut offsets = vec![0i64; partitions as usize];
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut buf = BytesMut::new();
    let start = Instant::now();
    let mut correlation = 0;
    while records < expected {
        correlation += 1;
        let parts = offsets
            .iter()
            .enumerate()
            .map(|(p, &o)| {
                FetchPartition::default()
                    .with_partition(p as i32)
                    .with_fetch_offset(o)
                    .with_partition_max_bytes(4 << 20)
            })
            .collect();
        let req = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(parts),
            ]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(VERSION)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("kfdb-bench")));
        let mut out = BytesMut::new();
        out.put_i32(0);
        header
            .encode(&mut out, ApiKey::Fetch.request_header_version(VERSION))
            .unwrap();
        req.encode(&mut out, VERSION).unwrap();
        let n = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        sock.write_all(&out).expect("send fetch");
        let mut len = [0u8; 4];
        sock.read_exact(&mut len).expect("fetch response size");
        let len = i32::from_be_bytes(len) as usize;
        buf.clear();
        buf.resize(len, 0);
        sock.read_exact(&mut buf).expect("fetch response");
        let mut body = buf.split().freeze();
        ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(VERSION)).unwrap();
        let resp = FetchResponse::decode(&mut body, VERSION).expect("decode fetch response");
        for t in &resp.responses {
            for p in &t.partitions {
                assert_eq!(
                    p.error_code, 0,
                    "fetch error on partition {}",
                    p.partition_index
                );
                let Some(mut r) = p.records.clone() else {
                    continue;
                };
                bytes += r.len() as u64;
                // Walk whole batches: base offset (8), length (4), ..., last offset delta at 23,
                // record count at 57.
                while r.len() >= 61 {
                    let base = i64::from_be_bytes(r[..8].try_into().unwrap());
                    let size = 12 + i32::from_be_bytes(r[8..12].try_into().unwrap()) as usize;
                    if size > r.len() {
                        break;
                    }
                    let delta = i32::from_be_bytes(r[23..27].try_into().unwrap());
                    let count = i32::from_be_bytes(r[57..61].try_into().unwrap());
                    records += count.max(0) as u64;
                    offsets[p.partition_index as usize] = base + delta as i64 + 1;
                    r.advance(size);
                }
            }
        }
    }
    (start.elapsed().as_secs_f64(), bytes)
}

fn scenario_tail(s: &Settings) -> bool {
    let records = (s.tail_mib * MIB / RECORD_BYTES) as u64;
    let reps = s.reps;
    println!(
        "tail: pre-produce {records} records x {RECORD_BYTES} B ({} MiB) into {} partitions, then one consumer \
         (all partitions assigned from the beginning, max.partition.fetch.bytes=4 MiB) reads them as fast as it can, \
         {reps} time(s); baseline: loopback TCP copy of the same bytes in this process (1 MiB writes), interleaved",
        s.tail_mib, s.partitions
    );
    let rt = runtime();
    let kfdb = Kfdb::start();
    let topic = "bench-tail";
    create_topic(&rt, &kfdb.bootstrap, topic, s.partitions);
    let run = produce_records(&kfdb, topic, s, records);
    println!(
        "  pre-produce: {:.1} MB/s ({:.2} s, delivered {}, errors {})",
        mb_s(records * RECORD_BYTES as u64, run.secs),
        run.secs,
        run.delivered,
        run.errors
    );
    let expected = run.delivered + run.warmup;
    let (mut kf, mut kf_steady, mut tcp, mut raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for rep in 0..reps {
        let (cpu0, own0) = (kfdb.cpu_seconds(), self_cpu_seconds());
        let (secs, steady, b) = tail_read(&kfdb.bootstrap, topic, s.partitions, expected);
        let (cpu, own) = (kfdb.cpu_seconds() - cpu0, self_cpu_seconds() - own0);
        bytes = b;
        let t = tcp_copy(b);
        let cpu_raw0 = kfdb.cpu_seconds();
        let (raw_secs, raw_bytes) = raw_fetch_read(&kfdb.bootstrap, topic, s.partitions, expected);
        let cpu_raw = kfdb.cpu_seconds() - cpu_raw0;
        println!(
            "  rep {rep}: kfdb tail {:>8.1} MB/s ({secs:.2} s from assign; {:.1} MB/s from the first record; {expected} records; \
             CPU: kfdb {:.0} %, consumer process {:.0} % of one core); loopback TCP {:>8.1} MB/s ({t:.3} s); \
             raw Fetch loop {:>8.1} MB/s ({raw_secs:.3} s, kfdb CPU {:.0} %)",
            mb_s(b, secs),
            mb_s(b, steady),
            cpu / secs * 100.0,
            own / secs * 100.0,
            mb_s(b, t),
            mb_s(raw_bytes, raw_secs),
            cpu_raw / raw_secs * 100.0
        );
        kf.push(mb_s(b, secs));
        kf_steady.push(mb_s(b, steady));
        tcp.push(mb_s(b, t));
        raw.push(mb_s(raw_bytes, raw_secs));
    }
    drop(kfdb);
    let (k, ks, t, r) = (median(kf), median(kf_steady), median(tcp), median(raw));
    println!(
        "bench scenario=tail bytes={bytes} records={expected} partitions={} reps={reps} kfdb_mb_s={k:.1} \
         kfdb_mb_s_from_first_record={ks:.1} tcp_mb_s={t:.1} ratio={:.2} target_ratio=0.5 met={} \
         raw_fetch_mb_s={r:.1} raw_fetch_ratio={:.2}",
        s.partitions,
        k / t,
        met(k / t >= 0.5),
        r / t
    );
    true
}

// ------------------------------------------------------------------------------------------------
// Topics
// ------------------------------------------------------------------------------------------------

fn topic_name(i: usize) -> String {
    format!("t{i:07}")
}

/// A raw Metadata v4 request for `topics` (allow_auto_topic_creation = false), with its length
/// prefix, encoded by kafka-protocol.
fn metadata_request(correlation: i32, topics: &[String]) -> Vec<u8> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(4)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("kfdb-bench")));
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let mut frame = vec![0; 4];
    header
        .encode(&mut frame, ApiKey::Metadata.request_header_version(4))
        .expect("encode Metadata header");
    request.encode(&mut frame, 4).expect("encode Metadata");
    let n = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&n.to_be_bytes());
    frame
}

/// Decodes a Metadata v4 response (kafka-protocol): (topic name, error code, partition count) per
/// topic.
fn parse_metadata_v4(body: &[u8]) -> Vec<(String, i16, i32)> {
    use kafka_protocol::messages::{ApiKey, MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;
    let mut body = bytes::Bytes::copy_from_slice(body);
    ResponseHeader::decode(&mut body, ApiKey::Metadata.response_header_version(4))
        .expect("decode Metadata response header");
    let response = MetadataResponse::decode(&mut body, 4).expect("decode Metadata response");
    response
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
        .collect()
}

fn metadata_roundtrip(sock: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) {
    sock.write_all(req).expect("write Metadata");
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).expect("read Metadata length");
    buf.resize(i32::from_be_bytes(len) as usize, 0);
    sock.read_exact(buf).expect("read Metadata body");
}

fn scenario_topics(s: &Settings) -> bool {
    println!(
        "topics: create {} topics (1 partition each) through the AdminClient, {} per CreateTopics request, {} request(s) \
         in flight; kfdb VmRSS before/after; then a raw Metadata v4 request naming 10 topics x {} (one connection, \
         sequential), and rdkafka fetch_metadata(topic) x {}; then produce {} records to each of {} random topics and \
         consume them back",
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
    let admin = admin(&kfdb.bootstrap);
    // Warm-up: the admin client connected, one topic created and described (not counted).
    create_topic(&rt, &kfdb.bootstrap, "bench-warmup", 1);
    admin
        .inner()
        .fetch_metadata(Some("bench-warmup"), Duration::from_secs(10))
        .expect("warm-up metadata");
    std::thread::sleep(Duration::from_secs(1));
    let rss0 = kfdb.status_kib("VmRSS");

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
    let cpu0 = kfdb.cpu_seconds();
    let start = Instant::now();
    let progress_every = (batches.len() / 10).max(1);
    rt.block_on(
        futures::stream::iter(batches.iter().enumerate())
            .map(|(bi, b)| {
                let (admin, opts) = (&admin, &opts);
                let (created, failed, first_err, slowest) =
                    (&created, &failed, &first_err, &slowest);
                async move {
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
    let create_secs = start.elapsed().as_secs_f64();
    let create_cpu = kfdb.cpu_seconds() - cpu0;
    let (created, failed) = (created.into_inner(), failed.into_inner());
    let rate = created as f64 / create_secs;
    if let Some(e) = first_err.into_inner().unwrap() {
        println!("  ! first CreateTopics error: {e}");
    }
    println!(
        "  created {created} topics ({failed} failed) in {create_secs:.2} s = {rate:.0} topics/s (slowest request {:.0} ms; kfdb CPU {create_cpu:.1} s)",
        slowest.into_inner().unwrap() * 1e3
    );
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
    let mut sock = TcpStream::connect(&kfdb.bootstrap).expect("connect");
    sock.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut lat = Vec::with_capacity(s.metadata_reps);
    let mut md_ok = true;
    for i in 0..(s.metadata_reps + 50) {
        let req = metadata_request(i as i32, &names);
        let t = Instant::now();
        metadata_roundtrip(&mut sock, &req, &mut buf);
        let dt = t.elapsed().as_secs_f64() * 1e3;
        if i >= 50 {
            lat.push(dt);
        }
        if i == 0 || i == s.metadata_reps + 49 {
            let topics = parse_metadata_v4(&buf);
            let good = topics.len() == 10 && topics.iter().all(|(_, e, p)| *e == 0 && *p == 1);
            if !good {
                println!("  ! Metadata response: {topics:?}");
            }
            md_ok &= good;
        }
    }
    lat.sort_by(f64::total_cmp);
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
    drop(sock);

    // Produce to / consume from random topics.
    let k = s.random_topics.min(s.topics);
    let chosen: Vec<String> = rand::seq::index::sample(&mut rng, s.topics, k)
        .into_iter()
        .map(topic_name)
        .collect();
    let expected = (k * s.records_per_topic) as u64;
    let p = producer(&kfdb.bootstrap, 5, s.in_flight, "random-producer");
    let data = payload();
    let t = Instant::now();
    for _ in 0..s.records_per_topic {
        for name in &chosen {
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
    let c = consumer(&kfdb.bootstrap, "random-consumer");
    let mut tpl = TopicPartitionList::new();
    for name in &chosen {
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
    let rss2 = kfdb.status_kib("VmRSS");
    println!("  kfdb VmRSS at the end {rss2} KiB");
    drop(admin);
    drop(kfdb);
    println!(
        "bench scenario=topics topics={created} failed={failed} batch={} concurrency={} create_s={create_secs:.2} \
         topics_per_s={rate:.0} target_topics_per_s=50000 met_rate={} rss_before_kib={rss0} rss_2s_kib={rss_2s} rss_after_kib={rss1} \
         bytes_per_topic={per_topic:.0} target_bytes_per_topic=50 met_bytes={} metadata_reps={} metadata_p50_ms={m50:.3} \
         metadata_p99_ms={m99:.3} metadata_max_ms={mmax:.3} rdkafka_metadata_p50_ms={r50:.3} rdkafka_metadata_p99_ms={r99:.3} \
         target_metadata_p99_ms=1 met_metadata={} random_topics={k} produced={delivered} consumed={consumed} random_ok={random_ok}",
        s.topic_batch,
        s.topic_concurrency,
        met(rate >= 50_000.0),
        met(per_topic <= 50.0),
        lat.len(),
        met(m99 <= 1.0)
    );
    failed == 0 && md_ok && random_ok
}

// ------------------------------------------------------------------------------------------------

fn main() {
    let (scenario, s) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    epoch();
    let list: Vec<&str> = match scenario.as_str() {
        "all" => vec!["produce", "latency", "tail", "topics"],
        "produce" | "latency" | "tail" | "topics" => vec![scenario.as_str()],
        _ => {
            println!("{HELP}");
            std::process::exit(if scenario == "help" || scenario == "--help" {
                0
            } else {
                2
            });
        }
    };
    println!(
        "kfdb-bench: kfdb {} (quick: {}), data under {}",
        kfdb_bin().display(),
        s.quick,
        bench_dir().display()
    );
    let mut ok = true;
    for sc in list {
        let t = Instant::now();
        ok &= match sc {
            "produce" => scenario_produce(&s),
            "latency" => scenario_latency(&s),
            "tail" => scenario_tail(&s),
            _ => scenario_topics(&s),
        };
        println!("  ({sc} took {:.1} s)\n", t.elapsed().as_secs_f64());
    }
    std::process::exit(if ok { 0 } else { 1 });
}
