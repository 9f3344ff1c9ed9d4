"""TLS and SASL with real clients: one broker with four listeners (PLAINTEXT for the admin, SASL_PLAINTEXT
with SCRAM, SSL with optional client certificates, SASL_SSL with PLAIN and SCRAM), certificates made by
this module with openssl. Users are created through the Admin API (AlterUserScramCredentials) over the
PLAINTEXT listener, then log in with confluent-kafka, kafka-python and kcat (PLAIN over TLS); wrong passwords, unknown
mechanisms, untrusted CAs and certificates, unauthenticated clients and TLS/plaintext mix-ups fail
cleanly while the other connections go on.

Against Apache Kafka (KFDB_COMPAT_TARGET=kafka) the same listeners are configured in server.properties;
Kafka's PLAIN checks the passwords of its JAAS configuration, kfdb's the stored SCRAM credentials, so
the PLAIN user is given the same password in both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

import conftest
import jshelpers
import jvmhelpers
from ckhelpers import admin_client, base_conf, consume, create_topic, produce, wait_for
from tlshelpers import make_certs, openssl

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

USER, PASSWORD = "alice", "alice-secret"
BOB, BOB_PASSWORD = "bob", "bob-secret"


class Secure:
    def __init__(self, d: Path, ports: dict[str, int], server):
        self.dir = d
        self.ports = ports
        self.server = server

    def addr(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def path(self, name: str) -> str:
        return str(self.dir / name)


def kafka_configs(d: Path, listeners: str) -> dict[str, str]:
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    return {
        "listeners": listeners + ",CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": listeners,
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
        "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "broker-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(d / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "requested",
    }


@pytest.fixture(scope="module")
def secure(request):
    if os.environ.get("KFDB_COMPAT_BOOTSTRAP"):
        pytest.skip("needs a broker this suite starts with its own listeners")
    d = Path(tempfile.mkdtemp(prefix="kfdb-compat-security-"))
    make_certs(d)
    ports = {name: conftest.free_port() for name in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")}
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    if conftest.on_kafka():
        configs = kafka_configs(d, listeners)
        server = jvmhelpers.ApacheKafka(d / "kafka", port=ports["PLAINTEXT"], configs={})
        configs["listeners"] = configs["listeners"].format(controller=server.controller_port)
        server.configs = configs
    else:
        server = conftest.Kfdb(
            conftest.kfdb_binary(),
            d / "data",
            ports["PLAINTEXT"],
            extra_args=[
                *conftest.fresh_store_args(),
                "--listeners", listeners,
                "--ssl-cert-file", str(d / "broker.pem"),
                "--ssl-key-file", str(d / "broker.key"),
                "--ssl-ca-file", str(d / "ca.pem"),
                "--ssl-client-auth", "requested",
            ],
        )
    server.start()
    s = Secure(d, ports, server)
    admin = admin_client(s.addr("PLAINTEXT"))
    # One alteration per user and request (Kafka answers DUPLICATE_RESOURCE to a second one).
    for alterations in (
        [UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), PASSWORD.encode()),
         UserScramCredentialUpsertion(BOB, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), BOB_PASSWORD.encode())],
        [UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), PASSWORD.encode())],
    ):
        for f in admin.alter_user_scram_credentials(alterations).values():
            f.result(timeout=30)
    try:
        yield s
    finally:
        server.stop()
        if conftest.on_kafka():
            server.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def sasl_conf(mechanism: str, user: str = USER, password: str = PASSWORD, protocol: str = "SASL_PLAINTEXT",
              **extra) -> dict:
    conf = {"security.protocol": protocol, "sasl.mechanisms": mechanism, "sasl.username": user,
            "sasl.password": password}
    conf.update(extra)
    return conf


def login_errors(bootstrap: str, conf: dict, timeout: float = 10) -> list:
    """Errors a client with ``conf`` reports while it tries to fetch metadata (none: it got it)."""
    errors: list = []
    p = Producer(base_conf(bootstrap, error_cb=errors.append, **conf))
    try:
        p.list_topics(timeout=timeout)
        return []
    except KafkaException as e:
        p.poll(1)  # serves error_cb with what went wrong (an authentication error, say)
        return errors or [e.args[0]]


def round_trip(bootstrap: str, topic: str, conf: dict, n: int = 20) -> None:
    values = [f"{topic}-{i}".encode() for i in range(n)]
    offsets = produce(bootstrap, topic, [{"value": v} for v in values], **conf)
    assert [o for _, o in offsets] == list(range(offsets[0][1], offsets[0][1] + n))
    got = consume(bootstrap, topic, [0], n, **conf)
    assert [m.value for m in got][-n:] == values


def test_users_made_through_the_admin_api_are_described(secure):
    admin = admin_client(secure.addr("PLAINTEXT"))

    def described():
        result = admin.describe_user_scram_credentials([USER, BOB])
        return {u: sorted((i.mechanism, i.iterations) for i in f.result(timeout=10).scram_credential_infos)
                for u, f in result.items()}

    got = wait_for(described, 30, "both users described")
    assert got == {
        USER: [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)],
        BOB: [(ScramMechanism.SCRAM_SHA_512, 8192)],
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_round_trip_with_confluent_kafka(secure, topic_name, mechanism):
    topic = topic_name(mechanism.lower())
    create_topic(secure.addr("PLAINTEXT"), topic)
    conf = sasl_conf(mechanism)
    # Kafka applies new credentials asynchronously; wait until the login works.
    wait_for(lambda: not login_errors(secure.addr("SASL_PLAINTEXT"), conf, 5), 30, "SCRAM login")
    round_trip(secure.addr("SASL_PLAINTEXT"), topic, conf)


def test_wrong_password_unknown_user_and_unknown_mechanism_fail_authentication(secure):
    bootstrap = secure.addr("SASL_PLAINTEXT")
    wait_for(lambda: not login_errors(bootstrap, sasl_conf("SCRAM-SHA-512", BOB, BOB_PASSWORD), 5), 30, "bob")
    for conf in (
        sasl_conf("SCRAM-SHA-256", password="wrong"),
        sasl_conf("SCRAM-SHA-512", BOB, PASSWORD),
        sasl_conf("SCRAM-SHA-256", "nobody", "x"),
        sasl_conf("SCRAM-SHA-256", BOB, BOB_PASSWORD),  # bob has no SHA-256 credential
        sasl_conf("SCRAM-SHA-1"),
        sasl_conf("PLAIN"),  # PLAIN is not offered without TLS
    ):
        errors = login_errors(bootstrap, conf, 5)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), (conf, errors)
    # The good login still works afterwards.
    assert login_errors(bootstrap, sasl_conf("SCRAM-SHA-512", BOB, BOB_PASSWORD)) == []


def test_a_client_without_sasl_gets_nothing_from_a_sasl_listener(secure):
    errors = login_errors(secure.addr("SASL_PLAINTEXT"), {}, timeout=5)
    assert errors, "metadata without authenticating"


def test_plain_and_scram_over_sasl_ssl(secure, topic_name):
    topic = topic_name("sasl-ssl")
    create_topic(secure.addr("PLAINTEXT"), topic)
    tls = {"ssl.ca.location": secure.path("ca.pem")}
    round_trip(secure.addr("SASL_SSL"), topic, sasl_conf("PLAIN", protocol="SASL_SSL", **tls))
    errors = login_errors(secure.addr("SASL_SSL"), sasl_conf("PLAIN", password="wrong", protocol="SASL_SSL", **tls))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert login_errors(secure.addr("SASL_SSL"), sasl_conf("SCRAM-SHA-512", protocol="SASL_SSL", **tls)) == []


def test_ssl_round_trip_and_an_untrusted_ca_fails(secure, topic_name):
    topic = topic_name("ssl")
    create_topic(secure.addr("PLAINTEXT"), topic)
    conf = {"security.protocol": "SSL", "ssl.ca.location": secure.path("ca.pem")}
    round_trip(secure.addr("SSL"), topic, conf)
    errors = login_errors(secure.addr("SSL"), {"security.protocol": "SSL",
                                               "ssl.ca.location": secure.path("other-ca.pem")}, timeout=5)
    assert errors and all(e.code() != KafkaError.NO_ERROR for e in errors)


def test_a_client_certificate_from_the_ca_is_accepted(secure, topic_name):
    # ssl.client.auth=requested: a certificate is checked if the client offers one. (A client whose
    # certificate is not from the CA offers none: the CA list the server sends rules it out.)
    topic = topic_name("mtls")
    create_topic(secure.addr("PLAINTEXT"), topic)
    good = {"security.protocol": "SSL", "ssl.ca.location": secure.path("ca.pem"),
            "ssl.certificate.location": secure.path("client.pem"), "ssl.key.location": secure.path("client.key")}
    round_trip(secure.addr("SSL"), topic, good)


def test_kafka_python_scram_and_ssl(secure, topic_name):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = topic_name("kafka-python")
    create_topic(secure.addr("PLAINTEXT"), topic)
    for bootstrap, extra in [
        (secure.addr("SASL_PLAINTEXT"), dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                                             sasl_plain_username=USER, sasl_plain_password=PASSWORD)),
        (secure.addr("SSL"), dict(security_protocol="SSL", ssl_cafile=secure.path("ca.pem"))),
    ]:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **extra)
        sent = [producer.send(topic, f"{extra['security_protocol']}-{i}".encode()) for i in range(5)]
        offsets = [f.get(timeout=30).offset for f in sent]
        producer.close()
        assert offsets == list(range(offsets[0], offsets[0] + 5))
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **extra)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, offsets[0])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got += [r.value for r in records]
        consumer.close()
        assert got == [f"{extra['security_protocol']}-{i}".encode() for i in range(5)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_plain_over_sasl_ssl(secure, topic_name):
    # Debian's kcat 1.7.1 (librdkafka 2.0.2) cannot log in with SCRAM to Kafka 4 (nor to kfdb): it
    # sends its own nonce in front of the server's in its final message, which RFC 5802 and Kafka 4
    # refuse. PLAIN over TLS works with it.
    topic = topic_name("kcat")
    create_topic(secure.addr("PLAINTEXT"), topic)
    args = ["-b", secure.addr("SASL_SSL"), "-X", "security.protocol=SASL_SSL", "-X",
            f"ssl.ca.location={secure.path('ca.pem')}", "-X", "sasl.mechanisms=PLAIN",
            "-X", f"sasl.username={USER}", "-X", f"sasl.password={PASSWORD}"]
    p = subprocess.run(["kcat", *args, "-t", topic, "-P"], input=b"one\ntwo\nthree\n", capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    c = subprocess.run(["kcat", *args, "-t", topic, "-C", "-e", "-q", "-f", "%o %s\n"], capture_output=True, timeout=60)
    assert c.returncode == 0, c.stderr.decode()
    assert c.stdout.decode().split("\n")[:3] == ["0 one", "1 two", "2 three"]
    bad = subprocess.run(["kcat", *args[:-1], "sasl.password=wrong", "-L", "-m", "5"], capture_output=True, timeout=60)
    assert bad.returncode != 0
    assert b"uthentication" in bad.stderr, bad.stderr.decode()


def closed_after(addr: str, payload: bytes) -> bool:
    """Send ``payload`` and report whether the broker closed the connection (within 10 s)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        try:
            while s.recv(4096):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def test_tls_hello_on_a_plaintext_port_and_plaintext_on_a_tls_port_close_cleanly(secure):
    # The first bytes of a TLS ClientHello read as a 369 MB frame on a Kafka port.
    hello = bytes.fromhex("160301010001000100fd0303") + b"\0" * 64
    assert closed_after(secure.addr("PLAINTEXT"), hello)
    assert closed_after(secure.addr("SASL_PLAINTEXT"), hello)
    # A plaintext ApiVersions request on the TLS ports.
    api_versions = bytes.fromhex("0000001100120003000000010007636c69656e7400")
    assert closed_after(secure.addr("SSL"), api_versions)
    assert closed_after(secure.addr("SASL_SSL"), api_versions)
    # Everyone else is served as before.
    assert login_errors(secure.addr("SASL_PLAINTEXT"), sasl_conf("SCRAM-SHA-256")) == []
    assert login_errors(secure.addr("SSL"), {"security.protocol": "SSL", "ssl.ca.location": secure.path("ca.pem")}) == []


def test_kafka_configs_adds_a_scram_user_who_then_logs_in(secure):
    proc = jvmhelpers.run_java(
        "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", secure.addr("PLAINTEXT"), "--alter",
        "--entity-type", "users", "--entity-name", "dave", "--add-config", "SCRAM-SHA-512=[password=dave-secret]",
        timeout=120, heap="256m",
    )
    assert proc.returncode == 0, proc.stdout
    assert "Completed updating config for user dave" in proc.stdout
    conf = sasl_conf("SCRAM-SHA-512", "dave", "dave-secret", protocol="SASL_SSL",
                     **{"ssl.ca.location": secure.path("ca.pem")})
    wait_for(lambda: not login_errors(secure.addr("SASL_SSL"), conf, 5), 30, "dave's SCRAM login")


@jshelpers.kafkajs_test
@pytest.mark.parametrize("mechanism,listener", [("scram-sha-512", "SASL_PLAINTEXT"), ("plain", "SASL_SSL")])
def test_kafkajs_sasl(secure, topic_name, mechanism, listener):
    topic = topic_name(f"kafkajs-{mechanism}")
    create_topic(secure.addr("PLAINTEXT"), topic)
    env = {"KFDB_BROKER": secure.addr(listener), "TOPIC": topic, "MECHANISM": mechanism,
           "USERNAME": USER, "PASSWORD": PASSWORD}
    if listener == "SASL_SSL":
        env["SSL_CA"] = secure.path("ca.pem")
    result = jshelpers.run_js("secure.js", env)
    assert result["offsets"] == ["0"], result
    assert result["wrongPassword"] == "KafkaJSSASLAuthenticationError", result
    got = consume(secure.addr("PLAINTEXT"), topic, [0], 5)
    assert [m.value for m in got] == [f"kafkajs-secure-{i}".encode() for i in range(5)]


def test_aiokafka_scram_and_ssl(secure, topic_name, caplog):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition as AioTP
    from aiokafka.helpers import create_ssl_context

    topic = topic_name("aiokafka")
    create_topic(secure.addr("PLAINTEXT"), topic)
    setups = [
        (secure.addr("SASL_PLAINTEXT"), dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                                             sasl_plain_username=USER, sasl_plain_password=PASSWORD)),
        (secure.addr("SASL_SSL"), dict(security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                                       sasl_plain_username=USER, sasl_plain_password=PASSWORD,
                                       ssl_context=create_ssl_context(cafile=secure.path("ca.pem")))),
    ]

    async def run(bootstrap: str, extra: dict, tag: str) -> list:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **extra)
        await producer.start()
        try:
            metas = [await producer.send_and_wait(topic, f"{tag}-{i}".encode(), partition=0) for i in range(3)]
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **extra)
        await consumer.start()
        try:
            tp = AioTP(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, metas[0].offset)
            got = []
            while len(got) < 3:
                batch = await consumer.getmany(tp, timeout_ms=10_000)
                if not batch:
                    break
                got += [r.value for r in batch[tp]]
            return got
        finally:
            await consumer.stop()

    for bootstrap, extra in setups:
        tag = extra["security_protocol"]
        assert asyncio.run(run(bootstrap, extra, tag)) == [f"{tag}-{i}".encode() for i in range(3)]
    bad = dict(setups[0][1], sasl_plain_password="wrong")

    async def wrong():
        producer = AIOKafkaProducer(bootstrap_servers=setups[0][0], **bad)
        try:
            await producer.start()
        finally:
            await producer.stop()

    # aiokafka logs the SASL failure and gives up bootstrapping.
    with pytest.raises(Exception):
        asyncio.run(wrong())
    assert "SaslAuthenticationFailed" in caplog.text, caplog.text


def test_certificates_reload_without_dropping_connections(topic_name, tmp_path):
    if conftest.on_kafka() or os.environ.get("KFDB_COMPAT_BOOTSTRAP") or conftest.fdb_cluster_file():
        pytest.skip("kfdb's reload of changed certificate files, on an embedded data dir (Kafka reloads "
                    "through dynamic configs)")
    make_certs(tmp_path)
    # A second broker certificate, from the other CA, to rotate to.
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "next.key", "-out", "next.csr", "-subj",
            "/CN=localhost", cwd=tmp_path)
    openssl("x509", "-req", "-in", "next.csr", "-CA", "other-ca.pem", "-CAkey", "other-ca.key", "-CAcreateserial",
            "-out", "next.pem", "-days", "2", "-extfile", "broker.ext", cwd=tmp_path)
    shutil.copy(tmp_path / "broker.pem", tmp_path / "live.pem")
    shutil.copy(tmp_path / "broker.key", tmp_path / "live.key")
    plain, tls_port = conftest.free_port(), conftest.free_port()
    server = conftest.Kfdb(conftest.kfdb_binary(), tmp_path / "data", plain, extra_args=[
        "--listeners", f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls_port}",
        "--ssl-cert-file", str(tmp_path / "live.pem"), "--ssl-key-file", str(tmp_path / "live.key"),
    ])
    server.start()
    try:
        topic = topic_name("reload")
        create_topic(f"127.0.0.1:{plain}", topic)
        addr = f"127.0.0.1:{tls_port}"
        old = {"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "ca.pem")}
        new = {"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "other-ca.pem")}
        delivered: list = []
        producer = Producer(base_conf(addr, **{"acks": "all", "enable.idempotence": False}, **old))
        producer.produce(topic, b"before", on_delivery=lambda e, m: delivered.append(e))
        producer.flush(30)
        assert delivered == [None]
        assert login_errors(addr, new, timeout=3), "the next certificate is not served yet"
        # Rotate: key first, then the chain (a reload between the two fails and keeps the old pair).
        shutil.copy(tmp_path / "next.key", tmp_path / "live.key")
        shutil.copy(tmp_path / "next.pem", tmp_path / "live.pem")
        wait_for(lambda: not login_errors(addr, new, timeout=3), 30, "new connections get the new certificate")
        producer.produce(topic, b"after", on_delivery=lambda e, m: delivered.append(e))
        producer.flush(30)
        assert delivered == [None, None], "the connection made before the reload still works"
    finally:
        server.stop()


def test_a_user_made_with_the_cli_before_the_broker_starts_logs_in(topic_name, tmp_path):
    if conftest.on_kafka() or os.environ.get("KFDB_COMPAT_BOOTSTRAP") or conftest.fdb_cluster_file():
        pytest.skip("kfdb's own `kfdb user create` on an embedded data dir (Kafka's counterpart is "
                    "kafka-storage format --add-scram)")
    data = tmp_path / "data"
    made = subprocess.run([str(conftest.kfdb_binary()), "user", "create", "ops", "--password-stdin",
                           "--data-dir", str(data)], input=b"ops-secret\n", capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr.decode()
    plain, sasl = conftest.free_port(), conftest.free_port()
    server = conftest.Kfdb(conftest.kfdb_binary(), data, plain, extra_args=[
        "--listeners", f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
    ])
    server.start()
    try:
        topic = topic_name("cli-user")
        create_topic(f"127.0.0.1:{plain}", topic)
        round_trip(f"127.0.0.1:{sasl}", topic, sasl_conf("SCRAM-SHA-512", "ops", "ops-secret"), n=3)
        assert login_errors(f"127.0.0.1:{sasl}", sasl_conf("SCRAM-SHA-256", "ops", "nope"), 5)
    finally:
        server.stop()


def test_kfdb_cli_over_sasl_ssl_manages_users(secure):
    """kfdb's admin CLI with a Kafka client properties file (`--command-config`, as Kafka's tools):
    SCRAM over TLS; a user it creates logs in, one it deletes no longer does; a wrong password is
    refused."""

    def props(name: str, password: str) -> str:
        p = secure.dir / name
        p.write_text(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{USER}" password="{password}";\n'
            f"ssl.truststore.type=PEM\nssl.truststore.location={secure.path('ca.pem')}\n"
        )
        return str(p)

    def cli(*args: str, config: str, stdin: str | None = None, check: bool = True):
        r = subprocess.run([str(conftest.kfdb_binary()), *args, "--bootstrap-server", secure.addr("SASL_SSL"),
                            "--command-config", config], input=stdin, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    good = props("cli.properties", PASSWORD)
    assert "BROKER" in cli("cluster", "info", config=good).stdout
    cli("user", "create", "carol", "--password-stdin", "--mechanism", "SCRAM-SHA-256", config=good, stdin="carol-pw\n")
    assert "carol\tSCRAM-SHA-256" in cli("user", "list", config=good).stdout
    wait_for(lambda: not login_errors(secure.addr("SASL_PLAINTEXT"), sasl_conf("SCRAM-SHA-256", "carol", "carol-pw")),
             30, "carol logs in")
    cli("user", "delete", "carol", "--mechanism", "SCRAM-SHA-256", config=good)
    wait_for(lambda: login_errors(secure.addr("SASL_PLAINTEXT"), sasl_conf("SCRAM-SHA-256", "carol", "carol-pw"), 5),
             30, "carol refused")
    bad = cli("cluster", "info", config=props("bad.properties", "wrong"), check=False)
    assert bad.returncode != 0 and "SASL_AUTHENTICATION_FAILED" in bad.stderr, bad.stderr
