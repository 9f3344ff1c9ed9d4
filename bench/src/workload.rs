//! What every scenario shares about the work itself: the record size, the payload, the process's
//! monotonic clock (send times travel in payloads), and where data directories go.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// Every record's payload size (no key, no headers).
pub const RECORD_BYTES: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// One record's payload: fixed, not all zeros (no compression is on, but no codec could cheat).
pub fn payload() -> Vec<u8> {
    (0..RECORD_BYTES).map(|i| (i * 31 + 7) as u8).collect()
}

/// The process's time zero (set in `main`, before any client exists).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since `epoch()`: the send time written into payloads.
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Where kfdb's data directories and the baselines' files go: `KFDB_BENCH_DIR`, default the
/// system temp dir (put it on the disk you mean to measure).
pub fn bench_dir() -> PathBuf {
    std::env::var_os("KFDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}
