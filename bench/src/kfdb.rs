//! The kfdb under test, as every scenario starts it: `kfdb_harness` runs the process (free
//! loopback port, fresh data directory under `KFDB_BENCH_DIR`, SIGTERM at the end); this adds what
//! the bench needs on top: FoundationDB mode's flags, a metrics listener and the readings from it
//! and from /proc, the start line, and on drop the saved metrics (`KFDB_BENCH_METRICS`) and the
//! `!` lines for WARN/ERROR log lines or an unclean exit.

use std::path::PathBuf;
use std::time::Duration;

use crate::broker::Broker;
use crate::fdb;
use crate::metrics::{self, Histogram};
use crate::workload::bench_dir;

const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The kfdb binary: `KFDB_BIN`, default `../target/release/kfdb` relative to this package.
pub fn bin() -> PathBuf {
    kfdb_harness::kfdb_bin(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/kfdb"))
}

/// One kfdb process; dropping it stops the process and reports problems (see the module docs).
pub struct Kfdb {
    process: kfdb_harness::Kfdb,
    /// kfdb's metrics address; with `KFDB_BENCH_METRICS=DIR`, /metrics is saved to DIR at stop.
    metrics: String,
    /// [`Kfdb::kill`] ended it: no metrics to save, no unclean exit to report.
    killed_on_purpose: bool,
}

impl Kfdb {
    /// Start kfdb and print its start line; panics if it does not come up.
    pub fn start() -> Kfdb {
        Kfdb::start_with(&[], true)
    }

    /// Start kfdb with extra `kfdb serve` flags. In FoundationDB mode the database is emptied
    /// first if `fresh` (a second broker of a cluster joins the first one's data).
    pub fn start_with(args: &[&str], fresh: bool) -> Kfdb {
        Kfdb::start_on(None, args, fresh)
    }

    /// Start kfdb again on the data of `earlier` (stopped first), with `args`: a restart. The
    /// data stays `earlier`'s, so keep it until this one is dropped.
    pub fn restart(earlier: &mut Kfdb, args: &[&str]) -> Kfdb {
        earlier.stop();
        let dir = earlier.process.data_dir().to_path_buf();
        Kfdb::start_on(Some(dir), args, false)
    }

    fn start_on(data_dir: Option<PathBuf>, args: &[&str], fresh: bool) -> Kfdb {
        let bin = bin();
        let mut options = kfdb_harness::Options::new(&bin)
            .temp_prefix("kfdb-bench-")
            .temp_parent(bench_dir())
            .metrics_listener()
            .stop_timeout(STOP_TIMEOUT)
            .args(args);
        if let Some(dir) = data_dir {
            options = options.data_dir(dir);
        }
        if let Some(cf) = fdb::cluster_file() {
            if fresh {
                fdb::clear(&cf);
            }
            options = options.args(["--store", "fdb", "--fdb-cluster-file", &cf]);
        }
        let process = options.start().unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => panic!(
                "{e} (`cargo build --release -p kfdb` in the repository root, or set KFDB_BIN)"
            ),
            _ => panic!("{e}"),
        });
        println!(
            "  kfdb pid {} on {} (data in {})",
            process.pid(),
            process.bootstrap(),
            process.data_dir().display()
        );
        let metrics = process.metrics_addr().expect("asked for").to_string();
        Kfdb {
            process,
            metrics,
            killed_on_purpose: false,
        }
    }

    /// kfdb's metrics (and HTTP control) listener.
    pub fn metrics_addr(&self) -> &str {
        &self.metrics
    }

    /// Stop kfdb now (SIGTERM, waiting for it to exit); true if it exited cleanly.
    pub fn stop(&mut self) -> bool {
        self.process.stop().is_clean()
    }

    /// Kill kfdb now (SIGKILL, as a crash); its unclean exit is then expected, not reported.
    pub fn kill(&mut self) {
        self.killed_on_purpose = true;
        self.process.kill();
    }

    /// kfdb's own time to answer requests of one API (`kfdb_request_duration_seconds`).
    pub fn request_time(&self, api: &str) -> Option<Histogram> {
        self.histogram("kfdb_request_duration_seconds", &format!("api=\"{api}\""))
    }

    /// A kfdb histogram (`labels` like `api="Produce"`, or empty).
    pub fn histogram(&self, metric: &str, labels: &str) -> Option<Histogram> {
        metrics::histogram(&metrics::scrape(&self.metrics).ok()?, metric, labels)
    }

    /// A kfdb store counter (`kfdb_store_commits_total`, `kfdb_store_fsyncs_total`, ...).
    pub fn counter(&self, name: &str) -> Option<f64> {
        metrics::counter(&metrics::scrape(&self.metrics).ok()?, name)
    }
}

impl Broker for Kfdb {
    fn bootstrap(&self) -> &str {
        self.process.bootstrap()
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Drop for Kfdb {
    fn drop(&mut self) {
        if self.killed_on_purpose {
            return;
        }
        if let Some(dir) = std::env::var_os("KFDB_BENCH_METRICS") {
            let path = PathBuf::from(dir).join(format!("kfdb-metrics-{}.txt", self.process.pid()));
            match metrics::scrape(&self.metrics) {
                Ok(t) => {
                    let _ = std::fs::write(&path, t);
                    println!("  kfdb metrics saved to {}", path.display());
                }
                Err(e) => println!("  ! metrics: {e}"),
            }
        }
        let exit = self.process.stop();
        let (killed, clean, status) = (exit.killed, exit.is_clean(), format!("{:?}", exit.status));
        if killed {
            println!("  ! kfdb did not exit {STOP_TIMEOUT:?} after SIGTERM: killed it");
        }
        let problems = self.process.problems();
        if !problems.is_empty() || !clean {
            println!(
                "  ! kfdb exit {status}; {} WARN/ERROR log lines",
                problems.len()
            );
            for l in problems.iter().take(10) {
                println!("  ! {l}");
            }
        }
    }
}
