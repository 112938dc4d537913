import os
import socket
import subprocess
import sys

import mlflow
import psutil
import pytest
from mlflow import MlflowClient

from pipeline.errors import PipelineError
from pipeline.models import epoch_metrics
from pipeline.tracking import (
    EXECUTION_ENV,
    HOST_TAG,
    PID_TAG,
    STARTED_TAG,
    execution_id,
    experiment_id,
    find_variant_run,
    reap_dead_runs,
    run_name,
    run_tags,
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


def test_an_experiment_made_on_a_local_store_keeps_artifacts_under_the_root(tracking_uri, tmp_path):
    root = tmp_path / "repo"
    experiment = MlflowClient().get_experiment(experiment_id("tests", root))
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    with tracked_run(experiment.experiment_id, "variant", {"variant": "v"}) as run:
        mlflow.log_metric("x", 1.0)
    finished = MlflowClient().get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.info.artifact_uri.startswith((root / "mlartifacts").as_uri())


def test_an_existing_experiment_opens_on_its_runs_list(tracking_uri, tmp_path):
    made = MlflowClient().create_experiment("older")
    assert experiment_id("older", tmp_path) == made
    assert MlflowClient().get_experiment(made).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )


def test_runs_under_dvc_exp_run_carry_the_experiment_s_name_and_baseline(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1a2b3")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    tags = run_tags("bilstm", "digest")
    assert tags["dvc.exp_name"] == "exp-1a2b3" and tags["dvc.baseline_rev"] == "abc123"
    assert run_name("bilstm") == "bilstm@exp-1a2b3"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert run_name("bilstm") == "bilstm" and "dvc.exp_name" not in run_tags("bilstm", "d")


def _running_run(experiment: str, tags: dict) -> str:
    return MlflowClient().create_run(experiment, tags=tags).info.run_id


def test_runs_whose_process_is_gone_are_marked_killed(tracking_uri, tmp_path):
    experiment = experiment_id("tests", tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = repr(psutil.Process(gone.pid).create_time())
    gone.wait()
    host = socket.gethostname()
    me = {
        HOST_TAG: host,
        PID_TAG: str(os.getpid()),
        STARTED_TAG: repr(psutil.Process().create_time()),
    }
    dead = _running_run(experiment, {**me, PID_TAG: str(gone.pid), STARTED_TAG: started})
    alive = _running_run(experiment, me)
    elsewhere = _running_run(experiment, {**me, HOST_TAG: "another-host", PID_TAG: "1"})
    assert reap_dead_runs(experiment) == [dead]
    status = {run: MlflowClient().get_run(run).info.status for run in (dead, alive, elsewhere)}
    assert status == {dead: "KILLED", alive: "RUNNING", elsewhere: "RUNNING"}


def test_under_mlflow_run_its_run_is_used_even_outside_the_project_s_experiment(
    tracking_uri, tmp_path, monkeypatch, capsys
):
    client = MlflowClient()
    project_run = client.create_run("0").info.run_id  # what `mlflow run` makes in Default
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    experiment = experiment_id("tests", tmp_path)
    with tracked_run(experiment, "variant", {"variant": "v"}) as run:
        pass
    assert run.info.run_id == project_run
    assert client.search_runs([experiment]) == []  # no second run
    assert "--experiment-name" in capsys.readouterr().err


def test_under_mlflow_run_with_an_experiment_its_run_is_used(tracking_uri, tmp_path, monkeypatch):
    chosen = experiment_id("chosen", tmp_path)
    project_run = MlflowClient().create_run(chosen).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    with tracked_run(experiment_id("tests", tmp_path), "variant", {"variant": "v"}) as run:
        pass
    assert run.info.run_id == project_run
    assert MlflowClient().get_run(project_run).info.run_name == "variant"


@pytest.mark.slow
def test_a_model_without_its_run_names_the_store_and_the_way_out(tracking_uri, tmp_path):
    experiment = experiment_id("tests", tmp_path)
    with pytest.raises(PipelineError, match=r"variant 'bilstm'.*dvc repro --force train@bilstm"):
        find_variant_run(experiment, "bilstm", "0" * 64)
