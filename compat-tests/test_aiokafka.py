"""aiokafka against kfdb: produce and consume round trips with acks=all and acks=1.

kfdb has no consumer groups and no InitProducerId yet: the consumer is group-less
(group_id=None + assign) and the producer does not use idempotence."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ckhelpers import create_topic

TIMEOUT = 30


async def produce(bootstrap: str, topic: str, sent: list[dict], acks, **extra):
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=acks,
        enable_idempotence=False,
        request_timeout_ms=TIMEOUT * 1000,
        **extra,
    )
    await asyncio.wait_for(producer.start(), TIMEOUT)
    try:
        futures = [await producer.send(topic, **m) for m in sent]
        return await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, partitions: list[int], expected: int, timeout: float = 60):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT * 1000,
    )
    await asyncio.wait_for(consumer.start(), TIMEOUT)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected:
            assert time.monotonic() < deadline, f"consumed {len(got)} of {expected} within {timeout:.0f} s"
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(records)
        return got
    finally:
        await consumer.stop()


def messages(n: int, partitions: int, tag: str):
    base_ts = 1_720_000_000_000
    return [
        dict(
            key=f"{tag}-key-{i}".encode(),
            value=f"{tag} value {i} ".encode() * (1 + i % 5) + bytes([0, i % 256, 255]),
            headers=[("seq", str(i).encode()), ("client", b"aiokafka")],
            timestamp_ms=base_ts + 3 * i,
            partition=i % partitions,
        )
        for i in range(n)
    ]


def round_trip(bootstrap: str, topic: str, acks, partitions: int, n: int = 200):
    sent = messages(n, partitions, f"acks{acks}")
    metas = asyncio.run(produce(bootstrap, topic, sent, acks))
    assert [md.partition for md in metas] == [m["partition"] for m in sent]
    for p in range(partitions):
        offs = [md.offset for md in metas if md.partition == p]
        assert offs == list(range(len(offs))), f"partition {p}: produce offsets not dense/in order: {offs[:20]}"

    got = asyncio.run(consume(bootstrap, topic, list(range(partitions)), expected=n))
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


def test_round_trip_acks_all(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=3)
    round_trip(bootstrap, topic, acks="all", partitions=3)


def test_round_trip_acks_1_auto_created_topic(bootstrap, topic_name):
    topic = topic_name()  # auto-created by the producer's metadata request (num.partitions=1)
    round_trip(bootstrap, topic, acks=1, partitions=1)


@pytest.mark.parametrize("codec", ["gzip"])
def test_round_trip_compressed(bootstrap, topic_name, codec):
    topic = topic_name()
    sent = [dict(key=f"k{i}".encode(), value=f"compressed {i} ".encode() * 20, partition=0) for i in range(100)]
    metas = asyncio.run(produce(bootstrap, topic, sent, "all", compression_type=codec))
    assert [md.offset for md in metas] == list(range(100))
    got = asyncio.run(consume(bootstrap, topic, [0], expected=100))
    assert [(r.offset, r.key, r.value) for r in got] == [(i, m["key"], m["value"]) for i, m in enumerate(sent)]


def test_offset_queries(bootstrap, topic_name):
    """beginning_offsets / end_offsets / offsets_for_times (ListOffsets)."""
    topic = topic_name()
    base_ts = 1_721_000_000_000
    sent = [dict(value=f"m{i}".encode(), partition=0, timestamp_ms=base_ts + 100 * i) for i in range(10)]
    metas = asyncio.run(produce(bootstrap, topic, sent, "all"))
    assert [md.offset for md in metas] == list(range(10))

    async def queries():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await asyncio.wait_for(consumer.start(), TIMEOUT)
        try:
            tp = TopicPartition(topic, 0)
            return (
                await consumer.beginning_offsets([tp]),
                await consumer.end_offsets([tp]),
                await consumer.offsets_for_times({tp: base_ts + 250}),
                await consumer.offsets_for_times({tp: base_ts + 5000}),
                tp,
            )
        finally:
            await consumer.stop()

    begin, end, found, not_found, tp = asyncio.run(queries())
    assert begin == {tp: 0}
    assert end == {tp: 10}
    assert (found[tp].offset, found[tp].timestamp) == (3, base_ts + 300)
    assert not_found[tp] is None
