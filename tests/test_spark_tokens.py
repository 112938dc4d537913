"""`tokenize` on the spark engine (marker `spark`, one local[2] session for the module): the local
engine's files byte for byte, with the project's tokenizers (Kiwi and whitespace), on the sample
and on the first 20,000 NSMC reviews; and both data stages' commands on the engine."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path

import pytest
import yaml

from pipeline.io import iter_jsonl, write_jsonl
from pipeline.prepare import _table
from pipeline.prepare import run_spark as prepare_on_spark
from pipeline.sources import NSMC_FORMAT
from pipeline.spark_tokens import task_configs
from pipeline.tokenize import configs_from_params, run, run_spark
from pipeline.tokenizers import TokenizerConfig, make_tokenizer
from tests.helpers import REPO, local_spark, nsmc_dir, sh

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
CONFIGS = configs_from_params(PARAMS["tokenize"])
NSMC_ROWS = 20_000


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    yield from local_spark(tmp_path_factory.mktemp("code"), "tokenize")


def tokenized_locally(in_dir: Path, out_dir: Path) -> None:
    """What the local engine writes (the command's loop, without its progress bar)."""
    tokenizers = {name: make_tokenizer(cfg) for name, cfg in CONFIGS.items()}
    for part in sorted(in_dir.glob("*.jsonl")):
        write_jsonl(out_dir / part.name, run(iter_jsonl(part), tokenizers))


def assert_same_files(one: Path, other: Path) -> None:
    names = sorted(p.name for p in one.iterdir())
    assert names and names == sorted(p.name for p in other.iterdir())
    for name in names:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def test_kiwi_runs_with_a_task_s_cores_and_nothing_else_changes():
    configs = task_configs(CONFIGS, 1)
    assert configs["morph"] == TokenizerConfig(**{**CONFIGS["morph"].to_dict(), "num_workers": 1})
    assert task_configs(CONFIGS, 4)["morph"].num_workers == 4
    assert configs["space"] == CONFIGS["space"]


@pytest.mark.spark
def test_the_sample_byte_for_byte(spark, tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    sample = _table(REPO / "data/sample/reviews.tsv", NSMC_FORMAT)
    prepare_on_spark(spark, sample, None, prepared, None)
    local, on_spark = tmp_path / "local", tmp_path / "spark"
    local.mkdir()
    on_spark.mkdir()
    tokenized_locally(prepared, local)
    run_spark(spark, prepared, on_spark, CONFIGS, 3)
    assert_same_files(local, on_spark)
    first = next(iter_jsonl(on_spark / "train.jsonl"))
    assert set(first["tokens"]) == {"morph", "space"} and "/" in first["tokens"]["morph"][0]


@pytest.mark.spark
def test_nsmc_reviews_byte_for_byte(spark, tmp_path):
    """The first NSMC_ROWS reviews of NSMC's training file, as prepare writes them, in more
    partitions than cores (each creating its own Kiwi)."""
    source = nsmc_dir() / "ratings_train.txt"
    if not source.is_file():
        pytest.skip(f"NSMC corpus not found at {source} (set NSMC_DIR)")
    reviews = tmp_path / "ratings_train.txt"
    with source.open("rb") as f:
        reviews.write_bytes(b"".join(islice(f, NSMC_ROWS + 1)))
    prepared, local, on_spark = tmp_path / "prepared", tmp_path / "local", tmp_path / "spark"
    for folder in (prepared, local, on_spark):
        folder.mkdir()
    prepare_on_spark(spark, _table(reviews, NSMC_FORMAT), None, prepared, None)
    tokenized_locally(prepared, local)
    run_spark(spark, prepared, on_spark, CONFIGS, 4)
    assert_same_files(local, on_spark)
    assert sum(1 for _ in iter_jsonl(on_spark / "train.jsonl")) > 0.95 * NSMC_ROWS


def stage(args: list[str], params: Path, check: bool = True):
    return sh([sys.executable, "-m", "pipeline", *args, "--params", str(params)], REPO, check)


@pytest.mark.spark
def test_the_commands_on_the_spark_engine_write_the_local_engine_s_files(tmp_path):
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    files = {}
    for engine in ("local", "spark"):
        params = tmp_path / f"{engine}.yaml"
        engine_section = {**PARAMS["engine"], "name": engine, "master": "local[2]"}
        engine_section["conf"] = {"spark.ui.enabled": False}
        params.write_text(yaml.safe_dump({**PARAMS, "engine": engine_section}), encoding="utf-8")
        out = tmp_path / engine
        stage(
            [
                "prepare",
                *("--sample-file", str(REPO / "data/sample/reviews.tsv")),
                *("--download-dir", str(tmp_path / "raw"), "--out-dir", str(out / "prepared")),
                *("--report", str(out / "data.json")),
            ],
            params,
        )
        result = stage(
            ["tokenize", "--in-dir", str(out / "prepared"), "--out-dir", str(out / "tokenized")],
            params,
        )
        assert result.stdout == f"tokenized {out / 'prepared'} with morph, space\n"
        files[engine] = out
    for folder in ("prepared", "tokenized"):
        assert_same_files(files["local"] / folder, files["spark"] / folder)
    assert (files["local"] / "data.json").read_bytes() == (
        files["spark"] / "data.json"
    ).read_bytes()
