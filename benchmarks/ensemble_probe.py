"""Which variants should the `ensemble` combine? Every combination of trained variants, scored.

Scores each trained variant (a bundle folder under `--models-dir`, as `dvc repro` leaves them)
on the validation and test splits exactly as `evaluate` does, then every combination of them
under the ensemble's own rule (the mean log-odds, `pipeline.ensemble.combine`), and logs the
ranking by validation accuracy to MLflow: one run in the experiment `--experiment` of the
project's tracking store (`MLFLOW_TRACKING_URI`, else the project's `mlflow.db`), with the table
of every combination as the artifact `combinations.json`. Nothing git tracks is written.
Run it from the project root after `dvc repro`:

    python benchmarks/ensemble_probe.py                          # every variant under models/
    python benchmarks/ensemble_probe.py tfidf_nb tfidf_morph base bilstm

Choose on validation, then put the members into params `evaluate.ensemble.members`; the test
column is there to report, not to choose by. `slice_probe.py` shares this file's helpers.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
import numpy as np

from pipeline import bundle
from pipeline.cli import PipelineCommand
from pipeline.ensemble import combine
from pipeline.errors import PipelineError
from pipeline.io import read_jsonl, sha256_file
from pipeline.probability import labels_of

SPLITS = ("validation", "test")
EXPERIMENT = "probes"
MAX_VARIANTS = 16  # 65,535 combinations
# Variant names end up in MLflow metric keys, which allow only these characters.
NAME = re.compile(r"^[\w.-]+$")


def bundle_names(models_dir: Path) -> list[str]:
    """The folders under `models_dir` that hold a trained bundle, sorted."""
    return sorted(p.name for p in models_dir.iterdir() if bundle.is_bundle(p))


def chosen_variants(models_dir: Path, named: Sequence[str], minimum: int = 1) -> list[str]:
    """The named variants, or every bundle under `models_dir`; each must be a trained bundle."""
    available = bundle_names(models_dir)
    variants = list(named) or available
    missing = [v for v in variants if v not in available]
    if missing:
        raise PipelineError(
            f"no trained bundle for {', '.join(map(repr, missing))} under {models_dir}; "
            f"found {', '.join(available) or 'none'}"
        )
    if len(set(variants)) != len(variants):
        raise PipelineError(f"a variant is named twice: {' '.join(variants)}")
    if len(variants) < minimum:
        raise PipelineError(f"name at least {minimum} variants; got {len(variants)}")
    if len(variants) > MAX_VARIANTS:
        raise PipelineError(f"name at most {MAX_VARIANTS} variants; got {len(variants)}")
    bad = [v for v in variants if not NAME.match(v)]
    if bad:
        raise PipelineError(
            f"variant names may hold letters, digits, '_', '-' and '.' only: {', '.join(bad)}"
        )
    return variants


def read_splits(data_dir: Path) -> dict[str, list[dict]]:
    """The validation and test records `split` wrote, each checked to be there and non-empty."""
    splits = {}
    for split in SPLITS:
        path = data_dir / f"{split}.jsonl"
        if not path.is_file():
            raise PipelineError(f"{path} not found: --data-dir names the output of `split`")
        splits[split] = read_jsonl(path)
        if not splits[split]:
            raise PipelineError(f"{path} holds no records")
    return splits


def member_probabilities(
    models_dir: Path, variants: Sequence[str], splits: dict[str, list[dict]]
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> split -> P(positive), scored as `evaluate` scores (from the split's tokens)."""
    from pipeline.evaluate import score_variant
    from pipeline.serving import Bundle

    probabilities = {}
    for variant in variants:
        model = Bundle(models_dir / variant, with_tokenizer=False)
        if model.meta["type"] == "ensemble":
            raise PipelineError(f"{variant!r} is an ensemble bundle: name its members instead")
        for needs in model.scorer.tokenizers:
            if needs not in splits[SPLITS[0]][0].get("tokens", {}):
                raise PipelineError(
                    f"variant {variant!r} reads tokens of tokenizer {needs!r}, "
                    "which the split lacks"
                )
        probabilities[variant] = {s: score_variant(model, splits[s])[1] for s in SPLITS}
    return probabilities


def split_labels(splits: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    return {s: np.array([r["label"] for r in records]) for s, records in splits.items()}


def cached_probabilities(
    path: Path, score: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """split -> P(positive), read from `path`; when it is not there, `score()`'s, saved there first
    (a probe's cache: a rerun refits and rescores nothing)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **score())
    with np.load(path) as loaded:
        return {split: loaded[split] for split in SPLITS}


def accuracy(labels: np.ndarray, probability: np.ndarray) -> float:
    """As `evaluate.scores`' accuracy (threshold 0.5), without its slower metrics."""
    return float(np.mean(labels_of(probability) == labels))


def combination_scores(
    probabilities: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray]
) -> list[dict]:
    """One row per combination (each variant alone first), best validation accuracy first;
    ties keep the smaller combination first."""
    names = list(probabilities)
    rows = []
    for size in range(1, len(names) + 1):
        for members in itertools.combinations(names, size):
            row = {"members": "+".join(members), "size": size}
            for split in SPLITS:
                combined = combine([probabilities[m][split] for m in members])
                row[f"{split}_accuracy"] = accuracy(labels[split], combined)
            rows.append(row)
    return sorted(rows, key=lambda row: -row["validation_accuracy"])


def best_ensemble(rows: list[dict]) -> dict:
    """The best row on validation with at least two members (what `ensemble` can be)."""
    return next(row for row in rows if row["size"] >= 2)


def data_params(data_dir: Path) -> dict[str, str]:
    """Which split was scored: its folder and the first 16 hex digits of each file's SHA-256."""
    params = {"data_dir": str(data_dir)}
    for split in SPLITS:
        params[f"{split}_digest"] = sha256_file(data_dir / f"{split}.jsonl")[:16]
    return params


@contextlib.contextmanager
def probe_run(probe: str, experiment: str, params: dict) -> Iterator:
    """One MLflow run named after the probe, in the project's store as the pipeline's runs are
    (`pipeline.tracking.configure`), ended FINISHED, FAILED or KILLED like theirs."""
    import mlflow

    from pipeline.project import git_commit, repo_root
    from pipeline.tracking import configure, experiment_id, tracked_run

    root = repo_root()
    configure(root)
    tags = {"probe": probe}
    commit = git_commit(root)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    with tracked_run(experiment_id(experiment, root), probe, tags) as run:
        mlflow.log_params(params)
        yield run


def log_ranking(rows: list[dict]) -> None:
    """Each variant's accuracy alone, the best ensemble's, and the whole table, into the run."""
    import mlflow
    import pandas as pd

    best = best_ensemble(rows)
    mlflow.log_param("best_members", best["members"].replace("+", ","))
    metrics = {f"best/{split}_accuracy": best[f"{split}_accuracy"] for split in SPLITS} | {
        f"{row['members']}/{split}_accuracy": row[f"{split}_accuracy"]
        for row in rows
        if row["size"] == 1
        for split in SPLITS
    }
    mlflow.log_metrics(metrics)
    mlflow.log_table(pd.DataFrame(rows), "combinations.json")


def data_options(command):
    """--data-dir and --models-dir, as every probe takes them."""
    for option in reversed(
        [
            click.option(
                "--data-dir",
                type=click.Path(path_type=Path, exists=True, file_okay=False),
                default="data/split",
                show_default=True,
                help="Output folder of `split` (validation.jsonl, test.jsonl).",
            ),
            click.option(
                "--models-dir",
                type=click.Path(path_type=Path, exists=True, file_okay=False),
                default="models",
                show_default=True,
                help="Folder of trained bundles, one folder per variant.",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command(cls=PipelineCommand)
@data_options
@click.option("--experiment", default=EXPERIMENT, show_default=True, help="MLflow experiment.")
@click.option("--top", default=10, show_default=True, help="How many combinations to print.")
@click.argument("variants", nargs=-1)
def command(data_dir, models_dir, experiment, top, variants):
    """Score every combination of VARIANTS (default: every bundle under --models-dir) as an
    ensemble, on validation and test, and log the ranking to MLflow."""
    variants = chosen_variants(models_dir, variants, minimum=2)
    splits = read_splits(data_dir)
    params = {
        **data_params(data_dir),
        "models_dir": str(models_dir),
        "variants": ",".join(variants),
    }
    with probe_run("ensemble_probe", experiment, params) as run:
        rows = combination_scores(
            member_probabilities(models_dir, variants, splits), split_labels(splits)
        )
        log_ranking(rows)
    click.echo("validation / test accuracy, best on validation first:")
    for row in rows[:top]:
        click.echo(
            f"  {row['validation_accuracy']:.4f} / {row['test_accuracy']:.4f}  {row['members']}"
        )
    best = best_ensemble(rows)
    click.echo(
        f"best ensemble on validation: [{', '.join(best['members'].split('+'))}] "
        "(params evaluate.ensemble.members)"
    )
    click.echo(f"{len(rows)} combinations logged to MLflow run {run.info.run_id} ({experiment})")


def run_quietly(probe: click.Command) -> None:
    """Run a probe script as `python -m pipeline` runs a stage: without the start-up chatter of
    TensorFlow, absl and MLflow, unless PIPELINE_VERBOSE=1."""
    from pipeline import quiet

    if not quiet.verbose():
        quiet.quiet_env()
        quiet.quiet_python()
        quiet.filter_native_stderr()
    probe()


if __name__ == "__main__":
    run_quietly(command)
