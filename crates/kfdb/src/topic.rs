//! `kfdb topic`: its arguments, and the store-direct form (with `--data-dir` or `--store fdb`):
//! list (paginated), create, describe and delete topics straight in the store, through kfdb-log —
//! the same code the brokers use, for recovery and bootstrap. Without those flags the same
//! commands go to a running cluster over the Kafka protocol (`admin/topics.rs`).

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
    #[command(flatten)]
    pub(crate) conn: crate::admin::ConnArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// List topic names in order (paginated: --prefix, --after, --limit).
    List {
        /// Only names that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Start after this name (the last name of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many names (the store-direct form: 1000 when not given).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Create topics (`-` reads names from standard input, one per line).
    Create {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Partitions (-1: the cluster's num.partitions).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor (-1: the cluster's default; kfdb's store replicates).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// A config override, NAME=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        configs: Vec<(String, String)>,
        /// A topic that exists already is not an error.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Show a topic's id, partitions (leader, log start, high watermark) and config overrides.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Set or delete a topic's config overrides.
    AlterConfig {
        /// Topic name.
        name: String,
        /// NAME=VALUE to set (repeatable).
        #[arg(long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// NAME to reset to the default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Delete topics and their data (`-` reads names from standard input).
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Rename a topic, atomically and in O(1) (its data is keyed by its id): store-direct only
    /// (no Kafka API renames), so with --store fdb (brokers may run: they see the new name
    /// within a second) or --data-dir (while no kfdb serve has it open). Records, committed
    /// offsets and the topic id stay; ACLs name topics and do not follow.
    Rename {
        /// The topic's name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Grow a topic to this many partitions.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new partition count.
        #[arg(long)]
        total: i32,
    },
}

/// `kfdb topic ...` over the Kafka protocol, with a running cluster.
pub(crate) async fn run_protocol(args: TopicArgs) -> Result<(), String> {
    use crate::admin::topics;
    let conn = &args.conn;
    match args.command {
        TopicCommand::List {
            prefix,
            after,
            limit,
        } => topics::list(conn, prefix.as_deref(), after.as_deref(), limit).await,
        TopicCommand::Create {
            names,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            topics::create(
                conn,
                names,
                partitions,
                replication_factor,
                &configs,
                if_not_exists,
            )
            .await
        }
        TopicCommand::Describe { name } => topics::describe(conn, &name).await,
        TopicCommand::AlterConfig { name, set, delete } => {
            topics::alter_config(conn, &name, &set, &delete).await
        }
        TopicCommand::Delete { names } => topics::delete(conn, names).await,
        TopicCommand::AddPartitions { name, total } => {
            topics::add_partitions(conn, &name, total).await
        }
        TopicCommand::Rename { .. } => Err("no Kafka API renames a topic: kfdb topic rename \
             works on the store, with --store fdb (brokers may run) or --data-dir (the embedded \
             store, while no kfdb serve has it open)"
            .into()),
    }
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
        TopicCommand::List {
            prefix,
            after,
            limit,
        } => {
            let limit = limit.unwrap_or(1000);
            let prefix = prefix.unwrap_or_default();
            let after = match after {
                Some(a) if a >= prefix => Some(a),
                _ if prefix.is_empty() => None,
                _ => {
                    // Names > prefix, and the prefix itself if it is a topic.
                    if log
                        .topics()
                        .get(&prefix)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some()
                    {
                        println!("{prefix}");
                    }
                    Some(prefix.clone())
                }
            };
            let page = log
                .topics()
                .list(after.as_deref(), limit.max(1))
                .await
                .map_err(|e| e.to_string())?;
            for t in page.iter().filter(|t| t.name.starts_with(&prefix)) {
                println!("{}", t.name);
            }
            if page.len() == limit.max(1)
                && let Some(last) = page.last()
            {
                eprintln!("(more: --after {})", last.name);
            }
        }
        TopicCommand::Create {
            names,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            for name in crate::admin::topics::names_or_stdin(names)? {
                let spec = NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs: configs.clone(),
                };
                let created = log.topics().create(vec![spec], false).await.pop();
                match created {
                    Some(Ok(meta)) => print!("{}", describe(&meta)),
                    Some(Err(kfdb_log::LogError::TopicExists)) if if_not_exists => {
                        println!("{name}: exists");
                    }
                    Some(Err(e)) => return Err(format!("{name}: {e}")),
                    None => return Err(format!("{name}: not created")),
                }
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
        TopicCommand::Delete { names } => {
            for name in crate::admin::topics::names_or_stdin(names)? {
                log.delete_topic(TopicId::Name(&name))
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                println!("deleted {name}");
            }
        }
        TopicCommand::Rename { from, to } => {
            let meta = log
                .topics()
                .rename(&from, &to)
                .await
                .map_err(|e| format!("{from} -> {to}: {e}"))?;
            println!("renamed {from} to {} (topic id {})", meta.name, meta.uuid);
        }
        TopicCommand::AlterConfig { .. } | TopicCommand::AddPartitions { .. } => {
            return Err(
                "alter-config and add-partitions work over the Kafka protocol only: run them \
                 without --data-dir/--store, against a running kfdb (--bootstrap-server)"
                    .into(),
            );
        }
    }
    Ok(())
}
