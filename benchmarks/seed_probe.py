"""An ensemble's seed spread: its LSTM members retrained with other seeds, measured.

Retrains each LSTM among the ensemble's members (`evaluate.ensemble.members` of `--params`, or
the VARIANTS named) once per seed of `--seeds`, on `split`'s output and with `--params`'
settings, as `train` does. Each seed's ensemble combines those with the other members' trained
bundles under `--models-dir` (a TF-IDF fit does not depend on the seed), and the bundles alone
are the seed `train.seed` of `--params`. Logs one run to the MLflow experiment `probes`: every
seed's validation and test accuracy, the ensemble's and each retrained member's, their mean and
their spread (largest minus smallest), and the table as `seeds.json`. Probabilities are cached
under `--cache-dir` (one folder per split scored), so a rerun retrains nothing.

    python benchmarks/seed_probe.py --cache-dir /tmp/seed-probe --seeds 1,2
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import click
import numpy as np
from ensemble_probe import (
    SPLITS,
    accuracy,
    cached_probabilities,
    chosen_variants,
    data_params,
    member_probabilities,
    probe_run,
    read_splits,
    run_quietly,
    split_labels,
)

from pipeline.cli import PipelineCommand
from pipeline.ensemble import combine
from pipeline.errors import PipelineError
from pipeline.io import read_jsonl
from pipeline.schema import load_section
from pipeline.train import TrainSettings
from pipeline.variants import LstmConfig


def parse_seeds(text: str) -> list[int]:
    """'1,2' -> [1, 2]: distinct non-negative integers."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise PipelineError(f"--seeds takes integers separated by commas; got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise PipelineError(f"--seeds takes distinct non-negative integers; got {text!r}")
    return seeds


def ensemble_members(params_path: Path, named: tuple[str, ...]) -> list[str]:
    """The VARIANTS named, else the ensemble's members in `params_path`."""
    if named:
        return list(named)
    members = (load_section(params_path, "evaluate").get("ensemble") or {}).get("members")
    if not members:
        raise PipelineError(f"{params_path} names no ensemble members: name the VARIANTS")
    return list(members)


def settings_tag(settings) -> str:
    """The variant's name and a digest of its settings: a cached result is of these settings."""
    text = json.dumps(asdict(settings.config), sort_keys=True)
    return f"{settings.variant}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def retrained(settings, data_dir: Path, splits: dict, folder: Path) -> dict[str, np.ndarray]:
    """P(positive) on validation and test of the variant trained as `train` trains it."""
    from pipeline.train import read_vocab, train_variant, write_bundle

    variant = settings.variant
    fit = {s: read_jsonl(data_dir / f"{s}.jsonl") for s in ("train", "validation")}
    write_bundle(train_variant(settings, fit, read_vocab(data_dir, settings)), folder / variant)
    return member_probabilities(folder, [variant], splits)[variant]


def seed_rows(seeds: dict[int, dict], labels: dict, members: list[str]) -> list[dict]:
    """One row per seed: the ensemble's accuracy and each member's, per split."""
    rows = []
    for seed, probabilities in seeds.items():
        row = {"seed": seed}
        for split in SPLITS:
            ensemble = combine([probabilities[m][split] for m in members])
            row[f"ensemble/{split}_accuracy"] = accuracy(labels[split], ensemble)
            for member in members:
                row[f"{member}/{split}_accuracy"] = accuracy(
                    labels[split], probabilities[member][split]
                )
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict[str, float]:
    """Per accuracy column: the mean over the seeds and the spread (largest minus smallest)."""
    out = {}
    for key in (k for k in rows[0] if k != "seed"):
        values = [row[key] for row in rows]
        out[f"mean/{key}"] = float(np.mean(values))
        out[f"spread/{key}"] = max(values) - min(values)
    return out


@click.command(cls=PipelineCommand)
@click.option("--data-dir", type=click.Path(path_type=Path, exists=True), default="data/split")
@click.option("--models-dir", type=click.Path(path_type=Path, exists=True), default="models")
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default="params.yaml",
    help="Params of the run that trained --models-dir.",
)
@click.option("--cache-dir", type=click.Path(path_type=Path), required=True)
@click.option("--seeds", "seeds_text", required=True, help="Seeds to retrain with, e.g. 1,2.")
@click.option("--experiment", default="probes", show_default=True)
@click.argument("variants", nargs=-1)
def command(data_dir, models_dir, params_path, cache_dir, seeds_text, experiment, variants):
    """Retrain the ensemble's LSTM members with each seed; log the ensemble's seed spread."""
    seeds = parse_seeds(seeds_text)
    members = chosen_variants(models_dir, ensemble_members(params_path, variants), minimum=2)
    section = load_section(params_path, "train")
    lstms = {
        m: settings
        for m in members
        if isinstance((settings := TrainSettings.from_params(section, m)).config, LstmConfig)
    }
    if not lstms:
        raise PipelineError(f"no LSTM among {', '.join(members)}: nothing depends on the seed")
    if section["seed"] in seeds:
        raise PipelineError(f"seed {section['seed']} is the bundles' own (train.seed)")
    splits = read_splits(data_dir)
    labels = split_labels(splits)
    params = {**data_params(data_dir), "members": ",".join(members), "seeds": seeds_text}
    with probe_run("seed_probe", experiment, params) as run:
        import mlflow
        import pandas as pd

        cache_dir = cache_dir / params["validation_digest"]
        trained = member_probabilities(models_dir, members, splits)
        by_seed = {section["seed"]: trained}
        for seed in seeds:
            by_seed[seed] = dict(trained)
            for variant, settings in lstms.items():
                settings = replace(settings, seed=seed)
                by_seed[seed][variant] = cached_probabilities(
                    cache_dir / f"{settings_tag(settings)}-seed{seed}.npz",
                    lambda s=settings: retrained(s, data_dir, splits, cache_dir / f"seed{s.seed}"),
                )
        rows = seed_rows(by_seed, labels, members)
        spread = summary(rows)
        mlflow.log_metrics(spread)
        mlflow.log_metrics(
            {f"seed_{r['seed']}/{k}": v for r in rows for k, v in r.items() if k != "seed"}
        )
        mlflow.log_table(pd.DataFrame(rows), "seeds.json")
    click.echo("seed  ensemble val / test  " + "  ".join(f"{m} val / test" for m in lstms))
    for row in rows:
        cells = [
            f"{row[f'{n}/validation_accuracy']:.4f} / {row[f'{n}/test_accuracy']:.4f}"
            for n in ("ensemble", *lstms)
        ]
        click.echo(f"{row['seed']:>4}  " + "  ".join(cells))
    click.echo(
        f"ensemble spread over {len(rows)} seeds: validation "
        f"{spread['spread/ensemble/validation_accuracy']:.4f}, test "
        f"{spread['spread/ensemble/test_accuracy']:.4f}"
    )
    click.echo(f"logged to MLflow run {run.info.run_id} ({experiment})")


if __name__ == "__main__":
    run_quietly(command)
