"""Hostile input on the wire: requests a real client never sends, each answered with Kafka's
error code or a clean close of that connection only — the broker stays up, other connections
carry on, and nothing is appended. Requests are written by hand (struct) on raw sockets, record
batches with kafka-python's builders and then damaged. The same module runs against Apache
Kafka 4.4, so every expected answer is Kafka's own.

Covered: CRC mismatch, magic 0/1 batches, record counts that disagree with the batch, compressed
records that do not decompress or that expand to 256 MiB (a decompression bomb), timestamps
beyond message.timestamp.after.max.ms, negative and oversized frame sizes, truncated frames,
unknown API keys and versions, array counts of 2^31-1, negative partitions and offsets, absurd
partition counts and topic names Kafka refuses.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

# Kafka's error codes used below.
UNKNOWN_SERVER_ERROR = -1
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
INVALID_TIMESTAMP = 32
UNSUPPORTED_VERSION = 35
INVALID_PARTITIONS = 37
INVALID_REQUEST = 42
POLICY_VIOLATION = 44
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87


# ------------------------------------------------------------------------------------------
# Wire helpers (non-flexible request versions: plain int16/int32 lengths)
# ------------------------------------------------------------------------------------------


def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def array(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


def frame(key: int, version: int, correlation: int, body: bytes) -> bytes:
    payload = struct.pack(">hhi", key, version, correlation) + string("hostile-test") + body
    return struct.pack(">i", len(payload)) + payload


class Conn:
    def __init__(self, bootstrap: str):
        host, port = bootstrap.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        self.correlation = 0

    def close(self) -> None:
        self.s.close()

    def recv_exact(self, n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            try:
                chunk = self.s.recv(n - len(out))
            except OSError:
                return None
            if not chunk:
                return None
            out += chunk
        return out

    def ask(self, key: int, version: int, body: bytes) -> bytes | None:
        """The response body (after the correlation id), or None when the broker closed."""
        self.correlation += 1
        try:
            self.s.sendall(frame(key, version, self.correlation, body))
        except OSError:
            return None
        head = self.recv_exact(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        rest = self.recv_exact(size)
        if rest is None:
            return None
        assert struct.unpack(">i", rest[:4])[0] == self.correlation
        return rest[4:]

    def closed_within(self, seconds: float) -> bool:
        self.s.settimeout(seconds)
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True


def metadata_ok(bootstrap: str) -> bool:
    """A fresh connection gets a Metadata v4 answer naming at least one broker."""
    c = Conn(bootstrap)
    try:
        body = c.ask(3, 4, struct.pack(">i", 0) + b"\x00")  # no topics, no auto-create
        return body is not None and struct.unpack(">i", body[4:8])[0] >= 1
    finally:
        c.close()


def produce_v7(topic: str, partition: int, records: bytes) -> bytes:
    part = struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    return string(None) + struct.pack(">hi", -1, 30000) + array([string(topic) + array([part])])


def produce_error(bootstrap: str, topic: str, records: bytes, partition: int = 0) -> int | None:
    """Produce v7 (acks=all) of ``records`` to ``topic``; the partition's error code, or None when
    the broker closed the connection."""
    c = Conn(bootstrap)
    try:
        body = c.ask(0, 7, produce_v7(topic, partition, records))
    finally:
        c.close()
    if body is None:
        return None
    # [topics: name, [partitions: index, error_code, ...]] throttle
    n = struct.unpack(">h", body[4:6])[0]
    at = 6 + n + 4  # topic name, partition array count
    return struct.unpack(">h", body[at + 4:at + 6])[0]


def batch(values: list[bytes], compression: int = 0, timestamp: int | None = None) -> bytearray:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    for i, v in enumerate(values):
        b.append(i, ts, b"key-%d" % i, v, [])
    return b.build()


def fix_crc(b: bytearray) -> bytearray:
    """Recompute the v2 batch CRC (CRC-32C of everything after the crc field) after a change."""
    from kafka.record.util import calc_crc32c
    b[17:21] = struct.pack(">I", calc_crc32c(bytes(b[21:])))
    return b


def end_offset(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hostile-" + uuid.uuid4().hex,
                  "broker.address.family": "v4"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
    finally:
        c.close()


@pytest.fixture(scope="module")
def topic(bootstrap) -> str:
    name = "hostile-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    # One good batch first: the log holds exactly one record, and every refusal below must
    # leave it so.
    deadline = time.monotonic() + 30
    while produce_error(bootstrap, name, bytes(batch([b"good"]))) != NONE:
        assert time.monotonic() < deadline, "the good batch was never accepted"
        time.sleep(0.5)
    return name


def refused(bootstrap: str, topic: str, records: bytes, *codes: int) -> None:
    got = produce_error(bootstrap, topic, records)
    assert got in codes, f"answered {got}, expected one of {codes}"
    assert end_offset(bootstrap, topic) == 1, "nothing of a refused batch is appended"
    assert metadata_ok(bootstrap)


# ------------------------------------------------------------------------------------------
# Record batches
# ------------------------------------------------------------------------------------------


def test_crc_mismatch_is_corrupt_message(bootstrap, topic):
    b = batch([b"hello"])
    b[-1] ^= 0x01  # a value byte: the CRC no longer matches
    refused(bootstrap, topic, bytes(b), CORRUPT_MESSAGE)


def test_magic_0_and_1_batches_are_refused(bootstrap, topic):
    for magic in (0, 1):
        legacy = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
        legacy.append(0, int(time.time() * 1000) if magic else None, b"k", b"old format")
        refused(bootstrap, topic, bytes(legacy.build()), UNSUPPORTED_FOR_MESSAGE_FORMAT, INVALID_RECORD)


def test_record_count_disagreeing_with_the_batch_is_refused(bootstrap, topic):
    for count in (5, 1, 0x7FFFFFFF, -1):
        b = batch([b"a", b"b", b"c"])
        b[57:61] = struct.pack(">i", count)  # recordCount
        refused(bootstrap, topic, bytes(fix_crc(b)), CORRUPT_MESSAGE, INVALID_RECORD)


def test_compressed_records_that_do_not_decompress_are_corrupt(bootstrap, topic):
    b = batch([b"x" * 200] * 10, compression=1)  # gzip
    middle = 61 + (len(b) - 61) // 2
    b[middle:middle + 8] = b"\xde\xad\xbe\xef\xde\xad\xbe\xef"
    # kfdb: CORRUPT_MESSAGE. Kafka 4.4 answers UNKNOWN_SERVER_ERROR (its gzip stream's
    # ZipException is not mapped to an error code); either is a refusal the producer does not retry.
    refused(bootstrap, topic, bytes(fix_crc(b)), CORRUPT_MESSAGE, INVALID_RECORD, UNKNOWN_SERVER_ERROR)


def test_a_decompression_bomb_is_refused_without_exhausting_the_broker(bootstrap, topic):
    # A batch whose gzip'd records section is ~250 KiB and expands to 256 MiB of zeros. Kafka
    # streams it and stops at the first record (a zero length); kfdb stops at its decompression
    # bound (64x the batch, at least 64 MiB): either way a refusal, the broker stays up.
    b = batch([b"seed"], compression=0)
    header = bytearray(b[:61])
    header[21:23] = struct.pack(">h", 1)  # attributes: gzip
    header[57:61] = struct.pack(">i", 1)
    bomb = gzip.compress(bytes(256 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    whole = header + bomb
    whole[8:12] = struct.pack(">i", len(whole) - 12)  # batchLength
    refused(bootstrap, topic, bytes(fix_crc(whole)), CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE)


def test_timestamps_beyond_message_timestamp_after_max_ms_are_refused(bootstrap, topic):
    # Kafka 4's default message.timestamp.after.max.ms is one hour.
    two_hours_ahead = int(time.time() * 1000) + 2 * 3600 * 1000
    refused(bootstrap, topic, bytes(batch([b"future"], timestamp=two_hours_ahead)), INVALID_TIMESTAMP)


def test_a_negative_partition_is_unknown(bootstrap, topic):
    assert produce_error(bootstrap, topic, bytes(batch([b"x"])), partition=-1) == UNKNOWN_TOPIC_OR_PARTITION
    assert end_offset(bootstrap, topic) == 1


# ------------------------------------------------------------------------------------------
# Frames
# ------------------------------------------------------------------------------------------


def raw(bootstrap: str) -> Conn:
    return Conn(bootstrap)


@pytest.mark.parametrize("size", [-1, -0x7FFFFFFF, 200 << 20], ids=["minus-1", "min-int", "200MiB"])
def test_bad_frame_sizes_close_only_that_connection(bootstrap, size):
    other = raw(bootstrap)
    try:
        assert other.ask(18, 0, b"") is not None
        c = raw(bootstrap)
        c.s.sendall(struct.pack(">i", size) + b"\x00" * 64)
        assert c.closed_within(10), f"a frame of size {size} closes the connection"
        c.close()
        assert other.ask(18, 0, b"") is not None, "another connection is unaffected"
        assert metadata_ok(bootstrap)
    finally:
        other.close()


def test_a_truncated_frame_then_close_leaves_the_broker_serving(bootstrap):
    c = raw(bootstrap)
    c.s.sendall(struct.pack(">i", 100) + b"\x00\x03\x00\x04")
    c.close()
    assert metadata_ok(bootstrap)


def test_unknown_api_key_closes_the_connection(bootstrap):
    c = raw(bootstrap)
    assert c.ask(9999 & 0x7FFF, 0, b"") is None
    c.close()
    assert metadata_ok(bootstrap)


def test_an_unsupported_api_versions_version_is_answered_with_v0(bootstrap):
    c = raw(bootstrap)
    try:
        # From version 3 ApiVersions has header v2: an (empty) tagged-field section follows the
        # client id.
        body = c.ask(18, 999, b"\x00")
        assert body is not None
        assert struct.unpack(">h", body[:2])[0] == UNSUPPORTED_VERSION
        # ApiVersions v0 body: error_code, [api_key, min, max]: at least ApiVersions' own range,
        # so the client can retry with a version the broker has.
        entries = [struct.unpack(">hhh", body[6 + 6 * i:12 + 6 * i]) for i in range(struct.unpack(">i", body[2:6])[0])]
        assert any(key == 18 and low == 0 and high >= 3 for key, low, high in entries), entries
    finally:
        c.close()


def test_an_unsupported_version_of_another_api_closes_the_connection(bootstrap):
    c = raw(bootstrap)
    assert c.ask(3, 999, b"") is None
    c.close()
    assert metadata_ok(bootstrap)


def test_an_array_count_of_2_31_minus_1_closes_the_connection(bootstrap):
    c = raw(bootstrap)
    # Metadata v4: topics array claiming 2^31-1 entries, then nothing.
    assert c.ask(3, 4, struct.pack(">i", 0x7FFFFFFF)) is None
    c.close()
    assert metadata_ok(bootstrap)


# ------------------------------------------------------------------------------------------
# Absurd values in well-formed requests
# ------------------------------------------------------------------------------------------


def ask_once(bootstrap: str, key: int, version: int, body: bytes) -> bytes:
    """One request on a fresh connection; its response body (the broker must answer)."""
    c = raw(bootstrap)
    try:
        r = c.ask(key, version, body)
    finally:
        c.close()
    assert r is not None
    return r


def first_result_error(r: bytes) -> int:
    """The error code of the first result of a CreateTopics v2 / CreatePartitions v1 response:
    throttle, [name, error_code, error_message]."""
    n = struct.unpack(">h", r[8:10])[0]
    return struct.unpack(">h", r[10 + n:12 + n])[0]


def create_topics_v2(bootstrap: str, name: str, partitions: int) -> int:
    body = array([string(name) + struct.pack(">ih", partitions, -1) + array([]) + array([])])
    body += struct.pack(">i", 30000) + b"\x00"
    return first_result_error(ask_once(bootstrap, 19, 2, body))


@pytest.mark.parametrize("partitions", [0, -5])
def test_absurd_partition_counts_are_invalid_partitions(bootstrap, partitions):
    assert create_topics_v2(bootstrap, "hostile-p-" + uuid.uuid4().hex[:6], partitions) == INVALID_PARTITIONS


def test_more_than_10000_partitions_in_one_request_is_a_policy_violation(bootstrap):
    # Kafka's controller refuses a request that would create more than 10,000 partitions
    # ("Excessively large number of partitions per request").
    assert create_topics_v2(bootstrap, "hostile-p-" + uuid.uuid4().hex[:6], 0x7FFFFFFF) == POLICY_VIOLATION


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "white space", "x" * 250, "tab\there", "ünï"],
                         ids=["empty", "dot", "dotdot", "slash", "space", "250-chars", "tab", "non-ascii"])
def test_topic_names_kafka_refuses_are_invalid_topic_exception(bootstrap, name):
    assert create_topics_v2(bootstrap, name, 1) == INVALID_TOPIC_EXCEPTION


def fetch_v4(bootstrap: str, topic: str, partition: int, offset: int) -> int:
    part = struct.pack(">iqi", partition, offset, 1 << 20)
    body = struct.pack(">iiiib", -1, 100, 1, 1 << 20, 0) + array([string(topic) + array([part])])
    r = ask_once(bootstrap, 1, 4, body)
    # throttle, [name, [partition, error_code, ...]]
    n = struct.unpack(">h", r[8:10])[0]
    at = 10 + n + 4
    return struct.unpack(">h", r[at + 4:at + 6])[0]


@pytest.mark.parametrize("offset", [-5, -(1 << 63), 1 << 62])
def test_fetch_at_absurd_offsets_is_out_of_range(bootstrap, topic, offset):
    assert fetch_v4(bootstrap, topic, 0, offset) == OFFSET_OUT_OF_RANGE
    assert metadata_ok(bootstrap)


def test_fetch_of_a_negative_partition_is_unknown(bootstrap, topic):
    assert fetch_v4(bootstrap, topic, -3, 0) == UNKNOWN_TOPIC_OR_PARTITION


def test_adding_more_than_10000_partitions_in_one_request_is_a_policy_violation(bootstrap):
    name = "hostile-cp-" + uuid.uuid4().hex[:6]
    assert create_topics_v2(bootstrap, name, 1) == NONE
    # CreatePartitions v1: [name, count, assignments (null)], timeout, validate_only.
    body = array([string(name) + struct.pack(">ii", 0x7FFFFFFF, -1)]) + struct.pack(">i", 30000) + b"\x00"
    assert first_result_error(ask_once(bootstrap, 37, 1, body)) == POLICY_VIOLATION
    assert metadata_ok(bootstrap)
