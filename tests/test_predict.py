import socket
import subprocess
import sys

import mlflow
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.tracking_uri import HTTP_DEFAULTS
from tests.helpers import REPO, clean_env

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real SQLite tracking store, empty but for one registered model without versions or
    aliases; shared by this module's tests, which only read it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    mlflow.MlflowClient(uri, uri).create_registered_model("korean-sentiment")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("정말 재밌다\n지루하다\n", encoding="utf-8")
    return path


def predict(model: str, texts, output):
    args = ["predict", "--model", model, "--input", str(texts), "--output", str(output)]
    return CliRunner().invoke(cli, args)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("models:/no-such-model@champion", "Registered Model with name=no-such-model not found"),
        ("models:/korean-sentiment@champion", "Registered model alias champion not found"),
        (
            "models:/korean-sentiment/3",
            "Model Version (name=korean-sentiment, version=3) not found",
        ),
        (f"runs:/{RUN_ID}/model", f"Run with id={RUN_ID} not found"),
        (f"models:/m-{RUN_ID}", f"Logged model with ID 'm-{RUN_ID}' not found"),
    ],
)
def test_unknown_model_uri_is_one_line(store, texts, tmp_path, model, reason):
    output = tmp_path / "scored.csv"
    line = one_error_line(predict(model, texts, output))
    assert line == f"error: cannot load model {model!r}: {reason} (tracking store {store})"
    assert not output.exists()


def test_name_that_is_neither_a_folder_nor_a_uri(store, texts, tmp_path):
    line = one_error_line(predict("models/no-such-variant", texts, tmp_path / "scored.csv"))
    assert line.startswith(
        "error: model 'models/no-such-variant' is neither a folder nor a model URI; "
        "expected models:/<name>@<alias>"
    )


def test_folder_that_is_neither_a_bundle_nor_a_model(store, texts, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    line = one_error_line(predict(str(folder), texts, tmp_path / "scored.csv"))
    assert line == (
        f"error: model {str(folder)!r} is a folder with neither bundle.json (a bundle) "
        "nor MLmodel (an MLflow model)"
    )


def test_missing_sqlite_store_is_not_created(tmp_path, texts, monkeypatch):
    db = tmp_path / "nowhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    line = one_error_line(predict("models:/korean-sentiment@champion", texts, tmp_path / "o.csv"))
    assert line == (
        "error: cannot load model 'models:/korean-sentiment@champion': the tracking store "
        f"{db} does not exist (run the pipeline first, or set MLFLOW_TRACKING_URI)"
    )
    assert not db.parent.exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(model: str, texts, output, tracking_uri: str):
    env = {
        k: v
        for k, v in clean_env(MLFLOW_TRACKING_URI=tracking_uri).items()
        if k not in HTTP_DEFAULTS
    }
    args = ["predict", "--model", model, "--input", str(texts), "--output", str(output)]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,  # MLflow's own retries would take about four minutes
    )


def test_unreachable_tracking_server_is_one_line_through_the_cli(texts, tmp_path):
    server = f"http://127.0.0.1:{closed_port()}"
    result = run_cli("models:/korean-sentiment@champion", texts, tmp_path / "o.csv", server)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: tracking server {server} is unreachable")
    assert not (tmp_path / "o.csv").exists()


def test_unknown_model_is_one_line_through_the_cli(store, texts, tmp_path):
    result = run_cli("models:/no-such-model@champion", texts, tmp_path / "o.csv", store)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: cannot load model 'models:/no-such-model@champion': Registered Model with "
        f"name=no-such-model not found (tracking store {store})"
    ]


def test_credentials_in_the_server_uri_are_not_shown(texts, tmp_path, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://reader:s3cret@127.0.0.1:{port}")
    for key in HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    line = one_error_line(predict(f"runs:/{RUN_ID}/model", texts, tmp_path / "o.csv"))
    assert f"tracking server http://127.0.0.1:{port} is unreachable" in line
    assert "s3cret" not in line and "reader" not in line
