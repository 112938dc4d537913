"""What more than one test module uses: the project's paths and environment, subprocesses, tiny
data sets and model settings, and small trained models. Fixtures live in conftest.py; test
modules import from here, never from each other or from conftest.py (tests/test_packaging.py
checks it)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.variants import TfidfConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EXECUTION = "sample-repro"  # pipeline.execution_id of the sample_repo fixture's runs
ALWAYS_CHANGED = {"reap"}  # dvc.yaml's stages that run in every `dvc repro`


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
