"""Certificates for the TLS tests, made with the openssl command line: a CA, a broker certificate for
127.0.0.1 and localhost, a client certificate (subject /C=US/O=kfdb/OU=eng/CN=app1, i.e. Kafka's
principal `User:CN=app1,OU=eng,O=kfdb,C=US`) and a second CA; Kafka's PEM keystore
(broker-keystore.pem: key and chain in one file).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# The principal Kafka's default principal builder (and kfdb) derive from client.pem.
CLIENT_PRINCIPAL = "User:CN=app1,OU=eng,O=kfdb,C=US"


def openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, f"openssl {' '.join(args)}: {proc.stdout.decode()[-2000:]}"


def make_certs(d: Path) -> None:
    """A CA and the broker's certificate (127.0.0.1, localhost) signed by it, a client certificate
    signed by it, and another CA."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN=kfdb-test-{ca}", cwd=d)
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, subject, ext in [
        ("broker", "ca", "/CN=localhost", "broker.ext"),
        ("client", "ca", "/C=US/O=kfdb/OU=eng/CN=app1", "client.ext"),
    ]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    # Kafka's PEM keystore: the key and the certificate chain in one file.
    (d / "broker-keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())
