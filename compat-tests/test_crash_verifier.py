"""The crash verifier's short run (compat-tests/crash_verifier.py; the long run, 100+ kills, is
in docs/reliability.md): plain, idempotent and transactional producers and a consumer group
while kfdb is SIGKILLed 8 times at random moments; nothing acknowledged lost, no duplicate or
reordering from the idempotent producer, transactions all-or-nothing, no aborted record read
committed, no committed offset moved backwards. On FoundationDB too (KFDB_FDB_CLUSTER_FILE: only
the kfdb process dies), and there also with three kfdb processes, one of them killed per cycle.
kfdb only: Apache Kafka with its defaults does not fsync before acknowledging, so a kill -9 may
lose acknowledged records by design."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest

pytestmark = pytest.mark.skipif(
    conftest.on_kafka() or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
    reason="kills the kfdb it starts itself",
)


def test_nothing_acknowledged_is_lost_across_kill_9():
    script = Path(__file__).resolve().parent / "crash_verifier.py"
    r = subprocess.run(
        [sys.executable, str(script), "--kfdb", str(conftest.kfdb_binary()), "--cycles", "8", "--max-up", "2",
         "--seed", "20261204", "--", *conftest.fresh_store_args()],
        capture_output=True, text=True, timeout=600,
    )
    line = [l for l in r.stdout.splitlines() if l.startswith("verifier:")]
    assert r.returncode == 0 and line, f"{r.stdout}\n{r.stderr[-3000:]}"
    print(line[-1])
    assert " lost=0 " in line[-1] and " idem=0 " in line[-1]


@pytest.mark.skipif(not conftest.fdb_cluster_file(), reason="three kfdb processes share one FoundationDB")
def test_nothing_acknowledged_is_lost_when_one_of_three_brokers_is_killed():
    script = Path(__file__).resolve().parent / "crash_verifier.py"
    r = subprocess.run(
        [sys.executable, str(script), "--kfdb", str(conftest.kfdb_binary()), "--brokers", "3", "--cycles", "8",
         "--max-up", "2", "--seed", "20261204", "--", *conftest.fresh_store_args()],
        capture_output=True, text=True, timeout=600,
    )
    line = [l for l in r.stdout.splitlines() if l.startswith("verifier:")]
    assert r.returncode == 0 and line, f"{r.stdout}\n{r.stderr[-3000:]}"
    print(line[-1])
    assert " lost=0 " in line[-1] and " idem=0 " in line[-1]
