"""What the tracking store and DVC record, from every entry point, on the reproduced sample
project: artifacts in one place, DVC experiments linked to their runs, a stable dvc.lock, stage
dependencies that follow the imports, and a run left RUNNING by a killed process found."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.helpers import ALWAYS_CHANGED, REPO, clean_env, sh, stages_run, stale_stages

pytestmark = pytest.mark.e2e

EXPERIMENT = "korean-sentiment"
TRAIN_NOTEBOOK = [
    "train",
    "--variant",
    "notebook",
    "--data-dir",
    "data/split",
    "--data-report",
    "reports/data.json",
]

ONE_EPOCH = ["-S", "train.variants.notebook.epochs=1"]
ONE, LONG = ["--overrides", "epochs=1"], ["--overrides", "epochs=500 patience=500"]


def outputs(tmp_path: Path) -> list[str]:
    return ["--model-dir", str(tmp_path / "out"), "--reports-dir", str(tmp_path / "reports")]


def fresh_copy(repo: Path, dest: Path) -> Path:
    """The reproduced project, its DVC cache included, with an empty tracking store."""
    shutil.copytree(repo, dest, symlinks=True)
    for name in ("mlflow.db", "mlartifacts", "mlruns"):
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    return dest


def store(root: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{root / 'mlflow.db'}")


def only_run(client: MlflowClient, query: str = ""):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, "the project's experiment was not created"
    runs = client.search_runs([experiment.experiment_id], query)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return experiment, runs[0]


def assert_artifacts_under(root: Path, experiment, run) -> None:
    location = (root / "mlartifacts").resolve().as_uri()
    assert experiment.artifact_location == location
    assert run.info.artifact_uri.startswith(location + "/")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_first_run_from_dvc_exp_run_temp_keeps_artifacts_in_the_repo(sample_repo, tmp_path):
    root = fresh_copy(sample_repo, tmp_path / "repo")
    sh(
        ["dvc", "exp", "run", "--temp", "-S", "train.variants.notebook.epochs=1", "train@notebook"],
        root,
    )
    experiment, run = only_run(store(root))
    assert_artifacts_under(root, experiment, run)
    exp_name = run.data.tags["dvc.exp_name"]
    assert run.info.run_name == f"notebook@{exp_name}"
    assert (
        run.data.tags["dvc.baseline_rev"] == sh(["git", "rev-parse", "HEAD"], root).stdout.strip()
    )
    assert exp_name in sh(["dvc", "exp", "show", "--no-pager", "--csv"], root).stdout
    assert not list((root / ".dvc" / "tmp").rglob("mlflow.db"))


def test_first_run_from_the_dvc_queue_keeps_artifacts_in_the_repo(sample_repo, tmp_path):
    root = fresh_copy(sample_repo, tmp_path / "repo")
    sh(
        [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-S",
            "train.variants.notebook.epochs=1",
            "train@notebook",
        ],
        root,
    )
    sh(["dvc", "exp", "run", "--run-all"], root)
    experiment, run = only_run(store(root))
    assert_artifacts_under(root, experiment, run)
    assert run.data.tags["dvc.exp_name"]


PROJECT_EXPERIMENT = ["--experiment-name", "korean-sentiment"]


def test_mlflow_run_logs_into_its_own_run_in_the_project_s_experiment(sample_repo, tmp_path):
    root = fresh_copy(sample_repo, tmp_path / "repo")
    entry = ["-e", "train", "-P", "variant=notebook", "-P", "overrides=epochs=1"]
    sh(["mlflow", "run", ".", *entry, "--env-manager", "local", *PROJECT_EXPERIMENT], root)
    client = store(root)
    experiment, run = only_run(client)
    # `mlflow run` made the experiment before the project's code ran: MLflow's artifact root,
    # ./mlruns in the repository (git-ignored), not ./mlartifacts
    assert experiment.artifact_location == str(root.resolve() / "mlruns" / experiment.experiment_id)
    assert run.data.tags["mlflow.project.entryPoint"] == "train"  # the run `mlflow run` made
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "1"
    assert client.search_runs(["0"]) == []  # nothing left in Default


def test_first_run_from_a_subfolder_uses_the_repo_s_store(sample_repo, tmp_path):
    root = fresh_copy(sample_repo, tmp_path / "repo")
    args = [a if not a.startswith(("data/", "reports/")) else f"../{a}" for a in TRAIN_NOTEBOOK]
    args += ["--params", "../params.yaml", *ONE, *outputs(tmp_path)]
    sh(
        [sys.executable, "-m", "pipeline", *args],
        root / "tests",
        env=clean_env(PYTHONPATH=str(root)),
    )
    experiment, run = only_run(store(root))
    assert_artifacts_under(root, experiment, run)
    assert not (root / "tests" / "mlflow.db").exists()
    assert not (root / "tests" / "mlruns").exists()


def test_a_forced_rerun_changes_nothing_in_dvc_lock(sample_repo):
    before = (sample_repo / "dvc.lock").read_text(encoding="utf-8")
    sh(["dvc", "repro", "--force", "--single-item", "train@base", "train@tfidf"], sample_repo)
    sh(["dvc", "repro", "--force", "--single-item", "evaluate"], sample_repo)
    assert (sample_repo / "dvc.lock").read_text(encoding="utf-8") == before
    assert stale_stages(sample_repo) == set()


def test_a_change_to_the_registry_module_reruns_evaluate_only(sample_repo):
    module = sample_repo / "pipeline" / "registry.py"
    original = module.read_text(encoding="utf-8")
    try:
        module.write_text(original + "# how the champion is promoted changed\n", encoding="utf-8")
        assert stale_stages(sample_repo) == {"evaluate"}
    finally:
        module.write_text(original, encoding="utf-8")


def test_dvc_metrics_diff_against_the_last_commit(sample_repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    sh(["git", "add", "-A"], root)
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    # --allow-empty: a reproduced sample leaves dvc.lock and summary.json as committed
    sh(["git", *identity, "commit", "--allow-empty", "-qm", "reproduced"], root)
    assert sh(["git", "ls-files", "reports/evaluate/summary.json"], root).stdout.strip()
    result = sh(["dvc", "metrics", "diff", "HEAD~1", "--all", "--json"], root)
    assert "reports/evaluate/summary.json" in json.loads(result.stdout)


def _wait_for_epochs(client: MlflowClient, query: str, timeout: float = 300):
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = client.search_runs([experiment], query)
        if runs and client.get_metric_history(runs[0].info.run_id, "epoch/val_loss"):
            return runs[0]
        time.sleep(1)
    pytest.fail("training did not start")


def test_sigterm_to_dvc_repro_stops_training_and_nothing_is_written_after(sample_repo, tmp_path):
    import psutil

    from pipeline.bundle import digest

    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    model_before = digest(root / "models" / "notebook")
    params = root / "params.yaml"
    text = params.read_text(encoding="utf-8")
    for key in ("epochs", "patience"):  # the notebook variant's, the only 12s
        text = text.replace(f"      {key}: 12\n", f"      {key}: 500\n")
    params.write_text(text, encoding="utf-8")
    dvc = subprocess.Popen(
        ["dvc", "repro", "train@notebook"],
        cwd=root,
        env=clean_env(PIPELINE_EXECUTION_ID="sigterm-dvc"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = _wait_for_epochs(store(root), "tags.`pipeline.execution_id` = 'sigterm-dvc'")
        trainer = psutil.Process(int(run.data.tags["pipeline.pid"]))
        dvc.send_signal(signal.SIGTERM)
        dvc.wait(timeout=60)
        trainer.wait(timeout=30)  # gone within seconds of dvc, not after training finished
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)
    assert store(root).get_run(run.info.run_id).info.status == "KILLED"
    model = root / "models" / "notebook"
    assert not model.exists()  # DVC removes a stage's outputs before running it
    time.sleep(3)
    assert not model.exists()  # and nothing wrote them after it returned
    sh(["dvc", "checkout", "train@notebook"], root)  # dvc.lock still names the old model
    assert digest(model) == model_before


def test_a_run_whose_process_was_killed_is_marked_killed_by_the_next_command(sample_repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    trainer = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *TRAIN_NOTEBOOK, *outputs(tmp_path), *LONG],
        cwd=root,
        env=clean_env(PIPELINE_EXECUTION_ID="kill-9"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = store(root)
    run = _wait_for_epochs(client, "tags.`pipeline.execution_id` = 'kill-9'")
    trainer.kill()
    trainer.wait(timeout=30)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    sh(
        [sys.executable, "-m", "pipeline", *TRAIN_NOTEBOOK, *outputs(tmp_path), *ONE],
        root,
    )
    killed = client.get_run(run.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["pipeline.end_reason"] == "its process was gone"


def test_a_killed_training_s_run_is_reaped_by_a_repro_that_restores_its_stage(
    sample_repo, tmp_path
):
    """kill -9 of the training process of `dvc repro`, then a `dvc repro` that runs no training
    (DVC restores the stage from its run cache): the always-changed stage `reap` ends the run."""
    import psutil

    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    params = root / "params.yaml"
    original = params.read_text(encoding="utf-8")
    params.write_text(original.replace("      epochs: 12\n", "      epochs: 500\n"), "utf-8")
    dvc = subprocess.Popen(
        ["dvc", "repro", "train@notebook"],
        cwd=root,
        env=clean_env(PIPELINE_EXECUTION_ID="kill-9-dvc"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = _wait_for_epochs(store(root), "tags.`pipeline.execution_id` = 'kill-9-dvc'")
        psutil.Process(int(run.data.tags["pipeline.pid"])).kill()
        assert dvc.wait(timeout=60) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)
    assert store(root).get_run(run.info.run_id).info.status == "RUNNING"
    params.write_text(original, encoding="utf-8")
    result = sh(["dvc", "repro"], root)
    assert "Stage 'train@notebook' is cached - skipping run" in result.stdout
    assert stages_run(result.stdout) == ALWAYS_CHANGED
    reaped = store(root).get_run(run.info.run_id)
    assert (reaped.info.status, reaped.data.tags["pipeline.end_reason"]) == (
        "KILLED",
        "its process was gone",
    )
    assert f"marked KILLED 1 run(s) whose process was gone: {run.info.run_id}" in result.stdout
    assert not store(root).search_runs(
        [store(root).get_experiment_by_name(EXPERIMENT).experiment_id],
        "attributes.status = 'RUNNING'",
    )


def test_the_reproduced_sample_scores_as_committed(sample_repo):
    for report in ("reports/evaluate/variants.json", "reports/evaluate/summary.json"):
        committed = json.loads((REPO / report).read_text(encoding="utf-8"))
        assert json.loads((sample_repo / report).read_text(encoding="utf-8")) == committed, report
