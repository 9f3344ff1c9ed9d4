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


def listed_ids(admin: KafkaAdminClient) -> set[str]:
    return {t.transactional_id for ts in admin.list_transactions().values() for t in ts}


def producer_ids(admin: KafkaAdminClient, topic: str, partition: int) -> set[int]:
    tp = KTP(topic, partition)
    return {a.producer_id for a in admin.describe_producers([tp])[tp].active_producers}


def test_idle_producers_and_transactional_ids_expire(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, partitions=2)
    done_id, open_id = topic_name("done"), topic_name("open")

    done = txn_producer(bootstrap, done_id)
    done.init_transactions(TIMEOUT)
    done.begin_transaction()
    reports = produce_txn(done, topic, [(0, b"done-1")])
    assert done.flush(TIMEOUT) == 0
    check_reports(reports, 1, "first transaction")
    done.commit_transaction(TIMEOUT)
    produce(bootstrap, topic, [{"value": b"idempotent", "partition": 1}], **{"enable.idempotence": True})

    still_open = txn_producer(bootstrap, open_id, **{"transaction.timeout.ms": 60000})
    still_open.init_transactions(TIMEOUT)
    still_open.begin_transaction()
    reports = produce_txn(still_open, topic, [(0, b"open-1")])
    assert still_open.flush(TIMEOUT) == 0
    check_reports(reports, 1, "open transaction")

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
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
    finally:
        admin.close()

    still_open.commit_transaction(TIMEOUT)
    again = txn_producer(bootstrap, done_id)
    again.init_transactions(TIMEOUT)
    again.begin_transaction()
    reports = produce_txn(again, topic, [(1, b"done-2")])
    assert again.flush(TIMEOUT) == 0
    check_reports(reports, 1, "transaction under the expired id")
    again.commit_transaction(TIMEOUT)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        new_pid = admin.describe_transactions([done_id])[done_id].producer_id
        assert new_pid != done_pid, "a producer under an expired id gets a new producer id"
    finally:
        admin.close()

    read = read_to_end(bootstrap, topic, [0, 1], "read_committed")
    values = by_partition((p, o, v) for p, o, v, _ in read["msgs"])
    assert values == {0: [b"done-1", b"open-1"], 1: [b"idempotent", b"done-2"]}, values
