"""Running the kafkajs scripts of compat-tests/js from the Python tests.

A script prints its outcome as one JSON line prefixed ``RESULT ``; ``run_js`` runs it with the
given environment, fails the test on a non-zero exit or a missing result (with the script's output
attached), and returns the parsed result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"

# Apply to a module (``pytestmark = requires_kafkajs``) or a test.
requires_kafkajs = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (JS_DIR / "node_modules" / "kafkajs").is_dir(), reason="kafkajs not installed (npm ci in compat-tests/js)"
    ),
]


def run_js(script: str, env: dict, timeout: float = 90) -> dict:
    proc = subprocess.run(
        ["node", str(JS_DIR / script)],
        env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    output = f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-6000:]}"
    assert proc.returncode == 0, f"node {script} exited {proc.returncode}\n{output}"
    results = [line[len("RESULT ") :] for line in out.splitlines() if line.startswith("RESULT ")]
    assert results, f"node {script} printed no RESULT line\n{output}"
    return json.loads(results[-1])


def kafkajs_test(test):
    """Skip ``test`` where node or kafkajs is missing (``requires_kafkajs`` for one test)."""
    for mark in requires_kafkajs:
        test = mark(test)
    return test
