//! Names for the identities the data model passes around, so that a partition is a type and not a
//! bare `(i64, i32)`.
//!
//! A topic has two ids: the Kafka topic id (a UUID clients see) and a short internal integer id
//! (`tid`) that every data key carries, so keys stay small and a topic can be renamed or have a
//! long name without touching its data. A partition in the store is that internal id plus the
//! partition index.

use std::fmt;

/// One partition of one topic, as the store keys it: the topic's internal id and the partition
/// index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    /// The topic's internal id (see `TopicMeta::id`).
    pub tid: i64,
    /// The partition index within the topic.
    pub partition: i32,
}

impl PartitionId {
    /// The partition `partition` of the topic with internal id `tid`.
    pub const fn new(tid: i64, partition: i32) -> Self {
        Self { tid, partition }
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tid, self.partition)
    }
}
