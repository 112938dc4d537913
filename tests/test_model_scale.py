"""The model stages at scale: the TF-IDF fit and evaluate's scoring finish a corpus under a
memory ceiling that the in-memory way (every record in a list, the fit on all of them, one
scoring call per split) cannot stay under; reading from disk gives the same results."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluate import score_variants
from pipeline.io import JsonlRecords, write_jsonl
from pipeline.train import TrainSettings, final_metrics, train_variant, write_bundle
from tests.helpers import REPO, TFIDF, clean_env

# Loads the libraries both ways use, then caps the address space at what the process maps by
# then plus a headroom in MB; runs the fit ('fit') and the scoring ('evaluate') of `root`,
# reading its splits from disk ('stream') or into lists, the fit on every document ('memory').
CEILING = """
import json, resource, sys
from pathlib import Path
mode, headroom, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
import numpy, pandas, scipy.sparse, sklearn.feature_extraction.text, sklearn.linear_model
from pipeline import evaluate, serving, tfidf_inference
from pipeline.io import JsonlRecords, read_jsonl
from pipeline.train import TrainSettings, final_metrics, train_variant, write_bundle
from pipeline.io import write_json
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = size + headroom * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
section = json.loads((root / "section.json").read_text())
if mode == "memory":
    section["variants"]["tfidf"]["max_fit_documents"] = None
    evaluate.SCORE_CHUNK = 10**9
read = JsonlRecords if mode == "stream" else read_jsonl
splits = {name: read(root / f"{name}.jsonl") for name in ("train", "validation", "test")}
trained = train_variant(TrainSettings.from_params(section, "tfidf"), splits, None)
write_bundle(trained, root / "models/tfidf")
write_json(root / "runs/tfidf/metrics.json", final_metrics(trained))
del trained
evaluation = {name: splits[name] for name in ("validation", "test")}
results, _, _ = evaluate.score_variants(["tfidf"], root / "models", root / "runs", evaluation)
print(json.dumps(results["tfidf"]))
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB, "
      f"address space at the ceiling's start {size // 2**20} MB", file=sys.stderr)
"""
# Measured on the 2-core VM, 2026-12-03, without a ceiling: the streaming way peaks at 422-429
# MB RSS, the in-memory way at 604 MB (441 MB of address space after the imports, each time);
# under this headroom the first finishes and the second dies of MemoryError.
HEADROOM_MB = 300
DOCUMENTS = 60_000  # of 20 words (about 120 characters)
FIT_DOCUMENTS = 5_000
WORDS = [
    f"{a}{b}"
    for a in ("영화", "배우", "연출", "각본", "음악", "장면", "결말", "감독", "최고", "최악")
    for b in ("가", "는", "도", "를", "이", "만", "의", "와", "로", "에서")
]


def write_corpus(root: Path, documents: int, fit_documents: int | None) -> Path:
    """Train, validation and test splits of `documents`, `documents / 10` and as many records
    of 20 words; the first words of the vocabulary lean positive, the last negative."""
    rng = random.Random(5)

    def records(count):
        for _ in range(count):
            label = rng.random() < 0.5
            words = rng.choices(WORDS[:60] if label else WORDS[40:], k=20)
            yield {"text": " ".join(words), "label": int(label), "tokens": {"space": words}}

    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "train.jsonl", records(documents))
    for name in ("validation", "test"):
        write_jsonl(root / f"{name}.jsonl", records(documents // 10))
    tfidf = {**TFIDF, "ngram_max": 4, "max_features": 200_000, "max_fit_documents": fit_documents}
    section = {"experiment": "e", "seed": 3, "variants": {"tfidf": tfidf}}
    (root / "section.json").write_text(json.dumps(section))
    return root


def under_ceiling(mode: str, root: Path, headroom_mb: int = HEADROOM_MB):
    env = clean_env(PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
    return subprocess.run(
        [sys.executable, "-c", CEILING, mode, str(headroom_mb), str(root)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.e2e
def test_the_tfidf_fit_and_evaluate_finish_a_corpus_the_in_memory_way_cannot(tmp_path):
    root = write_corpus(tmp_path, DOCUMENTS, FIT_DOCUMENTS)
    streamed = under_ceiling("stream", root)
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    results = json.loads(streamed.stdout.strip().splitlines()[-1])
    assert results["validation"]["accuracy"] > 0.9 and results["test"]["accuracy"] > 0.9
    in_memory = under_ceiling("memory", root)
    assert in_memory.returncode != 0
    assert "MemoryError" in in_memory.stderr or "Cannot allocate" in in_memory.stderr


def test_reading_splits_from_disk_trains_and_scores_as_lists_do(tmp_path):
    """The same TF-IDF model and the same probabilities from JsonlRecords as from lists, the
    fit capped or not, and chunks of any size."""
    root = write_corpus(tmp_path, 3_000, None)
    section = json.loads((root / "section.json").read_text())
    settings = TrainSettings.from_params(section, "tfidf")
    on_disk = {name: JsonlRecords(root / f"{name}.jsonl") for name in ("train", "validation")}
    in_lists = {name: list(records) for name, records in on_disk.items()}
    streamed, listed = (
        train_variant(settings, on_disk, None),
        train_variant(settings, in_lists, None),
    )
    assert streamed.parts == listed.parts and streamed.history == listed.history
    capped = {**section["variants"]["tfidf"], "max_fit_documents": 1_000}
    fewer = TrainSettings.from_params({**section, "variants": {"tfidf": capped}}, "tfidf")
    first = {"train": in_lists["train"][:1_000], "validation": in_lists["validation"]}
    assert train_variant(fewer, on_disk, None).parts == train_variant(settings, first, None).parts

    write_bundle(streamed, root / "models/tfidf")
    (root / "runs/tfidf").mkdir(parents=True)
    (root / "runs/tfidf/metrics.json").write_text(json.dumps(final_metrics(streamed)))
    splits = {"validation": on_disk["validation"], "test": JsonlRecords(root / "test.jsonl")}
    args = (["tfidf"], root / "models", root / "runs")
    results, probabilities, _ = score_variants(*args, splits)
    lists = {name: list(records) for name, records in splits.items()}
    results_of_lists, probabilities_of_lists, _ = score_variants(*args, lists)
    assert results == results_of_lists
    for name in splits:
        assert np.array_equal(probabilities["tfidf"][name], probabilities_of_lists["tfidf"][name])


def test_scores_do_not_depend_on_the_chunk_size(tmp_path, monkeypatch):
    """A document's TF-IDF probability is the same in any chunk: training's history row and
    evaluate's scores with chunks of 7 records equal those of one chunk."""
    import pipeline.evaluate
    import pipeline.train

    root = write_corpus(tmp_path, 300, None)
    settings = TrainSettings.from_params(json.loads((root / "section.json").read_text()), "tfidf")
    splits = {name: JsonlRecords(root / f"{name}.jsonl") for name in ("train", "validation")}
    whole = train_variant(settings, splits, None)
    write_bundle(whole, root / "models/tfidf")
    (root / "runs/tfidf").mkdir(parents=True)
    (root / "runs/tfidf/metrics.json").write_text(json.dumps(final_metrics(whole)))
    args = (["tfidf"], root / "models", root / "runs", {"test": JsonlRecords(root / "test.jsonl")})
    _, one_chunk, _ = score_variants(*args)
    monkeypatch.setattr(pipeline.train, "ENCODE_CHUNK", 7)
    monkeypatch.setattr(pipeline.evaluate, "SCORE_CHUNK", 7)
    assert train_variant(settings, splits, None).history == whole.history
    _, chunked, _ = score_variants(*args)
    assert np.array_equal(chunked["tfidf"]["test"], one_chunk["tfidf"]["test"])
