#!/usr/bin/env bash
# The one command that runs every check and test of kfdb (README: "Run all tests").
#
#   ./scripts/test.sh
#
# Environment:
#   KFDB_FDB_CLUSTER_FILE=/path/fdb.cluster  also run the FoundationDB variants of the kfdb-kv
#                                            conformance suite, and run the real-client suite on
#                                            kfdb over FoundationDB instead of the embedded store
#                                            (needs libfdb_c, fdbcli and a running cluster whose
#                                            database the suite may clear)
#   KFDB_FDB_LIB_DIR=/path/lib               where libfdb_c is, if not installed system-wide (also
#                                            put it on LD_LIBRARY_PATH)
#   KFDB_SKIP_FDB_CHECK=1                    skip `clippy --features fdb` (it needs libclang-dev)
#   KFDB_SKIP_COMPAT=1                       skip the real-client suite compat-tests/run.sh (it needs
#                                            kcat, python3 and node/npm; see compat-tests/README.md)
#   KFDB_SKIP_FUZZ=1                         skip the 60 s libFuzzer run (fuzz/; needs nightly)
#   KFDB_SKIP_RDKAFKA=1                      skip the rdkafka (Rust, librdkafka) real-client test
#                                            compat-tests/rdkafka/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (default features)"
cargo clippy --workspace --all-targets -- -D warnings

if [ "${KFDB_SKIP_FDB_CHECK:-0}" != 1 ]; then
  step "cargo clippy -p kfdb-kv --features fdb (compile check of the FoundationDB backend)"
  cargo clippy -p kfdb-kv --features fdb --all-targets -- -D warnings
fi

step "cargo clippy -p kfdb --features faults (the fault-injecting store of compat-tests/test_faults.py)"
cargo clippy -p kfdb-kv -p kfdb --features faults --all-targets -- -D warnings

step "cargo test (unit, conformance, crash, integration)"
cargo test --workspace
cargo test -p kfdb-kv --features faults --lib faults

if [ "${KFDB_SKIP_FUZZ:-0}" != 1 ]; then
  # The libFuzzer target over the request path, 60 s from the captured seeds (the long run is in
  # docs/reliability.md). cargo-fuzz needs a nightly toolchain; without one only the stable
  # replay of the corpus above (crates/kfdb/tests/fuzz_corpus.rs) runs.
  if rustup run nightly rustc --version >/dev/null 2>&1; then
    step "fuzz: cargo +nightly fuzz run request, 60 s (fuzz/)"
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
    work="$(mktemp -d)"
    mkdir -p "$work/corpus" "$work/artifacts"
    if ! (cd fuzz && nice -n 10 cargo +nightly fuzz run request -s none -O "$work/corpus" corpus/request -- \
      -max_total_time=60 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/") >"$work/log" 2>&1; then
      tail -60 "$work/log" >&2
      echo "fuzz: the run failed or found something; the input is in $work/artifacts" >&2
      exit 1
    fi
    grep -E '^(Done|stat::)' "$work/log"
    rm -rf "$work"
  else
    step "fuzz: skipped (no nightly toolchain for cargo-fuzz; the corpus replay ran above)"
  fi
fi

if [ -n "${KFDB_FDB_CLUSTER_FILE:-}" ]; then
  step "kfdb-kv conformance suite on FoundationDB ($KFDB_FDB_CLUSTER_FILE)"
  cargo test -p kfdb-kv --features fdb --test conformance
fi

if [ "${KFDB_SKIP_COMPAT:-0}" != 1 ]; then
  step "real-client compatibility suite (compat-tests/run.sh)"
  ./compat-tests/run.sh
fi

if [ "${KFDB_SKIP_RDKAFKA:-0}" != 1 ]; then
  step "rdkafka real-client test (compat-tests/rdkafka/run.sh)"
  ./compat-tests/rdkafka/run.sh
fi
