"""`publish`: what DVC holds, logged to a new tracking store, the champion registered by the
registry's rules, nothing trained; and its one-line error when DVC's outputs are missing."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from pipeline.cli import cli
from tests.helpers import REPO, clean_env, sh, stale_stages

VARIANTS = 7  # params.yaml's train.variants


def test_without_dvc_s_outputs_publish_is_one_line(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["publish", "--params", str(REPO / "params.yaml"), "--models-dir", str(tmp_path)],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: DVC's outputs are not here (base, " in result.output
    assert "`dvc pull` them, or `dvc repro` to train" in result.output


@pytest.mark.e2e
def test_publish_logs_what_dvc_holds_and_crowns_by_the_rules(sample_repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    store = f"sqlite:///{tmp_path / 'team.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=store)
    lock = (root / "dvc.lock").read_text(encoding="utf-8")
    publish = [sys.executable, "-m", "pipeline", "publish"]
    first = sh(publish, root, env=env)
    assert first.stdout.count("(not retrained)") == VARIANTS
    assert "(first champion: the registry had none)" in first.stdout
    client = MlflowClient(store)
    chosen = json.loads((root / "reports/evaluate/champion.json").read_text())
    champion = client.get_model_version_by_alias("korean-sentiment", "champion")
    assert champion.tags["variant"] == chosen["variant"]
    assert champion.tags["model.digest"] == chosen["model_digest"]
    experiment = client.get_experiment_by_name("korean-sentiment").experiment_id
    runs = client.search_runs([experiment])
    assert {r.info.status for r in runs} == {"FINISHED"}
    published = [r for r in runs if r.data.tags.get("pipeline.published_from") == "dvc outputs"]
    assert len(published) == VARIANTS
    assert all("val_accuracy" in r.data.metrics and r.data.params for r in published)
    assert (root / "dvc.lock").read_text(encoding="utf-8") == lock
    assert stale_stages(root) == set()
    again = sh(publish, root, env=env)
    assert again.stdout.count("already in the store") == VARIANTS
    assert "already korean-sentiment@champion" in again.stdout
