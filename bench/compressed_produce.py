#!/usr/bin/env python3
"""Produce throughput with compressed batches, for two kfdb binaries side by side (alternating,
twice each): what checking every batch on produce costs when kfdb decompresses it (#16).

Each run starts `kfdb serve` on a fresh data dir and one confluent-kafka producer (acks=all,
linger 5 ms, batch.size 1 MB) sends N 1 KiB records of JSON-like text with the codec given;
throughput is uncompressed record bytes per second until every record is acknowledged.

    compat-tests/.venv/bin/python bench/compressed_produce.py OLD_KFDB NEW_KFDB [codec] [N]
"""
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from wire import free_port

old, new = sys.argv[1], sys.argv[2]
codec = sys.argv[3] if len(sys.argv) > 3 else "lz4"
count = int(sys.argv[4]) if len(sys.argv) > 4 else 300_000


def record(i: int) -> bytes:
    text = (f'{{"id":{i},"user":"user-{i % 977}","event":"page_view","path":"/items/{i % 4099}",'
            f'"ua":"Mozilla/5.0 (X11; Linux x86_64)","ms":{i % 1000}}}')
    return text.encode().ljust(1024, b" ")


def run(binary: str) -> float:
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", tempfile.mkdtemp()],
                            stderr=subprocess.DEVNULL)
    try:
        bootstrap = f"127.0.0.1:{port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("c", 4, 1)])["c"].result(30)
        records = [record(i) for i in range(count)]
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                      "compression.type": codec, "queue.buffering.max.messages": 1_000_000,
                      "queue.buffering.max.kbytes": 1_048_576})
        started = time.monotonic()
        for i, v in enumerate(records):
            p.produce("c", value=v, partition=i % 4)
            if i % 10_000 == 0:
                p.poll(0)
        assert p.flush(120) == 0
        return count * 1024 / (time.monotonic() - started) / 1e6
    finally:
        proc.terminate()
        proc.wait(60)


results: dict[str, list[float]] = {"old": [], "new": []}
for _ in range(2):
    for label, binary in (("old", old), ("new", new)):
        results[label].append(run(binary))
print(f"bench scenario=compressed_produce codec={codec} records={count} record_bytes=1024 "
      f"old_mb_s={'/'.join(f'{v:.0f}' for v in results['old'])} "
      f"new_mb_s={'/'.join(f'{v:.0f}' for v in results['new'])}", flush=True)
