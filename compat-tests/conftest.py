"""pytest harness of the kfdb real-client compatibility suite.

Starts one kfdb process per test module (fixture ``kfdb``) on a free loopback port with a fresh
data directory, waits until it accepts TCP connections, and stops it at teardown. Whatever kfdb
wrote to stderr during a failed test is attached to that test's failure report.

Environment:
  KFDB_BIN          use this kfdb binary instead of building one with `cargo build -p kfdb`
  KFDB_KEEP_DATA=1  keep the temporary data directories (and logs) instead of deleting them
  KFDB_LOG          passed through to kfdb (default: info)
  KFDB_COMPAT_TARGET=kafka
                    run every test against Apache Kafka 4.4 instead of kfdb: one KRaft combined
                    node per module, started from the Maven module's classpath (jvmhelpers.py) on
                    free loopback ports with a freshly formatted log dir; a module's KFDB_ARGS
                    become the same-named Kafka broker configs. Default: kfdb
  KFDB_COMPAT_BOOTSTRAP=host:port
                    run the tests against an already running broker (e.g. Apache Kafka, to check
                    the tests themselves) instead of starting kfdb; restart tests are skipped
  KFDB_FDB_CLUSTER_FILE=/path/fdb.cluster
                    run kfdb on FoundationDB (`--store fdb`; the binary is built with
                    `--features fdb`): the whole database is cleared with fdbcli
                    (KFDB_FDBCLI, default `fdbcli`) before each module's kfdb starts
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import jvmhelpers

SUITE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUITE_DIR.parent

START_TIMEOUT_S = 30.0  # until the port accepts TCP connections
STOP_TIMEOUT_S = 10.0  # after SIGTERM, before SIGKILL
LOG_TAIL_LINES = 300  # lines of kfdb stderr attached to a failure report

_kfdb_bin: Path | None = None


# --------------------------------------------------------------------------------------------
# Building the binary (once per session, outside of any per-test timeout)
# --------------------------------------------------------------------------------------------


def _build_kfdb() -> Path:
    env_bin = os.environ.get("KFDB_BIN")
    if env_bin:
        path = Path(env_bin).resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.exit(f"KFDB_BIN={env_bin} is not an executable file", returncode=3)
        return path
    cmd = ["nice", "-n", "10", "cargo", "build", "-p", "kfdb"]
    if fdb_cluster_file():
        cmd += ["--features", "fdb"]
    print(f"\n[compat-tests] building kfdb: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace")
        pytest.exit(f"`cargo build -p kfdb` failed (exit {proc.returncode}):\n{out[-8000:]}", returncode=3)
    return REPO_ROOT / "target" / "debug" / "kfdb"


def compat_target() -> str:
    """``kfdb`` (default) or ``kafka`` (Apache Kafka 4.4 started by this harness)."""
    target = os.environ.get("KFDB_COMPAT_TARGET", "kfdb")
    if target not in ("kfdb", "kafka"):
        raise pytest.UsageError(f"KFDB_COMPAT_TARGET={target}: expected kfdb or kafka")
    return target


def on_kafka() -> bool:
    return compat_target() == "kafka"


def pytest_sessionstart(session):
    global _kfdb_bin
    if session.config.option.collectonly or os.environ.get("KFDB_COMPAT_BOOTSTRAP") or on_kafka():
        return
    _kfdb_bin = _build_kfdb()


def kfdb_binary() -> Path:
    global _kfdb_bin
    if _kfdb_bin is None:
        _kfdb_bin = _build_kfdb()
    return _kfdb_bin


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def fdb_cluster_file() -> str | None:
    """The FoundationDB cluster the suite runs kfdb on, if any."""
    return os.environ.get("KFDB_FDB_CLUSTER_FILE") or None


def clear_fdb(cluster_file: str) -> None:
    """Empty the FoundationDB database, so a module's kfdb starts as on a fresh data dir."""
    fdbcli = os.environ.get("KFDB_FDBCLI", "fdbcli")
    proc = subprocess.run(
        [fdbcli, "-C", cluster_file, "--exec", 'writemode on; clearrange "" \\xff', "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if proc.returncode != 0:
        pytest.fail(f"clearing FoundationDB with {fdbcli} failed: {proc.stdout.decode(errors='replace')}")


def fresh_store_args() -> list[str]:
    """`kfdb serve` arguments for a module that starts its own kfdb: on FoundationDB (emptied
    first), else nothing (its own embedded data dir)."""
    cluster = fdb_cluster_file()
    if not cluster:
        return []
    clear_fdb(cluster)
    return ["--store", "fdb", "--fdb-cluster-file", cluster]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class KfdbStartError(RuntimeError):
    pass


class Kfdb:
    """One kfdb process: ``start()``, ``stop()``, ``restart()`` (same data dir and port)."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        port: int,
        node_id: int = 1,
        name: str = "kfdb",
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.binary = binary
        self.extra_args = list(extra_args or [])  # appended to `kfdb serve ...`
        self.extra_env = dict(extra_env or {})  # set in kfdb's environment (over os.environ)
        self.data_dir = data_dir
        self.host = "127.0.0.1"
        self.port = port
        self.node_id = node_id
        self.log_path = data_dir.parent / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_exit_code: int | None = None

    def __repr__(self) -> str:
        return f"Kfdb({self.bootstrap}, data_dir={self.data_dir}, running={self.running()})"

    @property
    def bootstrap(self) -> str:
        """``host:port`` to give a client as its bootstrap server."""
        return f"{self.host}:{self.port}"

    # -- logs ---------------------------------------------------------------------------------

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, since: int = 0, tail_lines: int | None = LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no kfdb log)"
        if tail_lines is not None:
            lines = text.splitlines()
            if len(lines) > tail_lines:
                text = f"... ({len(lines) - tail_lines} earlier lines cut)\n" + "\n".join(lines[-tail_lines:])
        return text

    def _log_marker(self, msg: str) -> None:
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== [compat-tests] {time.strftime('%H:%M:%S')} {msg} =====\n".encode())

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is None or self.proc.poll() is not None, "kfdb is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        # A module that gives --listeners names every listener itself (``port`` is one of them).
        listen = [] if "--listeners" in self.extra_args else ["--listen", self.bootstrap, "--advertised-listener", self.bootstrap]
        cmd = [
            str(self.binary),
            "serve",
            *listen,
            "--data-dir",
            str(self.data_dir),
            "--node-id",
            str(self.node_id),
            *self.extra_args,
        ]
        self._log_marker(f"start #{self.starts}: {' '.join(cmd)}")
        env = dict(os.environ)
        env.setdefault("KFDB_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain log lines in failure reports
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.last_exit_code = code
                raise KfdbStartError(
                    f"kfdb exited with code {code} before accepting connections on {self.bootstrap}.\n"
                    f"command: {' '.join(cmd)}\n--- kfdb stderr ---\n{self.log_text()}"
                )
            if port_open(self.host, self.port):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise KfdbStartError(
                    f"kfdb did not accept TCP connections on {self.bootstrap} within {timeout:.0f} s "
                    f"(process killed).\ncommand: {' '.join(cmd)}\n--- kfdb stderr ---\n{self.log_text()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code (negative: signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._log_marker("SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._log_marker(f"still running {timeout:.0f} s after SIGTERM: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.last_exit_code = self.proc.returncode
        self._log_marker(f"exited with code {self.last_exit_code}")
        return self.last_exit_code

    def kill(self) -> None:
        """SIGKILL (a crash), wait for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self._log_marker("SIGKILL")
            self.proc.kill()
            self.proc.wait()
            self.last_exit_code = self.proc.returncode

    def restart(self) -> int | None:
        """Stop (SIGTERM) and start again on the same data dir and port. Returns the stop's exit code."""
        code = self.stop()
        self.start()
        return code

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ExternalBroker:
    """Stand-in for Kfdb when KFDB_COMPAT_BOOTSTRAP points at a broker this suite did not start."""

    def __init__(self, bootstrap: str):
        self.host, port = bootstrap.rsplit(":", 1)
        self.port = int(port)
        self.bootstrap = bootstrap
        self.log_path = None

    def restart(self):
        pytest.skip("KFDB_COMPAT_BOOTSTRAP is set: cannot restart an external broker")

    kill = start = stop = restart


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kfdb(request):
    """A kfdb process for this test module (fresh data dir, free loopback port).

    A test module can set ``KFDB_ARGS`` (a list of extra ``kfdb serve`` arguments, e.g.
    ``["--group-initial-rebalance-delay-ms", "500"]``) and ``KFDB_ENV`` (a dict of extra
    environment variables for kfdb, e.g. ``{"KFDB_LOG": "info,kfdb_broker=debug"}``)."""
    external = os.environ.get("KFDB_COMPAT_BOOTSTRAP")
    if external:
        yield ExternalBroker(external)
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"kfdb-compat-{request.module.__name__}-"))
    if on_kafka():
        yield from _apache_kafka(request, workdir)
        return
    extra_args = list(getattr(request.module, "KFDB_ARGS", None) or [])
    cluster = fdb_cluster_file()
    if cluster:
        clear_fdb(cluster)
        extra_args = ["--store", "fdb", "--fdb-cluster-file", cluster, *extra_args]
    server = Kfdb(
        kfdb_binary(),
        workdir / "data",
        free_port(),
        extra_args=extra_args,
        extra_env=getattr(request.module, "KFDB_ENV", None),
    )
    start_error = None
    try:
        server.start()
    except KfdbStartError as e:
        start_error = str(e)
    if start_error is not None:
        if os.environ.get("KFDB_KEEP_DATA") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(start_error, pytrace=False)
    yield server
    code = server.stop()
    if code not in (0, None):
        print(
            f"\n[compat-tests] warning: kfdb ({request.module.__name__}) exited with code {code} on SIGTERM "
            f"(expected 0)\n--- kfdb stderr (tail) ---\n{server.log_text(tail_lines=40)}",
            file=sys.stderr,
        )
    if os.environ.get("KFDB_KEEP_DATA") == "1":
        print(f"\n[compat-tests] kept {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _apache_kafka(request, workdir: Path):
    configs = jvmhelpers.kafka_configs_from_kfdb_args(list(getattr(request.module, "KFDB_ARGS", None) or []))
    configs.update(getattr(request.module, "KAFKA_CONFIGS", None) or {})
    server = jvmhelpers.ApacheKafka(workdir, configs=configs)
    try:
        server.start()
    except (jvmhelpers.KafkaStartError, jvmhelpers.JvmBuildError) as e:
        server.cleanup(keep=os.environ.get("KFDB_KEEP_DATA") == "1")
        pytest.fail(str(e), pytrace=False)
    yield server
    keep = os.environ.get("KFDB_KEEP_DATA") == "1"
    server.cleanup(keep=keep)
    if keep:
        print(f"\n[compat-tests] kept {workdir}", file=sys.stderr)


@pytest.fixture(scope="module")
def bootstrap(kfdb) -> str:
    return kfdb.bootstrap


def make_topic_name(node_name: str, suffix: str = "") -> str:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", node_name).strip("-.")[:120]
    parts = [base] + ([suffix] if suffix else []) + [uuid.uuid4().hex[:8]]
    return "-".join(parts)


@pytest.fixture
def topic_name(request):
    """A factory of topic names unique to this test: ``topic_name()``, ``topic_name('suffix')``."""

    def make(suffix: str = "") -> str:
        return make_topic_name(request.node.name, suffix)

    return make


# --------------------------------------------------------------------------------------------
# Attach kfdb's stderr to failure reports
# --------------------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield
    server = item.funcargs.get("kfdb") if hasattr(item, "funcargs") else None
    if isinstance(server, (Kfdb, jvmhelpers.ApacheKafka)):
        item._kfdb_log_offset = server.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    server = getattr(item, "funcargs", {}).get("kfdb")
    if not isinstance(server, (Kfdb, jvmhelpers.ApacheKafka)):
        return
    since = getattr(item, "_kfdb_log_offset", 0)
    text = server.log_text(since=since)
    state = "running" if server.running() else f"not running (last exit code {server.last_exit_code})"
    name = "Apache Kafka output" if isinstance(server, jvmhelpers.ApacheKafka) else "kfdb stderr"
    report.sections.append(
        (f"{name} during this test ({server.bootstrap}, {state}, log {server.log_path})", text or "(empty)")
    )
