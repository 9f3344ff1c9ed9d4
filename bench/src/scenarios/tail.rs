//! `tail`: how fast one consumer reads a filled topic from the beginning (rdkafka), next to a
//! loopback TCP copy of the same bytes, and a raw Fetch loop that shows kfdb's own serving rate
//! without a client library's per-record work.

use std::time::{Duration, Instant};

use bytes::Buf;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::produce::produce_records;
use crate::baseline::tcp_copy;
use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{consumer, create_topic, runtime};
use crate::kfdb::Kfdb;
use crate::procfs::self_cpu_seconds;
use crate::stats::{mb_s, median, met};
use crate::wire::Connection;
use crate::workload::{MIB, RECORD_BYTES};

/// The Fetch version of the raw loop (as librdkafka 2.x sends).
const FETCH_VERSION: i16 = 11;

pub fn run(s: &Settings) -> bool {
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
    create_topic(&rt, kfdb.bootstrap(), topic, s.partitions);
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
        let (secs, steady, b) = tail_read(kfdb.bootstrap(), topic, s.partitions, expected);
        let (cpu, own) = (kfdb.cpu_seconds() - cpu0, self_cpu_seconds() - own0);
        bytes = b;
        let t = tcp_copy(b);
        let cpu_raw0 = kfdb.cpu_seconds();
        let (raw_secs, raw_bytes) = raw_fetch_read(kfdb.bootstrap(), topic, s.partitions, expected);
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

/// One consumer, all partitions assigned from the beginning, reads `expected` records as fast as it
/// can; returns (seconds from assign to the last record, seconds from the first record to the last,
/// payload bytes).
pub fn tail_read(bootstrap: &str, topic: &str, partitions: i32, expected: u64) -> (f64, f64, u64) {
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

/// kfdb's own serving rate, without a client library: one TCP connection sends Fetch v11 for all
/// partitions (4 MiB each, one request in flight, like librdkafka), reads each whole response and
/// decodes it with kafka-protocol, which leaves each partition's records as one undecoded slice of
/// the response; only the record-batch headers in it are read, to find the next offsets (no record
/// parsing, no CRC check). Returns (seconds, bytes of record batches received).
pub fn raw_fetch_read(bootstrap: &str, topic: &str, partitions: i32, expected: u64) -> (f64, u64) {
    let mut conn = Connection::connect(bootstrap);
    let topic = TopicName(StrBytes::from_string(topic.to_string()));
    let mut offsets = vec![0i64; partitions as usize];
    let (mut records, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while records < expected {
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
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(parts),
            ]);
        let response: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request);
        for t in &response.responses {
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
