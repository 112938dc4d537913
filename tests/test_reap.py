import socket
import subprocess
import sys

import psutil
from click.testing import CliRunner
from mlflow import MlflowClient

from pipeline.cli import cli
from pipeline.tracking import HOST_TAG, PID_TAG, STARTED_TAG, experiment_id
from pipeline.tracking_uri import may_hold_running_runs

NOTHING = "no run left RUNNING by a process that is gone\n"


def _dead_process_tags() -> dict[str, str]:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = repr(psutil.Process(gone.pid).create_time())
    gone.wait()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(gone.pid), STARTED_TAG: started}


def _my_tags() -> dict[str, str]:
    me = psutil.Process()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        STARTED_TAG: repr(me.create_time()),
    }


def _reap(root, monkeypatch):
    (root / "dvc.yaml").touch()  # the project root
    monkeypatch.chdir(root)
    return CliRunner().invoke(cli, ["reap"])


def test_without_a_store_nothing_is_reaped_and_no_store_is_created(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = _reap(tmp_path, monkeypatch)
    assert result.exit_code == 0 and result.stdout == NOTHING
    assert not (tmp_path / "mlflow.db").exists()


def test_dead_runs_of_every_experiment_are_killed_live_ones_kept(
    tracking_uri, tmp_path, monkeypatch
):
    client = MlflowClient()
    dead = [
        client.create_run(experiment_id(name, tmp_path), tags=_dead_process_tags()).info.run_id
        for name in ("korean-sentiment", "mlproject-check")
    ]
    alive = client.create_run(experiment_id("korean-sentiment", tmp_path), tags=_my_tags())
    result = _reap(tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("marked KILLED 2 run(s) whose process was gone: ")
    assert set(result.stdout.split(": ")[1].strip().split(", ")) == set(dead)
    assert {client.get_run(run).info.status for run in dead} == {"KILLED"}
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    client.set_terminated(alive.info.run_id)
    assert not may_hold_running_runs(tracking_uri)  # the next reap stays out of MLflow
    assert _reap(tmp_path, monkeypatch).stdout == NOTHING


def test_an_unreachable_store_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    result = _reap(tmp_path, monkeypatch)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: no run was reaped: tracking server http://127.0.0.1:")


def test_which_stores_may_hold_running_runs(tracking_uri, tmp_path):
    assert not may_hold_running_runs(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()
    assert may_hold_running_runs("http://127.0.0.1:5000")  # only MLflow can tell
    not_mlflow = tmp_path / "other.db"
    not_mlflow.write_bytes(b"not a database")
    assert may_hold_running_runs(f"sqlite:///{not_mlflow}")
    run = MlflowClient().create_run(experiment_id("e", tmp_path)).info.run_id
    assert may_hold_running_runs(tracking_uri)
    MlflowClient().set_terminated(run)
    assert not may_hold_running_runs(tracking_uri)
