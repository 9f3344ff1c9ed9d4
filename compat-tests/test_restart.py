"""Durability across a restart: produce with acks=all (confluent-kafka), stop kfdb with SIGTERM,
start it again on the same data dir and port, consume: identical bytes and offsets."""

from __future__ import annotations

import random

from confluent_kafka.admin import ConfigResource, ResourceType

from ckhelpers import TIMESTAMP_CREATE_TIME, admin_client, consume, create_topic, produce

N = 1000
PARTITIONS = 2


def test_restart_keeps_acked_messages(kfdb, topic_name):
    topic = topic_name()
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS, config={"retention.ms": "86400000"})
    rng = random.Random(42)
    base_ts = 1_740_000_000_000
    sent = [
        {
            "key": f"rk-{i}".encode(),
            "value": rng.randbytes(rng.randint(0, 2000)),
            "headers": [("seq", str(i).encode())],
            "timestamp": base_ts + i,
            "partition": i % PARTITIONS,
        }
        for i in range(N)
    ]
    delivered = produce(kfdb.bootstrap, topic, sent, acks="all", **{"compression.type": "lz4"})
    before = consume(kfdb.bootstrap, topic, range(PARTITIONS), expected=N)

    exit_code = kfdb.restart()
    assert exit_code == 0, f"kfdb exited with {exit_code} on SIGTERM (expected 0)"

    # Topic metadata and config survive.
    admin = admin_client(kfdb.bootstrap)  # keep a reference: the handle must outlive the futures
    md = admin.list_topics(topic=topic, timeout=30)
    assert len(md.topics[topic].partitions) == PARTITIONS
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert configs["retention.ms"].value == "86400000"

    after = consume(kfdb.bootstrap, topic, range(PARTITIONS), expected=N)
    assert len(after) == N
    key = lambda m: (m.partition, m.offset)  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key), "messages differ before and after the restart"
    by_pos = {(m.partition, m.offset): m for m in after}
    for i, (m_sent, pos) in enumerate(zip(sent, delivered)):
        m = by_pos[pos]
        assert (m.key, m.value, m.headers, m.timestamp) == (
            m_sent["key"],
            m_sent["value"],
            m_sent["headers"],
            (TIMESTAMP_CREATE_TIME, m_sent["timestamp"]),
        ), f"message {i} at {pos} differs after restart"

    # Producing after the restart continues the offsets densely.
    more = produce(kfdb.bootstrap, topic, [{"value": b"after-restart", "partition": p} for p in range(PARTITIONS)])
    assert more == [(p, N // PARTITIONS) for p in range(PARTITIONS)]


def test_acked_messages_survive_sigkill(kfdb, topic_name):
    """acks=all means stored: kill -9 right after the acks, start again, everything is there."""
    topic = topic_name()
    create_topic(kfdb.bootstrap, topic, partitions=1)
    sent = [{"key": f"k{i}".encode(), "value": f"v{i}".encode() * 10, "partition": 0} for i in range(300)]
    delivered = produce(kfdb.bootstrap, topic, sent, acks="all")
    assert delivered == [(0, i) for i in range(300)]
    kfdb.kill()
    kfdb.start()
    got = consume(kfdb.bootstrap, topic, [0], expected=300)
    assert [(m.offset, m.key, m.value) for m in got] == [(i, m["key"], m["value"]) for i, m in enumerate(sent)]
