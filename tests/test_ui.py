"""`ui`: the runs-list URL and the `mlflow ui` command it builds, the one-line errors of a bad
params file (on a real store), and (e2e) a real `mlflow ui` started on loopback, answering,
named by a second `ui` against it as a server, and stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests
from click.testing import CliRunner
from mlflow import MlflowClient

from pipeline.cli import cli
from pipeline.ui import RUNS_VIEW, runs_url, ui_args
from tests.helpers import REPO, clean_env, free_port


def test_the_url_opens_the_experiment_s_runs_list():
    assert runs_url("127.0.0.1", 5005, "3") == (
        "http://127.0.0.1:5005/#/experiments/3?workflowType=machine_learning"
    )
    assert RUNS_VIEW.startswith("?")


def test_mlflow_ui_is_started_on_the_store_host_and_port():
    assert ui_args("sqlite:////x/mlflow.db", "0.0.0.0", 5001) == [
        "mlflow",
        "ui",
        "--backend-store-uri",
        "sqlite:////x/mlflow.db",
        "--host",
        "0.0.0.0",
        "--port",
        "5001",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "params file not found"),
        ("split:\n  seed: 1\n", "has no 'train' section"),
    ],
    ids=["missing", "no-train-section"],
)
def test_a_bad_params_file_is_one_line_and_starts_nothing(tracking_uri, tmp_path, text, message):
    params = tmp_path / "params.yaml"
    if text is not None:
        params.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["ui", "--params", str(params), "--port", "1"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_port_that_is_not_a_number_is_a_usage_error():
    result = CliRunner().invoke(cli, ["ui", "--port", "x"])
    assert result.exit_code == 2 and "'x' is not a valid integer" in result.output


def _answers(url: str, process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return True
        time.sleep(0.5)
    return False


def _stop_group(pid: int) -> list[int]:
    """SIGTERM to the process group `pid` leads, SIGKILL after 60 s; the PIDs still running."""
    group = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([psutil.Process(p) for p in group if psutil.pid_exists(p)], 60)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return [p.pid for p in alive]


@pytest.mark.e2e
def test_the_ui_starts_on_loopback_answers_and_stops_by_pid(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  experiment: ui-check\n", encoding="utf-8")
    port = free_port()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ui = [sys.executable, "-m", "pipeline", "ui", "--params", str(params), "--port", str(port)]
    with (tmp_path / "ui.log").open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            ui,
            cwd=REPO,
            env=clean_env(MLFLOW_TRACKING_URI=store),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # mlflow ui's uvicorn workers join its process group
        )
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("runs of the project's experiment: http://127.0.0.1:")
        url = first.split(": ", 1)[1]
        assert url == runs_url("127.0.0.1", port, url.split("/experiments/")[1].split("?")[0])
        assert _answers(f"http://127.0.0.1:{port}/health", process, 240), (
            tmp_path / "ui.log"
        ).read_text(encoding="utf-8")[-3000:]
        assert requests.get(url, timeout=10).status_code == 200
        # The same command against a tracking server names the server's own UI and starts none.
        server = f"http://127.0.0.1:{port}"
        named = subprocess.run(
            ui,
            cwd=REPO,
            env=clean_env(MLFLOW_TRACKING_URI=server),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert named.returncode == 0, named.stderr[-2000:]
        assert named.stdout.strip() == (
            f"runs of the project's experiment: {server}/#/experiments/"
            f"{url.split('/experiments/')[1]}"
        )
    finally:
        left = _stop_group(process.pid)
    assert left == [] and process.poll() is not None
    experiment = url.split("/experiments/")[1].removesuffix(RUNS_VIEW)
    created = MlflowClient(store).get_experiment_by_name("ui-check")
    assert created is not None and created.experiment_id == experiment
