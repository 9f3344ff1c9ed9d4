//! Helper process for the compaction crash test (tests/compaction_crash.rs): on the embedded
//! store in a directory, appends keyed records (some tombstones) to a compacted topic and
//! compacts it, over and over, forever. It prints `A <key> <offset> <value|->` for each record
//! only after its append returned (acknowledged). The test SIGKILLs it at random moments — inside
//! compactions, appends and commits — and checks that no acknowledged latest record was lost, no
//! offset appears twice and the key index agrees with the log.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::batch::{self, NewRecord};
use kfdb_log::{Log, LogConfig, NewTopic};
use std::io::Write;

const TOPIC: &str = "crash-compacted";
const KEYS: u64 = 40;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: kfdb-log-compaction-child DIR")?;
    let db = Database::open_embedded(&dir, EmbeddedOptions::default())?;
    let log = Log::open(db, LogConfig::default()).await?;
    let topic = match log.topics().get(TOPIC).await? {
        Some(t) => t,
        None => log
            .topics()
            .create(
                vec![NewTopic {
                    name: TOPIC.into(),
                    partitions: 1,
                    replication_factor: -1,
                    configs: vec![
                        ("cleanup.policy".into(), "compact".into()),
                        ("min.cleanable.dirty.ratio".into(), "0.01".into()),
                        ("delete.retention.ms".into(), "0".into()),
                    ],
                }],
                false,
            )
            .await
            .pop()
            .ok_or("no topic")??,
    };
    let mut out = std::io::stdout().lock();
    let mut n: u64 = rand::random::<u64>() % 1_000_000;
    loop {
        let size = 1 + (n % 7) as usize;
        let records: Vec<(String, Option<String>)> = (0..size)
            .map(|i| {
                let k = format!("key-{}", (n * 7 + i as u64 * 13) % KEYS);
                let v = (!(n + i as u64).is_multiple_of(11)).then(|| format!("v{n}-{i}"));
                (k, v)
            })
            .collect();
        let compression =
            [Compression::None, Compression::Zstd, Compression::Lz4][(n % 3) as usize];
        let new: Vec<NewRecord> = records
            .iter()
            .map(|(k, v)| NewRecord {
                key: Some(Bytes::from(k.clone())),
                value: v.clone().map(Bytes::from),
                headers: Vec::new(),
                timestamp: kfdb_log::now_ms(),
            })
            .collect();
        let batches = batch::new_batch(&new, compression)?;
        let appended = log.writers().append(&topic, 0, batches).await?;
        for (i, (k, v)) in records.iter().enumerate() {
            writeln!(
                out,
                "A {k} {} {}",
                appended.base_offset + i as i64,
                v.as_deref().unwrap_or("-")
            )?;
        }
        out.flush()?;
        if n.is_multiple_of(3) {
            log.compactor().compact(&topic, 0).await?;
        }
        n += 1;
    }
}
