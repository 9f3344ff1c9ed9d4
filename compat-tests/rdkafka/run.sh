#!/usr/bin/env bash
# rdkafka real-client test of kfdb (compat-tests/rdkafka/tests/roundtrip.rs).
#
#   compat-tests/rdkafka/run.sh [cargo test args...]      e.g. compat-tests/rdkafka/run.sh -- --nocapture
#
# Builds kfdb (`cargo build -p kfdb`, unless KFDB_BIN is set), then builds this standalone package
# (librdkafka from the sources bundled in rdkafka-sys; needs gcc, make, perl, python3 and
# pkg-config, all on the machine image) into compat-tests/rdkafka/target and runs its tests
# against that binary. Exit code = cargo test's.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

if [ -z "${KFDB_BIN:-}" ]; then
  printf '\n==> rdkafka: cargo build -p kfdb\n'
  nice -n 10 cargo build -p kfdb
  export KFDB_BIN="$ROOT/target/debug/kfdb"
fi
echo "kfdb binary: $KFDB_BIN"

printf '\n==> rdkafka: cargo test (compat-tests/rdkafka)\n'
CARGO_TARGET_DIR="$HERE/target" nice -n 10 \
  cargo test --locked --manifest-path "$HERE/Cargo.toml" "$@"
