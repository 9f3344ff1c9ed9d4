"""docs/quickstart.md, run as written: every command of its ``sh`` blocks, in order, with ``kfdb``
on the PATH, in a fresh directory. Only the ports change (9092-9094 and 9100 become free ones)
and, for the FoundationDB part, the cluster file; ``kfdb serve`` lines run in the background
until their section ends (then SIGTERM, exit 0 expected). Each command must succeed, and the
outputs a reader would look at are checked: the records come back, the cluster lists three
brokers, every record is read after a broker stopped, the brokers are ready again.

The ``sh fdb`` blocks run only when the suite has a FoundationDB cluster (KFDB_FDB_CLUSTER_FILE)
and the kfdb under test was built with it. kfdb's own documentation: skipped against Apache Kafka.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import conftest

pytestmark = pytest.mark.skipif(
    conftest.on_kafka() or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
    reason="kfdb's quickstart (Kafka has its own)",
)

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"


def sections() -> list[tuple[str, list[tuple[bool, list[str]]]]]:
    """(heading, [(needs FoundationDB, command lines)]) for every ``##`` section, in order."""
    out: list[tuple[str, list[tuple[bool, list[str]]]]] = [("", [])]
    block: list[str] | None = None
    fdb = False
    for line in QUICKSTART.read_text().splitlines():
        if block is None:
            if line.startswith("## "):
                out.append((line[3:], []))
            m = re.match(r"^```sh( fdb)?\s*$", line)
            if m:
                block, fdb = [], bool(m.group(1))
        elif line.startswith("```"):
            out[-1][1].append((fdb, block))
            block = None
        elif line.strip() and not line.lstrip().startswith("#"):
            block.append(line.strip())
    return [s for s in out if s[1]]


def free_run(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    for _ in range(200):
        base = conftest.free_port()
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def fdb_capable(binary: Path) -> bool:
    r = subprocess.run([str(binary), "topic", "list", "--store", "fdb"], capture_output=True, text=True, timeout=30)
    return "without FoundationDB support" not in r.stderr


class Walkthrough:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        bindir = workdir / "bin"
        bindir.mkdir()
        (bindir / "kfdb").symlink_to(conftest.kfdb_binary())
        base = free_run(3)
        self.ports = {"9092": str(base), "9093": str(base + 1), "9094": str(base + 2), "9100": str(conftest.free_port())}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KFDB_")}
        self.env["PATH"] = f"{bindir}:{self.env.get('PATH', '')}"
        self.env["NO_COLOR"] = "1"
        # The defaults the document relies on (127.0.0.1:9092 for kfdb serve and the admin
        # commands), moved to the free port.
        self.env["KFDB_LISTEN"] = f"127.0.0.1:{base}"
        self.env["KFDB_BOOTSTRAP_SERVER"] = f"127.0.0.1:{base}"
        self.cluster_file = conftest.fdb_cluster_file()
        self.servers: list[tuple[subprocess.Popen, Path]] = []
        self.outputs: list[tuple[str, str]] = []

    def rewrite(self, line: str) -> str:
        line = re.sub(r"\b(9092|9093|9094|9100)\b", lambda m: self.ports[m.group(1)], line)
        if self.cluster_file:
            line = line.replace("/etc/foundationdb/fdb.cluster", self.cluster_file)
        return line

    def wait_port(self, port: int, proc: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + 60
        while not conftest.port_open("127.0.0.1", port):
            assert proc.poll() is None, f"kfdb serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"nothing listens on {port}:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)

    def serve(self, line: str) -> None:
        args = shlex.split(line)
        log = self.workdir / f"serve-{len(self.servers)}.log"
        with open(log, "ab") as f:
            proc = subprocess.Popen(args, cwd=self.workdir, env=self.env, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
        self.servers.append((proc, log))
        listen = args[args.index("--listen") + 1] if "--listen" in args else f"127.0.0.1:{self.ports['9092']}"
        port = int(listen.rsplit(":", 1)[1])
        brokers = int(args[args.index("--brokers") + 1]) if "--brokers" in args else 1
        for p in range(port, port + brokers):
            self.wait_port(p, proc, log)
        if "--metrics-listen" in args:
            self.wait_port(int(args[args.index("--metrics-listen") + 1].rsplit(":", 1)[1]), proc, log)

    def run(self, line: str) -> str:
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, f"`{line}` exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        self.outputs.append((line, r.stdout))
        return r.stdout

    def stop_all(self) -> None:
        for proc, log in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 0, f"kfdb serve exited {proc.returncode} on SIGTERM:\n{log.read_text()[-3000:]}"
        self.servers.clear()

    def output_of(self, prefix: str) -> str:
        found = [out for line, out in self.outputs if line.startswith(prefix)]
        assert found, f"no command starting with {prefix!r} ran"
        return found[-1]


@pytest.fixture
def walkthrough():
    d = Path(tempfile.mkdtemp(prefix="kfdb-compat-quickstart-"))
    w = Walkthrough(d)
    try:
        yield w
    finally:
        for proc, _ in w.servers:
            if proc.poll() is None:
                proc.kill()
        if os.environ.get("KFDB_KEEP_DATA") != "1":
            shutil.rmtree(d, ignore_errors=True)


def run_section(w: Walkthrough, number: str) -> None:
    found = [(h, b) for h, b in sections() if h.startswith(number)]
    assert len(found) == 1, f"docs/quickstart.md has no single section {number}"
    for fdb, lines in found[0][1]:
        for line in lines:
            line = w.rewrite(line)
            if line.startswith("kfdb serve"):
                w.serve(line)
            else:
                w.run(line)
    w.stop_all()


def test_the_sections_cover_the_document():
    assert [h.split(" ", 1)[0] for h, _ in sections()] == ["1.", "2.", "3."]


def test_one_broker_on_the_embedded_store(walkthrough):
    w = walkthrough
    run_section(w, "1.")
    got = w.output_of("kfdb consume demo --from-beginning").splitlines()
    assert sorted(got) == ["user1\tagain", "user1\thello", "user2\tkafka"]
    assert "partitions: 3" in w.output_of("kfdb topic describe demo")
    assert "readers" in w.output_of("kfdb group list")
    assert '"name": "demo"' in w.output_of("kfdb topic list --format json")
    kcat_read = [out for cmd, out in w.outputs if cmd.startswith("kcat") and " -C " in cmd]
    assert kcat_read and "hello" in kcat_read[-1].splitlines(), "kcat reads what kcat wrote"


def test_three_brokers_in_one_process(walkthrough):
    w = walkthrough
    run_section(w, "2.")
    info = w.output_of("kfdb cluster info")
    ports = "|".join(w.ports[p] for p in ("9092", "9093", "9094"))
    assert len(re.findall(rf"127\.0\.0\.1:({ports})\b", info)) == 3, info
    got = w.output_of("kfdb consume orders").split()
    assert sorted(map(int, got)) == list(range(1, 101))
    assert w.output_of("curl -s http://127.0.0.1").strip() == "ready"


def test_on_foundationdb(walkthrough):
    w = walkthrough
    if not w.cluster_file:
        pytest.skip("needs a FoundationDB cluster (KFDB_FDB_CLUSTER_FILE)")
    if not fdb_capable(conftest.kfdb_binary()):
        pytest.skip("the kfdb under test was built without --features fdb")
    conftest.clear_fdb(w.cluster_file)
    run_section(w, "3.")
    assert w.output_of("kfdb consume shared").strip() == "written through one broker"
