"""What TLS and SASL cost kfdb's clients: one kfdb with a PLAINTEXT, an SSL, a SASL_PLAINTEXT (SCRAM)
and a SASL_SSL (SCRAM) listener; through each, confluent-kafka produces the same records (acks=all,
1 KiB values) and reads them back, and 40 fresh clients each time the way from nothing to their first
metadata answer (TCP, TLS handshake, SASL exchange). PLAINTEXT in the same run is the baseline every
ratio is against. Everything runs twice in the listener order above; the first pass warms kfdb and
librdkafka up and only the second is reported. Prints one `bench security ...` line per listener.

    cargo build -p kfdb && compat-tests/.venv/bin/python bench/security_overhead.py [--records N]

(uses compat-tests' virtualenv for confluent-kafka and its harness to start kfdb and make
certificates.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "compat-tests"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

import conftest  # noqa: E402
from tlshelpers import make_certs  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"


def measure(admin, bootstrap: str, listener_conf: dict, topic: str, args) -> tuple[dict, list]:
    """Produce and consume ``args.records`` through one listener; time ``args.connects`` logins."""
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", **listener_conf}
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(timeout=30)
    connect_ms = []
    for _ in range(args.connects):
        t0 = time.perf_counter()
        p = Producer(conf)
        p.list_topics(timeout=30)
        connect_ms.append((time.perf_counter() - t0) * 1000)
        del p
    producer = Producer({**conf, "acks": "all", "enable.idempotence": False, "linger.ms": 5,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    value = b"x" * 1024
    t0 = time.perf_counter()
    for _ in range(args.records):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(300)
    produce_s = time.perf_counter() - t0
    consumer = Consumer({**conf, "group.id": "bench", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 52_428_800})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = 0
    t0 = time.perf_counter()
    while got < args.records:
        for m in consumer.consume(10_000, 5):
            if m.error() is None:
                got += 1
    consume_s = time.perf_counter() - t0
    consumer.close()
    row = {
        "produce_rps": args.records / produce_s,
        "consume_rps": args.records / consume_s,
        "connect_p50_ms": statistics.median(connect_ms),
    }
    return row, connect_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--connects", type=int, default=40)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="kfdb-bench-security-"))
    make_certs(d)
    names = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    ports = {n: conftest.free_port() for n in names}
    listeners = ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items())
    binary = ROOT / "target" / "release" / "kfdb"
    if not binary.exists():
        binary = ROOT / "target" / "debug" / "kfdb"
    server = conftest.Kfdb(binary, d / "data", ports["PLAINTEXT"], extra_args=[
        "--listeners", listeners, "--ssl-cert-file", str(d / "broker.pem"), "--ssl-key-file", str(d / "broker.key"),
    ])
    server.start()
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"})
        for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
                USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), PASSWORD.encode())]).values():
            f.result(timeout=30)
        tls = {"ssl.ca.location": str(d / "ca.pem")}
        sasl = {"sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": USER, "sasl.password": PASSWORD}
        confs = {
            "PLAINTEXT": {},
            "SSL": {"security.protocol": "SSL", **tls},
            "SASL_PLAINTEXT": {"security.protocol": "SASL_PLAINTEXT", **sasl},
            "SASL_SSL": {"security.protocol": "SASL_SSL", **tls, **sasl},
        }
        print(f"binary: {binary}  records per listener: {args.records} x 1 KiB, acks=all")
        base = None
        for pass_no in (1, 2):
            for name in names:
                row, connect_ms = measure(admin, f"127.0.0.1:{ports[name]}", confs[name],
                                          f"bench-{name.lower()}-{pass_no}", args)
                if pass_no == 1:
                    continue
                base = base or row
                print(
                    f"bench security listener={name} produce_rec_s={row['produce_rps']:.0f} "
                    f"produce_ratio={row['produce_rps'] / base['produce_rps']:.2f} "
                    f"consume_rec_s={row['consume_rps']:.0f} "
                    f"consume_ratio={row['consume_rps'] / base['consume_rps']:.2f} "
                    f"first_metadata_p50_ms={row['connect_p50_ms']:.1f} "
                    f"first_metadata_max_ms={max(connect_ms):.1f}"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
