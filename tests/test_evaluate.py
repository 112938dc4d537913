import numpy as np
import pytest

from pipeline.ensemble import combine
from pipeline.errors import PipelineError
from pipeline.evaluate import (
    EvaluateConfig,
    choose,
    curve_points,
    ensemble_scores,
    leaderboard,
    run_origin,
    scores,
    variant_accuracies,
)

SECTION = {"registered_model": "m", "select_by": "accuracy", "gate": {}, "promote_margin": 0.01}
CFG = EvaluateConfig("model", "accuracy", {"accuracy": 0.7}, promote_margin=0.0)


def result(val, test):
    return {
        "validation": {
            **dict.fromkeys(("precision", "recall", "f1", "roc_auc"), 0.5),
            "accuracy": val,
            "log_loss": 1 - val,
        },
        "test": {
            **dict.fromkeys(("precision", "recall", "f1", "roc_auc"), 0.5),
            "accuracy": test,
            "log_loss": 1 - test,
        },
    }


def test_scores():
    labels = np.array([1, 1, 0, 0])
    s = scores(labels, np.array([0.9, 0.4, 0.2, 0.6]))
    assert s["accuracy"] == 0.5 and s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["roc_auc"] == 0.75
    assert s["confusion_matrix"] == [[1, 1], [1, 1]]


def test_champion_is_chosen_on_validation_never_test():
    results = {"a": result(0.80, 0.99), "b": result(0.85, 0.60)}
    verdict = choose(results, CFG)
    assert verdict.champion == "b" and verdict.passed


def test_variant_accuracies_are_validation_only_and_rounded():
    results = {"a": result(0.812345, 0.99), "ensemble": result(0.85, 0.60)}
    assert variant_accuracies(results) == {"val_accuracy": {"a": 0.8123, "ensemble": 0.85}}


def test_lower_is_better_metric():
    results = {"a": result(0.80, 0.99), "b": result(0.85, 0.60)}
    cfg = EvaluateConfig("model", "log_loss", {"log_loss": 0.3}, promote_margin=0.0)
    verdict = choose(results, cfg)
    assert verdict.champion == "b" and verdict.passed


def test_gate_blocks_a_weak_champion():
    verdict = choose({"a": result(0.65, 0.9)}, CFG)
    assert not verdict.passed
    assert verdict.reasons == ["validation accuracy 0.6500 < minimum 0.7"]


def test_ensemble_members_are_checked_against_the_variants():
    section = SECTION
    cfg = EvaluateConfig.from_params({**section, "ensemble": {"members": ["a", "b"]}}, ["a", "b"])
    assert cfg.ensemble.members == ("a", "b")
    assert EvaluateConfig.from_params(section, ["a", "b"]).ensemble is None
    with pytest.raises(PipelineError, match="unknown member"):
        EvaluateConfig.from_params({**section, "ensemble": {"members": ["a", "c"]}}, ["a", "b"])


def test_ensemble_is_scored_from_its_members_probabilities():
    labels = {"validation": np.array([1, 0, 1, 0]), "test": np.array([1, 0])}
    probabilities = {
        "a": {"validation": np.array([0.9, 0.6, 0.4, 0.1]), "test": np.array([0.8, 0.3])},
        "b": {"validation": np.array([0.8, 0.2, 0.7, 0.45]), "test": np.array([0.4, 0.45])},
    }
    extras = {v: {"type": "lstm", "best_epoch": 1} for v in "ab"}
    results, combined, extra = ensemble_scores(("a", "b"), probabilities, labels, extras)
    # each member errs once on validation; their mean log-odds errs nowhere
    assert results["validation"]["accuracy"] == 1.0
    np.testing.assert_allclose(
        combined["test"], combine([probabilities["a"]["test"], probabilities["b"]["test"]])
    )
    assert extra == {"type": "ensemble", "best_epoch": None}


def test_leaderboard_ranks_by_validation():
    results = {"a": result(0.80, 0.99), "b": result(0.85, 0.60)}
    extras = {v: {"type": "lstm", "best_epoch": 2} for v in results}
    rows, markdown = leaderboard(results, extras, CFG, choose(results, CFG))
    assert [r["variant"] for r in rows] == ["b", "a"]
    assert rows[0]["champion"] and not rows[1]["champion"]
    assert "| 1 | **b** (champion) |" in markdown
    extras["a"]["best_epoch"] = None  # the ensemble trains no epochs
    assert "| – |" in leaderboard(results, extras, CFG, choose(results, CFG))[1]


def test_curves_are_thinned():
    rng = np.random.default_rng(0)
    points = curve_points(rng.integers(0, 2, 5000), rng.random(5000))
    assert 2 <= len(points["roc"]) <= 200
    assert points["roc"][0] == {"fpr": 0.0, "tpr": 0.0}


def test_promote_margin_comes_from_params():  # its checks: tests/test_schema.py
    assert EvaluateConfig.from_params(SECTION, ["a"]).rule.margin == 0.01


def test_run_origin_reads_what_dvc_exp_run_sets(tmp_path, monkeypatch):
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("a: 1\n")
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    committed = run_origin()
    assert committed.commit and committed.exploration() is None
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert run_origin().exploration() == "uncommitted changes to params.yaml"
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1a2b3")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", committed.commit)
    origin = run_origin()
    assert origin.exploration() == "a DVC experiment (exp-1a2b3)"
    assert origin.dvc_baseline == committed.commit
