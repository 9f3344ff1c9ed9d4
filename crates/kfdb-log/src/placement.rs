//! Who leads a partition and who coordinates a group or transactional id: rendezvous (highest
//! random weight) hashing over the live brokers, as pure functions of the cluster view.
//!
//! Every broker computes the same answer from the same set of live brokers, with nothing stored
//! and nothing to rebalance: when a broker leaves, only the partitions it led move (each to the
//! broker with the next highest weight), and when it comes back it takes exactly those back. Over
//! many partitions each of `n` brokers leads close to `1/n` of them (tested: 1,000 partitions on
//! three brokers, no broker above 1.2 times its share). An operator's pin (AlterPartitionReassignments)
//! overrides the hash for its partition while the pinned broker is live.
//!
//! The weights use a fixed hash (FNV-1a over the key, then a 64-bit finalizer), never Rust's
//! `DefaultHasher`, so brokers built by different compilers agree.

use crate::ids::PartitionId;

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A 64-bit finalizer (splitmix64's): spreads nearby inputs over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn weight(node: i32, key: u64) -> u64 {
    mix(key ^ mix(u64::from(node as u32).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The node with the highest weight for `key` among `nodes` (ties go to the lower node id).
fn rendezvous(key: u64, nodes: &[i32]) -> Option<i32> {
    nodes
        .iter()
        .copied()
        .max_by_key(|n| (weight(*n, key), std::cmp::Reverse(*n)))
}

fn partition_key(p: PartitionId) -> u64 {
    mix(p.tid as u64 ^ mix((p.partition as u32 as u64) << 1 | 1))
}

/// The leader of `p` among the live `nodes`: the pinned node if it is live, else by hash.
pub fn partition_leader(p: PartitionId, nodes: &[i32], pin: Option<i32>) -> Option<i32> {
    match pin {
        Some(n) if nodes.contains(&n) => Some(n),
        _ => rendezvous(partition_key(p), nodes),
    }
}

/// A broker among `nodes` (say, those in a consumer's rack) to read `p` from, spread over
/// partitions the same way leaders are.
pub fn partition_replica(p: PartitionId, nodes: &[i32]) -> Option<i32> {
    rendezvous(partition_key(p), nodes)
}

/// What a coordinator key is for: the two kinds never share a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// A consumer group (FindCoordinator key type 0).
    Group,
    /// A transactional id (key type 1).
    Transaction,
}

/// The coordinator of `key` among the live `nodes`.
pub fn coordinator(kind: CoordinatorKind, key: &str, nodes: &[i32]) -> Option<i32> {
    let salt: u64 = match kind {
        CoordinatorKind::Group => 0x6772_6f75_7073,
        CoordinatorKind::Transaction => 0x7478_6e73,
    };
    rendezvous(mix(fnv1a(key.as_bytes()) ^ salt), nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn counts(nodes: &[i32], partitions: i32) -> HashMap<i32, usize> {
        let mut c = HashMap::new();
        for p in 0..partitions {
            let l = partition_leader(PartitionId::new(17, p), nodes, None).unwrap();
            *c.entry(l).or_default() += 1;
        }
        c
    }

    #[test]
    fn leaders_are_balanced() {
        for nodes in [vec![0, 1, 2], vec![1, 2, 3], vec![0, 1, 2, 3, 4]] {
            let c = counts(&nodes, 1_000);
            let share = 1_000.0 / nodes.len() as f64;
            for n in &nodes {
                let led = *c.get(n).unwrap_or(&0) as f64;
                assert!(
                    led <= share * 1.2 && led >= share * 0.8,
                    "{nodes:?}: node {n} leads {led} of 1000"
                );
            }
        }
        // Across many topics of one partition each, too.
        let mut c: HashMap<i32, usize> = HashMap::new();
        for tid in 0..3_000 {
            let l = partition_leader(PartitionId::new(tid, 0), &[0, 1, 2], None).unwrap();
            *c.entry(l).or_default() += 1;
        }
        assert!(c.values().all(|n| *n <= 1_200), "{c:?}");
    }

    #[test]
    fn only_the_lost_brokers_partitions_move() {
        let all = [0, 1, 2];
        let without = [0, 2];
        for p in 0..1_000 {
            let p = PartitionId::new(3, p);
            let before = partition_leader(p, &all, None).unwrap();
            let after = partition_leader(p, &without, None).unwrap();
            if before != 1 {
                assert_eq!(before, after, "{p} moved although its leader stayed");
            }
        }
    }

    #[test]
    fn pins_win_while_their_broker_is_live() {
        let p = PartitionId::new(1, 0);
        assert_eq!(partition_leader(p, &[0, 1, 2], Some(2)), Some(2));
        let by_hash = partition_leader(p, &[0, 1], None);
        assert_eq!(partition_leader(p, &[0, 1], Some(2)), by_hash);
        assert_eq!(partition_leader(p, &[], None), None);
    }

    #[test]
    fn coordinators_are_stable_and_spread() {
        let nodes = [0, 1, 2];
        let mut c: HashMap<i32, usize> = HashMap::new();
        for g in 0..900 {
            let key = format!("group-{g}");
            let a = coordinator(CoordinatorKind::Group, &key, &nodes).unwrap();
            assert_eq!(coordinator(CoordinatorKind::Group, &key, &nodes), Some(a));
            *c.entry(a).or_default() += 1;
        }
        assert!(c.values().all(|n| *n >= 240 && *n <= 360), "{c:?}");
        // The answer is a fixed function of its input (brokers must agree across builds).
        assert_eq!(
            coordinator(CoordinatorKind::Transaction, "tx-1", &[0, 1, 2, 3]),
            coordinator(CoordinatorKind::Transaction, "tx-1", &[3, 2, 1, 0])
        );
    }
}
