"""Client quotas (DescribeClientQuotas/AlterClientQuotas and throttling), on kfdb or Apache Kafka.

Quotas are set and read with Kafka's own kafka-configs tool (``--entity-type users/clients/ips``),
then a confluent-kafka producer and consumer whose client id has a byte-rate quota are checked
the way a user sees throttling: librdkafka's statistics report the broker's throttle times, and
moving the data takes at least as long as the quota allows (a lower bound only, with a wide
margin for the quota's 10-second averaging window; never a speed assertion). A client id
without a quota moving the same data sees no throttle.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer

from ckhelpers import create_topic, wait_for
from test_kafka_cli import dashed, tool

# JVM start-ups on 2 busy cores, and throttled transfers of several seconds.
pytestmark = pytest.mark.timeout(400)

# The quota the throttled clients get, and how much they move: at 100 KiB/s, 3 MiB takes at least
# ~20 s (the rate is averaged over up to 11 s, so the first ~1.1 MiB can pass at once).
RATE = 100 * 1024
TOTAL = 3 * 1024 * 1024
RECORD = 8 * 1024
# What the quota allows at most: TOTAL at RATE plus an 11 s window's worth; asserted with slack.
FLOOR_S = (TOTAL - 11 * RATE) / RATE / 2


def configs(bootstrap: str, *args: str, check: bool = True):
    return tool("kafka-configs", "--bootstrap-server", bootstrap, *args, check=check)


def quota_line(bootstrap: str, *entity: str) -> str:
    """What ``--describe`` prints for one entity (empty when it has no quota)."""
    return configs(bootstrap, "--describe", *entity).stdout.strip()


def values_of(line: str) -> dict[str, float]:
    """``... are producer_byte_rate=1024.0, consumer_byte_rate=2048.0`` as a dict."""
    m = re.search(r" are (.*)$", line, re.M)
    if not m:
        return {}
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split(", ") if kv)}


def test_quotas_set_described_and_removed_with_kafka_configs(bootstrap, topic_name):
    user = dashed(topic_name("user"))
    client = dashed(topic_name("client"))
    u = ("--entity-type", "users", "--entity-name", user)
    c = ("--entity-type", "clients", "--entity-name", client)
    out = configs(bootstrap, "--alter", *u, "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048").stdout
    assert f"Completed updating config for user {user}." in out, out
    configs(bootstrap, "--alter", *u, *c, "--add-config", "request_percentage=12.5")
    configs(bootstrap, "--alter", *c, "--add-config", "producer_byte_rate=4096")
    # Defaults with values too large to throttle anyone, removed at the end.
    default_user = ("--entity-type", "users", "--entity-default")
    default_ip = ("--entity-type", "ips", "--entity-default")
    try:
        configs(bootstrap, "--alter", *default_user, "--add-config", "consumer_byte_rate=1000000000000")
        configs(bootstrap, "--alter", *default_ip, "--add-config", "connection_creation_rate=100000")
        configs(bootstrap, "--alter", "--entity-type", "ips", "--entity-name", "10.1.2.3",
                "--add-config", "connection_creation_rate=7")

        def described(*entity):
            return values_of(quota_line(bootstrap, *entity))

        wait_for(lambda: described(*u) == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
                 10, "the user's quotas")
        line = quota_line(bootstrap, *u)
        assert f"user-principal '{user}'" in line, line
        assert described(*u, *c) == {"request_percentage": 12.5}
        assert described(*c) == {"producer_byte_rate": 4096.0}
        assert described(*default_user) == {"consumer_byte_rate": 1e12}
        assert described(*default_ip) == {"connection_creation_rate": 100000.0}
        assert described("--entity-type", "ips", "--entity-name", "10.1.2.3") == {"connection_creation_rate": 7.0}

        # Every user entity: the named user and the default; with client ids, the pair.
        every_user = configs(bootstrap, "--describe", "--entity-type", "users").stdout
        assert f"user-principal '{user}' are" in every_user, every_user
        assert "the default user-principal are consumer_byte_rate=1.0E12" in every_user, every_user
        pairs = configs(bootstrap, "--describe", "--entity-type", "users", "--entity-type", "clients").stdout
        assert re.search(rf"user-principal '{re.escape(user)}', client-id '{re.escape(client)}' are "
                         r"request_percentage=12\.5", pairs), pairs

        # Refused values and keys, as Kafka refuses them; nothing changes.
        for bad in ("producer_byte_rate=1.5", "producer_byte_rate=0", "no_such_quota=1"):
            r = configs(bootstrap, "--alter", *u, "--add-config", bad, check=False)
            assert r.returncode != 0, (bad, r.stdout)
        r = configs(bootstrap, "--alter", *u, "--add-config", "connection_creation_rate=5", check=False)
        assert r.returncode != 0, r.stdout
        assert described(*u) == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}

        # Removing a key keeps the others; removing the last drops the entity.
        configs(bootstrap, "--alter", *u, "--delete-config", "producer_byte_rate")
        wait_for(lambda: described(*u) == {"consumer_byte_rate": 2048.0}, 10, "one quota removed")
        configs(bootstrap, "--alter", *u, "--delete-config", "consumer_byte_rate")
        wait_for(lambda: described(*u) == {}, 10, "the user's quotas gone")
        assert f"user-principal '{user}'" not in configs(bootstrap, "--describe", "--entity-type", "users").stdout
    finally:
        configs(bootstrap, "--alter", *default_user, "--delete-config", "consumer_byte_rate", check=False)
        configs(bootstrap, "--alter", *default_ip, "--delete-config", "connection_creation_rate", check=False)
        configs(bootstrap, "--alter", *c, "--delete-config", "producer_byte_rate", check=False)
        configs(bootstrap, "--alter", *u, *c, "--delete-config", "request_percentage", check=False)


class Throttles:
    """The largest broker throttle time librdkafka's statistics reported."""

    def __init__(self):
        self.max_ms = 0

    def __call__(self, stats_json: str):
        stats = json.loads(stats_json)
        for b in stats.get("brokers", {}).values():
            self.max_ms = max(self.max_ms, b.get("throttle", {}).get("max", 0))


def produce_all(bootstrap: str, topic: str, client_id: str) -> tuple[float, int]:
    """Produce TOTAL bytes as ``client_id``; seconds taken and the largest throttle reported."""
    throttles = Throttles()
    p = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 64 * 1024,
        "statistics.interval.ms": 500,
        "stats_cb": throttles,
    })
    failed = []
    started = time.monotonic()
    for i in range(TOTAL // RECORD):
        while True:
            try:
                p.produce(topic, value=bytes([i % 251]) * RECORD, key=str(i).encode(),
                          on_delivery=lambda err, msg: err and failed.append(err))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(120) == 0, "not everything was delivered"
    elapsed = time.monotonic() - started
    time.sleep(1.2)  # one more statistics report
    p.poll(0)
    assert not failed, failed[:3]
    return elapsed, throttles.max_ms


def consume_all(bootstrap: str, topic: str, client_id: str) -> tuple[float, int]:
    """Read TOTAL bytes from the start as ``client_id``; seconds taken, largest throttle."""
    throttles = Throttles()
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "group.id": client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "statistics.interval.ms": 500,
        "stats_cb": throttles,
    })
    c.subscribe([topic])
    got, keys = 0, set()
    started = time.monotonic()
    deadline = started + 180
    try:
        while got < TOTAL and time.monotonic() < deadline:
            for m in c.consume(100, 1.0):
                assert m.error() is None, m.error()
                got += len(m.value())
                keys.add(m.key())
        elapsed = time.monotonic() - started
        time.sleep(1.2)
        c.poll(0.1)
    finally:
        c.close()
    assert got == TOTAL and len(keys) == TOTAL // RECORD, (got, len(keys))
    return elapsed, throttles.max_ms


def test_byte_rate_quotas_throttle_producer_and_consumer(bootstrap, topic_name):
    t = topic_name()
    create_topic(bootstrap, t)
    slow = dashed(topic_name("slow"))
    free = dashed(topic_name("free"))
    entity = ("--entity-type", "clients", "--entity-name", slow)
    configs(bootstrap, "--alter", *entity, "--add-config", f"producer_byte_rate={RATE},consumer_byte_rate={RATE}")
    wait_for(lambda: values_of(quota_line(bootstrap, *entity)).get("consumer_byte_rate") == RATE, 10,
             "the quotas")
    time.sleep(1.5)  # every broker's copy of the quotas is fresh

    elapsed, throttle_ms = produce_all(bootstrap, t, slow)
    print(f"throttled produce: {elapsed:.1f} s, largest throttle {throttle_ms} ms")
    assert throttle_ms > 0, "the producer was never told it was throttled"
    assert elapsed >= FLOOR_S, f"{TOTAL} bytes produced in {elapsed:.1f} s despite a {RATE} B/s quota"

    elapsed, throttle_ms = consume_all(bootstrap, t, slow)
    print(f"throttled consume: {elapsed:.1f} s, largest throttle {throttle_ms} ms")
    assert throttle_ms > 0, "the consumer was never told it was throttled"
    assert elapsed >= FLOOR_S, f"{TOTAL} bytes fetched in {elapsed:.1f} s despite a {RATE} B/s quota"

    # Without a quota the same data moves unthrottled.
    _, throttle_ms = consume_all(bootstrap, t, free)
    assert throttle_ms == 0
    configs(bootstrap, "--alter", *entity, "--delete-config", "producer_byte_rate,consumer_byte_rate")


def test_request_percentage_quota_throttles_requests(bootstrap, topic_name):
    """A client id allowed 0.01 % of a request thread is throttled after a few Metadata requests,
    and told so in the responses' throttle time."""
    t = topic_name()
    create_topic(bootstrap, t)
    busy = dashed(topic_name("busy"))
    entity = ("--entity-type", "clients", "--entity-name", busy)
    configs(bootstrap, "--alter", *entity, "--add-config", "request_percentage=0.01")
    wait_for(lambda: values_of(quota_line(bootstrap, *entity)).get("request_percentage") == 0.01, 10, "the quota")
    time.sleep(1.5)
    throttles = Throttles()
    p = Producer({"bootstrap.servers": bootstrap, "client.id": busy, "statistics.interval.ms": 200,
                  "stats_cb": throttles})
    try:
        deadline = time.monotonic() + 60
        while throttles.max_ms == 0 and time.monotonic() < deadline:
            p.list_topics(t, timeout=10)
            p.poll(0)
        assert throttles.max_ms > 0, "the client was never told it was throttled"
        print(f"request quota: largest throttle {throttles.max_ms} ms")
    finally:
        p.flush(5)
        configs(bootstrap, "--alter", *entity, "--delete-config", "request_percentage")


def api_versions_answered(bootstrap: str, source: str) -> bool:
    """Connect from ``source`` (a loopback address), ask ApiVersions v0; whether it was answered
    (False: the broker closed the connection without an answer)."""
    host, port = bootstrap.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(15)
    try:
        s.bind((source, 0))
        s.connect((host, int(port)))
        client_id = b"quota-probe"
        body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
        s.sendall(struct.pack(">i", len(body)) + body)
        try:
            head = s.recv(4)
        except ConnectionResetError:
            return False
        return len(head) == 4
    finally:
        s.close()


def test_connection_creation_rate_quota_per_address(bootstrap):
    """An address allowed 1 connection per second gets about ten at once (the rate is averaged
    over 10 s), then its new connections are held and closed unanswered (KIP-612); another
    address is unaffected. The connections come from 127.0.0.2, so the test's own tools are not
    throttled."""
    entity = ("--entity-type", "ips", "--entity-name", "127.0.0.2")
    configs(bootstrap, "--alter", *entity, "--add-config", "connection_creation_rate=1")
    try:
        wait_for(lambda: values_of(quota_line(bootstrap, *entity)).get("connection_creation_rate") == 1, 10,
                 "the quota")
        time.sleep(1.5)
        answered = [api_versions_answered(bootstrap, "127.0.0.2") for _ in range(16)]
        print(f"connections from 127.0.0.2 answered: {answered}")
        assert answered[0], answered
        assert not all(answered), "no connection was throttled"
        assert all(api_versions_answered(bootstrap, "127.0.0.3") for _ in range(16))
    finally:
        configs(bootstrap, "--alter", *entity, "--delete-config", "connection_creation_rate")


def test_a_consumer_far_over_its_quota_still_progresses(bootstrap, topic_name):
    """A consumer allowed 20 KiB/s that asks for 10 MiB per partition from a 3 MiB backlog gets
    records (Kafka caps one Fetch at what the quota allows over its window, so the consumer is
    throttled between fetches, never starved)."""
    t = topic_name()
    create_topic(bootstrap, t)
    produce_all(bootstrap, t, dashed(topic_name("fast")))
    slow = dashed(topic_name("starved"))
    entity = ("--entity-type", "clients", "--entity-name", slow)
    configs(bootstrap, "--alter", *entity, "--add-config", "consumer_byte_rate=20480")
    try:
        wait_for(lambda: values_of(quota_line(bootstrap, *entity)).get("consumer_byte_rate") == 20480, 10,
                 "the quota")
        time.sleep(1.5)
        c = Consumer({"bootstrap.servers": bootstrap, "client.id": slow, "group.id": slow,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "max.partition.fetch.bytes": 10 * 1024 * 1024, "fetch.max.bytes": 52428800})
        c.subscribe([t])
        got = 0
        deadline = time.monotonic() + 45
        try:
            while got == 0 and time.monotonic() < deadline:
                for m in c.consume(100, 1.0):
                    assert m.error() is None, m.error()
                    got += 1
        finally:
            c.close()
        assert got > 0, "the consumer got nothing in 45 s"
    finally:
        configs(bootstrap, "--alter", *entity, "--delete-config", "consumer_byte_rate")
