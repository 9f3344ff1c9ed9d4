//! Helper process for the crash test (tests/crash.rs): commits numbered transactions on the embedded
//! store in a directory, forever, from several concurrent writers, and prints each number on stdout
//! only after its `commit()` has returned. The test SIGKILLs it at random moments and checks that
//! every printed number survived and that no transaction was partially applied.
//!
//! Transaction `n` writes `(crash, n, a|b|c) = n`, `(crash, n, d) = d_value(n)` (1,500 bytes:
//! kept in the value log) and `(crash-junk) = junk_value(n)` (6,000 bytes, overwritten by every
//! transaction, so the log's segments fill with dead values that its collector, run here every
//! 20 ms on 256 KiB segments, moves and deletes while the kills land), and adds 1 to
//! `(crash-count)`.

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::tuple::{Subspace, pack, unpack};
use kfdb_kv::{Database, KvError, MutationType, RangeOption};
use std::io::Write;
use std::time::Duration;

/// The logged value of transaction `n` (the test computes the same).
fn d_value(n: u64) -> Vec<u8> {
    (0..1_500u64)
        .map(|i| (n.wrapping_mul(31) + i) as u8)
        .collect()
}

/// The value transaction `n` overwrites `(crash-junk)` with: `n`, repeated.
fn junk_value(n: u64) -> Vec<u8> {
    n.to_be_bytes().repeat(750)
}

/// The store's options in the child (and in the test's checks): small segments, a fast collector.
fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        value_log_segment_bytes: 256 * 1024,
        // Groups of a few transactions write their whole blocks with O_DIRECT, as large ones do.
        value_log_direct_min: 8 * 1024,
        value_log_collect_every: Duration::from_millis(20),
        value_log_grace: Duration::from_millis(100),
        value_log_rewalk: Duration::from_millis(100),
        ..EmbeddedOptions::default()
    }
}

const WRITERS: u64 = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: kfdb-kv-crash-child DIR")?;
    let db = Database::open_embedded(&dir, options())?;
    let space = Subspace::from_bytes(pack(&"crash"));
    // Continue after the highest number already stored.
    let tx = db.create_transaction()?;
    let (b, e) = space.range();
    let last = tx
        .get_range(&RangeOption::new(b, e).reverse(true).limit(1), true)
        .await?;
    let start: u64 = match last.kvs.first() {
        Some(kv) => space.unpack::<(u64, String)>(&kv.key)?.0 + 1,
        None => 0,
    };
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        let space = space.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = start + w;
            loop {
                db.run(|tx, _| {
                    let space = space.clone();
                    async move {
                        for part in ["a", "b", "c"] {
                            tx.set(&space.pack(&(n, part)), &n.to_be_bytes());
                        }
                        tx.set(&space.pack(&(n, "d")), &d_value(n));
                        tx.set(&pack(&"crash-junk"), &junk_value(n));
                        tx.atomic_op(
                            &pack(&"crash-count"),
                            &1u64.to_le_bytes(),
                            MutationType::Add,
                        );
                        Ok::<_, KvError>(())
                    }
                })
                .await?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{n}")
                    .and_then(|_| out.flush())
                    .map_err(|e| KvError::new(KvError::IO_ERROR, e.to_string()))?;
                n += WRITERS;
            }
            #[allow(unreachable_code)]
            Ok::<(), KvError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Keep `unpack` in use for readers of this file: it is how the test decodes keys.
    let _ = unpack::<u64>;
    Ok(())
}
