"""Kafka Streams 4.4: word count with processing.guarantee=exactly_once_v2 against kfdb or Apache Kafka.

The application is ``java/src/main/java/kfdbcompat/streams/WordCount.java`` (one JVM per
instance). Checks: Streams creates its repartition and changelog topics (the changelog
compacted); the counts read back with read_committed are exact; an instance kill -9'd while it
processes and then restarted ends at the same exact counts (no input counted twice, none lost); a
second instance takes over half of the tasks, and the counts stay exact afterwards.
"""

from __future__ import annotations

import random
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

import jvmhelpers
from ckhelpers import admin_client, create_topic, produce, wait_for
from txnhelpers import read_to_end

# Compaction looks at the compacted topics (changelogs, Connect's internal topics) every 200 ms.
KFDB_ARGS = ["--group-initial-rebalance-delay-ms", "500", "--log-cleaner-backoff-ms", "200"]

pytestmark = pytest.mark.timeout(600)

WORDS = [f"w{i:02d}" for i in range(40)]
PARTITIONS = 4


class Instance:
    """One WordCount JVM; its stdout lines are collected (STATE ..., TASKS ...)."""

    def __init__(self, bootstrap: str, app: str, inp: str, out: str, state_dir: Path, log: Path):
        self.args = (bootstrap, app, inp, out, str(state_dir))
        self.log = log
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.lines = []
        self.proc = subprocess.Popen(
            jvmhelpers.java("kfdbcompat.streams.WordCount", *self.args, heap="512m"),
            stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True, env=jvmhelpers.jvm_env(),
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def tasks(self) -> list[str]:
        last = [x for x in self.lines if x.startswith("TASKS")]
        return [t for t in last[-1][6:].split(",") if t] if last else []

    def state(self) -> str | None:
        last = [x for x in self.lines if x.startswith("STATE")]
        return last[-1][6:] if last else None

    def wait_running(self, timeout: float = 120) -> None:
        wait_for(lambda: self.state() == "RUNNING" and self.tasks(), timeout, f"a RUNNING instance with tasks "
                 f"(lines: {self.lines[-5:]})")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def lines(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS).upper() if rng.random() < 0.1 else rng.choice(WORDS)
                     for _ in range(rng.randint(1, 8))) for _ in range(n)]


def counts_of(all_lines: list[str]) -> dict[str, int]:
    return dict(Counter(w for line in all_lines for w in line.lower().split()))


def output_counts(bootstrap: str, topic: str) -> dict[str, int]:
    """The latest committed count per word (read_committed, the output's key is the word)."""
    latest: dict[str, int] = {}
    for _, _, value, key in sorted(read_to_end(bootstrap, topic, range(PARTITIONS), "read_committed")["msgs"],
                                   key=lambda m: (m[0], m[1])):
        latest[key.decode()] = struct.unpack(">q", value)[0]
    return latest


def produce_lines(bootstrap: str, topic: str, batch: list[str]) -> None:
    produce(bootstrap, topic, [{"key": str(i).encode(), "value": line.encode()} for i, line in enumerate(batch)])


def test_word_count_exactly_once(bootstrap, topic_name, tmp_path):
    app = topic_name("wc").replace("_", "-")
    inp, out = f"{app}-input", f"{app}-output"
    create_topic(bootstrap, inp, partitions=PARTITIONS)
    create_topic(bootstrap, out, partitions=PARTITIONS)
    rng = random.Random(1234)
    sent: list[str] = []
    instances: list[Instance] = []
    state_a, state_b = Path(tempfile.mkdtemp(prefix="wc-a-")), Path(tempfile.mkdtemp(prefix="wc-b-"))
    try:
        batch = lines(rng, 2000)
        produce_lines(bootstrap, inp, batch)
        sent += batch
        a = Instance(bootstrap, app, inp, out, state_a, tmp_path / "instance-a.log")
        instances.append(a)
        a.start()
        a.wait_running()
        wait_for(lambda: output_counts(bootstrap, out) == counts_of(sent), 180, "exact counts of the first batch")

        # the internal topics Streams created
        admin = admin_client(bootstrap)
        topics = admin.list_topics(timeout=10).topics
        repartition, changelog = f"{app}-words-repartition", f"{app}-counts-changelog"
        assert repartition in topics and changelog in topics, sorted(t for t in topics if t.startswith(app))
        assert len(topics[repartition].partitions) == PARTITIONS
        assert len(topics[changelog].partitions) == PARTITIONS
        cfg = {r.name: f.result(timeout=30) for r, f in admin.describe_configs(
            [ConfigResource("topic", changelog), ConfigResource("topic", repartition)]).items()}
        assert cfg[changelog]["cleanup.policy"].value == "compact"
        assert cfg[repartition]["cleanup.policy"].value == "delete"

        # kill -9 while processing a second batch, restart: the same exact counts
        batch = lines(rng, 4000)
        produce_lines(bootstrap, inp, batch)
        sent += batch
        wait_for(lambda: output_counts(bootstrap, out) != counts_of(sent[:2000]), 60, "processing of the 2nd batch")
        a.kill()
        a.start()
        a.wait_running()
        wait_for(lambda: output_counts(bootstrap, out) == counts_of(sent), 180,
                 "exact counts after kill -9 and restart")

        # a second instance takes over half of the tasks (2 sub-topologies x 4 partitions)
        b = Instance(bootstrap, app, inp, out, state_b, tmp_path / "instance-b.log")
        instances.append(b)
        b.start()
        wait_for(lambda: len(a.tasks()) == 4 and len(b.tasks()) == 4 and a.state() == b.state() == "RUNNING", 180,
                 "4 active tasks on each instance")
        assert sorted(a.tasks() + b.tasks()) == sorted(f"{s}_{p}" for s in (0, 1) for p in range(PARTITIONS))
        batch = lines(rng, 2000)
        produce_lines(bootstrap, inp, batch)
        sent += batch
        wait_for(lambda: output_counts(bootstrap, out) == counts_of(sent), 180, "exact counts with two instances")
        b.stop()
        a.stop()
    except BaseException:
        for i in instances:
            print(f"\n--- {i.log.name} (tail) ---\n" + "\n".join(i.log.read_text(errors="replace").splitlines()[-80:]))
            print("stdout:", i.lines[-20:])
        raise
    finally:
        for i in instances:
            i.kill()
        shutil.rmtree(state_a, ignore_errors=True)
        shutil.rmtree(state_b, ignore_errors=True)
