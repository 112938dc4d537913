"""`serve`'s workers and what the parent prepares for them (pipeline/serve/workers.py): a model
that does not load, a model that cannot be fetched (a port in use: test_serve_command.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.serve.workers import one_line
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


def serve_error(model: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "-m", model, "--port", "0"],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    return result.stderr.strip().splitlines()


@pytest.mark.slow
def test_a_folder_that_is_not_a_model_is_refused_before_anything_is_copied(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"x" * 1000)
    assert serve_error(str(folder), tmp_path) == [
        f"error: cannot load model {folder}: {folder} is not an MLflow model (no MLmodel)"
    ]
    assert serve_error(f"file://{folder}", tmp_path)[0].endswith("(no MLmodel)")


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("/nonexistent/folder", "/nonexistent/folder does not exist"),
        ("missing-relative", "missing-relative does not exist"),
    ],
)
@pytest.mark.slow
def test_a_path_that_does_not_exist_is_named_in_full(tmp_path, model, problem):
    assert serve_error(model, tmp_path) == [f"error: cannot load model {model}: {problem}"]


@pytest.mark.slow
def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "MLmodel.txt").write_text("x", encoding="utf-8")
    assert serve_error("MLmodel.txt", tmp_path) == [
        "error: cannot load model MLmodel.txt: MLmodel.txt is a file, not a model folder"
    ]


def test_mlflow_s_multi_line_errors_are_kept_whole_on_one_line():
    message = (
        "The following failures occurred while downloading one or more artifacts from "
        "/nonexistent:\n##### File folder #####\nNo such artifact: 'folder'"
    )
    assert one_line(message) == (
        "The following failures occurred while downloading one or more artifacts from "
        "/nonexistent: File folder; No such artifact: 'folder'"
    )
    assert len(one_line("x" * 2000)) == 500
