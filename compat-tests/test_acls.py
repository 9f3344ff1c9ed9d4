"""ACLs with real clients, on kfdb (`--authorizer acl`) and on Kafka 4.4 (StandardAuthorizer). The
PLAINTEXT listener's principal (User:ANONYMOUS) is a super user and plays the administrator; alice
and bob log in with SCRAM on a SASL_PLAINTEXT listener; an SSL listener requires client certificates,
whose subject is the principal. Without ACLs alice can neither produce,
consume, commit, see nor create a topic; after CreateAcls through confluent-kafka's AdminClient she
can do exactly what she was granted; prefixed ACLs, deny beating allow, DescribeAcls and DeleteAcls
taking a grant back.
"""

from __future__ import annotations

import json
import os
import subprocess
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

import conftest
import jvmhelpers
from ckhelpers import admin_client, base_conf, create_topic, wait_for
from tlshelpers import CLIENT_PRINCIPAL, make_certs

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


class Broker:
    def __init__(self, ports: dict[str, int], server):
        self.ports = ports
        self.server = server

    @property
    def admin_addr(self) -> str:
        return f"127.0.0.1:{self.ports['PLAINTEXT']}"

    @property
    def sasl_addr(self) -> str:
        return f"127.0.0.1:{self.ports['SASL_PLAINTEXT']}"

    @property
    def ssl_addr(self) -> str:
        return f"127.0.0.1:{self.ports['SSL']}"


@pytest.fixture(scope="module")
def broker():
    if os.environ.get("KFDB_COMPAT_BOOTSTRAP"):
        pytest.skip("needs a broker this suite starts with its own listeners")
    d = Path(tempfile.mkdtemp(prefix="kfdb-compat-acls-"))
    make_certs(d)
    ports = {name: conftest.free_port() for name in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL")}
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    if conftest.on_kafka():
        server = jvmhelpers.ApacheKafka(d / "kafka", port=ports["PLAINTEXT"])
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        server.configs = {
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{server.controller_port}",
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
            "CONTROLLER:PLAINTEXT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(d / "broker-keystore.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(d / "ca.pem"),
            "listener.name.ssl.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS",
        }
    else:
        server = conftest.Kfdb(conftest.kfdb_binary(), d / "data", ports["PLAINTEXT"], extra_args=[
            *conftest.fresh_store_args(), "--listeners", listeners, "--authorizer", "acl", "--super-users", "User:ANONYMOUS",
            "--ssl-cert-file", str(d / "broker.pem"), "--ssl-key-file", str(d / "broker.key"),
            "--ssl-ca-file", str(d / "ca.pem"), "--ssl-client-auth", "required",
        ])
    server.start()
    b = Broker(ports, server)
    b.dir = d
    admin = admin_client(b.admin_addr)
    for user, password in USERS.items():
        upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                              password.encode())
        for f in admin.alter_user_scram_credentials([upsert]).values():
            f.result(timeout=30)
    try:
        yield b
    finally:
        server.stop()
        if conftest.on_kafka():
            server.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def as_user(user: str, **extra) -> dict:
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": user, "sasl.password": USERS[user]}
    conf.update(extra)
    return conf


def produce_one(addr: str, topic: str, conf: dict, timeout: float = 15) -> KafkaError | None:
    """Produce one record; its delivery error (None: delivered)."""
    result: list = []
    p = Producer(base_conf(addr, **{"acks": "all", "enable.idempotence": False, "message.timeout.ms": int(timeout * 1000)},
                           **conf))
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err))
    p.flush(timeout + 5)
    assert result, "no delivery report"
    return result[0]


def consume_errors(addr: str, topic: str, group: str, conf: dict, timeout: float = 10) -> tuple[list, list]:
    """Read ``topic`` partition 0 from the start as member of ``group`` and commit; (values, errors)."""
    c = Consumer(base_conf(addr, **{"group.id": group, "auto.offset.reset": "earliest",
                                    "enable.auto.commit": False}, **conf))
    values, errors = [], []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not values and not errors:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error().code())
            else:
                values.append(m.value())
        if values:
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                errors.append(e.args[0].code())
    finally:
        c.close()
    return values, errors


def visible_topics(addr: str, conf: dict) -> set[str]:
    return set(admin_client(addr, **conf).list_topics(timeout=10).topics)


def grant(b: Broker, *bindings: AclBinding) -> None:
    admin = admin_client(b.admin_addr)  # kept until the answers are in (destroying it cancels them)
    for f in admin.create_acls(list(bindings)).values():
        f.result(timeout=30)


def topic_acl(name: str, op: AclOperation, user: str = "alice", pattern=ResourcePatternType.LITERAL,
              permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, name, pattern, f"User:{user}", "*", op, permission)


def test_without_acls_a_user_can_do_nothing(broker, topic_name):
    topic = topic_name("closed")
    create_topic(broker.admin_addr, topic)
    wait_for(lambda: visible_topics(broker.sasl_addr, as_user("alice")) is not None, 30, "alice's login")
    err = produce_one(broker.sasl_addr, topic, as_user("alice"))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    values, errors = consume_errors(broker.sasl_addr, topic, f"{topic}-g", as_user("alice"))
    # The group (no READ on it either) or the topic: librdkafka reports whichever it hits first.
    assert not values and set(errors) & {KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                         KafkaError.GROUP_AUTHORIZATION_FAILED}, errors
    assert topic not in visible_topics(broker.sasl_addr, as_user("alice"))
    alice_admin = admin_client(broker.sasl_addr, **as_user("alice"))
    fs = alice_admin.create_topics([NewTopic(topic_name("new"), 1, 1)])
    for f in fs.values():
        with pytest.raises(KafkaException) as e:
            f.result(timeout=30)
        assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_granted_exactly_what_the_acls_say(broker, topic_name):
    topic = topic_name("granted")
    group = f"{topic}-group"
    create_topic(broker.admin_addr, topic)
    grant(broker, topic_acl(topic, AclOperation.WRITE), topic_acl(topic, AclOperation.READ),
          AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, "User:alice", "*",
                     AclOperation.READ, AclPermissionType.ALLOW))
    alice = as_user("alice")
    wait_for(lambda: produce_one(broker.sasl_addr, topic, alice, 5) is None, 30, "alice may write")
    assert topic in visible_topics(broker.sasl_addr, alice), "WRITE/READ imply DESCRIBE"
    values, errors = consume_errors(broker.sasl_addr, topic, group, alice)
    assert values and not errors, errors
    # bob was granted nothing.
    err = produce_one(broker.sasl_addr, topic, as_user("bob"))
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Another group is not alice's: her commit there is refused (librdkafka reports the
    # refused FindCoordinator as GROUP_AUTHORIZATION_FAILED, or as still waiting for one).
    values, errors = consume_errors(broker.sasl_addr, topic, f"{topic}-other", alice)
    assert set(errors) & {KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError._WAIT_COORD}, errors


def test_prefixed_allow_and_deny_wins(broker, topic_name):
    prefix = topic_name("logs-")
    open_topic, secret = f"{prefix}app", f"{prefix}secret"
    for t in (open_topic, secret):
        create_topic(broker.admin_addr, t)
    grant(broker, topic_acl(prefix, AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
          topic_acl(secret, AclOperation.WRITE, permission=AclPermissionType.DENY))
    alice = as_user("alice")
    wait_for(lambda: produce_one(broker.sasl_addr, open_topic, alice, 5) is None, 30, "prefixed grant")
    err = produce_one(broker.sasl_addr, secret, alice)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, "deny beats allow"


def test_describe_and_delete_acls(broker, topic_name):
    topic = topic_name("revoke")
    create_topic(broker.admin_addr, topic)
    grant(broker, topic_acl(topic, AclOperation.WRITE, user="bob"))
    bob = as_user("bob")
    wait_for(lambda: produce_one(broker.sasl_addr, topic, bob, 5) is None, 30, "bob may write")
    admin = admin_client(broker.admin_addr)
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    described = admin.describe_acls(flt).result(timeout=30)
    assert [(b.principal, b.operation, b.permission_type) for b in described] == [
        ("User:bob", AclOperation.WRITE, AclPermissionType.ALLOW)]
    deleted = admin.delete_acls([flt])[flt].result(timeout=30)
    assert len(deleted) == 1
    assert admin.describe_acls(flt).result(timeout=30) == []
    wait_for(lambda: (produce_one(broker.sasl_addr, topic, bob, 5) or KafkaError(0)).code()
             == KafkaError.TOPIC_AUTHORIZATION_FAILED, 30, "bob's grant taken back")


def test_a_user_cannot_manage_acls_or_users(broker):
    alice_admin = admin_client(broker.sasl_addr, **as_user("alice"))
    fs = alice_admin.create_acls([topic_acl("anything", AclOperation.ALL)])
    for f in fs.values():
        with pytest.raises(KafkaException) as e:
            f.result(timeout=30)
        assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    upsert = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"x")
    for f in alice_admin.alter_user_scram_credentials([upsert]).values():
        with pytest.raises(KafkaException) as e:
            f.result(timeout=30)
        assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_authorized_operations_kip_430(broker, topic_name):
    from confluent_kafka import TopicCollection

    topic = topic_name("ops")
    create_topic(broker.admin_addr, topic)
    grant(broker, topic_acl(topic, AclOperation.READ, user="bob"))
    bob = admin_client(broker.sasl_addr, **as_user("bob"))

    def bob_sees():
        d = bob.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(timeout=10)
        return set(d.authorized_operations or [])

    ops = wait_for(bob_sees, 30, "bob's topic description")
    assert ops == {AclOperation.READ, AclOperation.DESCRIBE}, ops
    admin = admin_client(broker.admin_addr)
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert {AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE} <= set(cluster.authorized_operations)
    # Anyone may describe the cluster; bob may do nothing to it.
    seen = bob.describe_cluster(include_authorized_operations=True).result(timeout=30)
    assert not seen.authorized_operations, seen.authorized_operations


def test_kafka_acls_tool_adds_and_lists(broker, topic_name):
    topic = topic_name("tool")
    create_topic(broker.admin_addr, topic)

    def acls(*args: str):
        proc = jvmhelpers.run_java("org.apache.kafka.tools.AclCommand", "--bootstrap-server", broker.admin_addr,
                                   *args, timeout=120, heap="256m")
        assert proc.returncode == 0, proc.stdout
        return proc.stdout

    acls("--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", topic)
    listed = acls("--list", "--topic", topic)
    assert "principal=User:bob" in listed and "operation=WRITE" in listed, listed
    wait_for(lambda: produce_one(broker.sasl_addr, topic, as_user("bob"), 5) is None, 30, "bob may write")


def test_a_client_certificate_subject_is_the_principal(broker, topic_name):
    topic = topic_name("mtls")
    create_topic(broker.admin_addr, topic)
    tls = {"security.protocol": "SSL", "ssl.ca.location": str(broker.dir / "ca.pem")}
    with_cert = dict(tls, **{"ssl.certificate.location": str(broker.dir / "client.pem"),
                             "ssl.key.location": str(broker.dir / "client.key")})
    err = produce_one(broker.ssl_addr, topic, with_cert)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    grant(broker, AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, CLIENT_PRINCIPAL, "*",
                             AclOperation.WRITE, AclPermissionType.ALLOW))
    wait_for(lambda: produce_one(broker.ssl_addr, topic, with_cert, 5) is None, 30, f"{CLIENT_PRINCIPAL} may write")
    # ssl.client.auth=required: no certificate, no connection.
    errors: list = []
    p = Producer(base_conf(broker.ssl_addr, error_cb=errors.append, **tls))
    with pytest.raises(KafkaException):
        p.list_topics(timeout=5)


def test_kfdb_acl_cli_creates_lists_and_deletes(broker, topic_name):
    """kfdb's own `kfdb acl` (over the Kafka protocol, as kafka-acls): what it grants takes effect."""
    topic = topic_name("cli")
    create_topic(broker.admin_addr, topic)

    def kfdb_acl(*args: str):
        r = subprocess.run([str(conftest.kfdb_binary()), "acl", *args, "--bootstrap-server", broker.admin_addr],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert produce_one(broker.sasl_addr, topic, as_user("bob"), 5) is not None, "no ACL yet"
    kfdb_acl("create", "--principal", "User:bob", "--operation", "Write", "--operation", "Describe", "--topic", topic)
    listed = json.loads(kfdb_acl("list", "--topic", topic, "--format", "json"))
    assert sorted(a["operation"] for a in listed) == ["Describe", "Write"]
    assert {(a["principal"], a["permission"], a["pattern_type"]) for a in listed} == {("User:bob", "Allow", "Literal")}
    wait_for(lambda: produce_one(broker.sasl_addr, topic, as_user("bob"), 5) is None, 30, "bob may write")
    assert "deleted 2 ACL(s)" in kfdb_acl("delete", "--topic", topic, "--principal", "User:bob")
    assert json.loads(kfdb_acl("list", "--topic", topic, "--format", "json")) == []
