"""KIP-848 consumer groups (``group.protocol=consumer``) with confluent-kafka against kfdb: the
broker computes the assignment. Three consumers on a 6-partition topic: once settled every
partition has exactly one owner; everything is consumed exactly once with synchronous commits; one
consumer closes and the other two take over without re-reading committed messages; a consumer
started later in the group resumes at the committed offsets. ConsumerGroupDescribe via the
AdminClient shows the members and their assignments."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from ckhelpers import admin_client, base_conf, create_topic, produce, wait_for

# Fast heartbeats: assignments reach members through heartbeats.
KFDB_ARGS = ["--group-consumer-heartbeat-interval-ms", "300"]
KFDB_ENV = {"KFDB_LOG": "info,kfdb_broker::handlers::consumer_group_heartbeat=debug"}

PARTITIONS = 6
ALL = set(range(PARTITIONS))


class Member:
    """A consumer that records and synchronously commits every message it gets. All members are
    polled round-robin from the test's thread (librdkafka consumers are not polled concurrently
    with other calls on them)."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, seen: list):
        self.name = name
        self.consumer = Consumer(
            base_conf(
                bootstrap,
                **{
                    "group.id": group,
                    "group.protocol": "consumer",
                    "client.id": name,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                },
            )
        )
        self.consumer.subscribe([topic])
        self.seen = seen
        self.errors: list = []

    def poll_once(self):
        m = self.consumer.poll(0.05)
        if m is None:
            return
        if m.error():
            self.errors.append(str(m.error()))
            return
        self.seen.append((self.name, m.partition(), m.offset(), m.value()))
        self.consumer.commit(message=m, asynchronous=False)

    def assignment(self) -> set:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self):
        self.consumer.close()


def poll_until(members: list, predicate, timeout: float, what: str):
    """Poll every member round-robin until ``predicate()`` holds."""

    def step():
        for m in members:
            m.poll_once()
        return predicate()

    wait_for(step, timeout, what, interval=0)


def test_kip848_group_splits_hands_over_and_resumes(bootstrap, topic_name):
    topic = topic_name("kip848")
    group = f"{topic}-group"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    seen: list = []
    members = [Member(bootstrap, group, topic, f"m{i}", seen) for i in range(3)]
    try:
        def split_evenly():
            sets = [m.assignment() for m in members]
            union = set().union(*sets)
            disjoint = sum(len(s) for s in sets) == len(union)
            return union == ALL and disjoint and all(len(s) == 2 for s in sets)

        poll_until(members, split_evenly, 60, "three KIP-848 members to own two partitions each")

        first = [{"value": f"a{i}".encode(), "partition": i % PARTITIONS} for i in range(300)]
        produce(bootstrap, topic, first)
        poll_until(members, lambda: len(seen) >= 300, 60, "the first 300 messages to be consumed")

        # Describe through the admin API (ConsumerGroupDescribe for consumer-protocol groups).
        admin = admin_client(bootstrap)
        desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
        assert len(desc.members) == 3, desc
        described = set()
        for m in desc.members:
            described |= {tp.partition for tp in m.assignment.topic_partitions}
        assert described == ALL, desc

        # One member leaves: the other two take over everything.
        leaver = members.pop(0)
        leaver.close()
        poll_until(
            members,
            lambda: set().union(*[m.assignment() for m in members]) == ALL,
            60,
            "the remaining members to own all partitions",
        )
        second = [{"value": f"b{i}".encode(), "partition": i % PARTITIONS} for i in range(300)]
        produce(bootstrap, topic, second)
        poll_until(members, lambda: len(seen) >= 600, 60, "the next 300 messages to be consumed")
        # Let any (wrong) duplicate delivery show up before checking.
        deadline = time.monotonic() + 1
        poll_until(members, lambda: time.monotonic() > deadline, 10, "a last second of polling")
        positions = [(p, o) for _, p, o, _ in seen]
        assert len(positions) == len(set(positions)) == 600, "every message consumed exactly once"
        assert all(not m.errors for m in members), [m.errors for m in members]
    finally:
        for m in members:
            m.close()

    # A new member resumes at the committed offsets: it sees only what is produced now.
    third = [{"value": f"c{i}".encode(), "partition": i % PARTITIONS} for i in range(60)]
    produce(bootstrap, topic, third)
    late_seen: list = []
    late = Member(bootstrap, group, topic, "late", late_seen)
    try:
        poll_until([late], lambda: len(late_seen) >= 60, 60, "the late member to consume the new messages")
        deadline = time.monotonic() + 1
        poll_until([late], lambda: time.monotonic() > deadline, 10, "a last second of polling")
        assert sorted(v for *_, v in late_seen) == sorted(m["value"] for m in third)
        committed = late.consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        assert sorted(tp.offset for tp in committed) == [110] * PARTITIONS
    finally:
        late.close()
