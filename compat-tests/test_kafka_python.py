"""kafka-python 3.x against kfdb: produce and consume round trips with acks=all and acks=1.

kfdb has no consumer groups and no InitProducerId yet: the consumer is group-less
(group_id=None + assign) and the producer disables idempotence (kafka-python 3 enables it by
default)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

TIMEOUT = 30


def producer(bootstrap: str, acks) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=acks,
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=TIMEOUT * 1000,
        max_block_ms=TIMEOUT * 1000,
    )


def consume(bootstrap: str, topic: str, partitions: list[int], expected: int, timeout: float = 60):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT * 1000 + 5000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected:
            assert time.monotonic() < deadline, f"consumed {len(got)} of {expected} within {timeout:.0f} s"
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


def messages(n: int, partitions: int, tag: str):
    base_ts = 1_710_000_000_000
    return [
        dict(
            key=f"{tag}-key-{i}".encode(),
            value=f"{tag} value {i} ".encode() * (1 + i % 7) + bytes([i % 256, 0, 255]),
            headers=[("seq", str(i).encode()), ("client", b"kafka-python")],
            timestamp_ms=base_ts + i,
            partition=i % partitions,
        )
        for i in range(n)
    ]


def round_trip(bootstrap: str, topic: str, acks, partitions: int, n: int = 200):
    sent = messages(n, partitions, f"acks{acks}")
    prod = producer(bootstrap, acks)
    try:
        futures = [prod.send(topic, **m) for m in sent]
        prod.flush(timeout=TIMEOUT)
        metas = [f.get(timeout=TIMEOUT) for f in futures]
    finally:
        prod.close(timeout=10)
    for p in range(partitions):
        offs = [md.offset for md in metas if md.partition == p]
        assert offs == list(range(len(offs))), f"partition {p}: produce offsets not dense/in order: {offs[:20]}"
    assert [md.partition for md in metas] == [m["partition"] for m in sent]

    got = consume(bootstrap, topic, list(range(partitions)), expected=n)
    assert len(got) == n, f"consumed {len(got)}, sent {n}"
    by_pos = {(r.partition, r.offset): r for r in got}
    for p in range(partitions):
        offs = [r.offset for r in got if r.partition == p]
        assert offs == list(range(len(offs))), f"partition {p}: consumed offsets not dense/in order: {offs[:20]}"
    for i, (m, md) in enumerate(zip(sent, metas)):
        r = by_pos[(md.partition, md.offset)]
        assert r.key == m["key"], f"message {i}: key {r.key!r}"
        assert r.value == m["value"], f"message {i}: value {r.value!r}"
        assert list(r.headers) == m["headers"], f"message {i}: headers {r.headers!r}"
        assert (r.timestamp_type, r.timestamp) == (0, m["timestamp_ms"]), (
            f"message {i}: timestamp {(r.timestamp_type, r.timestamp)} != (CreateTime=0, {m['timestamp_ms']})"
        )


def test_round_trip_acks_all_admin_created_topic(bootstrap, topic_name):
    topic = topic_name()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=TIMEOUT * 1000)
        deadline = time.monotonic() + TIMEOUT
        while topic not in admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} not listed within {TIMEOUT} s"
            time.sleep(0.1)
    finally:
        admin.close()
    round_trip(bootstrap, topic, acks="all", partitions=2)


def test_round_trip_acks_1_auto_created_topic(bootstrap, topic_name):
    topic = topic_name()  # auto-created by the producer's metadata request (num.partitions=1)
    round_trip(bootstrap, topic, acks=1, partitions=1)


@pytest.mark.parametrize("codec", ["gzip"])
def test_round_trip_compressed(bootstrap, topic_name, codec):
    topic = topic_name()
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, compression_type=codec)
    try:
        sent = [(f"k{i}".encode(), f"compressed {i} ".encode() * 20) for i in range(100)]
        metas = [prod.send(topic, key=k, value=v, partition=0) for k, v in sent]
        prod.flush(timeout=TIMEOUT)
        assert [f.get(timeout=TIMEOUT).offset for f in metas] == list(range(100))
    finally:
        prod.close(timeout=10)
    got = consume(bootstrap, topic, [0], expected=100)
    assert [(r.offset, r.key, r.value) for r in got] == [(i, k, v) for i, (k, v) in enumerate(sent)]


def test_offset_queries(bootstrap, topic_name):
    """beginning_offsets / end_offsets / offsets_for_times (ListOffsets) and seek to an offset."""
    topic = topic_name()
    base_ts = 1_711_000_000_000
    prod = producer(bootstrap, "all")
    try:
        futures = [prod.send(topic, value=f"m{i}".encode(), partition=0, timestamp_ms=base_ts + 100 * i)
                   for i in range(10)]
        prod.flush(timeout=TIMEOUT)
        assert [f.get(timeout=TIMEOUT).offset for f in futures] == list(range(10))
    finally:
        prod.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 10}
        found = consumer.offsets_for_times({tp: base_ts + 250})[tp]
        assert (found.offset, found.timestamp) == (3, base_ts + 300)
        assert consumer.offsets_for_times({tp: base_ts + 5000})[tp] is None
        consumer.assign([tp])
        consumer.seek(tp, 7)
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < 3:
            assert time.monotonic() < deadline, f"got {len(got)} of 3 after seek"
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        assert [(r.offset, r.value) for r in got] == [(7, b"m7"), (8, b"m8"), (9, b"m9")]
    finally:
        consumer.close()
