//! The command line: which scenario, and the `Settings` every scenario reads (defaults, `--quick`,
//! flags). Also the help text. Nothing here runs anything.

#[derive(Debug, Clone)]
pub struct Settings {
    pub quick: bool,
    // produce
    pub produce_mib: usize,
    pub reps: usize,
    pub producers: usize,
    pub partitions: i32,
    pub linger_ms: u32,
    pub in_flight: u32,
    // latency
    pub peak_mib: usize,
    pub rate: Option<f64>,
    pub latency_secs: f64,
    pub latency_linger_ms: u32,
    // tail
    pub tail_mib: usize,
    // topics
    pub topics: usize,
    pub topic_batch: usize,
    pub topic_concurrency: usize,
    pub metadata_reps: usize,
    pub random_topics: usize,
    pub records_per_topic: usize,
    // delete
    pub delete_mib: usize,
    pub delete_watch_secs: u64,
    // cluster
    pub cluster_mib: usize,
    pub cluster_partitions: i32,
    pub failover_rate: f64,
    // versus
    pub targets: Vec<String>,
    pub vs_partitions: Vec<i32>,
    pub vs_rates: Vec<f64>,
    pub vs_warmup_mib: usize,
    pub vs_topics: Vec<usize>,
    pub vs_topic_limit_secs: u64,
    pub vs_groups: usize,
    pub vs_commit_connections: usize,
    pub vs_commit_secs: u64,
}

impl Settings {
    pub fn new(quick: bool) -> Settings {
        Settings {
            quick,
            produce_mib: if quick { 16 } else { 256 },
            reps: if quick { 1 } else { 3 },
            producers: 4,
            partitions: 4,
            linger_ms: 5,
            in_flight: 5,
            peak_mib: if quick { 16 } else { 64 },
            rate: None,
            latency_secs: if quick { 3.0 } else { 10.0 },
            latency_linger_ms: 0,
            tail_mib: if quick { 32 } else { 256 },
            topics: if quick { 5_000 } else { 100_000 },
            topic_batch: if quick { 1_000 } else { 2_000 },
            topic_concurrency: 1,
            metadata_reps: if quick { 100 } else { 1_000 },
            random_topics: if quick { 100 } else { 1_000 },
            records_per_topic: 10,
            delete_mib: if quick { 64 } else { 1024 },
            delete_watch_secs: if quick { 3 } else { 10 },
            cluster_mib: if quick { 16 } else { 256 },
            cluster_partitions: 12,
            failover_rate: 1_000.0,
            targets: vec!["kfdb".into(), "kafka".into(), "kafka-flush".into()],
            vs_partitions: if quick { vec![4] } else { vec![4, 64] },
            vs_rates: if quick {
                vec![2_000.0]
            } else {
                vec![2_000.0, 20_000.0, 100_000.0]
            },
            vs_warmup_mib: if quick { 8 } else { 64 },
            vs_topics: if quick {
                vec![2_000]
            } else {
                vec![10_000, 100_000]
            },
            vs_topic_limit_secs: 600,
            vs_groups: if quick { 1_000 } else { 10_000 },
            vs_commit_connections: if quick { 10 } else { 100 },
            vs_commit_secs: if quick { 3 } else { 30 },
        }
    }
}

pub const HELP: &str = "\
kfdb-bench <produce|latency|tail|topics|delete|cluster|compaction|store-shapes|all
            |versus|vs-produce|vs-latency|vs-tail|vs-topics|vs-commits> [flags]

  --quick                 shrink every scenario (smoke run); flags given after it still apply
  produce:  --mib N (256)  --reps N (3)  --producers N (4)  --partitions N (4)
            --linger-ms N (5)  --in-flight N (5)
  latency:  --peak-mib N (64, the peak-throughput run)  --rate RECORDS_PER_S (default: half the
            measured peak)  --secs S (10)  --latency-linger-ms N (0)
  tail:     --tail-mib N (256)
  topics:   --topics N (100000)  --topic-batch N (2000)  --topic-concurrency N (1)
            --metadata-reps N (1000)  --random-topics N (1000)  --records-per-topic N (10)
  delete:   --delete-mib N (1024, topic A's size)  --delete-watch-secs N (10)
  cluster:  --cluster-mib N (256, per run)  --cluster-partitions N (12)
            --failover-rate RECORDS_PER_S (1000)  (also --producers, --linger-ms, --in-flight)
  compaction: key-index cost (200k / 2M keyed records of 100 B) and compaction throughput
            (16 / 256 MiB over 1,000 keys); also --reps, --producers, --partitions
  store-shapes: the raw store's commit path today next to a write-ahead log of kfdb-kv's own
            (fjall applied behind it; or holding the values): throughput and latency at 20 MB/s
            (--mib, --reps, --secs)
  versus:   kfdb next to Apache Kafka 4.4 (vs-produce, vs-latency, vs-tail, vs-topics, vs-commits;
            versus = all)
            --targets LIST (kfdb,kafka,kafka-flush)  --vs-partitions LIST (4,64)
            --vs-rates LIST (2000,20000,100000 records/s)  --vs-warmup-mib N (64, produced
            on each fresh broker before it is measured: the JVM's JIT warms up)
            --vs-topics LIST (10000,100000)  --vs-topic-limit-secs N (600: a target whose
            creation takes longer is stopped there and runs no larger count)
            --vs-groups N (10000, each committing 1 offset/s)  --vs-commit-connections N (100)
            --vs-commit-secs N (30, measured)
            (also --mib, --reps, --producers, --partitions, --secs, --latency-linger-ms,
            --tail-mib, --topic-batch, --topic-concurrency)

Environment: KFDB_BIN (default ../target/release/kfdb), KFDB_BENCH_DIR (data dirs; default temp dir),
KFDB_LOG (passed to kfdb), RDKAFKA_DEBUG (librdkafka debug contexts),
KFDB_BENCH_FDB_CLUSTER_FILE (FoundationDB mode: kfdb --store fdb, raw FoundationDB baseline;
build with --features fdb and a kfdb built with --features fdb),
KAFKA_CLASSPATH (Apache Kafka's jars for versus; default: what `mvn -q -f compat-tests/java/pom.xml
package` wrote to compat-tests/java/target/classpath.txt), JAVA_HOME (the java that runs Kafka).";

/// The scenario (first argument, `help` if none) and the settings from the flags after it.
pub fn parse_args(args: &[String]) -> Result<(String, Settings), String> {
    let scenario = args.first().cloned().unwrap_or_else(|| "help".into());
    let quick = args.iter().any(|a| a == "--quick");
    let mut s = Settings::new(quick);
    let mut i = 1;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--quick" {
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{flag}: missing value"))?;
        let n = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag {
            "--mib" => s.produce_mib = n()?,
            "--reps" => s.reps = n()?.max(1),
            "--producers" => s.producers = n()?.max(1),
            "--partitions" => s.partitions = n()?.max(1) as i32,
            "--linger-ms" => s.linger_ms = n()? as u32,
            "--in-flight" => s.in_flight = n()?.max(1) as u32,
            "--peak-mib" => s.peak_mib = n()?,
            "--rate" => {
                s.rate = Some(
                    value
                        .parse::<f64>()
                        .map_err(|_| format!("{flag}: not a number"))?,
                )
            }
            "--secs" => {
                s.latency_secs = value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag}: not a number"))?
            }
            "--latency-linger-ms" => s.latency_linger_ms = n()? as u32,
            "--tail-mib" => s.tail_mib = n()?,
            "--topics" => s.topics = n()?,
            "--topic-batch" => s.topic_batch = n()?.max(1),
            "--topic-concurrency" => s.topic_concurrency = n()?.max(1),
            "--metadata-reps" => s.metadata_reps = n()?.max(1),
            "--random-topics" => s.random_topics = n()?,
            "--records-per-topic" => s.records_per_topic = n()?.max(1),
            "--delete-mib" => s.delete_mib = n()?.max(1),
            "--delete-watch-secs" => s.delete_watch_secs = n()? as u64,
            "--cluster-mib" => s.cluster_mib = n()?.max(1),
            "--cluster-partitions" => s.cluster_partitions = n()?.max(3) as i32,
            "--failover-rate" => s.failover_rate = n()?.max(1) as f64,
            "--targets" => s.targets = value.split(',').map(String::from).collect(),
            "--vs-partitions" => s.vs_partitions = list(flag, value)?,
            "--vs-rates" => s.vs_rates = list(flag, value)?,
            "--vs-warmup-mib" => s.vs_warmup_mib = n()?,
            "--vs-topics" => s.vs_topics = list(flag, value)?,
            "--vs-topic-limit-secs" => s.vs_topic_limit_secs = n()? as u64,
            "--vs-groups" => s.vs_groups = n()?,
            "--vs-commit-connections" => s.vs_commit_connections = n()?,
            "--vs-commit-secs" => s.vs_commit_secs = n()? as u64,
            _ => return Err(format!("unknown flag {flag}\n\n{HELP}")),
        }
        i += 2;
    }
    Ok((scenario, s))
}

/// A comma-separated list of numbers.
fn list<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(|v| v.parse().map_err(|_| format!("{flag}: not a number: {v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<(String, Settings), String> {
        parse_args(
            &args
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn no_arguments_is_help() {
        let (scenario, s) = parse("").unwrap();
        assert_eq!(scenario, "help");
        assert!(!s.quick);
        assert_eq!((s.produce_mib, s.reps, s.topics), (256, 3, 100_000));
    }

    #[test]
    fn flags_after_quick_still_apply() {
        let (scenario, s) = parse("produce --quick --reps 0 --mib 8 --rate 1500.5").unwrap();
        assert_eq!(scenario, "produce");
        assert!(s.quick);
        assert_eq!((s.produce_mib, s.reps, s.tail_mib), (8, 1, 32));
        assert_eq!(s.rate, Some(1500.5));
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(
            parse("all --nope 1")
                .unwrap_err()
                .starts_with("unknown flag --nope")
        );
        assert_eq!(parse("all --mib").unwrap_err(), "--mib: missing value");
        assert_eq!(parse("all --mib x").unwrap_err(), "--mib: not a number: x");
        assert_eq!(
            parse("versus --vs-rates 100,x").unwrap_err(),
            "--vs-rates: not a number: x"
        );
    }

    #[test]
    fn versus_lists() {
        let (_, s) =
            parse("versus --targets kfdb,kafka --vs-partitions 4,64,8 --vs-rates 2000,2e4")
                .unwrap();
        assert_eq!(s.targets, ["kfdb", "kafka"]);
        assert_eq!(s.vs_partitions, [4, 64, 8]);
        assert_eq!(s.vs_rates, [2000.0, 20000.0]);
    }
}
