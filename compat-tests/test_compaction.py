"""Compacted topics (``cleanup.policy=compact``) as Kafka compacts them, seen by real clients.

Producers (confluent-kafka plain and idempotent, kafka-python, a transactional confluent-kafka
producer) write keyed updates and tombstones; then, after a pause, one more record (on Kafka it
rolls the segment, making the earlier records cleanable; on kfdb the last batch is the head that
compaction never touches). Compaction runs eagerly (``log.cleaner.backoff.ms`` 200 ms,
``min.cleanable.dirty.ratio`` 0.01). A consumer reading from the beginning eventually sees exactly
the latest record of every key plus that last record, at the offsets they were written at
(increasing, with gaps); a tombstone is kept for ``delete.retention.ms`` and gone after a later
cleaning; aborted transactional records are gone and read_committed sees the committed latest;
the idempotent producer keeps producing after its batches were compacted.

The same module runs against Apache Kafka 4.4 (``KFDB_COMPAT_TARGET=kafka``).
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from kafka import KafkaProducer

from ckhelpers import base_conf, consume, create_topic, produce, wait_for
from txnhelpers import txn_producer

KFDB_ARGS = ["--log-cleaner-backoff-ms", "200"]
KAFKA_CONFIGS = {"log.cleaner.backoff.ms": "200"}
SEGMENT_MS = 300
COMPACT = {
    "cleanup.policy": "compact",
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "2000",
}
TIMEOUT = 60


def roll(bootstrap: str, topic: str, key: bytes, **conf) -> tuple[int, int]:
    """After segment.ms, one more record: everything before it becomes cleanable (Kafka rolls the
    segment on this append)."""
    time.sleep(SEGMENT_MS * 2 / 1000)
    return produce(bootstrap, topic, [{"key": key, "value": b"end", "partition": 0}], **conf)[0]


def read(bootstrap: str, topic: str, **conf) -> list:
    """Everything in partition 0 from the beginning: (offset, key, value)."""
    msgs = consume(bootstrap, topic, [0], expected=0, timeout=30, **conf)
    return [(m.offset, m.key, m.value) for m in msgs]


def compacts_to(bootstrap: str, topic: str, expected: list, what: str, **conf) -> None:
    """Wait until reading from the beginning gives exactly ``expected`` (offset, key, value)."""
    seen = {}

    def done():
        seen["last"] = read(bootstrap, topic, **conf)
        return seen["last"] == expected

    try:
        wait_for(done, TIMEOUT, what)
    except AssertionError:
        raise AssertionError(f"{what}: read {seen.get('last')}, expected {expected}") from None


def test_latest_record_of_every_key_and_tombstones(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1, config=COMPACT)
    messages = []
    for i in range(61):
        key = f"k{i % 7}".encode() if i < 60 else b"k3"  # k3 twice at the end: a gap inside
        value = None if i == 57 else f"v{i}".encode()  # k1's last write is a tombstone
        messages.append({"key": key, "value": value, "partition": 0})
    delivered = produce(bootstrap, topic, messages, **{"linger.ms": 20})
    latest = {}
    for m, (_, offset) in zip(messages, delivered):
        latest[m["key"]] = (offset, m["key"], m["value"])
    end = roll(bootstrap, topic, b"end")
    expected = sorted(latest.values()) + [(end[1], b"end", b"end")]
    compacts_to(bootstrap, topic, expected, "latest record of every key, the tombstone kept")
    offsets = [o for o, _, _ in expected]
    assert offsets[0] > 0 and offsets != list(range(offsets[0], offsets[0] + len(offsets))), "gaps"
    # After delete.retention.ms a later cleaning (more writes, another roll) drops the tombstone.
    time.sleep(2.5)
    more = produce(bootstrap, topic, [{"key": b"k0", "value": b"again", "partition": 0}])[0]
    end2 = roll(bootstrap, topic, b"end2")
    expected = sorted(
        [row for row in expected if row[1] not in (b"k1", b"k0")]
        + [(more[1], b"k0", b"again"), (end2[1], b"end2", b"end")]
    )
    compacts_to(bootstrap, topic, expected, "the tombstone gone after delete.retention.ms")


def test_kafka_python_and_an_idempotent_producer(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1, config=COMPACT)
    kp = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    latest = {}
    for i in range(40):
        key = f"user-{i % 5}".encode()
        md = kp.send(topic, key=key, value=f"py{i}".encode(), partition=0).get(timeout=30)
        latest[key] = (md.offset, key, f"py{i}".encode())
    kp.close()
    idem = Producer(base_conf(bootstrap, **{"enable.idempotence": True, "linger.ms": 10}))
    reports = []

    def send(key: bytes, value: bytes):
        idem.produce(topic, key=key, value=value, partition=0, on_delivery=lambda e, m: reports.append((e, m)))

    for i in range(30):
        send(f"user-{i % 3}".encode(), f"idem{i}".encode())
    assert idem.flush(30) == 0
    for err, msg in reports:
        assert err is None, err
        latest[msg.key()] = (msg.offset(), msg.key(), msg.value())
    end = roll(bootstrap, topic, b"end")
    expected = sorted(latest.values()) + [(end[1], b"end", b"end")]
    compacts_to(bootstrap, topic, expected, "kafka-python and idempotent updates compacted")
    # The idempotent producer goes on after its batches were rewritten: no sequence error.
    reports.clear()
    send(b"user-0", b"after")
    assert idem.flush(30) == 0
    assert reports and reports[0][0] is None, reports


def test_aborted_records_go_and_read_committed_sees_the_latest(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1, config=COMPACT)
    p = txn_producer(bootstrap, f"{topic}-tx")
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=f"acct-{i}".encode(), value=b"100", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=f"acct-{i}".encode(), value=b"aborted", partition=0)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, key=b"acct-0", value=b"150", partition=0)
    p.commit_transaction(30)
    roll(bootstrap, topic, b"end")

    def values(**conf):
        return [(k, v) for _, k, v in read(bootstrap, topic, **conf) if k is not None]

    def compacted():
        got = values()
        return (b"aborted" not in [v for _, v in got]) and [v for k, v in got if k == b"acct-0"] == [b"150"]

    wait_for(compacted, TIMEOUT, "aborted records and acct-0's first value compacted away")
    committed = values(**{"isolation.level": "read_committed"})
    assert sorted(committed) == sorted(
        [(b"acct-0", b"150")] + [(f"acct-{i}".encode(), b"100") for i in range(1, 5)] + [(b"end", b"end")]
    )
