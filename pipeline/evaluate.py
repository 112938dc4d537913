"""Stage `evaluate`: score every variant, write a leaderboard, and register the champion."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import yaml
from sklearn import metrics as skm

from pipeline import bundle, ensemble, promotion
from pipeline.ensemble import EnsembleConfig
from pipeline.errors import PipelineError
from pipeline.io import (
    JsonlRecords,
    atomic_dir,
    chunks,
    read_json,
    sha256_file,
    write_json,
    write_json_rows,
)
from pipeline.options import input_dir, params_option, path_option
from pipeline.probability import labels_of
from pipeline.project import git_commit, repo_root, uncommitted
from pipeline.report import markdown_table
from pipeline.schema import load_section
from pipeline.scoring import LOWER_IS_BETTER, METRICS, scores
from pipeline.serving import Bundle

__all__ = ["LOWER_IS_BETTER", "METRICS", "scores"]  # where they were before pipeline/scoring.py
EVAL_SPLITS = ("validation", "test")
SUMMARY_METRICS = ("accuracy", "f1", "roc_auc")
CURVE_POINTS = 200
SCORE_CHUNK = 50_000  # records scored at a time (NSMC's test split is one chunk)
PIPELINE_FILES = ("params.yaml", "dvc.yaml")  # a champion's commit must hold these as they ran
TABLE_COLUMNS = (
    "rank",
    "variant",
    "type",
    "val_accuracy",
    "val_f1",
    "val_roc_auc",
    "test_accuracy",
    "test_f1",
    "test_roc_auc",
    "test_log_loss",
    "best_epoch",
)


@dataclass(frozen=True)
class EvaluateConfig:
    registered_model: str
    select_by: str
    gate: dict[str, float]
    promote_margin: float
    ensemble: EnsembleConfig | None = None

    @property
    def rule(self) -> promotion.Rule:
        lower_is_better = self.select_by in LOWER_IS_BETTER
        return promotion.Rule(self.select_by, lower_is_better, self.promote_margin)

    @classmethod
    def from_params(cls, section: dict, variants: list[str]) -> EvaluateConfig:
        """From params 'evaluate', checked by pipeline/schema.py."""
        return cls(
            **{**section, "ensemble": EnsembleConfig.from_params(section.get("ensemble"), variants)}
        )


@dataclass(frozen=True)
class Verdict:
    champion: str
    passed: bool
    reasons: list[str]


def score_variant(model: Bundle, records: Iterable[dict]) -> tuple[dict, np.ndarray]:
    """Metrics and P(positive) of a split's records, scored SCORE_CHUNK records at a time."""
    labels, probability = split_probabilities({"model": model}, records)
    return scores(labels, probability["model"]), probability["model"]


def split_probabilities(
    models: dict[str, Bundle], records: Iterable[dict]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The labels, and each model's P(positive), of a split read once, SCORE_CHUNK records at
    a time: every model scores a chunk before the next is read."""
    labels = [np.zeros(0, np.int64)]
    probability = {name: [np.zeros(0, np.float32)] for name in models}
    for chunk in chunks(records, SCORE_CHUNK):
        texts = [r["text"] for r in chunk]
        labels.append(np.array([r["label"] for r in chunk]))
        for name, model in models.items():
            # the split's stored tokens, so nothing is tokenized again
            tokens = {t: [r["tokens"][t] for r in chunk] for t in model.scorer.tokenizers}
            probability[name].append(model.probabilities(texts, tokens))
    return np.concatenate(labels), {name: np.concatenate(p) for name, p in probability.items()}


def score_variants(
    variants: list[str], models_dir: Path, runs_dir: Path, splits: dict[str, Iterable[dict]]
) -> tuple[dict, dict, dict]:
    """Per variant: metrics and P(positive) per split, and the leaderboard's training columns."""
    models = {v: Bundle(models_dir / v, with_tokenizer=False) for v in variants}  # no Kiwi
    results = {variant: {} for variant in variants}
    probabilities = {variant: {} for variant in variants}
    for name, records in splits.items():
        labels, by_variant = split_probabilities(models, records)
        for variant, probability in by_variant.items():
            probabilities[variant][name] = probability
            results[variant][name] = scores(labels, probability)
    extras = {
        variant: {
            "type": model.meta["type"],
            "best_epoch": read_json(runs_dir / variant / "metrics.json")["best_epoch"],
        }
        for variant, model in models.items()
    }
    return results, probabilities, extras


def ensemble_scores(
    members: tuple[str, ...], probabilities: dict, labels: dict[str, np.ndarray], extras: dict
) -> tuple[dict, dict, dict]:
    """The ensemble's metrics, P(positive) and leaderboard columns, from its members' scores."""
    combined = {
        split: ensemble.combine([probabilities[m][split] for m in members]) for split in labels
    }
    results = {split: scores(labels[split], p) for split, p in combined.items()}
    return results, combined, {"type": ensemble.TYPE, "best_epoch": None}


def choose(results: dict[str, dict], cfg: EvaluateConfig) -> Verdict:
    """Best variant by the validation metric `select_by`, then the gate on validation metrics."""
    sign = -1 if cfg.select_by in LOWER_IS_BETTER else 1
    champion = max(sorted(results), key=lambda v: sign * results[v]["validation"][cfg.select_by])
    validation = results[champion]["validation"]
    reasons = [
        f"validation {name} {validation[name]:.4f} "
        + (f"> maximum {limit}" if name in LOWER_IS_BETTER else f"< minimum {limit}")
        for name, limit in cfg.gate.items()
        if (validation[name] > limit if name in LOWER_IS_BETTER else validation[name] < limit)
    ]
    return Verdict(champion, not reasons, reasons)


def leaderboard(
    results: dict[str, dict], extras: dict[str, dict], cfg: EvaluateConfig, verdict: Verdict
) -> tuple[list[dict], str]:
    """Rows ranked by the validation metric (unrounded: the numbers MLflow's runs carry) and
    the same as a Markdown table."""
    sign = -1 if cfg.select_by in LOWER_IS_BETTER else 1
    order = sorted(results, key=lambda v: (-sign * results[v]["validation"][cfg.select_by], v))
    rows = [
        {
            "rank": rank,
            "variant": variant,
            **extras[variant],
            **{f"val_{m}": results[variant]["validation"][m] for m in METRICS},
            **{f"test_{m}": results[variant]["test"][m] for m in METRICS},
            "champion": variant == verdict.champion and verdict.passed,
        }
        for rank, variant in enumerate(order, start=1)
    ]
    shown = [
        {
            **row,
            "variant": f"**{row['variant']}** (champion)" if row["champion"] else row["variant"],
        }
        for row in rows
    ]
    table = markdown_table(TABLE_COLUMNS, [[row[c] for c in TABLE_COLUMNS] for row in shown])
    return rows, f"# Variants ranked by validation {cfg.select_by}\n\n{table}"


def _shown(row: dict, column: str):
    if column == "variant" and row["champion"]:
        return f"**{row['variant']}** (champion)"
    return row[column]


def curve_points(labels: np.ndarray, probability: np.ndarray) -> dict[str, list[dict]]:
    fpr, tpr, _ = skm.roc_curve(labels, probability)
    precision, recall, _ = skm.precision_recall_curve(labels, probability)
    return {
        "roc": [{"fpr": float(a), "tpr": float(b)} for a, b in _thinned(fpr, tpr)],
        "precision_recall": [
            {"recall": float(a), "precision": float(b)} for a, b in _thinned(recall, precision)
        ],
    }


def _thinned(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), CURVE_POINTS)).round().astype(int))
    return list(zip(x[keep], y[keep], strict=True))


def variants_in(train_section: dict) -> list[str]:
    return list(train_section.get("variants") or {})


@click.command("evaluate")
@params_option
@input_dir("--data-dir", "Output folder of `split`.")
@input_dir("--models-dir", "Folder holding one bundle per variant (outputs of `train`).")
@input_dir("--runs-dir", "Folder holding <variant>/metrics.json and history.csv.")
@path_option("--ensemble-dir", "Where the ensemble's bundle goes (params evaluate.ensemble).")
@path_option(
    "--out-dir",
    "Where summary.json, variants.json, metrics.json, leaderboard.md/json, champion.json, plots/.",
)
def command(params_path, data_dir, models_dir, runs_dir, ensemble_dir, out_dir):
    """Score all variants on validation and test, log to their runs, register the champion."""
    from pipeline import registry, tracking

    train = load_section(params_path, "train")
    variants = variants_in(train)
    cfg = EvaluateConfig.from_params(load_section(params_path, "evaluate"), variants)
    missing = [v for v in variants if not bundle.is_bundle(models_dir / v)]
    if missing:
        raise PipelineError(f"no trained model for variant(s) {', '.join(missing)} in {models_dir}")
    root = repo_root()
    tracking.configure(root)
    experiment = tracking.experiment_id(train["experiment"], root)
    tracking.reap_dead_runs(experiment)
    runs = registry.variant_runs(experiment, {v: bundle.digest(models_dir / v) for v in variants})
    splits = {name: JsonlRecords(data_dir / f"{name}.jsonl") for name in EVAL_SPLITS}
    labels = {name: np.array([r["label"] for r in records]) for name, records in splits.items()}
    results, probabilities, extras = score_variants(variants, models_dir, runs_dir, splits)
    with atomic_dir(ensemble_dir) as tmp:
        if cfg.ensemble is None:
            (tmp / "NONE").write_text("params evaluate.ensemble lists no members\n")
        else:
            ensemble.write_bundle({m: models_dir / m for m in cfg.ensemble.members}, tmp)
    if cfg.ensemble is not None:
        members, name = cfg.ensemble.members, ensemble.NAME
        results[name], probabilities[name], extras[name] = ensemble_scores(
            members, probabilities, labels, extras
        )
        member_runs = {m: runs[m] for m in members}
        runs[name] = registry.log_ensemble_run(experiment, name, member_runs, ensemble_dir)
    verdict = choose(results, cfg)
    rows, markdown = leaderboard(results, extras, cfg, verdict)
    registry.log_evaluation(runs, results)
    winner = ensemble_dir if verdict.champion == ensemble.NAME else models_dir / verdict.champion
    digests = {
        "data_digest": sha256_file(data_dir / "train.jsonl")[:16],  # as train.py tags its runs
        "model_digest": bundle.digest(winner),
    }
    outcome = registry.evaluate_candidate(
        cfg.registered_model,
        cfg.rule,
        verdict,
        runs[verdict.champion],
        results[verdict.champion],
        splits,
        run_origin(),
        promotion.digest(_all_params(params_path)),
    )
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "summary.json", summary(verdict, results[verdict.champion]))
        write_json(tmp / "metrics.json", _scalar_metrics(results))
        write_json(tmp / "variants.json", variant_accuracies(results))
        write_json(tmp / "leaderboard.json", rows)
        (tmp / "leaderboard.md").write_text(markdown, encoding="utf-8")
        write_json(tmp / "champion.json", {**champion_record(cfg, verdict, results), **digests})
        _write_plots(tmp / "plots", labels, probabilities, verdict.champion, runs_dir, variants)
    click.echo(markdown)
    say_what_was_decided(cfg, verdict, outcome)


def summary(verdict: Verdict, champion: dict) -> dict:
    """The one-screen summary `dvc metrics show` reads: the champion and its key numbers."""
    return {
        "champion": verdict.champion,
        "passed_gate": verdict.passed,
        **{f"val_{m}": round(champion["validation"][m], 4) for m in SUMMARY_METRICS},
        **{f"test_{m}": round(champion["test"][m], 4) for m in SUMMARY_METRICS},
    }


def variant_accuracies(results: dict[str, dict]) -> dict:
    """variants.json, a DVC metric: each variant's validation accuracy, so `dvc exp show
    --only-changed` shows the variants an experiment changed (columns `val_accuracy.<variant>`)."""
    return {"val_accuracy": {v: round(r["validation"]["accuracy"], 4) for v, r in results.items()}}


def champion_record(cfg: EvaluateConfig, verdict: Verdict, results: dict) -> dict:
    """champion.json: who won and why; the registry's version and run ids live in MLflow."""
    return {
        "variant": verdict.champion,
        "registered_model": cfg.registered_model,
        "selected_by": f"validation {cfg.select_by}",
        "passed_gate": verdict.passed,
        "gate_failures": verdict.reasons,
        "validation": _rounded(results[verdict.champion]["validation"]),
        "test": _rounded(results[verdict.champion]["test"]),
    }


def run_origin() -> promotion.Origin:
    """Where this evaluation runs from: commit, uncommitted pipeline files, DVC experiment."""
    cwd = Path.cwd()
    return promotion.Origin(
        commit=git_commit(cwd),
        uncommitted=uncommitted(cwd, PIPELINE_FILES),
        dvc_experiment=os.environ.get("DVC_EXP_NAME") or None,
        dvc_baseline=os.environ.get("DVC_EXP_BASELINE_REV") or None,
    )


def _all_params(params_path: Path) -> dict:
    with params_path.open(encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def say_what_was_decided(cfg: EvaluateConfig, verdict: Verdict, outcome) -> None:
    """The decision, in one or two lines: what was registered, where @champion points."""
    name, decision = cfg.registered_model, outcome.decision
    if verdict.reasons:
        click.secho(
            f"champion candidate {verdict.champion} failed the gate "
            f"({'; '.join(verdict.reasons)}); {name}@champion was left unchanged "
            f"(version {outcome.champion}); it is {name} version {outcome.version} (@challenger)",
            fg="yellow",
        )
    elif decision.outcome == promotion.PROMOTED:
        click.echo(
            f"champion: {verdict.champion} -> {name}@champion is now version {outcome.version} "
            f"({decision.reason})"
        )
    elif decision.outcome == promotion.ALREADY:
        click.echo(
            f"champion: {verdict.champion}, already {name}@champion (version {outcome.version})"
        )
    else:
        click.echo(
            f"challenger: {verdict.champion} is {name} version {outcome.version} (@challenger); "
            f"{name}@champion stays version {outcome.champion}: {decision.reason}"
        )


def _rounded(metrics: dict) -> dict:
    return {m: round(metrics[m], 4) for m in METRICS}


def _scalar_metrics(results: dict[str, dict]) -> dict:
    return {
        variant: {split: _rounded(v[split]) for split in EVAL_SPLITS}
        for variant, v in results.items()
    }


def _write_plots(
    folder: Path,
    labels: dict[str, np.ndarray],
    probabilities: dict,
    champion: str,
    runs_dir: Path,
    variants: list[str],
) -> None:
    """One file per kind of chart, every variant in it (`dvc plots show` overlays them): the
    validation loss per epoch, ROC and precision-recall on test; the champion's confusion."""
    write_json(folder / "loss.json", loss_curves(runs_dir, variants))
    curves = {"roc": [], "precision_recall": []}
    for variant, by_split in probabilities.items():
        for kind, points in curve_points(labels["test"], by_split["test"]).items():
            curves[kind] += [{"variant": variant, **point} for point in points]
    for kind, rows in curves.items():
        write_json(folder / f"{kind}.json", rows)
    predicted = labels_of(probabilities[champion]["test"])
    write_json_rows(
        folder / "confusion.json",
        (
            {"actual": int(a), "predicted": int(p)}
            for a, p in zip(labels["test"], predicted, strict=True)
        ),
    )


def loss_curves(runs_dir: Path, variants: list[str]) -> list[dict]:
    """Validation loss per epoch of every trained variant, from its history.csv."""
    rows = []
    for variant in variants:
        with (runs_dir / variant / "history.csv").open(encoding="utf-8", newline="") as f:
            rows += [
                {"variant": variant, "epoch": int(row["epoch"]), "val_loss": float(row["val_loss"])}
                for row in csv.DictReader(f)
            ]
    return rows
