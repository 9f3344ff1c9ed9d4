"""A confluent-kafka group member run as a subprocess by test_groups_confluent.py (to be SIGKILLed,
i.e. to vanish without a LeaveGroup).

    python ck_group_child.py BOOTSTRAP GROUP TOPIC COMMIT_FIRST

Subscribes to TOPIC in GROUP, consumes; commits (synchronously, after "processing") each of the
first COMMIT_FIRST messages it gets, then keeps consuming without committing anything. Prints one
JSON object per line, flushed at once:
  {"ev": "assigned", "partitions": [...]}     after every rebalance (its full assignment)
  {"ev": "msg", "p": P, "o": O, "v": "..."}    a message was consumed (before its commit)
  {"ev": "committed", "p": P, "o": NEXT}       the commit of NEXT for P succeeded
  {"ev": "commit_failed", "p": P, "o": NEXT, "error": "..."}
  {"ev": "uncommitted_phase"}                  from now on nothing is committed
"""

from __future__ import annotations

import json
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition


def emit(**obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    bootstrap, group, topic, commit_first = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": group,
            "client.id": "ck-child",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 30000,
        }
    )

    def on_assign(c, parts):
        # Eager protocol: the full assignment (librdkafka assigns it after this callback).
        emit(ev="assigned", partitions=sorted(p.partition for p in parts))

    def on_revoke(c, parts):
        emit(ev="revoked", partitions=sorted(p.partition for p in parts))

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    committed = 0
    while True:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            emit(ev="error", error=str(msg.error()))
            continue
        emit(ev="msg", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
        if committed < commit_first:
            tp = TopicPartition(topic, msg.partition(), msg.offset() + 1)
            try:
                (res,) = consumer.commit(offsets=[tp], asynchronous=False)
                if res.error is not None:
                    raise KafkaException(res.error)
                emit(ev="committed", p=msg.partition(), o=msg.offset() + 1)
            except KafkaException as e:
                emit(ev="commit_failed", p=msg.partition(), o=msg.offset() + 1, error=str(e))
            committed += 1
            if committed == commit_first:
                emit(ev="uncommitted_phase")


if __name__ == "__main__":
    main()
