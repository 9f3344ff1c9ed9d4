"""kafkajs 2.2.4 against kfdb.

kafkajs has no group-less consumer (its consumer always joins a consumer group, which kfdb does
not implement yet), so these tests produce with kafkajs (topic created with the kafkajs admin),
check kafkajs's own view of the offsets (admin.fetchTopicOffsets), and verify the messages by
consuming them with confluent-kafka."""

from __future__ import annotations

import pytest
from ckhelpers import TIMESTAMP_CREATE_TIME, consume
from jshelpers import requires_kafkajs, run_js

pytestmark = requires_kafkajs


@pytest.mark.parametrize("compression,acks", [("none", -1), ("gzip", -1), ("none", 1)])
def test_kafkajs_produce_verified_by_confluent(bootstrap, topic_name, compression, acks):
    topic = topic_name()
    partitions, count, base_ts = 2, 500, 1_730_000_000_000
    res = run_js(
        "produce.js",
        {
            "KFDB_BROKER": bootstrap,
            "TOPIC": topic,
            "PARTITIONS": str(partitions),
            "COUNT": str(count),
            "COMPRESSION": compression,
            "ACKS": str(acks),
            "BASE_TS": str(base_ts),
        },
    )
    assert res["created"] is True, res
    assert all(m["errorCode"] == 0 for m in res["metadata"]), res["metadata"]
    # fetchTopicOffsets: per partition low 0 and high = messages sent to it.
    per_part = {p: len(range(p, count, partitions)) for p in range(partitions)}
    offsets = {int(o["partition"]): (int(o["low"]), int(o["high"])) for o in res["offsets"]}
    assert offsets == {p: (0, n) for p, n in per_part.items()}, res["offsets"]

    got = consume(bootstrap, topic, range(partitions), expected=count)
    assert len(got) == count
    for p in range(partitions):
        offs = [m.offset for m in got if m.partition == p]
        assert offs == list(range(per_part[p])), f"partition {p}: offsets not dense/in order: {offs[:20]}"
    for m in got:
        # kafkajs sends message i to partition i % partitions, in order.
        i = m.offset * partitions + m.partition
        value = f"kafkajs value {i} ".encode() * (1 + i % 4) + bytes([0, i % 256, 255])
        assert m.key == f"js-key-{i}".encode(), f"message {i}: key {m.key!r}"
        assert m.value == value, f"message {i}: value {m.value!r}"
        assert sorted(m.headers) == sorted([("seq", str(i).encode()), ("client", b"kafkajs")]), m.headers
        assert m.timestamp == (TIMESTAMP_CREATE_TIME, base_ts + 7 * i), f"message {i}: timestamp {m.timestamp}"


def test_kafkajs_admin(kfdb, topic_name):
    topic = topic_name()
    r = run_js("admin.js", {"KFDB_BROKER": kfdb.bootstrap, "TOPIC": topic})
    assert r["created"] is True, r
    assert r["listedAfterCreate"] is True, r
    assert r["partitionsAfterCreate"] == 2, r
    assert r["partitionsAfterCreatePartitions"] == 3, r
    assert r["configsAfterCreate"] == {"retention.ms": "3600000", "cleanup.policy": "delete"}, r
    assert r["configsAfterAlter"]["retention.ms"] == "7200000", r
    assert r["cluster"]["brokers"] == [kfdb.bootstrap], r
    assert r["cluster"]["clusterId"], r
    # 4 messages went to partition 1 with timestamps base + 0/1000/2000/3000.
    assert r["offsets"] == [
        {"partition": 0, "low": "0", "high": "0"},
        {"partition": 1, "low": "0", "high": "4"},
        {"partition": 2, "low": "0", "high": "0"},
    ], r
    # First offset with timestamp >= base + 1500 in partition 1 is 2; empty partitions give their
    # end offset (kafkajs maps "none" (-1) to the high watermark).
    assert r["offsetsByTimestamp"][1] == {"partition": 1, "offset": "2"}, r
    assert r["listedAfterDelete"] is False, r
