"""MLflow side of `evaluate`: metrics into each variant's run, the champion into the registry."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline.project import repo_root
from pipeline.tracking import configure

ALIAS = "champion"


def log_evaluation(runs: dict[str, dict], results: dict[str, dict]) -> None:
    configure(repo_root())
    client = MlflowClient()
    for variant, run in runs.items():
        for split, scores in results[variant].items():
            prefix = "val" if split == "validation" else split
            for name, value in scores.items():
                if name != "confusion_matrix":
                    client.log_metric(run["run_id"], f"{prefix}_{name}", value)
            client.log_dict(run["run_id"], scores, f"evaluation/{split}.json")


def promote(cfg, verdict, run: dict, results: dict) -> dict:
    """Register the champion as a new version with alias `champion`, unless the gate failed."""
    summary = {
        "variant": verdict.champion,
        "registered_model": cfg.registered_model,
        "selected_by": f"validation {cfg.select_by}",
        "passed_gate": verdict.passed,
        "gate_failures": verdict.reasons,
        "run_id": run["run_id"],
        "version": None,
    }
    client = MlflowClient()
    if not verdict.passed:
        summary["current_champion"] = _current_version(client, cfg.registered_model)
        return summary
    current = _champion(client, cfg.registered_model)
    if current is not None and current.run_id == run["run_id"]:
        return {**summary, "version": int(current.version), "unchanged": True}
    _ensure_registered_model(client, cfg.registered_model)
    version = mlflow.register_model(run["model_uri"], cfg.registered_model)
    run_tags = client.get_run(run["run_id"]).data.tags
    tags = {
        "variant": verdict.champion,
        "data.digest": run_tags.get("data.digest", ""),
        "run_id": run["run_id"],
        "git_commit": run_tags.get("mlflow.source.git.commit", ""),
        **{
            f"{_prefix(split)}_{m}": f"{v:.4f}"
            for split, scores in results.items()
            for m, v in scores.items()
            if m != "confusion_matrix"
        },
    }
    for key, value in tags.items():
        client.set_model_version_tag(cfg.registered_model, version.version, key, value)
    client.update_model_version(
        cfg.registered_model,
        version.version,
        description=(
            f"Variant '{verdict.champion}', best by validation {cfg.select_by} "
            f"({results['validation'][cfg.select_by]:.4f}); test accuracy "
            f"{results['test']['accuracy']:.4f}. Input: a string column 'text' of raw Korean "
            "text; output: label (0/1, -1 for empty text), sentiment, probability of positive."
        ),
    )
    client.set_registered_model_alias(cfg.registered_model, ALIAS, version.version)
    return {**summary, "version": int(version.version)}


def _prefix(split: str) -> str:
    return "val" if split == "validation" else split


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def _current_version(client: MlflowClient, name: str) -> int | None:
    current = _champion(client, name)
    return None if current is None else int(current.version)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description="Korean sentiment classifier (raw text in, label and probability out).",
        )
