"""confluent-kafka (librdkafka) against kfdb: produce/consume with every codec, admin operations,
offsets by timestamp, watermarks, delete_records."""

from __future__ import annotations

import random
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from ckhelpers import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    admin_client,
    base_conf,
    consume,
    create_topic,
    produce,
    wait_for,
)

try:  # confluent-kafka >= 2.3
    from confluent_kafka import TopicCollection
except ImportError:  # pragma: no cover
    TopicCollection = None

TIMEOUT = 30


def make_messages(n: int, partitions: int, tag: str, seed: int) -> list[dict]:
    """Keyed messages with headers (incl. a repeated header key and binary bytes), CreateTime
    timestamps we choose, a mix of compressible text, random bytes, an empty value and one large
    value, each assigned to an explicit partition."""
    rng = random.Random(seed)
    base_ts = 1_700_000_000_000 + seed * 1_000_000
    msgs = []
    for i in range(n):
        kind = i % 3
        if i == n // 2:
            value = rng.randbytes(200_000)  # one large, incompressible value
        elif i == 7:
            value = b""  # empty (not null) value
        elif kind == 0:
            value = (f"{tag} message {i} " * rng.randint(1, 40)).encode()
        elif kind == 1:
            value = rng.randbytes(rng.randint(1, 3000))
        else:
            value = bytes([i % 256]) * rng.randint(1, 5000)
        msgs.append(
            {
                "key": f"key-{i:05d}".encode(),
                "value": value,
                "headers": [("seq", str(i).encode()), ("dup", b"a"), ("dup", b"b"), ("bin", bytes([0, 255, i % 256]))],
                "timestamp": base_ts + i * 10,
                "partition": i % partitions,
            }
        )
    return msgs


def check_round_trip(sent: list[dict], delivered: list[tuple[int, int]], got, partitions: int):
    assert len(got) == len(sent), f"sent {len(sent)}, consumed {len(got)}"
    # Delivery reports: per partition, offsets are 0..n-1 in produce order.
    for p in range(partitions):
        offs = [o for (pp, o) in delivered if pp == p]
        assert offs == list(range(len(offs))), f"partition {p}: delivery offsets not dense/in order: {offs[:20]}"
    by_pos = {(m.partition, m.offset): m for m in got}
    assert len(by_pos) == len(got), "duplicate (partition, offset) in consumed messages"
    for p in range(partitions):
        offs = [m.offset for m in got if m.partition == p]
        assert offs == list(range(len(offs))), f"partition {p}: consumed offsets not dense/in order: {offs[:20]}"
    for i, (m_sent, (p, o)) in enumerate(zip(sent, delivered)):
        assert p == m_sent["partition"], f"message {i} went to partition {p}, asked for {m_sent['partition']}"
        m = by_pos.get((p, o))
        assert m is not None, f"message {i} (partition {p}, offset {o}) not consumed"
        assert m.key == m_sent["key"], f"message {i}: key {m.key!r} != {m_sent['key']!r}"
        assert m.value == m_sent["value"], (
            f"message {i}: value differs (len {len(m.value or b'')} vs {len(m_sent['value'])})"
        )
        assert m.headers == m_sent["headers"], f"message {i}: headers {m.headers!r} != {m_sent['headers']!r}"
        assert m.timestamp == (TIMESTAMP_CREATE_TIME, m_sent["timestamp"]), (
            f"message {i}: timestamp {m.timestamp} != (CreateTime, {m_sent['timestamp']})"
        )


CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(bootstrap, topic_name, codec):
    topic = topic_name()
    partitions = 2
    create_topic(bootstrap, topic, partitions=partitions)
    sent = make_messages(400, partitions, codec, seed=CODECS.index(codec) + 1)
    delivered = produce(bootstrap, topic, sent, **{"compression.type": codec, "linger.ms": 20})
    got = consume(bootstrap, topic, range(partitions), expected=len(sent))
    check_round_trip(sent, delivered, got, partitions)


def test_null_value_and_null_key(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    sent = [
        {"key": b"tombstone", "value": None, "partition": 0},
        {"key": None, "value": b"no key", "partition": 0},
        {"key": b"", "value": b"", "partition": 0},
    ]
    produce(bootstrap, topic, sent)
    got = consume(bootstrap, topic, [0], expected=3)
    assert [(m.offset, m.key, m.value) for m in got] == [
        (0, b"tombstone", None),
        (1, None, b"no key"),
        (2, b"", b""),
    ]


def test_auto_create_on_produce(bootstrap, topic_name):
    """Producing to an unknown topic auto-creates it with num.partitions (default 1)."""
    topic = topic_name()
    delivered = produce(bootstrap, topic, [{"value": f"v{i}".encode()} for i in range(5)])
    assert delivered == [(0, i) for i in range(5)]
    md = admin_client(bootstrap).list_topics(topic=topic, timeout=TIMEOUT)
    assert len(md.topics[topic].partitions) == 1


def test_list_topics_shows_broker(kfdb):
    md = admin_client(kfdb.bootstrap).list_topics(timeout=TIMEOUT)
    assert len(md.brokers) == 1, md.brokers
    (broker,) = md.brokers.values()
    assert (broker.host, broker.port) == ("127.0.0.1", kfdb.port)
    assert md.controller_id == broker.id


def test_describe_cluster(kfdb):
    admin = admin_client(kfdb.bootstrap)  # keep a reference: the handle must outlive the future
    result = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert result.cluster_id, "empty cluster id"
    assert [(n.host, n.port) for n in result.nodes] == [("127.0.0.1", kfdb.port)]
    assert result.controller is not None and result.controller.id == result.nodes[0].id


@pytest.mark.skipif(TopicCollection is None, reason="confluent-kafka without describe_topics")
def test_describe_topics(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic, partitions=3)
    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    assert desc.name == topic
    assert sorted(p.id for p in desc.partitions) == [0, 1, 2]
    assert all(p.leader is not None for p in desc.partitions)


def test_create_and_delete_topics(bootstrap, topic_name):
    admin = admin_client(bootstrap)
    a, b = topic_name("a"), topic_name("b")
    futures = admin.create_topics(
        [NewTopic(a, num_partitions=2, replication_factor=1), NewTopic(b, num_partitions=4, replication_factor=1)],
        operation_timeout=TIMEOUT,
    )
    for f in futures.values():
        f.result(timeout=TIMEOUT)

    def partition_counts():
        topics = admin.list_topics(timeout=5).topics
        return {t: len(topics[t].partitions) for t in (a, b) if t in topics}

    wait_for(lambda: partition_counts() == {a: 2, b: 4}, TIMEOUT, "both new topics in list_topics")

    # Creating an existing topic fails with TOPIC_ALREADY_EXISTS.
    again = admin.create_topics([NewTopic(a, num_partitions=2, replication_factor=1)], operation_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as exc:
        again[a].result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc.value

    for f in admin.delete_topics([a], operation_timeout=TIMEOUT).values():
        f.result(timeout=TIMEOUT)
    wait_for(lambda: partition_counts() == {b: 4}, TIMEOUT, f"{a} gone from list_topics, {b} still there")


def test_create_partitions(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic, partitions=1)
    admin.create_partitions([NewPartitions(topic, 3)], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)

    def count():
        return len(admin.list_topics(topic=topic, timeout=5).topics[topic].partitions)

    wait_for(lambda: count() == 3, TIMEOUT, "3 partitions in metadata")
    # The new partitions take messages.
    delivered = produce(bootstrap, topic, [{"value": b"p2", "partition": 2}, {"value": b"p1", "partition": 1}])
    assert delivered == [(2, 0), (1, 0)]
    got = consume(bootstrap, topic, [1, 2], expected=2)
    assert sorted((m.partition, m.offset, m.value) for m in got) == [(1, 0, b"p1"), (2, 0, b"p2")]


def plain_consumer(bootstrap: str) -> Consumer:
    """A consumer used only for offset queries (no assignment, no group operations)."""
    return Consumer(base_conf(bootstrap, **{"group.id": "kfdb-compat-unused-group", "enable.auto.commit": False}))


def describe(admin, topic: str) -> dict[str, str]:
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    return {name: entry.value for name, entry in entries.items()}


def test_describe_configs_defaults(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic)
    configs = describe(admin, topic)
    assert configs.get("retention.ms") == "604800000", configs
    assert configs.get("cleanup.policy") == "delete", configs


def test_create_topic_with_config(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic, config={"retention.ms": "3600000"})
    assert describe(admin, topic).get("retention.ms") == "3600000"


def test_alter_configs(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "86400000"})
    admin.alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    wait_for(lambda: describe(admin, topic).get("retention.ms") == "86400000", TIMEOUT, "retention.ms=86400000")


def test_incremental_alter_configs(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic)

    def incremental(entry: ConfigEntry):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        admin.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)

    incremental(ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET))
    wait_for(lambda: describe(admin, topic).get("retention.ms") == "7200000", TIMEOUT, "retention.ms=7200000")
    # DELETE reverts to the default.
    incremental(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    wait_for(lambda: describe(admin, topic).get("retention.ms") == "604800000", TIMEOUT, "retention.ms default")


def test_offsets_for_times_and_watermarks(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic)
    consumer = plain_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.get_watermark_offsets(tp, timeout=TIMEOUT) == (0, 0)

        base = 1_750_000_000_000
        sent = [{"value": f"m{i}".encode(), "timestamp": base + 1000 * i, "partition": 0} for i in range(10)]
        assert produce(bootstrap, topic, sent) == [(0, i) for i in range(10)]

        assert consumer.get_watermark_offsets(tp, timeout=TIMEOUT) == (0, 10)

        def offset_for(ts: int) -> int:
            (r,) = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT)
            assert r.error is None, r.error
            return r.offset

        assert offset_for(base - 5000) == 0  # before everything: first message
        assert offset_for(base) == 0
        assert offset_for(base + 3000) == 3  # exact match
        assert offset_for(base + 3001) == 4  # first with timestamp >= t
        assert offset_for(base + 9000) == 9
        assert offset_for(base + 9001) == -1  # after everything: no such offset (OFFSET_END)
    finally:
        consumer.close()


def test_delete_records(bootstrap, topic_name):
    topic = topic_name()
    admin = create_topic(bootstrap, topic)
    produce(bootstrap, topic, [{"value": f"m{i}".encode(), "partition": 0} for i in range(10)])
    tp = TopicPartition(topic, 0, 4)
    result = admin.delete_records([tp], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    ((_, fut),) = result.items()
    deleted = fut.result(timeout=TIMEOUT)
    assert deleted.low_watermark == 4

    consumer = plain_consumer(bootstrap)
    try:
        wm = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
    finally:
        consumer.close()
    assert wm == (4, 10)
    # Consuming from the beginning now starts at the new log start offset.
    got = consume(bootstrap, topic, [0], expected=6, start_offset=OFFSET_BEGINNING)
    assert [(m.offset, m.value) for m in got] == [(i, f"m{i}".encode()) for i in range(4, 10)]


def test_consume_from_offset_inside_a_batch(bootstrap, topic_name):
    """Start in the middle of a record batch: the first message seen is the one asked for."""
    topic = topic_name()
    create_topic(bootstrap, topic)
    sent = [{"value": f"m{i}".encode(), "partition": 0} for i in range(100)]
    produce(bootstrap, topic, sent, **{"linger.ms": 100, "batch.num.messages": 1000})  # few large batches
    got = consume(bootstrap, topic, [0], expected=63, start_offset=37)
    assert [(m.offset, m.value) for m in got] == [(i, f"m{i}".encode()) for i in range(37, 100)]


def test_out_of_range_offset_resets_to_earliest(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [{"value": f"m{i}".encode(), "partition": 0} for i in range(10)])
    got = consume(bootstrap, topic, [0], expected=10, start_offset=1000, **{"auto.offset.reset": "earliest"})
    assert [m.offset for m in got] == list(range(10))


def test_tailing_consumer_gets_new_messages(bootstrap, topic_name):
    """A consumer waiting at the end of the log (long-poll Fetch) receives messages produced later."""
    topic = topic_name()
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [{"value": b"before", "partition": 0}])
    consumer = Consumer(
        base_conf(
            bootstrap,
            **{
                "group.id": "kfdb-compat-unused-group",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 500,
            },
        )
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 1)])  # start at the end (offset 1)

        def poll_until(pred, what):
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and pred(msg):
                    return msg
            raise AssertionError(f"timed out waiting for {what}")

        poll_until(lambda m: m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF, "EOF at 1")
        produce(bootstrap, topic, [{"value": f"after{i}".encode(), "partition": 0} for i in range(3)])
        got = []
        for i in range(3):
            msg = poll_until(lambda m: m.error() is None, f"message {i + 1} of 3 produced after EOF")
            got.append((msg.offset(), msg.value()))
        assert got == [(1, b"after0"), (2, b"after1"), (3, b"after2")]
    finally:
        consumer.close()


def test_small_fetch_sizes_still_return_large_messages(bootstrap, topic_name):
    """max.partition.fetch.bytes / fetch.max.bytes smaller than a record batch: the broker still
    returns the first batch (KIP-74), so the consumer makes progress."""
    topic = topic_name()
    create_topic(bootstrap, topic)
    sent = [{"value": bytes([i]) * 300_000, "partition": 0} for i in range(3)]
    sent += [{"value": f"small{i}".encode(), "partition": 0} for i in range(50)]
    produce(bootstrap, topic, sent)
    got = consume(
        bootstrap,
        topic,
        [0],
        expected=len(sent),
        **{
            "max.partition.fetch.bytes": 1024,
            "fetch.max.bytes": 4096,
            "message.max.bytes": 4096,  # librdkafka wants fetch.max.bytes >= message.max.bytes
            "receive.message.max.bytes": 1_000_000,
        },
    )
    assert [m.value for m in got] == [m["value"] for m in sent]
    assert [m.offset for m in got] == list(range(len(sent)))


def test_concurrent_producers_get_dense_offsets(bootstrap, topic_name):
    """Several producers appending to one partition at once: offsets stay dense and unique, each
    producer's messages stay in its own order."""
    topic = topic_name()
    create_topic(bootstrap, topic)
    producers, per_producer = 4, 300
    results: dict[int, list] = {}
    failures: list = []

    def run(pid: int):
        try:
            msgs = [{"key": f"p{pid}".encode(), "value": f"p{pid}-{i}".encode(), "partition": 0}
                    for i in range(per_producer)]
            results[pid] = produce(bootstrap, topic, msgs, **{"linger.ms": 1, "batch.num.messages": 7})
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            failures.append((pid, e))

    threads = [threading.Thread(target=run, args=(pid,)) for pid in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not failures, failures
    all_offsets = sorted(o for r in results.values() for (_, o) in r)
    assert all_offsets == list(range(producers * per_producer)), "offsets not dense and unique"
    for pid, r in results.items():
        offs = [o for (_, o) in r]
        assert offs == sorted(offs), f"producer {pid}: its messages were not appended in order"
    got = consume(bootstrap, topic, [0], expected=producers * per_producer)
    by_offset = {m.offset: m.value for m in got}
    for pid, r in results.items():
        for i, (_, o) in enumerate(r):
            assert by_offset[o] == f"p{pid}-{i}".encode()


def test_recreated_topic_starts_empty(bootstrap, topic_name):
    """Delete a topic with data and create it again under the same name: no old data, offsets from 0."""
    topic = topic_name()
    admin = create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, [{"value": f"old{i}".encode(), "partition": i % 2} for i in range(20)])
    for f in admin.delete_topics([topic], operation_timeout=TIMEOUT).values():
        f.result(timeout=TIMEOUT)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, TIMEOUT, f"{topic} gone")
    create_topic(bootstrap, topic, partitions=1)
    consumer = plain_consumer(bootstrap)
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (0, 0)
    finally:
        consumer.close()
    assert produce(bootstrap, topic, [{"value": b"new", "partition": 0}]) == [(0, 0)]
    got = consume(bootstrap, topic, [0], expected=1)
    assert [(m.offset, m.value) for m in got] == [(0, b"new")]


def test_delete_unknown_topic_fails(bootstrap, topic_name):
    admin = admin_client(bootstrap)
    topic = topic_name("missing")
    with pytest.raises(KafkaException) as exc:
        admin.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, exc.value
