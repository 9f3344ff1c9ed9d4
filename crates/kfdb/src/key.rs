//! `kfdb key get TOPIC KEY`: the latest record of a key of a topic that keeps a key index
//! (compacted, or `kfdb.key.index=true`), read straight from the store through kfdb-log — what
//! `GET /v1/topics/{topic}/keys/{key}` answers over HTTP.

use crate::StoreArgs;
use clap::{Args, Subcommand, ValueEnum};
use kfdb_kv::Database;
use kfdb_log::{Log, LogConfig, default_partition};
use std::io::Write;

/// `kfdb key ...`
#[derive(Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// The value's bytes as they are, then a newline.
    Value,
    /// partition, offset, timestamp and value on one line each.
    Text,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the latest value of a key (exit status 1 when it has none or it was deleted).
    Get {
        /// Topic name.
        topic: String,
        /// The key (UTF-8).
        key: String,
        /// The partition (default: the one Kafka's default partitioner picks for the key).
        #[arg(long)]
        partition: Option<i32>,
        /// What to print.
        #[arg(long, value_enum, default_value = "value")]
        format: Format,
    },
}

pub(crate) async fn run(db: Database, args: KeyArgs) -> Result<(), String> {
    let log = Log::open(db, LogConfig::default())
        .await
        .map_err(|e| format!("opening the data model: {e}"))?;
    let KeyCommand::Get {
        topic,
        key,
        partition,
        format,
    } = args.command;
    let meta = log
        .topics()
        .get(&topic)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{topic}: no such topic"))?;
    let partition = partition.unwrap_or_else(|| default_partition(key.as_bytes(), meta.partitions));
    let found = log
        .reader()
        .latest_by_key(&meta, partition, key.as_bytes())
        .await
        .map_err(|e| format!("{topic}: {e}"))?;
    let record = match found {
        None => return Err(format!("{key}: no record in {topic} partition {partition}")),
        Some(r) if r.value.is_none() => {
            return Err(format!(
                "{key}: deleted (a tombstone at offset {} of {topic} partition {partition})",
                r.offset
            ));
        }
        Some(r) => r,
    };
    let value = record.value.unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Value => out.write_all(&value).and_then(|()| out.write_all(b"\n")),
        Format::Text => writeln!(
            out,
            "partition {}\noffset {}\ntimestamp {}\nvalue {}",
            record.partition,
            record.offset,
            record.timestamp,
            String::from_utf8_lossy(&value)
        ),
    };
    written.map_err(|e| format!("writing the value: {e}"))
}
