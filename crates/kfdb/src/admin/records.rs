//! `kfdb produce` and `kfdb consume` over the Kafka protocol: lines of standard input become
//! records (optionally `key<sep>value`, with headers), acknowledged by every partition's leader
//! (acks=all by default); records come back from chosen offsets or timestamps, or from a group's
//! committed offsets, as text or JSON lines, read_committed by default (aborted transactions
//! are skipped, as Kafka's consumer does).

use super::{ConnArgs, Format, progress};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kfdb_client::{Client, Error};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// Bytes of records per produced batch.
const BATCH_BYTES: usize = 1024 * 1024;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Each partition's leader, from Metadata.
fn leaders(md: &MetadataResponse, topic: &str) -> Result<BTreeMap<i32, i32>, String> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| format!("{topic}: no such topic"))?;
    Error::check(t.error_code, None, topic).map_err(|e| e.to_string())?;
    Ok(t.partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect())
}

/// A client, and the leader of each partition of `topic`.
async fn open_topic(conn: &ConnArgs, topic: &str) -> Result<(Client, BTreeMap<i32, i32>), String> {
    let mut client = conn.client().await?;
    let md = client
        .metadata(Some(&[topic.to_string()]))
        .await
        .map_err(|e| e.to_string())?;
    let leaders = leaders(&md, topic)?;
    Ok((client, leaders))
}

/// What `kfdb produce` reads and how.
pub(crate) struct ProduceOptions {
    pub partition: Option<i32>,
    pub key_separator: Option<String>,
    pub headers: Vec<(String, String)>,
    pub acks: i16,
}

/// `kfdb produce TOPIC`: every line of standard input as one record.
pub(crate) async fn produce(
    conn: &ConnArgs,
    topic: &str,
    opts: ProduceOptions,
) -> Result<(), String> {
    use std::io::BufRead;
    let (mut client, leaders) = open_topic(conn, topic).await?;
    let n = leaders.len() as i32;
    if let Some(p) = opts.partition
        && !leaders.contains_key(&p)
    {
        return Err(format!("{topic} has no partition {p}"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let headers: IndexMap<StrBytes, Option<Bytes>> = opts
        .headers
        .iter()
        .map(|(k, v)| (s(k), Some(Bytes::from(v.clone()))))
        .collect();
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut pending_bytes = 0usize;
    let mut next_unkeyed = 0i32;
    let mut results: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut total = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let (key, value) = match &opts.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let partition = match (opts.partition, &key) {
            (Some(p), _) => p,
            // Kafka's default partitioner: murmur2 of the key.
            (None, Some(k)) => kfdb_log::default_partition(k, n),
            (None, None) => {
                next_unkeyed = (next_unkeyed + 1) % n.max(1);
                next_unkeyed
            }
        };
        pending_bytes += value.len() + key.as_ref().map_or(0, Bytes::len) + 16;
        pending.entry(partition).or_default().push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now,
            key,
            value: Some(Bytes::from(value)),
            headers: headers.clone(),
        });
        total += 1;
        if pending_bytes >= BATCH_BYTES {
            send(
                &mut client,
                topic,
                &leaders,
                std::mem::take(&mut pending),
                opts.acks,
                &mut results,
            )
            .await?;
            pending_bytes = 0;
        }
    }
    send(
        &mut client,
        topic,
        &leaders,
        pending,
        opts.acks,
        &mut results,
    )
    .await?;
    match conn.format {
        Format::Json => super::print_json(&serde_json::json!({
            "topic": topic,
            "records": total,
            "partitions": results.iter().map(|(p, (first, last))| serde_json::json!({
                "partition": p, "first_offset": first, "last_offset": last,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            for (p, (first, last)) in &results {
                eprintln!("{topic}-{p}: offsets {first}..{last}");
            }
            eprintln!("{total} records produced to {topic}");
        }
    }
    Ok(())
}

/// Send one batch per partition, one request per leader; record each partition's offsets.
async fn send(
    client: &mut Client,
    topic: &str,
    leaders: &BTreeMap<i32, i32>,
    batches: BTreeMap<i32, Vec<Record>>,
    acks: i16,
    results: &mut BTreeMap<i32, (i64, i64)>,
) -> Result<(), String> {
    let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes, usize)>> = BTreeMap::new();
    for (p, mut records) in batches {
        // One batch per partition, as Kafka requires: kafka-protocol's encoder starts a new
        // batch wherever offset - sequence changes, so the (unused, no producer id) sequences
        // follow the offsets from the batch's base sequence -1.
        for (i, r) in records.iter_mut().enumerate() {
            r.offset = i as i64;
            r.sequence = i as i32 - 1;
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| format!("encoding records: {e}"))?;
        by_leader
            .entry(leaders[&p])
            .or_default()
            .push((p, buf.freeze(), records.len()));
    }
    for (leader, parts) in by_leader {
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(
                        parts
                            .iter()
                            .map(|(p, b, _)| {
                                PartitionProduceData::default()
                                    .with_index(*p)
                                    .with_records(Some(b.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let answer = client
            .call_node(leader, &request, 12)
            .await
            .map_err(|e| e.to_string())?;
        for t in answer.responses {
            for p in t.partition_responses {
                Error::check(
                    p.error_code,
                    p.error_message.as_deref(),
                    &format!("producing to {topic}-{}", p.index),
                )
                .map_err(|e| e.to_string())?;
                let count = parts
                    .iter()
                    .find(|(q, ..)| *q == p.index)
                    .map_or(0, |(.., c)| *c) as i64;
                let e = results.entry(p.index).or_insert((p.base_offset, 0));
                e.1 = p.base_offset + count - 1;
            }
        }
    }
    Ok(())
}

/// Where `kfdb consume` starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    Beginning,
    End,
    Offset(i64),
    Timestamp(i64),
}

/// What `kfdb consume` reads and how it prints.
pub(crate) struct ConsumeOptions {
    pub partitions: Vec<i32>,
    pub group: Option<String>,
    pub start: Start,
    pub max: Option<u64>,
    /// Where each partition stops (exclusive): an offset, or the first record at a time.
    pub end: Option<Start>,
    pub idle_timeout: Option<Duration>,
    pub print_key: bool,
    pub key_separator: String,
    pub read_committed: bool,
}

/// `kfdb consume TOPIC`.
pub(crate) async fn consume(
    conn: &ConnArgs,
    topic: &str,
    opts: ConsumeOptions,
) -> Result<(), String> {
    let (mut client, leaders) = open_topic(conn, topic).await?;
    let partitions: Vec<i32> = if opts.partitions.is_empty() {
        leaders.keys().copied().collect()
    } else {
        for p in &opts.partitions {
            if !leaders.contains_key(p) {
                return Err(format!("{topic} has no partition {p}"));
            }
        }
        opts.partitions.clone()
    };
    let mut positions = start_positions(
        &mut client,
        topic,
        &partitions,
        opts.group.as_deref(),
        opts.start,
    )
    .await?;
    let bounds: Option<BTreeMap<i32, i64>> = match opts.end {
        None => None,
        Some(Start::Offset(o)) => Some(partitions.iter().map(|p| (*p, o)).collect()),
        Some(end) => Some(start_positions(&mut client, topic, &partitions, None, end).await?),
    };
    let bar = opts
        .max
        .filter(|_| conn.format == Format::Table)
        .map(|n| progress(n, "consuming"));
    let mut got = 0u64;
    let mut last_record = Instant::now();
    'outer: loop {
        if opts.max.is_some_and(|m| got >= m) {
            break;
        }
        if opts
            .idle_timeout
            .is_some_and(|t| last_record.elapsed() >= t)
        {
            break;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &partitions {
            if bounds.as_ref().is_some_and(|b| positions[p] >= b[p]) {
                continue;
            }
            by_leader.entry(leaders[p]).or_default().push(*p);
        }
        if by_leader.is_empty() {
            // Every partition reached its end offset.
            break;
        }
        for (leader, ps) in by_leader {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(16 * 1024 * 1024)
                .with_isolation_level(i8::from(opts.read_committed))
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(s(topic)))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_fetch_offset(positions[p])
                                        .with_last_fetched_epoch(-1)
                                        .with_log_start_offset(-1)
                                        .with_partition_max_bytes(1024 * 1024)
                                })
                                .collect(),
                        ),
                ]);
            let answer = client
                .call_node(leader, &request, 12)
                .await
                .map_err(|e| e.to_string())?;
            Error::check(answer.error_code, None, "Fetch").map_err(|e| e.to_string())?;
            for t in answer.responses {
                for pd in t.partitions {
                    let p = pd.partition_index;
                    Error::check(pd.error_code, None, &format!("fetching {topic}-{p}"))
                        .map_err(|e| e.to_string())?;
                    let Some(records) = pd.records else { continue };
                    let aborted: Vec<(i64, i64)> = pd
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect();
                    let mut filter = AbortFilter::new(aborted);
                    for batch in complete_batches(records) {
                        let mut b = batch;
                        let set = RecordBatchDecoder::decode(&mut b)
                            .map_err(|e| format!("decoding records of {topic}-{p}: {e}"))?;
                        for r in set.records {
                            let pos = positions.get_mut(&p).expect("a consumed partition");
                            if r.offset < *pos {
                                continue;
                            }
                            if let Some(bound) = bounds.as_ref().map(|b| b[&p])
                                && r.offset >= bound
                            {
                                *pos = (*pos).max(bound);
                                break;
                            }
                            *pos = r.offset + 1;
                            if r.control {
                                filter.control(&r);
                                continue;
                            }
                            if opts.read_committed && filter.aborted(&r) {
                                continue;
                            }
                            print_record(conn.format, topic, p, &r, &opts);
                            got += 1;
                            last_record = Instant::now();
                            if let Some(b) = &bar {
                                b.inc(1);
                            }
                            if opts.max.is_some_and(|m| got >= m) {
                                break 'outer;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(group) = &opts.group {
        commit(&mut client, group, topic, &positions).await?;
    }
    Ok(())
}

/// Batches that arrived whole (a Fetch may end in a cut one).
fn complete_batches(mut records: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while records.remaining() >= 12 {
        let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let total = 12 + len.max(0) as usize;
        if len <= 0 || total > records.remaining() {
            break;
        }
        out.push(records.split_to(total));
    }
    out
}

/// Which transactional records were aborted: a producer's records from an aborted
/// transaction's first offset until its ABORT marker.
struct AbortFilter {
    pending: Vec<(i64, i64)>,
    active: HashSet<i64>,
}

impl AbortFilter {
    fn new(mut aborted: Vec<(i64, i64)>) -> Self {
        aborted.sort_by_key(|a| std::cmp::Reverse(a.1));
        Self {
            pending: aborted,
            active: HashSet::new(),
        }
    }

    fn aborted(&mut self, r: &Record) -> bool {
        while let Some(&(pid, first)) = self.pending.last() {
            if first > r.offset {
                break;
            }
            self.active.insert(pid);
            self.pending.pop();
        }
        r.transactional && self.active.contains(&r.producer_id)
    }

    fn control(&mut self, r: &Record) {
        // A control record's key: version (i16), type (i16; 0 = ABORT, 1 = COMMIT).
        let abort = r
            .key
            .as_ref()
            .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 0);
        if abort {
            self.aborted(r);
            self.active.remove(&r.producer_id);
        }
    }
}

fn text(b: &Option<Bytes>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn print_record(format: Format, topic: &str, partition: i32, r: &Record, opts: &ConsumeOptions) {
    match format {
        Format::Table => {
            if opts.print_key {
                println!("{}{}{}", text(&r.key), opts.key_separator, text(&r.value));
            } else {
                println!("{}", text(&r.value));
            }
        }
        Format::Json => {
            // Valid UTF-8 as a string; anything else as base64 (`*_base64`).
            let field = |name: &str, b: &Option<Bytes>| -> (String, serde_json::Value) {
                match b {
                    None => (name.to_string(), serde_json::Value::Null),
                    Some(b) => match std::str::from_utf8(b) {
                        Ok(s) => (name.to_string(), serde_json::Value::String(s.to_string())),
                        Err(_) => (
                            format!("{name}_base64"),
                            serde_json::Value::String(
                                base64::engine::general_purpose::STANDARD.encode(b),
                            ),
                        ),
                    },
                }
            };
            let mut obj = serde_json::Map::new();
            obj.insert("topic".into(), topic.into());
            obj.insert("partition".into(), partition.into());
            obj.insert("offset".into(), r.offset.into());
            obj.insert("timestamp".into(), r.timestamp.into());
            let (k, v) = field("key", &r.key);
            obj.insert(k, v);
            let (k, v) = field("value", &r.value);
            obj.insert(k, v);
            obj.insert(
                "headers".into(),
                serde_json::Value::Object(
                    r.headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), text(v).into()))
                        .collect(),
                ),
            );
            println!("{}", serde_json::Value::Object(obj));
        }
    }
}

/// Where each partition starts: `group`'s committed offset if it has one, else `start` (a
/// timestamp with no record at or after it: the partition's end).
async fn start_positions(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    group: Option<&str>,
    start: Start,
) -> Result<BTreeMap<i32, i64>, String> {
    let mut out: BTreeMap<i32, i64> = match group {
        Some(group) => client
            .committed_offsets(group, Some((topic, partitions)))
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|((_, p), o)| (p, o))
            .collect(),
        None => BTreeMap::new(),
    };
    let missing: BTreeSet<(String, i32)> = partitions
        .iter()
        .filter(|p| !out.contains_key(p))
        .map(|p| (topic.to_string(), *p))
        .collect();
    let timestamp = match start {
        Start::Beginning => -2,
        Start::End => -1,
        Start::Timestamp(t) => t,
        Start::Offset(o) => {
            out.extend(missing.iter().map(|(_, p)| (*p, o)));
            return Ok(out);
        }
    };
    if missing.is_empty() {
        return Ok(out);
    }
    let found = client
        .offsets_at(&missing, timestamp)
        .await
        .map_err(|e| e.to_string())?;
    let past_the_end: BTreeSet<(String, i32)> = found
        .iter()
        .filter(|(_, o)| **o < 0)
        .map(|(tp, _)| tp.clone())
        .collect();
    out.extend(
        found
            .into_iter()
            .filter(|(_, o)| *o >= 0)
            .map(|((_, p), o)| (p, o)),
    );
    if !past_the_end.is_empty() {
        let ends = client
            .offsets_at(&past_the_end, -1)
            .await
            .map_err(|e| e.to_string())?;
        out.extend(ends.into_iter().map(|((_, p), o)| (p, o)));
    }
    Ok(out)
}

/// Commit the positions for `group` (outside any group membership, as Kafka's tools do).
async fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> Result<(), String> {
    let offsets = positions
        .iter()
        .map(|(p, o)| ((topic.to_string(), *p), *o))
        .collect();
    for ((t, p), code) in client
        .commit_offsets(group, &offsets)
        .await
        .map_err(|e| e.to_string())?
    {
        Error::check(code, None, &format!("committing {t}-{p} for {group}"))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
