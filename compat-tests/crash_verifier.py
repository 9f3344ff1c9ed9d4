#!/usr/bin/env python3
"""The crash verifier: real clients write sequence-numbered records while kfdb is SIGKILLed at
random moments and restarted on the same data directory; afterwards everything is read back and
one summary line says what happened to what was acknowledged.

Writers (confluent-kafka / librdkafka), each on its own topic of 3 partitions:
- ``plain``: acks=all, no idempotence, one request in flight (retries may duplicate, never reorder);
- ``idem``: the idempotent producer (acks=all): no duplicate, no reordering allowed;
- ``txn``: a transactional producer, 10 records per transaction, one in five aborted on purpose;
  a transaction whose commit was interrupted is either wholly visible or not at all.
A consumer group member reads ``plain`` and commits synchronously; every acknowledged commit is
remembered and must never be found moved backwards.

Summary (``verifier:`` line): cycles, acknowledged per writer, lost (acknowledged, not read back),
duplicated, reordered within a partition, committed offsets that moved backwards,
read_committed records of aborted transactions, transactions seen partially. The run fails
(exit 1) on any loss, on any duplicate or reordering of the idempotent or transactional writer,
on any backwards commit, aborted record or partial transaction.

    compat-tests/crash_verifier.py --kfdb target/release/kfdb --cycles 100 [--seed N]

With ``--faults SPEC`` (a kfdb built with the ``faults`` feature) the store under kfdb injects
faults (KFDB_FAULTS, crates/kfdb-kv/src/faults.rs); ``--cycles 0 --run-seconds N`` runs the same
workload for N seconds without killing anything (compat-tests/test_faults.py). A second line,
``verifier-json:``, carries the whole result, with the injected fault counts and when each
acknowledgement arrived.

Used by compat-tests/test_crash_verifier.py (a short run in CI); the long run is in
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
TXN_SIZE = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """One kfdb process on a fixed port and data dir: start, kill -9, start again."""

    def __init__(self, binary: str, workdir: Path, extra: list[str], faults: str | None = None,
                 name: str = "kfdb"):
        self.binary = binary
        self.faults = faults
        self.started = time.monotonic()
        self.port = free_port()
        self.data = workdir / "data"
        self.log = workdir / f"{name}.log"
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--listen", self.bootstrap, "--data-dir", str(self.data),
                 "--group-initial-rebalance-delay-ms", "0", *self.extra],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, "KFDB_LOG": os.environ.get("KFDB_LOG", "warn"),
                     **({"KFDB_FAULTS": self.faults} if self.faults else {})},
            )
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"kfdb exited {self.proc.returncode} at start; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kfdb did not listen within 60 s; see {self.log}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0


class Cluster:
    """N kfdb processes on one FoundationDB (node ids 1..N, short broker leases): the verifier
    kills one at random per cycle (kill -9) and starts it again; the others take its partitions
    and groups over when its lease runs out."""

    def __init__(self, binary: str, workdir: Path, extra: list[str], n: int, rng: random.Random):
        lease = ["--broker-session-timeout-ms", "3000", "--broker-heartbeat-interval-ms", "500"]
        self.brokers = [Broker(binary, workdir, [*extra, "--node-id", str(i + 1), *lease], name=f"kfdb-{i + 1}")
                        for i in range(n)]
        self.rng = rng
        self.killed: list[Broker] = []
        self.started = time.monotonic()
        self.log = self.brokers[0].log

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    def start(self) -> None:
        for b in self.killed or self.brokers:
            b.start()
        self.killed = []

    def kill(self) -> None:
        victim = self.rng.choice(self.brokers)
        victim.kill()
        self.killed = [victim]

    def stop(self) -> int:
        codes = [b.stop() for b in self.brokers]
        return next((c for c in codes if c != 0), 0)


def conf(bootstrap: str, **extra) -> dict:
    # log_level 2: librdkafka's connection-refused lines while kfdb is down would bury the summary.
    return {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "socket.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 500, "log_level": 2, **extra}


class Writer(threading.Thread):
    """Produces ``<name>-<seq>`` records keyed by seq until stopped; remembers what was acked."""

    def __init__(self, name: str, bootstrap: str, stop: threading.Event, **producer_conf):
        super().__init__(daemon=True)
        self.name_, self.bootstrap, self.stop = name, bootstrap, stop
        self.producer_conf = producer_conf
        self.acked: set[int] = set()
        self.ack_times: list[float] = []
        self.lock = threading.Lock()
        self.fatal = 0

    def make(self) -> Producer:
        return Producer(conf(self.bootstrap, **{"acks": "all", "linger.ms": 5, "message.timeout.ms": 120000,
                                                **self.producer_conf}))

    def run(self) -> None:
        producer, seq = self.make(), 0

        def report(err, msg):
            if err is None:
                with self.lock:
                    self.acked.add(int(msg.value().split(b"-")[1]))
                    self.ack_times.append(time.monotonic())

        while not self.stop.is_set():
            try:
                producer.produce(self.name_, key=str(seq).encode(), value=f"{self.name_}-{seq}".encode(),
                                 on_delivery=report)
                seq += 1
            except BufferError:
                pass
            except KafkaException as e:
                if e.args[0].fatal():
                    # A fatal error ends this producer (its unacknowledged records are simply
                    # not counted); a new one carries on.
                    self.fatal += 1
                    producer.flush(30)
                    producer = self.make()
            producer.poll(0.001 if seq % 50 else 0.02)
        producer.flush(120)


class TxnWriter(threading.Thread):
    """Transactions of TXN_SIZE records ``txn-<t>-<i>``; one in five aborted on purpose."""

    def __init__(self, bootstrap: str, stop: threading.Event, rng: random.Random):
        super().__init__(daemon=True)
        self.bootstrap, self.stop, self.rng = bootstrap, stop, rng
        self.committed: set[int] = set()
        self.aborted: set[int] = set()
        self.unknown: set[int] = set()

    def make(self) -> Producer:
        p = Producer(conf(self.bootstrap, **{"transactional.id": "verifier-txn", "transaction.timeout.ms": 60000,
                                             "message.timeout.ms": 60000}))
        while not self.stop.is_set():
            try:
                p.init_transactions(30)
                return p
            except KafkaException:
                time.sleep(0.5)
        return p

    def run(self) -> None:
        producer, t = self.make(), 0
        while not self.stop.is_set():
            t += 1
            try:
                producer.begin_transaction()
                for i in range(TXN_SIZE):
                    producer.produce("txn", key=f"{t}-{i}".encode(), value=f"txn-{t}-{i}".encode())
                if self.rng.random() < 0.2:
                    producer.abort_transaction(30)
                    self.aborted.add(t)
                else:
                    producer.commit_transaction(30)
                    self.committed.add(t)
            except KafkaException as e:
                err = e.args[0]
                self.unknown.add(t)
                if err.txn_requires_abort():
                    try:
                        producer.abort_transaction(30)
                        self.unknown.discard(t)
                        self.aborted.add(t)
                    except KafkaException:
                        producer = self.make()
                elif not err.retriable():
                    producer = self.make()
                else:
                    time.sleep(0.2)
            time.sleep(0.01)


class GroupMember(threading.Thread):
    """Reads ``plain`` in group ``verifier`` and commits synchronously every 200 records."""

    def __init__(self, bootstrap: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.bootstrap, self.stop = bootstrap, stop
        self.commits: list[dict[int, int]] = []
        self.errors = 0

    def run(self) -> None:
        c = Consumer(conf(self.bootstrap, **{"group.id": "verifier", "enable.auto.commit": False,
                                             "auto.offset.reset": "earliest", "session.timeout.ms": 10000}))
        c.subscribe(["plain"])
        since = 0
        while not self.stop.is_set():
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            since += 1
            if since >= 200:
                try:
                    done = c.commit(asynchronous=False)
                    self.commits.append({tp.partition: tp.offset for tp in done if tp.error is None})
                    since = 0
                except KafkaException:
                    self.errors += 1
        try:
            c.close()
        except KafkaException:
            pass


def read_all(bootstrap: str, topic: str, isolation: str) -> dict[int, list[bytes]]:
    c = Consumer(conf(bootstrap, **{"group.id": "verifier-reader", "enable.auto.commit": False,
                                    "isolation.level": isolation, "enable.partition.eof": True}))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: dict[int, list[bytes]] = defaultdict(list)
    at_eof: set[int] = set()
    deadline = time.monotonic() + 300
    while len(at_eof) < PARTITIONS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"reading {topic} did not reach its end in 300 s")
        m = c.poll(1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add(m.partition())
            continue
        at_eof.discard(m.partition())
        out[m.partition()].append(m.value())
    c.close()
    return out


def seqs(values: list[bytes]) -> list[int]:
    return [int(v.split(b"-")[1]) for v in values]


def reorderings(log: list[int]) -> int:
    """Records that came after a higher sequence number of the same writer (a retried duplicate
    of an earlier record is a duplicate, not a reordering)."""
    seen: set[int] = set()
    highest, count = -1, 0
    for s in log:
        if s in seen:
            continue
        seen.add(s)
        if s < highest:
            count += 1
        highest = max(highest, s)
    return count


def committed_now(bootstrap: str) -> dict[int, int]:
    """The group's committed offsets, read again after a retriable error (NOT_COORDINATOR while a
    store fault is injected under kfdb), as create_topics does."""
    c = Consumer(conf(bootstrap, **{"group.id": "verifier"}))
    try:
        for attempt in range(20):
            try:
                got = c.committed([TopicPartition("plain", p) for p in range(PARTITIONS)], timeout=30)
                return {tp.partition: tp.offset for tp in got}
            except KafkaException as e:
                err = e.args[0]
                moving = err.code() in (
                    KafkaError.NOT_COORDINATOR,
                    KafkaError.COORDINATOR_NOT_AVAILABLE,
                    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                )
                if not (err.retriable() or moving) or attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        c.close()


def create_topics(admin: AdminClient, names: list[str]) -> None:
    """Create the topics, again after a retriable error (a store fault injected under kfdb)."""
    for attempt in range(20):
        missing = []
        for name, f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in names]).items():
            try:
                f.result(30)
            except KafkaException as e:
                err = e.args[0]
                if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if not err.retriable() and err.code() != KafkaError.KAFKA_STORAGE_ERROR or attempt == 19:
                    raise
                missing.append(name)
        if not missing:
            return
        names = missing
        time.sleep(0.5)


def injected(log: Path) -> dict[str, int]:
    """The fault counts kfdb logged at its last shutdown (``store faults injected: k=n ...``)."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "store faults injected:" in line:
            tail = line.split("store faults injected:", 1)[1]
            counts = {k: int(v) for k, v in (kv.split("=") for kv in tail.split() if "=" in kv)}
    return counts


def run(binary: str, cycles: int, max_up: float, seed: int, extra: list[str], faults: str | None = None,
        run_seconds: float = 0, brokers: int = 1) -> tuple[dict, bool]:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="kfdb-verifier-"))
    broker: Broker | Cluster
    if brokers > 1:
        if "fdb" not in extra:
            raise SystemExit("--brokers N > 1 needs kfdb on FoundationDB (-- --store fdb --fdb-cluster-file F)")
        broker = Cluster(binary, workdir, extra, brokers, random.Random(seed + 1))
    else:
        broker = Broker(binary, workdir, extra, faults)
    broker.start()
    admin = AdminClient(conf(broker.bootstrap))
    create_topics(admin, ["plain", "idem", "txn"])
    stop = threading.Event()
    plain = Writer("plain", broker.bootstrap, stop, **{"enable.idempotence": False,
                                                         "max.in.flight.requests.per.connection": 1})
    idem = Writer("idem", broker.bootstrap, stop, **{"enable.idempotence": True})
    txn = TxnWriter(broker.bootstrap, stop, rng)
    member = GroupMember(broker.bootstrap, stop)
    for t in (plain, idem, txn, member):
        t.start()
    backwards = 0
    for cycle in range(cycles):
        time.sleep(rng.uniform(0.2, max_up))
        broker.kill()
        time.sleep(rng.uniform(0, 0.3))
        broker.start()
        if cycle % 10 == 9:
            print(f"verifier: {cycle + 1}/{cycles} kills", file=sys.stderr, flush=True)
    if cycles == 0:
        time.sleep(run_seconds)
    time.sleep(2)
    stop.set()
    for t in (plain, idem, txn, member):
        t.join(180)
    final = committed_now(broker.bootstrap)
    for commit in member.commits:
        for p, off in commit.items():
            if final.get(p, -1) < off:
                backwards += 1
    result: dict = {"cycles": cycles, "seed": seed, "brokers": brokers, "committed_backwards": backwards}
    ok = backwards == 0
    for w in (plain, idem):
        logs = read_all(broker.bootstrap, w.name_, "read_uncommitted")
        found = [s for p in logs.values() for s in seqs(p)]
        reordered = sum(reorderings(seqs(p)) for p in logs.values())
        if reordered:
            for part, values in logs.items():
                log = seqs(values)
                highest, seen = -1, set()
                for i in range(len(log)):
                    first = log[i] not in seen
                    seen.add(log[i])
                    highest = max(highest, log[i])
                    if first and log[i] < highest:
                        print(f"verifier: {w.name_} partition {part} reordered at {i}: "
                              f"{log[max(0, i - 8):i + 4]} acked={log[i] in w.acked}", file=sys.stderr)
                        break
        lost = len(w.acked - set(found))
        dups = len(found) - len(set(found))
        result[w.name_] = {"acked": len(w.acked), "lost": lost, "dup": dups, "reordered": reordered,
                           "fatal": w.fatal,
                           "ack_seconds": sorted({int(t - broker.started) for t in w.ack_times})}
        ok = ok and lost == 0 and (w.name_ == "plain" or (dups == 0 and reordered == 0))
    txn_logs = read_all(broker.bootstrap, "txn", "read_committed")
    per_txn: dict[int, int] = defaultdict(int)
    for p in txn_logs.values():
        for v in p:
            per_txn[int(v.split(b"-")[1])] += 1
    lost_txn = sum(1 for t in txn.committed if per_txn.get(t, 0) != TXN_SIZE)
    aborted_seen = sum(per_txn.get(t, 0) for t in txn.aborted)
    partial = sum(1 for t, n in per_txn.items() if n not in (0, TXN_SIZE))
    result["txn"] = {"committed": len(txn.committed), "aborted": len(txn.aborted), "unknown": len(txn.unknown),
                     "lost": lost_txn, "aborted_seen": aborted_seen, "partial": partial}
    ok = ok and lost_txn == 0 and aborted_seen == 0 and partial == 0
    code = broker.stop()
    result["sigterm_exit"] = code
    result["faults"] = injected(broker.log)
    ok = ok and code == 0
    if ok and os.environ.get("KFDB_KEEP_DATA") != "1":
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result["kept"] = str(workdir)
    return result, ok


def summary(r: dict) -> str:
    p, i, t = r["plain"], r["idem"], r["txn"]
    return (
        f"verifier: cycles={r['cycles']} brokers={r['brokers']} seed={r['seed']} "
        f"acked plain={p['acked']} idem={i['acked']} txn_committed={t['committed']} "
        f"lost={p['lost'] + i['lost'] + t['lost']} "
        f"dup plain={p['dup']} idem={i['dup']} reordered plain={p['reordered']} idem={i['reordered']} "
        f"committed_backwards={r['committed_backwards']} aborted_seen={t['aborted_seen']} "
        f"partial_txns={t['partial']} txn_aborted={t['aborted']} txn_unknown={t['unknown']} "
        f"fatal_producer_errors={p['fatal'] + i['fatal']} sigterm_exit={r['sigterm_exit']}"
        + (" faults " + " ".join(f"{k}={n}" for k, n in r["faults"].items()) if r.get("faults") else "")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kfdb", required=True, help="the kfdb binary")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--max-up", type=float, default=3.0, help="longest run between kills, s")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--faults", help="KFDB_FAULTS for kfdb (a kfdb built with the faults feature)")
    ap.add_argument("--run-seconds", type=float, default=30, help="with --cycles 0: how long to run")
    ap.add_argument("--brokers", type=int, default=1,
                    help="kfdb processes on one FoundationDB; each cycle kills one of them")
    ap.add_argument("serve_args", nargs="*", help="extra kfdb serve arguments (after --)")
    a = ap.parse_args()
    r, ok = run(a.kfdb, a.cycles, a.max_up, a.seed, a.serve_args, a.faults, a.run_seconds, a.brokers)
    print(summary(r), flush=True)
    print("verifier-json: " + json.dumps(r), flush=True)
    if not ok:
        print(f"verifier: FAILED {r}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
