"""Connection limits with Kafka's names: ``max.connections.per.ip`` (a connection beyond it is
closed at once, and one is admitted again when another closes) and ``connections.max.idle.ms``
(a connection that sends nothing for that long is closed; one that keeps talking stays open;
a client reconnects by itself). Raw sockets speak ApiVersions; confluent-kafka checks that a real
client carries on after its idle connection was closed. The same module runs against Apache
Kafka 4.4 with the same settings.
"""

from __future__ import annotations

import socket
import struct
import time

from confluent_kafka.admin import AdminClient

# The same settings of Apache Kafka (jvmhelpers maps the flags to max.connections.per.ip and
# connections.max.idle.ms).
KFDB_ARGS = ["--max-connections-per-ip", "3", "--connections-max-idle-ms", "1500"]


def api_versions_frame(correlation: int) -> bytes:
    """ApiVersions v0: header (key 18, version 0, correlation id, client id) and an empty body."""
    client = b"limits-test"
    body = struct.pack(">hhih", 18, 0, correlation, len(client)) + client
    return struct.pack(">i", len(body)) + body


def ask(s: socket.socket, correlation: int) -> bool:
    """Send ApiVersions and read the answer's header; False when the broker closed the socket."""
    try:
        s.sendall(api_versions_frame(correlation))
        head = s.recv(8)
        if len(head) < 8:
            return False
        size, got = struct.unpack(">ii", head)
        remaining = size - 4
        while remaining > 0:
            chunk = s.recv(min(remaining, 65536))
            if not chunk:
                return False
            remaining -= len(chunk)
        return got == correlation
    except OSError:
        return False


def closed_by_broker(s: socket.socket, within: float) -> bool:
    """Whether the broker closes ``s`` (EOF or reset) within ``within`` seconds."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_connections_beyond_the_per_ip_limit_are_closed(bootstrap):
    time.sleep(2)  # the harness's own start-up probes have gone
    held = [connect(bootstrap) for _ in range(3)]
    try:
        for i, s in enumerate(held):
            assert ask(s, i + 1), f"connection {i + 1} of 3 is served"
        fourth = connect(bootstrap)
        assert not ask(fourth, 4) or closed_by_broker(fourth, 5), "a 4th connection from 127.0.0.1 is closed"
        fourth.close()
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            again = connect(bootstrap)
            if ask(again, 5):
                again.close()
                break
            again.close()
            assert time.monotonic() < deadline, "a slot freed by a closed connection is given again"
            time.sleep(0.2)
    finally:
        for s in held:
            s.close()


def test_idle_connections_are_closed_and_busy_ones_stay(bootstrap):
    time.sleep(2)
    idle, busy = connect(bootstrap), connect(bootstrap)
    try:
        assert ask(idle, 1) and ask(busy, 1)
        started = time.monotonic()
        alive = True
        while time.monotonic() - started < 4:
            time.sleep(0.4)
            alive = alive and ask(busy, 2)
        assert alive, "a connection with a request every 0.4 s stays open past connections.max.idle.ms"
        assert closed_by_broker(idle, 8), "a connection silent past connections.max.idle.ms is closed"
    finally:
        idle.close()
        busy.close()


def test_a_client_carries_on_after_its_idle_connection_was_closed(bootstrap):
    time.sleep(2)
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    assert admin.list_topics(timeout=10).brokers
    time.sleep(4)  # its connection is closed as idle meanwhile
    assert admin.list_topics(timeout=10).brokers, "librdkafka reconnects and gets metadata again"
