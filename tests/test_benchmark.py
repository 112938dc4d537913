import os
import shutil
import subprocess

import pytest
import yaml

from pipeline.benchmark import benchmark_params, merged, results_table
from pipeline.errors import PipelineError
from pipeline.schema import with_defaults
from tests.helpers import REPO


def test_overrides_merge_key_by_key():
    base = {"train": {"seed": 1, "variants": {"a": {"units": 8, "epochs": 30}}}, "data": {"x": 1}}
    out = merged(base, {"train": {"variants": {"a": {"epochs": 3}}}})
    assert out == {
        "train": {"seed": 1, "variants": {"a": {"units": 8, "epochs": 3}}},
        "data": {"x": 1},
    }
    assert base["train"]["variants"]["a"]["epochs"] == 30


def test_benchmark_overrides_only_name_existing_settings():
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    train = params["train"]
    for name, variant in train["variants"].items():  # every setting a variant has, defaults too
        train["variants"][name] = with_defaults(variant, train["defaults"])
    overrides = yaml.safe_load((REPO / "benchmarks/nsmc-params.yaml").read_text(encoding="utf-8"))

    def keys(tree, prefix=""):
        for key, value in tree.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")

    assert set(keys(overrides)) <= set(keys(params))
    assert merged(params, overrides)["data"]["source"] == "nsmc"


def test_results_table_marks_the_champion():
    row = {
        "variant": "bilstm",
        "type": "bilstm",
        "val_accuracy": 0.87,
        "test_accuracy": 0.86,
        "test_f1": 0.86,
        "test_roc_auc": 0.93,
        "epochs_run": 3,
        "best_epoch": 2,
        "train_seconds": 500.0,
        "scoring_texts_per_s": 1200,
        "champion": True,
    }
    report = {
        "date": "2026-11-26",
        "commit": "abcdef1234567",
        "device": "CPU",
        "machine": {"cpu": "x", "cores": 2},
        "repro_seconds": 1200.0,
        "test_size": 10,
        "tokenizer_reviews_per_s": {"morph": 3000},
        "variants": [
            row,
            {**row, "variant": "ensemble", "type": "ensemble", "champion": False}
            | {"epochs_run": None, "best_epoch": None},
        ],
    }
    table = results_table(report)
    assert "| **bilstm** (champion) | bilstm | 0.8700 | 0.8600 |" in table
    assert "| 0.9300 | 3 (2) | 500 |" in table and "| 0.9300 | – | 500 |" in table
    assert "20.0 min" in table and "commit abcdef1234" in table


def test_without_a_local_copy_prepare_downloads_nsmc():
    overrides = REPO / "benchmarks/nsmc-params.yaml"
    data = benchmark_params(REPO / "params.yaml", overrides, None)["data"]
    assert data["source"] == "nsmc" and data["nsmc_dir"] is None  # fetch_nsmc checks sha256


def test_a_local_copy_is_used_when_named(tmp_path):
    (tmp_path / "ratings_train.txt").write_text("id\tdocument\tlabel\n", encoding="utf-8")
    overrides = REPO / "benchmarks/nsmc-params.yaml"
    params = benchmark_params(REPO / "params.yaml", overrides, tmp_path)
    assert params["data"]["nsmc_dir"] == str(tmp_path.resolve())


def test_a_local_copy_without_the_files_is_one_error(tmp_path):
    with pytest.raises(PipelineError, match="has no ratings_train.txt"):
        benchmark_params(REPO / "params.yaml", REPO / "benchmarks/nsmc-params.yaml", tmp_path)


def _make_dry_run(folder, target: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "NSMC_DIR"} | env
    return subprocess.run(
        ["make", "-n", target],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def make_project(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def test_make_benchmark_reuses_an_installed_environment(make_project):
    stamp = make_project / ".venv/.installed"
    stamp.parent.mkdir()
    stamp.touch()
    os.utime(stamp, (0, 0))  # older than pyproject.toml: `make setup` would reinstall
    commands = _make_dry_run(make_project, "benchmark")
    assert "pip install" not in commands and "-m pipeline benchmark" in commands
    assert "pip install" in _make_dry_run(make_project, "setup")


def test_make_benchmark_installs_when_nothing_is_installed(make_project):
    assert "pip install" in _make_dry_run(make_project, "benchmark")


def test_make_benchmark_downloads_unless_nsmc_dir_names_a_copy(make_project):
    (make_project / ".venv").mkdir()
    (make_project / ".venv/.installed").touch()
    assert "--nsmc-dir" not in _make_dry_run(make_project, "benchmark")
    named = _make_dry_run(make_project, "benchmark", NSMC_DIR="/data/nsmc")
    assert "--nsmc-dir /data/nsmc" in named
