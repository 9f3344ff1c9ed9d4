#!/usr/bin/env python3
"""1,000 slow consumers (#16): what kfdb holds for clients that fetch and do not read.

Starts `kfdb serve` (the binary given) on a fresh data dir and fills a 4-partition topic with
~30 MiB. Then, in one run:

1. baseline: one healthy consumer fetches (Fetch v4, 256 KiB per request, a random partition from
   offset 0) 300 times; its latency and kfdb's RSS are the baseline;
2. stalled: N connections, each with a 16 KiB receive buffer, pipeline K such Fetch requests and
   read nothing for 20 s (their first ~1 MiB fits in the kernel's socket buffers); kfdb's peak RSS and the healthy consumer's latency meanwhile;
3. slow: the same connections now read 16 KiB every 100 ms each (160 KiB/s per consumer) for
   20 s; RSS, the healthy latency, and how many Fetch responses the slow consumers completed
   (each must parse as a whole response with error code 0).

Each connection can have at most one response in kfdb's hands (requests on a connection are
answered one at a time, and a response is written before the next request is read), so the
bound to expect is N x (largest response) plus the kernel's socket buffers (not in kfdb's RSS).
One `bench` line per phase.

    compat-tests/.venv/bin/python bench/slow_consumers.py target/release/kfdb [N] [K]

Needs kafka-python (compat-tests/.venv) for the record batch builder.
"""
import random
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from kafka.record.default_records import DefaultRecordBatchBuilder

from wire import free_port, string

binary = sys.argv[1]
conns = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
pipelined = int(sys.argv[3]) if len(sys.argv) > 3 else 8
TOPIC = "slow"
PARTITIONS = 4
FETCH_BYTES = 256 * 1024
PHASE_S = 20


def frame(key: int, version: int, correlation: int, body: bytes) -> bytes:
    payload = struct.pack(">hhi", key, version, correlation) + string("slow-bench") + body
    return struct.pack(">i", len(payload)) + payload


def batch(seed: int) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    now = int(time.time() * 1000)
    for i in range(4):  # ~240 KiB: a whole batch fits a 256 KiB fetch
        b.append(i, now, None, bytes([(seed + i) % 251]) * (60 * 1024), [])
    return bytes(b.build())


def produce(partition: int, records: bytes, correlation: int) -> bytes:
    part = struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    body = string(None) + struct.pack(">hi", -1, 60000) + struct.pack(">i", 1) + string(TOPIC)
    body += struct.pack(">i", 1) + part
    return frame(0, 7, correlation, body)


def fetch(partition: int, correlation: int) -> bytes:
    body = struct.pack(">iiiib", -1, 500, 1, FETCH_BYTES, 0) + struct.pack(">i", 1) + string(TOPIC)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, 0, FETCH_BYTES)
    return frame(1, 4, correlation, body)


def read_frame(s: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return bytes(out)

    return exactly(struct.unpack(">i", exactly(4))[0])


def fetch_error(response: bytes) -> int:
    """The first partition's error code of a Fetch v4 response (after the correlation id)."""
    n = struct.unpack(">h", response[12:14])[0]
    return struct.unpack(">h", response[14 + n + 8:14 + n + 10])[0]


def main() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    data = tempfile.mkdtemp()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                            stderr=subprocess.DEVNULL)

    def rss_mib() -> float:
        with open(f"/proc/{proc.pid}/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) / 1024

    try:
        time.sleep(2)
        with socket.create_connection(("127.0.0.1", port)) as s:
            body = struct.pack(">i", 1) + string(TOPIC) + struct.pack(">ih", PARTITIONS, -1)
            body += struct.pack(">iii", 0, 0, 30000) + b"\x00"
            s.sendall(frame(19, 2, 1, body))
            read_frame(s)
            time.sleep(0.5)
            for i in range(PARTITIONS * 32):
                s.sendall(produce(i % PARTITIONS, batch(i), 100 + i))
                read_frame(s)
        healthy = socket.create_connection(("127.0.0.1", port))
        correlation = [1000]

        def healthy_latencies(count: int) -> list[float]:
            out = []
            for _ in range(count):
                correlation[0] += 1
                started = time.perf_counter()
                healthy.sendall(fetch(random.randrange(PARTITIONS), correlation[0]))
                r = read_frame(healthy)
                out.append((time.perf_counter() - started) * 1000)
                assert fetch_error(r) == 0, fetch_error(r)
            return out

        def report(phase: str, lat: list[float], peak: float, extra: str = "") -> None:
            lat = sorted(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"bench scenario=slow_consumers phase={phase} connections={conns} pipelined={pipelined} "
                  f"fetch_bytes={FETCH_BYTES} healthy_fetches={len(lat)} healthy_p50_ms={statistics.median(lat):.2f} "
                  f"healthy_p99_ms={p99:.2f} rss_mib={rss_mib():.0f} rss_peak_mib={peak:.0f}{extra}", flush=True)

        healthy_latencies(20)
        base = rss_mib()
        report("baseline", healthy_latencies(300), base)

        peak = [rss_mib()]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        slow = []
        for c in range(conns):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            s.connect(("127.0.0.1", port))
            s.sendall(b"".join(fetch(c % PARTITIONS, r) for r in range(pipelined)))
            slow.append(s)
        lat = []
        until = time.monotonic() + PHASE_S
        while time.monotonic() < until:
            lat += healthy_latencies(10)
            time.sleep(0.05)
        report("stalled", lat, peak[0], f" rss_over_baseline_kib_per_connection={(peak[0] - base) * 1024 / conns:.0f}")

        # Slow readers: 16 KiB per connection every 100 ms, parsing whole responses.
        peak[0] = rss_mib()
        buffers = {s.fileno(): bytearray() for s in slow}
        completed, bad = [0], [0]
        stop = threading.Event()

        def drain() -> None:
            sel = selectors.DefaultSelector()
            for s in slow:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            while not stop.is_set():
                tick = time.monotonic()
                for key, _ in sel.select(timeout=0.1):
                    s = key.fileobj
                    try:
                        chunk = s.recv(16 * 1024)
                    except BlockingIOError:
                        continue
                    buf = buffers[s.fileno()]
                    buf += chunk
                    while len(buf) >= 4:
                        size = struct.unpack(">i", buf[:4])[0]
                        if len(buf) < 4 + size:
                            break
                        if fetch_error(bytes(buf[4:4 + size])) == 0:
                            completed[0] += 1
                        else:
                            bad[0] += 1
                        del buf[:4 + size]
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        lat = []
        until = time.monotonic() + PHASE_S
        while time.monotonic() < until:
            lat += healthy_latencies(10)
            time.sleep(0.05)
        stop.set()
        reader.join()
        done.set()
        report("slow_reading", lat, peak[0], f" slow_responses_completed={completed[0]} slow_responses_bad={bad[0]}")
        for s in slow:
            s.close()
        healthy.close()
    finally:
        proc.terminate()
        proc.wait(60)


main()
