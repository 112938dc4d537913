"""The whole product on the embedded sample: `dvc repro` in a fresh repository, the MLflow runs,
the registered champion, and a real `mlflow models serve` process answering on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import (
    ALWAYS_CHANGED,
    SAMPLE_EXECUTION,
    clean_env,
    free_port,
    sh,
    stages_run,
    stale_stages,
)

pytestmark = pytest.mark.e2e

MODEL = "korean-sentiment"
CHAMPION = f"models:/{MODEL}@champion"
VARIANTS = ["base", "dropout", "bilstm", "notebook", "tfidf", "tfidf_nb", "tfidf_morph"]
ENSEMBLE = "ensemble"  # params evaluate.ensemble: tfidf_nb + tfidf_morph + bilstm


@pytest.fixture(scope="module")
def repo(sample_repo) -> Path:
    return sample_repo


@pytest.fixture(scope="module")
def client(repo):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def _runs(client, name="korean-sentiment", execution=SAMPLE_EXECUTION):
    """The runs of one pipeline execution (by default the fixture's `dvc repro`), by name."""
    experiment = client.get_experiment_by_name(name)
    query = f"tags.`pipeline.execution_id` = '{execution}'" if execution else ""
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id], query)}


def test_nothing_reruns_when_nothing_changed_but_the_registry_is_checked(repo):
    output = sh(["dvc", "repro"], repo).stdout
    assert stages_run(output) == ALWAYS_CHANGED
    assert f"registry: {MODEL}@champion is this workspace's model: version 1" in output
    assert stale_stages(repo) == set()


def test_a_param_change_invalidates_only_its_stage(repo):
    params = repo / "params.yaml"
    original = params.read_text(encoding="utf-8")
    data = yaml.safe_load(original)
    try:
        data["tokenize"]["tokenizers"]["morph"]["max_repeat"] = 2
        data["train"]["variants"]["base"]["units"] = 16
        params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        assert stale_stages(repo) == {"tokenize", "train@base", "evaluate"}
    finally:
        params.write_text(original, encoding="utf-8")


def test_dvc_metrics_show_one_summary_and_plots_one_chart_per_kind_offline(repo, tmp_path):
    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], repo).stdout)
    files = next(iter(metrics.values()))["data"]
    assert list(files) == ["reports/evaluate/summary.json", "reports/evaluate/variants.json"]
    accuracies = files["reports/evaluate/variants.json"]["data"]["val_accuracy"]
    assert set(accuracies) == {*VARIANTS, ENSEMBLE}
    summary = files["reports/evaluate/summary.json"]["data"]
    champion = json.loads((repo / "reports/evaluate/champion.json").read_text())
    assert summary["champion"] == champion["variant"]
    assert summary["test_accuracy"] == champion["test"]["accuracy"]
    result = sh(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo)
    assert "WARNING" not in result.stdout + result.stderr
    html = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html and "window.vegaEmbed=" in html  # Vega inlined
    assert html.count("vegaEmbed('#") == 4  # loss, ROC, precision-recall, confusion
    for chart in ("loss", "roc", "precision_recall"):
        rows = json.loads((repo / f"reports/evaluate/plots/{chart}.json").read_text())
        assert {row["variant"] for row in rows} >= {"base", "bilstm", "tfidf"}, chart
    assert (repo / "reports/evaluate/leaderboard.md").read_text(encoding="utf-8").count("\n") >= 7


def test_every_variant_is_a_complete_mlflow_run(repo, client):
    runs = _runs(client)
    assert set(runs) == {*VARIANTS, ENSEMBLE}
    commit = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    location = (repo / "mlartifacts").resolve().as_uri()
    for variant, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["variant"] == variant
        assert run.data.tags["mlflow.source.git.commit"] == commit
        assert run.info.artifact_uri.startswith(location)
        assert {"val_accuracy", "test_accuracy", "test_roc_auc"} <= set(run.data.metrics)
    for variant in VARIANTS:
        run = runs[variant]
        assert run.data.params["data_source"] == "sample"
        assert {"train_seconds", "best_epoch", "epochs_run"} <= set(run.data.metrics)
        epochs = int(run.data.metrics["epochs_run"])
        for key in ("epoch/val_loss", "epoch/val_accuracy", "epoch/train_loss"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == list(range(1, epochs + 1)), key
        inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "validation"} and all(inputs.values())
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "learning_curves.png" in artifacts
    bilstm = runs["bilstm"]
    assert bilstm.data.params["units"] == "128" and bilstm.data.params["tokenizer"] == "morph"
    assert "model_summary.txt" in {a.path for a in client.list_artifacts(bilstm.info.run_id)}
    assert [a.path for a in client.list_artifacts(bilstm.info.run_id, "keras")] == [
        "keras/model.keras"
    ]


def test_mlflow_shows_the_leaderboard_s_numbers_and_order(repo, client):
    """One meaning per key: a run's summary val_/test_ metrics are the leaderboard's, and MLflow
    ordering runs by validation accuracy gives the leaderboard's ranking."""
    runs = _runs(client)
    board = json.loads((repo / "reports/evaluate/leaderboard.json").read_text())
    for row in board:
        shown = runs[row["variant"]].data.metrics
        for key in ("val_accuracy", "val_log_loss", "test_accuracy", "test_roc_auc"):
            assert shown[key] == row[key], (row["variant"], key)
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    ordered = client.search_runs(
        [experiment],
        f"tags.`pipeline.execution_id` = '{SAMPLE_EXECUTION}'",
        order_by=["metrics.val_accuracy DESC", "attributes.run_name ASC"],
    )
    assert [r.info.run_name for r in ordered] == [row["variant"] for row in board]
    champion = client.get_model_version_by_alias(MODEL, "champion")
    winner = next(row for row in board if row["champion"])
    assert champion.tags["val_accuracy"] == f"{winner['val_accuracy']:.4f}"
    assert json.loads((repo / "reports/evaluate/champion.json").read_text())["validation"][
        "accuracy"
    ] == round(winner["val_accuracy"], 4)


def test_ensemble_run_serves_the_mean_log_odds_of_its_members(repo, client):
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from pipeline.ensemble import combine

    runs = _runs(client)
    ensemble = runs[ENSEMBLE]
    members = ("tfidf_nb", "tfidf_morph", "bilstm")
    assert ensemble.data.params["members"] == ",".join(members)
    assert ensemble.data.tags["member_run_ids"] == ",".join(runs[m].info.run_id for m in members)
    assert ensemble.data.tags["data.digest"] == runs["tfidf_nb"].data.tags["data.digest"]
    texts = pd.DataFrame({"text": ["배우 연기 최고 ㅋㅋ 또 보고 싶다", "돈 아깝다 스토리 엉망"]})

    def served(run) -> np.ndarray:
        model_id = client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )[0].model_id
        return mlflow.pyfunc.load_model(f"models:/{model_id}").predict(texts)["probability"]

    expected = combine([served(runs[m]).to_numpy() for m in members])
    np.testing.assert_allclose(served(ensemble), expected, atol=1e-5)


def test_champion_is_registered_and_predicts_raw_text(repo, client):
    import mlflow.pyfunc
    import pandas as pd

    champion = client.get_model_version_by_alias(MODEL, "champion")
    chosen = json.loads((repo / "reports/evaluate/champion.json").read_text())
    assert champion.tags["variant"] == chosen["variant"] and chosen["passed_gate"]
    assert champion.run_id == _runs(client)[chosen["variant"]].info.run_id
    assert {"val_accuracy", "test_accuracy", "data.digest", "git_commit", "run_id"} <= set(
        champion.tags
    )
    assert set(champion.aliases) == {"challenger", "champion"}
    assert champion.tags["decision"] == "promoted"
    assert champion.tags["model.digest"] == chosen["model_digest"]
    assert champion.description
    model = mlflow.pyfunc.load_model(CHAMPION)
    out = model.predict(
        pd.DataFrame({"text": ["정말 감동적이고 훌륭한 영화", "지루하고 별로였어 다시 안봐"]})
    )
    assert out["sentiment"].tolist() == ["positive", "negative"]
    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(CHAMPION)).rglob("*")}
    assert {"MLmodel", "bundle.json", "pyfunc_entry.py"} <= files
    assert {"model.keras", "tfidf.json"} & files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]


@pytest.fixture(scope="module")
def server(repo):
    port = free_port()
    env = {**clean_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    process = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            CHAMPION,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not come up")
        yield f"{url}/invocations"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _post(url, body):
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return requests.post(
        url, data=data.encode(), timeout=60, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    "body",
    [
        {
            "dataframe_split": {
                "columns": ["text"],
                "data": [["정말 감동적이고 훌륭한 영화"], ["지루하고 별로였어 다시 안봐"]],
            }
        },
        {
            "dataframe_records": [
                {"text": "정말 감동적이고 훌륭한 영화"},
                {"text": "지루하고 별로였어 다시 안봐"},
            ]
        },
        {"inputs": ["정말 감동적이고 훌륭한 영화", "지루하고 별로였어 다시 안봐"]},
    ],
)
def test_served_model_answers_every_request_form(server, body):
    response = _post(server, body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["sentiment"] for p in predictions] == ["positive", "negative"]
    assert [p["label"] for p in predictions] == [1, 0]
    assert 0.5 < predictions[0]["probability"] <= 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("this is not json", "JSON"),
        ({"dataframe_records": [{"review": "좋아요"}]}, "text"),
        ({"dataframe_records": [{"text": "좋아요"}, {"text": None}]}, "must be a string"),
        ({"inputs": ["좋아요", None]}, "must be a string"),
        ({"inputs": [1, 2]}, "must be a string"),
        ({"dataframe_split": {"columns": ["text"], "data": [[{"a": 1}]]}}, "must be a string"),
        ({"wrong_key": []}, "dataframe_split"),
    ],
)
def test_served_model_rejects_bad_input_with_4xx(server, body, message):
    response = _post(server, body)
    assert 400 <= response.status_code < 500, response.text
    assert message in response.text
    assert _post(server, {"inputs": ["최고"]}).status_code == 200  # still serving


def test_served_model_edge_cases_and_a_thousand_texts(server):
    nothing_known = ["😀👍🎬🍿", "هذا الفيلم رائع جدا"]  # emoji only; Arabic
    texts = ["", "   ", *nothing_known, "😀👍 정말 재밌다", "10점 만점에 10점", "재밌다 " * 2000]
    predictions = _post(server, {"inputs": texts}).json()["predictions"]
    assert [p["sentiment"] for p in predictions[:4]] == ["unknown"] * 4
    assert [p["probability"] for p in predictions[:4]] == [0.5] * 4
    assert all(p["label"] in (0, 1) for p in predictions[4:])
    batch = [f"리뷰 {i} 정말 재밌어요" if i % 2 else f"리뷰 {i} 노잼" for i in range(1000)]
    response = _post(server, {"inputs": batch})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1000


def test_batch_scoring_commands(repo, tmp_path):
    texts = tmp_path / "reviews.txt"
    texts.write_text("정말 감동적이고 훌륭한 영화\n지루하고 별로였어 다시 안봐\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    sh(
        [
            sys.executable,
            "-m",
            "pipeline",
            "predict",
            "--model",
            CHAMPION,
            "--input",
            str(texts),
            "--output",
            str(out),
        ],
        repo,
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "text,label,sentiment,probability"
    assert ",positive," in lines[1] and ",negative," in lines[2]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": ["정말 감동적이고 훌륭한 영화"]}), encoding="utf-8")
    result = sh(
        [
            "mlflow",
            "models",
            "predict",
            "-m",
            CHAMPION,
            "-i",
            str(request),
            "-t",
            "json",
            "--env-manager",
            "local",
        ],
        repo,
    )
    assert '"sentiment": "positive"' in result.stdout


def test_gate_blocks_a_weak_champion_and_keeps_the_current_one(repo, client):
    before = client.get_model_version_by_alias(MODEL, "champion").version
    params = repo / "params.yaml"
    original = params.read_text(encoding="utf-8")
    data = yaml.safe_load(original)
    data["evaluate"]["gate"] = {"accuracy": 0.999}
    data["evaluate"]["select_by"] = "f1"
    try:
        params.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        result = sh(["dvc", "repro", "evaluate"], repo)
        assert "failed the gate" in result.stdout + result.stderr
        chosen = json.loads((repo / "reports/evaluate/champion.json").read_text())
        assert chosen["passed_gate"] is False and chosen["gate_failures"]
        assert f"left unchanged (version {before})" in result.stdout + result.stderr
        assert client.get_model_version_by_alias(MODEL, "champion").version == before
    finally:
        params.write_text(original, encoding="utf-8")


def test_mlflow_run_trains_one_variant_with_overrides(repo, client):
    sh(
        [
            "mlflow",
            "run",
            ".",
            "-e",
            "train",
            "-P",
            "variant=notebook",
            "-P",
            "overrides=epochs=2 units=8",
            "--env-manager",
            "local",
            "--experiment-name",
            "mlproject-check",
        ],
        repo,
    )
    run = next(iter(_runs(client, "mlproject-check", execution=None).values()))
    assert run.info.status == "FINISHED" and run.info.run_name == "notebook"
    assert run.data.params["units"] == "8" and run.data.params["epochs"] == "2"
    assert "train@" not in sh(["dvc", "status"], repo).stdout  # DVC outputs untouched


def test_mlflow_run_main_entry_runs_the_pipeline(repo, client):
    result = sh(
        ["mlflow", "run", ".", "--env-manager", "local", "--experiment-name", "mlproject-main"],
        repo,
    )
    assert "Stage 'train@bilstm' didn't change, skipping" in result.stdout
    run = next(iter(_runs(client, "mlproject-main", execution=None).values()))
    assert run.info.status == "FINISHED"


def test_dvc_exp_run_temp_logs_into_the_repo_store_and_never_moves_the_champion(repo, client):
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    result = sh(
        [
            "dvc",
            "exp",
            "run",
            "--temp",
            "-S",
            "train.variants.notebook.units=16",
            "-S",
            "evaluate.select_by=log_loss",
        ],
        repo,
    )
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    if challenger.version != champion:  # the experiment's best is another model
        assert challenger.tags["dvc.exp_name"] and challenger.tags["params.digest"]
        assert "a DVC experiment (" in challenger.tags["decision_reason"]
        assert "python -m pipeline registry promote" in result.stdout
    runs = client.search_runs(
        [client.get_experiment_by_name("korean-sentiment").experiment_id],
        "tags.variant = 'notebook' and params.units = '16'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))


def test_sigterm_ends_the_run_killed_and_writes_no_model(repo, client):
    model_dir = repo / "outputs" / "killed"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "train",
            "--variant",
            "bilstm",
            "--overrides",
            "epochs=500 patience=500",
            "--data-dir",
            "data/split",
            "--data-report",
            "reports/data.json",
            "--model-dir",
            str(model_dir),
            "--reports-dir",
            str(repo / "outputs" / "killed-reports"),
        ],
        cwd=repo,
        env={**clean_env(), "PIPELINE_EXECUTION_ID": "sigterm-test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    experiment = client.get_experiment_by_name("korean-sentiment").experiment_id
    query = "tags.`pipeline.execution_id` = 'sigterm-test'"
    deadline = time.time() + 300
    while time.time() < deadline:
        runs = client.search_runs([experiment], query)
        if runs and client.get_metric_history(runs[0].info.run_id, "epoch/val_loss"):
            break
        time.sleep(1)
    else:
        process.kill()
        pytest.fail("training did not start")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) != 0
    assert client.search_runs([experiment], query)[0].info.status == "KILLED"
    assert not model_dir.exists()


def test_registry_commands_promote_roll_back_and_explain(repo, client):
    """The commands docs/registry.md shows, on a second version made from the notebook's run."""
    registry = [sys.executable, "-m", "pipeline", "registry"]
    champion = client.get_model_version_by_alias(MODEL, "champion")
    notebook = _runs(client)["notebook"]
    version = client.create_model_version(
        MODEL, f"runs:/{notebook.info.run_id}/model", notebook.info.run_id
    )
    number = str(version.version)
    for key in ("data.digest", "select_by"):
        client.set_model_version_tag(MODEL, number, key, champion.tags[key])
    client.set_model_version_tag(MODEL, number, "variant", "notebook")
    refused = sh([*registry, "promote", "--version", number], repo, check=False)
    assert refused.returncode == 1 and f"error: version {number} (notebook): refused" in (
        refused.stderr
    )
    forced = sh(
        [*registry, "promote", "--version", number, "--force", "--reason", "rollout drill"], repo
    )
    assert f"{MODEL}@champion is version {number}" in forced.stdout
    warned = sh([*registry, "status"], repo)
    assert "registry warning: korean-sentiment@champion (version" in warned.stderr
    assert "promoted by force by registry promote" in warned.stderr
    assert f"registry promote --version {champion.version}" in warned.stderr
    back = sh([*registry, "rollback"], repo)
    assert f"{MODEL}@champion is version {champion.version} again" in back.stdout
    assert "is this workspace's model" in sh([*registry, "status"], repo).stdout
    history = sh([*registry, "history"], repo).stdout.splitlines()
    assert (
        history[0].startswith(f"v{number} [") and "rolled back by registry rollback" in history[0]
    )
    assert any("restored by registry rollback" in line for line in history[1:])
    assert (
        "already champion"
        in sh([*registry, "promote", "--version", str(champion.version)], repo).stdout
    )
