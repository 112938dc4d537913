import copy

import pytest
import yaml
from click.testing import CliRunner

from pipeline.benchmark import merged_params
from pipeline.cli import cli
from pipeline.errors import PipelineError
from pipeline.schema import (
    CHECKS,
    FAMILY_MODELS,
    Engine,
    Section,
    check,
    load_section,
    variant_settings,
)
from tests.helpers import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def test_the_project_s_params_and_the_nsmc_benchmark_s_pass():
    for section in CHECKS:
        assert load_section(REPO / "params.yaml", section) == PARAMS[section]
    benchmark = merged_params(REPO / "params.yaml", REPO / "benchmarks/nsmc-params.yaml")
    for section, check_one in CHECKS.items():
        check_one(benchmark[section])


def test_the_schema_holds_no_default():
    models = Section.__subclasses__()
    assert (
        len(models) == 13
    )  # data, data.file, engine, tokenize, a tokenizer, split, train, its defaults,
    # the two families of variants, evaluate, evaluate.gate, evaluate.ensemble
    for model in models:
        assert all(field.is_required() for field in model.model_fields.values()), model


def _command(section: str, work) -> list[str]:
    """The stage command that reads `section`, with inputs that exist (it fails on the params
    before reading any of them)."""
    folder, report = str(work), str(work / "report.json")
    (work / "report.json").write_text("{}", encoding="utf-8")
    return {
        "data": ["prepare", "--sample-file", report, "--download-dir", folder],
        "engine": ["prepare", "--sample-file", report, "--download-dir", folder],
        "tokenize": ["tokenize", "--in-dir", folder],
        "split": ["split", "--in-dir", folder],
        "train": ["train", "--variant", "base", "--data-dir", folder, "--data-report", report],
        "evaluate": ["evaluate", "--data-dir", folder, "--models-dir", folder],
    }[section]


MASTER_URL = (
    "a Spark master URL (local[N], local[*], spark://HOST:PORT, yarn or k8s://URL), or null"
)
OUTPUTS = {
    "prepare": ["--out-dir", "out", "--report", "out.json"],
    "tokenize": ["--out-dir", "out"],
    "split": ["--out-dir", "out"],
    "train": ["--model-dir", "out", "--reports-dir", "out"],
    "evaluate": ["--runs-dir", ".", "--ensemble-dir", "out", "--out-dir", "out"],
}


def _set(tree: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree[key]
    if value is KeyError:
        del tree[last]
    else:
        tree[last] = value


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        (
            "split.validation_size",
            "ten",
            "split.validation_size: 'ten' is not a number between 0 and 1",
        ),
        (
            "split.seed",
            -1,
            "split.seed: -1 is not a whole number from 0 to 4294967295",
        ),
        (
            "train.defaults.lstm.epochs",
            "30",
            "train.defaults.lstm.epochs: '30' is not a whole number of at least 1",
        ),
        (
            "train.defaults.lstm.epochs",
            -5,
            "train.defaults.lstm.epochs: -5 is not a whole number of at least 1",
        ),
        (
            "train.defaults.lstm.unitz",
            64,
            "train.defaults.lstm.unitz: unknown setting; allowed: type, tokenizer, vocab_size, "
            "char_fallback, max_length, embedding_dim, embedding_init, units, lstm_layers, "
            "pooling, dropout, recurrent_dropout, epochs, batch_size, learning_rate, "
            "ema_momentum, patience",
        ),
        (
            "train.defaults.lstm.units",
            KeyError,
            "train.variants.base: lacks setting(s): units (in it or in train.defaults.lstm)",
        ),
        (
            "train.variants.notebook.learning_rate",
            0,
            "train.variants.notebook.learning_rate: 0 is not a number above 0",
        ),
        (
            "train.variants.tfidf_morph.ngram_min",
            4,
            "train.variants.tfidf_morph: ngram_min 4 is above ngram_max 3 (in it or in "
            "train.defaults.tfidf)",
        ),
        (
            "train.variants.dropout.type",
            "gru",
            "train.variants.dropout.type: 'gru' is not one of 'lstm', 'lstm_dropout', 'bilstm', "
            "'tfidf_logreg'",
        ),
        (
            "train.defaults.gru",
            {},
            "train.defaults.gru: unknown setting; allowed: lstm, tfidf",
        ),
        (
            "train.defaults.lstm.ema_momentum",
            1.0,
            "train.defaults.lstm.ema_momentum: 1.0 is not a number at least 0 and below 1",
        ),
        (
            "data.source",
            "files",
            "data.source: 'files' is not one of 'sample', 'nsmc', 'file'",
        ),
        (
            "data.nsmc_verify",
            "no",
            "data.nsmc_verify: 'no' is not true or false",
        ),
        (
            "data.file",
            None,
            "data.file: null is not a mapping of settings",
        ),
        (
            "data.file.text_column",
            "",
            "data.file.text_column: '' is not a non-empty text",
        ),
        (
            "data.nsmc_verify",
            KeyError,
            "data: lacks setting(s): nsmc_verify",
        ),
        (
            "engine.name",
            "dask",
            "engine.name: 'dask' is not one of 'local', 'spark'",
        ),
        (
            "engine.master",
            "local[0]",
            f"engine.master: 'local[0]' is not {MASTER_URL}",
        ),
        (
            "engine.master",
            "spark://head-node",
            f"engine.master: 'spark://head-node' is not {MASTER_URL}",
        ),
        (
            "engine.partitions",
            0,
            "engine.partitions: 0 is not a whole number of at least 1, or null",
        ),
        (
            "engine.conf",
            {"executor.memory": "4g"},
            "engine.conf: {'executor.memory': '4g'} is not a mapping of Spark settings "
            "(spark.<name>) to texts, numbers or true/false",
        ),
        (
            "engine.conf",
            KeyError,
            "engine: lacks setting(s): conf",
        ),
        (
            "tokenize.tokenizers.morph.max_repeat",
            -1,
            "tokenize.tokenizers.morph.max_repeat: -1 is not a whole number of at least 0",
        ),
        (
            "tokenize.tokenizers.morph.method",
            "mecab",
            "tokenize.tokenizers.morph.method: 'mecab' is not one of 'kiwi', 'whitespace'",
        ),
        (
            "tokenize.tokenizers",
            {},
            "tokenize.tokenizers: {} is not a non-empty mapping of names to their settings",
        ),
        (
            "evaluate.select_by",
            "acc",
            "evaluate.select_by: 'acc' is not one of 'accuracy', 'precision', 'recall', 'f1', "
            "'roc_auc', 'log_loss'",
        ),
        (
            "evaluate.promote_margin",
            True,
            "evaluate.promote_margin: true is not a number at least 0",
        ),
        (
            "evaluate.gate.accuracy",
            75,
            "evaluate.gate.accuracy: 75 is not a number from 0 to 1",
        ),
        (
            "evaluate.ensemble.members",
            "a,b",
            "evaluate.ensemble.members: 'a,b' is not a list of names, or null",
        ),
        (
            "evaluate.ensemble.weights",
            [1, 2],
            "evaluate.ensemble.weights: unknown setting; allowed: members",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_naming_its_key(tmp_path, monkeypatch, key, value, line):
    params = copy.deepcopy(PARAMS)
    _set(params, key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = _command(key.split(".")[0], tmp_path)
    result = CliRunner().invoke(cli, [*args, *OUTPUTS[args[0]], "--params", "params.yaml"])
    assert result.exit_code == 1
    assert result.stderr == f"error: params.yaml: {line}\n"
    assert result.stdout == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "master",
    [
        "local",
        "local[2]",
        "local[*]",
        "local[4,2]",
        "spark://head:7077",
        "spark://a:7077,b.example:7077",
        "yarn",
        "k8s://https://10.0.0.1:6443",
        None,
    ],
)
def test_spark_master_urls_that_are_accepted(master):
    check(Engine, {**PARAMS["engine"], "master": master}, ["engine"])


def test_tokenize_checks_the_engine_too(tmp_path, monkeypatch):
    params = copy.deepcopy(PARAMS)
    params["engine"]["master"] = "local[two]"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["tokenize", "--in-dir", ".", "--out-dir", "out", "--params", "params.yaml"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr == f"error: params.yaml: engine.master: 'local[two]' is not {MASTER_URL}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({"units": "x"}, "--overrides: units: 'x' is not a whole number of at least 1"),
        ({"unitz": 3}, "--overrides: unitz: unknown setting; allowed: type, tokenizer"),
        ({"type": "tfidf_logreg"}, "train.variants.base.type: 'lstm' is not one of 'tfidf_logreg'"),
    ],
)
def test_train_overrides_are_checked_like_params(overrides, line):
    with pytest.raises(PipelineError) as caught:
        variant_settings(PARAMS["train"], "base", overrides)
    assert str(caught.value).startswith(line)


def test_overrides_and_own_settings_win_over_the_family_s():
    settings = variant_settings(PARAMS["train"], "notebook", {"units": 7})
    assert (settings["units"], settings["epochs"], settings["pooling"]) == (7, 12, "last")
    assert set(settings) == set(FAMILY_MODELS["lstm"].model_fields)


def test_a_missing_params_file_or_section_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match="params file not found"):
        load_section(tmp_path / "params.yaml", "split")
    (tmp_path / "params.yaml").write_text("data: {}\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="has no 'split' section"):
        load_section(tmp_path / "params.yaml", "split")
