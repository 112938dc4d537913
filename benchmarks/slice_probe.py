"""Where do the variants differ? Accuracy by review length, on validation and test.

Scores trained variants (bundle folders under `--models-dir`) on the validation and test splits
exactly as `evaluate` does and logs their accuracy overall and on slices by the number of
tokens of one tokenizer to MLflow: one run in the experiment `--experiment` of the project's
tracking store, metrics `<variant>/<split>/<slice>` and `reviews/<split>/<slice>`, and the whole
table as the artifact `slices.json`. Reviews longer than an LSTM's `max_length` (it reads only
their start) can so be compared with a TF-IDF model that reads them whole. Nothing git tracks is
written. Run it from the project root after `dvc repro`:

    python benchmarks/slice_probe.py                           # every variant under models/
    python benchmarks/slice_probe.py --edges 10,30,60 tfidf base bilstm

Slices for edges 10,30,60: `le10` (10 tokens or fewer), `11-30`, `31-60`, `gt60`, and `all`.
Bundles trained on the same split with other settings (`python -m pipeline train --overrides
... --model-dir models/<name>`) can sit beside the pipeline's own.
"""

from __future__ import annotations

import itertools

import click
import numpy as np
from ensemble_probe import (
    EXPERIMENT,
    SPLITS,
    accuracy,
    chosen_variants,
    data_options,
    data_params,
    member_probabilities,
    probe_run,
    read_splits,
    run_quietly,
    split_labels,
)

from pipeline.cli import PipelineCommand
from pipeline.errors import PipelineError


def parse_edges(text: str) -> list[int]:
    """'10,30,60' -> [10, 30, 60]: positive whole numbers of tokens, strictly increasing."""
    try:
        edges = [int(edge) for edge in text.split(",")]
    except ValueError:
        edges = []
    if not edges or edges[0] < 1 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise PipelineError(
            f"--edges wants increasing whole numbers of tokens, e.g. 10,30,60; got {text!r}"
        )
    return edges


def slice_masks(lengths: np.ndarray, edges: list[int]) -> dict[str, np.ndarray]:
    """'all', then one slice per interval: 'le10', '11-30', ..., 'gt60' for edges 10,30,60."""
    masks = {"all": np.ones(len(lengths), dtype=bool), f"le{edges[0]}": lengths <= edges[0]}
    for low, high in itertools.pairwise(edges):
        masks[f"{low + 1}-{high}"] = (lengths > low) & (lengths <= high)
    masks[f"gt{edges[-1]}"] = lengths > edges[-1]
    return masks


def token_lengths(records: list[dict], tokenizer: str) -> np.ndarray:
    """Each record's number of tokens of `tokenizer`, as `split` stored them."""
    known = records[0].get("tokens", {})
    if tokenizer not in known:
        raise PipelineError(
            f"the split holds no tokens of tokenizer {tokenizer!r}; it has "
            f"{', '.join(known) or 'none'}"
        )
    return np.array([len(r["tokens"][tokenizer]) for r in records])


def slice_rows(
    probabilities: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    masks: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
    """One row per variant, split and slice: reviews in the slice and accuracy (None if empty)."""
    return [
        {
            "variant": variant,
            "split": split,
            "slice": name,
            "reviews": int(mask.sum()),
            "accuracy": accuracy(labels[split][mask], by_split[split][mask])
            if mask.any()
            else None,
        }
        for variant, by_split in probabilities.items()
        for split in SPLITS
        for name, mask in masks[split].items()
    ]


def log_slices(rows: list[dict]) -> None:
    """Accuracy per variant/split/slice and the slice sizes as metrics, the table as artifact."""
    import mlflow
    import pandas as pd

    metrics = {f"reviews/{r['split']}/{r['slice']}": r["reviews"] for r in rows} | {
        f"{r['variant']}/{r['split']}/{r['slice']}": r["accuracy"]
        for r in rows
        if r["accuracy"] is not None
    }
    mlflow.log_metrics(metrics)
    mlflow.log_table(pd.DataFrame(rows), "slices.json")


@click.command(cls=PipelineCommand)
@data_options
@click.option(
    "--tokenizer", default="morph", show_default=True, help="Whose tokens the lengths count."
)
@click.option("--edges", default="10,30,60", show_default=True, help="Slice edges, in tokens.")
@click.option("--experiment", default=EXPERIMENT, show_default=True, help="MLflow experiment.")
@click.argument("variants", nargs=-1)
def command(data_dir, models_dir, tokenizer, edges, experiment, variants):
    """Accuracy of VARIANTS (default: every bundle under --models-dir) by review length, on
    validation and test, logged to MLflow."""
    edges = parse_edges(edges)
    variants = chosen_variants(models_dir, variants)
    splits = read_splits(data_dir)
    masks = {
        s: slice_masks(token_lengths(records, tokenizer), edges) for s, records in splits.items()
    }
    params = {
        **data_params(data_dir),
        "models_dir": str(models_dir),
        "variants": ",".join(variants),
        "tokenizer": tokenizer,
        "edges": ",".join(map(str, edges)),
    }
    with probe_run("slice_probe", experiment, params) as run:
        rows = slice_rows(
            member_probabilities(models_dir, variants, splits), split_labels(splits), masks
        )
        log_slices(rows)
    for split in SPLITS:
        click.echo(
            f"{split}: " + ", ".join(f"{name} {int(m.sum())}" for name, m in masks[split].items())
        )
        for variant in variants:
            cells = [
                "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
                for r in rows
                if r["variant"] == variant and r["split"] == split
            ]
            click.echo(f"  {variant}: {' '.join(cells)}")
    click.echo(f"logged to MLflow run {run.info.run_id} ({experiment})")


if __name__ == "__main__":
    run_quietly(command)
