"""kcat (Debian's kcat 1.7.1, librdkafka 2.0.2) against kfdb: metadata listing, keyed produce with
headers over 3 partitions, consume everything back. kcat's consumer (-C) assigns partitions itself,
no consumer group is involved; its producer does not use idempotence."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict

import pytest

from ckhelpers import create_topic

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")

N = 10_000
PARTITIONS = 3
HEADERS = [("app", "kcat-compat"), ("trace", "t-123")]


def kcat(args: list[str], input_bytes: bytes | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["kcat", *args],
        input=input_bytes,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    stderr = proc.stderr.decode(errors="replace")[-4000:]
    assert proc.returncode == 0, f"kcat {' '.join(args)} exited {proc.returncode}\n--- stderr ---\n{stderr}"
    return proc


@pytest.fixture(scope="module")
def topic(kfdb):
    name = "kcat-compat-3p"
    create_topic(kfdb.bootstrap, name, partitions=PARTITIONS)
    return name


def test_kcat_metadata_lists_broker_and_topic(kfdb, topic):
    out = kcat(["-b", kfdb.bootstrap, "-L", "-J", "-t", topic, "-m", "30"]).stdout
    md = json.loads(out)
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, kfdb.bootstrap)], md["brokers"]
    (t,) = md["topics"]
    assert t["topic"] == topic
    assert "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == list(range(PARTITIONS))
    assert all(p["leader"] == 1 for p in t["partitions"]), t["partitions"]

    # Plain-text listing, as a person would read it.
    text = kcat(["-b", kfdb.bootstrap, "-L", "-t", topic, "-m", "30"]).stdout.decode()
    assert f"broker 1 at {kfdb.bootstrap}" in text, text
    assert f'topic "{topic}" with {PARTITIONS} partitions:' in text, text


def test_kcat_produce_consume_10k_keyed_with_headers(kfdb, topic):
    keys = [f"user-{i % 97:02d}" for i in range(N)]
    values = [f"seq={i:05d} payload-{'x' * (i % 50)}" for i in range(N)]
    lines = "".join(f"{k}:{v}\n" for k, v in zip(keys, values)).encode()
    header_args = [a for h in HEADERS for a in ("-H", f"{h[0]}={h[1]}")]
    kcat(["-b", kfdb.bootstrap, "-P", "-t", topic, "-K:", *header_args, "-X", "linger.ms=10"], input_bytes=lines)

    fmt = "%p|%o|%k|%h|%s\\n"
    out = kcat(
        ["-b", kfdb.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt], timeout=120
    ).stdout.decode()
    rows = [line.split("|", 4) for line in out.splitlines()]
    assert len(rows) == N, f"consumed {len(rows)} messages, produced {N}"

    per_partition = defaultdict(list)
    key_partition = {}
    expected_headers = ",".join(f"{k}={v}" for k, v in HEADERS)
    for p, o, k, h, s in rows:
        per_partition[int(p)].append((int(o), k, s))
        assert h == expected_headers, f"headers {h!r} != {expected_headers!r}"
        assert key_partition.setdefault(k, p) == p, f"key {k} in partitions {key_partition[k]} and {p}"

    assert set(per_partition) <= set(range(PARTITIONS))
    assert len(per_partition) > 1, "all 10,000 messages (97 distinct keys) landed in one partition"
    consumed_values = []
    for p, msgs in sorted(per_partition.items()):
        offsets = [o for o, _, _ in msgs]
        assert offsets == list(range(len(msgs))), f"partition {p}: offsets not dense and in order: {offsets[:20]}"
        seqs = [int(s.split()[0].split("=")[1]) for _, _, s in msgs]
        assert seqs == sorted(seqs), f"partition {p}: messages not in produce order"
        consumed_values.extend(s for _, _, s in msgs)
        for _, k, s in msgs:
            i = int(s.split()[0].split("=")[1])
            assert (k, s) == (keys[i], values[i]), f"partition {p}: message {i} came back as {(k, s)!r}"
    assert sorted(consumed_values) == sorted(values)


def test_kcat_offsets_counts_and_query_by_timestamp(kfdb):
    topic = "kcat-compat-offsets"
    create_topic(kfdb.bootstrap, topic, partitions=1)
    # kcat -P cannot set per-message timestamps: the messages carry CreateTime = time of producing.
    lines = "".join(f"m{i}\n" for i in range(20)).encode()
    kcat(["-b", kfdb.bootstrap, "-P", "-t", topic, "-p", "0"], input_bytes=lines)

    def consume(*args: str) -> list[tuple[int, str]]:
        out = kcat(["-b", kfdb.bootstrap, "-C", "-t", topic, "-p", "0", "-e", "-q", "-f", "%o %s\\n", *args])
        return [(int(o), s) for o, s in (line.split(" ", 1) for line in out.stdout.decode().splitlines())]

    assert consume("-o", "5", "-c", "3") == [(5, "m5"), (6, "m6"), (7, "m7")]
    assert consume("-o", "-4") == [(i, f"m{i}") for i in range(16, 20)]  # relative to the end (ListOffsets)
    assert consume("-o", "end") == []

    # -Q: offset for a timestamp (ListOffsets by time). A timestamp before all messages maps to
    # offset 0, one far in the future to -1 (end).
    out = kcat(["-b", kfdb.bootstrap, "-Q", "-t", f"{topic}:0:{1_000_000_000_000}"]).stdout.decode()
    assert f"{topic} [0] offset 0" in out, out
    out = kcat(["-b", kfdb.bootstrap, "-Q", "-t", f"{topic}:0:{4_000_000_000_000}"]).stdout.decode()
    assert f"{topic} [0] offset -1" in out, out
