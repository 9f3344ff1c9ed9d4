"""Kafka Connect 4.4 (connect-runtime; FileStream connectors from connect-file 4.3.1, the newest
Maven Central serves) against kfdb or Apache Kafka.

- Distributed: the worker creates its config/offset/status topics (compacted; 1/25/5
  partitions), joins its group (protocol type ``connect``, the ``sessioned`` incremental
  cooperative subprotocol), a FileStreamSink writes every record of a topic to a file exactly
  once and in order per partition; after a SIGTERM restart and after a kill -9 (once the sink's
  offsets were committed) it resumes from its committed offsets; a second worker joins and the
  connectors' tasks spread over both.
- Exactly-once source (KIP-618, ``exactly.once.source.support=enabled``): a FileStreamSource
  produces a file's lines to a topic; across a SIGTERM restart and a kill -9 mid-stream,
  read_committed sees every line exactly once, in order.
- Standalone: the same sink, restarted, resumes from its committed offsets.

The worker's internal topics keep Connect's default replication factor (3) against kfdb, as on a
production cluster; the single Apache Kafka node is given -1 (KIP-605: the broker's default),
since one broker cannot hold three replicas.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka.admin import KafkaAdminClient

import jvmhelpers
from ckhelpers import admin_client, create_topic, produce, wait_for
from conftest import on_kafka
from connecthelpers import ConnectWorker, wait_running
from txnhelpers import read_to_end

# Compaction looks at the compacted topics (changelogs, Connect's internal topics) every 200 ms.
KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500", "--log-cleaner-backoff-ms", "200"]

# Worker starts, restarts and rebalances: several minutes per test on 2 busy cores.
pytestmark = pytest.mark.timeout(600)

SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


def replication() -> dict[str, str]:
    if not on_kafka():
        return {}
    return {f"{t}.storage.replication.factor": "-1" for t in ("config", "offset", "status")}


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="kfdb-connect-"))
    workers: list[ConnectWorker] = []
    yield d, workers
    for w in workers:
        w.kill()
        # captured: pytest shows it only when the test failed
        print(f"\n--- Connect worker {w.name} log (tail) ---\n{w.log_tail(200)}")
    shutil.rmtree(d, ignore_errors=True)


def distributed(bootstrap: str, d: Path, workers: list, name: str, group: str, **extra) -> ConnectWorker:
    props = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "config.storage.topic": f"{group}-configs",
        "offset.storage.topic": f"{group}-offsets",
        "status.storage.topic": f"{group}-status",
        **replication(),
        **extra,
    }
    w = ConnectWorker(d, name, props)
    workers.append(w)
    w.start()
    return w


def file_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = admin_client(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def records(topic: str, start: int, n: int, partitions: int) -> list[dict]:
    return [{"key": f"k{i}".encode(), "value": f"{topic[-8:]}-p{i % partitions}-{i}".encode(), "partition": i % partitions}
            for i in range(start, start + n)]


def check_sink_file(path: Path, topic: str, n: int, partitions: int) -> None:
    """Every one of the n produced values exactly once; per partition in production order."""
    lines = file_lines(path)
    expected = [m["value"].decode() for m in records(topic, 0, n, partitions)]
    assert sorted(lines) == sorted(expected), (
        f"{path.name}: {len(lines)} lines, expected {n} distinct; duplicates: "
        f"{sorted({x for x in lines if lines.count(x) > 1})[:10]}, missing: {sorted(set(expected) - set(lines))[:10]}"
    )
    for p in range(partitions):
        mine = [x for x in lines if f"-p{p}-" in x]
        assert mine == [x for x in expected if f"-p{p}-" in x], f"partition {p} out of order in {path.name}"


def test_distributed_sink(bootstrap, topic_name, workdir):
    d, workers = workdir
    group = topic_name("connect").replace("_", "-")
    topics = [topic_name("sink-a").replace("_", "-"), topic_name("sink-b").replace("_", "-")]
    files = [d / "sink-a.txt", d / "sink-b.txt"]
    for t in topics:
        create_topic(bootstrap, t, partitions=2)
        produce(bootstrap, t, records(t, 0, 200, 2))

    w1 = distributed(bootstrap, d, workers, "worker-1", group)

    # the internal topics: compacted, with Connect's partition counts
    admin = admin_client(bootstrap)
    internal = {f"{group}-configs": 1, f"{group}-offsets": 25, f"{group}-status": 5}
    md = admin.list_topics(timeout=10)
    for name, parts in internal.items():
        assert name in md.topics, f"internal topic {name} not created"
        assert len(md.topics[name].partitions) == parts, name
    res = admin.describe_configs([ConfigResource("topic", n) for n in internal])
    for r, f in res.items():
        assert f.result(timeout=30)["cleanup.policy"].value == "compact", r.name

    # the worker's group: protocol type connect, the incremental cooperative subprotocol
    proc = jvmhelpers.run_java("kfdbcompat.tools.DescribeClassicGroup", bootstrap, group, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "protocol=connect protocolData=sessioned state=Stable members=1", proc.stdout

    names = ["sink-a", "sink-b"]
    for name, t, f in zip(names, topics, files):
        w1.put_connector(name, {"connector.class": SINK, "tasks.max": "1", "topics": t, "file": str(f)})
    for name in names:
        wait_running(w1, name, 1)
    for t, f in zip(topics, files):
        wait_for(lambda: len(file_lines(f)) >= 200, 60, f"200 lines in {f.name}")
        check_sink_file(f, t, 200, 2)

    # SIGTERM restart: the sinks resume from their committed offsets
    w1.stop()
    assert w1.proc.returncode in (0, 130, 143), f"worker exit code {w1.proc.returncode}"
    for t in topics:
        produce(bootstrap, t, records(t, 200, 100, 2))
    w1.start()
    for name, t, f in zip(names, topics, files):
        wait_running(w1, name, 1)
        wait_for(lambda: len(file_lines(f)) >= 300, 60, f"300 lines in {f.name}")
    time.sleep(2)  # a re-delivered record would show up here
    for t, f in zip(topics, files):
        check_sink_file(f, t, 300, 2)

    # kill -9 once every record's offset is committed: nothing is delivered twice afterwards
    for name, t in zip(names, topics):
        wait_for(lambda: committed(bootstrap, f"connect-{name}", t, 2) == {0: 150, 1: 150}, 60,
                 f"connect-{name} to commit offsets 150/150")
    w1.kill()
    for t in topics:
        produce(bootstrap, t, records(t, 300, 100, 2))
    w1.start()
    for name, t, f in zip(names, topics, files):
        wait_running(w1, name, 1)
        wait_for(lambda: len(file_lines(f)) >= 400, 60, f"400 lines in {f.name}")

    # a second worker joins: the connectors and tasks spread over both workers
    w2 = distributed(bootstrap, d, workers, "worker-2", group)

    def spread():
        owners = set()
        for name in names:
            st = w1.status(name)
            if not st or st["connector"]["state"] != "RUNNING" or any(t["state"] != "RUNNING" for t in st["tasks"]):
                return False
            owners.add(st["connector"]["worker_id"])
            owners.update(t["worker_id"] for t in st["tasks"])
        return len(owners) == 2

    wait_for(spread, 120, "connectors and tasks running on both workers")
    for t in topics:
        produce(bootstrap, t, records(t, 400, 100, 2))
    for t, f in zip(topics, files):
        wait_for(lambda: len(file_lines(f)) >= 500, 90, f"500 lines in {f.name}")
    time.sleep(2)
    for t, f in zip(topics, files):
        check_sink_file(f, t, 500, 2)
    w2.stop()
    w1.stop()


def test_exactly_once_source(bootstrap, topic_name, workdir):
    d, workers = workdir
    group = topic_name("connect-eos").replace("_", "-")
    topic = topic_name("eos-out").replace("_", "-")
    create_topic(bootstrap, topic, partitions=1)
    src = d / "source.txt"
    src.write_text("".join(f"line-{i}\n" for i in range(100)))
    w = distributed(bootstrap, d, workers, "eos-worker", group, **{"exactly.once.source.support": "enabled"})
    w.put_connector("eos-source", {"connector.class": SOURCE, "tasks.max": "1", "topic": topic, "file": str(src),
                                   "exactly.once.support": "required", "transaction.boundary": "poll"})
    wait_running(w, "eos-source", 1)

    def committed_lines():
        return [m[2].decode() for m in read_to_end(bootstrap, topic, [0], "read_committed")["msgs"]]

    wait_for(lambda: len(committed_lines()) >= 100, 90, "100 committed lines")
    w.stop()
    with open(src, "a") as f:
        f.write("".join(f"line-{i}\n" for i in range(100, 200)))
    w.start()
    wait_running(w, "eos-source", 1)
    wait_for(lambda: len(committed_lines()) >= 200, 90, "200 committed lines after a restart")

    # kill -9 while lines are being produced
    with open(src, "a") as f:
        f.write("".join(f"line-{i}\n" for i in range(200, 2000)))
    wait_for(lambda: len(committed_lines()) > 200, 90, "the source to pick up the new lines")
    w.kill()
    w.start()
    wait_running(w, "eos-source", 1)
    wait_for(lambda: len(committed_lines()) >= 2000, 120, "2,000 committed lines after kill -9")
    time.sleep(2)
    lines = committed_lines()
    assert lines == [f"line-{i}" for i in range(2000)], (
        f"{len(lines)} lines; duplicates {sorted({x for x in lines if lines.count(x) > 1})[:10]}"
    )
    # the transactional ids KIP-618 names: the leader's connect-cluster-<group>, the task's <group>-<connector>-<task>
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        ids = {t.transactional_id for ts in kp.list_transactions().values() for t in ts}
    finally:
        kp.close()
    assert f"connect-cluster-{group}" in ids, ids
    assert f"{group}-eos-source-0" in ids, ids
    w.stop()


def test_standalone_sink(bootstrap, topic_name, workdir):
    d, workers = workdir
    topic = topic_name("standalone").replace("_", "-")
    out = d / "standalone.txt"
    create_topic(bootstrap, topic, partitions=2)
    produce(bootstrap, topic, records(topic, 0, 200, 2))
    conn = d / "sink.properties"
    conn.write_text(f"name=standalone-sink\nconnector.class={SINK}\ntasks.max=1\ntopics={topic}\nfile={out}\n")
    w = ConnectWorker(d, "standalone", {"bootstrap.servers": bootstrap,
                                        "offset.storage.file.filename": str(d / "standalone.offsets")},
                      mode="standalone", connector_files=[conn])
    workers.append(w)
    w.start()
    wait_running(w, "standalone-sink", 1)
    wait_for(lambda: len(file_lines(out)) >= 200, 60, "200 lines")
    wait_for(lambda: committed(bootstrap, "connect-standalone-sink", topic, 2) == {0: 100, 1: 100}, 60,
             "the sink's offsets committed")
    w.stop()
    produce(bootstrap, topic, records(topic, 200, 100, 2))
    w.start()
    wait_running(w, "standalone-sink", 1)
    wait_for(lambda: len(file_lines(out)) >= 300, 60, "300 lines after a restart")
    time.sleep(2)
    check_sink_file(out, topic, 300, 2)
    w.stop()
