"""kcat (Debian's kcat 1.7.1, librdkafka 2.0.2) balanced consumer (-G) against kfdb's consumer groups.

- One `kcat -G` with -e consumes everything exactly once and commits on exit; a second run of the
  same group consumes only what was produced since.
- Two `kcat -G` processes in one group split the partitions and together consume everything once.

Note: in -G mode kcat's `-o beginning` overrides the committed offsets of every assigned
partition (kcat behaviour), so the tests use `-X auto.offset.reset=earliest` instead.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from ckhelpers import admin_client, create_topic, produce
from grouphelpers import KFDB_ARGS, KFDB_ENV, REBALANCE_WAIT_S  # noqa: F401 - read by the kfdb fixture

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")

FMT = "%p %o %s\\n"
REBALANCED = re.compile(r"rebalanced \(memberid [^)]*\): (assigned|revoked): (.*)")


def kcat_group_args(bootstrap: str, group: str, topic: str, *extra: str) -> list[str]:
    return [
        "kcat", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest",
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000", "-u", "-f", FMT, *extra, topic,
    ]  # fmt: skip


def parse(out: str) -> list[tuple[int, int, str]]:
    rows = []
    for line in out.splitlines():
        p, o, v = line.split(" ", 2)
        rows.append((int(p), int(o), v))
    return rows


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict:
    admin = admin_client(bootstrap)
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])]
    res = admin.list_consumer_group_offsets(req, request_timeout=30)[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def run_kcat_group_to_end(bootstrap: str, group: str, topic: str, timeout: float = 60) -> list:
    proc = subprocess.run(
        kcat_group_args(bootstrap, group, topic, "-e"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout
    )
    stderr = proc.stderr.decode(errors="replace")[-4000:]
    assert proc.returncode == 0, f"kcat -G exited {proc.returncode}\n--- stderr ---\n{stderr}"
    return parse(proc.stdout.decode())


def test_kcat_balanced_consumer_once_then_resumes(kfdb, topic_name):
    topic, group, parts = topic_name(), topic_name("group"), 3
    create_topic(kfdb.bootstrap, topic, partitions=parts)
    sent = [{"value": f"m-{i}".encode(), "partition": i % parts} for i in range(300)]
    delivered = produce(kfdb.bootstrap, topic, sent)

    rows = run_kcat_group_to_end(kfdb.bootstrap, group, topic)
    got = Counter((p, o) for p, o, _ in rows)
    assert set(got) == set(delivered) and all(n == 1 for n in got.values()), (
        f"{len(rows)} rows for 300 messages; missing {sorted(set(delivered) - set(got))[:10]}, "
        f"twice {[pos for pos, n in got.items() if n > 1][:10]}"
    )
    values = {(p, o): v for p, o, v in rows}
    assert all(values[pos] == m["value"].decode() for pos, m in zip(delivered, sent))
    # kcat's consumer auto-commits; the final offsets are committed when it closes.
    assert committed(kfdb.bootstrap, group, topic, parts) == {p: 100 for p in range(parts)}

    more = produce(kfdb.bootstrap, topic, [{"value": f"more-{i}".encode(), "partition": i % parts} for i in range(30)])
    rows = run_kcat_group_to_end(kfdb.bootstrap, group, topic)
    assert sorted((p, o) for p, o, _ in rows) == sorted(more), "second run must consume only the new messages"
    assert committed(kfdb.bootstrap, group, topic, parts) == {p: 110 for p in range(parts)}


class KcatMember:
    """A long-running `kcat -G` (no -e); stdout rows and rebalance events collected by threads."""

    def __init__(self, name: str, args: list[str]):
        self.name = name
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.rows: list = []
        self.stderr: list[str] = []
        self.assigned: frozenset = frozenset()
        self.threads = [
            threading.Thread(target=self._out, daemon=True),
            threading.Thread(target=self._err, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _out(self):
        for line in self.proc.stdout:
            self.rows.extend(parse(line.decode(errors="replace")))

    def _err(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr.append(line)
            m = REBALANCED.search(line)
            if m:
                parts = frozenset(int(p) for p in re.findall(r"\[(\d+)\]", m.group(2)))
                self.assigned = parts if m.group(1) == "assigned" else frozenset()

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # kcat closes its consumer: final commit, LeaveGroup
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for t in self.threads:
            t.join(timeout=10)
        return code

    def describe(self) -> str:
        return (
            f"{self.name}: exit {self.proc.poll()}, assigned {sorted(self.assigned)}, {len(self.rows)} rows, "
            f"stderr tail {self.stderr[-6:]}"
        )


def test_two_kcat_balanced_consumers_split_partitions(kfdb, topic_name):
    topic, group, parts = topic_name(), topic_name("group"), 4
    create_topic(kfdb.bootstrap, topic, partitions=parts)
    members = [KcatMember(n, kcat_group_args(kfdb.bootstrap, group, topic)) for n in ("k1", "k2")]
    try:

        def wait(cond, what):
            deadline = time.monotonic() + REBALANCE_WAIT_S
            while not cond():
                dead = [m.describe() for m in members if m.proc.poll() is not None]
                assert not dead, f"kcat exited while waiting for {what}: {dead}"
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {[m.describe() for m in members]}"
                time.sleep(0.1)

        def split():
            owned = [m.assigned for m in members]
            return all(owned) and sum(map(len, owned)) == parts and frozenset().union(*owned) == set(range(parts))

        wait(split, "the two kcat -G to split the 4 partitions")
        assert [len(m.assigned) for m in members] == [2, 2], [m.describe() for m in members]
        delivered = set(produce(kfdb.bootstrap, topic, [{"value": f"v{i}".encode(), "partition": i % parts}
                                                         for i in range(400)]))  # fmt: skip
        wait(lambda: delivered <= {(p, o) for m in members for p, o, _ in m.rows}, "all 400 messages consumed")
        for m in members:
            assert {p for p, _, _ in m.rows} <= m.assigned, f"{m.name} consumed outside its assignment: {m.describe()}"
        got = Counter((p, o) for m in members for p, o, _ in m.rows)
        assert set(got) == delivered and all(n == 1 for n in got.values()), sorted(got.items())[:20]
    finally:
        codes = [m.stop() for m in members]
    assert codes == [0, 0], [m.describe() for m in members]
    assert committed(kfdb.bootstrap, group, topic, parts) == {p: 100 for p in range(parts)}
