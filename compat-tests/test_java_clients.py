"""The Java client (org.apache.kafka:kafka-clients 4.4.0 and 4.0.0) against kfdb or Apache Kafka.

Each test runs one scenario of ``java/src/main/java/kfdbcompat/clients`` in its own JVM
(``kfdbcompat.clients.Main <scenario> <bootstrap>``): the scenario makes the checks a user would
(acknowledged offsets dense, bytes/keys/headers/timestamps back, groups balanced and consumed
exactly once, transactions visible only when committed, admin results) and exits non-zero on the
first that fails; its output is in the failure report. The scenarios' javadoc says what each one
checks. With kafka-clients 4.0.0 the same compiled scenarios run with the old jar on the classpath.
"""

from __future__ import annotations

import pytest

import jvmhelpers

SCENARIO_TIMEOUT_S = 240

# JVM/Go start-ups on 2 busy cores (the suite default is 120 s per test).
pytestmark = pytest.mark.timeout(300)

KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500", "--num-partitions", "1"]

SCENARIOS = [
    "producer_defaults_roundtrip",
    "producer_compressions",
    "producer_large_records",
    "consumer_positions",
    "group_classic_range",
    "group_classic_cooperative_sticky",
    "group_consumer_protocol",
    "txn_commit_abort_read_committed",
    "txn_send_offsets",
    "txn_fencing",
    "admin_topics_configs_cluster",
    "admin_offsets_delete_records",
    "admin_groups",
    "admin_transactions_producers",
]

# Scenarios also run with the oldest 4.0 client: one of each area.
OLD_CLIENT_SCENARIOS = [
    "producer_defaults_roundtrip",
    "producer_compressions",
    "group_classic_cooperative_sticky",
    "group_consumer_protocol",
    "txn_send_offsets",
    "txn_fencing",
    "admin_topics_configs_cluster",
]


def run_scenario(name: str, bootstrap: str, cp: str | None = None) -> str:
    proc = jvmhelpers.run_java("kfdbcompat.clients.Main", name, bootstrap, timeout=SCENARIO_TIMEOUT_S, cp=cp)
    out = proc.stdout
    if proc.returncode != 0 or not out.rstrip().endswith(f"PASS {name}"):
        pytest.fail(f"Java scenario {name} failed (exit {proc.returncode}):\n{out[-12000:]}", pytrace=False)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_java_client(kfdb, scenario):
    out = run_scenario(scenario, kfdb.bootstrap)
    assert "kafka-clients 4.4.0" in out


@pytest.mark.parametrize("scenario", OLD_CLIENT_SCENARIOS)
def test_java_client_4_0(kfdb, scenario):
    out = run_scenario(scenario, kfdb.bootstrap, cp=jvmhelpers.old_clients_classpath())
    assert f"kafka-clients {jvmhelpers.OLD_CLIENTS_VERSION}" in out
