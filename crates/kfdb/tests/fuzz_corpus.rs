//! The fuzz corpus on stable Rust, in every `cargo test`: each seed of `fuzz/corpus/request`
//! (real clients' request frames) and a fixed set of mutations of each — bytes flipped, the
//! frame cut short, lengths and counts overwritten with extreme values, the version changed —
//! run through the request path of `kfdb_broker::fuzzing::Harness`, the harness the libFuzzer
//! target `fuzz/fuzz_targets/request.rs` uses, under the allocator the `kfdb` binary runs with
//! (`src/alloc.rs`: kafka-protocol reserves capacity from wire counts). Any panic or abort fails
//! the test; and the unmutated seeds must nearly all be answered (the harness really serves them,
//! so the mutations reach the handlers).

#[path = "../src/alloc.rs"]
#[allow(dead_code)]
mod alloc;

#[global_allocator]
static ALLOC: alloc::GuardedAlloc = alloc::GuardedAlloc;

use kfdb_broker::fuzzing::{Harness, Outcome};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig};
use std::path::PathBuf;
use std::time::Duration;

/// A small deterministic generator (xorshift64*), so every run replays the same mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng, kind: usize) -> Vec<u8> {
    let mut f = seed.to_vec();
    match kind % 5 {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(f.len());
                f[at] ^= 1 << rng.below(8);
            }
        }
        1 => f.truncate(rng.below(f.len())),
        2 => {
            let extremes: [i32; 5] = [-1, i32::MIN, i32::MAX, 0x7fff_fffe, 0x0001_0000];
            if f.len() >= 12 {
                let at = 8 + rng.below(f.len() - 11);
                let v = extremes[rng.below(extremes.len())].to_be_bytes();
                f[at..at + 4].copy_from_slice(&v);
            }
        }
        3 => {
            if f.len() >= 4 {
                let version = rng.below(20) as i16 - 1;
                f[2..4].copy_from_slice(&version.to_be_bytes());
            }
        }
        _ => {
            if !f.is_empty() {
                let from = rng.below(f.len());
                let to = (from + 1 + rng.below(64)).min(f.len());
                let chunk = f[from..to].to_vec();
                let at = rng.below(f.len());
                f.splice(at..at, chunk);
            }
        }
    }
    f
}

#[test]
fn corpus_and_mutations_never_panic() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/request");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&corpus)
        .expect("fuzz/corpus/request")
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 100, "{} seeds", seeds.len());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let harness = Harness::new(
        async move {
            let options = EmbeddedOptions {
                fsync: false,
                ..EmbeddedOptions::default()
            };
            let db = Database::open_embedded(&path, options).unwrap();
            Log::open(db, LogConfig::default()).await.unwrap()
        },
        Duration::from_millis(50),
    )
    .unwrap();

    let mut answered = 0;
    for (_, seed) in &seeds {
        if matches!(harness.request(seed), Outcome::Answered(_)) {
            answered += 1;
        }
    }
    assert!(
        answered * 10 >= seeds.len() * 9,
        "only {answered} of {} seeds were answered",
        seeds.len()
    );
    let mut rng = Rng(0x6b66_6462_2026_1204);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (_, seed) in &seeds {
        for kind in 0..10 {
            let frame = mutate(seed, &mut rng, kind);
            let outcome = harness.request(&frame);
            let label = match outcome {
                Outcome::Answered(_) => "answered".to_string(),
                Outcome::Closed(reason) => format!("closed:{reason}"),
                Outcome::TimedOut => "timed_out".to_string(),
            };
            *outcomes.entry(label).or_default() += 1;
        }
    }
    println!(
        "{} seeds, {answered} answered; mutations: {outcomes:?}",
        seeds.len()
    );
}
