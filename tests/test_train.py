import pytest

from pipeline.errors import PipelineError
from pipeline.train import (
    TrainSettings,
    final_metrics,
    parse_overrides,
    train_variant,
    write_bundle,
)
from pipeline.vocab import build_pieces, build_vocab
from tests.conftest import tiny_records
from tests.test_models import LSTM

SECTION = {"experiment": "e", "seed": 3, "variants": {"small": {**LSTM, "epochs": 3}}}


def _fit(section=SECTION):
    records = tiny_records()
    splits = {"train": records[:16], "validation": records[16:]}
    documents = [r["tokens"]["space"] for r in records[:16]]
    vocab = {
        "tokenizer": {"method": "whitespace", "tags": False},
        "tokens": build_vocab(documents, 1, 50),
        "pieces": build_pieces(documents, 1, tagged=False),
    }
    return train_variant(TrainSettings.from_params(section, "small"), splits, vocab)


def test_same_seed_same_metrics():
    first, second = _fit(), _fit()
    assert first.history == second.history
    assert len(first.history) == 3
    assert set(first.history[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    }


def test_final_metrics_come_from_the_best_epoch_and_bundle_is_written(tmp_path):
    trained = _fit()
    metrics = final_metrics(trained)
    best = min(trained.history, key=lambda row: row["val_loss"])
    assert metrics["best_epoch"] == best["epoch"] and metrics["val_loss"] == best["val_loss"]
    write_bundle(trained, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle.json",
        "model.keras",
        "vocab.json",
    ]


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(PipelineError, match="unknown variant 'big'.*small"):
        TrainSettings.from_params(SECTION, "big")


def test_overrides_replace_settings_and_are_validated():
    settings = TrainSettings.from_params(SECTION, "small", "units=7 learning_rate=0.5")
    assert settings.config.units == 7 and settings.config.learning_rate == 0.5
    with pytest.raises(PipelineError, match="unknown setting"):
        TrainSettings.from_params(SECTION, "small", "unitz=7")
    with pytest.raises(PipelineError, match="not KEY=VALUE"):
        parse_overrides("units")
