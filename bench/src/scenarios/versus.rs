//! `versus` (`vs-produce`, `vs-latency`, `vs-tail`, `vs-topics`, `vs-commits`): kfdb next to
//! Apache Kafka 4.4 on the same machine, with the same clients and loads as the kfdb-only
//! scenarios. Every target of `--targets` (kfdb; Kafka with its defaults; Kafka with
//! `log.flush.interval.messages=1`) runs each measurement on a fresh broker, the targets taking
//! turns within a repetition, and one `bench` line per measurement carries every target's numbers
//! and kfdb's ratios to each Kafka, always oriented so that a ratio above 1 means kfdb did better
//! (more MB/s, lower latency). Every broker is warmed up (`--vs-warmup-mib` through the produce
//! load) before it is measured.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataResponse};

use super::commits::{self, CommitRun};
use super::latency::{self, LatencyRun};
use super::produce::produce_records;
use super::tail::{raw_fetch_read, tail_read};
use super::topics::{METADATA_VERSION, create_topics, named_metadata, topic_name};
use crate::baseline::tcp_copy;
use crate::broker::Broker;
use crate::cli::Settings;
use crate::client::{admin, create_topic, runtime};
use crate::kafka::{Durability, Kafka};
use crate::kfdb::Kfdb;
use crate::stats::{mb_s, median, met};
use crate::target::{self, Target};
use crate::wire::{self, Connection};
use crate::workload::{MIB, RECORD_BYTES};

/// A fresh broker of `t` that has taken `--vs-warmup-mib` through the produce load on a topic of
/// its own first: the JVM's JIT compiles Kafka's hot paths in its first seconds, and a deployed
/// broker is warm.
fn warm_broker(t: Target, s: &Settings, rt: &tokio::runtime::Runtime) -> Box<dyn Broker> {
    let broker = t.start();
    let records = (s.vs_warmup_mib * MIB / RECORD_BYTES) as u64;
    if records > 0 {
        create_topic(rt, broker.bootstrap(), "vs-warmup", s.partitions);
        let run = produce_records(broker.as_ref(), "vs-warmup", s, records);
        println!(
            "  {} warm-up: {} MiB at {:.1} MB/s",
            t.key(),
            s.vs_warmup_mib,
            mb_s(records * RECORD_BYTES as u64, run.secs)
        );
    }
    broker
}

/// The targets of `--targets`, or an error naming the bad one.
fn targets(s: &Settings) -> Result<Vec<Target>, String> {
    s.targets
        .iter()
        .map(|n| Target::parse(n).ok_or_else(|| format!("--targets: unknown target {n}")))
        .collect()
}

/// `name=value` for each target's number, `na` where the target did not run.
fn fields(name: &str, values: &BTreeMap<&'static str, f64>, decimals: usize) -> String {
    target::ALL
        .map(Target::key)
        .iter()
        .map(|t| match values.get(t) {
            Some(v) => format!("{t}_{name}={v:.decimals$}"),
            None => format!("{t}_{name}=na"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// kfdb's value divided by a Kafka target's (`higher_is_better`) or the other way round, `na`
/// where either did not run.
fn ratio(values: &BTreeMap<&'static str, f64>, other: &str, higher_is_better: bool) -> Option<f64> {
    let (k, o) = (values.get("kfdb")?, values.get(other)?);
    Some(if higher_is_better { k / o } else { o / k })
}

/// `yes` if every goal that could be checked was met, `na` if none could (a target missing).
fn verdict(checks: &[Option<bool>]) -> &'static str {
    let known: Vec<bool> = checks.iter().flatten().copied().collect();
    if known.is_empty() {
        "na"
    } else {
        met(known.iter().all(|&ok| ok))
    }
}

/// The p50, p99 and p99.9 fields (ms) of a latency measurement, every target's.
fn latency_fields(
    p50: &BTreeMap<&'static str, f64>,
    p99: &BTreeMap<&'static str, f64>,
    p999: &BTreeMap<&'static str, f64>,
) -> String {
    [
        fields("p50_ms", p50, 2),
        fields("p99_ms", p99, 2),
        fields("p999_ms", p999, 2),
    ]
    .join(" ")
}

fn show(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "na".into())
}

pub fn run(s: &Settings, which: &str) -> bool {
    let list = match targets(s) {
        Ok(l) => l,
        Err(e) => {
            println!("{e}");
            return false;
        }
    };
    println!(
        "versus: {}",
        list.iter()
            .map(|t| t.describe())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut ok = true;
    if which == "versus" || which == "vs-produce" {
        ok &= produce(s, &list);
    }
    if which == "versus" || which == "vs-latency" {
        ok &= latency(s, &list);
    }
    if which == "versus" || which == "vs-tail" {
        ok &= tail(s, &list);
    }
    if which == "versus" || which == "vs-topics" {
        ok &= topics(s, &list);
    }
    if which == "versus" || which == "vs-commits" {
        ok &= commit_load(s, &list);
    }
    ok
}

/// Throughput of `s.producers` producers (acks=all, 1 KiB records) for each partition count of
/// `--vs-partitions`; medians of `--reps`.
fn produce(s: &Settings, list: &[Target]) -> bool {
    let records = (s.produce_mib * MIB / RECORD_BYTES) as u64;
    let bytes = records * RECORD_BYTES as u64;
    let rt = runtime();
    let mut ok = true;
    for &partitions in &s.vs_partitions {
        let s = Settings {
            partitions,
            ..s.clone()
        };
        println!(
            "vs-produce: {records} records x {RECORD_BYTES} B ({} MiB), acks=all, idempotence off, {} producers \
             (linger.ms={}, max.in.flight={}), {partitions} partitions; {} rep(s), targets in turn, fresh broker each",
            s.produce_mib, s.producers, s.linger_ms, s.in_flight, s.reps
        );
        let mut runs: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for rep in 0..s.reps {
            for &t in list {
                let broker = warm_broker(t, &s, &rt);
                create_topic(&rt, broker.bootstrap(), "vs-produce", partitions);
                let run = produce_records(broker.as_ref(), "vs-produce", &s, records);
                ok &= run.report(&format!("rep {rep}: {:<12}", t.key()));
                runs.entry(t.key()).or_default().push(mb_s(bytes, run.secs));
            }
        }
        let m: BTreeMap<&'static str, f64> =
            runs.into_iter().map(|(k, v)| (k, median(v))).collect();
        let (rk, rf) = (ratio(&m, "kafka", true), ratio(&m, "kafka_flush", true));
        println!(
            "bench scenario=vs_produce partitions={partitions} producers={} records={records} record_bytes={RECORD_BYTES} reps={} {} \
             ratio_vs_kafka={} ratio_vs_kafka_flush={} target_ratio_vs_kafka=1.2 target_ratio_vs_kafka_flush=3 met={} delivered_all={ok}",
            s.producers,
            s.reps,
            fields("mb_s", &m, 1),
            show(rk),
            show(rf),
            verdict(&[rk.map(|r| r >= 1.2), rf.map(|r| r >= 3.0)])
        );
    }
    ok
}

/// End-to-end latency at each fixed rate of `--vs-rates`, the same rate for every target.
fn latency(s: &Settings, list: &[Target]) -> bool {
    let rt = runtime();
    let mut ok = true;
    for &rate in &s.vs_rates {
        latency::describe(s, rate);
        let mut runs: BTreeMap<&'static str, LatencyRun> = BTreeMap::new();
        for &t in list {
            println!("  {}:", t.key());
            let broker = warm_broker(t, s, &rt);
            let run = latency::measure(broker.as_ref(), s, rate, &rt);
            if !run.complete() {
                println!(
                    "  ! {}: received {}/{}, {} delivery errors",
                    t.key(),
                    run.received,
                    run.total,
                    run.errors
                );
            }
            ok &= run.complete();
            runs.insert(t.key(), run);
        }
        let at = |p: f64| -> BTreeMap<&'static str, f64> {
            runs.iter().map(|(k, r)| (*k, r.e2e(p))).collect()
        };
        let (p50, p99, p999) = (at(50.0), at(99.0), at(99.9));
        let complete: Vec<String> = runs
            .iter()
            .map(|(k, r)| format!("{k}_received={}", r.received))
            .collect();
        // kfdb's p99 at most each Kafka's; at 20k records/s also at most 5 ms (issue #18).
        let target_ms = (rate == 20_000.0).then_some(5.0);
        let checks = [
            ratio(&p99, "kafka", false).map(|r| r >= 1.0),
            ratio(&p99, "kafka_flush", false).map(|r| r >= 1.0),
            p99.get("kfdb").zip(target_ms).map(|(a, t)| *a <= t),
        ];
        println!(
            "bench scenario=vs_latency rate_records_s={rate:.0} rate_mb_s={:.1} secs={} producers={} partitions={} linger_ms={} {} {} \
             p99_ratio_vs_kafka={} p99_ratio_vs_kafka_flush={} target_kfdb_p99_ms={} met={}",
            rate * RECORD_BYTES as f64 / 1e6,
            s.latency_secs,
            s.producers,
            s.partitions,
            s.latency_linger_ms,
            latency_fields(&p50, &p99, &p999),
            complete.join(" "),
            show(ratio(&p99, "kafka", false)),
            show(ratio(&p99, "kafka_flush", false)),
            target_ms
                .map(|t| format!("{t}"))
                .unwrap_or_else(|| "na".into()),
            verdict(&checks)
        );
    }
    ok
}

/// One rdkafka consumer reads `--tail-mib` just produced, from the beginning; and the raw Fetch
/// loop (no client library) next to a loopback TCP copy of the same bytes. Kafka flushing every
/// message reads the same as Kafka with its defaults, so it is left out here.
fn tail(s: &Settings, list: &[Target]) -> bool {
    let records = (s.tail_mib * MIB / RECORD_BYTES) as u64;
    let rt = runtime();
    println!(
        "vs-tail: {records} records x {RECORD_BYTES} B ({} MiB) produced into {} partitions, then read from the \
         beginning by one rdkafka consumer and by a raw Fetch loop, {} time(s) each; loopback TCP copy of the same \
         bytes as the baseline",
        s.tail_mib, s.partitions, s.reps
    );
    let mut consumer: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut raw: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut tcp = Vec::new();
    let mut ok = true;
    for &t in list.iter().filter(|t| **t != Target::KafkaFlush) {
        let broker = warm_broker(t, s, &rt);
        let topic = "vs-tail";
        create_topic(&rt, broker.bootstrap(), topic, s.partitions);
        let run = produce_records(broker.as_ref(), topic, s, records);
        ok &= run.complete();
        let expected = run.delivered + run.warmup;
        let (mut c, mut r) = (Vec::new(), Vec::new());
        for rep in 0..s.reps {
            let (secs, _, bytes) = tail_read(broker.bootstrap(), topic, s.partitions, expected);
            let (raw_secs, raw_bytes) =
                raw_fetch_read(broker.bootstrap(), topic, s.partitions, expected);
            let copy = tcp_copy(bytes);
            println!(
                "  rep {rep}: {:<6} consumer {:>7.1} MB/s ({secs:.2} s), raw Fetch loop {:>7.1} MB/s ({raw_secs:.2} s); loopback TCP {:>7.1} MB/s",
                t.key(),
                mb_s(bytes, secs),
                mb_s(raw_bytes, raw_secs),
                mb_s(bytes, copy)
            );
            c.push(mb_s(bytes, secs));
            r.push(mb_s(raw_bytes, raw_secs));
            tcp.push(mb_s(bytes, copy));
        }
        consumer.insert(t.key(), median(c));
        raw.insert(t.key(), median(r));
    }
    let tcp = median(tcp);
    let rk = ratio(&consumer, "kafka", true);
    let raw_ratio = raw.get("kfdb").map(|r| r / tcp);
    println!(
        "bench scenario=vs_tail records={records} partitions={} reps={} {} {} tcp_mb_s={tcp:.1} ratio_vs_kafka={} \
         raw_fetch_ratio_vs_kafka={} kfdb_raw_fetch_vs_tcp={} target_ratio_vs_kafka=1.0 target_raw_fetch_vs_tcp=0.8 met={} delivered_all={ok}",
        s.partitions,
        s.reps,
        fields("consumer_mb_s", &consumer, 1),
        fields("raw_fetch_mb_s", &raw, 1),
        show(rk),
        show(ratio(&raw, "kafka", true)),
        show(raw_ratio),
        verdict(&[rk.map(|r| r >= 1.0), raw_ratio.map(|r| r >= 0.8)])
    );
    ok
}

/// `--vs-groups` groups committing one offset a second each (`commits.rs`), on a warmed fresh
/// broker of every target; goal: kfdb sustains the rate with a commit p99 of at most 10 ms.
fn commit_load(s: &Settings, list: &[Target]) -> bool {
    let rt = runtime();
    let topic = "vs-commits";
    println!(
        "vs-commits: {} groups commit 1 offset/s each (OffsetCommit v8, generation -1) over {} connections, one \
         request in flight each; 1 s unmeasured, then {} s measured",
        s.vs_groups, s.vs_commit_connections, s.vs_commit_secs
    );
    let mut runs: BTreeMap<&'static str, CommitRun> = BTreeMap::new();
    let mut cpu: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut ok = true;
    for &t in list {
        let broker = warm_broker(t, s, &rt);
        create_topic(&rt, broker.bootstrap(), topic, 1);
        if !commits::coordinator_ready(broker.bootstrap()) {
            println!("  ! {}: no group coordinator after 60 s", t.key());
            ok = false;
            continue;
        }
        let (cpu0, t0) = (broker.cpu_seconds(), Instant::now());
        let run = commits::measure(
            broker.bootstrap(),
            topic,
            s.vs_groups,
            s.vs_commit_connections,
            s.vs_commit_secs,
        );
        let cores = (broker.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
        println!(
            "  {:<12} {:.0} commits/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; \
             latest send {:.1} ms after due; broker CPU {:.2} cores; errors {:?}",
            t.key(),
            run.rate(),
            run.latency(50.0),
            run.latency(99.0),
            run.latency(99.9),
            run.latency(100.0),
            run.max_late_ms,
            cores,
            run.errors
        );
        run.print_timeline();
        // Every 100th group reads back the last second's offset.
        let wrong = commits::mismatches(
            broker.bootstrap(),
            topic,
            s.vs_groups,
            100,
            s.vs_commit_secs as i64,
        );
        if wrong > 0 {
            println!(
                "  ! {}: {wrong} sampled groups read back another offset",
                t.key()
            );
        }
        ok &= run.clean() && wrong == 0;
        cpu.insert(t.key(), cores);
        runs.insert(t.key(), run);
    }
    let of = |f: &dyn Fn(&CommitRun) -> f64| -> BTreeMap<&'static str, f64> {
        runs.iter().map(|(k, r)| (*k, f(r))).collect()
    };
    let (rate, p50, p99, p999) = (
        of(&|r| r.rate()),
        of(&|r| r.latency(50.0)),
        of(&|r| r.latency(99.0)),
        of(&|r| r.latency(99.9)),
    );
    let wanted = s.vs_groups as f64;
    let kfdb = runs.get("kfdb");
    let checks = [
        kfdb.map(|r| r.rate() >= 0.99 * wanted),
        kfdb.map(|r| r.latency(99.0) <= 10.0),
    ];
    println!(
        "bench scenario=vs_commits groups={} connections={} secs={} {} {} {} p99_ratio_vs_kafka={} \
         p99_ratio_vs_kafka_flush={} target_commits_s={wanted:.0} target_kfdb_p99_ms=10 met={} all_committed={ok}",
        s.vs_groups,
        s.vs_commit_connections,
        s.vs_commit_secs,
        fields("commits_s", &rate, 0),
        latency_fields(&p50, &p99, &p999),
        fields("cpu_cores", &cpu, 2),
        show(ratio(&p99, "kafka", false)),
        show(ratio(&p99, "kafka_flush", false)),
        verdict(&checks)
    );
    ok
}

/// What one topic-count step measured on one target.
struct TopicStep {
    created: u64,
    rate: f64,
    /// It hit `--vs-topic-limit-secs` before every topic was asked for.
    stopped: bool,
    /// RSS growth per created topic, 7 s after the last CreateTopics.
    bytes_per_topic: f64,
    rss_after_mib: f64,
    /// From the restarted process's start to the first Metadata that names a created topic and
    /// gets its leader.
    restart_s: f64,
}

/// Topic creation at each count of `--vs-topics` (1 partition each, `--topic-batch` per
/// CreateTopics), RSS per idle topic, and restart to the first served request; a target whose
/// step passed `--vs-topic-limit-secs` is stopped there and runs no larger count. Kafka flushing
/// every message creates topics as Kafka does, so it is left out.
fn topics(s: &Settings, list: &[Target]) -> bool {
    let rt = runtime();
    let limit = Duration::from_secs(s.vs_topic_limit_secs);
    let mut ok = true;
    let mut gave_up: Vec<Target> = Vec::new();
    for &count in &s.vs_topics {
        let s = Settings {
            topics: count,
            ..s.clone()
        };
        println!(
            "vs-topics: create {count} topics (1 partition) through the AdminClient, {} per request, {} in flight; RSS \
             7 s after; then stop the broker (SIGTERM) and time its restart to the first Metadata answer with a leader \
             (a target is stopped after {} s of creating)",
            s.topic_batch, s.topic_concurrency, s.vs_topic_limit_secs
        );
        let mut steps: BTreeMap<&'static str, TopicStep> = BTreeMap::new();
        for &t in list.iter().filter(|t| **t != Target::KafkaFlush) {
            if gave_up.contains(&t) {
                println!("  {}: skipped (stopped at a smaller count)", t.key());
                continue;
            }
            let step = match t {
                Target::Kfdb => {
                    let mut k = Kfdb::start();
                    let step = create_step(&rt, &k, &s, limit);
                    k.stop();
                    let t0 = Instant::now();
                    let again = Kfdb::restart(&mut k, &[]);
                    let restart_s = first_served(again.bootstrap(), &step.0, t0);
                    drop(again);
                    TopicStep {
                        restart_s,
                        ..step.1
                    }
                }
                _ => {
                    let mut k = Kafka::start(Durability::Defaults);
                    let step = create_step(&rt, &k, &s, limit);
                    let stopping = Instant::now();
                    k.stop();
                    println!(
                        "  kafka stopped (SIGTERM) in {:.1} s",
                        stopping.elapsed().as_secs_f64()
                    );
                    let t0 = Instant::now();
                    let restart_s = match k.restart() {
                        Ok(()) => first_served(k.bootstrap(), &step.0, t0),
                        Err(e) => {
                            println!("  ! restart: {e}");
                            f64::NAN
                        }
                    };
                    TopicStep {
                        restart_s,
                        ..step.1
                    }
                }
            };
            println!(
                "  {}: {} topics at {:.0} topics/s{}; RSS {:.0} MiB, {:.0} B per topic; restart to first served {:.2} s",
                t.key(),
                step.created,
                step.rate,
                if step.stopped {
                    " (stopped at the time limit)"
                } else {
                    ""
                },
                step.rss_after_mib,
                step.bytes_per_topic,
                step.restart_s
            );
            if step.stopped {
                gave_up.push(t);
            } else {
                ok &= step.created == count as u64;
            }
            steps.insert(t.key(), step);
        }
        let of = |f: fn(&TopicStep) -> f64| -> BTreeMap<&'static str, f64> {
            steps.iter().map(|(k, v)| (*k, f(v))).collect()
        };
        let (rate, bpt, restart) = (
            of(|v| v.rate),
            of(|v| v.bytes_per_topic),
            of(|v| v.restart_s),
        );
        let created: Vec<String> = steps
            .iter()
            .map(|(k, v)| format!("{k}_created={} {k}_stopped={}", v.created, v.stopped))
            .collect();
        let rk = ratio(&rate, "kafka", true);
        println!(
            "bench scenario=vs_topics topics={count} batch={} {} {} {} {} rate_ratio_vs_kafka={} bytes_ratio_vs_kafka={} \
             restart_ratio_vs_kafka={} target_rate_ratio_vs_kafka=20 met={}",
            s.topic_batch,
            created.join(" "),
            fields("topics_per_s", &rate, 0),
            fields("bytes_per_topic", &bpt, 0),
            fields("restart_s", &restart, 2),
            show(rk),
            show(ratio(&bpt, "kafka", false)),
            show(ratio(&restart, "kafka", false)),
            verdict(&[rk.map(|r| r >= 20.0)])
        );
    }
    ok
}

/// Create the topics on `broker`, wait 7 s, read its RSS; returns the last created topic's name
/// (the one the restart asks for) and the step without its restart time.
fn create_step(
    rt: &tokio::runtime::Runtime,
    broker: &dyn Broker,
    s: &Settings,
    limit: Duration,
) -> (String, TopicStep) {
    let a = admin(broker.bootstrap());
    let rss0 = broker.status_kib("VmRSS");
    let c = create_topics(rt, broker, &a, s, Some(limit));
    drop(a);
    std::thread::sleep(Duration::from_secs(7));
    let rss1 = broker.status_kib("VmRSS");
    let created = c.created.max(1);
    (
        topic_name(c.created.saturating_sub(1) as usize),
        TopicStep {
            created: c.created,
            rate: c.created as f64 / c.secs,
            stopped: c.stopped,
            bytes_per_topic: rss1.saturating_sub(rss0) as f64 * 1024.0 / created as f64,
            rss_after_mib: rss1 as f64 / 1024.0,
            restart_s: f64::NAN,
        },
    )
}

/// Seconds from `t0` until a Metadata request naming `topic` is answered with the topic and
/// a leader for its partition (connections refused and answers without a leader are retried
/// every 20 ms, for at most 10 minutes).
fn first_served(bootstrap: &str, topic: &str, t0: Instant) -> f64 {
    let request = named_metadata(&[topic.to_string()]);
    while t0.elapsed() < Duration::from_secs(600) {
        if TcpStream::connect(bootstrap).is_ok() {
            let mut conn = Connection::connect(bootstrap);
            let frame = conn.encode(ApiKey::Metadata, METADATA_VERSION, &request);
            let response: MetadataResponse =
                wire::decode(ApiKey::Metadata, METADATA_VERSION, conn.round_trip(&frame));
            let served = response
                .topics
                .iter()
                .any(|t| t.error_code == 0 && t.partitions.iter().any(|p| p.leader_id.0 >= 0));
            if served {
                return t0.elapsed().as_secs_f64();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f64::NAN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_kfdbs_advantage_and_missing_targets_are_na() {
        let v: BTreeMap<&'static str, f64> = [("kfdb", 2.0), ("kafka", 4.0)].into();
        // Throughput: kfdb / Kafka; latency: Kafka / kfdb.
        assert_eq!(ratio(&v, "kafka", true), Some(0.5));
        assert_eq!(ratio(&v, "kafka", false), Some(2.0));
        assert_eq!(ratio(&v, "kafka_flush", true), None);
        assert_eq!(
            fields("mb_s", &v, 1),
            "kfdb_mb_s=2.0 kafka_mb_s=4.0 kafka_flush_mb_s=na"
        );
    }

    #[test]
    fn a_verdict_needs_something_to_check() {
        assert_eq!(verdict(&[None, None]), "na");
        assert_eq!(verdict(&[Some(true), None]), "yes");
        assert_eq!(verdict(&[Some(true), Some(false)]), "no");
    }
}
