"""Probe: where do the models differ? Accuracy by review length, per split. An experiment only.

Scores trained bundles (folders under `<run>/models/`, as `train --model-dir` writes them) on the
run's validation and test splits exactly as `evaluate` does, and reports accuracy overall and
on slices by the number of tokens of a tokenizer, so that, say, reviews longer than an LSTM's
`max_length` (which it reads only the start of) can be compared with a TF-IDF model that reads
them whole:

    python benchmarks/slice_probe.py --run benchmarks/runs/<run> --out benchmarks/slices.json \
        --edges 10,30,60 tfidf base dropout bilstm

A folder need not come from the run's own `dvc repro`: bundles trained on the same split with
other settings or seeds (e.g. `python -m pipeline train --overrides ... --model-dir`) can sit
beside them.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np
from ensemble_probe import SPLITS, accuracy, member_probabilities

from pipeline.io import read_jsonl


def slice_masks(lengths: np.ndarray, edges: list[int]) -> dict[str, np.ndarray]:
    """'all', then one slice per interval between the edges: '<=10', '11-30', ..., '>60'."""
    masks = {"all": np.ones(len(lengths), dtype=bool)}
    low = 0
    for edge in edges:
        name = f"<={edge}" if low == 0 else f"{low + 1}-{edge}"
        masks[name] = (lengths > low) & (lengths <= edge) if low else lengths <= edge
        low = edge
    masks[f">{low}"] = lengths > low
    return masks


def slice_accuracy(labels: np.ndarray, probability: np.ndarray, masks: dict) -> dict:
    """slice -> accuracy (as `evaluate.scores`), None for an empty slice."""
    return {
        name: accuracy(labels[mask], probability[mask]) if mask.any() else None
        for name, mask in masks.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="folder with data/split, models")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", default="morph", help="whose tokens the lengths count")
    parser.add_argument("--edges", default="10,30,60", help="slice edges, in tokens")
    parser.add_argument("models", nargs="+", help="folders under <run>/models")
    args = parser.parse_args()
    edges = sorted(int(e) for e in args.edges.split(","))

    splits = {s: read_jsonl(args.run / "data" / "split" / f"{s}.jsonl") for s in SPLITS}
    probabilities = member_probabilities(args.run, args.models, splits)
    results, sizes = {}, {}
    for split, records in splits.items():
        labels = np.array([r["label"] for r in records])
        masks = slice_masks(np.array([len(r["tokens"][args.tokenizer]) for r in records]), edges)
        sizes[split] = {name: int(mask.sum()) for name, mask in masks.items()}
        results[split] = {
            model: slice_accuracy(labels, probabilities[model][split], masks)
            for model in args.models
        }
    report = {
        "date": date.today().isoformat(),
        "run": args.run.name,
        "tokenizer": args.tokenizer,
        "reviews": sizes,
        "accuracy": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
