"""confluent-kafka (librdkafka) helpers shared by the test modules.

kfdb has no consumer groups yet, so consumers here use manual assignment with explicit start
offsets and never subscribe or commit (librdkafka still wants a group.id to create a consumer).
kfdb has no InitProducerId yet, so producers disable idempotence.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = [
    "Msg",
    "admin_client",
    "base_conf",
    "consume",
    "create_topic",
    "produce",
    "wait_for",
    "OFFSET_BEGINNING",
    "TIMESTAMP_CREATE_TIME",
]


def base_conf(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "socket.timeout.ms": 30000,
    }
    conf.update(extra)
    return conf


def admin_client(bootstrap: str, **extra) -> AdminClient:
    return AdminClient(base_conf(bootstrap, **extra))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate()`` until it returns a truthy value; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last_exc = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc!r})" if last_exc is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None, timeout: float = 30):
    """Create a topic with AdminClient.create_topics and wait until metadata shows all partitions led."""
    admin = admin_client(bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    try:
        futures[name].result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"AdminClient.create_topics({name!r}) got no answer within {timeout:.0f} s") from None

    def ready():
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 for p in t.partitions.values())

    wait_for(ready, timeout, f"topic {name} with {partitions} led partitions in metadata")
    return admin


@dataclass
class Msg:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: tuple = (0, -1)


def produce(bootstrap: str, topic: str, messages: list[dict], timeout: float = 60, **conf) -> list[tuple[int, int]]:
    """Produce ``messages`` (dicts of Producer.produce kwargs) and return (partition, offset) of each,
    in input order. Fails on any delivery error or if not everything is delivered within ``timeout``."""
    producer_conf = base_conf(bootstrap, **{"enable.idempotence": False, "acks": "all", "linger.ms": 5})
    producer_conf.update(conf)
    producer = Producer(producer_conf)
    results: list = [None] * len(messages)
    errors: list = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.partition(), msg.offset())

        return cb

    deadline = time.monotonic() + timeout
    for i, m in enumerate(messages):
        while True:
            try:
                producer.produce(topic, on_delivery=on_delivery(i), **m)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"producer queue stayed full for {timeout:.0f} s at message {i}")
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    assert not errors, f"delivery errors (first 5 of {len(errors)}): {errors[:5]}"
    assert remaining == 0, f"{remaining} of {len(messages)} messages not delivered within {timeout:.0f} s"
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"no delivery report for messages {missing[:10]}"
    return results


def consume(
    bootstrap: str,
    topic: str,
    partitions,
    expected: int,
    timeout: float = 60,
    start_offset: int = OFFSET_BEGINNING,
    **conf,
) -> list[Msg]:
    """Consume ``partitions`` of ``topic`` from ``start_offset`` by manual assignment until at least
    ``expected`` messages arrived and every partition reported end-of-partition after its last
    message. Returns the messages in arrival order (per partition in offset order)."""
    consumer_conf = base_conf(
        bootstrap,
        **{
            "group.id": "kfdb-compat-unused-group",  # required by librdkafka; never joined or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        },
    )
    consumer_conf.update(conf)
    consumer = Consumer(consumer_conf)
    try:
        partitions = list(partitions)
        consumer.assign([TopicPartition(topic, p, start_offset) for p in partitions])
        got: list[Msg] = []
        at_eof = {p: False for p in partitions}
        errors: list = []
        deadline = time.monotonic() + timeout
        while not (len(got) >= expected and all(at_eof.values())):
            if time.monotonic() > deadline:
                per_part = {p: sum(1 for m in got if m.partition == p) for p in partitions}
                raise AssertionError(
                    f"consumed {len(got)} of {expected} messages from {topic} within {timeout:.0f} s "
                    f"(per partition {per_part}, at EOF {at_eof}, errors {errors[:5]})"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof[msg.partition()] = True
                    continue
                if err.fatal() or not err.retriable():
                    errors.append(err)
                    if err.fatal():
                        raise KafkaException(err)
                continue
            at_eof[msg.partition()] = False
            got.append(
                Msg(
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=list(msg.headers() or []),
                    timestamp=msg.timestamp(),
                )
            )
        return got
    finally:
        consumer.close()
