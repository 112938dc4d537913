from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_tsv(path: Path, rows: list[tuple], header=("id", "document", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A real, empty SQLite tracking store and registry for one test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def tiny_records() -> list[dict]:
    """24 tokenized documents, balanced, with an obvious signal word per class."""
    records = []
    for i in range(12):
        for label, word in ((1, "좋다"), (0, "싫다")):
            tokens = ["영화", word, f"w{i % 4}"]
            records.append({"text": " ".join(tokens), "label": label, "tokens": {"space": tokens}})
    return records
