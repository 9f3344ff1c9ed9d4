#!/usr/bin/env bash
# The one command that runs every check and test of kfdb (README: "Run all tests").
#
#   ./scripts/test.sh
#
# Environment:
#   KFDB_FDB_CLUSTER_FILE=/path/fdb.cluster  also run the FoundationDB variants of the kfdb-kv
#                                            conformance suite (needs libfdb_c and a running cluster)
#   KFDB_SKIP_FDB_CHECK=1                    skip `clippy --features fdb` (it needs libclang-dev)
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

step "cargo test (unit, conformance, crash, integration)"
cargo test --workspace

if [ -n "${KFDB_FDB_CLUSTER_FILE:-}" ]; then
  step "kfdb-kv conformance suite on FoundationDB ($KFDB_FDB_CLUSTER_FILE)"
  cargo test -p kfdb-kv --features fdb --test conformance
fi
