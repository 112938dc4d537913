"""Probe: which members should the `ensemble` variant combine? An experiment only.

Scores every named variant of a benchmark run on its validation and test splits (exactly as
`evaluate` does), alone and in every combination under the ensemble's own rule (the mean
log-odds), so the members in params can be chosen on validation accuracy:

    python benchmarks/ensemble_probe.py --run benchmarks/runs/<run> \
        --out benchmarks/ensemble-probe.json tfidf base bilstm dropout

`--scores NAME=FILE.npz` adds a model trained elsewhere (e.g. by `lstm_probe.py
--probabilities` on the same split): its `validation` and `test` arrays of P(positive), in the
order of the split's records; with only such models, the run folder need hold just its
`data/split`, and no variant is named. `--group NAME=A+B` adds a member that is itself the
ensemble of A and B (their mean log-odds), so that, say, two LSTMs together weigh as much as one
TF-IDF model.
Only accuracy is computed for the combinations: the 4,095 of a dozen members take under a
minute here (with every metric of `evaluate.scores`, 8,191 ran past 20 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import date
from pathlib import Path

import numpy as np

from pipeline.ensemble import combine
from pipeline.evaluate import score_variant
from pipeline.io import read_jsonl
from pipeline.serving import Bundle

SPLITS = ("validation", "test")


def member_probabilities(run: Path, variants: list[str], splits: dict) -> dict:
    """variant -> split -> P(positive), from the run's trained bundles."""
    probabilities = {}
    for variant in variants:
        bundle = Bundle(run / "models" / variant, with_tokenizer=False)
        probabilities[variant] = {s: score_variant(bundle, splits[s])[1] for s in SPLITS}
    return probabilities


def external_probabilities(specs: list[str], sizes: dict[str, int]) -> dict:
    """NAME=FILE.npz -> {NAME: split -> P(positive)}, checked against the split sizes."""
    probabilities = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise SystemExit(f"--scores wants NAME=FILE.npz, got {spec!r}")
        with np.load(path) as scores:
            probabilities[name] = {s: scores[s] for s in SPLITS}
        wrong = [s for s in SPLITS if len(probabilities[name][s]) != sizes[s]]
        if wrong:
            raise SystemExit(f"{path}: {', '.join(wrong)} size differs from the run's split")
    return probabilities


def grouped_probabilities(specs: list[str], probabilities: dict) -> dict:
    """NAME=A+B -> {NAME: split -> the ensemble rule applied to A and B}."""
    groups = {}
    for spec in specs:
        name, _, joined = spec.partition("=")
        members = joined.split("+")
        unknown = [m for m in members if m not in probabilities]
        if not name or "+" in name or len(members) < 2 or unknown:
            raise SystemExit(
                f"--group wants NAME=A+B (NAME without '+') of known members, got {spec!r}"
            )
        groups[name] = {s: combine([probabilities[m][s] for m in members]) for s in SPLITS}
    return groups


def accuracy(labels: np.ndarray, probability: np.ndarray) -> float:
    """As `evaluate.scores`' accuracy (threshold 0.5), without its slower metrics."""
    return round(float(np.mean((probability >= 0.5) == labels)), 4)


def combination_scores(probabilities: dict, labels: dict) -> dict:
    """'+'-joined members -> split -> accuracy, for every variant alone and every combination."""
    names = list(probabilities)
    results = {}
    for size in range(1, len(names) + 1):
        for members in itertools.combinations(names, size):
            results["+".join(members)] = {
                s: accuracy(labels[s], combine([probabilities[m][s] for m in members]))
                for s in SPLITS
            }
    return dict(sorted(results.items(), key=lambda item: -item[1]["validation"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a benchmark run folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scores", action="append", default=[], metavar="NAME=FILE.npz")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=A+B")
    parser.add_argument("variants", nargs="*", help="the run's trained variants to score")
    args = parser.parse_args()
    if not args.variants and not args.scores:
        parser.error("name the run's variants, or models scored elsewhere with --scores")

    splits = {s: read_jsonl(args.run / "data" / "split" / f"{s}.jsonl") for s in SPLITS}
    labels = {s: np.array([r["label"] for r in records]) for s, records in splits.items()}
    probabilities = member_probabilities(args.run, args.variants, splits)
    probabilities |= external_probabilities(args.scores, {s: len(labels[s]) for s in SPLITS})
    probabilities |= grouped_probabilities(args.group, probabilities)
    results = {
        "date": date.today().isoformat(),
        "run": args.run.name,
        "scores": args.scores,
        "groups": args.group,
        "accuracy": combination_scores(probabilities, labels),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
