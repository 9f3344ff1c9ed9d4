"""``queued.max.request.bytes``: a bound on the bytes of requests read and not yet answered, over
all connections. Eight producers flood one broker with ~40 MB of 8 KiB records through a 4 MiB
pool (socket.request.max.bytes 2 MiB, as Kafka requires the pool to hold the largest request):
the bound is backpressure, not refusal — every record is acknowledged and read back. The same
module runs against Apache Kafka 4.4 with the same settings. (That kfdb holds a request back
while the pool is full is tested in crates/kfdb-broker/tests/protocol.rs; the memory it saves is
measured by bench/producer_flood.py.)
"""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

KFDB_ARGS = ["--socket-request-max-bytes", "2097152", "--queued-max-request-bytes", "4194304"]

PRODUCERS = 8
RECORDS = 600
VALUE = 8 * 1024


def test_a_producer_flood_past_the_pool_is_held_back_not_refused(bootstrap):
    topic = "flood-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic(topic, 8, 1)])[topic].result(30)
    failures: list[str] = []
    acked = [0] * PRODUCERS

    def produce(i: int) -> None:
        p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "acks": "all",
                      "linger.ms": 20, "batch.size": 1_000_000, "message.max.bytes": 1_000_000,
                      "queue.buffering.max.kbytes": 65536})

        def done(err, _msg):
            if err is None:
                acked[i] += 1
            else:
                failures.append(str(err))

        for n in range(RECORDS):
            value = (b"%d-%d-" % (i, n)).ljust(VALUE, b"x")
            while True:
                try:
                    p.produce(topic, key=b"%d" % n, value=value, on_delivery=done)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        p.flush(120)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(PRODUCERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not failures, failures[:5]
    assert acked == [RECORDS] * PRODUCERS
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "flood-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.subscribe([topic])
    seen: set[bytes] = set()
    try:
        idle = 0
        while len(seen) < PRODUCERS * RECORDS and idle < 30:
            m = c.poll(1)
            if m is None:
                idle += 1
                continue
            idle = 0
            assert m.error() is None, m.error()
            assert len(m.value()) == VALUE
            seen.add(m.value()[:16].split(b"x")[0])
    finally:
        c.close()
    assert len(seen) == PRODUCERS * RECORDS
