//! Fuzz target `request`: one Kafka request frame (header and body, as a connection hands it on
//! after the size prefix) through kfdb's whole request path — header, decode, handler, encode —
//! on one broker over an embedded store (no fsync) in a temporary directory. Seeds: real
//! clients' frames (`fuzz/corpus/request`, captured by `fuzz/capture.py`).
#![no_main]

#[path = "../../crates/kfdb/src/alloc.rs"]
#[allow(dead_code)]
mod alloc;

#[global_allocator]
static ALLOC: alloc::GuardedAlloc = alloc::GuardedAlloc;

use kfdb_broker::fuzzing::Harness;
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;
use std::time::Duration;

/// Inputs one broker serves before it is replaced by a fresh one: the fuzzer creates topics and
/// writes records, and a store that only grows makes every input slower (from ~4,700 to a few
/// hundred executions per second over a long run).
const INPUTS_PER_BROKER: usize = 20_000;

struct Fresh {
    harness: Harness,
    served: usize,
    // Dropped after the harness (field order), so the store closes before its directory goes.
    _dir: tempfile::TempDir,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_path_buf();
    let harness = Harness::new(
        async move {
            let options = EmbeddedOptions {
                fsync: false,
                ..EmbeddedOptions::default()
            };
            let db = Database::open_embedded(&path, options).expect("the embedded store");
            Log::open(db, LogConfig::default()).await.expect("the log")
        },
        Duration::from_millis(50),
    )
    .expect("a broker");
    Fresh {
        harness,
        served: 0,
        _dir: dir,
    }
}

static HARNESS: Mutex<Option<Fresh>> = Mutex::new(None);

fuzz_target!(|frame: &[u8]| {
    let mut slot = HARNESS.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_none_or(|f| f.served >= INPUTS_PER_BROKER) {
        *slot = None;
        *slot = Some(fresh());
    }
    let f = slot.as_mut().expect("a harness");
    f.served += 1;
    let _ = f.harness.request(frame);
});
