"""Consumer groups (classic protocol) with kafka-python 3.x against kfdb.

Three KafkaConsumers subscribe in one group to a 6-partition topic (each in its own thread, as
kafka-python's poll() drives the group protocol): every partition has exactly one owner and every
message is consumed exactly once while each consumer commits synchronously after processing. One
consumer closes (LeaveGroup): the other two take over all partitions, nothing is consumed twice,
nothing is lost. Then all close, and a new consumer of the group (a consumer restart) resumes
exactly at the committed offsets. Producers disable idempotence (kfdb has no InitProducerId).
"""

from __future__ import annotations

import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from ckhelpers import create_topic
from grouphelpers import (  # noqa: F401 - KFDB_ARGS / KFDB_ENV are read by the kfdb fixture
    HEARTBEAT_INTERVAL_MS,
    KFDB_ARGS,
    KFDB_ENV,
    REBALANCE_WAIT_S,
    SESSION_TIMEOUT_MS,
    Ledger,
)

PARTITIONS = 6
ALL = set(range(PARTITIONS))
TIMEOUT = 30


def produce(bootstrap: str, topic: str, tag: str, n: int) -> set:
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    try:
        futures = [prod.send(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS) for i in range(n)]
        prod.flush(timeout=TIMEOUT)
        return {(md.partition, md.offset) for md in (f.get(timeout=TIMEOUT) for f in futures)}
    finally:
        prod.close(timeout=10)


class Listener(ConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    def on_partitions_revoked(self, revoked):
        self.member.events.append(("revoke", sorted(tp.partition for tp in revoked)))
        self.member.assigned = frozenset()

    def on_partitions_assigned(self, assigned):
        self.member.events.append(("assign", sorted(tp.partition for tp in assigned)))
        self.member.assigned = frozenset(tp.partition for tp in assigned)


class Member:
    """A subscribed KafkaConsumer polled by its own thread; commits synchronously after each batch."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, ledger: Ledger, lock: threading.Lock):
        self.name, self.topic, self.ledger, self.lock = name, topic, ledger, lock
        self.assigned = frozenset()
        self.events: list = []
        self.errors: list = []
        self.stopping = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            max_poll_interval_ms=30000,
            request_timeout_ms=TIMEOUT * 1000 + 5000,
        )
        self.consumer.subscribe([topic], listener=Listener(self))
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stopping.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                nexts, batch = {}, []
                with self.lock:
                    for tp, records in batches.items():
                        for r in records:
                            self.ledger.add(self.name, r.partition, r.offset, r.value)
                            batch.append((r.partition, r.offset))
                            nexts[tp] = max(nexts.get(tp, 0), r.offset + 1)
                if nexts:
                    try:
                        self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in nexts.items()})
                    except KafkaError as e:
                        self.errors.append(f"commit: {e!r}")
                        with self.lock:  # may legitimately be consumed again by the next owner
                            self.ledger.uncommitted_ok.update(batch)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            self.consumer.close()  # LeaveGroup (auto-commit is off: commits nothing)

    def close(self, timeout: float = 30):
        self.stopping.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} did not close within {timeout:.0f} s"

    def alive(self) -> bool:
        return self.thread.is_alive()

    def describe(self) -> str:
        return f"{self.name}: assigned {sorted(self.assigned)}, events {self.events[-6:]}, errors {self.errors[-3:]}"


def wait(members, cond, what: str, timeout: float = REBALANCE_WAIT_S):
    deadline = time.monotonic() + timeout
    while not cond():
        dead = [m.describe() for m in members if not m.alive()]
        assert not dead, f"consumer thread died while waiting for {what}: {dead}"
        if time.monotonic() > deadline:
            state = "\n  ".join(m.describe() for m in members)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n  {state}")
        time.sleep(0.1)


def split(members) -> bool:
    owned = [m.assigned for m in members]
    return all(owned) and sum(map(len, owned)) == PARTITIONS and frozenset().union(*owned) == ALL


def committed(bootstrap: str, group: str, topic: str) -> dict:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: c.committed(TopicPartition(topic, p), timeout_ms=TIMEOUT * 1000) for p in sorted(ALL)}
    finally:
        c.close()


def test_group_split_leave_resume(kfdb, topic_name):
    topic, group = topic_name(), topic_name("group")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    ledger, lock = Ledger(), threading.Lock()

    def seen(expected):
        with lock:
            return ledger.seen_all(expected)

    members = [Member(f"k{i}", kfdb.bootstrap, group, topic, ledger, lock) for i in (1, 2, 3)]
    k1, k2, k3 = members
    try:
        wait(members, lambda: split(members), "3 consumers to split the 6 partitions")
        assert sorted(len(m.assigned) for m in members) == [2, 2, 2], [m.describe() for m in members]
        expected = produce(kfdb.bootstrap, topic, "one", 600)
        wait(members, lambda: seen(expected), "batch 1 consumed")
        with lock:
            ledger.check_exactly_once(expected, "3 consumers")
            for m in members:
                assert {p for p, _ in ledger.positions(m.name)} <= m.assigned, m.describe()

        k2.close()  # LeaveGroup
        live = [k1, k3]
        wait(live, lambda: split(live), "k1 and k3 to own all 6 partitions after k2 left")
        expected |= produce(kfdb.bootstrap, topic, "two", 600)
        wait(live, lambda: seen(expected), "batch 2 consumed by k1 and k3")
        with lock:
            ledger.check_exactly_once(expected, "after k2 left")
        assert not any(m.errors for m in members), [m.describe() for m in members]
    finally:
        for m in members:
            m.close()

    assert committed(kfdb.bootstrap, group, topic) == {p: 200 for p in ALL}

    # A consumer restart: a new consumer of the group starts at the committed offsets.
    batch3 = produce(kfdb.bootstrap, topic, "three", 60)
    after = Ledger()
    k4 = Member("k4", kfdb.bootstrap, group, topic, after, lock)
    try:
        wait([k4], lambda: k4.assigned == ALL, "k4 to get all partitions")
        wait([k4], lambda: seen_after(after, lock, batch3), "k4 to consume batch 3")
        with lock:
            after.check_exactly_once(batch3, "after the consumer restart (only messages after the last commit)")
    finally:
        k4.close()
    assert committed(kfdb.bootstrap, group, topic) == {p: 210 for p in ALL}


def seen_after(ledger: Ledger, lock: threading.Lock, expected: set) -> bool:
    with lock:
        return ledger.seen_all(expected)
