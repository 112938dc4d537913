"""MLflow side of `evaluate`: which run made each model, metrics into each run, the ensemble's
run, and the champion into the Model Registry."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import bundle, tracking
from pipeline.contract import TEXT_COLUMN

ALIAS = "champion"


def variant_runs(experiment: str, digests: dict[str, str]) -> dict[str, dict]:
    """Per variant, the run that trained the model now in its folder, and its logged model."""
    runs = {}
    for variant, model_digest in digests.items():
        run = tracking.find_variant_run(experiment, variant, model_digest)
        runs[variant] = {"run_id": run.info.run_id, "model_uri": tracking.logged_model_uri(run)}
    return runs


def log_ensemble_run(experiment: str, name: str, member_runs: dict[str, dict], folder: Path):
    """Log the ensemble like a trained variant (params, tags, pyfunc model)."""
    first = MlflowClient().get_run(next(iter(member_runs.values()))["run_id"])
    tags = tracking.run_tags(name, first.data.tags.get(tracking.DATA_DIGEST_TAG, ""))
    tags |= {
        "member_run_ids": ",".join(run["run_id"] for run in member_runs.values()),
        tracking.MODEL_DIGEST_TAG: bundle.digest(folder),
    }
    with tracking.tracked_run(experiment, tracking.run_name(name), tags) as run:
        mlflow.log_params(
            {"type": name, "members": ",".join(member_runs), "combination": "mean log-odds"}
        )
        model = tracking.log_pyfunc(folder)
    return {"run_id": run.info.run_id, "model_uri": model.model_uri}


def summary_metrics(scores: dict[str, dict]) -> dict[str, float]:
    """A variant's split -> metrics as MLflow keys: val_accuracy, test_roc_auc, ..."""
    return {
        f"{_prefix(split)}_{name}": value
        for split, metrics in scores.items()
        for name, value in metrics.items()
        if name != "confusion_matrix"
    }


def log_evaluation(runs: dict[str, dict], results: dict[str, dict]) -> None:
    """The leaderboard's numbers, unrounded, as each run's summary metrics (step 0)."""
    client = MlflowClient()
    for variant, run in runs.items():
        client.log_batch(
            run["run_id"],
            metrics=[
                mlflow.entities.Metric(key, value, int(time.time() * 1000), 0)
                for key, value in summary_metrics(results[variant]).items()
            ],
        )
        for split, scores in results[variant].items():
            client.log_dict(run["run_id"], scores, f"evaluation/{split}.json")


def promote(cfg, verdict, run: dict, results: dict) -> dict:
    """Register the champion as a new version with alias `champion`, unless the gate failed.
    Returns what the registry now says: version, run, whether anything changed."""
    client = MlflowClient()
    current = _champion(client, cfg.registered_model)
    current_version = None if current is None else int(current.version)
    if not verdict.passed:
        return {"version": current_version, "run_id": None, "changed": False}
    if current is not None and current.run_id == run["run_id"]:
        return {"version": current_version, "run_id": run["run_id"], "changed": False}
    _ensure_registered_model(client, cfg.registered_model)
    version = mlflow.register_model(run["model_uri"], cfg.registered_model)
    run_tags = client.get_run(run["run_id"]).data.tags
    tags = {
        "variant": verdict.champion,
        "data.digest": run_tags.get(tracking.DATA_DIGEST_TAG, ""),
        "run_id": run["run_id"],
        "git_commit": run_tags.get("mlflow.source.git.commit", ""),
        **{key: f"{value:.4f}" for key, value in summary_metrics(results).items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(cfg.registered_model, version.version, key, value)
    client.update_model_version(
        cfg.registered_model,
        version.version,
        description=(
            f"Variant '{verdict.champion}', best by validation {cfg.select_by} "
            f"({results['validation'][cfg.select_by]:.4f}); test accuracy "
            f"{results['test']['accuracy']:.4f}. Input: a string column '{TEXT_COLUMN}' of raw "
            "Korean text; output: label (0/1; -1 for a text with nothing visible), sentiment, "
            "probability of positive."
        ),
    )
    client.set_registered_model_alias(cfg.registered_model, ALIAS, version.version)
    return {"version": int(version.version), "run_id": run["run_id"], "changed": True}


def _prefix(split: str) -> str:
    return "val" if split == "validation" else split


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description="Korean sentiment classifier (raw text in, label and probability out).",
        )
