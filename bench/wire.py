"""Small helpers the raw-protocol bench scripts share: a free loopback port and Kafka's
length-prefixed (nullable) string."""
import socket
import struct


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(s)) + s.encode()
