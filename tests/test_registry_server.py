"""Concurrent evaluations against the real team setup: PostgreSQL and `mlflow server`, started by
`python -m pipeline tracking-server`; two evaluations at once end with the better model as
champion."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline import model_versions
from tests.helpers import REPO, clean_env, make_lab

pytestmark = pytest.mark.e2e
ROUNDS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_cli(*args: str):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "tracking-server", *args],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def server():
    parent = Path(tempfile.mkdtemp(prefix="registry-server-"))
    parent.chmod(0o711)  # PostgreSQL runs as the postgres OS user when we are root
    folder = parent / "srv"
    port = _free_port()
    started = _server_cli(
        "start", "--dir", str(folder), "--port", str(port), "--pg-port", str(_free_port())
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _server_cli("stop", "--dir", str(folder))
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(server, tmp_path_factory):
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server
    mlflow.set_tracking_uri(server)
    try:
        yield make_lab(tmp_path_factory.mktemp("lab"))
    finally:
        mlflow.set_tracking_uri(None)
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_evaluations_at_once_end_with_the_better_model_as_champion(lab, round_):
    name = f"concurrent-{round_}"
    lab.evaluate(name, "bad")
    start = threading.Barrier(2)
    outcomes, errors = {}, []

    def evaluate(kind):
        try:
            start.wait()
            outcomes[kind] = lab.evaluate(name, kind)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(kind,)) for kind in ("medium", "good")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    client = MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["variant"] == "good"
    assert str(champion.version) == outcomes["good"].version
    medium = client.get_model_version(name, outcomes["medium"].version)
    assert medium.tags["decision"] in ("kept as challenger", "replaced")
    lock = f"{name}{model_versions.LOCK_SUFFIX}"
    assert not client.search_registered_models(f"name = '{lock}'")
