//! Who leads a partition and who coordinates a group or transactional id, as pure functions of
//! the cluster view, so every broker computes the same answer with nothing stored.
//!
//! Partitions: each topic orders every broker the cluster has registered (its *universe*, live
//! or not) by a hash of (broker, topic), and partition `p` is at home on the broker at position
//! `p mod universe size` of that order — Kafka's round-robin assignment, started at a different
//! broker for each topic. So with every broker up, each topic's partitions are spread as evenly
//! as they can be (a 12-partition topic on three brokers: four each). A partition whose home
//! broker is down is led by rendezvous (highest random weight) hashing over the live brokers:
//! only the partitions of a broker that left move, spread over the others, and each comes back
//! to its home when the broker does. A broker that joins for the first time grows the universe
//! and so changes most homes once (like a Kafka reassignment, here automatic). An operator's pin
//! (AlterPartitionReassignments) overrides both while the pinned broker is live.
//!
//! Coordinators (many keys, no count to balance per topic) use rendezvous hashing over the live
//! brokers alone.
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

fn topic_key(tid: i64) -> u64 {
    mix(tid as u64 ^ 0x746f_7069_6373)
}

/// The broker partition `p` is at home on: position `p mod n` of the topic's order of the
/// `universe` (every registered broker, ascending, no duplicates).
fn home(p: PartitionId, universe: &[i32]) -> Option<i32> {
    if universe.is_empty() {
        return None;
    }
    let key = topic_key(p.tid);
    let mut order: Vec<(u64, i32)> = universe.iter().map(|n| (weight(*n, key), *n)).collect();
    // Highest weight first; ties to the lower node id.
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let at = (p.partition.max(0) as usize) % order.len();
    Some(order[at].1)
}

/// The leader of `p` among the live `nodes` (ascending), given every registered broker in
/// `universe` (ascending): the pinned node if it is live, else the partition's home if it is
/// live, else by rendezvous hashing over the live nodes.
pub fn partition_leader(
    p: PartitionId,
    universe: &[i32],
    nodes: &[i32],
    pin: Option<i32>,
) -> Option<i32> {
    match pin {
        Some(n) if nodes.contains(&n) => return Some(n),
        _ => {}
    }
    match home(p, universe) {
        Some(h) if nodes.binary_search(&h).is_ok() => Some(h),
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

    fn counts(universe: &[i32], nodes: &[i32], tid: i64, partitions: i32) -> HashMap<i32, usize> {
        let mut c = HashMap::new();
        for p in 0..partitions {
            let l = partition_leader(PartitionId::new(tid, p), universe, nodes, None).unwrap();
            *c.entry(l).or_default() += 1;
        }
        c
    }

    #[test]
    fn every_topic_is_spread_evenly_while_all_brokers_are_up() {
        for nodes in [vec![0, 1, 2], vec![1, 2, 3], vec![0, 1, 2, 3, 4]] {
            for tid in 1..200 {
                for partitions in [1, 3, 12, 1_000] {
                    let c = counts(&nodes, &nodes, tid, partitions);
                    let (lo, hi) = (
                        partitions as usize / nodes.len(),
                        (partitions as usize).div_ceil(nodes.len()),
                    );
                    for n in &nodes {
                        let led = *c.get(n).unwrap_or(&0);
                        assert!(
                            led >= lo && led <= hi,
                            "{nodes:?} topic {tid}, {partitions} partitions: node {n} leads {led}"
                        );
                    }
                }
            }
        }
        // Topics of one partition each start at different brokers.
        let mut c: HashMap<i32, usize> = HashMap::new();
        for tid in 0..3_000 {
            let l = partition_leader(PartitionId::new(tid, 0), &[0, 1, 2], &[0, 1, 2], None);
            *c.entry(l.unwrap()).or_default() += 1;
        }
        assert!(c.values().all(|n| (800..=1_200).contains(n)), "{c:?}");
    }

    #[test]
    fn only_the_lost_brokers_partitions_move_and_they_spread() {
        let all = [0, 1, 2];
        let without = [0, 2];
        let mut took: HashMap<i32, usize> = HashMap::new();
        for p in 0..1_000 {
            let p = PartitionId::new(3, p);
            let before = partition_leader(p, &all, &all, None).unwrap();
            let after = partition_leader(p, &all, &without, None).unwrap();
            if before != 1 {
                assert_eq!(before, after, "{p} moved although its leader stayed");
            } else {
                *took.entry(after).or_default() += 1;
            }
            // Back home when the broker returns.
            assert_eq!(partition_leader(p, &all, &all, None), Some(before));
        }
        // Broker 1's 333 or 334 partitions went to both others, about half each.
        assert!(took.values().all(|n| (130..=200).contains(n)), "{took:?}");
    }

    #[test]
    fn a_broker_outside_the_universe_still_leads_when_alone() {
        let p = PartitionId::new(5, 7);
        assert_eq!(partition_leader(p, &[], &[4], None), Some(4));
        assert_eq!(partition_leader(p, &[0, 1], &[4], None), Some(4));
        assert_eq!(partition_leader(p, &[0, 1], &[], None), None);
    }

    #[test]
    fn pins_win_while_their_broker_is_live() {
        let p = PartitionId::new(1, 0);
        let all = [0, 1, 2];
        for pinned in all {
            assert_eq!(partition_leader(p, &all, &all, Some(pinned)), Some(pinned));
        }
        let unpinned = partition_leader(p, &all, &[0, 1], None);
        assert_eq!(partition_leader(p, &all, &[0, 1], Some(2)), unpinned);
        assert_eq!(partition_leader(p, &all, &[], None), None);
    }

    #[test]
    fn partitions_go_round_robin_over_the_topics_order() {
        let all = [0, 1, 2];
        let leaders: Vec<i32> = (0..6)
            .map(|p| partition_leader(PartitionId::new(1, p), &all, &all, None).unwrap())
            .collect();
        assert_eq!(
            leaders[0..3],
            leaders[3..6],
            "round-robin over the topic's order"
        );
        let mut first3 = leaders[0..3].to_vec();
        first3.sort();
        assert_eq!(first3, all);
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
