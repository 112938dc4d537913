"""Probe: would other TF-IDF settings make better ensemble members on NSMC? An experiment only.

Each probe is a variant of `params.yaml` with some settings changed, fitted by the pipeline's
own code (pipeline/baseline.py) on the split of a benchmark run and scored on its validation
and test splits:

    python benchmarks/tfidf_probe.py --split-dir benchmarks/runs/<run>/data/split \
        --out benchmarks/tfidf-probe.json --probabilities benchmarks/probabilities \
        char15_C4=tfidf_nb:ngram_max=5,C=4 morph13_C4=tfidf_morph:C=4

`--probabilities DIR` keeps each probe's P(positive) as DIR/NAME.npz, for
`benchmarks/ensemble_probe.py --scores NAME=DIR/NAME.npz`. The results file is rewritten after
every probe, keeping the probes it already holds.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np

from pipeline.baseline import TfidfScorer, fit_tfidf_logreg
from pipeline.io import read_jsonl
from pipeline.models import TfidfConfig, variant_from_params
from pipeline.params import read_section
from pipeline.train import _tfidf_documents, parse_overrides  # as the pipeline reads them

SPLITS = ("train", "validation", "test")
SEED = 42  # the benchmark's


def probe_config(spec: str, variants: dict) -> tuple[str, TfidfConfig, dict]:
    """'NAME=VARIANT:key=value,key=value' -> (NAME, the variant's config with those changes)."""
    name, _, rest = spec.partition("=")
    variant, _, changes = rest.partition(":")
    if not name or variant not in variants:
        raise SystemExit(
            f"want NAME=VARIANT[:key=value,...] with a variant of params, got {spec!r}"
        )
    overrides = parse_overrides(changes.replace(",", " "))
    cfg = variant_from_params(variant, {**variants[variant], **overrides})
    if not isinstance(cfg, TfidfConfig):
        raise SystemExit(f"{spec!r}: {variant} is not a TF-IDF variant")
    return name, cfg, {"variant": variant, "changes": overrides}


def fit_and_score(cfg: TfidfConfig, splits: dict) -> tuple[dict, dict]:
    """(results, split -> P(positive) on validation and test)."""
    docs = {s: _tfidf_documents(records, cfg) for s, records in splits.items()}
    labels = {s: np.array([r["label"] for r in records]) for s, records in splits.items()}
    started = time.perf_counter()
    exported = fit_tfidf_logreg(docs["train"], labels["train"], cfg, SEED)
    seconds = time.perf_counter() - started
    scorer = TfidfScorer(exported)
    probabilities = {s: scorer(docs[s]).astype(np.float32) for s in SPLITS[1:]}
    results = {
        "fit_seconds": round(seconds, 1),
        "terms": len(exported["terms"]),
        **{
            f"{s}_accuracy": round(float(np.mean((p >= 0.5) == labels[s])), 4)
            for s, p in probabilities.items()
        },
    }
    return results, probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--probabilities", type=Path, help="keep P(positive) as DIR/NAME.npz")
    parser.add_argument("probes", nargs="+", metavar="NAME=VARIANT[:key=value,...]")
    args = parser.parse_args()

    variants = read_section(args.params, "train")["variants"]
    probes = [probe_config(spec, variants) for spec in args.probes]
    splits = {s: read_jsonl(args.split_dir / f"{s}.jsonl") for s in SPLITS}
    results = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    for name, cfg, recipe in probes:
        measured, probabilities = fit_and_score(cfg, splits)
        if args.probabilities:
            args.probabilities.mkdir(parents=True, exist_ok=True)
            np.savez(args.probabilities / f"{name}.npz", **probabilities)
        results[name] = {
            "date": date.today().isoformat(),
            "run": args.split_dir.parent.parent.name,
            **recipe,
            **measured,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(name, measured, flush=True)


if __name__ == "__main__":
    main()
