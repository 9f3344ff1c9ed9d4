"""Consumer groups (classic protocol) with aiokafka against kfdb.

Three AIOKafkaConsumers (one asyncio task each) subscribe in one group to a 6-partition topic:
every partition has exactly one owner and every message is consumed exactly once while each
consumer commits after processing. One consumer stops (LeaveGroup): the other two take over all
partitions, nothing is consumed twice, nothing is lost. Then all stop, and a new consumer of the
group (a consumer restart) resumes exactly at the committed offsets. Producers do not use
idempotence (kfdb has no InitProducerId).
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

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


async def produce(bootstrap: str, topic: str, tag: str, n: int) -> set:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await asyncio.wait_for(producer.start(), TIMEOUT)
    try:
        futures = [
            await producer.send(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS) for i in range(n)
        ]
        metas = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
        return {(md.partition, md.offset) for md in metas}
    finally:
        await producer.stop()


class Listener(ConsumerRebalanceListener):
    def __init__(self, member):
        self.member = member

    async def on_partitions_revoked(self, revoked):
        self.member.events.append(("revoke", sorted(tp.partition for tp in revoked)))
        self.member.assigned = frozenset()

    async def on_partitions_assigned(self, assigned):
        self.member.events.append(("assign", sorted(tp.partition for tp in assigned)))
        self.member.assigned = frozenset(tp.partition for tp in assigned)


class Member:
    """A subscribed AIOKafkaConsumer in its own task; commits after each processed batch."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, ledger: Ledger):
        self.name, self.topic, self.ledger = name, topic, ledger
        self.assigned = frozenset()
        self.events: list = []
        self.errors: list = []
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            max_poll_interval_ms=30000,
            request_timeout_ms=TIMEOUT * 1000,
        )
        self.task: asyncio.Task | None = None
        self.stopping = False

    async def start(self):
        await asyncio.wait_for(self.consumer.start(), TIMEOUT)
        self.consumer.subscribe([self.topic], listener=Listener(self))
        self.task = asyncio.create_task(self._run(), name=self.name)
        return self

    async def _run(self):
        try:
            while not self.stopping:
                batches = await self.consumer.getmany(timeout_ms=200)
                nexts, batch = {}, []
                for tp, records in batches.items():
                    for r in records:
                        self.ledger.add(self.name, r.partition, r.offset, r.value)
                        batch.append((r.partition, r.offset))
                        nexts[tp] = max(nexts.get(tp, 0), r.offset + 1)
                if nexts:
                    try:
                        await self.consumer.commit(nexts)
                    except KafkaError as e:
                        self.errors.append(f"commit: {e!r}")
                        self.ledger.uncommitted_ok.update(batch)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
            raise

    async def stop(self):
        self.stopping = True
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, TIMEOUT)
            except Exception:  # noqa: BLE001 - already in self.errors
                pass
        await asyncio.wait_for(self.consumer.stop(), TIMEOUT)  # LeaveGroup

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def describe(self) -> str:
        return f"{self.name}: assigned {sorted(self.assigned)}, events {self.events[-6:]}, errors {self.errors[-3:]}"


async def wait(members, cond, what: str, timeout: float = REBALANCE_WAIT_S):
    deadline = time.monotonic() + timeout
    while not cond():
        dead = [m.describe() for m in members if not m.alive()]
        assert not dead, f"consumer task ended while waiting for {what}: {dead}"
        if time.monotonic() > deadline:
            state = "\n  ".join(m.describe() for m in members)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n  {state}")
        await asyncio.sleep(0.1)


def split(members) -> bool:
    owned = [m.assigned for m in members]
    return all(owned) and sum(map(len, owned)) == PARTITIONS and frozenset().union(*owned) == ALL


async def committed(bootstrap: str, group: str, topic: str) -> dict:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await asyncio.wait_for(c.start(), TIMEOUT)
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in sorted(ALL)}
    finally:
        await c.stop()


async def scenario(bootstrap: str, topic: str, group: str):
    ledger = Ledger()
    members = []
    try:
        for i in (1, 2, 3):
            members.append(await Member(f"a{i}", bootstrap, group, topic, ledger).start())
        a1, a2, a3 = members
        await wait(members, lambda: split(members), "3 consumers to split the 6 partitions")
        assert sorted(len(m.assigned) for m in members) == [2, 2, 2], [m.describe() for m in members]
        expected = await produce(bootstrap, topic, "one", 600)
        await wait(members, lambda: ledger.seen_all(expected), "batch 1 consumed")
        ledger.check_exactly_once(expected, "3 consumers")
        for m in members:
            assert {p for p, _ in ledger.positions(m.name)} <= m.assigned, m.describe()

        await a2.stop()  # LeaveGroup
        live = [a1, a3]
        await wait(live, lambda: split(live), "a1 and a3 to own all 6 partitions after a2 left")
        expected |= await produce(bootstrap, topic, "two", 600)
        await wait(live, lambda: ledger.seen_all(expected), "batch 2 consumed by a1 and a3")
        ledger.check_exactly_once(expected, "after a2 left")
        assert not any(m.errors for m in members), [m.describe() for m in members]
    finally:
        for m in members:
            if not m.stopping:
                await m.stop()

    assert await committed(bootstrap, group, topic) == {p: 200 for p in ALL}

    # A consumer restart: a new consumer of the group starts at the committed offsets.
    batch3 = await produce(bootstrap, topic, "three", 60)
    after = Ledger()
    a4 = await Member("a4", bootstrap, group, topic, after).start()
    try:
        await wait([a4], lambda: a4.assigned == ALL, "a4 to get all partitions")
        await wait([a4], lambda: after.seen_all(batch3), "a4 to consume batch 3")
        after.check_exactly_once(batch3, "after the consumer restart (only messages after the last commit)")
    finally:
        await a4.stop()
    assert await committed(bootstrap, group, topic) == {p: 210 for p in ALL}


def test_group_split_leave_resume(kfdb, topic_name):
    topic, group = topic_name(), topic_name("group")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    asyncio.run(scenario(kfdb.bootstrap, topic, group))
