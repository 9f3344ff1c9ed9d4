"""Producer and transactional-id expiry (producer.id.expiration.ms, transactional.id.expiration.ms).

kfdb runs with both expirations at 2 s and both sweeps every 300 ms.

- A confluent-kafka transactional producer commits one transaction and an idempotent producer
  writes one record. Right after, kafka-python's admin lists the transactional id and
  DescribeProducers shows both producers. Once they have been idle past the expirations, the
  transactional id is no longer listed (DescribeTransactions: TRANSACTIONAL_ID_NOT_FOUND) and
  DescribeProducers shows neither producer.
- A producer that keeps a transaction open over the same time keeps its id and its producer state,
  and still commits; a new producer under the expired id starts afresh (another producer id) and
  commits. read_committed sees exactly the three committed transactions' records and the
  idempotent record.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ckhelpers import create_topic, produce, wait_for
from kafka.admin import KafkaAdminClient
from kafka.errors import TransactionalIdNotFoundError
from kafka.structs import TopicPartition as KTP
from txnhelpers import TIMEOUT, by_partition, check_reports, produce_txn, read_to_end, txn_producer

EXPIRATION_MS = 2000
SWEEP_MS = 300
KFDB_ARGS = [
    "--transactional-id-expiration-ms",
    str(EXPIRATION_MS),
    "--transaction-remove-expired-transaction-cleanup-interval-ms",
    str(SWEEP_MS),
    "--producer-id-expiration-ms",
    str(EXPIRATION_MS),
    "--producer-id-expiration-check-interval-ms",
    str(SWEEP_MS),
]
EXPIRY_WAIT_S = 30.0  # bound of the wait for the sweeps (never asserted as a timing)


@contextmanager
def kafka_python_admin(bootstrap: str):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        yield admin
    finally:
        admin.close()


def begin_with_record(bootstrap: str, txn_id: str, topic: str, partition: int, value: bytes, **extra):
    """A new transactional producer for ``txn_id`` with an open transaction holding one record."""
    producer = txn_producer(bootstrap, txn_id, **extra)
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    reports = produce_txn(producer, topic, [(partition, value)])
    assert producer.flush(TIMEOUT) == 0
    check_reports(reports, 1, f"{txn_id}'s record")
    return producer


def listed_ids(admin: KafkaAdminClient) -> set[str]:
    return {t.transactional_id for ts in admin.list_transactions().values() for t in ts}


def producer_ids(admin: KafkaAdminClient, topic: str, partition: int) -> set[int]:
    tp = KTP(topic, partition)
    return {a.producer_id for a in admin.describe_producers([tp])[tp].active_producers}


def test_idle_producers_and_transactional_ids_expire(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    done_id, open_id = topic_name("done"), topic_name("open")

    begin_with_record(bootstrap, done_id, topic, 0, b"done-1").commit_transaction(TIMEOUT)
    produce(bootstrap, topic, [{"value": b"idempotent", "partition": 1}], **{"enable.idempotence": True})

    still_open = begin_with_record(bootstrap, open_id, topic, 0, b"open-1", **{"transaction.timeout.ms": 60000})

    with kafka_python_admin(bootstrap) as admin:
        assert {done_id, open_id} <= listed_ids(admin)
        done_pid = admin.describe_transactions([done_id])[done_id].producer_id
        open_pid = admin.describe_transactions([open_id])[open_id].producer_id
        assert {done_pid, open_pid} <= producer_ids(admin, topic, 0)
        assert len(producer_ids(admin, topic, 1)) == 1, "the idempotent producer"

        # Keep the open transaction open while the others go idle past the expirations.
        time.sleep(EXPIRATION_MS / 1000)
        wait_for(lambda: done_id not in listed_ids(admin), EXPIRY_WAIT_S, "the idle transactional id to expire")
        wait_for(
            lambda: producer_ids(admin, topic, 0) == {open_pid} and producer_ids(admin, topic, 1) == set(),
            EXPIRY_WAIT_S,
            "idle producer states to expire",
        )
        try:
            admin.describe_transactions([done_id])
            raise AssertionError(f"{done_id} is still described after its expiry")
        except TransactionalIdNotFoundError:
            pass
        assert open_id in listed_ids(admin), "an open transaction's id is kept"
        assert admin.describe_transactions([open_id])[open_id].state.value == "Ongoing"

    still_open.commit_transaction(TIMEOUT)
    begin_with_record(bootstrap, done_id, topic, 1, b"done-2").commit_transaction(TIMEOUT)

    with kafka_python_admin(bootstrap) as admin:
        new_pid = admin.describe_transactions([done_id])[done_id].producer_id
    assert new_pid != done_pid, "a producer under an expired id gets a new producer id"

    read = read_to_end(bootstrap, topic, [0, 1], "read_committed")
    values = by_partition((p, o, v) for p, o, v, _ in read["msgs"])
    assert values == {0: [b"done-1", b"open-1"], 1: [b"idempotent", b"done-2"]}, values
