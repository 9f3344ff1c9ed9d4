//! `vs-commits`: many consumer groups committing offsets at a steady rate each, the load of a large
//! fleet of consumers that commit every second. Each of `--vs-groups` groups commits one offset a
//! second (OffsetCommit v8 with generation -1: a group without members, as a consumer that assigns
//! itself partitions commits), the groups' commits spread evenly over the second and over
//! `--vs-commit-connections` blocking connections, one request in flight on each. The first second
//! creates the groups and is not measured; then `--vs-commit-secs` seconds are. Reported: commits
//! per second achieved, the round-trip latency of each commit (send to response), and how late the
//! last commit was sent after it was due (a connection whose commits take longer than their share
//! of the second falls behind).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::stats::pct;
use crate::wire::Connection;

const COMMIT_VERSION: i16 = 8;
const FIND_COORDINATOR_VERSION: i16 = 3;
/// The last version with one group per request (v8 asks for several).
const OFFSET_FETCH_VERSION: i16 = 7;

/// What one run measured.
#[derive(Debug, Default)]
pub struct CommitRun {
    /// Commits sent in the measured seconds.
    pub sent: u64,
    /// Of those, answered without an error.
    pub ok: u64,
    /// Error code → count, over every commit (the unmeasured first second too).
    pub errors: BTreeMap<i16, u64>,
    /// Round-trip latency of every measured commit, ms, sorted.
    pub latency_ms: Vec<f64>,
    /// The latest a measured commit was sent after it was due, ms.
    pub max_late_ms: f64,
    /// From the first measured commit's due time to the last measured commit's answer, s.
    pub secs: f64,
    /// When this connection's last commit was answered.
    last_answer: Option<Instant>,
    /// Measured commits by the second (since the start) they were sent in, with their latency
    /// (ms): the `KFDB_BENCH_TIMELINE` printout.
    timeline: Vec<(u64, f64)>,
}

impl CommitRun {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    pub fn latency(&self, p: f64) -> f64 {
        pct(&self.latency_ms, p)
    }

    /// Every commit answered without an error.
    pub fn clean(&self) -> bool {
        self.errors.is_empty() && self.ok == self.sent
    }

    fn merge(&mut self, other: CommitRun) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.latency_ms.extend(other.latency_ms);
        self.max_late_ms = self.max_late_ms.max(other.max_late_ms);
        self.last_answer = self.last_answer.max(other.last_answer);
        self.timeline.extend(other.timeline);
    }

    /// The worst latency of each second of the run, if `KFDB_BENCH_TIMELINE` is set.
    pub fn print_timeline(&self) {
        if !timeline_wanted() {
            return;
        }
        let mut worst: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
        for &(sec, ms) in &self.timeline {
            let w = worst.entry(sec).or_default();
            w.0 = w.0.max(ms);
            w.1 += u64::from(ms > 10.0);
        }
        for (sec, (ms, over)) in worst {
            println!("    second {sec:>3}: worst {ms:>7.2} ms, {over} commits over 10 ms");
        }
    }
}

/// `KFDB_BENCH_TIMELINE` is set: record and print each second's worst commit.
fn timeline_wanted() -> bool {
    std::env::var_os("KFDB_BENCH_TIMELINE").is_some()
}

pub fn group_name(g: usize) -> String {
    format!("vs-commits-group-{g:06}")
}

fn commit_request(group: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

/// Wait until the broker names a coordinator for groups (Kafka creates its offsets topic on the
/// first FindCoordinator and answers COORDINATOR_NOT_AVAILABLE until it has); false after 60 s.
pub fn coordinator_ready(bootstrap: &str) -> bool {
    let mut conn = Connection::connect(bootstrap);
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group_name(0)))
        .with_key_type(0);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let r: FindCoordinatorResponse =
            conn.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &request);
        if r.error_code == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Run the load against `bootstrap`, whose topic `topic` (partition 0) the groups commit to.
pub fn measure(
    bootstrap: &str,
    topic: &str,
    groups: usize,
    connections: usize,
    secs: u64,
) -> CommitRun {
    let connections = connections.clamp(1, groups.max(1));
    // Everyone starts on the same clock, a little ahead so every connection is open by then.
    let start = Instant::now() + Duration::from_millis(500);
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
            std::thread::spawn(move || {
                connection_load(&bootstrap, &topic, c, connections, groups, secs, start)
            })
        })
        .collect();
    let mut run = CommitRun::default();
    for t in threads {
        match t.join() {
            Ok(part) => run.merge(part),
            Err(_) => {
                // The connection failed (its panic is printed): count it as an error.
                *run.errors.entry(-1).or_default() += 1;
            }
        }
    }
    run.latency_ms.sort_by(f64::total_cmp);
    let measured_from = start + Duration::from_secs(1);
    run.secs = run
        .last_answer
        .map_or(f64::NAN, |t| {
            t.saturating_duration_since(measured_from).as_secs_f64()
        })
        .max(secs as f64);
    run
}

/// The groups `c`, `c + connections`, … on one connection: group `g`'s commit of second `s` is due
/// at `start + s + g / groups` seconds. Second 0 is not measured.
fn connection_load(
    bootstrap: &str,
    topic: &str,
    c: usize,
    connections: usize,
    groups: usize,
    secs: u64,
    start: Instant,
) -> CommitRun {
    let mut conn = Connection::connect(bootstrap);
    let timeline = timeline_wanted();
    let mine: Vec<usize> = (c..groups).step_by(connections).collect();
    let names: Vec<String> = mine.iter().map(|&g| group_name(g)).collect();
    let mut run = CommitRun::default();
    for second in 0..=secs {
        for (&g, name) in mine.iter().zip(&names) {
            let due = start
                + Duration::from_secs(second)
                + Duration::from_secs_f64(g as f64 / groups as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let frame = conn.encode(
                ApiKey::OffsetCommit,
                COMMIT_VERSION,
                &commit_request(name, topic, second as i64),
            );
            let sent = Instant::now();
            let reply = conn.round_trip(&frame);
            let latency = sent.elapsed();
            let r: OffsetCommitResponse =
                crate::wire::decode(ApiKey::OffsetCommit, COMMIT_VERSION, reply);
            let code = r
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code)
                .find(|&e| e != 0)
                .unwrap_or(0);
            if code != 0 {
                *run.errors.entry(code).or_default() += 1;
            }
            if second > 0 {
                run.last_answer = Some(Instant::now());
                if timeline {
                    let at = sent.saturating_duration_since(start).as_secs();
                    run.timeline.push((at, latency.as_secs_f64() * 1e3));
                }
                run.sent += 1;
                run.ok += u64::from(code == 0);
                run.latency_ms.push(latency.as_secs_f64() * 1e3);
                run.max_late_ms = run
                    .max_late_ms
                    .max(sent.saturating_duration_since(due).as_secs_f64() * 1e3);
            }
        }
    }
    run
}

/// Of every `step`-th group, how many do not read back `expected` (the offset of the last second)
/// as their committed offset: the commits acknowledged must be the ones stored.
pub fn mismatches(
    bootstrap: &str,
    topic: &str,
    groups: usize,
    step: usize,
    expected: i64,
) -> usize {
    let mut conn = Connection::connect(bootstrap);
    let mut bad = 0;
    for g in (0..groups).step_by(step.max(1)) {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group_name(g))))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(vec![0]),
            ]));
        let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &request);
        let stored = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code == 0)
            .map(|p| p.committed_offset);
        if r.error_code != 0 || stored != Some(expected) {
            bad += 1;
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_clean_needs_every_commit_answered() {
        let mut a = CommitRun {
            sent: 2,
            ok: 2,
            latency_ms: vec![1.0, 3.0],
            max_late_ms: 2.0,
            ..Default::default()
        };
        assert!(a.clean());
        a.merge(CommitRun {
            sent: 1,
            ok: 0,
            errors: [(16, 1)].into(),
            latency_ms: vec![2.0],
            max_late_ms: 5.0,
            ..Default::default()
        });
        assert_eq!((a.sent, a.ok, a.max_late_ms), (3, 2, 5.0));
        assert!(!a.clean());
        assert_eq!(group_name(42), "vs-commits-group-000042");
    }
}
