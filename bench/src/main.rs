//! kfdb-bench: benchmarks of a running kfdb through a real Kafka client (rdkafka, librdkafka built
//! from its bundled sources), each next to a baseline measured in the same run.
//!
//! ```text
//! cd bench && nice -n 10 cargo build --release
//! target/release/kfdb-bench all              # or: produce | latency | tail | topics | delete | cluster | store-shapes
//! target/release/kfdb-bench all --quick      # everything shrunk, a smoke run
//! target/release/kfdb-bench versus           # kfdb next to Apache Kafka 4.4 (issue #18)
//! ```
//!
//! Every scenario but `store-shapes` (and every repetition of `produce`) starts a fresh kfdb (`KFDB_BIN`, default
//! `../target/release/kfdb` relative to this package) on a free loopback port with a fresh data
//! directory under `KFDB_BENCH_DIR` (default: the system temp dir), and stops it (SIGTERM) at the
//! end. Each scenario prints its numbers and then ONE summary line that starts with `bench ` and is
//! made of `key=value` fields. MB = 10^6 bytes of record payload; MiB = 2^20.
//!
//! `kfdb-bench help` lists the flags.
//!
//! Layout, imports one-way: `main` dispatches to `scenarios::*` (one module per scenario), which
//! use `kfdb` (the broker under test, on `kfdb-harness`), `target` (kfdb or Apache Kafka, for
//! `versus`), `client` (the rdkafka clients), `wire` (raw requests through kafka-protocol) and
//! `baseline`; the loads take any `broker::Broker`; `target` uses `kfdb` and `kafka` (Apache
//! Kafka's process); `kfdb` uses `fdb` (FoundationDB mode and its baseline), `fdb` uses `client`'s
//! tokio runtime; `broker` uses `procfs`; `cli`, `metrics`, `procfs`, `stats` and `workload`
//! import nothing of the crate.

mod baseline;
mod broker;
mod cli;
mod client;
mod fdb;
mod kafka;
mod kfdb;
mod metrics;
mod procfs;
mod scenarios;
mod stats;
mod target;
mod wire;
mod workload;

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, s) = match cli::parse_args(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    workload::epoch();
    let list: Vec<&str> = match scenario.as_str() {
        "all" => vec!["produce", "latency", "tail", "topics"],
        "produce" | "latency" | "tail" | "topics" | "delete" | "cluster" | "compaction"
        | "store-shapes" | "versus" | "vs-produce" | "vs-latency" | "vs-tail" | "vs-topics"
        | "vs-commits" => {
            vec![scenario.as_str()]
        }
        _ => {
            println!("{}", cli::HELP);
            std::process::exit(if scenario == "help" || scenario == "--help" {
                0
            } else {
                2
            });
        }
    };
    println!(
        "kfdb-bench: kfdb {} (quick: {}), data under {}",
        kfdb::bin().display(),
        s.quick,
        workload::bench_dir().display()
    );
    let mut ok = true;
    for sc in list {
        let t = Instant::now();
        ok &= match sc {
            "produce" => scenarios::produce::run(&s),
            "latency" => scenarios::latency::run(&s),
            "tail" => scenarios::tail::run(&s),
            "delete" => scenarios::delete::run(&s),
            "cluster" => scenarios::cluster::run(&s),
            "compaction" => scenarios::compaction::run(&s),
            "store-shapes" => scenarios::store_shapes::run(&s),
            "versus" | "vs-produce" | "vs-latency" | "vs-tail" | "vs-topics" | "vs-commits" => {
                scenarios::versus::run(&s, sc)
            }
            _ => scenarios::topics::run(&s),
        };
        println!("  ({sc} took {:.1} s)\n", t.elapsed().as_secs_f64());
    }
    std::process::exit(if ok { 0 } else { 1 });
}
