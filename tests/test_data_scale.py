"""The data stages at scale: the same bytes as the in-memory stages they replaced, and a corpus
larger than a memory ceiling that those stages could not stay under."""

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.io import count_lines
from tests.helpers import REPO, clean_env

STAGES = ("prepare", "tokenize", "split")
# Imports the stage's module, then caps the address space at what it uses by then plus
# HEADROOM_MB: the stage itself may grow by that much, whatever the corpus size.
CEILING = """
import importlib, resource, sys
headroom, stage, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
importlib.import_module(f"pipeline.{stage}")
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = size + headroom * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pipeline.cli import cli
cli.main([stage, *args])
"""
HEADROOM_MB = 160
CORPUS_DOCS = 150_000  # ~380 MB of Python objects for the in-memory prepare, more for the others
WORDS = [
    f"{a}{b}"
    for a in ("영화", "배우", "연출", "각본", "음악", "장면", "결말", "감독")
    for b in ("가", "는", "도", "를", "이", "만", "의", "와", "로", "에서")
]


def stage_args(root: Path) -> dict[str, list[str]]:
    params = ["--params", str(root / "params.yaml")]
    data = root / "data"
    return {
        "prepare": [
            *params,
            "--sample-file",
            str(REPO / "data/sample/reviews.tsv"),
            "--download-dir",
            str(data / "raw"),
            "--out-dir",
            str(data / "prepared"),
            "--report",
            str(root / "reports/data.json"),
        ],
        "tokenize": [
            *params,
            "--in-dir",
            str(data / "prepared"),
            "--out-dir",
            str(data / "tokenized"),
        ],
        "split": [*params, "--in-dir", str(data / "tokenized"), "--out-dir", str(data / "split")],
    }


def digests(data: Path) -> dict[str, str]:
    return {
        str(path.relative_to(data)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data.rglob("*"))
        if path.is_file()
    }


def test_sample_outputs_are_the_bytes_the_in_memory_stages_wrote(tmp_path):
    expected = json.loads((Path(__file__).parent / "sample_data_digests.json").read_text())
    (tmp_path / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    args = stage_args(tmp_path)
    for stage in STAGES:
        result = CliRunner().invoke(cli, [stage, *args[stage]])
        assert result.exit_code == 0, result.output
    written = digests(tmp_path / "data")
    written["reports/data.json"] = digests(tmp_path / "reports")["data.json"]
    assert written == expected["files"]


def synthetic_root(root: Path, documents: int) -> Path:
    """A `source: file` project on `documents` reviews of 40 words each (about 250 characters),
    all different, a tenth repeated, and a test file; tokenized by whitespace only (Kiwi's
    analysis of such a corpus would take minutes)."""
    rng = random.Random(11)
    lines = ["document\tlabel"]
    for i in range(documents):
        lines.append(f"{' '.join(rng.choices(WORDS, k=40))}\t{i % 2}")
        if i % 10 == 0:
            lines.append(lines[-1])
    (root / "data").mkdir(parents=True)
    (root / "data/train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "data/test.tsv").write_text("\n".join(lines[:1] + lines[-500:]) + "\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = "file"
    params["data"]["file"] = {
        **params["data"]["file"],
        "train": str(root / "data/train.tsv"),
        "test": str(root / "data/test.tsv"),
        "text_column": "document",
    }
    params["tokenize"]["tokenizers"] = {"space": {"method": "whitespace"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    return root


def under_ceiling(stage: str, args: list[str], headroom_mb: int) -> subprocess.CompletedProcess:
    env = clean_env(PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
    return subprocess.run(
        [sys.executable, "-c", CEILING, str(headroom_mb), stage, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.e2e
def test_each_data_stage_finishes_a_large_corpus_under_a_memory_ceiling(tmp_path):
    root = synthetic_root(tmp_path, CORPUS_DOCS)
    args = stage_args(root)
    for stage in STAGES:
        result = under_ceiling(stage, args[stage], HEADROOM_MB)
        assert result.returncode == 0, f"{stage}: {result.stderr[-2000:]}"
    report = json.loads((root / "reports/data.json").read_text())
    kept, dropped = report["rows_kept"]["train"], report["dropped"]
    assert report["rows_read"]["train"] == CORPUS_DOCS + CORPUS_DOCS // 10
    assert dropped["duplicate"] == CORPUS_DOCS // 10 and dropped["in_test_set"] > 400
    assert kept == CORPUS_DOCS - dropped["in_test_set"]
    split = root / "data/split"
    assert count_lines(split / "train.jsonl") + count_lines(split / "validation.jsonl") == kept


def test_the_ceiling_stops_a_stage_that_outgrows_it(tmp_path):
    """The harness is not vacuous: a stage given no room to grow fails."""
    root = synthetic_root(tmp_path, 2_000)
    result = under_ceiling("prepare", stage_args(root)["prepare"], 0)
    assert result.returncode != 0
    assert "MemoryError" in result.stderr or "Cannot allocate" in result.stderr
