"""Kafka's own command-line tools (org.apache.kafka:kafka-tools 4.4.0) against kfdb or Apache Kafka.

What operators type every day, run from the jars (the class behind each ``kafka-*.sh`` script):
kafka-topics, kafka-console-producer/-consumer, kafka-consumer-groups, kafka-configs,
kafka-get-offsets, kafka-delete-records, kafka-transactions and the producer/consumer perf tests.
Their output is parsed and checked, not just their exit code.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from confluent_kafka import Producer

import jvmhelpers
from ckhelpers import create_topic, produce, wait_for

KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500"]

TOOL_TIMEOUT_S = 120

# JVM/Go start-ups on 2 busy cores (the suite default is 120 s per test).
pytestmark = pytest.mark.timeout(400)

TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
}


def tool(name: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run one tool; stdout and stderr apart. Fails the test on a non-zero exit when ``check``."""
    cmd = jvmhelpers.java(TOOLS[name], *args, heap="256m")
    proc = subprocess.run(
        cmd,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env=jvmhelpers.jvm_env(),
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{name} {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def dashed(name: str) -> str:
    """Topic/group names without '_' (kafka-topics warns about names mixing '.' and '_')."""
    return name.replace("_", "-")


def table(text: str) -> list[dict]:
    """Rows of the whitespace-aligned tables kafka-consumer-groups prints (header line first)."""
    lines = [line for line in text.splitlines() if line.strip()]
    rows, header = [], None
    for line in lines:
        cols = line.split()
        if cols[0] == "GROUP" or cols[0] == "TransactionalId" or cols[0] == "ProducerId":
            header = cols
            continue
        if header and len(cols) == len(header):
            rows.append(dict(zip(header, cols)))
    return rows


def test_kafka_topics(bootstrap, topic_name):
    t = dashed(topic_name())
    out = tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", t, "--partitions", "3",
               "--replication-factor", "1", "--config", "retention.ms=3600000").stdout
    assert out.strip() == f"Created topic {t}."
    again = tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", t, "--partitions", "3",
                 check=False)
    assert again.returncode != 0
    assert f"Topic '{t}' already exists" in again.stdout + again.stderr

    listed = tool("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split()
    assert t in listed

    desc = tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", t).stdout
    head = desc.splitlines()[0]
    assert re.match(rf"Topic: {re.escape(t)}\tTopicId: [A-Za-z0-9_-]{{22}}\tPartitionCount: 3\tReplicationFactor: 1\t"
                    r"Configs: .*retention\.ms=3600000", head), head
    parts = re.findall(r"Partition: (\d+)\tLeader: (\d+)\tReplicas: (\d+)\tIsr: (\d+)", desc)
    assert [p[0] for p in parts] == ["0", "1", "2"], desc
    assert all(p[1] == p[2] == p[3] for p in parts), desc

    tool("kafka-topics", "--bootstrap-server", bootstrap, "--alter", "--topic", t, "--partitions", "5")
    desc = tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", t).stdout
    assert "PartitionCount: 5" in desc
    assert len(re.findall(r"Partition: \d+\tLeader", desc)) == 5

    shrink = tool("kafka-topics", "--bootstrap-server", bootstrap, "--alter", "--topic", t, "--partitions", "2",
                  check=False)
    assert shrink.returncode != 0
    assert "InvalidPartitionsException" in shrink.stdout + shrink.stderr

    tool("kafka-topics", "--bootstrap-server", bootstrap, "--delete", "--topic", t)

    wait_for(lambda: t not in tool("kafka-topics", "--bootstrap-server", bootstrap, "--list").stdout.split(),
             30, "the deleted topic to leave --list")
    missing = tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", t, check=False)
    assert missing.returncode != 0
    assert f"Topic '{t}' does not exist" in missing.stdout + missing.stderr


def test_console_producer_consumer_groups(bootstrap, topic_name):
    """Keys through the console producer, read back by the console consumer in a group, then
    kafka-consumer-groups lists, describes (offsets, lag), resets (--execute) and deletes it."""
    t = dashed(topic_name())
    group = dashed(topic_name("group"))
    create_topic(bootstrap, t, partitions=2)
    lines = [f"key{i % 4}:value-{i}" for i in range(40)]
    tool("kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", t, "--property", "parse.key=true",
         "--property", "key.separator=:", stdin="\n".join(lines) + "\n")

    out = tool("kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", t, "--from-beginning",
               "--group", group, "--max-messages", "40", "--timeout-ms", "60000", "--property", "print.key=true",
               "--property", "print.partition=true").stdout
    got = [line.split("\t") for line in out.splitlines() if line.startswith("Partition:")]
    assert len(got) == 40, out
    # every line back once; per key (one partition each) in production order
    assert sorted(f"{k}:{v}" for _, k, v in got) == sorted(lines)
    for key in {f"key{i}" for i in range(4)}:
        mine = [v for _, k, v in got if k == key]
        assert mine == [line.split(":")[1] for line in lines if line.startswith(key + ":")]
        assert len({p for p, k, _ in got if k == key}) == 1

    listed = tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--list").stdout.split()
    assert group in listed

    rows = table(tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group).stdout)
    assert sorted(r["PARTITION"] for r in rows) == ["0", "1"], rows
    assert all(r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"] and r["LAG"] == "0" for r in rows), rows
    assert sum(int(r["LOG-END-OFFSET"]) for r in rows) == 40

    dry = tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group,
               "--topic", t, "--to-earliest", "--dry-run").stdout
    assert all(r["NEW-OFFSET"] == "0" for r in table(dry)), dry
    rows = table(tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group).stdout)
    assert all(r["LAG"] == "0" for r in rows), "a dry run changed the offsets"

    reset = tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group,
                 "--topic", f"{t}:0", "--to-offset", "3", "--execute").stdout
    assert [(r["PARTITION"], r["NEW-OFFSET"]) for r in table(reset)] == [("0", "3")], reset
    rows = {r["PARTITION"]: r for r in table(
        tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group).stdout)}
    assert rows["0"]["CURRENT-OFFSET"] == "3"
    assert int(rows["0"]["LAG"]) == int(rows["0"]["LOG-END-OFFSET"]) - 3

    # the group consumes again from the reset offset: exactly the records past 3 in partition 0
    out = tool("kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", t, "--group", group,
               "--max-messages", rows["0"]["LAG"], "--timeout-ms", "60000", "--property", "print.partition=true",
               "--property", "print.offset=true").stdout
    offsets = [re.search(r"Offset:(\d+)", line).group(1) for line in out.splitlines() if "Offset:" in line]
    assert offsets == [str(o) for o in range(3, int(rows["0"]["LOG-END-OFFSET"]))], out

    deleted = tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--delete", "--group", group).stdout
    assert f"Deletion of requested consumer groups ('{group}') was successful." in deleted
    assert group not in tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--list").stdout.split()


def test_kafka_configs_for_groups(bootstrap, topic_name):
    """KIP-848 group configs (config resource GROUP): set, described with their source, checked
    against Kafka's bounds, deleted."""
    g = dashed(topic_name("group"))
    args = ("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", g)
    out = tool(*args, "--alter", "--add-config", "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000").stdout
    assert f"Completed updating config for group {g}." in out
    desc = tool(*args, "--describe").stdout
    assert f"Dynamic configs for group {g} are:" in desc, desc
    assert re.search(r"^\s+consumer\.session\.timeout\.ms=50000 sensitive=false", desc, re.M), desc
    assert re.search(r"^\s+consumer\.heartbeat\.interval\.ms=6000 sensitive=false", desc, re.M), desc
    for bad in ("consumer.session.timeout.ms=1000", "consumer.heartbeat.interval.ms=60000", "no.such.config=1"):
        r = tool(*args, "--alter", "--add-config", bad, check=False)
        assert r.returncode != 0 and "InvalidConfigurationException" in r.stdout + r.stderr, (bad, r.stdout, r.stderr)
    tool(*args, "--alter", "--delete-config", "consumer.session.timeout.ms")
    desc = tool(*args, "--describe").stdout
    assert "consumer.session.timeout.ms" not in desc and "consumer.heartbeat.interval.ms=6000" in desc, desc


def test_kafka_configs_for_the_cluster_default_broker(bootstrap, topic_name):
    """A cluster-wide dynamic broker config (`--entity-type brokers --entity-default`) becomes the
    default of every topic without its own value, reported with its source; deleting it restores
    Kafka's default."""
    t = dashed(topic_name())
    create_topic(bootstrap, t)
    default = ("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "brokers", "--entity-default")
    topic = ("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t)
    try:
        out = tool(*default, "--alter", "--add-config", "log.retention.ms=7777777").stdout
        assert "Completed updating default config for brokers in the cluster." in out, out
        desc = tool(*default, "--describe").stdout
        assert re.search(r"^\s+log\.retention\.ms=7777777 sensitive=false synonyms=\{DYNAMIC_DEFAULT_BROKER_CONFIG", desc, re.M), desc

        def topic_retention():
            every = tool(*topic, "--describe", "--all").stdout
            m = re.search(r"^\s+retention\.ms=(\S+) sensitive=false synonyms=\{(\w*)", every, re.M)
            return m and (m.group(1), m.group(2))

        wait_for(lambda: topic_retention() == ("7777777", "DYNAMIC_DEFAULT_BROKER_CONFIG"), 10, "the topic's retention.ms from the cluster default")
    finally:
        tool(*default, "--alter", "--delete-config", "log.retention.ms")
    wait_for(lambda: topic_retention()[0] == "604800000", 10, "Kafka's default back")


def test_kafka_configs(bootstrap, topic_name):
    t = dashed(topic_name())
    create_topic(bootstrap, t)
    out = tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
               "--alter", "--add-config", "retention.ms=7200000,cleanup.policy=[compact,delete]").stdout
    assert f"Completed updating config for topic {t}." in out
    desc = tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
                "--describe").stdout
    assert f"Dynamic configs for topic {t} are:" in desc
    assert re.search(r"^\s+retention\.ms=7200000 sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:retention\.ms=7200000",
                     desc, re.M), desc
    assert re.search(r"^\s+cleanup\.policy=compact,delete sensitive=false", desc, re.M), desc

    tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
         "--alter", "--delete-config", "retention.ms")
    desc = tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
                "--describe").stdout
    assert "retention.ms" not in desc
    assert "cleanup.policy=compact,delete" in desc

    bad = tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
               "--alter", "--add-config", "retention.ms=notanumber", check=False)
    assert bad.returncode != 0
    assert "InvalidConfigurationException" in bad.stdout + bad.stderr or "Invalid value" in bad.stdout + bad.stderr

    every = tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "topics", "--entity-name", t,
                 "--describe", "--all").stdout
    assert re.search(r"^\s+max\.message\.bytes=1048588 ", every, re.M), every
    assert re.search(r"^\s+cleanup\.policy=compact,delete ", every, re.M), every


def test_get_offsets_and_delete_records(bootstrap, topic_name, tmp_path):
    t = dashed(topic_name())
    create_topic(bootstrap, t, partitions=2)
    produce(bootstrap, t, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(30)])
    latest = tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", t).stdout.split()
    assert sorted(latest) == [f"{t}:0:15", f"{t}:1:15"]
    earliest = tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", t, "--time", "-2").stdout.split()
    assert sorted(earliest) == [f"{t}:0:0", f"{t}:1:0"]

    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [{"topic": t, "partition": 0, "offset": 10}]}))
    out = tool("kafka-delete-records", "--bootstrap-server", bootstrap, "--offset-json-file", str(spec)).stdout
    assert re.search(rf"partition: {re.escape(t)}-0\tlow_watermark: 10", out), out

    earliest = tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", t, "--time", "-2").stdout.split()
    assert sorted(earliest) == [f"{t}:0:10", f"{t}:1:0"]
    beyond = tmp_path / "beyond.json"
    beyond.write_text(json.dumps({"version": 1, "partitions": [{"topic": t, "partition": 1, "offset": 99}]}))
    out = tool("kafka-delete-records", "--bootstrap-server", bootstrap, "--offset-json-file", str(beyond),
               check=False)
    assert "OffsetOutOfRangeException" in out.stdout + out.stderr, out.stdout + out.stderr


def test_kafka_transactions(bootstrap, topic_name):
    """An open transaction is listed, described (partitions, state) and its producer described."""
    t = dashed(topic_name())
    txn_id = dashed(topic_name("txn"))
    create_topic(bootstrap, t)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(t, b"in-transaction", partition=0)
    assert p.flush(30) == 0
    try:
        rows = table(tool("kafka-transactions", "--bootstrap-server", bootstrap, "list").stdout)
        mine = [r for r in rows if r["TransactionalId"] == txn_id]
        assert len(mine) == 1, rows
        assert mine[0]["TransactionState"] == "Ongoing"
        producer_id = mine[0]["ProducerId"]

        desc = tool("kafka-transactions", "--bootstrap-server", bootstrap, "describe", "--transactional-id",
                    txn_id).stdout
        lines = [line.split("\t") for line in desc.splitlines() if line.strip()]
        row = dict(zip([c.strip() for c in lines[0]], [c.strip() for c in lines[1]]))
        assert row["TransactionalId"] == txn_id
        assert row["ProducerId"] == producer_id
        assert row["TransactionState"] == "Ongoing"
        assert row["TopicPartitions"] == f"{t}-0"
        assert row["TransactionTimeoutMs"] == "60000"

        prod = tool("kafka-transactions", "--bootstrap-server", bootstrap, "describe-producers", "--topic", t,
                    "--partition", "0").stdout
        lines = [line.split("\t") for line in prod.splitlines() if line.strip()]
        row = dict(zip([c.strip() for c in lines[0]], [c.strip() for c in lines[1]]))
        assert row["ProducerId"] == producer_id
        assert row["CurrentTransactionStartOffset"] == "0"
    finally:
        p.commit_transaction(30)
    rows = table(tool("kafka-transactions", "--bootstrap-server", bootstrap, "list").stdout)
    assert [r["TransactionState"] for r in rows if r["TransactionalId"] == txn_id] == ["CompleteCommit"]


def test_perf_tools(bootstrap, topic_name):
    t = dashed(topic_name())
    create_topic(bootstrap, t, partitions=2)
    out = tool("kafka-producer-perf-test", "--topic", t, "--num-records", "20000", "--record-size", "200",
               "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
               "linger.ms=5").stdout
    final = out.strip().splitlines()[-1]
    assert re.match(r"20000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency", final), out
    latest = tool("kafka-get-offsets", "--bootstrap-server", bootstrap, "--topic", t).stdout.split()
    assert sum(int(x.rsplit(":", 1)[1]) for x in latest) == 20000

    out = tool("kafka-consumer-perf-test", "--bootstrap-server", bootstrap, "--topic", t, "--num-records", "20000",
               "--timeout", "60000", "--group", dashed(topic_name("perf"))).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    at = next(i for i, line in enumerate(lines) if line.startswith("start.time"))
    header = [c.strip() for c in lines[at].split(",")]
    values = [c.strip() for c in lines[at + 1].split(",")]
    row = dict(zip(header, values))
    assert row.get("data.consumed.in.nMsg") == "20000", out
    assert abs(float(row["data.consumed.in.MB"]) - 20000 * 200 / 1024 / 1024) < 0.01, out
