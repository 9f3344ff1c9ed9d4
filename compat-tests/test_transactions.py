"""Transactions (KIP-98: transactional.id, EndTxn, control markers, read_committed) with real clients.

- confluent-kafka transactional producer on a 3-partition topic: a committed transaction, an
  aborted one (produced, flushed, then aborted), another committed one. A read_committed consumer
  (manual assignment from the beginning) gets exactly the committed values, in per-partition send
  order, at the offsets of their delivery reports; a read_uncommitted consumer also gets the
  aborted ones. librdkafka returns no control record as a message; after reading to the end its
  position is the high watermark (past the last commit marker), and the high watermark is the
  same for both isolation levels (no transaction is open). Alternating committed and aborted
  transactions read with tiny fetch sizes (fetches start and end inside transactions), from the
  beginning and from offsets inside aborted / committed transactions: exactly the committed
  records at or after the start offset.
- Consume-transform-produce (confluent-kafka): a read_committed consumer in a group and a
  transactional producer: round 1 produces the transformed records and sends the consumer's
  positions with send_offsets_to_transaction, commits; round 2 does the same and aborts: while it
  is open AdminClient.list_consumer_group_offsets(require_stable=True) reports
  UNSTABLE_OFFSET_COMMIT for the partitions it has offsets for, after the abort the group's
  committed offsets are round 1's and the output (read_committed) holds only round 1's records;
  round 3 seeks back to the committed offsets and processes the rest, commits. The output holds
  exactly one transformed record per input record and the group's committed offsets are the input
  topic's end offsets. Offsets sent with the group metadata of a generation a rebalance ended are
  refused (KIP-447: ILLEGAL_GENERATION, abortable); the member's current metadata works.
  Transactions carrying only offsets (nothing produced) commit/abort them; empty ones end fine.
- Zombie fencing (confluent-kafka): producer A (transactional.id X) has a transaction open with
  flushed records; producer B with the same X calls init_transactions. A's late records to the same
  partition are refused (they never reach the log) and A's commit_transaction fails with a fatal
  fencing error; B commits: read_committed shows B's records and none of A's.
- Two producers' transactions interleaved in one partition (one lz4-compressed): read_committed
  stops at the first record of the oldest open transaction (even before another producer's
  committed records) and, once both ended, gets exactly the committed records. A tailing
  read_committed consumer (long-poll fetches) gets nothing while a transaction is open and its
  records once it commits.
- kafkajs (js/txn.js): transactionalId + idempotent + maxInFlightRequests 1: committed, aborted,
  committed transactions; sendOffsets in a committed and in an aborted transaction (admin
  fetchOffsets); a second producer with the same transactionalId fences the first one (its commit
  rejects); kafkajs consumers in a group read with read_committed (default) and read_uncommitted.
- kafka-python 3 and aiokafka transactional producers: committed / aborted / committed (kafka-python
  also with send_offsets_to_transaction and a fenced zombie), read back with the same client's
  read_committed consumer (and aiokafka's read_uncommitted).
- kafka-python KafkaAdminClient: list_transactions, describe_transactions and describe_producers
  show an open transaction (state, partitions, producer, first offset) and its completion.
- Durability: a committed and an aborted transaction survive SIGKILL + restart (read_committed and
  read_uncommitted views unchanged). A producer keeps its transaction open across a kfdb restart
  (SIGTERM, and SIGKILL + start), produces more into it afterwards and commits: all of it is
  visible. A transaction open when kfdb is SIGKILLed (its producer process killed too) stays open
  after the restart: its records and everything after them stay invisible to read_committed (the
  last stable offset holds at its first record; DescribeTransactions says Ongoing) until a new
  producer with the same transactional.id calls init_transactions, which aborts it; then
  read_committed proceeds past it.

The transaction timeout sweeper is tested in test_transactions_timeout.py (it needs its own kfdb
flags).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ckhelpers import admin_client, base_conf, consume, create_topic, produce, wait_for
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from jshelpers import kafkajs_test, run_js
from txnhelpers import (
    TIMEOUT,
    by_partition,
    check_reports,
    committed_values,
    fencing_error,
    produce_txn,
    read_to_end,
    txn_producer,
)

HERE = Path(__file__).resolve().parent

# Short initial rebalance delay for the group consumers; kfdb logs transaction refusals (EndTxn,
# InitProducerId, produce) at debug level.
KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500"]
KFDB_ENV = {"KFDB_LOG": os.environ.get("KFDB_LOG", "info,kfdb_log=debug,kfdb_broker=debug")}


# --------------------------------------------------------------------------------------------
# 1. committed / aborted / committed, both isolation levels, small fetches
# --------------------------------------------------------------------------------------------


def test_commit_abort_commit_visibility(bootstrap, topic_name):
    topic = topic_name()
    parts = 3
    create_topic(bootstrap, topic, partitions=parts)
    producer = txn_producer(bootstrap, topic_name("txn"))
    producer.init_transactions(TIMEOUT)

    def batch(tag: str) -> list[tuple[int, bytes]]:
        return [(i % parts, f"{tag}-{i}".encode()) for i in range(12)]

    sent = {}
    where = {}
    for tag, commit in (("committed-1", True), ("aborted", False), ("committed-2", True)):
        sent[tag] = batch(tag)
        producer.begin_transaction()
        reports = produce_txn(producer, topic, sent[tag])
        if commit:
            producer.commit_transaction(TIMEOUT)
        else:
            assert producer.flush(TIMEOUT) == 0, "aborted transaction's records not flushed"
            producer.abort_transaction(TIMEOUT)
        producer.poll(0)
        where[tag] = check_reports(reports, len(sent[tag]), tag)
    assert not producer.errors, producer.errors

    committed = read_to_end(bootstrap, topic, range(parts), "read_committed")
    uncommitted = read_to_end(bootstrap, topic, range(parts), "read_uncommitted")

    def expect(tags):
        rows = [(p, v) for t in tags for p, v in sent[t]]
        return {p: [v for q, v in rows if q == p] for p in range(parts)}

    got_c = by_partition((p, o, v) for p, o, v, _ in committed["msgs"])
    assert got_c == expect(["committed-1", "committed-2"]), f"read_committed got {got_c}"
    got_u = by_partition((p, o, v) for p, o, v, _ in uncommitted["msgs"])
    assert got_u == expect(["committed-1", "aborted", "committed-2"]), f"read_uncommitted got {got_u}"

    # Every record at the offset its delivery report gave, with its key.
    for view in (committed, uncommitted):
        for p, o, v, k in view["msgs"]:
            tag = v.decode().rsplit("-", 1)[0]
            assert where[tag][v] == (p, o), f"{v!r} read at {(p, o)}, delivered at {where[tag][v]}"
            assert k == b"k-" + v, f"{v!r}: key {k!r}"

    # The aborted records sit between the two committed transactions.
    for p in range(parts):
        offs = {t: [where[t][v][1] for q, v in sent[t] if q == p] for t in sent}
        assert max(offs["committed-1"]) < min(offs["aborted"]) <= max(offs["aborted"]) < min(offs["committed-2"]), offs

    for p in range(parts):
        last = max(where["committed-2"][v][1] for q, v in sent["committed-2"] if q == p)
        low_c, high_c = committed["watermarks"][p]
        low_u, high_u = uncommitted["watermarks"][p]
        assert (low_c, high_c) == (low_u, high_u) == (0, high_u), (
            f"partition {p}: watermarks read_committed {(low_c, high_c)} vs read_uncommitted {(low_u, high_u)} "
            f"(no transaction is open: the last stable offset is the high watermark)"
        )
        assert high_u > last, f"partition {p}: high watermark {high_u} not past the last record {last}"
        for name, view in (("read_committed", committed), ("read_uncommitted", uncommitted)):
            assert view["position"][p] == high_u, (
                f"partition {p}: {name} position {view['position'][p]} after reading everything, "
                f"high watermark {high_u}"
            )


def test_read_committed_small_fetches_and_mid_transaction_starts(bootstrap, topic_name):
    """Alternating committed and aborted transactions of many small batches, read with fetch sizes
    of a few batches (so fetches start and end inside transactions), from the beginning and from
    offsets inside aborted and committed transactions: read_committed returns exactly the
    committed records at or after the start offset, in order."""
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    p = txn_producer(bootstrap, topic_name("txn"), **{"batch.num.messages": 10, "linger.ms": 5})
    p.init_transactions(TIMEOUT)
    txns = []  # (commit, {value: offset})
    for t in range(6):
        commit = t % 2 == 0
        p.begin_transaction()
        reports = produce_txn(p, topic, [(0, f"t{t}-{i:04d}-".encode() + b"x" * 150) for i in range(200)])
        assert p.flush(TIMEOUT) == 0
        if commit:
            p.commit_transaction(TIMEOUT)
        else:
            p.abort_transaction(TIMEOUT)
        txns.append((commit, {v: o for v, (_, o) in check_reports(reports, 200, f"transaction {t}").items()}))
    assert not p.errors, p.errors
    committed = sorted((o, v) for commit, recs in txns if commit for v, o in recs.items())
    starts = {
        "beginning": OFFSET_BEGINNING,
        "middle of the first aborted transaction": sorted(txns[1][1].values())[100],
        "last record of an aborted transaction": max(txns[3][1].values()),
        "middle of a committed transaction": sorted(txns[2][1].values())[57],
    }
    small = {
        "max.partition.fetch.bytes": 1024,
        "fetch.max.bytes": 4096,
        "message.max.bytes": 4096,  # librdkafka wants fetch.max.bytes >= message.max.bytes
        "receive.message.max.bytes": 1_000_000,
        "isolation.level": "read_committed",
    }
    for what, start in starts.items():
        want = [v for o, v in committed if start == OFFSET_BEGINNING or o >= start]
        got = consume(bootstrap, topic, [0], expected=len(want), start_offset=start, **small)
        values = [m.value for m in got]
        diff = next((i for i, (a, b) in enumerate(zip(values, want, strict=False)) if a != b), None)
        assert values == want, (
            f"read_committed from {what} ({start}): {len(values)} records, expected {len(want)}; "
            f"first difference at index {diff}"
        )
        positions = set(committed)
        for m in got:
            assert (m.offset, m.value) in positions, f"{m.value[:12]!r} read at offset {m.offset}"


# --------------------------------------------------------------------------------------------
# 2. consume-transform-produce, offsets in transactions
# --------------------------------------------------------------------------------------------


def test_consume_transform_produce(bootstrap, topic_name):
    src, out, group = topic_name("in"), topic_name("out"), topic_name("group")
    parts, n = 3, 90
    create_topic(bootstrap, src, partitions=parts)
    create_topic(bootstrap, out, partitions=parts)
    produce(bootstrap, src, [{"value": f"rec-{i}".encode(), "partition": i % parts} for i in range(n)])
    per_part = n // parts

    consumer = Consumer(
        base_conf(
            bootstrap,
            **{
                "group.id": group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
            },
        )
    )
    producer = txn_producer(bootstrap, topic_name("txn"))
    admin = admin_client(bootstrap)
    all_tps = [TopicPartition(src, p) for p in range(parts)]
    try:
        consumer.subscribe([src])
        producer.init_transactions(TIMEOUT)
        pending: list = []  # consumed messages not yet processed

        def take(count: int) -> list:
            deadline = time.monotonic() + TIMEOUT
            while len(pending) < count:
                assert time.monotonic() < deadline, f"consumed {len(pending)} of {count} within {TIMEOUT} s"
                for m in consumer.consume(num_messages=count - len(pending), timeout=0.5):
                    if m.error() is not None:
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(m.error())
                        continue
                    pending.append(m)
            batch = pending[:count]
            del pending[:count]
            return batch

        def transform(batch: list, commit: bool) -> dict:
            """One transaction: the transformed batch to ``out`` and the positions after it as the
            group's offsets. Returns the offsets sent."""
            producer.begin_transaction()
            reports = produce_txn(
                producer,
                out,
                [(m.partition(), m.value().upper() + f"@{m.partition()}:{m.offset()}".encode()) for m in batch],
            )
            nexts: dict = {}
            for m in batch:
                nexts[m.partition()] = max(nexts.get(m.partition(), 0), m.offset() + 1)
            offsets = [TopicPartition(src, p, o) for p, o in sorted(nexts.items())]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), TIMEOUT)
            assert producer.flush(TIMEOUT) == 0
            check_reports(reports, len(batch), "transformed records")
            if commit:
                producer.commit_transaction(TIMEOUT)
            else:
                # While open: the offsets are pending (unstable) for a require_stable reader.
                res = admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, all_tps)], require_stable=True, request_timeout=TIMEOUT
                )[group].result(TIMEOUT)
                unstable = {tp.partition for tp in res.topic_partitions if tp.error is not None}
                errs = {tp.error.code() for tp in res.topic_partitions if tp.error is not None}
                assert unstable == set(nexts) and errs == {KafkaError.UNSTABLE_OFFSET_COMMIT}, (
                    f"list_consumer_group_offsets(require_stable=True) during the open transaction: "
                    f"{[(tp.partition, tp.offset, str(tp.error)) for tp in res.topic_partitions]}, "
                    f"expected UNSTABLE_OFFSET_COMMIT for partitions {sorted(nexts)}"
                )
                producer.abort_transaction(TIMEOUT)
            return nexts

        def group_offsets() -> dict:
            # Kafka writes a transaction's markers and offsets after EndTxn has answered: until
            # then a require_stable read answers UNSTABLE_OFFSET_COMMIT, which clients retry
            # (kfdb finishes inside EndTxn).
            deadline = time.monotonic() + TIMEOUT
            while True:
                res = admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, all_tps)], require_stable=True, request_timeout=TIMEOUT
                )[group].result(TIMEOUT)
                errs = [tp.error for tp in res.topic_partitions if tp.error is not None]
                if errs and time.monotonic() < deadline and all(
                    e.code() == KafkaError.UNSTABLE_OFFSET_COMMIT for e in errs
                ):
                    time.sleep(0.1)
                    continue
                assert not errs, [str(e) for e in errs]
                return {tp.partition: tp.offset for tp in res.topic_partitions if tp.offset >= 0}

        # Round 1: committed.
        round1 = take(30)
        sent1 = transform(round1, commit=True)
        assert group_offsets() == sent1
        committed_view = {
            tp.partition: tp.offset for tp in consumer.committed(all_tps, timeout=TIMEOUT) if tp.offset >= 0
        }
        assert committed_view == sent1, f"consumer.committed {committed_view}, sent {sent1}"

        # Round 2: aborted.
        round2 = take(30)
        transform(round2, commit=False)
        assert group_offsets() == sent1, "the aborted transaction's offsets became the group's offsets"
        committed_view = {
            tp.partition: tp.offset for tp in consumer.committed(all_tps, timeout=TIMEOUT) if tp.offset >= 0
        }
        assert committed_view == sent1, f"after the abort consumer.committed says {committed_view}, expected {sent1}"
        want1 = sorted((m.partition(), m.value().upper() + f"@{m.partition()}:{m.offset()}".encode()) for m in round1)
        got = committed_values(bootstrap, out, range(parts), expected=len(round1))
        assert sorted((p, v) for p, _, v in got) == want1, "read_committed output after the abort is not round 1's"

        # Round 3: back to the committed offsets (what an application does after an abort), the rest.
        pending.clear()
        for p in range(parts):
            consumer.seek(TopicPartition(src, p, sent1.get(p, OFFSET_BEGINNING)))
        remaining = n - len(round1)
        round3 = take(remaining)
        transform(round3, commit=True)
        assert not producer.errors, producer.errors
    finally:
        consumer.close()

    # Every input record processed exactly once in the committed rounds.
    positions = sorted((m.partition(), m.offset()) for m in round1 + round3)
    assert positions == sorted((p, o) for p in range(parts) for o in range(per_part)), (
        f"committed rounds consumed {len(positions)} positions, duplicates/missing vs {n}"
    )
    assert group_offsets() == {p: per_part for p in range(parts)}
    assert sum(group_offsets().values()) == len(round1) + len(round3) == n

    want = sorted((p, f"REC-{o * parts + p}@{p}:{o}".encode()) for p in range(parts) for o in range(per_part))
    got = committed_values(bootstrap, out, range(parts), expected=n)
    have = {(p, v) for p, _, v in got}
    assert sorted((p, v) for p, _, v in got) == want, (
        f"output (read_committed): {len(got)} records for {n} inputs; "
        f"extra {sorted(have - set(want))[:5]}, missing {sorted(set(want) - have)[:5]}"
    )
    # The aborted round's records are in the log (read_uncommitted), just not visible committed.
    got_u = consume(bootstrap, out, range(parts), expected=n + len(round2), **{"isolation.level": "read_uncommitted"})
    assert len(got_u) == n + len(round2), f"read_uncommitted output: {len(got_u)} records"


def test_offsets_only_transactions(bootstrap, topic_name):
    """Transactions that only carry consumed offsets (send_offsets_to_transaction, nothing
    produced): committed, they become the group's offsets; aborted, they vanish; while open they
    are unstable for require_stable readers. Empty transactions commit and abort."""
    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    tps = [TopicPartition(topic, q) for q in range(2)]
    consumer = Consumer(base_conf(bootstrap, **{"group.id": group}))  # for its group metadata only
    admin = admin_client(bootstrap)
    p = txn_producer(bootstrap, topic_name("txn"))
    p.init_transactions(TIMEOUT)

    def offsets() -> dict:
        res = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, tps)], require_stable=True, request_timeout=TIMEOUT
        )[group].result(TIMEOUT)
        return {tp.partition: (tp.offset, tp.error.code() if tp.error else None) for tp in res.topic_partitions}

    def settled_offsets() -> dict:
        """offsets() once no partition is unstable any more: Kafka completes a transaction's
        offsets after EndTxn has answered (kfdb inside EndTxn)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            got = offsets()
            unstable = any(err == KafkaError.UNSTABLE_OFFSET_COMMIT for _, err in got.values())
            if not unstable or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    try:
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 3)], consumer.consumer_group_metadata(), TIMEOUT)
        pending = offsets()
        assert pending[0][1] == KafkaError.UNSTABLE_OFFSET_COMMIT and pending[1] == (-1001, None), pending
        p.commit_transaction(TIMEOUT)
        assert settled_offsets() == {0: (3, None), 1: (-1001, None)}

        p.begin_transaction()
        p.send_offsets_to_transaction(
            [TopicPartition(topic, 0, 9), TopicPartition(topic, 1, 4)], consumer.consumer_group_metadata(), TIMEOUT
        )
        p.abort_transaction(TIMEOUT)
        assert settled_offsets() == {0: (3, None), 1: (-1001, None)}, "an aborted transaction's offsets were committed"

        for end in (p.commit_transaction, p.abort_transaction):
            p.begin_transaction()
            end(TIMEOUT)
        assert not p.errors, p.errors
    finally:
        consumer.close()


def test_send_offsets_with_stale_group_generation_is_refused(bootstrap, topic_name):
    """KIP-447: offsets sent with the consumer group metadata of a generation that a rebalance
    ended are refused (ILLEGAL_GENERATION, an abortable error); after aborting, the same producer
    commits with the member's current metadata."""
    src, out, group = topic_name("in"), topic_name("out"), topic_name("group")
    create_topic(bootstrap, src, partitions=4)
    create_topic(bootstrap, out, partitions=1)

    def member(name: str) -> Consumer:
        c = Consumer(
            base_conf(
                bootstrap,
                **{
                    "group.id": group,
                    "client.id": name,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 1000,
                },
            )
        )
        c.subscribe([src])
        return c

    c1 = member("c1")
    c2 = None
    p = txn_producer(bootstrap, topic_name("txn"))
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(c1.assignment()) < 4:
            assert time.monotonic() < deadline, f"c1 assignment {c1.assignment()}"
            c1.poll(0.2)
        stale = c1.consumer_group_metadata()
        c2 = member("c2")
        deadline = time.monotonic() + TIMEOUT
        while not (len(c1.assignment()) == 2 and len(c2.assignment()) == 2):
            assert time.monotonic() < deadline, f"no 2+2 split: c1 {c1.assignment()}, c2 {c2.assignment()}"
            c1.poll(0.1)
            c2.poll(0.1)
        mine = sorted(tp.partition for tp in c1.assignment())

        p.init_transactions(TIMEOUT)
        p.begin_transaction()
        p.produce(out, value=b"with-stale-offsets", partition=0)
        with pytest.raises(KafkaException) as exc_info:
            p.send_offsets_to_transaction([TopicPartition(src, q, 5) for q in mine], stale, TIMEOUT)
        err = exc_info.value.args[0]
        assert err.code() == KafkaError.ILLEGAL_GENERATION, f"stale generation: {err.name()}: {err}"
        assert err.txn_requires_abort() and not err.fatal(), f"stale generation: {err} (expected abortable)"
        p.abort_transaction(TIMEOUT)

        p.begin_transaction()
        p.produce(out, value=b"with-current-offsets", partition=0)
        p.send_offsets_to_transaction([TopicPartition(src, q, 7) for q in mine], c1.consumer_group_metadata(), TIMEOUT)
        p.commit_transaction(TIMEOUT)
        committed = {
            tp.partition: tp.offset for tp in c1.committed([TopicPartition(src, q) for q in range(4)], timeout=TIMEOUT)
        }
        assert committed == {q: (7 if q in mine else -1001) for q in range(4)}, committed
    finally:
        c1.close()
        if c2 is not None:
            c2.close()
    assert [v for _, _, v in committed_values(bootstrap, out, [0], expected=1)] == [b"with-current-offsets"]


# --------------------------------------------------------------------------------------------
# 3. zombie fencing
# --------------------------------------------------------------------------------------------


def test_zombie_fencing(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    txn_id = topic_name("txn")

    a = txn_producer(bootstrap, txn_id)
    a.init_transactions(TIMEOUT)
    a.begin_transaction()
    a_reports = produce_txn(a, topic, [(i % 2, f"A-{i}".encode()) for i in range(6)])
    assert a.flush(TIMEOUT) == 0
    check_reports(a_reports, 6, "A's records before B's init")

    b = txn_producer(bootstrap, txn_id)
    b.init_transactions(TIMEOUT)  # fences A and aborts its open transaction

    # A, unaware, writes more to a partition already in its transaction: refused by the partition
    # (no delivery callback: confluent-kafka raises the fatal error from flush, and a Python
    # callback run after it would turn it into a SystemError).
    for i in range(3):
        a.produce(topic, value=f"A-late-{i}".encode(), partition=0)
    try:
        a.flush(TIMEOUT)
    except KafkaException as e:
        fencing_error(e, "A's flush after being fenced")
    with pytest.raises(KafkaException) as exc_info:
        a.commit_transaction(TIMEOUT)
    err = fencing_error(exc_info.value, "A's commit_transaction after B's init_transactions")
    assert err.fatal(), f"A's commit failed with a non-fatal error: {err}"

    b.begin_transaction()
    b_reports = produce_txn(b, topic, [(i % 2, f"B-{i}".encode()) for i in range(6)])
    b.commit_transaction(TIMEOUT)
    check_reports(b_reports, 6, "B's records")
    assert not b.errors, b.errors

    committed = read_to_end(bootstrap, topic, range(2), "read_committed")
    got = by_partition((p, o, v) for p, o, v, _ in committed["msgs"])
    assert got == {p: [f"B-{i}".encode() for i in range(6) if i % 2 == p] for p in range(2)}, (
        f"read_committed: {got} (expected B's records only)"
    )
    uncommitted = read_to_end(bootstrap, topic, range(2), "read_uncommitted")
    got_u = by_partition((p, o, v) for p, o, v, _ in uncommitted["msgs"])
    assert got_u == {p: [f"{w}-{i}".encode() for w in "AB" for i in range(6) if i % 2 == p] for p in range(2)}, (
        f"read_uncommitted: {got_u} (expected A's first records then B's; A's late records must not be stored)"
    )


# --------------------------------------------------------------------------------------------
# 4. interleaved transactions of two producers, tailing read_committed consumer
# --------------------------------------------------------------------------------------------


def test_interleaved_transactions_of_two_producers(bootstrap, topic_name):
    """Two producers' transactions interleaved in one partition (one of them lz4-compressed): the
    last stable offset holds at the first record of the oldest open transaction, so nothing past it
    is visible to read_committed, not even another producer's committed records; once both ended,
    read_committed gets exactly the committed records, in offset order."""
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    a = txn_producer(bootstrap, topic_name("txn-a"))
    b = txn_producer(bootstrap, topic_name("txn-b"), **{"compression.type": "lz4", "linger.ms": 20})
    a.init_transactions(TIMEOUT)
    b.init_transactions(TIMEOUT)

    def write(producer, tag: str, n: int) -> int:
        """The offset of the first record written."""
        reports = produce_txn(producer, topic, [(0, f"{tag}-{i}".encode()) for i in range(n)])
        assert producer.flush(TIMEOUT) == 0
        return min(o for _, o in check_reports(reports, n, tag).values())

    def committed_view() -> tuple[list, int]:
        view = read_to_end(bootstrap, topic, [0], "read_committed")
        return [v for _, _, v, _ in view["msgs"]], view["watermarks"][0][1]

    produce(bootstrap, topic, [{"value": b"plain-0", "partition": 0}])  # offset 0
    # Round 1: A (opened first) aborts after B committed.
    a.begin_transaction()
    a_first = write(a, "a1", 3)
    b.begin_transaction()
    write(b, "b1", 3)
    write(a, "a1-more", 2)
    b.commit_transaction(TIMEOUT)
    values, lso = committed_view()
    assert (values, lso) == ([b"plain-0"], a_first), (
        f"A's transaction (from offset {a_first}) is open: read_committed got {values}, last stable offset {lso}"
    )
    a.abort_transaction(TIMEOUT)
    values, lso = committed_view()
    assert values == [b"plain-0", b"b1-0", b"b1-1", b"b1-2"], f"after A's abort: {values}"

    # Round 2: B (opened first) aborts after A committed.
    b.begin_transaction()
    b_first = write(b, "b2", 3)
    a.begin_transaction()
    write(a, "a2", 3)
    write(b, "b2-more", 2)
    a.commit_transaction(TIMEOUT)
    values2, lso2 = committed_view()
    assert (values2, lso2) == (values, b_first), (
        f"B's transaction (from offset {b_first}) is open: read_committed got {values2}, last stable offset {lso2}"
    )
    b.abort_transaction(TIMEOUT)
    produce(bootstrap, topic, [{"value": b"plain-1", "partition": 0}])
    values, _ = committed_view()
    assert values == [b"plain-0", b"b1-0", b"b1-1", b"b1-2", b"a2-0", b"a2-1", b"a2-2", b"plain-1"], values
    assert not a.errors and not b.errors, (a.errors, b.errors)

    uncommitted = read_to_end(bootstrap, topic, [0], "read_uncommitted")
    assert [v.decode().rsplit("-", 1)[0] for _, _, v, _ in uncommitted["msgs"]] == (
        ["plain"] + ["a1"] * 3 + ["b1"] * 3 + ["a1-more"] * 2 + ["b2"] * 3 + ["a2"] * 3 + ["b2-more"] * 2 + ["plain"]
    ), uncommitted["msgs"]


def test_tailing_read_committed_consumer(bootstrap, topic_name):
    """A read_committed consumer waiting at the end of a partition gets nothing while a
    transaction is open there, and the transaction's records once it commits (kfdb wakes its
    long-poll Fetch on the commit marker)."""
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    consumer = Consumer(
        base_conf(
            bootstrap,
            **{
                "group.id": topic_name("unused"),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5000,  # long polls: a commit must wake them
            },
        )
    )
    p = txn_producer(bootstrap, topic_name("txn"))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        p.init_transactions(TIMEOUT)
        got: list = []

        def poll_for(seconds: float, until: int | None = None) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and (until is None or len(got) < until):
                m = consumer.poll(0.2)
                if m is None:
                    continue
                if m.error() is not None:
                    raise KafkaException(m.error())
                got.append(m.value())

        poll_for(1.0)  # the consumer is fetching (and waiting) at offset 0
        for round_ in range(2):
            p.begin_transaction()
            reports = produce_txn(p, topic, [(0, f"r{round_}-{i}".encode()) for i in range(5)])
            assert p.flush(TIMEOUT) == 0
            check_reports(reports, 5, f"round {round_}")
            before = list(got)
            poll_for(2.0)
            assert got == before, (
                f"round {round_}: read_committed returned {got[len(before) :]} while the transaction was open"
            )
            p.commit_transaction(TIMEOUT)
            poll_for(TIMEOUT, until=len(before) + 5)
            assert got == before + [f"r{round_}-{i}".encode() for i in range(5)], (
                f"round {round_}: after the commit the tailing consumer got {got[len(before) :]}"
            )
        assert not p.errors, p.errors
    finally:
        consumer.close()


# --------------------------------------------------------------------------------------------
# 5. kafkajs
# --------------------------------------------------------------------------------------------


@kafkajs_test
def test_kafkajs_transactions(bootstrap, topic_name):
    topic, src, out = topic_name(), topic_name("in"), topic_name("out")
    parts, in_count, in_first = 2, 20, 4
    r = run_js(
        "txn.js",
        {
            "KFDB_BROKER": bootstrap,
            "TOPIC": topic,
            "IN_TOPIC": src,
            "OUT_TOPIC": out,
            "GROUP": topic_name("group"),
            "OFFSETS_GROUP": topic_name("offsets"),
            "TXN_ID": topic_name("txn"),
            "PARTITIONS": str(parts),
            "IN_COUNT": str(in_count),
            "IN_FIRST": str(in_first),
        },
        timeout=100,
    )
    per_part = in_count // parts

    def values(rows):
        return by_partition((p, o, v) for p, o, v in rows)

    # read_committed (kafkajs's default): the committed transactions, the fencing producer's, the
    # sentinel; read_uncommitted: also the aborted and the fenced producer's records.
    assert values(r["readCommitted"]) == {p: [f"{t}-p{p}" for t in ("c1", "c2", "z2", "end")] for p in range(parts)}, r
    assert values(r["readUncommitted"]) == {
        p: [f"{t}-p{p}" for t in ("c1", "a1", "c2", "zombie", "z2", "end")] for p in range(parts)
    }, r

    # The fenced producer's commit was rejected with a fencing error.
    zc = r["zombieCommit"]
    assert zc != "committed", "the fenced kafkajs producer's commit succeeded"
    assert zc["type"] in ("INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED"), zc

    # sendOffsets: the committed transaction's offsets stick, the aborted one's do not.
    first = {str(p): in_first for p in range(parts)}
    assert r["committedAfter"] == {"t1": first, "t2": first}, r["committedAfter"]
    got = committed_values(bootstrap, out, range(parts), expected=in_first * parts)
    assert by_partition(got) == {
        p: [f"IN-{k * parts + p}-t1".encode() for k in range(in_first)] for p in range(parts)
    }, f"kafkajs output topic, read_committed: {by_partition(got)}"
    got_u = consume(bootstrap, out, range(parts), expected=in_count, **{"isolation.level": "read_uncommitted"})
    assert len(got_u) == per_part * parts, (
        f"read_uncommitted output: {len(got_u)} records (t1 + aborted t2 = {in_count})"
    )


# --------------------------------------------------------------------------------------------
# 6. kafka-python and aiokafka transactional producers
# --------------------------------------------------------------------------------------------


def sentinel_read(poll, what: str, sentinels: set, timeout: float = 60) -> dict:
    """Call ``poll()`` (-> [(partition, value)]) until every sentinel value was read; returns
    {partition: [values]} in the order read."""
    got: dict = {}
    seen: set = set()
    deadline = time.monotonic() + timeout
    while not sentinels <= seen:
        assert time.monotonic() < deadline, f"{what}: sentinels {sorted(sentinels - seen)} not read; got {got}"
        for p, v in poll():
            got.setdefault(p, []).append(v)
            seen.add(v)
    return got


def test_kafka_python_transactions(bootstrap, topic_name):
    """kafka-python 3 transactional producer: committed, aborted, committed transactions (one
    with send_offsets_to_transaction); a second producer with the same transactional_id fences the
    first (its commit fails with ProducerFencedError / InvalidProducerEpochError); kafka-python's
    read_committed consumer reads exactly the committed records."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.errors import InvalidProducerEpochError, ProducerFencedError
    from kafka.structs import OffsetAndMetadata

    topic, group = topic_name(), topic_name("group")
    create_topic(bootstrap, topic, partitions=2)
    txn_id = topic_name("txn")

    def producer():
        return KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, request_timeout_ms=TIMEOUT * 1000)

    p = producer()
    try:
        p.init_transactions()
        for tag, commit in (("c1", True), ("a1", False), ("c2", True)):
            p.begin_transaction()
            futures = [p.send(topic, value=f"{tag}-p{q}".encode(), partition=q) for q in range(2)]
            if tag == "c2":
                p.send_offsets_to_transaction({KTP(topic, 0): OffsetAndMetadata(1, "", -1)}, group)
            p.flush(TIMEOUT)
            for f in futures:
                f.get(timeout=TIMEOUT)
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
        p.begin_transaction()
        zombie = [p.send(topic, value=f"zombie-p{q}".encode(), partition=q) for q in range(2)]
        p.flush(TIMEOUT)
        for f in zombie:
            f.get(timeout=TIMEOUT)
        q2 = producer()
        try:
            q2.init_transactions()  # fences p
            with pytest.raises((ProducerFencedError, InvalidProducerEpochError)):
                p.commit_transaction()
            q2.begin_transaction()
            for q in range(2):
                q2.send(topic, value=f"q2-p{q}".encode(), partition=q)
            q2.commit_transaction()
        finally:
            q2.close(timeout=10)
    finally:
        p.close(timeout=10)
    produce(bootstrap, topic, [{"value": f"end-p{q}".encode(), "partition": q} for q in range(2)])

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        tps = [KTP(topic, q) for q in range(2)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = sentinel_read(
            lambda: [(r.partition, r.value.decode()) for rs in consumer.poll(timeout_ms=500).values() for r in rs],
            "kafka-python read_committed",
            {f"end-p{q}" for q in range(2)},
        )
    finally:
        consumer.close()
    assert got == {q: [f"{t}-p{q}" for t in ("c1", "c2", "q2", "end")] for q in range(2)}, got
    admin = admin_client(bootstrap)  # keep a reference: the handle must outlive the futures
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)
    offsets = {tp.partition: tp.offset for tp in res[group].result(TIMEOUT).topic_partitions}
    assert offsets == {0: 1}, f"offsets sent in the committed transaction: {offsets}"


def test_aiokafka_transactions(bootstrap, topic_name):
    """aiokafka transactional producer: committed, aborted, committed transactions; aiokafka's
    read_committed consumer reads exactly the committed records, read_uncommitted all of them."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka import TopicPartition as ATP

    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)

    async def scenario():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=topic_name("txn"), enable_idempotence=True)
        await p.start()
        try:
            for tag, commit in (("c1", True), ("a1", False), ("c2", True)):
                await p.begin_transaction()
                for q in range(2):
                    await p.send_and_wait(topic, value=f"{tag}-p{q}".encode(), partition=q)
                if commit:
                    await p.commit_transaction()
                else:
                    await p.abort_transaction()
        finally:
            await p.stop()

        async def read(isolation: str) -> dict:
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation)
            await c.start()
            try:
                tps = [ATP(topic, q) for q in range(2)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                got: dict = {}
                seen: set = set()
                deadline = time.monotonic() + 60
                while not {f"end-p{q}" for q in range(2)} <= seen:
                    assert time.monotonic() < deadline, f"aiokafka {isolation}: no sentinel; got {got}"
                    for tp, records in (await c.getmany(timeout_ms=500)).items():
                        for r in records:
                            got.setdefault(tp.partition, []).append(r.value.decode())
                            seen.add(r.value.decode())
                return got
            finally:
                await c.stop()

        produce(bootstrap, topic, [{"value": f"end-p{q}".encode(), "partition": q} for q in range(2)])
        return await read("read_committed"), await read("read_uncommitted")

    committed, uncommitted = asyncio.run(scenario())
    assert committed == {q: [f"{t}-p{q}" for t in ("c1", "c2", "end")] for q in range(2)}, committed
    assert uncommitted == {q: [f"{t}-p{q}" for t in ("c1", "a1", "c2", "end")] for q in range(2)}, uncommitted


# --------------------------------------------------------------------------------------------
# 7. kafka-python admin: ListTransactions, DescribeTransactions, DescribeProducers
# --------------------------------------------------------------------------------------------


def test_admin_transactions_kafka_python(bootstrap, topic_name):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TransactionalIdNotFoundError
    from kafka.structs import TopicPartition as KTP

    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, [{"value": b"plain", "partition": 1}] * 3)  # partition 1: offsets 0..2
    txn_id = topic_name("txn")
    p = txn_producer(bootstrap, txn_id, **{"transaction.timeout.ms": 45000})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    reports = produce_txn(p, topic, [(1, b"t-0"), (1, b"t-1")])
    assert p.flush(TIMEOUT) == 0
    where = check_reports(reports, 2, "transactional records")
    first_offset = where[b"t-0"][1]
    assert first_offset == 3, where

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts if t.transactional_id == txn_id]
        assert len(listed) == 1 and listed[0].state.value == "Ongoing", listed
        ongoing_only = [
            t.transactional_id for ts in admin.list_transactions(state_filters=["Ongoing"]).values() for t in ts
        ]
        assert txn_id in ongoing_only, ongoing_only

        desc = admin.describe_transactions([txn_id])[txn_id]
        assert desc.state.value == "Ongoing", desc
        assert desc.producer_id == listed[0].producer_id >= 0, desc
        assert desc.transaction_timeout_ms == 45000, desc
        assert desc.topic_partitions == {KTP(topic, 1)}, desc
        assert desc.transaction_start_time_ms > 0, desc

        prods = admin.describe_producers([KTP(topic, 0), KTP(topic, 1)])
        assert prods[KTP(topic, 0)].active_producers == [], prods
        active = [a for a in prods[KTP(topic, 1)].active_producers if a.producer_id == desc.producer_id]
        assert len(active) == 1, prods
        assert active[0].producer_epoch == desc.producer_epoch, (active, desc)
        assert active[0].current_transaction_start_offset == first_offset, active
        assert active[0].last_sequence == 1, active

        p.commit_transaction(TIMEOUT)
        # Kafka answers EndTxn in PrepareCommit and completes after writing the markers.
        desc = wait_for(
            lambda: (d := admin.describe_transactions([txn_id])[txn_id]).state.value == "CompleteCommit" and d,
            TIMEOUT,
            "the transaction to reach CompleteCommit",
        )
        assert desc.topic_partitions == set(), desc
        ongoing_only = [
            t.transactional_id for ts in admin.list_transactions(state_filters=["Ongoing"]).values() for t in ts
        ]
        assert txn_id not in ongoing_only, ongoing_only
        prods = admin.describe_producers([KTP(topic, 1)])
        active = [a for a in prods[KTP(topic, 1)].active_producers if a.producer_id == desc.producer_id]
        assert len(active) == 1 and active[0].current_transaction_start_offset == -1, prods

        with pytest.raises(TransactionalIdNotFoundError):
            admin.describe_transactions([txn_id + "-never-used"])
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------
# 8. durability across restarts (these restart kfdb: keep them last in the module)
# --------------------------------------------------------------------------------------------


def test_committed_and_aborted_transactions_survive_sigkill(kfdb, topic_name):
    topic = topic_name()
    create_topic(kfdb.bootstrap, topic, partitions=2)
    p = txn_producer(kfdb.bootstrap, topic_name("txn"))
    p.init_transactions(TIMEOUT)
    sent = {}
    for tag, commit in (("aborted", False), ("committed", True)):
        sent[tag] = [(i % 2, f"{tag}-{i}".encode()) for i in range(10)]
        p.begin_transaction()
        reports = produce_txn(p, topic, sent[tag])
        assert p.flush(TIMEOUT) == 0
        check_reports(reports, 10, tag)
        if commit:
            p.commit_transaction(TIMEOUT)
        else:
            p.abort_transaction(TIMEOUT)
    before_c = read_to_end(kfdb.bootstrap, topic, range(2), "read_committed")
    before_u = read_to_end(kfdb.bootstrap, topic, range(2), "read_uncommitted")
    del p  # the producer is done; it must not talk to the restarted broker

    kfdb.kill()
    kfdb.start()

    after_c = read_to_end(kfdb.bootstrap, topic, range(2), "read_committed")
    after_u = read_to_end(kfdb.bootstrap, topic, range(2), "read_uncommitted")
    want_c = {q: [v for p_, v in sent["committed"] if p_ == q] for q in range(2)}
    want_u = {q: [v for t in ("aborted", "committed") for p_, v in sent[t] if p_ == q] for q in range(2)}
    assert by_partition((q, o, v) for q, o, v, _ in after_c["msgs"]) == want_c, after_c["msgs"]
    assert by_partition((q, o, v) for q, o, v, _ in after_u["msgs"]) == want_u, after_u["msgs"]
    assert sorted(after_c["msgs"]) == sorted(before_c["msgs"]), "read_committed view changed across the restart"
    assert sorted(after_u["msgs"]) == sorted(before_u["msgs"]), "read_uncommitted view changed across the restart"
    assert after_c["watermarks"] == before_c["watermarks"] == before_u["watermarks"], (before_c, after_c)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_transaction_continues_across_broker_restart(kfdb, topic_name, how):
    """A producer keeps its transaction open while kfdb restarts (SIGTERM, or SIGKILL and start):
    it produces more into the same transaction after the restart and commits; read_committed then
    gets every record of it, read_uncommitted nothing more."""
    topic = topic_name()
    create_topic(kfdb.bootstrap, topic, partitions=2)
    p = txn_producer(
        kfdb.bootstrap,
        topic_name("txn"),
        **{"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500, "retry.backoff.ms": 100},
    )
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    first = produce_txn(p, topic, [(i % 2, f"before-restart-{i}".encode()) for i in range(6)])
    assert p.flush(TIMEOUT) == 0
    check_reports(first, 6, "records before the restart")
    if how == "sigterm":
        assert kfdb.restart() == 0, "kfdb did not exit with 0 on SIGTERM"
    else:
        kfdb.kill()
        kfdb.start()
    second = produce_txn(p, topic, [(i % 2, f"after-restart-{i}".encode()) for i in range(6)])
    assert p.flush(TIMEOUT) == 0
    check_reports(second, 6, "records after the restart")
    p.commit_transaction(TIMEOUT)
    assert not [e for e in p.errors if e.fatal()], p.errors

    want = {
        q: [f"{t}-{i}".encode() for t in ("before-restart", "after-restart") for i in range(6) if i % 2 == q]
        for q in range(2)
    }
    for isolation in ("read_committed", "read_uncommitted"):
        view = read_to_end(kfdb.bootstrap, topic, range(2), isolation)
        got = by_partition((q, o, v) for q, o, v, _ in view["msgs"])
        assert got == want, f"{isolation} after the commit: {got}"


OPEN_TXN_CHILD = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Producer
    bootstrap, txn_id, topic = sys.argv[1:4]
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "transactional.id": txn_id})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"open-{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_open_transaction_across_sigkill(kfdb, topic_name):
    from kafka.admin import KafkaAdminClient

    topic = topic_name()
    txn_id = topic_name("txn")
    create_topic(kfdb.bootstrap, topic, partitions=2)
    before = [{"value": f"before-{i}".encode(), "partition": i % 2} for i in range(4)]
    produce(kfdb.bootstrap, topic, before)  # offsets 0, 1 in each partition

    # A producer process with an open transaction (flushed records), killed with kfdb.
    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_TXN_CHILD, kfdb.bootstrap, txn_id, topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = child.stdout.readline().decode().strip()
        if line != "ready":
            child.kill()
            raise AssertionError(f"producer child said {line!r}; stderr: {child.stderr.read().decode()[-2000:]}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    kfdb.kill()
    kfdb.start()

    # Records after the open transaction (non-transactional).
    produce(kfdb.bootstrap, topic, [{"value": f"after-{i}".encode(), "partition": i % 2} for i in range(4)])

    view = read_to_end(kfdb.bootstrap, topic, range(2), "read_committed")
    got = by_partition((p, o, v) for p, o, v, _ in view["msgs"])
    assert got == {p: [f"before-{i}".encode() for i in range(4) if i % 2 == p] for p in range(2)}, (
        f"read_committed while the transaction from before the crash is open: {got} "
        "(expected only the records before it)"
    )
    for p in range(2):
        assert view["watermarks"][p] == (0, 2), (
            f"partition {p}: read_committed watermarks {view['watermarks'][p]}, expected the last stable "
            "offset to hold at the open transaction's first record (2)"
        )
    admin = KafkaAdminClient(bootstrap_servers=kfdb.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        desc = admin.describe_transactions([txn_id])[txn_id]
        assert desc.state.value == "Ongoing", f"after the restart the transaction is {desc}"
    finally:
        admin.close()

    # A new instance of the producer: init_transactions aborts the old transaction.
    b = txn_producer(kfdb.bootstrap, txn_id)
    b.init_transactions(TIMEOUT)
    b.begin_transaction()
    reports = produce_txn(b, topic, [(i % 2, f"new-{i}".encode()) for i in range(4)])
    b.commit_transaction(TIMEOUT)
    check_reports(reports, 4, "the new instance's records")

    view = read_to_end(kfdb.bootstrap, topic, range(2), "read_committed")
    got = by_partition((p, o, v) for p, o, v, _ in view["msgs"])
    assert got == {
        p: [f"{t}-{i}".encode() for t in ("before", "after", "new") for i in range(4) if i % 2 == p] for p in range(2)
    }, f"read_committed after the new instance's init_transactions: {got}"
    uview = read_to_end(kfdb.bootstrap, topic, range(2), "read_uncommitted")
    got_u = by_partition((p, o, v) for p, o, v, _ in uview["msgs"])
    assert got_u == {
        p: [f"{t}-{i}".encode() for t in ("before", "open", "after", "new") for i in range(4) if i % 2 == p]
        for p in range(2)
    }, got_u
    for p in range(2):
        assert view["watermarks"][p] == uview["watermarks"][p], (view["watermarks"], uview["watermarks"])
