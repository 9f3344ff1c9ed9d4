"""Operating kfdb: a Kafka ``server.properties`` as its configuration, ``kfdb config print``,
the health endpoints and ``kfdb healthcheck``, log formats and the slow-request log.

The configuration test runs kfdb on *the very file* this suite runs Apache Kafka 4.4 with
(``jvmhelpers.ApacheKafka`` writes it: KRaft combined mode, a CONTROLLER listener, replication
factors, ``log.dirs``...), with ``num.partitions=3`` added, and checks a real client's view:
auto-created topics get 3 partitions, every record comes back. These are kfdb's own operational
surfaces (Kafka has other ones), so the module is skipped against Apache Kafka.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

import conftest
import jvmhelpers
from ckhelpers import consume, create_topic, produce, wait_for

pytestmark = pytest.mark.skipif(
    conftest.on_kafka() or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
    reason="kfdb's configuration, health endpoints and logs (Kafka has its own)",
)


class Proc:
    """``kfdb serve`` with exactly the given arguments (no harness defaults)."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str] | None = None):
        self.log_path = workdir / "kfdb.stderr.log"
        full_env = dict(os.environ)
        full_env.pop("KFDB_LOG", None)
        full_env.update(env or {})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(conftest.kfdb_binary()), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=full_env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_port(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not conftest.port_open("127.0.0.1", port):
            code = self.proc.poll()
            assert code is None, f"kfdb exited with {code}\n{self.log()[-4000:]}"
            assert time.monotonic() < deadline, f"kfdb did not listen on {port}\n{self.log()[-4000:]}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="kfdb-compat-operations-"))
    yield d
    if os.environ.get("KFDB_KEEP_DATA") != "1":
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def kafka_server_properties(workdir: Path, port: int, extra: dict[str, str]) -> Path:
    """The server.properties this suite starts Apache Kafka with, written by its own harness."""
    kafka = jvmhelpers.ApacheKafka(workdir / "kafka", port=port, configs=extra)
    kafka.workdir.mkdir(parents=True, exist_ok=True)
    kafka._write_config()
    return kafka.config_path


def run_kfdb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [str(conftest.kfdb_binary()), *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_kafka_server_properties_as_is(workdir, topic_name):
    port = conftest.free_port()
    props = kafka_server_properties(
        workdir, port, {"num.partitions": "3", "log.retention.hours": "24", "log.retention.check.interval.ms": "300"}
    )
    text = props.read_text()
    assert "process.roles=broker,controller" in text and "controller.listener.names=CONTROLLER" in text

    printed = run_kfdb("config", "print", "--config", str(props), env={"KFDB_AUTO_CREATE_TOPICS": "true"})
    assert printed.returncode == 0, printed.stderr
    rows = {line.split()[0]: line for line in printed.stdout.splitlines() if line.strip()}
    assert "3" in rows["num.partitions"].split() and f"({'num.partitions'})" in rows["num.partitions"]
    assert "env KFDB_AUTO_CREATE_TOPICS" in rows["auto.create.topics.enable"]
    assert rows["group.initial.rebalance.delay.ms"].split()[-1] == "default"
    # A flag wins over the file.
    flagged = run_kfdb("config", "print", "--config", str(props), "--num-partitions", "7")
    assert [line for line in flagged.stdout.splitlines() if line.startswith("num.partitions")][0].split()[1:3] == [
        "7",
        "flag",
    ]

    server = Proc(["serve", "--config", str(props), "--data-dir", str(workdir / "data"), *conftest.fresh_store_args()], workdir)
    try:
        server.wait_port(port)
        bootstrap = f"127.0.0.1:{port}"
        topic = topic_name()
        sent = produce(bootstrap, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(30)])
        assert {p for p, _ in sent} <= {0, 1, 2}
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
        assert len(md.topics[topic].partitions) == 3, "num.partitions from the file applies to auto-created topics"
        assert md.brokers[1].port == port and len(md.brokers) == 1, "node.id and advertised.listeners from the file"
        # DescribeConfigs of the broker names each setting's source, as Kafka does.
        from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
        entries = list(futures.values())[0].result(timeout=10)
        assert entries["num.partitions"].value == "3"
        assert entries["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG.value
        assert entries["log.cleaner.backoff.ms"].value == "15000"
        assert entries["log.cleaner.backoff.ms"].source == ConfigSource.DEFAULT_CONFIG.value
        assert entries["kfdb.hot.cache.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
        # log.retention.hours from the file is every topic's default retention.ms...
        t_entries = list(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values())[0].result(10)
        assert t_entries["retention.ms"].value == str(24 * 3600 * 1000)
        assert t_entries["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
        got = consume(bootstrap, topic, range(3), 30)
        assert sorted(m.value for m in got) == sorted(f"v{i}".encode() for i in range(30))
        # ... and a cluster-wide dynamic log.retention.ms wins over it, and is applied: records
        # older than it go at the next retention check.
        old_topic = topic_name("old")
        create_topic(bootstrap, old_topic, partitions=1)
        hour_ago = int(time.time() * 1000) - 3_600_000
        produce(bootstrap, old_topic, [{"value": b"old", "timestamp": hour_ago} for _ in range(5)])
        # (librdkafka cannot name the default broker resource; Kafka's own tool can.)
        altered = jvmhelpers.run_java(
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server", bootstrap, "--entity-type", "brokers", "--entity-default",
            "--alter", "--add-config", "log.retention.ms=60000",
            timeout=120,
        )
        assert altered.returncode == 0, altered.stdout
        t_entries = list(admin.describe_configs([ConfigResource(ResourceType.TOPIC, old_topic)]).values())[0].result(10)
        assert (t_entries["retention.ms"].value, t_entries["retention.ms"].source) == (
            "60000",
            ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value,
        )
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
        try:
            wait_for(
                lambda: c.get_watermark_offsets(TopicPartition(old_topic, 0), timeout=5) == (5, 5),
                15,
                "records older than the dynamic log.retention.ms deleted",
            )
        finally:
            c.close()
        log = server.log()
        assert "are ignored" in log and "log.dirs" in log and "process.roles" in log
        assert "\x1b[" not in log, "no colour codes when stderr is not a terminal"
        assert not conftest.port_open("127.0.0.1", int(text.split("CONTROLLER://127.0.0.1:")[1].split()[0].split(",")[0]))
    finally:
        assert server.stop() == 0, server.log()[-3000:]


def test_unknown_and_unsupported_keys_are_errors(workdir):
    bad = workdir / "bad.properties"
    bad.write_text("num.partition=3\n")
    r = run_kfdb("serve", "--config", str(bad), "--data-dir", str(workdir / "d"))
    assert r.returncode == 2
    assert "unknown setting num.partition" in r.stderr and "did you mean num.partitions" in r.stderr
    jks = workdir / "jks.properties"
    jks.write_text("ssl.keystore.type=JKS\nssl.keystore.location=/etc/k.jks\n")
    r = run_kfdb("config", "print", "--config", str(jks))
    assert r.returncode == 2 and "kfdb reads PEM" in r.stderr
    missing = run_kfdb("config", "print", "--config", str(workdir / "nope.properties"))
    assert missing.returncode == 2 and "nope.properties" in missing.stderr


def test_health_readiness_and_healthcheck(workdir):
    port, mport = conftest.free_port(), conftest.free_port()
    server = Proc(
        [
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(workdir / "data"),
            "--metrics-listen",
            f"127.0.0.1:{mport}",
            *conftest.fresh_store_args(),
        ],
        workdir,
    )
    try:
        server.wait_port(port)
        wait_for(lambda: conftest.port_open("127.0.0.1", mport), 10, "the metrics listener")
        assert http_get(f"http://127.0.0.1:{mport}/healthz") == (200, "ok\n")
        status, body = http_get(f"http://127.0.0.1:{mport}/readyz")
        assert (status, body) == (200, "ready\n")
        for path in ("healthz", "readyz"):
            r = run_kfdb("healthcheck", "--url", f"http://127.0.0.1:{mport}/{path}")
            assert r.returncode == 0, r.stderr
        # A taken metrics address fails the start (no kfdb without its health endpoints).
        taken = run_kfdb(
            "serve", "--listen", f"127.0.0.1:{conftest.free_port()}", "--data-dir", str(workdir / "other"),
            "--metrics-listen", f"127.0.0.1:{mport}",
        )
        assert taken.returncode != 0 and f"--metrics-listen 127.0.0.1:{mport}" in taken.stderr, taken.stderr
    finally:
        assert server.stop() == 0
    r = run_kfdb("healthcheck", "--url", f"http://127.0.0.1:{mport}/healthz", "--timeout-ms", "500")
    assert r.returncode != 0, "a stopped kfdb is not healthy"


def test_json_logs_and_the_slow_request_log(workdir, topic_name):
    port = conftest.free_port()
    server = Proc(
        [
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(workdir / "data"),
            "--log-format",
            "json",
            "--slow-request-ms",
            "1",
            *conftest.fresh_store_args(),
        ],
        workdir,
        env={"KFDB_COMMIT_LATENCY_MS": "5"},
    )
    try:
        server.wait_port(port)
        bootstrap = f"127.0.0.1:{port}"
        topic = topic_name()
        create_topic(bootstrap, topic, partitions=1)
        produce(bootstrap, topic, [{"value": b"x" * 100} for _ in range(5)])
        # Lines are JSON objects; the slow Produce requests are among them.
        def slow_produces():
            lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
            return [
                entry
                for entry in lines
                if entry.get("fields", {}).get("message") == "slow request"
                and entry["fields"].get("api") == "Produce"
            ]

        wait_for(lambda: slow_produces(), 10, "a slow-request line for Produce")
        entry = slow_produces()[0]
        fields = entry["fields"]
        assert entry["level"] == "WARN" and entry["target"] == "kfdb::slow_request"
        assert fields["topic"] == topic and fields["client_id"] == "rdkafka"
        total = float(fields["total_ms"])
        parts = float(fields["queue_ms"]) + float(fields["handler_ms"]) + float(fields["encode_ms"])
        assert total >= 1 and abs(total - parts) < 0.5, fields
    finally:
        assert server.stop() == 0
