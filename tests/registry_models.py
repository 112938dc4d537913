"""Real models of known quality, logged as real MLflow runs, for the registry's tests (shared by
tests/test_registry.py and tests/test_registry_server.py; not a test module itself).

Validation and test hold four signal words, two per class. `good` was trained on all four
(accuracy 1.0), `medium` on two (0.75), `bad` on flipped labels (0.0). Two data folders hold the
same validation and test splits; their train files differ, so their data digests do."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import bundle, registry, tracking
from pipeline.evaluate import Verdict
from pipeline.io import sha256_file, write_jsonl
from pipeline.promotion import Origin, Rule
from pipeline.scoring import scores
from pipeline.serving import Bundle
from pipeline.train import TrainSettings, train_variant, write_bundle

TFIDF = {
    "type": "tfidf_logreg",
    "tokenizer": None,
    "analyzer": "char",
    "ngram_min": 1,
    "ngram_max": 2,
    "min_df": 1,
    "max_features": 1000,
    "sublinear_tf": True,
    "nb_scaling": False,
    "C": 10.0,
}
WORDS = ((1, "좋다"), (0, "싫다"), (1, "최고"), (0, "최악"))
COMMITTED = Origin(commit="0123456789abcdef0123456789abcdef01234567")
RULE = Rule("accuracy", lower_is_better=False, margin=0.0)


def records(first: int, last: int) -> list[dict]:
    return [
        {"text": f"영화 {word} {i}", "label": label}
        for i in range(first, last)
        for label, word in WORDS
    ]


def write_splits(folder: Path, extra: int = 0) -> str:
    """validation.jsonl, test.jsonl and a train.jsonl with `extra` more records; its digest."""
    write_jsonl(folder / "train.jsonl", records(0, 8 + extra))
    write_jsonl(folder / "validation.jsonl", records(8, 10))
    write_jsonl(folder / "test.jsonl", records(10, 12))
    return sha256_file(folder / "train.jsonl")[:16]


def train_bundles(folder: Path) -> dict[str, Path]:
    train = records(0, 8)
    kinds = {
        "good": train,
        "medium": [r for r in train if r["text"].split()[1] in ("좋다", "싫다")],
        "bad": [{**r, "label": 1 - r["label"]} for r in train],
    }
    settings = TrainSettings.from_params(
        {"experiment": "e", "seed": 1, "variants": {"tfidf": TFIDF}}, "tfidf"
    )
    folders = {}
    for kind, train_records in kinds.items():
        folders[kind] = folder / kind
        trained = train_variant(settings, {"train": train_records, "validation": train}, None)
        write_bundle(trained, folders[kind])
    broken = folder / "broken"  # loads as a model file, cannot be scored
    shutil.copytree(folders["good"], broken)
    meta = json.loads((broken / bundle.BUNDLE_FILE).read_text())
    (broken / bundle.BUNDLE_FILE).write_text(json.dumps({**meta, "type": "mystery"}))
    folders["broken"] = broken
    return folders


@dataclass
class Lab:
    """Logged runs: (kind, data digest) -> run (every kind on data A, `good` on B too), and the
    splits they are evaluated on."""

    splits: dict[str, list[dict]]
    runs: dict[tuple[str, str], dict]
    results: dict[str, dict]
    digests: dict[str, str]  # "A", "B" -> data digest

    def evaluate(self, name, kind, data="A", origin=COMMITTED, rule=RULE, gate=()):
        verdict = Verdict(kind, not gate, list(gate))
        run = self.runs[(kind, self.digests[data])]
        return registry.evaluate_candidate(
            name, rule, verdict, run, self.results[kind], self.splits, origin, "params"
        )


def make_lab(folder: Path) -> Lab:
    digests = {"A": write_splits(folder / "A"), "B": write_splits(folder / "B", extra=1)}
    splits = {
        name: [json.loads(line) for line in (folder / "A" / f"{name}.jsonl").open()]
        for name in ("validation", "test")
    }
    bundles = train_bundles(folder / "models")
    results = {kind: results_of(path, splits) for kind, path in bundles.items() if kind != "broken"}
    results["broken"] = results["good"]
    experiment = tracking.experiment_id("registry-tests", folder)
    runs = {}
    logged = [(kind, digests["A"]) for kind in bundles] + [("good", digests["B"])]
    for kind, data_digest in logged:
        runs[(kind, data_digest)] = log_run(experiment, kind, bundles[kind], data_digest)
        registry.log_evaluation({kind: runs[(kind, data_digest)]}, {kind: results[kind]})
    return Lab(splits, runs, results, digests)


def results_of(folder: Path, splits: dict[str, list[dict]]) -> dict:
    model = Bundle(folder)
    return {
        split: scores(
            np.array([r["label"] for r in rows]),
            model.predict([r["text"] for r in rows])["probability"].to_numpy(),
        )
        for split, rows in splits.items()
    }


def log_run(experiment: str, kind: str, folder: Path, data_digest: str) -> dict:
    tags = {
        tracking.VARIANT_TAG: kind,
        tracking.DATA_DIGEST_TAG: data_digest,
        tracking.MODEL_DIGEST_TAG: bundle.digest(folder),
    }
    with tracking.tracked_run(experiment, kind, tags) as run:
        model = tracking.log_pyfunc(folder)
    return {"run_id": run.info.run_id, "model_uri": model.model_uri}
