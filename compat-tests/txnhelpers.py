"""Shared bits of the transaction tests (test_transactions*.py): a transactional confluent-kafka
producer that keeps its error_cb reports, produce with delivery reports, reading a topic to its
end with either isolation level (messages, position, watermarks)."""

from __future__ import annotations

import time
import uuid

from ckhelpers import base_conf, consume
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

TIMEOUT = 30
FENCING_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class TxnProducer(Producer):
    """A confluent-kafka Producer that keeps what its error_cb got in ``errors``."""

    def __init__(self, conf: dict):
        self.errors: list = []
        super().__init__({**conf, "error_cb": self.errors.append})


def txn_producer(bootstrap: str, txn_id: str, **extra) -> TxnProducer:
    """A transactional confluent-kafka producer."""
    return TxnProducer(base_conf(bootstrap, **{"transactional.id": txn_id, **extra}))


def produce_txn(producer: Producer, topic: str, values: list[tuple[int, bytes]]) -> list:
    """produce() each (partition, value) with a delivery report; returns the list the reports fill
    with (partition, offset, value, error) (complete after flush/commit)."""
    reports: list = []

    def cb(err, msg):
        reports.append((msg.partition(), msg.offset(), msg.value(), err))

    for p, v in values:
        producer.produce(topic, value=v, key=b"k-" + v, partition=p, on_delivery=cb)
    return reports


def check_reports(reports: list, n: int, what: str) -> dict:
    """All ``n`` delivery reports in and successful; returns value -> (partition, offset)."""
    assert len(reports) == n, f"{what}: {len(reports)} delivery reports for {n} records"
    errors = [(p, v, str(e)) for p, _, v, e in reports if e is not None]
    assert not errors, f"{what}: delivery errors {errors[:5]}"
    return {v: (p, o) for p, o, v, _ in reports}


def fencing_error(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0]
    assert isinstance(err, KafkaError), f"{what}: {exc!r}"
    assert err.code() in FENCING_CODES, f"{what}: expected a fencing error, got {err.name()}: {err}"
    return err


def by_partition(rows) -> dict:
    """(partition, offset, value) rows -> {partition: [values in offset order]}."""
    out: dict = {}
    for p, _, v in sorted(rows):
        out.setdefault(p, []).append(v)
    return out


def read_to_end(bootstrap: str, topic: str, partitions, isolation: str, timeout: float = 60) -> dict:
    """Assign ``partitions`` from the beginning and read until every partition reported
    end-of-partition with nothing outstanding. Returns the messages (partition, offset, value,
    key), the consumer's position at the end and the watermarks it sees."""
    partitions = list(partitions)
    consumer = Consumer(
        base_conf(
            bootstrap,
            **{
                "group.id": f"kfdb-compat-unused-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "isolation.level": isolation,
            },
        )
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        msgs = []
        at_eof = {p: False for p in partitions}
        deadline = time.monotonic() + timeout
        while not all(at_eof.values()):
            assert time.monotonic() < deadline, (
                f"{isolation} read of {topic}: not at the end of every partition within {timeout:.0f} s "
                f"(at EOF {at_eof}, read {len(msgs)})"
            )
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_eof[m.partition()] = True
                    continue
                raise KafkaException(m.error())
            at_eof[m.partition()] = False
            msgs.append((m.partition(), m.offset(), m.value(), m.key()))
        positions = {
            tp.partition: tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in partitions])
        }
        watermarks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
        return {"msgs": msgs, "position": positions, "watermarks": watermarks}
    finally:
        consumer.close()


def committed_values(bootstrap: str, topic: str, partitions, expected: int) -> list:
    return [
        (m.partition, m.offset, m.value)
        for m in consume(bootstrap, topic, partitions, expected=expected, **{"isolation.level": "read_committed"})
    ]
