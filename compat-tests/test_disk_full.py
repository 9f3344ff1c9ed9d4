"""A full disk under produce load (kfdb's embedded store on a 48 MiB tmpfs the test mounts):
kfdb stops with exit code 1 and a clear message — as Kafka halts when its last log dir fails —
rather than staying up refusing every write; an idempotent producer's acknowledged records are
all there after space is freed (the tmpfs grown) and kfdb restarted, exactly once.

kfdb only (the store is kfdb's; on Kafka the same flood fills its log dir). Needs root (mount);
skipped where tmpfs cannot be mounted, and on FoundationDB (no local disk to fill).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import conftest

pytestmark = pytest.mark.skipif(
    conftest.on_kafka() or bool(conftest.fdb_cluster_file()) or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
    reason="fills the local disk of the kfdb it starts itself (embedded store)",
)


@pytest.fixture
def small_fs():
    mnt = Path(tempfile.mkdtemp(prefix="kfdb-smallfs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        mnt.rmdir()


def start(data: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(conftest.kfdb_binary()), "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "KFDB_LOG": "warn"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import socket
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
    raise AssertionError("kfdb did not listen")


def test_a_full_disk_stops_kfdb_cleanly_and_loses_nothing_acknowledged(small_fs):
    port = conftest.free_port()
    bootstrap = f"127.0.0.1:{port}"
    data, log = small_fs / "data", Path(tempfile.mkdtemp()) / "kfdb.log"
    proc = start(data, port, log)
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic("full", 2, 1)])["full"].result(30)
    acked: set[int] = set()

    def done(err, msg):
        if err is None:
            acked.add(int(msg.key()))

    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "enable.idempotence": True,
                  "message.timeout.ms": 8000, "linger.ms": 5, "log_level": 2})
    sent, deadline = 0, time.monotonic() + 60
    # Produce until kfdb has stopped (the disk holds ~48 MiB: ~11,000 records of 4 KiB).
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            p.produce("full", key=str(sent).encode(), value=b"x" * 4096, on_delivery=done)
            sent += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    p.flush(30)
    assert proc.poll() == 1, f"kfdb stops with exit code 1 once its disk is full; {log.read_text()[-3000:]}"
    text = log.read_text()
    assert "No space left on device" in text and "the store failed" in text, text[-3000:]
    assert len(acked) > 1000, f"{len(acked)} acknowledged before the disk filled"
    assert len(acked) < sent, "some records were refused once the disk was full"

    # Space freed: the same data directory serves every acknowledged record, exactly once.
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_fs)], check=True)
    proc = start(data, port, log)
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": "full",
                      "enable.partition.eof": True})
        c.assign([TopicPartition("full", i, OFFSET_BEGINNING) for i in range(2)])
        keys: list[int] = []
        eof: set[int] = set()
        deadline = time.monotonic() + 60
        while len(eof) < 2 and time.monotonic() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            keys.append(int(m.key()))
        c.close()
        assert eof == {0, 1}
        assert acked <= set(keys), f"{len(acked - set(keys))} acknowledged records lost"
        assert len(keys) == len(set(keys)), "no record twice (idempotent producer)"
    finally:
        proc.terminate()
        proc.wait(30)


def flip_a_value_byte(segment: Path) -> None:
    """Flip the middle byte of the value that spans the middle of `segment`, a value-log file of
    entries (key length u32 BE, value length u32 BE, key, value): a value's byte, never a
    header's."""
    data = bytearray(segment.read_bytes())
    middle, at = len(data) // 2, 0
    while at + 8 <= len(data):
        key_len = int.from_bytes(data[at:at + 4], "big")
        value_len = int.from_bytes(data[at + 4:at + 8], "big")
        value_at = at + 8 + key_len
        end = value_at + value_len
        if end > middle:
            data[value_at + value_len // 2] ^= 0xFF
            segment.write_bytes(bytes(data))
            return
        at = end
    raise AssertionError(f"{segment}: no entry spans its middle")


def test_a_damaged_store_file_is_found_by_verify_and_never_served(tmp_path):
    """One byte flipped in the store's value log (the middle of the value that spans the middle of
    its largest segment, a record batch): `kfdb store verify` exits 1 naming the damaged
    entry (it passed before), and a consumer is never handed wrong bytes — the damaged batch
    fails to read (KAFKA_STORAGE_ERROR) instead."""
    port = conftest.free_port()
    bootstrap = f"127.0.0.1:{port}"
    data, log = tmp_path / "data", tmp_path / "kfdb.log"
    proc = start(data, port, log)
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic("damaged", 1, 1)])["damaged"].result(30)
    expected = {i: (b"value-%d-" % i) * 50 for i in range(20000)}
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "linger.ms": 5})
    for i, v in expected.items():
        p.produce("damaged", key=str(i).encode(), value=v)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    proc.terminate()
    assert proc.wait(30) == 0
    kfdb = str(conftest.kfdb_binary())
    ok = subprocess.run([kfdb, "store", "verify", "--data-dir", str(data)], capture_output=True, text=True)
    assert ok.returncode == 0 and "every checksum matched" in ok.stdout, ok.stdout + ok.stderr
    flip_a_value_byte(max(data.glob("vlog/*.seg"), key=lambda f: f.stat().st_size))
    bad = subprocess.run([kfdb, "store", "verify", "--data-dir", str(data)], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "damaged" in bad.stderr and "do not match their checksum" in bad.stderr, bad.stderr

    proc = start(data, port, log)
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": "damaged",
                      "enable.partition.eof": True, "log_level": 2})
        c.assign([TopicPartition("damaged", 0, OFFSET_BEGINNING)])
        got, deadline = 0, time.monotonic() + 15
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                if m is not None and m.error().code() == KafkaError._PARTITION_EOF:
                    break
                continue
            assert m.value() == expected[int(m.key())], "a record's bytes are exactly what was produced"
            got += 1
        c.close()
        assert got < len(expected), "the damaged batch is not served"
        assert "do not match their checksum" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
