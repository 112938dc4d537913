import yaml

from pipeline.benchmark import merged, results_table
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
