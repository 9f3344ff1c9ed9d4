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
use std::sync::LazyLock;
use std::time::Duration;

static HARNESS: LazyLock<(Harness, tempfile::TempDir)> = LazyLock::new(|| {
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
    (harness, dir)
});

fuzz_target!(|frame: &[u8]| {
    let _ = HARNESS.0.request(frame);
});
