"""kfdb's admin command line over the Kafka protocol (`kfdb cluster|topic|group|produce|consume
--bootstrap-server`), checked with real clients on both sides: what the CLI creates, writes and
moves, confluent-kafka (librdkafka) sees, and what confluent-kafka writes and commits, the CLI
reports. The CLI is a Kafka client: the same module passes against Apache Kafka 4.4
(``KFDB_COMPAT_TARGET=kafka``), which shows it asks nothing of kfdb that Kafka does not do.
"""

from __future__ import annotations

import json
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import conftest
from ckhelpers import base_conf, consume, produce, wait_for
from txnhelpers import txn_producer


def cli(bootstrap: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(conftest.kfdb_binary()), *args, "--bootstrap-server", bootstrap],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert r.returncode == 0, f"kfdb {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def cli_json(bootstrap: str, *args: str, stdin: str | None = None):
    return json.loads(cli(bootstrap, *args, "--format", "json", stdin=stdin).stdout)


def partitions_of(bootstrap: str, topic: str) -> int:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return len(md.topics[topic].partitions)


def test_cluster_info(bootstrap):
    info = cli_json(bootstrap, "cluster", "info")
    assert info["cluster_id"]
    port = int(bootstrap.rsplit(":", 1)[1])
    assert any(b["port"] == port for b in info["brokers"]), info
    assert "BROKER" in cli(bootstrap, "cluster", "info").stdout


def test_topics_create_list_alter_grow_delete(bootstrap, topic_name):
    prefix = topic_name("cli")
    names = [f"{prefix}-{c}" for c in "abc"]
    created = cli_json(bootstrap, "topic", "create", *names, "--partitions", "2", "--config", "retention.ms=3600000")
    assert sorted(t["name"] for t in created["created"]) == names and not created["failed"]
    again = cli(bootstrap, "topic", "create", names[0], check=False)
    assert again.returncode != 0 and "TOPIC_ALREADY_EXISTS" in again.stderr
    assert cli(bootstrap, "topic", "create", names[0], "--if-not-exists").returncode == 0

    assert cli(bootstrap, "topic", "list", "--prefix", prefix).stdout.split() == names
    assert cli(bootstrap, "topic", "list", "--prefix", prefix, "--after", names[0], "--limit", "1").stdout.split() == [
        names[1]
    ]
    listed = cli_json(bootstrap, "topic", "list", "--prefix", prefix)
    assert [(t["name"], t["partitions"]) for t in listed] == [(n, 2) for n in names]

    cli(bootstrap, "topic", "alter-config", names[0], "--set", "cleanup.policy=compact", "--delete", "retention.ms")
    described = cli_json(bootstrap, "topic", "describe", names[0])
    assert described["configs"] == {"cleanup.policy": "compact"}
    assert [p["partition"] for p in described["partitions"]] == [0, 1]

    cli(bootstrap, "topic", "add-partitions", names[1], "--total", "5")
    wait_for(lambda: partitions_of(bootstrap, names[1]) == 5, 10, "5 partitions")

    deleted = cli_json(bootstrap, "topic", "delete", "-", stdin="\n".join(names[1:]) + "\n")
    assert sorted(deleted["deleted"]) == names[1:]
    wait_for(
        lambda: cli(bootstrap, "topic", "list", "--prefix", prefix).stdout.split() == names[:1], 10, "deleted topics gone"
    )


def test_produce_and_consume(bootstrap, topic_name):
    topic = topic_name()
    cli(bootstrap, "topic", "create", topic, "--partitions", "3")
    lines = [f"key{i}:value {i}" for i in range(40)] + ["no key here"]
    out = cli_json(
        bootstrap, "produce", topic, "--key-separator", ":", "--header", "source=cli", stdin="\n".join(lines) + "\n"
    )
    assert out["records"] == 41
    # librdkafka's murmur2_random is Kafka's default partitioner for keyed records.
    got = consume(bootstrap, topic, range(3), 41)
    by_key = {m.key: m for m in got}
    for i in range(40):
        m = by_key[f"key{i}".encode()]
        assert m.value == f"value {i}".encode() and m.headers == [("source", b"cli")]
    p = Producer(base_conf(bootstrap, partitioner="murmur2_random"))
    expected_partition = {}
    for i in range(40):
        p.produce(topic, key=f"key{i}".encode(), value=b"again", on_delivery=lambda e, m: expected_partition.update({m.key(): m.partition()}))
    p.flush(30)
    for i in range(40):
        assert by_key[f"key{i}".encode()].partition == expected_partition[f"key{i}".encode()]

    # And the CLI reads what confluent-kafka wrote (and its own), as JSON lines.
    rows = [
        json.loads(line)
        for line in cli(bootstrap, "consume", topic, "--from-beginning", "--max-messages", "81", "--format", "json").stdout.splitlines()
    ]
    assert len(rows) == 81
    assert sum(1 for r in rows if r["value"] == "again") == 40
    assert {r["value"] for r in rows if r["key"] is None} == {"no key here"}
    offsets = {}
    for r in rows:
        offsets.setdefault(r["partition"], []).append(r["offset"])
    for p_offsets in offsets.values():
        assert p_offsets == list(range(len(p_offsets))), "dense offsets in order"
    # Bounded reads end by themselves: before an offset, before a time.
    first_two = cli(bootstrap, "consume", topic, "--partition", "0", "--offset", "0", "--to-offset", "2").stdout.splitlines()
    assert len(first_two) == 2
    assert cli(bootstrap, "consume", topic, "--from-beginning", "--to-timestamp", "1").stdout == ""
    later = str(int(time.time() * 1000) + 3_600_000)
    assert len(cli(bootstrap, "consume", topic, "--from-beginning", "--to-timestamp", later).stdout.splitlines()) == 81
    text = cli(bootstrap, "consume", topic, "--partition", "0", "--offset", "0", "--timeout-ms", "1500", "--print-key", "--key-separator", "=").stdout
    assert all("=" in line for line in text.splitlines())


def test_consume_skips_aborted_transactions(bootstrap, topic_name):
    topic = topic_name()
    cli(bootstrap, "topic", "create", topic, "--partitions", "1")
    producer = txn_producer(bootstrap, topic_name("txn"))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", partition=0)
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed", partition=0)
    producer.commit_transaction(30)
    values = cli(bootstrap, "consume", topic, "--from-beginning", "--timeout-ms", "2000").stdout.split()
    assert values == ["committed"]
    raw = cli(
        bootstrap, "consume", topic, "--from-beginning", "--timeout-ms", "2000", "--isolation-level", "read_uncommitted"
    ).stdout.split()
    assert raw == ["aborted", "committed"]


def test_groups_describe_lag_reset_and_delete(bootstrap, topic_name):
    topic = topic_name()
    group = topic_name("group")
    cli(bootstrap, "topic", "create", topic, "--partitions", "2")
    produce(bootstrap, topic, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(20)])
    consumer = Consumer(
        base_conf(
            bootstrap,
            **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"},
        )
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        consumer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)
    finally:
        consumer.close()

    wait_for(lambda: any(g["group"] == group for g in cli_json(bootstrap, "group", "list")), 15, "the group listed")
    d = cli_json(bootstrap, "group", "describe", group)
    lag = {o["partition"]: (o["committed_offset"], o["log_end_offset"], o["lag"]) for o in d["offsets"]}
    assert lag == {0: (4, 10, 6), 1: (7, 10, 3)}
    assert d["total_lag"] == 9 and d["state"] == "Empty"

    plan = cli_json(bootstrap, "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert {o["partition"]: o["new_offset"] for o in plan["offsets"]} == {0: 0, 1: 0}
    assert not plan["executed"]
    d = cli_json(bootstrap, "group", "describe", group)
    assert sum(o["lag"] for o in d["offsets"]) == 9, "a plan changes nothing"

    cli(bootstrap, "group", "reset-offsets", group, "--topic", f"{topic}:1", "--shift-by", "-2", "--execute")
    cli(bootstrap, "group", "reset-offsets", group, "--topic", f"{topic}:0", "--to-offset", "99", "--execute")
    check = Consumer(base_conf(bootstrap, **{"group.id": group}))
    try:
        committed = check.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    finally:
        check.close()
    assert [c.offset for c in committed] == [10, 5], "99 is moved to the log end; 7 - 2 = 5"

    cli(bootstrap, "group", "delete", group)
    wait_for(lambda: all(g["group"] != group for g in cli_json(bootstrap, "group", "list")), 15, "the group gone")
