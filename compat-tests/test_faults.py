"""kfdb on a store that fails (crates/kfdb-kv/src/faults.rs, a kfdb built with the `faults` feature,
KFDB_FAULTS_BIN; compat-tests/run.sh builds it): the crash verifier's workload (plain acks=all,
idempotent and transactional producers, a consumer group committing) runs while the store

- answers commit_unknown_result after committing and without committing, not_committed,
  transaction_too_old, io_error, and stalls, on a seeded schedule: nothing acknowledged is lost,
  the idempotent producer has no duplicate, transactions stay all-or-nothing;
- is unavailable for 8 s: clients are answered retriable errors (never "unknown topic"),
  /readyz says not ready, nothing is acknowledged meanwhile, and kfdb serves again when the store
  returns, without a restart.

kfdb only: these are faults of kfdb's own store (Apache Kafka has no such seam); what is asserted
is what Kafka promises its clients. On FoundationDB too when KFDB_FDB_CLUSTER_FILE is given (the
faults wrap the FoundationDB backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import conftest

pytestmark = [
    pytest.mark.skipif(
        conftest.on_kafka() or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
        reason="injects faults into the store of the kfdb it starts itself",
    ),
    pytest.mark.skipif(
        not os.environ.get("KFDB_FAULTS_BIN"),
        reason="needs KFDB_FAULTS_BIN, a kfdb built with --features faults (compat-tests/run.sh builds it)",
    ),
]

VERIFIER = Path(__file__).resolve().parent / "crash_verifier.py"

# Codes a Kafka client retries on its own (the store is down or slow).
RETRIABLE = {"7", "56", "14", "15", "16"}  # REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR, COORDINATOR_*


def verify(faults: str, seconds: float, *serve_args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(VERIFIER), "--kfdb", os.environ["KFDB_FAULTS_BIN"], "--cycles", "0",
         "--run-seconds", str(seconds), "--seed", "20261204", "--faults", faults, "--",
         *conftest.fresh_store_args(), *serve_args],
        capture_output=True, text=True, timeout=600,
    )
    line = [l for l in r.stdout.splitlines() if l.startswith("verifier:")]
    found = [l for l in r.stdout.splitlines() if l.startswith("verifier-json: ")]
    assert r.returncode == 0 and line and found, f"{r.stdout}\n{r.stderr[-3000:]}"
    print(line[-1])
    return json.loads(found[-1].split(" ", 1)[1])


def test_random_store_faults_lose_and_duplicate_nothing():
    result = verify(
        "seed=11,commit_unknown_landed=0.02,commit_unknown_lost=0.02,not_committed=0.02,"
        "too_old=0.01,io_error=0.005,stall=0.002,stall_ms=1500",
        20,
    )
    faults = result["faults"]
    # The faults happened (else this test proves nothing), and the workload still made progress.
    for kind in ("commit_unknown_landed", "commit_unknown_lost", "not_committed", "too_old", "io_error"):
        assert faults.get(kind, 0) > 0, faults
    assert result["plain"]["acked"] > 1000 and result["idem"]["acked"] > 1000, result
    assert result["txn"]["committed"] > 10, result["txn"]
    assert result["plain"]["lost"] == 0 and result["idem"]["lost"] == 0 and result["txn"]["lost"] == 0
    assert result["idem"]["dup"] == 0 and result["idem"]["reordered"] == 0


class Scraper(threading.Thread):
    """Polls kfdb's /readyz and /metrics every 0.25 s: when it was (not) ready, and the Kafka error
    codes it answered (kfdb_errors_total) at the end."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.started = time.monotonic()
        self.ready: list[tuple[float, int]] = []
        self.errors: dict[str, float] = {}
        self.stop = threading.Event()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = self.get("/readyz")
                self.ready.append((time.monotonic() - self.started, status))
                _, text = self.get("/metrics")
                errors = {}
                for l in text.splitlines():
                    if l.startswith('kfdb_errors_total{code="'):
                        code = l.split('"')[1]
                        errors[code] = float(l.rsplit(" ", 1)[1])
                if errors:
                    self.errors = errors
            except (OSError, ValueError):
                pass  # not listening yet, or stopped
            time.sleep(0.25)


def test_store_outage_gets_retriable_errors_and_recovers_without_restart():
    port = conftest.free_port()
    scraper = Scraper(port)
    scraper.start()
    try:
        result = verify("outage=8+8", 28, "--metrics-listen", f"127.0.0.1:{port}")
    finally:
        scraper.stop.set()
        scraper.join(10)
    assert result["faults"].get("unavailable", 0) > 0, result["faults"]
    for w in ("plain", "idem"):
        seconds = result[w]["ack_seconds"]
        # Acknowledged before, nothing acknowledged inside the outage, acknowledged again after it.
        assert any(s < 7 for s in seconds), (w, seconds)
        assert not any(10 <= s <= 14 for s in seconds), (w, seconds)
        assert any(s >= 18 for s in seconds), (w, seconds)
    assert result["plain"]["lost"] == 0 and result["idem"]["lost"] == 0 and result["txn"]["lost"] == 0
    assert result["idem"]["dup"] == 0
    # Not ready while the store is down, ready again after (the same process).
    assert any(9 <= t <= 15 and s == 503 for t, s in scraper.ready), scraper.ready
    assert any(t >= 19 and s == 200 for t, s in scraper.ready), scraper.ready
    # Clients were told to retry; never that their topic or partition is unknown.
    answered = scraper.errors
    assert sum(n for c, n in answered.items() if c in RETRIABLE) > 0, answered
    assert answered.get("3", 0) == 0 and answered.get("100", 0) == 0, answered
