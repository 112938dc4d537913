"""Stage `evaluate`: score every variant, write a leaderboard, and register the champion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from sklearn import metrics as skm

from pipeline import ensemble
from pipeline.ensemble import EnsembleConfig
from pipeline.errors import PipelineError
from pipeline.io import atomic_dir, read_json, read_jsonl, write_json
from pipeline.options import input_dir, params_option, path_option
from pipeline.params import check_keys, read_section
from pipeline.serving import Bundle

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
LOWER_IS_BETTER = {"log_loss"}
EVAL_SPLITS = ("validation", "test")
CURVE_POINTS = 200


@dataclass(frozen=True)
class EvaluateConfig:
    registered_model: str
    select_by: str
    gate: dict[str, float]
    ensemble: EnsembleConfig | None = None

    @classmethod
    def from_params(cls, section: dict, variants: list[str]) -> EvaluateConfig:
        check_keys("evaluate", section, set(cls.__dataclass_fields__))
        cfg = cls(
            **{**section, "ensemble": EnsembleConfig.from_params(section.get("ensemble"), variants)}
        )
        for name in (cfg.select_by, *cfg.gate):
            if name not in METRICS:
                raise PipelineError(
                    f"evaluate: unknown metric {name!r}; use one of {', '.join(METRICS)}"
                )
        return cfg


@dataclass(frozen=True)
class Verdict:
    champion: str
    passed: bool
    reasons: list[str]


def scores(labels: np.ndarray, probability: np.ndarray) -> dict:
    predicted = (probability >= 0.5).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probability)),
        "log_loss": float(
            skm.log_loss(labels, np.clip(probability, 1e-7, 1 - 1e-7), labels=[0, 1])
        ),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def score_variant(bundle: Bundle, records: list[dict]) -> tuple[dict, np.ndarray]:
    texts = [r["text"] for r in records]
    name = bundle.tokenizer_name  # the split's stored tokens, so nothing is tokenized again
    tokens = {name: [r["tokens"][name] for r in records]} if name else None
    probability = bundle.probabilities(texts, tokens)
    return scores(np.array([r["label"] for r in records]), probability), probability


def score_variants(
    variants: list[str], models_dir: Path, runs_dir: Path, splits: dict[str, list[dict]]
) -> tuple[dict, dict, dict]:
    """Per variant: metrics and P(positive) per split, and the leaderboard's training columns."""
    results, probabilities, extras = {}, {}, {}
    for variant in variants:
        bundle = Bundle(models_dir / variant, with_tokenizer=False)  # records carry tokens
        results[variant], probabilities[variant] = {}, {}
        for name, records in splits.items():
            results[variant][name], probabilities[variant][name] = score_variant(bundle, records)
        trained = read_json(runs_dir / variant / "metrics.json")
        extras[variant] = {
            "type": bundle.meta["type"],
            "best_epoch": trained["best_epoch"],
            "train_seconds": trained["train_seconds"],
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
    seconds = round(sum(extras[m]["train_seconds"] for m in members), 2)
    return results, combined, {"type": ensemble.TYPE, "best_epoch": None, "train_seconds": seconds}


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
    sign = -1 if cfg.select_by in LOWER_IS_BETTER else 1
    order = sorted(results, key=lambda v: (-sign * results[v]["validation"][cfg.select_by], v))
    rows = [
        {
            "rank": rank,
            "variant": variant,
            **extras[variant],
            **{f"val_{m}": round(results[variant]["validation"][m], 4) for m in METRICS},
            **{f"test_{m}": round(results[variant]["test"][m], 4) for m in METRICS},
            "champion": variant == verdict.champion and verdict.passed,
        }
        for rank, variant in enumerate(order, start=1)
    ]
    columns = [
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
        "train_seconds",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        name = f"**{row['variant']}** (champion)" if row["champion"] else row["variant"]
        lines.append(
            "| " + " | ".join(name if c == "variant" else _cell(row[c]) for c in columns) + " |"
        )
    title = f"Variants ranked by validation {cfg.select_by}"
    return rows, f"# {title}\n\n" + "\n".join(lines) + "\n"


def _cell(value) -> str:
    return "–" if value is None else str(value)


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
@input_dir("--runs-dir", "Folder holding <variant>/run.json and metrics.json.")
@path_option("--ensemble-dir", "Where the ensemble's bundle goes (params evaluate.ensemble).")
@path_option("--out-dir", "Where metrics.json, leaderboard.md/json, champion.json and plots/ go.")
def command(params_path, data_dir, models_dir, runs_dir, ensemble_dir, out_dir):
    """Score all variants on validation and test, log to their runs, register the champion."""
    from pipeline import registry
    from pipeline.tracking import ensemble_run

    train = read_section(params_path, "train")
    variants = variants_in(train)
    cfg = EvaluateConfig.from_params(read_section(params_path, "evaluate"), variants)
    missing = [v for v in variants if not (models_dir / v).is_dir()]
    if missing:
        raise PipelineError(f"no trained model for variant(s) {', '.join(missing)} in {models_dir}")
    splits = {name: read_jsonl(data_dir / f"{name}.jsonl") for name in EVAL_SPLITS}
    labels = {name: np.array([r["label"] for r in records]) for name, records in splits.items()}
    results, probabilities, extras = score_variants(variants, models_dir, runs_dir, splits)
    runs = {v: read_json(runs_dir / v / "run.json") for v in variants}
    with atomic_dir(ensemble_dir) as tmp:
        if cfg.ensemble is None:
            (tmp / "NONE").write_text("params evaluate.ensemble lists no members\n")
        else:
            ensemble.write_bundle({m: models_dir / m for m in cfg.ensemble.members}, tmp)
    if cfg.ensemble is not None:
        members = cfg.ensemble.members
        name = ensemble.NAME
        results[name], probabilities[name], extras[name] = ensemble_scores(
            members, probabilities, labels, extras
        )
        runs[name] = ensemble_run(train["experiment"], {m: runs[m] for m in members}, ensemble_dir)
    verdict = choose(results, cfg)
    rows, markdown = leaderboard(results, extras, cfg, verdict)
    registry.log_evaluation(runs, results)
    champion = registry.promote(
        cfg,
        verdict,
        runs[verdict.champion],
        results[verdict.champion],
    )
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "metrics.json", _scalar_metrics(results))
        write_json(tmp / "leaderboard.json", rows)
        (tmp / "leaderboard.md").write_text(markdown, encoding="utf-8")
        write_json(tmp / "champion.json", champion)
        _write_plots(tmp / "plots", labels, probabilities)
    click.echo(markdown)
    if verdict.passed:
        click.echo(f"champion: {verdict.champion} -> {cfg.registered_model} v{champion['version']}")
    else:
        click.secho(
            f"champion candidate {verdict.champion} failed the gate "
            f"({'; '.join(verdict.reasons)}); the alias 'champion' of "
            f"{cfg.registered_model} was left unchanged",
            fg="yellow",
        )


def _scalar_metrics(results: dict[str, dict]) -> dict:
    return {
        variant: {split: {m: round(v[split][m], 4) for m in METRICS} for split in EVAL_SPLITS}
        for variant, v in results.items()
    }


def _write_plots(folder: Path, labels: dict[str, np.ndarray], probabilities: dict) -> None:
    for variant, by_split in probabilities.items():
        test = by_split["test"]
        confusion = [
            {"actual": int(a), "predicted": int(p)}
            for a, p in zip(labels["test"], test >= 0.5, strict=True)
        ]
        write_json(folder / "confusion" / f"{variant}.json", confusion)
        for name, points in curve_points(labels["test"], test).items():
            write_json(folder / name / f"{variant}.json", points)
