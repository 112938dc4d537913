"""What more than one test module uses: the project's paths and environment, subprocesses, tiny
data sets and model settings, and small trained models. Fixtures live in conftest.py; test
modules import from here, never from each other or from conftest.py (tests/test_packaging.py
checks it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io import sha256_file, write_jsonl
from pipeline.promotion import Origin, Rule
from pipeline.variants import TfidfConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EXECUTION = "sample-repro"  # pipeline.execution_id of the sample_repo fixture's runs
ALWAYS_CHANGED = {"reap", "registry-check"}  # dvc.yaml's stages that run in every `dvc repro`


# --- processes ----------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's MLflow and DVC settings, the venv first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "PIPELINE_EXECUTION_ID", "DVC_ROOT")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def sh(args: list[str], cwd: Path, check: bool = True, timeout: int = 900, env=None):
    result = subprocess.run(
        args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def stale_stages(root: Path) -> set[str]:
    """The stages `dvc status` lists, but for those that run in every `dvc repro`."""
    return set(json.loads(sh(["dvc", "status", "--json"], root).stdout)) - ALWAYS_CHANGED


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` ran (not skipped nor restored), from its output."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- data ---------------------------------------------------------------------------------------


def nsmc_dir() -> Path:
    """NSMC_DIR, else shared/ beside the checkout (CI) or beside a folder above it (a worktree,
    a clone in a subfolder)."""
    if os.environ.get("NSMC_DIR"):
        return Path(os.environ["NSMC_DIR"])
    candidates = [folder / "shared/data/nsmc" for folder in REPO.parents]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def write_tsv(path: Path, rows: list[tuple], header=("id", "document", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_records() -> list[dict]:
    """24 tokenized documents, balanced, with an obvious signal word per class."""
    records = []
    for i in range(12):
        for label, word in ((1, "좋다"), (0, "싫다")):
            tokens = ["영화", word, f"w{i % 4}"]
            records.append({"text": " ".join(tokens), "label": label, "tokens": {"space": tokens}})
    return records


# Six morpheme-tagged documents and their labels, with a TF-IDF over their tokens.
TOKENS = [
    ["재밌/VA", "었/EP", "다/EF"],
    ["최고/NNG", "이/VCP", "다/EF"],
    ["감동/NNG", "이/VCP", "다/EF"],
    ["지루/XR", "하/XSA", "다/EF"],
    ["최악/NNG", "이/VCP", "다/EF"],
    ["노잼/NNG", "이/VCP", "다/EF"],
]
LABELS = np.array([1, 1, 1, 0, 0, 0])
TOKEN_CFG = TfidfConfig("tfidf_logreg", "morph", "word", 1, 2, 1, 1000, True, False, 2.0)


# --- model settings and small trained models ----------------------------------------------------

# A one-epoch LSTM variant small enough to train in a second.
LSTM = {
    "type": "lstm",
    "tokenizer": "space",
    "vocab_size": 50,
    "char_fallback": False,
    "max_length": 8,
    "embedding_dim": 4,
    "embedding_init": "random",
    "units": 3,
    "lstm_layers": 1,
    "pooling": "last",
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "epochs": 1,
    "batch_size": 4,
    "learning_rate": 0.01,
    "ema_momentum": 0.0,
    "patience": 1,
}

TFIDF = {
    "type": "tfidf_logreg",
    "tokenizer": None,
    "analyzer": "char",
    "ngram_min": 1,
    "ngram_max": 3,
    "min_df": 1,
    "max_features": 1000,
    "sublinear_tf": True,
    "nb_scaling": False,
    "C": 1.0,
}

# A `train` section with one variant, `small`: the LSTM above for three epochs.
SECTION = {"experiment": "e", "seed": 3, "variants": {"small": {**LSTM, "epochs": 3}}}


def tiny_vocab(records: list[dict]) -> dict:
    """The vocab.json `split` would write for these records' whitespace tokens."""
    from pipeline.vocab import build_pieces, build_vocab

    documents = [r["tokens"]["space"] for r in records]
    return {
        "tokenizer": {"method": "whitespace", "tags": False},
        "tokens": build_vocab(documents, 1, 50),
        "pieces": build_pieces(documents, 1, tagged=False),
    }


def fit_small(section: dict = SECTION):
    """The `small` variant of `section` trained on 16 tiny records, validated on the other 8."""
    from pipeline.train import TrainSettings, train_variant

    records = tiny_records()
    splits = {"train": records[:16], "validation": records[16:]}
    return train_variant(
        TrainSettings.from_params(section, "small"), splits, tiny_vocab(records[:16])
    )


def fit_token_tfidf():
    """A TF-IDF variant over the tiny records' whitespace tokens."""
    from pipeline.train import TrainSettings, train_variant

    section = {
        **SECTION,
        "variants": {"words": {**TFIDF, "tokenizer": "space", "analyzer": "word"}},
    }
    records = tiny_records()
    splits = {"train": records[:16], "validation": records[16:]}
    vocab = {"tokenizer": {"method": "whitespace", "tags": False}}
    return train_variant(TrainSettings.from_params(section, "words"), splits, vocab)


# --- registered models of known quality (the registry's tests) -----------------------------------
# Validation and test hold four signal words, two per class. `good` was trained on all four
# (accuracy 1.0), `medium` on two (0.75), `bad` on flipped labels (0.0). Two data folders hold the
# same validation and test splits; their train files differ, so their data digests do.

SIGNAL_TFIDF = {
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
SIGNAL_WORDS = ((1, "좋다"), (0, "싫다"), (1, "최고"), (0, "최악"))
COMMITTED = Origin(commit="0123456789abcdef0123456789abcdef01234567")
RULE = Rule("accuracy", lower_is_better=False, margin=0.0)


def signal_records(first: int, last: int) -> list[dict]:
    return [
        {"text": f"영화 {word} {i}", "label": label}
        for i in range(first, last)
        for label, word in SIGNAL_WORDS
    ]


def write_splits(folder: Path, extra: int = 0) -> str:
    """validation.jsonl, test.jsonl and a train.jsonl with `extra` more records; its digest."""
    write_jsonl(folder / "train.jsonl", signal_records(0, 8 + extra))
    write_jsonl(folder / "validation.jsonl", signal_records(8, 10))
    write_jsonl(folder / "test.jsonl", signal_records(10, 12))
    return sha256_file(folder / "train.jsonl")[:16]


def train_bundles(folder: Path) -> dict[str, Path]:
    from pipeline import bundle
    from pipeline.train import TrainSettings, train_variant, write_bundle

    train = signal_records(0, 8)
    kinds = {
        "good": train,
        "medium": [r for r in train if r["text"].split()[1] in ("좋다", "싫다")],
        "bad": [{**r, "label": 1 - r["label"]} for r in train],
    }
    settings = TrainSettings.from_params(
        {"experiment": "e", "seed": 1, "variants": {"tfidf": SIGNAL_TFIDF}}, "tfidf"
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
        from pipeline import registry
        from pipeline.evaluate import Verdict

        verdict = Verdict(kind, not gate, list(gate))
        run = self.runs[(kind, self.digests[data])]
        return registry.evaluate_candidate(
            name, rule, verdict, run, self.results[kind], self.splits, origin, "params"
        )


def make_lab(folder: Path) -> Lab:
    from pipeline import registry, tracking

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
    from pipeline.scoring import scores
    from pipeline.serving import Bundle

    model = Bundle(folder)
    return {
        split: scores(
            np.array([r["label"] for r in rows]),
            model.predict([r["text"] for r in rows])["probability"].to_numpy(),
        )
        for split, rows in splits.items()
    }


def log_run(experiment: str, kind: str, folder: Path, data_digest: str) -> dict:
    from pipeline import bundle, tracking

    tags = {
        tracking.VARIANT_TAG: kind,
        tracking.DATA_DIGEST_TAG: data_digest,
        tracking.MODEL_DIGEST_TAG: bundle.digest(folder),
    }
    with tracking.tracked_run(experiment, kind, tags) as run:
        model = tracking.log_pyfunc(folder)
    return {"run_id": run.info.run_id, "model_uri": model.model_uri}


def local_spark(folder: Path, app: str):
    """A local[2] Spark (its UI off) with this package shipped, as the stages' engine_session
    makes it; yields the session and stops it after. For a module-scoped fixture."""
    import pytest

    from pipeline.spark_session import ship_package, start_spark

    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    with pytest.MonkeyPatch.context() as env:
        for name in ("SPARK_LOCAL_IP", "PYSPARK_PYTHON"):  # start_spark sets them
            env.delenv(name, raising=False)
        session = start_spark("local[2]", {"spark.ui.enabled": "false"}, app)
        ship_package(session, folder)
        yield session
        session.stop()
