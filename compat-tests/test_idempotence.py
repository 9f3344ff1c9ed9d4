"""Idempotent producers (InitProducerId + per-partition producer sequences) with real clients.

- kafka-python 3 with its default settings (idempotence and acks=all are on by default against a
  broker that answers InitProducerId): dense offsets, send order, no duplicates.
- confluent-kafka (librdkafka) with enable.idempotence=true producing a numbered stream while kfdb
  is restarted (SIGTERM) twice mid-stream, and a keyed 3-partition stream while kfdb is killed
  (SIGKILL) twice mid-stream: in-flight requests are lost and retried; after flush() every
  delivery report is successful and each partition holds exactly the sequence that was sent, in
  order, no duplicate, no gap. librdkafka's statistics show the producer id it got (and no epoch
  bump); its broker-level debug log shows the reconnects and the ProduceRequests that failed with
  a transport error ("MsgPossiblyPersisted") and were retried with their original sequences (at
  least one for the SIGKILL variant).
- aiokafka with enable_idempotence=True: dense offsets, send order, no duplicates.

Transactions (transactional.id) are tested in test_transactions.py. Consumers are group-less
(manual assignment)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from ckhelpers import base_conf, consume, create_topic

# kfdb's own log target is KFDB_LOG; produce rejections (e.g. sequence errors) log at debug.
KFDB_ENV = {"KFDB_LOG": "info,kfdb_log=debug,kfdb_broker::handlers::produce=debug"}

TIMEOUT = 30


# --------------------------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------------------------


def check_partitions(sent: list[tuple[int, bytes]], consumed: list[tuple[int, int, bytes]], what: str):
    """``sent``: (partition, value) in send order; ``consumed``: (partition, offset, value).
    Each partition must hold exactly its sent values, in send order, at offsets 0..n-1."""
    partitions = sorted({p for p, _ in sent} | {p for p, _, _ in consumed})
    for p in partitions:
        want = [v for q, v in sent if q == p]
        got = sorted((o, v) for q, o, v in consumed if q == p)
        offsets = [o for o, _ in got]
        values = [v for _, v in got]
        assert offsets == list(range(len(offsets))), (
            f"{what}: partition {p}: consumed offsets not dense from 0: first {offsets[:10]}, "
            f"gaps/dups at {[(i, o) for i, o in enumerate(offsets) if o != i][:10]}"
        )
        if values != want:
            dup = len(values) - len(set(values))
            first_diff = next((i for i, (a, b) in enumerate(zip(values, want)) if a != b), min(len(values), len(want)))
            raise AssertionError(
                f"{what}: partition {p}: consumed {len(values)} values ({dup} duplicates), sent {len(want)}; "
                f"first difference at offset {first_diff}: got {values[first_diff:first_diff + 5]!r}, "
                f"want {want[first_diff:first_diff + 5]!r}"
            )


def check_produce_offsets(partitions_offsets: list[tuple[int, int]], what: str):
    """(partition, offset) of each acknowledged message in send order: dense from 0, in send order."""
    for p in sorted({p for p, _ in partitions_offsets}):
        offs = [o for q, o in partitions_offsets if q == p]
        assert offs == list(range(len(offs))), (
            f"{what}: partition {p}: acknowledged offsets not dense/in send order: "
            f"first mismatch {next(((i, o) for i, o in enumerate(offs) if o != i), None)}"
        )


# --------------------------------------------------------------------------------------------
# 1. kafka-python 3, default producer settings
# --------------------------------------------------------------------------------------------


def kp_consume(bootstrap: str, topic: str, partitions: list[int], expected: int, timeout: float = 60):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT * 1000 + 5000,
    )
    try:
        tps = [KpTopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected:
            assert time.monotonic() < deadline, f"consumed {len(got)} of {expected} within {timeout:.0f} s"
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        # Nothing beyond what was sent (a duplicate would show up as an extra record).
        end = consumer.end_offsets(tps)
        return got, {tp.partition: o for tp, o in end.items()}
    finally:
        consumer.close()


def test_kafka_python_default_producer_is_idempotent(bootstrap, topic_name):
    topic = topic_name()
    partitions = 3
    n = 3000
    create_topic(bootstrap, topic, partitions=partitions)

    producer = KafkaProducer(bootstrap_servers=bootstrap)  # defaults only
    try:
        assert producer.config["enable_idempotence"] is True, (
            f"kafka-python disabled idempotence by default against kfdb (api_version "
            f"{producer.config['api_version']})"
        )
        assert producer.config["acks"] == -1, f"acks defaulted to {producer.config['acks']!r}, expected all (-1)"
        sent = [(f"key-{i % 101}".encode(), f"kp-{i}".encode()) for i in range(n)]
        futures = [producer.send(topic, key=k, value=v) for k, v in sent]
        producer.flush(timeout=60)
        metas = [f.get(timeout=TIMEOUT) for f in futures]
        # The producer really runs with a producer id from InitProducerId (private attribute).
        tm = getattr(producer, "_transaction_manager", None)
        if tm is not None:
            assert tm.producer_id_and_epoch.producer_id >= 0, f"no producer id: {tm.producer_id_and_epoch}"
    finally:
        producer.close(timeout=10)

    pos = [(md.partition, md.offset) for md in metas]
    check_produce_offsets(pos, "kafka-python produce")
    assert len({p for p, _ in pos}) == partitions, f"keys did not spread over {partitions} partitions"

    got, end = kp_consume(bootstrap, topic, list(range(partitions)), expected=n)
    assert len(got) == n, f"consumed {len(got)}, sent {n}"
    assert sum(end.values()) == n, f"end offsets {end} sum to {sum(end.values())}, sent {n}"
    sent_by_part = [(md.partition, v) for md, (_, v) in zip(metas, sent)]
    check_partitions(sent_by_part, [(r.partition, r.offset, r.value) for r in got], "kafka-python")
    keys = {(r.partition, r.offset): r.key for r in got}
    for i, (md, (k, _)) in enumerate(zip(metas, sent)):
        assert keys[(md.partition, md.offset)] == k, f"message {i}: key {keys[(md.partition, md.offset)]!r} != {k!r}"


# --------------------------------------------------------------------------------------------
# 2. confluent-kafka, restarts and crashes mid-stream
# --------------------------------------------------------------------------------------------


class StreamingProducer:
    """An idempotent confluent-kafka producer fed at a steady rate from a background thread.

    The rate is close to what a debug build of kfdb takes with 20-message batches (~8,000 messages/s
    on one partition), so a ProduceRequest is in flight most of the time. librdkafka's broker-level debug log
    (a few lines per connection) is captured to count the ProduceRequests that failed with a
    transport error ("MsgPossiblyPersisted") and were retried."""

    def __init__(self, bootstrap: str, topic: str, messages: list[dict], rate: float):
        self.topic = topic
        self.messages = messages
        self.rate = rate  # messages per second handed to produce()
        self.handed = 0
        self.delivered_ok = 0
        self.results: list = [None] * len(messages)
        self.errors: list = []
        self.stats: dict | None = None
        self.log_lines: list[str] = []
        self.thread_error: BaseException | None = None
        self.stop = threading.Event()
        logger = logging.getLogger(f"kfdb-compat.rdkafka.{topic}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_ListHandler(self.log_lines))
        self.producer = Producer(
            base_conf(
                bootstrap,
                **{
                    "enable.idempotence": True,  # implies acks=all, max.in.flight <= 5
                    "linger.ms": 2,
                    "batch.num.messages": 20,  # many small requests
                    "retries": 1_000_000,
                    "retry.backoff.ms": 50,
                    "retry.backoff.max.ms": 500,
                    "delivery.timeout.ms": 90_000,
                    "request.timeout.ms": 15_000,
                    "reconnect.backoff.ms": 50,
                    "reconnect.backoff.max.ms": 500,
                    "statistics.interval.ms": 200,
                    "stats_cb": self._on_stats,
                    "debug": "broker",
                    "logger": logger,
                },
            )
        )
        self.thread = threading.Thread(target=self._run, name="idempotent-producer", daemon=True)

    def _on_stats(self, s: str):
        self.stats = json.loads(s)

    def _on_delivery(self, i: int):
        def cb(err, msg):
            if err is not None:
                self.errors.append((i, err.code(), err.name(), str(err), err.retriable(), err.fatal()))
            else:
                self.results[i] = (msg.partition(), msg.offset())
                self.delivered_ok += 1

        return cb

    def _run(self):
        try:
            start = time.monotonic()
            for i, m in enumerate(self.messages):
                while True:
                    try:
                        self.producer.produce(self.topic, on_delivery=self._on_delivery(i), **m)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
                self.handed = i + 1
                if i % 20 == 19:
                    self.producer.poll(0)
                    ahead = start + self.handed / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            while not self.stop.is_set():  # keep serving delivery reports until finish()
                self.producer.poll(0.02)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            self.thread_error = e

    def start(self):
        self.thread.start()

    def wait_handed(self, n: int, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while self.handed < n:
            assert self.thread.is_alive(), f"producer thread ended at {self.handed} ({self.thread_error!r})"
            assert time.monotonic() < deadline, f"only {self.handed} of {n} messages handed to produce()"
            time.sleep(0.002)

    def wait_streaming(self, acked_before: int, more: int = 500, backlog: int = 40, timeout: float = 30):
        """Wait until ``more`` messages beyond ``acked_before`` were acknowledged (the producer streams
        to this incarnation of kfdb), then for up to 2 s until ``backlog`` messages wait for
        delivery (kfdb is busy: a ProduceRequest is most likely in flight)."""
        deadline = time.monotonic() + timeout
        while self.delivered_ok < acked_before + more and not self.errors:
            assert time.monotonic() < deadline, (
                f"fewer than {more} acknowledgements after the first {acked_before} within {timeout:.0f} s "
                f"(delivered {self.delivered_ok})"
            )
            time.sleep(0.002)
        deadline = time.monotonic() + 2
        while len(self.producer) < backlog and self.handed < len(self.messages) and time.monotonic() < deadline:
            time.sleep(0.001)

    def finish(self, timeout: float = 90) -> dict:
        self.wait_handed(len(self.messages), timeout)
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "producer thread did not stop"
        if self.thread_error is not None:
            raise self.thread_error
        remaining = self.producer.flush(timeout)
        self.producer.poll(0.3)  # serve the remaining log lines and a statistics report
        assert not self.errors, f"{len(self.errors)} delivery errors, first 5: {self.errors[:5]}"
        assert remaining == 0, f"flush() left {remaining} of {len(self.messages)} messages undelivered"
        missing = [i for i, r in enumerate(self.results) if r is None]
        assert not missing, f"no delivery report for {len(missing)} messages, first {missing[:10]}"
        return self.summary()

    def summary(self) -> dict:
        return {
            "eos": {k: v for k, v in ((self.stats or {}).get("eos") or {}).items() if not k.startswith("txn")},
            # librdkafka logs each disconnect twice (debug line with the error code, and the plain one)
            "disconnects": sum("Disconnected" in line and "(_TRANSPORT)" not in line for line in self.log_lines),
            "produce_requests_failed": sum("ProduceRequest failed" in line for line in self.log_lines),
        }

    def close(self):
        """Stop the client (it would otherwise keep reconnecting until garbage-collected)."""
        self.stop.set()
        self.thread.join(5)
        self.producer.purge()
        self.producer.flush(0)
        self.producer = None


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record):
        self.sink.append(record.getMessage())


def interrupt_mid_stream(kfdb, sp: StreamingProducer, n: int, how: str) -> list[dict]:
    """Restart (SIGTERM) or crash (SIGKILL) kfdb after ~1/3 and ~2/3 of the messages were handed to
    produce(), while the producer streams to it. Returns what was outstanding at each interruption."""
    at = []
    delivered_before = 0
    for frac in (1 / 3, 2 / 3):
        sp.wait_handed(int(n * frac))
        sp.wait_streaming(delivered_before, more=min(500, n // 10))
        delivered_before = sp.delivered_ok
        at.append({"handed": sp.handed, "acked": delivered_before, "unacked": len(sp.producer)})
        if how == "restart":
            code = kfdb.restart()
            assert code == 0, f"kfdb exited with {code} on SIGTERM (expected 0)"
        else:
            kfdb.kill()
            kfdb.start()
    return at


def run_interrupted_stream(kfdb, topic: str, messages: list[dict], rate: float, how: str):
    sp = StreamingProducer(kfdb.bootstrap, topic, messages, rate)
    sp.start()
    try:
        at = interrupt_mid_stream(kfdb, sp, len(messages), how)
        summary = sp.finish()
        failed_requests = [line for line in sp.log_lines if "ProduceRequest failed" in line]
    finally:
        sp.close()
    summary["at_interruptions"] = at
    print(f"\n[idempotence] {how}: {summary}")
    eos = summary["eos"]
    assert eos.get("idemp_state") == "Assigned" and eos.get("producer_id", -1) >= 0, (
        f"librdkafka's idempotent producer has no producer id: {eos}"
    )
    assert summary["disconnects"] >= 2, f"the producer did not notice both interruptions: {summary}"
    return sp.results, summary, failed_requests


def test_confluent_idempotent_stream_survives_restarts(kfdb, topic_name):
    """20,000 numbered messages to one partition; kfdb is restarted (SIGTERM) after ~1/3 and ~2/3."""
    topic = topic_name()
    n = 20_000
    create_topic(kfdb.bootstrap, topic, partitions=1)
    messages = [{"value": str(i).encode(), "partition": 0} for i in range(n)]
    results, _, _ = run_interrupted_stream(kfdb, topic, messages, rate=6_000, how="restart")

    assert results == [(0, i) for i in range(n)], (
        "acknowledged offsets are not 0..N-1 in send order: first mismatch "
        f"{next(((i, r) for i, r in enumerate(results) if r != (0, i)), None)}"
    )
    got = consume(kfdb.bootstrap, topic, [0], expected=n)
    seq = [int(m.value) for m in got]
    assert len(seq) == n and seq == list(range(n)), (
        f"consumed {len(seq)} values ({len(seq) - len(set(seq))} duplicates, "
        f"{len(set(range(n)) - set(seq))} missing), first out of place: "
        f"{next(((i, v) for i, v in enumerate(seq) if v != i), None)}"
    )
    assert [m.offset for m in got] == list(range(n)), "consumed offsets are not dense from 0"


def test_confluent_idempotent_keyed_stream_survives_crashes(kfdb, topic_name):
    """9,000 keyed messages over 3 partitions (librdkafka's partitioner); kfdb is killed with
    SIGKILL and started again after ~1/3 and ~2/3."""
    topic = topic_name()
    n = 9_000
    partitions = 3
    create_topic(kfdb.bootstrap, topic, partitions=partitions)
    messages = [{"key": f"key-{i % 31}".encode(), "value": str(i).encode()} for i in range(n)]
    results, summary, _ = run_interrupted_stream(kfdb, topic, messages, rate=4_500, how="kill")

    # The point of killing kfdb mid-stream: requests in flight at the kill (possibly stored, never
    # answered) are retried by librdkafka with their original sequence numbers.
    assert summary["produce_requests_failed"] >= 1, (
        f"no ProduceRequest was in flight at either SIGKILL, nothing was retried: {summary}"
    )
    check_produce_offsets(results, "confluent-kafka acknowledged")
    assert len({p for p, _ in results}) == partitions, f"keys did not spread over {partitions} partitions"
    got = consume(kfdb.bootstrap, topic, range(partitions), expected=n)
    assert len(got) == n, f"consumed {len(got)}, sent {n}"
    check_partitions(
        [(p, m["value"]) for (p, _), m in zip(results, messages)],
        [(m.partition, m.offset, m.value) for m in got],
        "confluent-kafka after SIGKILLs",
    )
    key_of = {(m.partition, m.offset): m.key for m in got}
    for i, ((p, o), m) in enumerate(zip(results, messages)):
        assert key_of[(p, o)] == m["key"], f"message {i} at {(p, o)}: key {key_of[(p, o)]!r} != {m['key']!r}"


# --------------------------------------------------------------------------------------------
# 3. aiokafka, enable_idempotence=True
# --------------------------------------------------------------------------------------------


async def aio_produce(bootstrap: str, topic: str, sent: list[tuple[bytes, bytes]]):
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=TIMEOUT * 1000,
    )
    await asyncio.wait_for(producer.start(), TIMEOUT)
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in sent]
        metas = await asyncio.wait_for(asyncio.gather(*futures), 60)
        tm = getattr(producer, "_txn_manager", None)
        pid = tm.producer_id if tm is not None else None
        return metas, pid
    finally:
        await producer.stop()


async def aio_consume(bootstrap: str, topic: str, partitions: list[int], expected: int, timeout: float = 60):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT * 1000,
    )
    await asyncio.wait_for(consumer.start(), TIMEOUT)
    try:
        tps = [AioTopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected:
            assert time.monotonic() < deadline, f"consumed {len(got)} of {expected} within {timeout:.0f} s"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
        end = await consumer.end_offsets(tps)
        return got, {tp.partition: o for tp, o in end.items()}
    finally:
        await consumer.stop()


def test_aiokafka_idempotent_producer(bootstrap, topic_name):
    topic = topic_name()
    partitions = 3
    n = 3000
    create_topic(bootstrap, topic, partitions=partitions)
    sent = [(f"key-{i % 53}".encode(), f"aio-{i}".encode()) for i in range(n)]
    metas, pid = asyncio.run(aio_produce(bootstrap, topic, sent))
    if pid is not None:
        assert pid >= 0, f"aiokafka got no producer id (producer_id={pid})"
    pos = [(md.partition, md.offset) for md in metas]
    check_produce_offsets(pos, "aiokafka produce")
    assert len({p for p, _ in pos}) == partitions, f"keys did not spread over {partitions} partitions"

    got, end = asyncio.run(aio_consume(bootstrap, topic, list(range(partitions)), expected=n))
    assert len(got) == n, f"consumed {len(got)}, sent {n}"
    assert sum(end.values()) == n, f"end offsets {end} sum to {sum(end.values())}, sent {n}"
    check_partitions(
        [(md.partition, v) for md, (_, v) in zip(metas, sent)],
        [(r.partition, r.offset, r.value) for r in got],
        "aiokafka",
    )
