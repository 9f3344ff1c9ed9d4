"""Go clients against kfdb or Apache Kafka: franz-go (kgo, kadm) and Sarama (IBM/sarama).

The tests are Go tests in ``go/`` (``franz_test.go``, ``sarama_test.go``), compiled once into
``go/target/compat.test`` and run one by one here against the module's broker (KFDB_BOOTSTRAP);
each Go test's own comment says what it checks. The Go output is in the failure report.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import on_kafka

GO_DIR = Path(__file__).resolve().parent / "go"
TEST_BIN = GO_DIR / "target" / "compat.test"
GO_TIMEOUT_S = 300

# JVM/Go start-ups on 2 busy cores (the suite default is 120 s per test).
pytestmark = pytest.mark.timeout(330)

KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500"]

TESTS = [
    "TestFranzRoundtripCompressions",
    "TestFranzGroupCooperativeSticky",
    "TestFranzGroupKIP848",
    "TestFranzGroupTransactSession",
    "TestKadmAdministration",
    "TestSaramaRoundtripCompressions",
    "TestSaramaConsumerGroup",
    "TestFranzCompactedTopicRefusesKeylessRecords",
    "TestKadmClientQuotas",
    "TestControllerMutationQuota",
]

# What kfdb does not do yet (docs/compatibility.md); strict: they must fail on kfdb and pass on Kafka.
KFDB_XFAIL: dict[str, str] = {}


def _newest_source() -> float:
    return max(p.stat().st_mtime for p in [*GO_DIR.glob("*.go"), GO_DIR / "go.mod", GO_DIR / "go.sum"])


@pytest.fixture(scope="module")
def go_tests() -> Path:
    if not TEST_BIN.exists() or TEST_BIN.stat().st_mtime < _newest_source():
        TEST_BIN.parent.mkdir(exist_ok=True)
        proc = subprocess.run(["go", "test", "-c", "-o", str(TEST_BIN), "."], cwd=GO_DIR,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            pytest.fail(f"go test -c failed:\n{proc.stdout}", pytrace=False)
    return TEST_BIN


@pytest.mark.parametrize("name", TESTS)
def test_go_client(kfdb, go_tests, name, request):
    if name in KFDB_XFAIL and not on_kafka():
        request.applymarker(pytest.mark.xfail(reason=KFDB_XFAIL[name], strict=True))
    env = dict(os.environ, KFDB_BOOTSTRAP=kfdb.bootstrap)
    proc = subprocess.run([str(go_tests), "-test.run", f"^{name}$", "-test.v", "-test.count=1",
                           f"-test.timeout={GO_TIMEOUT_S - 10}s"], cwd=GO_DIR, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=GO_TIMEOUT_S)
    out = proc.stdout
    if proc.returncode != 0 or f"--- PASS: {name}" not in out:
        pytest.fail(f"go test {name} failed (exit {proc.returncode}):\n{out[-12000:]}", pytrace=False)
    assert "--- SKIP" not in out
