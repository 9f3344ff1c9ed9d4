#!/usr/bin/env python3
"""RSS per idle connection (#16): start `kfdb serve` (the binary given) on a fresh data dir, open
50 warm-up connections, then N more that each send one ApiVersions request, read the answer and
stay silent; print kfdb's RSS before and after and the difference per connection.

    python3 bench/idle_connections.py target/release/kfdb 10000

Needs a file-descriptor limit above N (it raises its soft limit to the hard one).
"""
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

binary, n = sys.argv[1], int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", tempfile.mkdtemp()],
                        stderr=subprocess.DEVNULL)
time.sleep(2)


def rss_kib() -> int:
    with open(f"/proc/{proc.pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


CLIENT = b"idle"


def api_versions(correlation: int) -> bytes:
    return struct.pack(">i", 10 + len(CLIENT)) + struct.pack(">hhih", 18, 0, correlation, len(CLIENT)) + CLIENT


def open_many(count: int) -> list:
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(api_versions(i))
        socks.append(s)
    for s in socks:
        s.recv(65536)
    return socks


warm = open_many(50)
time.sleep(1)
before = rss_kib()
held = open_many(n)
time.sleep(6)
after = rss_kib()
print(f"bench scenario=idle_connections connections={n} rss_before_kib={before} rss_after_kib={after} "
      f"per_connection_kib={(after - before) / n:.1f}")
proc.terminate()
proc.wait()
