//! Real-client test of kfdb with rdkafka (librdkafka 2.x, built from the sources bundled in
//! rdkafka-sys).
//!
//! Each test starts its own kfdb process through `kfdb-harness` (binary from `KFDB_BIN`, default
//! `../../target/debug/kfdb` relative to this package) on a free loopback port with a fresh data
//! directory, and stops it when the test ends, also on panic.
//!
//! kfdb has no consumer groups yet: the consumers set `group.id` only because librdkafka requires
//! one, assign their partitions by hand and never subscribe or commit.
//!
//! Environment:
//!   KFDB_BIN        the kfdb binary to test
//!   KFDB_LOG        passed through to kfdb (e.g. `debug`); kfdb's stderr is printed when a test fails
//!   RDKAFKA_DEBUG   librdkafka `debug` contexts for every client (e.g. `broker,protocol,msg,fetch`)

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kfdb_harness::Kfdb;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::get_rdkafka_version;

const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(60);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
/// After the last expected message: keep polling this long to catch duplicates.
const CONSUME_GRACE: Duration = Duration::from_secs(1);
const LOG_TAIL_LINES: usize = 200;

// ------------------------------------------------------------------------------------------------
// The kfdb process
// ------------------------------------------------------------------------------------------------

/// Starts kfdb through kfdb-harness (free loopback port, temporary data directory). The guard stops
/// it (SIGTERM, then SIGKILL after `STOP_TIMEOUT`) when the test ends, also on panic, and then
/// prints the tail of kfdb's log if the test failed.
fn start_kfdb() -> Kfdb {
    let bin = kfdb_harness::kfdb_bin(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/kfdb"),
    );
    let kfdb = kfdb_harness::Options::new(&bin)
        .temp_prefix("kfdb-rdkafka-")
        .env("RUST_BACKTRACE", "1")
        .stop_timeout(STOP_TIMEOUT)
        .log_tail_on_panic(LOG_TAIL_LINES)
        .start()
        .unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                panic!("{e} (build it with `cargo build -p kfdb` or set KFDB_BIN)")
            }
            _ => panic!("{e}"),
        });
    eprintln!(
        "kfdb {} (pid {}) listening on {}",
        bin.display(),
        kfdb.pid(),
        kfdb.bootstrap()
    );
    kfdb
}

// ------------------------------------------------------------------------------------------------
// Clients
// ------------------------------------------------------------------------------------------------

/// Prints librdkafka's warnings and errors (everything with `RDKAFKA_DEBUG`) to stderr.
#[derive(Clone)]
struct Ctx {
    name: &'static str,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32)
            || std::env::var_os("RDKAFKA_DEBUG").is_some()
        {
            eprintln!("[rdkafka {} {level:?} {fac}] {log_message}", self.name);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("[rdkafka {} error] {error}: {reason}", self.name);
    }
}

impl ConsumerContext for Ctx {}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    if let Ok(d) = std::env::var("RDKAFKA_DEBUG") {
        c.set("debug", d).set_log_level(RDKafkaLogLevel::Debug);
    } else {
        c.set_log_level(RDKafkaLogLevel::Warning);
    }
    c
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<Ctx> = config(bootstrap)
        .create_with_context(Ctx { name: "admin" })
        .expect("create AdminClient");
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)));
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(results.len(), 1, "CreateTopics results: {results:?}");
    match &results[0] {
        Ok(name) => assert_eq!(name, topic),
        Err((name, code)) => panic!("CreateTopics {name}: {code:?}"),
    }
}

fn producer(bootstrap: &str, compression: Option<&'static str>) -> FutureProducer<Ctx> {
    let mut c = config(bootstrap);
    c.set("enable.idempotence", "false")
        .set("acks", "all")
        .set("linger.ms", "10")
        // Several record batches per partition, many requests in flight.
        .set("batch.num.messages", "100")
        .set("message.timeout.ms", "30000");
    if let Some(codec) = compression {
        c.set("compression.type", codec);
    }
    c.create_with_context(Ctx {
        name: compression.unwrap_or("producer"),
    })
    .expect("create FutureProducer")
}

fn consumer(bootstrap: &str) -> BaseConsumer<Ctx> {
    config(bootstrap)
        // Required by librdkafka; kfdb has no consumer groups, so this group is never joined.
        .set("group.id", "kfdb-rdkafka-compat-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("check.crcs", "true")
        .create_with_context(Ctx { name: "consumer" })
        .expect("create BaseConsumer")
}

// ------------------------------------------------------------------------------------------------
// Test data
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Message `i`: its key starts with `key-{i:05}/` (the index is read back from it), binary payload
/// of varying size (empty for every 97th), and four headers (binary, empty and null values, and a
/// repeated key).
fn message(i: usize, compressible: bool) -> Msg {
    let mut key = format!("key-{i:05}/").into_bytes();
    key.extend_from_slice(&noise(i as u64 + 1, i % 7));
    let payload = if i.is_multiple_of(97) {
        Vec::new()
    } else if compressible {
        let mut p = format!("message {i} of the kfdb rdkafka compression test; ")
            .repeat(20 + i % 30)
            .into_bytes();
        p.extend_from_slice(&noise(i as u64 + 7, 64));
        p
    } else {
        noise(i as u64 + 1_000_000, 1 + (i * 37) % 700)
    };
    let headers = vec![
        ("idx".to_string(), Some((i as u64).to_be_bytes().to_vec())),
        ("bin".to_string(), Some(noise(i as u64 + 2_000_000, i % 40))),
        ("empty".to_string(), Some(Vec::new())),
        ("null".to_string(), None),
        ("idx".to_string(), Some(format!("dup-{i}").into_bytes())),
    ];
    Msg {
        key,
        payload,
        headers,
    }
}

fn index_of(key: &[u8]) -> usize {
    assert!(
        key.len() >= 10 && key.starts_with(b"key-"),
        "unexpected key {key:?}"
    );
    std::str::from_utf8(&key[4..9])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected key {key:?}"))
}

fn owned_headers(m: &Msg) -> OwnedHeaders {
    m.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: v.as_deref(),
        })
    })
}

// ------------------------------------------------------------------------------------------------
// Produce and consume
// ------------------------------------------------------------------------------------------------

/// Produces `msgs` (message `i` = `msgs[i]`) to `topic`, all in flight at once, and returns the
/// (partition, offset) of each from its delivery report.
async fn produce_all(producer: &FutureProducer<Ctx>, topic: &str, msgs: &[Msg]) -> Vec<(i32, i64)> {
    let work = async {
        let mut futures = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let record = FutureRecord::to(topic)
                .key(&m.key)
                .payload(&m.payload)
                .headers(owned_headers(m));
            match producer.send_result(record) {
                Ok(f) => futures.push(f),
                Err((e, _)) => panic!("enqueue message {i} to {topic}: {e}"),
            }
        }
        let mut out = Vec::with_capacity(msgs.len());
        for (i, f) in futures.into_iter().enumerate() {
            match f.await.expect("delivery future cancelled") {
                Ok(d) => out.push((d.partition, d.offset)),
                Err((e, _)) => panic!("delivery of message {i} to {topic} failed: {e}"),
            }
        }
        out
    };
    tokio::time::timeout(PRODUCE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "producing {} messages to {topic}: not all delivered within {PRODUCE_TIMEOUT:?}",
                msgs.len()
            )
        })
}

/// Assigns partitions `0..partitions` of `topic` from the beginning and polls until `expected`
/// messages came back (then `CONSUME_GRACE` more, to catch duplicates) or `CONSUME_TIMEOUT`
/// passed. Returns (partition, offset, message) in arrival order.
fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, Msg)> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");

    let mut got = Vec::with_capacity(expected);
    let mut errors = Vec::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut complete_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || complete_at.is_some_and(|t| now >= t + CONSUME_GRACE) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                eprintln!("[consumer {topic}] poll error: {e}");
                errors.push(e.to_string());
                assert!(errors.len() < 100, "too many consumer errors: {errors:?}");
            }
            Some(Ok(m)) => {
                assert_eq!(m.topic(), topic);
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                let msg = Msg {
                    key: m.key().expect("message without key").to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                };
                got.push((m.partition(), m.offset(), msg));
                if got.len() >= expected && complete_at.is_none() {
                    complete_at = Some(Instant::now());
                }
            }
        }
    }
    assert!(
        got.len() >= expected,
        "consumed only {} of {expected} messages from {topic} within {CONSUME_TIMEOUT:?}; consumer errors: {errors:?}",
        got.len()
    );
    got
}

/// All of `sent` came back exactly once, byte-identical, at the (partition, offset) of its delivery
/// report; per partition the offsets are dense from 0 and arrive in order.
fn check(topic: &str, sent: &[Msg], delivered: &[(i32, i64)], got: &[(i32, i64, Msg)]) {
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, m) in got {
        let i = index_of(&m.key);
        assert!(i < sent.len(), "{topic}: unknown message index {i}");
        *seen.entry(i).or_default() += 1;
        assert_eq!(
            (*p, *o),
            delivered[i],
            "{topic}: message {i} consumed at (partition, offset) = ({p}, {o}), delivery report said {:?}",
            delivered[i]
        );
        assert_eq!(m.key, sent[i].key, "{topic}: key of message {i}");
        assert_eq!(
            m.payload, sent[i].payload,
            "{topic}: payload of message {i}"
        );
        assert_eq!(
            m.headers, sent[i].headers,
            "{topic}: headers of message {i}"
        );
        per_partition.entry(*p).or_default().push(*o);
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{topic}: consumed more than once (index, times): {dups:?}"
    );
    assert_eq!(
        seen.len(),
        sent.len(),
        "{topic}: distinct messages consumed"
    );
    assert_eq!(got.len(), sent.len(), "{topic}: messages consumed");

    let mut reported: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for &(p, o) in delivered {
        reported.entry(p).or_default().push(o);
    }
    for (p, offsets) in &per_partition {
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &want,
            "{topic}: partition {p}: offsets in arrival order"
        );
        let mut r = reported[p].clone();
        r.sort_unstable();
        assert_eq!(
            &r, &want,
            "{topic}: partition {p}: offsets of the delivery reports"
        );
    }
    assert_eq!(
        per_partition.keys().collect::<Vec<_>>(),
        reported.keys().collect::<Vec<_>>(),
        "{topic}: partitions"
    );
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

/// 1,000 keyed messages with headers to a 3-partition topic created by AdminClient, produced with
/// acks=all (no idempotence), consumed back by manual assignment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_1000_keyed_messages_with_headers() {
    let (v, s) = get_rdkafka_version();
    eprintln!("librdkafka {s} (0x{v:08x})");
    let kfdb = start_kfdb();
    let topic = "rdkafka-roundtrip";
    const N: usize = 1000;
    const PARTITIONS: i32 = 3;

    create_topic(kfdb.bootstrap(), topic, PARTITIONS).await;

    let sent: Vec<Msg> = (0..N).map(|i| message(i, false)).collect();
    let producer = producer(kfdb.bootstrap(), None);
    let delivered = produce_all(&producer, topic, &sent).await;
    drop(producer);
    let mut counts = BTreeMap::new();
    for (p, _) in &delivered {
        *counts.entry(*p).or_insert(0usize) += 1;
    }
    eprintln!("delivered per partition: {counts:?}");
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..PARTITIONS).collect::<Vec<_>>(),
        "keyed messages should land on all {PARTITIONS} partitions"
    );

    let got = tokio::task::block_in_place(|| consume_all(kfdb.bootstrap(), topic, PARTITIONS, N));
    check(topic, &sent, &delivered, &got);
}

/// One producer per codec (`compression.type` gzip, snappy, lz4, zstd), each to its own topic,
/// consumed back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_compressed() {
    let kfdb = start_kfdb();
    const N: usize = 300;
    const PARTITIONS: i32 = 2;
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rdkafka-compressed-{codec}");
        create_topic(kfdb.bootstrap(), &topic, PARTITIONS).await;
        let sent: Vec<Msg> = (0..N).map(|i| message(i, i.is_multiple_of(2))).collect();
        let producer = producer(kfdb.bootstrap(), Some(codec));
        let delivered = produce_all(&producer, &topic, &sent).await;
        drop(producer);
        let got =
            tokio::task::block_in_place(|| consume_all(kfdb.bootstrap(), &topic, PARTITIONS, N));
        check(&topic, &sent, &delivered, &got);
        eprintln!("{codec}: {N} messages round-tripped");
    }
}
