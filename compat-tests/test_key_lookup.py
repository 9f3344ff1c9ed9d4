"""Compacted topics' latest value per key, read by key through kfdb's HTTP API
(``GET /v1/topics/{topic}/keys/{key}``, ``kfdb serve --http-listen``).

Real producers (confluent-kafka with Java's murmur2 partitioner, kafka-python, a transactional
confluent-kafka producer) write keyed updates and tombstones to a compacted topic:

- after every acknowledged acks=all produce, the lookup returns exactly that record (value,
  partition, offset, headers): read-your-writes;
- without ``?partition`` the lookup picks the partition Kafka's default partitioner picks (it
  agrees with kafka-python's partitioning of the same key);
- a tombstone, a key never written, a topic without a key index and an unknown topic get the
  documented 404/400 answers; a transactional update shows once committed, never when aborted;
- a consumer reading the topic from the beginning sees every update in order, with the latest
  value per key equal to what the lookup answered.

Against Apache Kafka (``KFDB_COMPAT_TARGET=kafka``) the same producers and consumers run and
the consumer checks hold; the lookups (kfdb's own API, which Kafka lacks) are skipped.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.parse
import urllib.request

from confluent_kafka import Producer
from kafka import KafkaProducer

import conftest
from ckhelpers import base_conf, consume, create_topic
from txnhelpers import txn_producer

HTTP_PORT = conftest.free_port()
KFDB_ARGS = ["--http-listen", f"127.0.0.1:{HTTP_PORT}"]
COMPACT = {"cleanup.policy": "compact"}


def lookup(topic: str, key: bytes, partition: int | None = None, raw: bool = False):
    """(HTTP status, parsed JSON or raw body, response headers) of a key lookup on kfdb."""
    url = (
        f"http://127.0.0.1:{HTTP_PORT}/v1/topics/{urllib.parse.quote(topic, safe='')}"
        f"/keys/{urllib.parse.quote(key, safe='')}"
    )
    if partition is not None:
        url += f"?partition={partition}"
    req = urllib.request.Request(url, headers={"Accept": "application/octet-stream"} if raw else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return r.status, (body if raw else json.loads(body)), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def latest_by_key(msgs) -> dict:
    """key -> the last message of that key, in consumption order (per partition, offset order)."""
    out = {}
    for m in sorted(msgs, key=lambda m: (m.partition, m.offset)):
        out[m.key] = m
    return out


def test_each_acknowledged_write_is_read_back_by_key(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=3, config=COMPACT)
    rng = random.Random(7)
    keys = [f"user-{i}".encode() for i in range(8)] + ["ключ/ü €".encode(), b"a%2Fb?c=d&e"]
    producer = Producer(
        base_conf(bootstrap, **{"acks": "all", "partitioner": "murmur2_random", "linger.ms": 0})
    )
    written = {}
    for i in range(40):
        key = rng.choice(keys)
        value = f"v{i}-".encode() + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))
        headers = [("h", f"n{i}".encode()), ("empty", None)]
        delivered = []
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,
            on_delivery=lambda err, msg: delivered.append((err, msg.partition(), msg.offset())),
        )
        assert producer.flush(30) == 0
        err, partition, offset = delivered[0]
        assert err is None, err
        written[key] = (partition, offset, value)
        if conftest.on_kafka():
            continue
        status, body, _ = lookup(topic, key)
        assert status == 200, (i, body)
        assert (body["partition"], body["offset"], body["value"]) == (partition, offset, b64(value)), i
        assert body["key"] == b64(key)
        assert body["headers"] == [{"key": "h", "value": b64(f"n{i}".encode())}, {"key": "empty", "value": None}]
    # A tombstone deletes the key; a key never written has no record.
    gone = keys[0]
    delivered = []
    producer.produce(topic, key=gone, value=None, on_delivery=lambda err, msg: delivered.append(msg.offset()))
    assert producer.flush(30) == 0
    msgs = consume(bootstrap, topic, range(3), expected=41)
    latest = latest_by_key(msgs)
    assert latest[gone].value is None
    for key, (partition, offset, value) in written.items():
        if key == gone:
            continue
        assert (latest[key].partition, latest[key].offset, latest[key].value) == (partition, offset, value)
    if conftest.on_kafka():
        return
    status, body, _ = lookup(topic, gone)
    assert (status, body["error"]) == (404, "KEY_DELETED"), body
    status, body, _ = lookup(topic, b"never-written")
    assert (status, body["error"]) == (404, "KEY_NOT_FOUND"), body
    # The raw value, with offset and partition in headers.
    key = keys[1]
    partition, offset, value = written[key]
    status, body, headers = lookup(topic, key, raw=True)
    assert status == 200 and body == value
    assert (int(headers["kfdb-partition"]), int(headers["kfdb-offset"])) == (partition, offset)
    # Asking another partition than the key's finds nothing there.
    status, body, _ = lookup(topic, key, partition=(partition + 1) % 3)
    assert (status, body["error"]) == (404, "KEY_NOT_FOUND"), body


def test_default_partition_agrees_with_kafka_python(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=5, config=COMPACT)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = {}
    for i in range(30):
        key = f"order-{i}".encode()
        md = producer.send(topic, key=key, value=f"placed-{i}".encode()).get(timeout=30)
        sent[key] = (md.partition, md.offset)
    producer.close()
    assert len({p for p, _ in sent.values()}) > 1, "keys spread over partitions"
    if conftest.on_kafka():
        return
    for key, (partition, offset) in sent.items():
        status, body, _ = lookup(topic, key)
        assert status == 200, body
        assert (body["partition"], body["offset"]) == (partition, offset), key


def test_transactional_updates_show_once_committed(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1, config=COMPACT)
    producer = txn_producer(bootstrap, f"{topic}-txn")
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"account", value=b"100", partition=0)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"account", value=b"999", partition=0)
    producer.produce(topic, key=b"other", value=b"x", partition=0)
    producer.flush(30)
    if not conftest.on_kafka():
        status, body, _ = lookup(topic, b"account")
        assert (status, body["value"]) == (200, b64(b"100")), "an open transaction is not visible"
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"account", value=b"150", partition=0)
    producer.commit_transaction(30)
    msgs = consume(bootstrap, topic, [0], expected=2, **{"isolation.level": "read_committed"})
    assert [(m.key, m.value) for m in msgs] == [(b"account", b"100"), (b"account", b"150")]
    if conftest.on_kafka():
        return
    status, body, _ = lookup(topic, b"account")
    assert (status, body["value"], body["offset"]) == (200, b64(b"150"), msgs[-1].offset)
    status, body, _ = lookup(topic, b"other")
    assert (status, body["error"]) == (404, "KEY_NOT_FOUND"), "an aborted record is never indexed"


def test_topics_without_an_index_and_unknown_topics(bootstrap, topic_name):
    if conftest.on_kafka():
        return  # nothing of Kafka's to compare: only the HTTP API's answers
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    status, body, _ = lookup(topic, b"k")
    assert (status, body["error"]) == (400, "NO_KEY_INDEX"), body
    status, body, _ = lookup(topic + "-missing", b"k")
    assert (status, body["error"]) == (404, "UNKNOWN_TOPIC_OR_PARTITION"), body


def post(topic: str, partition: int, body: dict):
    """(HTTP status, parsed JSON) of a conditional append on kfdb."""
    url = f"http://127.0.0.1:{HTTP_PORT}/v1/topics/{urllib.parse.quote(topic, safe='')}/partitions/{partition}/records"
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_conditional_appends_are_ordinary_records_to_consumers(bootstrap, topic_name):
    if conftest.on_kafka():
        return  # kfdb's own API: Kafka has no conditional append
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2, config=COMPACT)
    event = lambda key, value, **h: {  # noqa: E731
        "key": b64(key),
        "value": b64(value),
        "headers": [{"key": k, "value": b64(v.encode())} for k, v in h.items()],
    }
    # Stream version locking: each writer appends only if the stream is where it last saw it.
    status, body = post(topic, 1, {"records": [event(b"order-7", b"created", by="a")], "expected_end_offset": 0})
    assert (status, body["base_offset"], body["end_offset"]) == (200, 0, 1), body
    status, body = post(topic, 1, {"records": [event(b"order-7", b"paid")], "expected_end_offset": 0})
    assert (status, body["error"], body["current"]) == (409, "CONDITION_FAILED", 1), body
    status, body = post(
        topic, 1, {"records": [event(b"order-7", b"paid"), event(b"order-7", b"shipped")], "expected_end_offset": 1}
    )
    assert (status, body["base_offset"], body["end_offset"]) == (200, 1, 3), body
    # By key: only if order-7's latest record is still at offset 2 (and a new key's at -1: none).
    status, body = post(
        topic, 1, {"records": [event(b"order-7", b"late")], "expected_key_offset": {"key": b64(b"order-7"), "offset": 1}}
    )
    assert (status, body["current"]) == (409, 2), body
    status, body = post(
        topic, 1, {"records": [event(b"order-8", b"created")], "expected_key_offset": {"key": b64(b"order-8"), "offset": -1}}
    )
    assert status == 200, body
    # Unconditional, and bad requests.
    assert post(topic, 1, {"records": [event(b"order-9", b"created")]})[0] == 200
    assert post(topic, 1, {"records": []})[0] == 400
    assert post(topic, 5, {"records": [event(b"k", b"v")]})[0] == 404
    assert post(topic, 1, {"records": [{"key": None, "value": b64(b"v")}]})[0] == 400, "keyless on compacted"
    # A Kafka consumer reads them as any records: keys, values, headers, dense offsets.
    msgs = consume(bootstrap, topic, [1], expected=5)
    assert [(m.offset, m.key, m.value) for m in msgs] == [
        (0, b"order-7", b"created"),
        (1, b"order-7", b"paid"),
        (2, b"order-7", b"shipped"),
        (3, b"order-8", b"created"),
        (4, b"order-9", b"created"),
    ]
    assert msgs[0].headers == [("by", b"a")]
    status, body, _ = lookup(topic, b"order-7", partition=1)
    assert (status, body["offset"], body["value"]) == (200, 2, b64(b"shipped")), body
