#!/usr/bin/env bash
# Real-client compatibility suite of kfdb: runs unmodified Kafka clients (kcat, confluent-kafka,
# kafka-python, aiokafka, kafkajs, the Java client and Kafka's tools, Connect and Streams,
# franz-go, Sarama) against kfdb processes on loopback, or against Apache Kafka 4.4 itself with
# KFDB_COMPAT_TARGET=kafka.
#
#   compat-tests/run.sh [pytest args...]      e.g. compat-tests/run.sh -k kcat
#
# Idempotent: creates compat-tests/.venv and installs requirements.txt into it (again only when
# requirements.txt changed), installs kafkajs in compat-tests/js, checks kcat, builds the JVM
# module (Maven: clients, tools, Kafka, Connect, Streams from Maven Central) and the Go tests,
# builds kfdb (unless KFDB_BIN is set or the target is Apache Kafka) and runs pytest. Exit
# code = pytest's.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "compat-tests: python venv (compat-tests/.venv)"
VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt"
  echo "$WANT" >"$STAMP"
fi

step "compat-tests: kafkajs (compat-tests/js)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are required (kafkajs tests)" >&2
  exit 1
fi
if [ ! -f "$HERE/js/node_modules/kafkajs/package.json" ] \
  || [ "$HERE/js/package-lock.json" -nt "$HERE/js/node_modules/.package-lock.json" ]; then
  (cd "$HERE/js" && npm ci --no-audit --no-fund --loglevel=error)
fi

step "compat-tests: kcat"
if ! command -v kcat >/dev/null; then
  echo "kcat is required: apt-get install -y kcat (Debian 12: kcat 1.7.1)" >&2
  exit 1
fi
kcat -V 2>&1 | sed -n '1p;4p'

step "compat-tests: JVM module (compat-tests/java, Maven)"
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is required (JVM tests): apt-get install -y openjdk-17-jdk-headless maven" >&2
    exit 1
  fi
done
java -version 2>&1 | head -1
# The first run downloads Kafka 4.4's jars (and kafka-clients 4.0.0) into ~/.m2.
mvn -q -B -f "$HERE/java/pom.xml" package
mvn -q -B -f "$HERE/java/clients-4.0/pom.xml" package

step "compat-tests: Go module (compat-tests/go: franz-go, Sarama)"
if ! command -v go >/dev/null; then
  echo "go (1.26) is required (Go client tests)" >&2
  exit 1
fi
go version
(cd "$HERE/go" && go mod download && mkdir -p target && go test -c -o target/compat.test .)

if [ "${KFDB_COMPAT_TARGET:-kfdb}" = kafka ]; then
  step "compat-tests: target Apache Kafka 4.4 (KFDB_COMPAT_TARGET=kafka), kfdb not built"
elif [ -z "${KFDB_BIN:-}" ]; then
  FEATURES=""
  # On FoundationDB (conftest.py clears the database before each module's kfdb starts).
  [ -n "${KFDB_FDB_CLUSTER_FILE:-}" ] && FEATURES="fdb"
  if [ -z "${KFDB_FAULTS_BIN:-}" ]; then
    # test_faults.py: a kfdb whose store injects faults (cargo feature `faults`), kept aside.
    step "compat-tests: cargo build -p kfdb --features faults${FEATURES:+,$FEATURES} (target/debug/kfdb-faults)"
    nice -n 10 cargo build -p kfdb --features "faults${FEATURES:+,$FEATURES}"
    cp "$ROOT/target/debug/kfdb" "$ROOT/target/debug/kfdb-faults"
    export KFDB_FAULTS_BIN="$ROOT/target/debug/kfdb-faults"
  fi
  step "compat-tests: cargo build -p kfdb${FEATURES:+ --features $FEATURES}"
  nice -n 10 cargo build -p kfdb ${FEATURES:+--features $FEATURES}
  export KFDB_BIN="$ROOT/target/debug/kfdb"
fi
[ -n "${KFDB_BIN:-}" ] && echo "kfdb binary: $KFDB_BIN"
[ -n "${KFDB_FAULTS_BIN:-}" ] && echo "kfdb with store faults: $KFDB_FAULTS_BIN"

step "compat-tests: pytest"
set +e
"$VENV/bin/python" -m pytest "$HERE" -q --timeout="${COMPAT_TEST_TIMEOUT:-120}" "$@"
rc=$?
set -e
exit $rc
