"""kafka-python's admin calls about where partitions live, against one broker (kfdb or Kafka).

- DescribeLogDirs: every partition asked for is reported once, in a log dir without error, with a
  size that covers what was written to it (and 0 for an empty one).
- AlterReplicaLogDirs: "moving" a partition to the dir it is in succeeds; a dir the broker does not
  have is LOG_DIR_NOT_FOUND; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
- ElectLeaders (preferred): a partition led by its preferred leader needs no election.
- AlterPartitionReassignments / ListPartitionReassignments: reassigning a partition to the broker
  that has it finishes (nothing left in progress, the broker still leads it); cancelling where
  nothing is in progress is NO_REASSIGNMENT_IN_PROGRESS; a broker that does not exist is
  INVALID_REPLICA_ASSIGNMENT.
"""

from __future__ import annotations

import os
import time

import kafka.errors as Errors
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

TIMEOUT = 30
RECORD = 1_000


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def _wait(check, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _leaders(admin: KafkaAdminClient, topic: str) -> dict[int, int]:
    (t,) = admin.describe_topics([topic])
    return {p["partition_index"]: p["leader_id"] for p in t["partitions"]}


def _make_topic(admin: KafkaAdminClient, bootstrap: str, topic: str) -> None:
    admin.create_topics([NewTopic(topic, 3, 1)])
    _wait(lambda: len(_leaders(admin, topic)) == 3 and all(l >= 0 for l in _leaders(admin, topic).values()),
          "leaders of the new topic")
    # 40 incompressible records of RECORD bytes to partition 0, 10 to partition 1, none to 2.
    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [prod.send(topic, value=os.urandom(RECORD), partition=0 if i < 40 else 1)
                   for i in range(50)]
        prod.flush(timeout=TIMEOUT)
        for f in futures:
            f.get(timeout=TIMEOUT)
    finally:
        prod.close(timeout=10)


def test_describe_and_alter_log_dirs(bootstrap, topic_name):
    topic = topic_name()
    admin = _admin(bootstrap)
    try:
        _make_topic(admin, bootstrap, topic)
        sizes: dict[int, int] = {}
        dirs: dict[int, str] = {}
        for broker in admin.describe_log_dirs({topic: [0, 1, 2]}):
            for d in broker["log_dirs"]:
                assert d["error_code"] == 0, d
                for t in d["topics"]:
                    assert t["name"] == topic, t
                    for p in t["partitions"]:
                        index = p["partition_index"]
                        assert index not in sizes, f"partition {index} reported twice"
                        sizes[index] = p["partition_size"]
                        dirs[index] = d["log_dir"]
                        assert not p["is_future_key"]
        assert set(sizes) == {0, 1, 2}, sizes
        assert sizes[0] >= 40 * RECORD, sizes
        assert 10 * RECORD <= sizes[1] < 40 * RECORD, sizes
        assert sizes[2] == 0, sizes

        leaders = _leaders(admin, topic)
        moved = admin.alter_replica_log_dirs({(topic, 0, leaders[0]): dirs[0]})
        assert list(moved.values()) == [Errors.NoError], moved
        nowhere = admin.alter_replica_log_dirs(
            {(topic, 0, leaders[0]): os.path.join(dirs[0], "no-such-dir")})
        assert list(nowhere.values()) == [Errors.LogDirNotFoundError], nowhere
        unknown = admin.alter_replica_log_dirs({(topic + "-missing", 0, leaders[0]): dirs[0]})
        assert list(unknown.values()) == [Errors.UnknownTopicOrPartitionError], unknown
    finally:
        admin.close()


def test_elections_and_reassignments(bootstrap, topic_name):
    topic = topic_name()
    admin = _admin(bootstrap)
    try:
        _make_topic(admin, bootstrap, topic)
        leaders = _leaders(admin, topic)

        election = admin.elect_leaders(0, {topic: [0, 1]}, raise_errors=False)
        codes = {
            p.partition_id: p.error_code
            for r in election.replica_election_results
            for p in r.partition_result
        }
        assert codes == {0: Errors.ElectionNotNeededError.errno, 1: Errors.ElectionNotNeededError.errno}

        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert admin.alter_partition_reassignments({tp0: [leaders[0]]}) == {tp0: None}
        _wait(lambda: tp0 not in admin.list_partition_reassignments(), "the reassignment to finish")
        assert _leaders(admin, topic)[0] == leaders[0]
        assert admin.alter_partition_reassignments({tp1: None}) == {
            tp1: Errors.NoReassignmentInProgressError
        }
        assert admin.alter_partition_reassignments({tp1: [9999]}) == {
            tp1: Errors.InvalidReplicationAssignmentError
        }
        assert tp1 not in admin.list_partition_reassignments()
    finally:
        admin.close()
