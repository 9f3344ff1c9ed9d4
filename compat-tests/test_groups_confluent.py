"""Consumer groups (classic protocol) with confluent-kafka (librdkafka) against kfdb.

- Three consumers subscribe in one group to a 6-partition topic: once stable every partition has
  exactly one owner; everything produced is consumed exactly once while each consumer commits
  synchronously after processing. One consumer closes (LeaveGroup): the other two take over all
  partitions without re-reading anything committed. A member running in a subprocess is SIGKILLed
  (no LeaveGroup): after its session times out the survivors get its partitions and consume what
  it left uncommitted (and nothing it committed). kfdb restarts: a new consumer in the group
  resumes exactly at the committed offsets.
- cooperative-sticky: two consumers, incremental rebalance (the first one keeps consuming the
  partitions it keeps and gives up only the ones that move).
- AdminClient: list/describe consumer groups, list/alter committed offsets, delete groups
  (NON_EMPTY_GROUP for a group with members); OffsetDelete through kafka-python, because
  confluent-kafka's AdminClient has no delete_consumer_group_offsets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from ckhelpers import admin_client, base_conf, create_topic, produce, wait_for
from grouphelpers import (  # noqa: F401 - KFDB_ARGS / KFDB_ENV are read by the kfdb fixture
    HEARTBEAT_INTERVAL_MS,
    KFDB_ARGS,
    KFDB_ENV,
    REBALANCE_WAIT_S,
    SESSION_TIMEOUT_MS,
    Ledger,
    positions_of,
)

HERE = Path(__file__).resolve().parent
PARTITIONS = 6
ALL = set(range(PARTITIONS))


def group_conf(bootstrap: str, group: str, name: str, **extra) -> dict:
    conf = base_conf(
        bootstrap,
        **{
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "max.poll.interval.ms": 30000,
        },
    )
    conf.update(extra)
    return conf


class Member:
    """A subscribed confluent-kafka consumer that commits synchronously after each processed batch."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, ledger: Ledger, **conf):
        self.name = name
        self.topic = topic
        self.ledger = ledger
        self.consumer = Consumer(group_conf(bootstrap, group, name, **conf))
        self.events: list = []  # ("assign" | "revoke" | "lost", [partitions])
        self.errors: list = []
        self.commit_errors: list = []
        self.closed = False
        self.consumer.subscribe(
            [topic],
            on_assign=lambda c, ps: self.events.append(("assign", sorted(p.partition for p in ps))),
            on_revoke=lambda c, ps: self.events.append(("revoke", sorted(p.partition for p in ps))),
            on_lost=lambda c, ps: self.events.append(("lost", sorted(p.partition for p in ps))),
        )

    def assignment(self) -> set:
        if self.closed:
            return set()
        return {tp.partition for tp in self.consumer.assignment()}

    def step(self, timeout: float = 0.05) -> int:
        """One consume() call; processes (records) the batch, then commits it synchronously."""
        if self.closed:
            return 0
        msgs = self.consumer.consume(num_messages=200, timeout=timeout)
        nexts: dict[int, int] = {}
        batch = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(err))
                    if err.fatal():
                        raise KafkaException(err)
                continue
            self.ledger.add(self.name, m.partition(), m.offset(), m.value())
            batch.append((m.partition(), m.offset()))
            nexts[m.partition()] = max(nexts.get(m.partition(), 0), m.offset() + 1)
        if nexts:
            offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(nexts.items())]
            try:
                res = self.consumer.commit(offsets=offsets, asynchronous=False)
                failed = {tp.partition for tp in res if tp.error is not None}
                if failed:
                    self.commit_errors.append([(tp.partition, str(tp.error)) for tp in res if tp.error])
            except KafkaException as e:
                failed = set(nexts)
                self.commit_errors.append(str(e))
            # Redelivery of what could not be committed is legitimate (at-least-once).
            self.ledger.uncommitted_ok.update(pos for pos in batch if pos[0] in failed)
        return len(batch)

    def committed(self, timeout: float = 10) -> dict:
        tps = self.consumer.committed([TopicPartition(self.topic, p) for p in sorted(ALL)], timeout=timeout)
        return {tp.partition: tp.offset for tp in tps}

    def close(self) -> None:
        if not self.closed:
            self.consumer.close()  # LeaveGroup
            self.closed = True

    def describe(self) -> str:
        return (
            f"{self.name}: assignment {sorted(self.assignment())}, events {self.events[-6:]}, "
            f"errors {self.errors[-3:]}, commit errors {self.commit_errors[-3:]}"
        )


def pump(members, until, what: str, timeout: float = REBALANCE_WAIT_S, extra=lambda: ""):
    """Poll every live member (consume + commit) until ``until()`` holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.step()
        if until():
            return
        if time.monotonic() > deadline:
            state = "\n  ".join(m.describe() for m in members)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n  {state}\n  {extra()}")


def split_evenly(members, parts=ALL) -> bool:
    """Every partition owned by exactly one of ``members`` and each owns at least one."""
    owned = [m.assignment() for m in members]
    return all(owned) and sum(len(a) for a in owned) == len(parts) and set().union(*owned) == parts


def msgs(tag: str, n: int) -> list[dict]:
    return [{"value": f"{tag}-{i}".encode(), "partition": i % PARTITIONS} for i in range(n)]


class Child:
    """ck_group_child.py in a subprocess; its JSON lines are collected by a reader thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, commit_first: int):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "ck_group_child.py"), bootstrap, group, topic, str(commit_first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                self.lines.append({"ev": "junk", "line": raw.decode(errors="replace")})

    def assignment(self) -> set:
        assigned = [e["partitions"] for e in list(self.lines) if e["ev"] == "assigned"]
        revoked = [e for e in list(self.lines) if e["ev"] in ("assigned", "revoked")]
        if not assigned or revoked[-1]["ev"] == "revoked":
            return set()
        return set(assigned[-1])

    def events(self, ev: str) -> list[dict]:
        return [e for e in list(self.lines) if e["ev"] == ev]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)

    def describe(self) -> str:
        stderr = ""
        if self.proc.poll() is not None and self.proc.stderr:
            stderr = self.proc.stderr.read().decode(errors="replace")[-2000:]
        return f"child: exit {self.proc.poll()}, last lines {self.lines[-8:]}, stderr {stderr!r}"


def test_group_split_leave_kill_restart(kfdb, topic_name):
    topic, group = topic_name(), topic_name("group")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    ledger = Ledger()
    expected: set = set()

    # 1. Three members: each partition has exactly one owner; every message consumed exactly once.
    m1, m2, m3 = (Member(f"m{i}", kfdb.bootstrap, group, topic, ledger) for i in (1, 2, 3))
    members = [m1, m2, m3]
    try:
        pump(members, lambda: split_evenly(members), "3 members to split the 6 partitions")
        assert [len(m.assignment()) for m in members] == [2, 2, 2], [m.describe() for m in members]
        expected |= positions_of(produce(kfdb.bootstrap, topic, msgs("one", 600)))
        pump(members, lambda: ledger.seen_all(expected), "batch 1 consumed")
        ledger.check_exactly_once(expected, "3 members")
        for m in members:  # each consumed only from its own partitions
            assert {p for p, _ in ledger.positions(m.name)} <= m.assignment(), m.describe()
        assert m1.committed() == {p: 100 for p in ALL}

        # 2. m2 leaves (close = LeaveGroup): m1 and m3 take over all partitions.
        m2.close()
        live = [m1, m3]
        pump(live, lambda: split_evenly(live), "m1 and m3 to own all 6 partitions after m2 left")
        expected |= positions_of(produce(kfdb.bootstrap, topic, msgs("two", 600)))
        pump(live, lambda: ledger.seen_all(expected), "batch 2 consumed by m1 and m3")
        ledger.check_exactly_once(expected, "after m2 left")
        assert m1.committed() == {p: 200 for p in ALL}

        # 3. A member in a subprocess joins, commits its first messages, consumes more without
        #    committing and is SIGKILLed: no LeaveGroup, kfdb must expire its session.
        child = Child(kfdb.bootstrap, group, topic, commit_first=10)
        try:
            all3 = lambda: split_evenly(live + [child]) if child.assignment() else False  # noqa: E731
            pump(live, all3, "the child to join and the 3 members to split the partitions", extra=child.describe)
            child_parts = child.assignment()
            batch3 = positions_of(produce(kfdb.bootstrap, topic, msgs("three", 600)))
            expected |= batch3
            child_expected = {(p, o) for p, o in batch3 if p in child_parts}

            def child_done():
                got = {(e["p"], e["o"]) for e in child.events("msg")}
                return child.events("uncommitted_phase") and len(got) > 10

            pump(live, child_done, "the child to commit 10 messages and consume more", extra=child.describe)
            child.kill()
        finally:
            if child.proc.poll() is None:
                child.kill()
        assert not child.events("commit_failed"), child.describe()
        child_committed: dict[int, int] = {}
        for e in child.events("committed"):
            child_committed[e["p"]] = max(child_committed.get(e["p"], 0), e["o"])
        child_consumed = {(e["p"], e["o"]) for e in child.events("msg")}
        assert child_consumed <= child_expected, "the child consumed outside its assignment"

        # The survivors get the child's partitions once its session timed out (6 s) ...
        pump(live, lambda: split_evenly(live), "m1 and m3 to take over the SIGKILLed member's partitions")
        # ... and consume everything it had not committed: from its committed offset on (200 if
        # it committed nothing on that partition), nothing before.
        resume = {p: child_committed.get(p, 200) for p in child_parts}
        must_get = {(p, o) for p, o in child_expected if o >= resume[p]}
        pump(live, lambda: must_get <= ledger.positions(), "the survivors to consume the child's uncommitted messages")
        pump(live, lambda: (expected - child_consumed) <= ledger.positions(), "batch 3 consumed")
        survivors_on_child_parts = {(p, o) for p, o in ledger.positions() if p in child_parts and o >= 200}
        assert survivors_on_child_parts == must_get, (
            f"survivors consumed {sorted(survivors_on_child_parts - must_get)[:20]} that the killed member had "
            f"committed (resume offsets {resume}), or missed {sorted(must_get - survivors_on_child_parts)[:20]}"
        )
        assert child_consumed - ledger.positions() == {(p, o) for p, o in child_consumed if o < resume[p]}, (
            "what the child consumed and committed must not be consumed again; the rest must be"
        )
        # The whole run: nothing lost; in-process members never consumed anything twice.
        assert expected == ledger.positions() | child_consumed
        in_process_expected = expected - {(p, o) for p, o in child_consumed if o < resume[p]}
        ledger.check_exactly_once(in_process_expected, "whole run (in-process members)")
        assert m1.committed() == {p: 300 for p in ALL}
    finally:
        for m in members:
            m.close()

    # 4. kfdb restarts; a new member resumes exactly at the committed offsets.
    assert kfdb.restart() in (0, None)
    batch4 = positions_of(produce(kfdb.bootstrap, topic, msgs("four", 60)))
    assert {o for _, o in batch4} == set(range(300, 310)), batch4
    after = Ledger()
    m4 = Member("m4", kfdb.bootstrap, group, topic, after)
    try:
        pump([m4], lambda: m4.assignment() == ALL, "m4 to get all partitions after the restart")
        pump([m4], lambda: after.seen_all(batch4), "m4 to consume what was produced after the restart")
        after.check_exactly_once(batch4, "after the restart (only messages after the last commit)")
        assert m4.committed() == {p: 310 for p in ALL}
    finally:
        m4.close()


def test_cooperative_sticky_incremental_rebalance(kfdb, topic_name):
    topic, group = topic_name(), topic_name("group")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    ledger = Ledger()
    coop = {"partition.assignment.strategy": "cooperative-sticky"}
    c1 = Member("c1", kfdb.bootstrap, group, topic, ledger, **coop)
    c2 = None
    try:
        pump([c1], lambda: c1.assignment() == ALL, "c1 alone to get all 6 partitions")
        expected = positions_of(produce(kfdb.bootstrap, topic, msgs("before", 300)))
        pump([c1], lambda: ledger.seen_all(expected), "c1 to consume the first batch")

        c2 = Member("c2", kfdb.bootstrap, group, topic, ledger, **coop)
        both = [c1, c2]
        # Produce while the second member joins: consumption goes on during the rebalance.
        expected |= positions_of(produce(kfdb.bootstrap, topic, msgs("during", 300)))
        pump(both, lambda: [len(m.assignment()) for m in both] == [3, 3] and split_evenly(both), "a 3/3 split")
        expected |= positions_of(produce(kfdb.bootstrap, topic, msgs("after", 300)))
        pump(both, lambda: ledger.seen_all(expected), "all messages consumed by c1 and c2")
        ledger.check_exactly_once(expected, "cooperative-sticky")

        # Incremental: c1 never gave up everything; it revoked exactly the 3 partitions c2 got.
        revoked = [ps for ev, ps in c1.events if ev in ("revoke", "lost")]
        assert revoked and all(len(ps) < PARTITIONS for ps in revoked), c1.events
        assert set().union(*map(set, revoked)) == c2.assignment(), (c1.events, c2.events)
        assert [ev for ev in c2.events if ev[0] != "assign"] == [], c2.events
        assert c1.committed() == {p: 150 for p in ALL}
    finally:
        for m in (c1, c2):
            if m is not None:
                m.close()


def test_static_member_rejoins_a_stable_group_without_a_rebalance(kfdb, topic_name):
    """KIP-345: a consumer with group.instance.id that restarts within its session (librdkafka
    sends no LeaveGroup for static members) gets its old partitions back; the other member sees no
    rebalance at all and everything is consumed exactly once."""
    topic, group = topic_name(), topic_name("group")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    ledger = Ledger()
    a = Member("a", kfdb.bootstrap, group, topic, ledger, **{"group.instance.id": "static-a"})
    b = Member("b", kfdb.bootstrap, group, topic, ledger, **{"group.instance.id": "static-b"})
    b2 = None
    try:
        pump([a, b], lambda: split_evenly([a, b]), "a stable split between a and b")
        expected = positions_of(produce(kfdb.bootstrap, topic, msgs("before", 120)))
        pump([a, b], lambda: ledger.seen_all(expected), "a and b to consume the first batch")
        b_partitions, a_events = b.assignment(), list(a.events)

        b.close()  # a static member: no LeaveGroup
        b2 = Member("b2", kfdb.bootstrap, group, topic, ledger, **{"group.instance.id": "static-b"})
        pump([a, b2], lambda: b2.assignment() == b_partitions, "the restarted static member to get its partitions")
        expected |= positions_of(produce(kfdb.bootstrap, topic, msgs("after", 120)))
        pump([a, b2], lambda: ledger.seen_all(expected), "a and the restarted b to consume the second batch")
        # A few heartbeat intervals more: a rebalance would reach a through its heartbeat.
        deadline = time.monotonic() + 3 * HEARTBEAT_INTERVAL_MS / 1000
        while time.monotonic() < deadline:
            for m in (a, b2):
                m.step()
        assert a.events == a_events, f"the other member saw a rebalance: {a.events}"
        assert b2.events == [("assign", sorted(b_partitions))], b2.events
        ledger.check_exactly_once(expected, "static member restart")
    finally:
        for m in (a, b, b2):
            if m is not None:
                m.close()


def _group_description(admin, group: str):
    return admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=30)


def _listed_groups(admin) -> dict:
    res = admin.list_consumer_groups(request_timeout=30).result(timeout=30)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def _committed(admin, group: str, topic: str) -> dict:
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
    res = admin.list_consumer_group_offsets(req, request_timeout=30)[group].result(timeout=30)
    assert res.group_id == group
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, tp
        out[tp.partition] = tp.offset
    return out


def test_admin_consumer_groups(kfdb, topic_name):
    topic, group, other = topic_name(), topic_name("group"), topic_name("other")
    create_topic(kfdb.bootstrap, topic, partitions=PARTITIONS)
    produce(kfdb.bootstrap, topic, msgs("admin", 120))  # 20 per partition
    admin = admin_client(kfdb.bootstrap)
    ledger = Ledger()
    a, b = (Member(n, kfdb.bootstrap, group, topic, ledger) for n in ("a", "b"))
    try:
        pump([a, b], lambda: split_evenly([a, b]) and len(ledger.positions()) == 120, "2 members to consume 120")
        ledger.check_exactly_once({(p, o) for p in ALL for o in range(20)}, "admin group")

        listed = wait_for(lambda: _listed_groups(admin).get(group), 30, f"{group} in list_consumer_groups")
        assert listed.is_simple_consumer_group is False
        assert listed.state == ConsumerGroupState.STABLE, listed

        desc = wait_for(
            lambda: (d := _group_description(admin, group)).state == ConsumerGroupState.STABLE and d,
            30,
            "describe_consumer_groups: Stable",
        )
        assert desc.group_id == group
        assert desc.is_simple_consumer_group is False
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert desc.coordinator.id == 1 and f"{desc.coordinator.host}:{desc.coordinator.port}" == kfdb.bootstrap
        assert sorted(mem.client_id for mem in desc.members) == ["a", "b"], desc.members
        assigned = {}
        for mem in desc.members:
            parts = {tp.partition for tp in mem.assignment.topic_partitions if tp.topic == topic}
            owner = a if mem.client_id == "a" else b
            assert parts == owner.assignment(), (mem, owner.describe())
            assigned[mem.client_id] = parts
        assert set().union(*assigned.values()) == ALL and sum(map(len, assigned.values())) == PARTITIONS

        assert _committed(admin, group, topic) == {p: 20 for p in ALL}

        # DeleteGroups on a group with members: NON_EMPTY_GROUP.
        fut = admin.delete_consumer_groups([group], request_timeout=30)[group]
        with pytest.raises(KafkaException) as exc:
            fut.result(timeout=30)
        assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, exc.value
    finally:
        a.close()
        b.close()

    # Empty now.
    desc = wait_for(
        lambda: (d := _group_description(admin, group)).state == ConsumerGroupState.EMPTY and d,
        30,
        "describe_consumer_groups: Empty after both members closed",
    )
    assert desc.members == []
    assert _listed_groups(admin)[group].state == ConsumerGroupState.EMPTY

    # AlterConsumerGroupOffsets (OffsetCommit of an admin, no member) on the empty group.
    new = [TopicPartition(topic, p, 5 + p) for p in range(3)]
    res = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, new)], request_timeout=30)
    altered = res[group].result(timeout=30)
    assert all(tp.error is None for tp in altered.topic_partitions), altered.topic_partitions
    assert _committed(admin, group, topic) == {0: 5, 1: 6, 2: 7, 3: 20, 4: 20, 5: 20}

    # A consumer of the group now starts at the altered offsets.
    again = Ledger()
    c = Member("c", kfdb.bootstrap, group, topic, again)
    try:
        want = {(p, o) for p in range(3) for o in range(5 + p, 20)}
        pump([c], lambda: c.assignment() == ALL and again.seen_all(want), "c to consume from the altered offsets")
        again.check_exactly_once(want, "after alter_consumer_group_offsets")
    finally:
        c.close()

    # OffsetDelete on the empty group (kafka-python: confluent-kafka has no delete_consumer_group_offsets).
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient

    kadmin = KafkaAdminClient(bootstrap_servers=kfdb.bootstrap, request_timeout_ms=30000)
    try:
        res = kadmin.delete_group_offsets(group, [KTP(topic, 0), KTP(topic, 1)])
        assert {tp.partition: err.errno for tp, err in res.items()} == {0: 0, 1: 0}, res
    finally:
        kadmin.close()
    after_delete = _committed(admin, group, topic)
    assert after_delete == {0: -1001, 1: -1001, 2: 20, 3: 20, 4: 20, 5: 20}, after_delete

    # A second group with a member, to check that deleting several at once reports per group.
    o = Member("o", kfdb.bootstrap, other, topic, Ledger())
    try:
        pump([o], lambda: o.assignment() == ALL, "the other group's member to get its partitions")
        futs = admin.delete_consumer_groups([group, other], request_timeout=30)
        futs[group].result(timeout=30)  # empty: deleted
        with pytest.raises(KafkaException) as exc:
            futs[other].result(timeout=30)
        assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, exc.value
    finally:
        o.close()
    groups = _listed_groups(admin)
    assert group not in groups, groups.get(group)
    assert other in groups
    # A deleted group has no committed offsets left.
    assert _committed(admin, group, topic) == {p: -1001 for p in ALL}
    admin.delete_consumer_groups([other], request_timeout=30)[other].result(timeout=30)
    assert other not in _listed_groups(admin)
