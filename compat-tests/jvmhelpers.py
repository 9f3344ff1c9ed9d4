"""The JVM side of the compatibility suite: the Maven module ``compat-tests/java`` and Apache Kafka.

- ``classpath()``: the module's compiled classes plus its runtime classpath (Kafka 4.4 clients,
  tools, broker, Connect, Streams), built with Maven on first use (``mvn -q package``), again only
  when ``pom.xml`` or a source file is newer than the last build.
- ``java(main, *args)``: the command line that runs a class from that classpath (Java 17).
- ``ApacheKafka``: Apache Kafka 4.4 itself as one KRaft node (``process.roles=broker,controller``)
  on free loopback ports in a fresh directory, storage formatted first (``kafka.tools.StorageTool
  format``). It has the interface of ``conftest.Kfdb`` (``bootstrap``, ``start``, ``stop``,
  ``kill``, ``restart``, ``log_path``), so every test runs unchanged against it when
  ``KFDB_COMPAT_TARGET=kafka``: that shows a test asserts Kafka's behaviour, not kfdb's.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
JAVA_DIR = SUITE_DIR / "java"
CLASSES = JAVA_DIR / "target" / "classes"
CLASSPATH_FILE = JAVA_DIR / "target" / "classpath.txt"
OLD_CLIENTS_DIR = JAVA_DIR / "clients-4.0"
OLD_CLIENTS_CLASSPATH_FILE = OLD_CLIENTS_DIR / "target" / "classpath.txt"
OLD_CLIENTS_VERSION = "4.0.0"  # the oldest kafka-clients 4.0.x Maven Central serves

KAFKA_START_TIMEOUT_S = 90.0  # the JVM, KRaft election and the broker's start on 2 busy cores
KAFKA_STOP_TIMEOUT_S = 30.0

_classpath: str | None = None


class JvmBuildError(RuntimeError):
    pass


def _newest_source_mtime() -> float:
    newest = (JAVA_DIR / "pom.xml").stat().st_mtime
    for path in (JAVA_DIR / "src").rglob("*"):
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
    return newest


def build() -> None:
    """``mvn -q package`` in compat-tests/java unless the last build is newer than every source."""
    if CLASSPATH_FILE.exists() and CLASSPATH_FILE.stat().st_mtime >= _newest_source_mtime():
        return
    cmd = ["mvn", "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package"]
    print(f"\n[compat-tests] building the JVM module: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise JvmBuildError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout.decode()[-8000:]}")
    CLASSPATH_FILE.touch()


def old_clients_classpath() -> str:
    """The scenario classes with kafka-clients 4.0.0 (and its compression libraries) instead of 4.4."""
    build()
    pom = OLD_CLIENTS_DIR / "pom.xml"
    if not OLD_CLIENTS_CLASSPATH_FILE.exists() or OLD_CLIENTS_CLASSPATH_FILE.stat().st_mtime < pom.stat().st_mtime:
        cmd = ["mvn", "-q", "-B", "-f", str(pom), "package"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise JvmBuildError(f"{' '.join(cmd)} failed:\n{proc.stdout.decode()[-8000:]}")
        OLD_CLIENTS_CLASSPATH_FILE.touch()
    # The old jars first: kafka-clients 4.0.0 still has org.apache.kafka.common.utils.AppInfoParser,
    # which the classes directory also holds (the connect-file shim) with fewer methods.
    return f"{OLD_CLIENTS_CLASSPATH_FILE.read_text().strip()}:{CLASSES}"


def classpath() -> str:
    global _classpath
    if _classpath is None:
        build()
        _classpath = f"{CLASSES}:{CLASSPATH_FILE.read_text().strip()}"
    return _classpath


def java_bin() -> str:
    home = os.environ.get("KFDB_JAVA_HOME") or os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else "java"


def java(main: str, *args: str, heap: str = "512m", cp: str | None = None) -> list[str]:
    """The command that runs ``main`` from the module's classpath (or ``cp``) with ``args``."""
    return [java_bin(), f"-Xmx{heap}", "-XX:+UseSerialGC", "-cp", cp or classpath(), main, *args]


def run_java(main: str, *args: str, timeout: float, cp: str | None = None, level: str = "WARN",
             heap: str = "512m") -> subprocess.CompletedProcess:
    """Run a class to completion; stdout and stderr together in ``.stdout`` (text)."""
    cmd = java(main, *args, heap=heap, cp=cp)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          env=jvm_env(level), stdin=subprocess.DEVNULL)


def jvm_env(level: str = "WARN", extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["KFDB_JVM_LOG_LEVEL"] = level
    env.update(extra or {})
    return env


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# kfdb serve flags are Kafka's broker config names (`--group-initial-rebalance-delay-ms` is
# `group.initial.rebalance.delay.ms`); a module's KFDB_ARGS become the same settings of Kafka.
# Flags without a Kafka counterpart are refused here rather than silently dropped.
KAFKA_MAPPED_FLAGS = {
    "--group-initial-rebalance-delay-ms",
    "--group-consumer-heartbeat-interval-ms",
    "--group-min-session-timeout-ms",
    "--group-max-session-timeout-ms",
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
    "--transaction-max-timeout-ms",
    "--transactional-id-expiration-ms",
    "--transaction-remove-expired-transaction-cleanup-interval-ms",
    "--producer-id-expiration-ms",
    "--producer-id-expiration-check-interval-ms",
    "--num-partitions",
    "--auto-create-topics",
    "--log-cleaner-backoff-ms",
    "--max-connections-per-ip",
    "--connections-max-idle-ms",
    "--socket-request-max-bytes",
    "--queued-max-request-bytes",
    "--socket-send-buffer-bytes",
    "--socket-receive-buffer-bytes",
}

# kfdb serve flags for kfdb's own features that Kafka lacks (a test checks those on kfdb only):
# dropped, with their value, when the same module runs against Apache Kafka.
KFDB_ONLY_FLAGS = {"--http-listen"}


def kafka_configs_from_kfdb_args(args: list[str]) -> dict[str, str]:
    configs: dict[str, str] = {}
    it = iter(args)
    for flag in it:
        if flag in KFDB_ONLY_FLAGS:
            next(it)
            continue
        if flag not in KAFKA_MAPPED_FLAGS:
            raise ValueError(f"kfdb flag {flag} has no Apache Kafka mapping in jvmhelpers.py")
        value = next(it)
        name = flag[2:].replace("-", ".")
        if name == "auto.create.topics":
            name = "auto.create.topics.enable"
        configs[name] = value
    hb = configs.get("group.consumer.heartbeat.interval.ms")
    if hb is not None:
        # Kafka bounds the KIP-848 heartbeat interval by min/max settings (default min 5,000 ms).
        configs["group.consumer.min.heartbeat.interval.ms"] = hb
    return configs


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of a UUID), never starting with
    '-' (the format tool would read it as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaStartError(RuntimeError):
    pass


class ApacheKafka:
    """Apache Kafka 4.4 as one KRaft combined node; the interface of ``conftest.Kfdb``."""

    def __init__(self, workdir: Path, port: int | None = None, configs: dict[str, str] | None = None):
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self.controller_port = _free_port()
        self.data_dir = workdir / "kafka-logs"
        self.config_path = workdir / "server.properties"
        self.log_path = workdir / "kafka.stdout.log"
        self.configs = dict(configs or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_exit_code: int | None = None
        self.formatted = False

    def __repr__(self) -> str:
        return f"ApacheKafka({self.bootstrap}, dir={self.workdir}, running={self.running()})"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _write_config(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
        }
        props.update(self.configs)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, since: int = 0, tail_lines: int | None = 300) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no Kafka log)"
        if tail_lines is not None:
            lines = text.splitlines()
            if len(lines) > tail_lines:
                text = f"... ({len(lines) - tail_lines} earlier lines cut)\n" + "\n".join(lines[-tail_lines:])
        return text

    def _marker(self, msg: str) -> None:
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== [compat-tests] {time.strftime('%H:%M:%S')} {msg} =====\n".encode())

    def start(self, timeout: float = KAFKA_START_TIMEOUT_S) -> None:
        assert not self.running(), "Kafka is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.formatted:
            self._write_config()
            cmd = java("kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(self.config_path))
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=jvm_env())
            if proc.returncode != 0:
                raise KafkaStartError(
                    f"kafka-storage format failed (exit {proc.returncode}): {' '.join(cmd[-5:])}\n"
                    f"{proc.stdout.decode()[-4000:]}"
                )
            self.formatted = True
        self.starts += 1
        cmd = java("kafka.Kafka", str(self.config_path), heap="768m")
        self._marker(f"start #{self.starts}: {' '.join(cmd[:3])} ... kafka.Kafka {self.config_path}")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=jvm_env("INFO"), start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        since = 0
        while True:
            code = self.proc.poll()
            if code is not None:
                self.last_exit_code = code
                raise KafkaStartError(f"Kafka exited with code {code} while starting\n{self.log_text()}")
            if _port_open(self.host, self.port) and "Kafka Server started" in self.log_text(since, None):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise KafkaStartError(f"Kafka did not start within {timeout:.0f} s\n{self.log_text()}")
            time.sleep(0.2)

    def stop(self, timeout: float = KAFKA_STOP_TIMEOUT_S) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._marker("SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The JVM exits with 143 (128 + SIGTERM) after a clean shutdown through its hook.
        code = self.proc.returncode
        self.last_exit_code = 0 if code in (0, 143, -signal.SIGTERM) else code
        self._marker(f"exited with code {code}")
        return self.last_exit_code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._marker("SIGKILL")
            self.proc.kill()
            self.proc.wait()
            self.last_exit_code = self.proc.returncode

    def restart(self) -> int | None:
        code = self.stop()
        self.start()
        return code

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self, keep: bool = False) -> None:
        self.stop()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
