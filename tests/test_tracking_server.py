"""`tracking-server`: the real PostgreSQL and the real `mlflow server`, started by the command in a
temporary folder, with the pipeline run against them; and the one-line errors of a tracking
server (or database) that cannot be reached, a wrong URI, a port in use, nothing to stop."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.mlflow_server import mlflow_pid
from pipeline.postgres import postgres_pid
from pipeline.project import copy_project
from pipeline.server_state import Layout, port_open
from tests.helpers import REPO, clean_env, free_port, sh

MODEL = "korean-sentiment"
CHAMPION = f"models:/{MODEL}@champion"
VARIANTS = {"notebook", "tfidf"}
SERVE = ["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
TRAIN = [sys.executable, "-m", "pipeline", "train", "--variant", "notebook"]
TRAIN_INPUTS = ["--data-dir", "data/split", "--data-report", "reports/data.json"]
TRAIN_OUTPUTS = ["--model-dir", "outputs/unreachable", "--reports-dir", "outputs/reports"]
PREDICT = [sys.executable, "-m", "pipeline", "predict", "--model", CHAMPION]


@contextlib.contextmanager
def _listening() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _server_cli(*args: str, env=None, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "tracking-server", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()  # TensorFlow's and MLflow's import noise first
    assert lines[-1].startswith("error: "), result.stderr
    assert [line for line in lines if line.startswith("error")] == lines[-1:], result.stderr
    return lines[-1]


# --- command errors that need no running server ------------------------------------------------


@pytest.mark.slow
def test_predict_against_a_closed_port_fails_in_one_line(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("재밌다\n", encoding="utf-8")
    uri = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*PREDICT, "--input", str(texts), "--output", str(tmp_path / "out.csv")],
        cwd=REPO,  # this checkout's pipeline/, not an installed one
        env=clean_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"tracking server {uri} is unreachable" in _one_line_error(result)
    assert not (tmp_path / "out.csv").exists()


def test_stop_when_nothing_runs_is_an_error(tmp_path):
    result = CliRunner().invoke(cli, ["tracking-server", "stop", "--dir", str(tmp_path / "srv")])
    assert result.exit_code == 1
    assert "no tracking server is running" in result.output and "nothing to stop" in result.output
    status = CliRunner().invoke(cli, ["tracking-server", "status", "--dir", str(tmp_path / "srv")])
    assert status.exit_code == 0
    assert "PostgreSQL: stopped" in status.output and "MLflow server: stopped" in status.output


@pytest.mark.parametrize("busy", ["--port", "--pg-port"])
def test_a_port_in_use_is_one_error_and_creates_nothing(tmp_path, busy):
    folder = tmp_path / "srv"
    with _listening() as port:
        ports = {"--port": str(free_port()), "--pg-port": str(free_port()), busy: str(port)}
        args = [part for option in ports.items() for part in option]
        result = _server_cli("start", "--dir", str(folder), *args)
    line = _one_line_error(result)
    assert f"port {port} on 127.0.0.1 is already in use" in line and busy in line
    assert not folder.exists()


def test_a_missing_initdb_is_one_error(tmp_path):
    bare = tmp_path / "bin"  # a PATH with python but no PostgreSQL
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {**clean_env(), "PATH": str(bare)}
    result = _server_cli("start", "--dir", str(tmp_path / "srv"), env=env)
    assert "initdb not found on PATH" in _one_line_error(result)
    assert not (tmp_path / "srv").exists()


def _reachable_folder() -> Path:
    """A folder the postgres OS user can go through (as root, PostgreSQL runs as that user;
    pytest's own temporary folders are private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="tracking-server-"))
    parent.chmod(0o711)
    return parent


@pytest.mark.slow
def test_an_mlflow_that_exits_while_starting_leaves_nothing_running(tmp_path):
    """A real PostgreSQL; an `mlflow` package first on PYTHONPATH whose `python -m mlflow` exits
    at once (the command itself imports no MLflow)."""
    broken = tmp_path / "broken" / "mlflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("")
    (broken / "__main__.py").write_text("raise SystemExit('cannot start')\n")
    parent = _reachable_folder()
    try:
        folder = parent / "srv"
        env = clean_env(PYTHONPATH=f"{tmp_path / 'broken'}{os.pathsep}{REPO}")
        ports = ["--port", str(free_port()), "--pg-port", str(free_port())]
        line = _one_line_error(_server_cli("start", "--dir", str(folder), *ports, env=env))
        assert "the MLflow server exited while starting" in line
        assert str(folder / "mlflow.log") in line
        assert "cannot start" in (folder / "mlflow.log").read_text()
        layout = Layout(folder)
        assert postgres_pid(layout) is None and mlflow_pid(layout) is None
        assert not layout.mlflow_pid_file.exists() and not layout.state_file.exists()
    finally:
        if postgres_pid(Layout(parent / "srv")):
            _server_cli("stop", "--dir", str(parent / "srv"))
        shutil.rmtree(parent, ignore_errors=True)


# --- the real servers, and the pipeline against them -------------------------------------------


@pytest.fixture(scope="module")
def server_dir():
    """The state folder, where the postgres OS user can reach it."""
    parent = _reachable_folder()
    yield parent / "srv"
    layout = Layout(parent / "srv")
    if postgres_pid(layout) or mlflow_pid(layout):  # a test failed before stopping them
        _server_cli("stop", "--dir", str(layout.root))
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def server(server_dir):
    port, pg_port = free_port(), free_port()
    args = ["--dir", str(server_dir), "--port", str(port), "--pg-port", str(pg_port)]
    started = _server_cli("start", *args, "--workers", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"http://127.0.0.1:{port}"
    assert started.stdout.strip().splitlines()[-1] == f"export MLFLOW_TRACKING_URI={url}"
    again = _server_cli("start", *args)
    assert again.returncode == 0 and "already running" in again.stdout
    return {"url": url, "port": port, "pg_port": pg_port, "dir": server_dir}


@pytest.fixture(scope="module")
def project(server, tmp_path_factory) -> Path:
    """A fresh project copy with two variants and no ensemble, reproduced against the server."""
    root = tmp_path_factory.mktemp("team") / "repo"
    copy_project(REPO, root)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["tokenize"]["tokenizers"] = {"space": params["tokenize"]["tokenizers"]["space"]}
    variants = params["train"]["variants"]
    params["train"]["variants"] = {v: variants[v] for v in sorted(VARIANTS)}
    params["train"]["variants"]["notebook"]["epochs"] = 2
    params["evaluate"]["ensemble"]["members"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), "utf-8")
    sh(["dvc", "repro"], root, env=clean_env(MLFLOW_TRACKING_URI=server["url"]))
    return root


@pytest.fixture(scope="module")
def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server["url"])


@pytest.mark.e2e
def test_every_variant_is_a_finished_run_with_proxied_artifacts(project, client, server):
    experiment = client.get_experiment_by_name("korean-sentiment")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == VARIANTS
    for run in runs.values():
        assert run.info.status == "FINISHED"
        assert {"val_accuracy", "test_accuracy", "train_seconds"} <= set(run.data.metrics)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        assert "learning_curves.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    models = client.search_logged_models([experiment.experiment_id])
    assert {m.source_run_id for m in models} == {r.info.run_id for r in runs.values()}
    assert all(m.artifact_location.startswith("mlflow-artifacts:") for m in models)
    # Nothing of the tracking lands in the project; everything is in the server's folder.
    assert not (project / "mlflow.db").exists() and not (project / "mlartifacts").exists()
    assert list((server["dir"] / "artifacts").rglob("MLmodel"))


@pytest.mark.e2e
def test_the_champion_is_registered_with_a_proxied_source(project, client):
    champion = client.get_model_version_by_alias(MODEL, "champion")
    chosen = json.loads((project / "reports/evaluate/champion.json").read_text())
    assert champion.tags["variant"] == chosen["variant"] and int(champion.version) == 1
    assert client.get_model_version_download_uri(MODEL, champion.version).startswith(
        "mlflow-artifacts:"
    )


@pytest.mark.e2e
def test_predict_and_models_serve_load_the_champion_through_the_server(project, server, tmp_path):
    env = clean_env(MLFLOW_TRACKING_URI=server["url"])
    texts = tmp_path / "reviews.txt"
    texts.write_text("정말 감동적이고 훌륭한 영화\n지루하고 별로였어 다시 안봐\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    sh([*PREDICT, "--input", str(texts), "--output", str(out)], project, env=env)
    assert out.read_text(encoding="utf-8").splitlines()[0] == "text,label,sentiment,probability"

    port = free_port()
    process = subprocess.Popen(
        [*SERVE, "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail("mlflow models serve exited")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not come up")
        response = requests.post(f"{url}/invocations", json={"inputs": ["최고의 영화"]}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["sentiment"] in ("positive", "negative")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.e2e
def test_train_against_a_closed_port_fails_in_one_line_and_starts_no_run(project, client):
    uri = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*TRAIN, *TRAIN_INPUTS, *TRAIN_OUTPUTS],
        cwd=project,
        env=clean_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"tracking server {uri} is unreachable" in _one_line_error(result)
    assert not (project / "outputs").exists()
    experiment = client.get_experiment_by_name("korean-sentiment").experiment_id
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")


@pytest.mark.e2e
def test_stop_stops_both_and_a_broken_cluster_is_one_error(server):
    folder = server["dir"]
    mlflow_pid = int((folder / "mlflow.pid").read_text())
    pg_pid = int((folder / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    stopped = _server_cli("stop", "--dir", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert not _alive(mlflow_pid) and not _alive(pg_pid)
    assert not port_open(server["port"]) and not port_open(server["pg_port"])
    assert "stopped" in _server_cli("status", "--dir", str(folder)).stdout
    assert "nothing to stop" in _one_line_error(_server_cli("stop", "--dir", str(folder)))

    conf = folder / "pgdata" / "postgresql.conf"
    original = conf.read_text(encoding="utf-8")
    conf.write_text(original + "\nno_such_setting = 1\n", encoding="utf-8")
    try:
        ports = ["--port", str(free_port()), "--pg-port", str(free_port())]
        line = _one_line_error(_server_cli("start", "--dir", str(folder), *ports))
        assert "PostgreSQL failed to start" in line and str(folder / "postgres.log") in line
        assert not (folder / "mlflow.pid").exists()
    finally:
        conf.write_text(original, encoding="utf-8")
