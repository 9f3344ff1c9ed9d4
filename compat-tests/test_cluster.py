"""A three-broker kfdb cluster in one process (``kfdb serve --brokers 3``) with real clients.

The brokers share one embedded store; broker i listens on the first port + i. Brokers are stopped
(controlled: they leave the cluster first), killed (as a crash: the others take over when the
lease runs out) and started again through kfdb's HTTP listener (``POST /brokers/{i}/stop|kill|
start``).

- Metadata from any broker lists all three, and a topic's partition leaders are spread evenly over them.
- confluent-kafka, kafka-python and kafkajs produce through the cluster and read back everything.
- Consumer groups are coordinated by different brokers.
- Failover: idempotent acks=all producers and a two-member consumer group run while one broker is
  stopped, then killed, then restarted; afterwards every acknowledged record is in the log exactly
  once, offsets are dense, the group consumed everything (a member that joined while brokers were
  down got partitions: the group rebalanced wherever it is coordinated now), and the restarted
  brokers lead their share again.
- Operators' admin calls: DescribeLogDirs lists each partition once, by its leader; a
  reassignment pins a partition's leader to another broker (listed as in progress while that
  broker is down; ElectLeaders then says the preferred leader is not available); cancelling it
  returns the partition to its hashed leader.
- A transactional producer whose coordinator is stopped mid-transaction commits through the new
  coordinator; read_committed sees exactly its records.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from kafka import KafkaConsumer, KafkaProducer

import conftest
from ckhelpers import base_conf, consume, create_topic, wait_for
from jshelpers import requires_kafkajs, run_js

BROKERS = 3
HEARTBEAT_MS = 300
SESSION_MS = 2000


def _consecutive_free_ports(n: int) -> int:
    for _ in range(200):
        base = conftest.free_port()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no run of free ports")


class Cluster:
    """The kfdb process, its brokers' addresses and its HTTP control."""

    def __init__(self, server: conftest.Kfdb, http_port: int):
        self.server = server
        self.http = f"http://127.0.0.1:{http_port}"
        self.ports = [server.port + i for i in range(BROKERS)]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def broker_bootstrap(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

    def control(self, i: int, action: str) -> None:
        req = urllib.request.Request(f"{self.http}/brokers/{i}/{action}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200, r.read()

    def node_ids(self) -> dict[int, int]:
        """Broker index -> node id of the running ones."""
        with urllib.request.urlopen(f"{self.http}/brokers", timeout=10) as r:
            lines = r.read().decode().splitlines()
        out = {}
        for line in lines:
            index, node, _addr, state = line.split()
            if state == "running":
                out[int(index)] = int(node)
        return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if conftest.on_kafka():
        pytest.skip("kfdb's own three brokers in one process; the harness starts one Kafka node")
    if conftest.fdb_cluster_file() or __import__("os").environ.get("KFDB_COMPAT_BOOTSTRAP"):
        pytest.skip("the in-process cluster runs on the embedded store started here")
    workdir = tmp_path_factory.mktemp("kfdb-cluster")
    base = _consecutive_free_ports(BROKERS)
    http_port = conftest.free_port()
    server = conftest.Kfdb(
        conftest.kfdb_binary(),
        workdir / "data",
        base,
        name="kfdb-cluster",
        extra_args=[
            "--brokers",
            str(BROKERS),
            "--metrics-listen",
            f"127.0.0.1:{http_port}",
            "--broker-heartbeat-interval-ms",
            str(HEARTBEAT_MS),
            "--broker-session-timeout-ms",
            str(SESSION_MS),
            "--group-initial-rebalance-delay-ms",
            "500",
            "--num-partitions",
            "6",
        ],
    )
    server.start()
    c = Cluster(server, http_port)
    wait_for(lambda: len(c.node_ids()) == BROKERS, 30, "three brokers running")
    # Ready when every broker's Metadata lists all three (each learns of the others from the store).
    wait_for(
        lambda: all(
            len(conftest_admin(c.broker_bootstrap(i)).list_topics(timeout=10).brokers) == BROKERS
            for i in range(BROKERS)
        ),
        30,
        "every broker listing the three",
    )
    yield c
    server.stop()


def _produce_round_robin(bootstrap: str, topic: str, count: int, partitions: int, prefix: str):
    """`prefix-i` for i in 0..count, record i to partition i % partitions, idempotent, all acked."""
    p = Producer(base_conf(bootstrap, **{"enable.idempotence": True, "acks": "all"}))
    for i in range(count):
        p.produce(topic, value=f"{prefix}-{i}".encode(), partition=i % partitions)
        p.poll(0)
    assert p.flush(60) == 0


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    admin = conftest_admin(bootstrap)
    md = admin.list_topics(topic=topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def conftest_admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient(base_conf(bootstrap))


def test_every_broker_lists_the_cluster_and_leaders_are_spread(cluster, topic_name):
    topic = topic_name()
    create_topic(cluster.bootstrap, topic, partitions=12)
    nodes = set(cluster.node_ids().values())
    for i in range(BROKERS):
        md = conftest_admin(cluster.broker_bootstrap(i)).list_topics(timeout=10)
        assert set(md.brokers) == nodes, f"broker {i} lists {sorted(md.brokers)}"
        assert md.controller_id == min(nodes)
    leaders = _leaders(cluster.bootstrap, topic)
    assert set(leaders.values()) == nodes, f"leaders {leaders} do not cover {nodes}"
    # As Kafka assigns a new topic's leaders round-robin: 12 partitions, 4 on each broker.
    led = sorted(list(leaders.values()).count(n) for n in nodes)
    assert led == [4, 4, 4], f"leaders {leaders} are not spread evenly"


def test_confluent_kafka_python_and_kafkajs_round_trips(cluster, topic_name):
    # confluent-kafka (librdkafka), idempotent.
    t1 = topic_name("ck")
    create_topic(cluster.bootstrap, t1, partitions=6)
    _produce_round_robin(cluster.bootstrap, t1, 3000, 6, "ck")
    got = consume(cluster.bootstrap, t1, range(6), 3000)
    assert sorted(m.value for m in got) == sorted(f"ck-{i}".encode() for i in range(3000))
    for part in range(6):
        offsets = [m.offset for m in got if m.partition == part]
        assert offsets == list(range(len(offsets))), f"partition {part} offsets not dense"
    # kafka-python 3 (idempotent by default).
    t2 = topic_name("kp")
    create_topic(cluster.bootstrap, t2, partitions=6)
    kp = KafkaProducer(bootstrap_servers=cluster.bootstrap.split(","))
    futures = [kp.send(t2, value=f"kp-{i}".encode(), partition=i % 6) for i in range(1200)]
    kp.flush(60)
    assert all(f.get(timeout=30) for f in futures)
    kp.close()
    kc = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    kc.assign([__import__("kafka").TopicPartition(t2, i) for i in range(6)])
    values = []
    for m in kc:
        values.append(m.value)
        if len(values) == 1200:
            break
    kc.close()
    assert sorted(values) == sorted(f"kp-{i}".encode() for i in range(1200))


def test_kafkajs_produces_through_the_cluster(cluster, topic_name):
    topic = topic_name("js")
    result = run_js(
        "produce.js",
        {"KFDB_BROKER": cluster.broker_bootstrap(1), "TOPIC": topic, "PARTITIONS": "6", "COUNT": "600"},
    )
    assert result["created"] is True
    got = consume(cluster.bootstrap, topic, range(6), 600)
    assert len(got) == 600
    assert len({(m.partition, m.offset) for m in got}) == 600


test_kafkajs_produces_through_the_cluster.pytestmark = requires_kafkajs


def _group_consume(bootstrap: str, group: str, topic: str, expected: int, timeout: float = 60) -> list:
    c = Consumer(
        base_conf(
            bootstrap,
            **{
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
            },
        )
    )
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            got.append(m.value())
            c.commit(message=m, asynchronous=False)
    finally:
        c.close()
    return got


def test_groups_are_coordinated_by_different_brokers(cluster, topic_name):
    from confluent_kafka.admin import AdminClient

    topic = topic_name()
    create_topic(cluster.bootstrap, topic, partitions=3)
    p = Producer(base_conf(cluster.bootstrap))
    for i in range(30):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0
    groups = [f"{topic}-g{i}" for i in range(9)]
    for g in groups:
        assert len(_group_consume(cluster.bootstrap, g, topic, 30)) == 30
    admin = AdminClient(base_conf(cluster.bootstrap))
    described = admin.describe_consumer_groups(groups)
    coordinators = {f.result(timeout=30).coordinator.id for f in described.values()}
    assert len(coordinators) >= 2, f"nine groups all coordinated by {coordinators}"


class _Producer(threading.Thread):
    """An idempotent acks=all producer of sequence-numbered records until stopped."""

    def __init__(self, bootstrap: str, topic: str, name: str, partitions: int):
        super().__init__(daemon=True)
        self.p = Producer(
            base_conf(
                bootstrap,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": 120000,
                    "topic.metadata.refresh.interval.ms": 1000,
                },
            )
        )
        self.topic, self.name, self.partitions = topic, name, partitions
        self.acked: list[tuple[str, int, int]] = []
        self.failed: list = []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            value = f"{self.name}-{i}"

            def cb(err, msg, value=value):
                if err is None:
                    self.acked.append((value, msg.partition(), msg.offset()))
                else:
                    self.failed.append((value, err))

            try:
                self.p.produce(self.topic, value=value.encode(), partition=i % self.partitions, on_delivery=cb)
                i += 1
            except BufferError:
                pass
            self.p.poll(0.002)
        assert self.p.flush(120) == 0


class _GroupMember(threading.Thread):
    """A consumer-group member committing each record it processed."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        super().__init__(daemon=True)
        self.c = Consumer(
            base_conf(
                bootstrap,
                **{
                    "group.id": group,
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 500,
                    "topic.metadata.refresh.interval.ms": 1000,
                },
            )
        )
        self.topic = topic
        self.seen: list[tuple[int, int, bytes]] = []
        self.assignments = 0
        self.stop = threading.Event()

    def run(self):
        def on_assign(_c, parts):
            self.assignments += 1

        self.c.subscribe([self.topic], on_assign=on_assign)
        while not self.stop.is_set():
            m = self.c.poll(0.2)
            if m is None or m.error():
                continue
            self.seen.append((m.partition(), m.offset(), m.value()))
            try:
                self.c.commit(message=m, asynchronous=False)
            except KafkaException:
                pass  # a commit during a rebalance or a coordinator move; the record is seen again
        self.c.close()


def test_failover_loses_nothing_and_duplicates_nothing(cluster, topic_name):
    topic = topic_name()
    partitions = 6
    create_topic(cluster.bootstrap, topic, partitions=partitions)
    group = f"{topic}-group"
    producers = [_Producer(cluster.bootstrap, topic, f"p{i}", partitions) for i in range(2)]
    members = [_GroupMember(cluster.bootstrap, group, topic) for _ in range(2)]
    for t in producers + members:
        t.start()
    before = dict(cluster.node_ids())
    time.sleep(4)
    cluster.control(1, "stop")  # controlled: leaves first
    time.sleep(4)
    cluster.control(2, "kill")  # a crash: its lease runs out after the session timeout
    time.sleep(SESSION_MS / 1000 + 2)
    # A member joins while one broker is down and one dead: the group rebalances on whichever
    # broker coordinates it now (loaded from the store if it moved).
    late = _GroupMember(cluster.bootstrap, group, topic)
    late.start()
    members.append(late)
    time.sleep(2)
    cluster.control(1, "start")
    cluster.control(2, "start")
    time.sleep(5)
    for t in producers:
        t.stop.set()
    for t in producers:
        t.join(180)
    acked = [a for t in producers for a in t.acked]
    failed = [f for t in producers for f in t.failed]
    assert not failed, f"delivery failures: {failed[:5]}"
    assert len(acked) > 1000, f"only {len(acked)} records acknowledged"
    # The restarted brokers have their node ids back and lead again.
    assert cluster.node_ids() == before
    wait_for(
        lambda: set(_leaders(cluster.bootstrap, topic).values()) == set(before.values()),
        30,
        "leaders spread over all three brokers again",
    )
    # Everything acknowledged is in the log exactly once, offsets dense.
    log = consume(cluster.bootstrap, topic, range(partitions), len(acked), timeout=120)
    values = Counter(m.value for m in log)
    dups = [v for v, n in values.items() if n > 1]
    assert not dups, f"{len(dups)} duplicated records, e.g. {dups[:5]}"
    missing = [v for v, _, _ in acked if values[v.encode()] != 1]
    assert not missing, f"{len(missing)} acknowledged records missing, e.g. {missing[:5]}"
    where = {(p, o) for _, p, o in acked}
    assert len(where) == len(acked), "two acknowledgements name the same offset"
    for part in range(partitions):
        offsets = sorted(m.offset for m in log if m.partition == part)
        assert offsets == list(range(len(offsets))), f"partition {part}: offsets not dense"
    # The group consumed everything (at least once) and rebalanced around the failures.
    wanted = {m.value for m in log}
    wait_for(
        lambda: wanted <= {v for t in members for _, _, v in t.seen},
        90,
        "the group consumed every record",
    )
    for t in members:
        t.stop.set()
    for t in members:
        t.join(60)
    assert late.assignments >= 1, "the member that joined during the failure got no assignment"
    assert sum(t.assignments for t in members) > len(members), "the group never rebalanced"


def test_reassignment_pins_a_leader_and_log_dirs_list_each_partition_once(cluster, topic_name):
    """kafka-python's admin calls on the cluster: DescribeLogDirs asked of every broker lists each
    partition once, by its leader; AlterPartitionReassignments moves a partition's leadership to
    another broker (every broker agrees, the log continues densely there); while that broker is
    down the reassignment is listed as in progress and ElectLeaders says the preferred leader is not
    available; cancelling returns the partition to its placed leader."""
    import kafka.errors as Errors
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    topic = topic_name()
    create_topic(cluster.bootstrap, topic, partitions=6)
    _produce_round_robin(cluster.bootstrap, topic, 600, 6, "a")
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","), request_timeout_ms=30000)
    try:
        leaders = _leaders(cluster.bootstrap, topic)
        reported: dict[int, tuple[int, int]] = {}
        for broker in admin.describe_log_dirs([topic]):
            for d in broker["log_dirs"]:
                assert d["error_code"] == 0, d
                for t in d["topics"]:
                    for part in t["partitions"]:
                        index = part["partition_index"]
                        assert index not in reported, f"partition {index} reported twice"
                        reported[index] = (broker["broker"], part["partition_size"])
        assert {i: b for i, (b, _) in reported.items()} == leaders
        assert all(size >= 100 * len("a-000") for _, size in reported.values()), reported

        nodes = cluster.node_ids()
        old = leaders[0]
        controller = min(nodes.values())
        target = next(n for n in sorted(nodes.values()) if n not in (old, controller))
        target_index = next(i for i, n in nodes.items() if n == target)
        tp = TopicPartition(topic, 0)

        def everyone_says(leader: int) -> bool:
            return all(_leaders(cluster.broker_bootstrap(i), topic)[0] == leader
                       for i in cluster.node_ids())

        assert admin.alter_partition_reassignments({tp: [target]}) == {tp: None}
        wait_for(lambda: everyone_says(target), 20, f"every broker names {target} leader of partition 0")
        wait_for(lambda: tp not in admin.list_partition_reassignments(), 20, "the reassignment to finish")
        p = Producer(base_conf(cluster.bootstrap, **{"enable.idempotence": True, "acks": "all"}))
        for i in range(100):
            p.produce(topic, value=f"b-{i}".encode(), partition=0)
        assert p.flush(60) == 0
        got = consume(cluster.bootstrap, topic, [0], 200)
        assert [m.offset for m in got] == list(range(200))
        assert [m.value for m in got[100:]] == [f"b-{i}".encode() for i in range(100)]

        cluster.control(target_index, "stop")
        wait_for(lambda: _leaders(cluster.bootstrap, topic)[0] == old, 20, "partition 0 back on its hashed leader")
        election = admin.elect_leaders(0, {topic: [0]}, raise_errors=False)
        codes = [q.error_code for r in election.replica_election_results for q in r.partition_result]
        assert codes == [Errors.PreferredLeaderNotAvailableError.errno], codes
        assert admin.list_partition_reassignments()[tp]["replicas"] == [target]
        cluster.control(target_index, "start")
        wait_for(lambda: everyone_says(target), 30, "the pinned broker leading again after its restart")

        assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
        wait_for(lambda: everyone_says(old), 20, "partition 0 back on its hashed leader after the cancel")
        assert admin.alter_partition_reassignments({tp: None}) == {tp: Errors.NoReassignmentInProgressError}
    finally:
        admin.close()


def _find_txn_coordinator(bootstrap: str, txn_id: str) -> int:
    """The node id FindCoordinator (v1, key type 1) names for a transactional id, asked by hand."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    client_id = b"kfdb-compat"
    key = txn_id.encode()
    body = (
        struct.pack(">hhih", 10, 1, 7, len(client_id))
        + client_id
        + struct.pack(">h", len(key))
        + key
        + struct.pack(">b", 1)
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read_exactly(s, 4))[0]
        resp = _read_exactly(s, size)
    # correlation id, throttle time, error code, error message (nullable string), node id
    _corr, _throttle, error = struct.unpack(">iih", resp[:10])
    assert error == 0, f"FindCoordinator error {error}"
    msg_len = struct.unpack(">h", resp[10:12])[0]
    at = 12 + max(msg_len, 0)
    return struct.unpack(">i", resp[at : at + 4])[0]


def _read_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_transaction_survives_its_coordinator_stopping(cluster, topic_name):
    topic = topic_name()
    create_topic(cluster.bootstrap, topic, partitions=3)
    ids = cluster.node_ids()
    txn_id = next(
        t for t in (f"{topic}-txn-{i}" for i in range(200)) if _find_txn_coordinator(cluster.bootstrap, t) == ids[0]
    )
    p = Producer(base_conf(cluster.bootstrap, **{"transactional.id": txn_id, "transaction.timeout.ms": 60000}))
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(100):
        p.produce(topic, value=f"t-{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0
    cluster.control(0, "stop")
    try:
        p.commit_transaction(60)
    finally:
        cluster.control(0, "start")
    got = consume(cluster.bootstrap, topic, range(3), 100, **{"isolation.level": "read_committed"})
    assert sorted(m.value for m in got) == sorted(f"t-{i}".encode() for i in range(100))
