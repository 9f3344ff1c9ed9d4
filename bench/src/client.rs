//! The rdkafka clients every scenario uses, configured alike: producers (acks=all, idempotence
//! off, large batches), consumers (assigned by hand, never a group), the AdminClient, the context
//! that logs librdkafka's warnings and counts delivery reports, and the tokio runtime the admin
//! futures (and FoundationDB mode) run on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use crate::workload::{epoch, now_ns};

/// Delivery reports of one or more producers.
#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub err: AtomicU64,
    pub first_err: Mutex<Option<String>>,
}

impl Counts {
    pub fn note_err(&self, e: String) {
        self.err.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_err.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
    }
}

/// Logs librdkafka's warnings and errors; counts delivery reports.
#[derive(Clone)]
pub struct Ctx {
    pub name: &'static str,
    pub counts: Arc<Counts>,
    /// If set: per delivered record, delivery-report time - send time (first 8 payload bytes), in µs.
    pub ack_us: Option<Arc<Mutex<Vec<f64>>>>,
}

impl Ctx {
    pub fn new(name: &'static str) -> Ctx {
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

pub fn producer(
    bootstrap: &str,
    linger_ms: u32,
    in_flight: u32,
    name: &'static str,
) -> BaseProducer<Ctx> {
    producer_with(bootstrap, linger_ms, in_flight, Ctx::new(name))
}

pub fn producer_with(
    bootstrap: &str,
    linger_ms: u32,
    in_flight: u32,
    ctx: Ctx,
) -> BaseProducer<Ctx> {
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

/// A producer that sends small batches (at most `batch_bytes` each), as many producers do.
pub fn small_batch_producer(bootstrap: &str, batch_bytes: usize) -> BaseProducer<Ctx> {
    config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .set("linger.ms", "0")
        .set("batch.size", batch_bytes.to_string())
        .set("max.in.flight.requests.per.connection", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "120000")
        .create_with_context(Ctx::new("filler"))
        .expect("create producer")
}

pub fn consumer(bootstrap: &str, name: &'static str) -> BaseConsumer<Ctx> {
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

pub fn admin(bootstrap: &str) -> AdminClient<Ctx> {
    config(bootstrap)
        .create_with_context(Ctx::new("admin"))
        .expect("create AdminClient")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(120)))
        .operation_timeout(Some(Duration::from_secs(120)))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One topic through a fresh AdminClient; panics if it cannot be created.
pub fn create_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(rt, bootstrap, topic, partitions, &[]);
}

/// [`create_topic`] with topic configs.
pub fn create_topic_with(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
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
pub fn send(p: &BaseProducer<Ctx>, topic: &str, partition: i32, payload: &[u8]) {
    send_keyed(p, topic, partition, None, payload);
}

/// Serve the delivery reports that are ready (rdkafka's poll(0) takes one event per call), then
/// sleep `wait`. A pacing loop must not wait in rdkafka's poll(t): it asks librdkafka for the time
/// left in whole milliseconds and loops to the deadline, so below a millisecond it spins, and a
/// spinning client takes a core from the broker under test on a 2-core machine.
pub fn serve_then_sleep<C: ProducerContext>(p: &BaseProducer<C>, wait: Duration) {
    for _ in 0..8 {
        p.poll(Duration::ZERO);
    }
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
}

/// How long a producer whose queue is full waits for delivery reports before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(20);

/// [`send`] with a key.
pub fn send_keyed(
    p: &BaseProducer<Ctx>,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    payload: &[u8],
) {
    let mut record = BaseRecord::to(topic).payload(payload).partition(partition);
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match p.send::<[u8], [u8]>(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                // Wait for delivery reports to free the queue. rdkafka's poll(t) polls until
                // t has passed and asks librdkafka for the time left in whole milliseconds, so
                // its last millisecond is a busy loop: poll(1 ms) spun for all of it, taking a
                // core from the broker under test. 20 ms blocks for at least 19 of them; the
                // queue (100,000 records) holds far more than a producer sends in 20 ms.
                p.poll(QUEUE_FULL_WAIT);
            }
            Err((e, _)) => {
                p.context().counts.note_err(format!("enqueue: {e}"));
                return;
            }
        }
    }
}
