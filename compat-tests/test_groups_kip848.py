"""KIP-848 consumer groups (``group.protocol=consumer``) with confluent-kafka against kfdb: the
broker computes the assignment. Three consumers on a 6-partition topic: once settled every
partition has exactly one owner; everything is consumed exactly once with synchronous commits; one
consumer closes and the other two take over without re-reading committed messages; a consumer
started later in the group resumes at the committed offsets. ConsumerGroupDescribe via the
AdminClient shows the members and their assignments."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, TopicPartition

from ckhelpers import admin_client, base_conf, create_topic, produce, wait_for

# Fast heartbeats: assignments reach members through heartbeats.
KFDB_ARGS = ["--group-consumer-heartbeat-interval-ms", "300"]

PARTITIONS = 6
ALL = set(range(PARTITIONS))


class Member:
    """A consumer polling in its own thread, committing each message after recording it."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, seen: list, lock: threading.Lock):
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
        self.seen, self.lock = seen, lock
        self.stop = threading.Event()
        self.errors: list = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            m = self.consumer.poll(0.2)
            if m is None:
                continue
            if m.error():
                self.errors.append(str(m.error()))
                continue
            with self.lock:
                self.seen.append((self.name, m.partition(), m.offset(), m.value()))
            self.consumer.commit(message=m, asynchronous=False)

    def assignment(self) -> set:
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)
        self.consumer.close()


def test_kip848_group_splits_hands_over_and_resumes(bootstrap, topic_name):
    topic = topic_name("kip848")
    group = f"{topic}-group"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    seen: list = []
    lock = threading.Lock()
    members = [Member(bootstrap, group, topic, f"m{i}", seen, lock) for i in range(3)]
    try:
        def split_evenly():
            sets = [m.assignment() for m in members]
            union = set().union(*sets)
            disjoint = sum(len(s) for s in sets) == len(union)
            return union == ALL and disjoint and all(len(s) == 2 for s in sets)

        wait_for(split_evenly, 60, "three KIP-848 members to own two partitions each")

        first = [{"value": f"a{i}".encode(), "partition": i % PARTITIONS} for i in range(300)]
        produce(bootstrap, topic, first)
        wait_for(lambda: len(seen) >= 300, 60, "the first 300 messages to be consumed")

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
        wait_for(lambda: set().union(*[m.assignment() for m in members]) == ALL, 60,
                 "the remaining members to own all partitions")
        second = [{"value": f"b{i}".encode(), "partition": i % PARTITIONS} for i in range(300)]
        produce(bootstrap, topic, second)
        wait_for(lambda: len(seen) >= 600, 60, "the next 300 messages to be consumed")
        time.sleep(1)  # let any (wrong) duplicate delivery show up before checking
        with lock:
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
    late = Member(bootstrap, group, topic, "late", late_seen, threading.Lock())
    try:
        wait_for(lambda: len(late_seen) >= 60, 60, "the late member to consume the new messages")
        time.sleep(1)
        assert sorted(v for *_, v in late_seen) == sorted(m["value"] for m in third)
        committed = late.consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        assert sorted(tp.offset for tp in committed) == [110] * PARTITIONS
    finally:
        late.close()
