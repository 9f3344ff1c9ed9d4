//! Helpers shared by kfdb-log's integration tests: record batches as clients build them, a Log
//! over a fresh embedded store, topics, decoding fetches.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig, NewTopic, TopicMeta, batch};
use std::sync::Arc;

pub fn records(values: &[&[u8]], timestamps: &[i64], compression: Compression) -> Bytes {
    producer_records(values, timestamps, compression, (-1, -1, -1))
}

/// Records from an idempotent producer `(producer id, epoch, base sequence)`.
pub fn producer_records(
    values: &[&[u8]],
    timestamps: &[i64],
    compression: Compression,
    producer: (i64, i16, i32),
) -> Bytes {
    encode_records(values, timestamps, compression, producer, false)
}

/// Records of a transactional producer `(producer id, epoch, base sequence)`.
pub fn txn(values: &[&[u8]], pid: i64, epoch: i16, seq: i32) -> Vec<batch::Batch> {
    let ts: Vec<i64> = (0..values.len() as i64).collect();
    batch::parse_batches(&encode_records(
        values,
        &ts,
        Compression::None,
        (pid, epoch, seq),
        true,
    ))
    .unwrap()
}

fn encode_records(
    values: &[&[u8]],
    timestamps: &[i64],
    compression: Compression,
    (pid, epoch, seq): (i64, i16, i32),
    transactional: bool,
) -> Bytes {
    let recs: Vec<Record> = values
        .iter()
        .zip(timestamps)
        .enumerate()
        .map(|(i, (v, ts))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { -1 } else { seq + i as i32 },
            timestamp: *ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn batch_of(values: &[&[u8]], ts: i64) -> Vec<batch::Batch> {
    let tss: Vec<i64> = (0..values.len() as i64).map(|i| ts + i).collect();
    batch::parse_batches(&records(values, &tss, Compression::None)).unwrap()
}

pub async fn open(dir: &std::path::Path) -> Arc<Log> {
    open_with(dir, LogConfig::default()).await
}

/// Open the store in `dir` again after dropping the `Log` that had it: the partition writers'
/// tasks hold the store until they notice they are idle, so the first tries may find it locked.
pub async fn reopen(dir: &std::path::Path) -> Arc<Log> {
    for _ in 0..100 {
        if let Ok(db) = Database::open_embedded(dir, EmbeddedOptions::default()) {
            return Log::open(db, LogConfig::default()).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    open(dir).await
}

pub async fn open_with(dir: &std::path::Path, config: LogConfig) -> Arc<Log> {
    open_with_store(dir, config).await.0
}

/// A Log and the store under it (for tests that inject faults into the store).
pub async fn open_with_store(dir: &std::path::Path, config: LogConfig) -> (Arc<Log>, Database) {
    let db = Database::open_embedded(dir, EmbeddedOptions::default()).unwrap();
    (Log::open(db.clone(), config).await.unwrap(), db)
}

pub async fn topic(
    log: &Log,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Arc<TopicMeta> {
    let spec = NewTopic {
        name: name.into(),
        partitions,
        replication_factor: -1,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    log.topics()
        .create(vec![spec], false)
        .await
        .pop()
        .unwrap()
        .unwrap()
}

/// The bytes with each batch's broker-owned fields (base offset, leader epoch) zeroed.
pub fn mask(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at + 12 <= out.len() {
        let len = i32::from_be_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        out[at..at + 8].fill(0);
        out[at + 12..at + 16].fill(0);
        at += 12 + len;
    }
    out
}

/// Decode every record of a fetch: (offset, value).
pub fn decode(mut bytes: Bytes) -> Vec<(i64, Vec<u8>)> {
    RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
        .collect()
}

pub async fn fetch_all(log: &Log, t: &TopicMeta, p: i32, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let f = log.reader().fetch(t, p, offset, 64 * 1024).await.unwrap();
        if f.records.is_empty() {
            return out;
        }
        let recs = decode(f.records.to_bytes());
        offset = recs.last().unwrap().0 + 1;
        out.extend(recs.into_iter().filter(|(o, _)| *o >= from));
    }
}

pub fn idem(values: &[&[u8]], pid: i64, epoch: i16, seq: i32) -> Vec<batch::Batch> {
    let ts: Vec<i64> = (0..values.len() as i64).collect();
    batch::parse_batches(&producer_records(
        values,
        &ts,
        Compression::None,
        (pid, epoch, seq),
    ))
    .unwrap()
}

/// A batch of `(key, value)` records (`None` value: a tombstone; `None` key: keyless), from
/// producer `(pid, epoch, base sequence)` (-1s: a plain producer).
/// A record as the helpers below take it: `(key, value)`, either absent.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

pub fn keyed(
    records: &[KeyValue<'_>],
    compression: Compression,
    (pid, epoch, seq): (i64, i16, i32),
    transactional: bool,
) -> Vec<batch::Batch> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if seq < 0 { i as i32 } else { seq + i as i32 },
            timestamp: 1_000 + i as i64,
            key: k.map(Bytes::copy_from_slice),
            value: v.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    batch::parse_batches(&buf.freeze()).unwrap()
}

pub fn plain(records: &[KeyValue<'_>]) -> Vec<batch::Batch> {
    keyed(records, Compression::None, (-1, -1, -1), false)
}
