import pytest

from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.train import (
    TrainSettings,
    final_metrics,
    parse_overrides,
    read_vocab,
    train_variant,
    write_bundle,
)
from pipeline.vocab import build_pieces, build_vocab
from tests.conftest import tiny_records
from tests.test_models import LSTM, TFIDF

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


def _fit_token_tfidf():
    """A TF-IDF variant over the tiny records' whitespace tokens."""
    section = {
        **SECTION,
        "variants": {"words": {**TFIDF, "tokenizer": "space", "analyzer": "word"}},
    }
    records = tiny_records()
    splits = {"train": records[:16], "validation": records[16:]}
    vocab = {"tokenizer": {"method": "whitespace", "tags": False}}
    return train_variant(TrainSettings.from_params(section, "words"), splits, vocab)


def test_a_token_tfidf_variant_trains_on_its_tokenizer_s_tokens():
    trained = _fit_token_tfidf()
    assert trained.meta["tokenizer"] == {
        "name": "space",
        "config": {"method": "whitespace", "tags": False},
    }
    assert "영화 좋다" in trained.files["tfidf.json"]["terms"]
    assert trained.history[0]["val_accuracy"] == 1.0


def test_read_vocab_finds_the_variant_s_tokenizer(tmp_path):
    write_json(tmp_path / "vocab" / "space.json", {"tokenizer": {"method": "whitespace"}})
    assert read_vocab(tmp_path, TrainSettings.from_params(SECTION, "small"))["tokenizer"] == {
        "method": "whitespace"
    }
    raw_text = {**SECTION, "variants": {"chars": TFIDF}}
    assert read_vocab(tmp_path, TrainSettings.from_params(raw_text, "chars")) is None


def test_read_vocab_names_an_undefined_tokenizer(tmp_path):
    section = {**SECTION, "variants": {"small": {**LSTM, "tokenizer": "bpe"}}}
    with pytest.raises(PipelineError, match="'small' uses tokenizer 'bpe'.*does not define"):
        read_vocab(tmp_path, TrainSettings.from_params(section, "small"))
