#!/usr/bin/env python3
"""Peak RSS under a producer flood, with and without `queued.max.request.bytes` (#16).

Starts `kfdb serve` (the binary given) on a fresh data dir, then C connections each pipeline R
Produce requests (acks=all, one valid uncompressed ~960 KiB batch each: 15 records of 64 KiB) as
fast as the socket takes them, and only then read the answers — a flood kfdb must hold in memory
until each request is durable. kfdb's RSS is sampled every 20 ms. The same flood runs once with
no bound (Kafka's default) and once with `--queued-max-request-bytes` (and a 2 MiB
`--socket-request-max-bytes`, so the pool may be small); the hot-segment cache is off in both
(`--hot-cache-bytes 0`), so what RSS shows is request memory, not the cache of recent writes.
One line per run.

    compat-tests/.venv/bin/python bench/producer_flood.py target/release/kfdb [C] [R] [BOUND_MIB]

Needs kafka-python (compat-tests/.venv) for the record batch builder.
"""
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from kafka.record.default_records import DefaultRecordBatchBuilder

from wire import free_port, string

binary = sys.argv[1]
conns = int(sys.argv[2]) if len(sys.argv) > 2 else 32
per_conn = int(sys.argv[3]) if len(sys.argv) > 3 else 32
bound_mib = int(sys.argv[4]) if len(sys.argv) > 4 else 32


def batch() -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    now = int(time.time() * 1000)
    for i in range(15):  # ~960 KiB: under max.message.bytes (1 MiB + 12)
        b.append(i, now, None, bytes([i % 251]) * (64 * 1024), [])
    return bytes(b.build())


def produce_frame(topic: str, partition: int, records: bytes, correlation: int) -> bytes:
    part = struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    body = string(None) + struct.pack(">hi", -1, 60000) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + part
    payload = struct.pack(">hhi", 0, 7, correlation) + string("flood") + body
    return struct.pack(">i", len(payload)) + payload


def create_topic(port: int, topic: str, partitions: int) -> None:
    body = struct.pack(">i", 1) + string(topic) + struct.pack(">ih", partitions, -1)
    body += struct.pack(">i", 0) + struct.pack(">i", 0) + struct.pack(">i", 30000) + b"\x00"
    payload = struct.pack(">hhi", 19, 2, 1) + string("flood") + body
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(struct.pack(">i", len(payload)) + payload)
        s.recv(65536)


def run(extra: list[str], label: str) -> None:
    port, metrics = free_port(), free_port()
    data = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--metrics-listen", f"127.0.0.1:{metrics}", "--hot-cache-bytes", "0", *extra],
                            stderr=subprocess.DEVNULL)
    time.sleep(2)
    create_topic(port, "flood", 8)
    time.sleep(0.5)
    records = batch()

    def rss_mib() -> float:
        with open(f"/proc/{proc.pid}/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) / 1024

    baseline = rss_mib()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.02)

    errors = [0]
    codes: set[int] = set()

    def flood(c: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            for r in range(per_conn):
                s.sendall(produce_frame("flood", (c + r) % 8, records, r))
            for _ in range(per_conn):
                head = b""
                while len(head) < 4:
                    head += s.recv(4 - len(head))
                size = struct.unpack(">i", head)[0]
                body = b""
                while len(body) < size:
                    body += s.recv(size - len(body))
                # correlation, [topic: name, [partition: index, error_code ...]]
                n = struct.unpack(">h", body[8:10])[0]
                code = struct.unpack(">h", body[10 + n + 8:10 + n + 10])[0]
                if code != 0:
                    errors[0] += 1
                    codes.add(code)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    threads = [threading.Thread(target=flood, args=(c,)) for c in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    waits = 0
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("kfdb_request_bytes_waits_total "):
                waits = int(float(line.split()[1]))
    proc.terminate()
    proc.wait(60)
    mib = conns * per_conn * len(records) / (1 << 20)
    print(f"bench scenario=producer_flood {label} connections={conns} requests_per_connection={per_conn} "
          f"sent_mib={mib:.0f} errors={errors[0]} error_codes={sorted(codes)} seconds={elapsed:.1f} mib_per_s={mib / elapsed:.0f} "
          f"rss_baseline_mib={baseline:.0f} rss_peak_mib={peak[0]:.0f} pool_waits={waits}", flush=True)


run([], "queued_max_request_bytes=-1")
run(["--socket-request-max-bytes", str(2 << 20), "--queued-max-request-bytes", str(bound_mib << 20)],
    f"queued_max_request_bytes={bound_mib}MiB")
