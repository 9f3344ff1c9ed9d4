//! What every scenario shares about the work itself: the record size, the payload, the process's
//! monotonic clock (send times travel in payloads), and where data directories go.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// Every record's payload size (no key, no headers).
pub const RECORD_BYTES: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// One record's payload: fixed, not all zeros (no compression is on, but no codec could cheat).
/// For the latency and cluster scenarios, where the send time and a sequence number are written
/// into it; throughput runs use [`RecordPool`].
pub fn payload() -> Vec<u8> {
    (0..RECORD_BYTES).map(|i| (i * 31 + 7) as u8).collect()
}

/// `len` bytes no codec can shrink (xorshift64*), the same in every run.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The records of a throughput run: 1 KiB windows of one incompressible pool, record k the k-th
/// window. No two records within the pool's length (4 MiB, more than any batch) are alike, so a
/// broker's storage gets what producer-compressed data would give it. With one fixed record
/// kfdb's store (fjall lz4-compresses record data) wrote a fraction of the bytes Kafka wrote.
pub struct RecordPool(Vec<u8>);

impl RecordPool {
    const RECORDS: usize = 4096;

    pub fn new() -> Self {
        RecordPool(incompressible(Self::RECORDS * RECORD_BYTES))
    }

    /// Record `k`'s payload.
    pub fn record(&self, k: u64) -> &[u8] {
        let at = (k % Self::RECORDS as u64) as usize * RECORD_BYTES;
        &self.0[at..at + RECORD_BYTES]
    }
}

impl Default for RecordPool {
    fn default() -> Self {
        Self::new()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_records_differ_and_do_not_repeat_a_pattern() {
        let pool = RecordPool::new();
        let a = pool.record(0);
        assert_eq!(a.len(), RECORD_BYTES);
        assert_ne!(a, pool.record(1));
        assert_eq!(a, pool.record(RecordPool::RECORDS as u64));
        // No byte value dominates: roughly uniform, as incompressible data is.
        let mut counts = [0usize; 256];
        for k in 0..64 {
            for &b in pool.record(k) {
                counts[b as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c > 128 && c < 400), "{counts:?}");
    }
}
