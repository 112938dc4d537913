import json
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests
from mlflow import MlflowClient

from pipeline.evaluate import TABLE_COLUMNS
from pipeline.ui import (
    LEADERBOARD_METRICS,
    VIEW_KEY,
    VIEW_TAG_PREFIX,
    leaderboard_view,
    ui_args,
    ui_env,
)
from tests.helpers import REPO, clean_env

STARTUP_SECONDS = 120


def test_the_saved_view_shows_the_leaderboards_metrics_best_first():
    view = leaderboard_view()
    shown = [c for c in TABLE_COLUMNS if c.startswith(("val_", "test_")) and "log_loss" not in c]
    assert [f"metrics.`{m}`" for m in shown] == view["selectedColumns"][1 : len(shown) + 1]
    assert set(shown) <= set(LEADERBOARD_METRICS)
    assert view["orderByKey"] == "metrics.`val_accuracy`" and view["orderByAsc"] is False


def test_one_worker_and_no_job_runner_unless_asked(monkeypatch):
    args = ui_args("sqlite:///x.db", "127.0.0.1", 5001)
    assert args[args.index("--workers") + 1] == "1"
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert ui_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert ui_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def _project(tmp_path):
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_ui_is_light_and_opens_on_the_saved_view(tmp_path):
    project, port = _project(tmp_path), _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        cwd=project,
        env=clean_env(PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        address = process.stdout.readline() + process.stdout.readline()
        assert "1 worker, no job runner" in address
        assert f"http://127.0.0.1:{port}/#/experiments/1?" in address
        assert f"viewStateShareKey={VIEW_KEY}" in address
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        else:
            pytest.fail("the UI did not answer /health")
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        commands = [" ".join(p.cmdline()) for p in tree]
        assert sum("uvicorn" in c for c in commands) == 1, commands
        assert not any("huey" in c for c in commands), commands
        rss_mb = sum(p.memory_info().rss for p in tree) / 2**20
        assert rss_mb < 1500, rss_mb  # MLflow's defaults start 4 workers and a job runner
        tags = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_experiment("1").tags
        assert json.loads(tags[VIEW_TAG_PREFIX + VIEW_KEY]) == leaderboard_view()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.slow
def test_ui_without_a_train_section_is_one_line(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("data: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(_free_port())],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "has no 'train' section" in result.stderr and "Traceback" not in result.stderr
