//! # kfdb-harness: a `kfdb serve` process to test or measure against
//!
//! [`Options::start`] runs the kfdb binary (`kfdb serve`) on a free `127.0.0.1` port with a fresh
//! data directory in a temporary directory, its stdout and stderr going to a log file there, and
//! returns once the port accepts connections (if another process takes the port in the meantime,
//! kfdb is started again on fresh ports). Optionally kfdb's metrics listener gets a free port too.
//! The returned [`Kfdb`] owns the process: dropping it (also while a panic unwinds) stops kfdb with
//! SIGTERM, SIGKILL if it does not exit in time, and then removes the directory. [`Kfdb::stop`]
//! does the same early and tells how kfdb exited; [`Kfdb::problems`] lists its WARN/ERROR lines.
//!
//! Shared by the standalone packages `bench/` (kfdb-bench) and `compat-tests/rdkafka/`. Only std
//! and tempfile: no Kafka client, no async runtime, nothing from kfdb's own crates. What to print
//! about a run is the caller's business; this crate prints only the log tail of a kfdb whose owner
//! panics, and only when asked to ([`Options::log_tail_on_panic`]).

mod log;
mod process;

use std::net::TcpListener;
use std::path::PathBuf;

pub use process::{Exit, Kfdb, Options};

/// The kfdb binary: `KFDB_BIN` if set, else `default` (each caller knows where its build puts it).
pub fn kfdb_bin(default: impl Into<PathBuf>) -> PathBuf {
    std::env::var_os("KFDB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

/// A loopback port that was free a moment ago (the OS picks it; another process could take it
/// before kfdb binds it, which then fails kfdb's start loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
