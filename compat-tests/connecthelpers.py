"""Kafka Connect 4.4 workers (connect-runtime, connect-file 4.3.1, connect-json) for test_connect.py.

``ConnectWorker`` runs one worker JVM, distributed (``ConnectDistributed``) or standalone
(``ConnectStandalone``), from the JVM module's classpath, with its REST listener on a free
loopback port and its log in the test's directory; ``stop()`` is SIGTERM, ``kill()`` SIGKILL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import jvmhelpers

START_TIMEOUT_S = 120.0


class ConnectWorker:
    def __init__(self, workdir: Path, name: str, props: dict[str, str], mode: str = "distributed",
                 connector_files: list[Path] | None = None):
        self.workdir = workdir
        self.name = name
        self.mode = mode
        self.rest_port = jvmhelpers._free_port()
        self.props = {
            "listeners": f"http://127.0.0.1:{self.rest_port}",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "offset.flush.interval.ms": "1000",
            # no plugin scanning: FileStream* and the converters are on the classpath
            "plugin.discovery": "only_scan",
            **props,
        }
        self.config_path = workdir / f"{name}.properties"
        self.log_path = workdir / f"{name}.log"
        self.connector_files = list(connector_files or [])
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self) -> None:
        assert not self.running()
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))
        main = ("org.apache.kafka.connect.cli.ConnectDistributed" if self.mode == "distributed"
                else "org.apache.kafka.connect.cli.ConnectStandalone")
        cmd = jvmhelpers.java(main, str(self.config_path), *map(str, self.connector_files), heap="512m")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== [compat-tests] {time.strftime('%H:%M:%S')} start {self.name} =====\n".encode())
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=jvmhelpers.jvm_env("INFO"), start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Connect worker {self.name} exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                info = self.get("/")
                if "version" in info:
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"Connect worker {self.name} not up within {START_TIMEOUT_S} s\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 60) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 150) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- REST ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def get(self, path: str):
        return self.request("GET", path)

    def put_connector(self, name: str, config: dict[str, str]) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("PUT", f"/connectors/{name}/config", config)
                return
            except urllib.error.HTTPError as e:
                # 409: a rebalance is in progress / the worker is still joining; retried as Kafka's docs advise
                if e.code != 409 or time.monotonic() > deadline:
                    raise RuntimeError(f"PUT connector {name}: {e.code} {e.read().decode()}") from e
                time.sleep(0.5)

    def status(self, name: str) -> dict | None:
        try:
            return self.get(f"/connectors/{name}/status")
        except (urllib.error.URLError, OSError, ValueError):
            return None


def wait_running(worker: ConnectWorker, name: str, tasks: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = worker.status(name)
        if (last and last["connector"]["state"] == "RUNNING" and len(last["tasks"]) == tasks
                and all(t["state"] == "RUNNING" for t in last["tasks"])):
            return last
        if last and any(t["state"] == "FAILED" for t in last["tasks"]):
            raise AssertionError(f"connector {name} has a failed task: {json.dumps(last)[:4000]}")
        time.sleep(0.5)
    raise AssertionError(f"connector {name} not RUNNING with {tasks} tasks within {timeout} s: {last}")
