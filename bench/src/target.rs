//! The brokers a side-by-side scenario runs against (`--targets`): kfdb (embedded, or on
//! FoundationDB when `KFDB_BENCH_FDB_CLUSTER_FILE` is set), Apache Kafka with its defaults, and
//! Apache Kafka flushing every message to disk before it acknowledges, as kfdb does.

use crate::broker::Broker;
use crate::fdb;
use crate::kafka::{Durability, Kafka};
use crate::kfdb::Kfdb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Kfdb,
    Kafka,
    KafkaFlush,
}

pub const ALL: [Target; 3] = [Target::Kfdb, Target::Kafka, Target::KafkaFlush];

impl Target {
    /// The name in `--targets` and the prefix of its fields in `bench` lines.
    pub fn key(self) -> &'static str {
        match self {
            Target::Kfdb => "kfdb",
            Target::Kafka => "kafka",
            Target::KafkaFlush => "kafka_flush",
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        ALL.into_iter()
            .find(|t| t.key() == name || t.key().replace('_', "-") == name)
    }

    /// What it is, for the printout.
    pub fn describe(self) -> &'static str {
        match self {
            Target::Kfdb if fdb::cluster_file().is_some() => "kfdb on FoundationDB",
            Target::Kfdb => "kfdb (embedded store, fsync before the ack)",
            Target::Kafka => "Apache Kafka 4.4, defaults (no fsync before the ack)",
            Target::KafkaFlush => {
                "Apache Kafka 4.4, log.flush.interval.messages=1 (fsync before the ack)"
            }
        }
    }

    /// Start it fresh (new data directory, or an emptied FoundationDB database).
    pub fn start(self) -> Box<dyn Broker> {
        match self {
            Target::Kfdb => Box::new(Kfdb::start()),
            Target::Kafka => Box::new(Kafka::start(Durability::Defaults)),
            Target::KafkaFlush => Box::new(Kafka::start(Durability::FlushEveryMessage)),
        }
    }
}
