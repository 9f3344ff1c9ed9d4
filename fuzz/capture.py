#!/usr/bin/env python3
"""Capture the seed corpus of the `request` fuzz target: real clients' request frames.

Starts kfdb advertising a proxy's address, runs confluent-kafka (librdkafka) and kafka-python
through the proxy — admin calls, plain, idempotent and transactional producers (uncompressed
and each codec), a consumer group committing, offsets by time — and writes every frame the
clients sent (header and body, without the size prefix) to fuzz/corpus/request/<sha1>.

    compat-tests/.venv/bin/python fuzz/capture.py --kfdb target/debug/kfdb
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

OUT = Path(__file__).resolve().parent / "corpus" / "request"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pump(src: socket.socket, dst: socket.socket, frames: list[bytes] | None) -> None:
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if frames is None:
                continue
            buf += data
            while len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big")
                if len(buf) < 4 + size:
                    break
                frames.append(buf[4:4 + size])
                buf = buf[4 + size:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen: int, target: int, frames: list[bytes]) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen()
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:  # kfdb has stopped: the workload is over
            client.close()
            continue
        threading.Thread(target=pump, args=(client, upstream, frames), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()


def workload(bootstrap: str) -> None:
    base = {"bootstrap.servers": bootstrap, "broker.address.family": "v4"}
    admin = AdminClient(base)
    admin.create_topics([NewTopic("seed-a", 3, 1, config={"retention.ms": "600000"}),
                         NewTopic("seed-c", 1, 1, config={"cleanup.policy": "compact"}),
                         NewTopic("seed-k", 1, 1)])["seed-a"].result(30)
    time.sleep(1)
    admin.create_partitions([NewPartitions("seed-a", 4)])["seed-a"].result(30)
    admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "seed-a")])
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        p = Producer({**base, "compression.type": codec, "linger.ms": 5})
        for i in range(50):
            p.produce("seed-a", key=b"k%d" % i, value=b"v" * (i * 7), headers=[("h", b"x")])
            p.produce("seed-c", key=b"k%d" % (i % 5), value=b"c%d" % i)
        p.flush(30)
    p = Producer({**base, "enable.idempotence": True})
    for i in range(20):
        p.produce("seed-a", value=b"idem-%d" % i)
    p.flush(30)
    t = Producer({**base, "transactional.id": "seed-txn"})
    t.init_transactions(30)
    for commit in (True, False):
        t.begin_transaction()
        t.produce("seed-a", value=b"txn")
        t.commit_transaction(30) if commit else t.abort_transaction(30)
    c = Consumer({**base, "group.id": "seed-group", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.subscribe(["seed-a"])
    got, deadline = 0, time.monotonic() + 20
    while got < 50 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            c.commit(m, asynchronous=False)
    c.offsets_for_times([TopicPartition("seed-a", 0, int(time.time() * 1000) - 60000)], timeout=10)
    c.close()
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    kp = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    kp.send("seed-k", b"kafka-python")
    kp.flush()
    kp.close()
    kc = KafkaConsumer("seed-k", bootstrap_servers=bootstrap, group_id="seed-kp", auto_offset_reset="earliest",
                       consumer_timeout_ms=3000)
    for _ in kc:
        pass
    kc.commit()
    kc.close()
    ka = KafkaAdminClient(bootstrap_servers=bootstrap)
    # Whatever each call answers, its request is a seed (some APIs refuse these arguments).
    calls = [
        lambda: ka.list_groups(),
        lambda: ka.describe_groups(["seed-group", "seed-kp"]),
        lambda: ka.list_group_offsets("seed-group"),
        lambda: ka.describe_cluster(),
        lambda: ka.describe_log_dirs(),
        lambda: ka.describe_topic_partitions(["seed-a"]),
        lambda: ka.describe_producers([TopicPartition("seed-a", 0)]),
        lambda: ka.list_transactions(),
        lambda: ka.describe_transactions(["seed-txn"]),
        lambda: ka.list_partition_reassignments(),
        lambda: ka.describe_user_scram_credentials(),
        lambda: ka.describe_features(),
        lambda: ka.list_partition_offsets({TopicPartition("seed-a", 1): -1}),
        lambda: ka.delete_records({TopicPartition("seed-a", 1): 1}),
        lambda: ka.delete_groups(["seed-kp"]),
        lambda: ka.delete_topics(["seed-c"]),
    ]
    for call in calls:
        try:
            call()
        except Exception as e:  # noqa: BLE001 - a refusal still sent the request
            print(f"(seed call refused: {type(e).__name__}: {e})"[:160])
    ka.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kfdb", required=True)
    a = ap.parse_args()
    kfdb_port, proxy_port = free_port(), free_port()
    frames: list[bytes] = []
    threading.Thread(target=proxy, args=(proxy_port, kfdb_port, frames), daemon=True).start()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([a.kfdb, "serve", "--listen", f"127.0.0.1:{kfdb_port}",
                                 "--advertised-listener", f"127.0.0.1:{proxy_port}", "--data-dir", f"{d}/data",
                                 "--group-initial-rebalance-delay-ms", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", kfdb_port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            workload(f"127.0.0.1:{proxy_port}")
        finally:
            proc.terminate()
            proc.wait(30)
    OUT.mkdir(parents=True, exist_ok=True)
    new = 0
    for f in frames:
        path = OUT / hashlib.sha1(f).hexdigest()
        if not path.exists():
            path.write_bytes(f)
            new += 1
    print(f"captured {len(frames)} frames, {new} new seeds in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
