//! `kfdb topic`: list (paginated), create, describe and delete topics straight in the store,
//! through kfdb-log — the same code the brokers use, without a Kafka client.

use crate::StoreArgs;
use clap::{Args, Subcommand};
use kfdb_kv::Database;
use kfdb_log::config::EffectiveConfig;
use kfdb_log::{Log, LogConfig, NewTopic, TopicId, TopicMeta};

/// `kfdb topic ...`
#[derive(Args)]
pub(crate) struct TopicArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// List topic names in order, one page at a time.
    List {
        /// Start after this name (the last name of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Names per page.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partitions (-1: num.partitions).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// A config override, NAME=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        configs: Vec<(String, String)>,
    },
    /// Show a topic's id, partitions, offsets and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s}: expected NAME=VALUE"))
}

fn describe(meta: &TopicMeta) -> String {
    let mut out = format!(
        "topic {}\n  id: {}\n  partitions: {}\n  replication factor: {}\n",
        meta.name, meta.uuid, meta.partitions, meta.replication_factor
    );
    let eff = EffectiveConfig::new(&meta.configs);
    for (k, _) in &meta.configs {
        if let Some((v, _)) = eff.get(k) {
            out.push_str(&format!("  {k}={v}\n"));
        }
    }
    out
}

pub(crate) async fn run(db: Database, args: TopicArgs) -> Result<(), String> {
    let log = Log::open(db, LogConfig::default())
        .await
        .map_err(|e| format!("opening the data model: {e}"))?;
    match args.command {
        TopicCommand::List { after, limit } => {
            let page = log
                .topics()
                .list(after.as_deref(), limit.max(1))
                .await
                .map_err(|e| e.to_string())?;
            for t in &page {
                println!("{}", t.name);
            }
            if page.len() == limit.max(1)
                && let Some(last) = page.last()
            {
                eprintln!("(more: --after {})", last.name);
            }
        }
        TopicCommand::Create {
            name,
            partitions,
            configs,
        } => {
            let spec = NewTopic {
                name: name.clone(),
                partitions,
                replication_factor: -1,
                configs,
            };
            let created = log.topics().create(vec![spec], false).await.pop();
            match created {
                Some(Ok(meta)) => print!("{}", describe(&meta)),
                Some(Err(e)) => return Err(format!("{name}: {e}")),
                None => return Err(format!("{name}: not created")),
            }
        }
        TopicCommand::Describe { name } => {
            let meta = log
                .topics()
                .get(&name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{name}: no such topic"))?;
            print!("{}", describe(&meta));
            for p in 0..meta.partitions {
                let s = log
                    .reader()
                    .partition_state(kfdb_log::PartitionId::new(meta.id, p))
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "  partition {p}: log start {}, high watermark {}, {} bytes",
                    s.log_start, s.next_offset, s.bytes
                );
            }
        }
        TopicCommand::Delete { name } => {
            log.delete_topic(TopicId::Name(&name))
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            println!("deleted {name}");
        }
    }
    Ok(())
}
