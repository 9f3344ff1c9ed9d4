//! Stored values of the data model and their encodings. Every value is a FoundationDB tuple whose
//! first element is a format version, so formats can evolve without a migration.

use crate::error::{LogError, LogResult};
use kfdb_kv::tuple::{Uuid, pack, unpack};

const V1: i64 = 1;

fn corrupt(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("{what}: {e}"))
}

/// A topic's identity and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// Short integer id used in data keys.
    pub id: i64,
    /// The Kafka topic name.
    pub name: String,
    /// The Kafka topic id (UUID).
    pub uuid: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// The replication factor the client asked for (storage replication is the store's).
    pub replication_factor: i16,
    /// Config overrides set on the topic (names as Kafka's); absent names take their defaults.
    pub configs: Vec<(String, String)>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

type TopicTuple = (i64, String, Vec<u8>, i64, i64, Vec<(String, String)>, i64);

impl TopicMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: TopicTuple = (
            V1,
            self.name.clone(),
            self.uuid.as_bytes().to_vec(),
            i64::from(self.partitions),
            i64::from(self.replication_factor),
            self.configs.clone(),
            self.created_ms,
        );
        pack(&t)
    }

    pub(crate) fn decode(id: i64, bytes: &[u8]) -> LogResult<Self> {
        let (v, name, uuid, partitions, rf, configs, created_ms): TopicTuple =
            unpack(bytes).map_err(|e| corrupt("topic meta", e))?;
        if v != V1 {
            return Err(corrupt("topic meta", format!("format version {v}")));
        }
        let uuid = Uuid::from_slice(&uuid).map_err(|e| corrupt("topic uuid", e))?;
        Ok(Self {
            id,
            name,
            uuid,
            partitions: partitions as i32,
            replication_factor: rf as i16,
            configs,
            created_ms,
        })
    }

    /// The override for `name`, if the topic has one.
    pub fn config(&self, name: &str) -> Option<&str> {
        self.configs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The offsets and counters of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// First offset still stored (Kafka's log start offset).
    pub log_start: i64,
    /// Offset the next record gets; also the high watermark (every stored record is committed).
    pub next_offset: i64,
    /// Largest record timestamp seen, -1 if none.
    pub max_timestamp: i64,
    /// Offset of the record batch holding `max_timestamp` (its last offset), -1 if none.
    pub max_timestamp_offset: i64,
    /// Bytes of record batches stored.
    pub bytes: i64,
    /// First offset of the oldest transaction still open in this partition, -1 when none: the last
    /// stable offset (see [`PartitionState::last_stable`]).
    pub first_open: i64,
}

impl Default for PartitionState {
    fn default() -> Self {
        Self {
            log_start: 0,
            next_offset: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            bytes: 0,
            first_open: -1,
        }
    }
}

type StateTupleV1 = (i64, i64, i64, i64, i64, i64);
type StateTuple = (i64, i64, i64, i64, i64, i64, i64);
const V2: i64 = 2;

impl PartitionState {
    /// Kafka's last stable offset: below it every transaction is decided (committed or aborted);
    /// the high watermark when no transaction is open.
    pub fn last_stable(&self) -> i64 {
        if self.first_open >= 0 {
            self.first_open
        } else {
            self.next_offset
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let t: StateTuple = (
            V2,
            self.log_start,
            self.next_offset,
            self.max_timestamp,
            self.max_timestamp_offset,
            self.bytes,
            self.first_open,
        );
        pack(&t)
    }

    /// Decodes format 2 and format 1 (written before transactions; no open transaction).
    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, log_start, next_offset, max_timestamp, max_timestamp_offset, bytes, first_open) =
            match unpack::<StateTuple>(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let (v, a, b, c, d, e1): StateTupleV1 =
                        unpack(bytes).map_err(|_| corrupt("partition state", e))?;
                    if v != V1 {
                        return Err(corrupt("partition state", format!("format version {v}")));
                    }
                    (V2, a, b, c, d, e1, -1)
                }
            };
        if v != V2 {
            return Err(corrupt("partition state", format!("format version {v}")));
        }
        Ok(Self {
            log_start,
            next_offset,
            max_timestamp,
            max_timestamp_offset,
            bytes,
            first_open,
        })
    }
}

/// Who appends to a partition: the broker node and its ownership epoch (Kafka's leader epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Node id of the owning broker.
    pub node: i32,
    /// Increases on every change of owner.
    pub epoch: i32,
}

impl Owner {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, i64::from(self.node), i64::from(self.epoch)))
    }

    pub(crate) fn decode(bytes: &[u8]) -> LogResult<Self> {
        let (v, node, epoch): (i64, i64, i64) =
            unpack(bytes).map_err(|e| corrupt("partition owner", e))?;
        if v != V1 {
            return Err(corrupt("partition owner", format!("format version {v}")));
        }
        Ok(Self {
            node: node as i32,
            epoch: epoch as i32,
        })
    }
}

/// What retention and offset lookups need to know about a stored batch, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Size of the batch in bytes.
    pub size: i64,
}

impl BatchInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        pack(&(V1, self.base_offset, self.max_timestamp, self.size))
    }

    pub(crate) fn decode(last_offset: i64, bytes: &[u8]) -> LogResult<Self> {
        let (v, base_offset, max_timestamp, size): (i64, i64, i64, i64) =
            unpack(bytes).map_err(|e| corrupt("batch index", e))?;
        if v != V1 {
            return Err(corrupt("batch index", format!("format version {v}")));
        }
        Ok(Self {
            base_offset,
            last_offset,
            max_timestamp,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let t = TopicMeta {
            id: 42,
            name: "orders".into(),
            uuid: Uuid::from_u128(0x1234),
            partitions: 3,
            replication_factor: 1,
            configs: vec![("retention.ms".into(), "1000".into())],
            created_ms: 5,
        };
        assert_eq!(TopicMeta::decode(42, &t.encode()).unwrap(), t);
        assert_eq!(t.config("retention.ms"), Some("1000"));
        let s = PartitionState {
            log_start: 3,
            next_offset: 10,
            max_timestamp: 77,
            max_timestamp_offset: 9,
            bytes: 1000,
            first_open: 4,
        };
        assert_eq!(PartitionState::decode(&s.encode()).unwrap(), s);
        assert_eq!(s.last_stable(), 4);
        let v1 = pack(&(V1, 3i64, 10i64, 77i64, 9i64, 1000i64));
        assert_eq!(
            PartitionState::decode(&v1).unwrap(),
            PartitionState {
                first_open: -1,
                ..s
            },
            "format 1 still reads, with no open transaction"
        );
        let o = Owner { node: 1, epoch: 2 };
        assert_eq!(Owner::decode(&o.encode()).unwrap(), o);
        let b = BatchInfo {
            base_offset: 1,
            last_offset: 4,
            max_timestamp: 9,
            size: 100,
        };
        assert_eq!(BatchInfo::decode(4, &b.encode()).unwrap(), b);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(PartitionState::decode(b"\xff\x00garbage").is_err());
        assert!(TopicMeta::decode(1, b"").is_err());
    }
}
