"""Transaction timeouts (transaction.timeout.ms, transaction.max.timeout.ms) with confluent-kafka.

kfdb runs with a 500 ms timeout sweep (--transaction-abort-timed-out-transaction-cleanup-interval-ms)
and transaction.max.timeout.ms = 60 s.

- A producer with transaction.timeout.ms = 3000 begins a transaction, produces and flushes, then
  does nothing. While it is open, read_committed stops before its first record (the last stable
  offset holds there, also for records produced after it). Not before 3 s after its first record,
  but within a generous bound, kfdb aborts it: read_committed proceeds past it (the records
  produced after it become visible, the open records never do), DescribeTransactions (kafka-python)
  shows CompleteAbort with the producer's epoch bumped, records the producer still sends to the
  partition are refused (never stored), and its commit_transaction fails with a fencing (or
  abortable) error. A new producer with the same transactional.id works normally.
- A transaction open for several sweep intervals but shorter than its timeout is left alone: its
  commit succeeds and its records are visible.
- init_transactions with transaction.timeout.ms above transaction.max.timeout.ms fails with
  INVALID_TRANSACTION_TIMEOUT; exactly the maximum is accepted.
"""

from __future__ import annotations

import os
import time

import pytest
from ckhelpers import create_topic, produce, wait_for
from confluent_kafka import KafkaError, KafkaException
from kafka.admin import KafkaAdminClient
from txnhelpers import (
    FENCING_CODES,
    TIMEOUT,
    by_partition,
    check_reports,
    produce_txn,
    read_to_end,
    txn_producer,
)

SWEEP_INTERVAL_MS = 500
MAX_TIMEOUT_MS = 60_000
KFDB_ARGS = [
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
    str(SWEEP_INTERVAL_MS),
    "--transaction-max-timeout-ms",
    str(MAX_TIMEOUT_MS),
]
KFDB_ENV = {"KFDB_LOG": os.environ.get("KFDB_LOG", "info,kfdb_log=debug,kfdb_broker=debug")}

TXN_TIMEOUT_MS = 3000
ABORT_WAIT_S = 30.0  # bound of the wait for the sweeper (never asserted as a timing)


def describe(bootstrap: str, txn_id: str):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        return admin.describe_transactions([txn_id])[txn_id]
    finally:
        admin.close()


def lso(consumer_view: dict, p: int = 0) -> int:
    return consumer_view["watermarks"][p][1]


def test_timed_out_transaction_is_aborted(bootstrap, topic_name):
    topic = topic_name()
    txn_id = topic_name("txn")
    create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, [{"value": b"before", "partition": 0}])  # offset 0

    # socket.timeout.ms must not exceed transaction.timeout.ms + 100 (librdkafka).
    p = txn_producer(
        bootstrap, txn_id, **{"transaction.timeout.ms": TXN_TIMEOUT_MS, "socket.timeout.ms": TXN_TIMEOUT_MS}
    )
    p.init_transactions(TIMEOUT)
    epoch = describe(bootstrap, txn_id).producer_epoch
    p.begin_transaction()
    t0 = time.monotonic()  # before the first record: the transaction starts after this
    reports = produce_txn(p, topic, [(0, f"open-{i}".encode()) for i in range(3)])
    assert p.flush(TIMEOUT) == 0
    check_reports(reports, 3, "the open transaction's records")
    produce(bootstrap, topic, [{"value": b"during", "partition": 0}])  # offset 4, after the open records

    desc = describe(bootstrap, txn_id)
    view = read_to_end(bootstrap, topic, [0], "read_committed")
    if time.monotonic() - t0 < TXN_TIMEOUT_MS / 1000 - 0.5:  # still well within the timeout
        assert desc.state.value == "Ongoing" and desc.transaction_timeout_ms == TXN_TIMEOUT_MS, desc
        assert [v for _, _, v, _ in view["msgs"]] == [b"before"], view["msgs"]
        assert lso(view) == 1, f"read_committed watermarks while open: {view['watermarks']}"

    def aborted():
        return lso(read_to_end(bootstrap, topic, [0], "read_committed", timeout=10)) > 1

    wait_for(
        aborted, ABORT_WAIT_S, "the timed-out transaction to be aborted (last stable offset past it)", interval=0.2
    )
    elapsed = time.monotonic() - t0
    assert elapsed >= TXN_TIMEOUT_MS / 1000, f"the transaction was aborted {elapsed:.2f} s after it began"

    desc = describe(bootstrap, txn_id)
    assert desc.state.value == "CompleteAbort", desc
    assert desc.producer_epoch == epoch + 1, f"epoch {desc.producer_epoch} after the timeout abort (was {epoch})"

    # The timed-out producer, unaware, writes more to its partition: refused (no delivery callback:
    # confluent-kafka raises the fatal error from flush). Then it learns it on commit.
    for i in range(2):
        p.produce(topic, value=f"late-{i}".encode(), partition=0)
    try:
        p.flush(TIMEOUT)
    except KafkaException as e:
        late_err = e.args[0]
        assert late_err.code() in FENCING_CODES or late_err.txn_requires_abort(), f"late produce: {late_err}"
    with pytest.raises(KafkaException) as exc_info:
        p.commit_transaction(TIMEOUT)
    err = exc_info.value.args[0]
    assert err.code() in FENCING_CODES or err.txn_requires_abort(), (
        f"commit_transaction after the timeout: {err.name()}: {err} (expected fenced or abortable)"
    )

    produce(bootstrap, topic, [{"value": b"after", "partition": 0}])
    committed = read_to_end(bootstrap, topic, [0], "read_committed")
    assert [v for _, _, v, _ in committed["msgs"]] == [b"before", b"during", b"after"], committed["msgs"]
    uncommitted = read_to_end(bootstrap, topic, [0], "read_uncommitted")
    assert [v for _, _, v, _ in uncommitted["msgs"]] == [
        b"before",
        b"open-0",
        b"open-1",
        b"open-2",
        b"during",
        b"after",
    ], uncommitted["msgs"]
    assert committed["watermarks"] == uncommitted["watermarks"], (committed["watermarks"], uncommitted["watermarks"])

    # A new instance of the producer carries on.
    q = txn_producer(
        bootstrap, txn_id, **{"transaction.timeout.ms": TXN_TIMEOUT_MS, "socket.timeout.ms": TXN_TIMEOUT_MS}
    )
    q.init_transactions(TIMEOUT)
    q.begin_transaction()
    reports = produce_txn(q, topic, [(0, b"next")])
    q.commit_transaction(TIMEOUT)
    check_reports(reports, 1, "the new instance's record")
    committed = read_to_end(bootstrap, topic, [0], "read_committed")
    assert [v for _, _, v, _ in committed["msgs"]] == [b"before", b"during", b"after", b"next"], committed["msgs"]


def test_transaction_within_its_timeout_is_left_alone(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    p = txn_producer(bootstrap, topic_name("txn"), **{"transaction.timeout.ms": 20_000, "socket.timeout.ms": 20_000})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    reports = produce_txn(p, topic, [(i % 2, f"slow-{i}".encode()) for i in range(4)])
    assert p.flush(TIMEOUT) == 0
    time.sleep(6 * SWEEP_INTERVAL_MS / 1000)  # several sweeps
    p.commit_transaction(TIMEOUT)
    check_reports(reports, 4, "the slow transaction's records")
    assert not p.errors, p.errors
    view = read_to_end(bootstrap, topic, range(2), "read_committed")
    assert by_partition((q, o, v) for q, o, v, _ in view["msgs"]) == {
        q: [f"slow-{i}".encode() for i in range(4) if i % 2 == q] for q in range(2)
    }, view["msgs"]


def test_transaction_timeout_above_maximum_is_refused(bootstrap, topic_name):
    too_long = txn_producer(bootstrap, topic_name("txn-long"), **{"transaction.timeout.ms": MAX_TIMEOUT_MS + 1000})
    with pytest.raises(KafkaException) as exc_info:
        too_long.init_transactions(TIMEOUT)
    err = exc_info.value.args[0]
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, f"init_transactions: {err.name()}: {err}"

    topic = topic_name()
    create_topic(bootstrap, topic, partitions=1)
    at_max = txn_producer(bootstrap, topic_name("txn-max"), **{"transaction.timeout.ms": MAX_TIMEOUT_MS})
    at_max.init_transactions(TIMEOUT)
    at_max.begin_transaction()
    reports = produce_txn(at_max, topic, [(0, b"at-max")])
    at_max.commit_transaction(TIMEOUT)
    check_reports(reports, 1, "record of the producer with the maximal timeout")
    assert [m[2] for m in read_to_end(bootstrap, topic, [0], "read_committed")["msgs"]] == [b"at-max"]
