from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.models import epoch_metrics
from pipeline.project import repo_root
from pipeline.tracking import (
    EXECUTION_ENV,
    execution_id,
    experiment_id,
    tracked_run,
)


def test_execution_id_from_environment(monkeypatch):
    monkeypatch.setenv(EXECUTION_ENV, "exec-42")
    assert execution_id() == "exec-42"


def test_execution_id_outside_dvc_is_fresh(monkeypatch):
    monkeypatch.delenv(EXECUTION_ENV, raising=False)
    assert execution_id() != execution_id()


def test_epoch_metric_names():
    logs = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "lr": 1.0}
    assert epoch_metrics(logs) == {
        "train_loss": 0.5,
        "train_accuracy": 0.8,
        "val_loss": 0.6,
        "val_accuracy": 0.7,
    }


def _status_after(block, tmp_path) -> str:
    experiment = experiment_id("tests", tmp_path)
    with (
        pytest.raises(BaseException),  # noqa: B017 - re-raised by tracked_run, checked below
        tracked_run(experiment, "variant", {"variant": "v"}),
    ):
        block()
    run = MlflowClient().search_runs([experiment])[0]
    return run.info.status


def test_failed_run_ends_failed(tracking_uri, tmp_path):
    def fail():
        raise ValueError("boom")

    assert _status_after(fail, tmp_path) == "FAILED"
    assert mlflow.active_run() is None


def test_interrupted_run_ends_killed(tracking_uri, tmp_path):
    def interrupt():
        raise KeyboardInterrupt

    assert _status_after(interrupt, tmp_path) == "KILLED"


def test_finished_run_and_artifact_location(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    experiment = experiment_id("tests", tmp_path)
    location = MlflowClient().get_experiment(experiment).artifact_location
    assert location == (tmp_path / "mlartifacts").as_uri()
    with tracked_run(experiment, "variant", {"variant": "v"}) as run:
        mlflow.log_metric("x", 1.0)
    assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"
    assert Path(repo_root()).is_dir()
