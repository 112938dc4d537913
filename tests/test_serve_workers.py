"""`serve`'s workers and what the parent prepares for them (pipeline/serve/workers.py): a model
that does not load, a model that cannot be fetched, a port in use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import clean_env

CHAMPION = "models:/korean-sentiment@champion"


@pytest.mark.e2e
def test_a_model_that_does_not_load_stops_the_server(sample_repo, servers, tmp_path):
    model = tmp_path / "model"
    env = {**clean_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{sample_repo / 'mlflow.db'}"}
    script = (
        f"import mlflow; mlflow.artifacts.download_artifacts({CHAMPION!r}, dst_path={str(model)!r})"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    for bundle in (model / "artifacts").glob("*/bundle.json"):
        bundle.write_text("{not json", encoding="utf-8")
    command = [sys.executable, "-m", "pipeline", "serve", "-m", str(model), "--port", "0"]
    with servers.start(command, sample_repo) as (process, log):
        assert process.wait(timeout=300) == 1
        log.wait_for(r"^error: worker 0 exited with code 1 before it had loaded the model", 5)
        time.sleep(2)
        assert not servers.session(process.pid)


@pytest.mark.e2e
def test_an_unknown_model_is_a_one_line_error(sample_repo, servers):
    command = servers.serve_command()
    command[command.index(CHAMPION)] = "models:/korean-sentiment@nope"
    with servers.start(command, sample_repo) as (process, log):
        assert process.wait(timeout=120) == 1
        log.wait_for(r"^error: cannot load model models:/korean-sentiment@nope: .*alias nope", 5)
        assert "Traceback" not in log.text()


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "serve", "-m", CHAMPION, "--port", str(port)],
            cwd=Path(__file__).resolve().parents[1],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
