//! Helper process for the crash test (tests/crash.rs): commits numbered transactions on the embedded
//! store in a directory, forever, from several concurrent writers, and prints each number on stdout
//! only after its `commit()` has returned. The test SIGKILLs it at random moments and checks that
//! every printed number survived and that no transaction was partially applied.
//!
//! Transaction `n` writes `(crash, n, a|b|c) = n` and adds 1 to `(crash-count)`.

use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_kv::tuple::{Subspace, pack, unpack};
use kfdb_kv::{Database, KvError, MutationType, RangeOption};
use std::io::Write;

const WRITERS: u64 = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: kfdb-kv-crash-child DIR")?;
    let db = Database::open_embedded(&dir, EmbeddedOptions::default())?;
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
