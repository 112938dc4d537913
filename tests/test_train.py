import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.io import write_json
from pipeline.models import BucketedBatches, batch_dataset
from pipeline.train import (
    TrainSettings,
    final_metrics,
    parse_overrides,
    read_vocab,
    write_bundle,
)
from pipeline.vocab import encode, index_of
from tests.helpers import LSTM, SECTION, TFIDF, fit_small, fit_token_tfidf, tiny_records


@pytest.mark.slow
def test_same_seed_same_metrics():
    first, second = fit_small(), fit_small()
    assert first.history == second.history
    assert len(first.history) == 3
    assert set(first.history[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    }


@pytest.mark.slow
def test_final_metrics_come_from_the_best_epoch_and_bundle_is_written(tmp_path):
    trained = fit_small()
    metrics = final_metrics(trained)
    best = min(trained.history, key=lambda row: row["val_loss"])
    assert metrics == {
        "best_epoch": best["epoch"],
        "epochs_run": 3,
        "best_epoch_val_loss": best["val_loss"],
        "best_epoch_val_accuracy": best["val_accuracy"],
    }
    write_bundle(trained, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle.json",
        "model.keras",
        "vocab.json",
    ]


@pytest.mark.parametrize(
    ("embedding_init", "ema_momentum"), [("random", 0.0), ("ppmi", 0.0), ("ppmi", 0.6)]
)
@pytest.mark.slow
def test_the_kept_weights_are_the_ones_validated_at_the_best_epoch(embedding_init, ema_momentum):
    """With a moving average, validation and the kept model must both use the averaged weights."""
    variant = {**LSTM, "epochs": 4, "embedding_init": embedding_init, "ema_momentum": ema_momentum}
    trained = fit_small({**SECTION, "variants": {"small": variant}})
    records = tiny_records()
    index = index_of(trained.parts["vocab.json"])
    ids = encode([r["tokens"]["space"] for r in records[16:]], index, LSTM["max_length"])
    labels = np.array([r["label"] for r in records[16:]], dtype=np.float32)
    validation = batch_dataset(BucketedBatches(ids, labels, LSTM["batch_size"], seed=None))
    loss = trained.keras_model.evaluate(validation, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(trained.best["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_the_moving_average_is_validated_while_training_goes_on_from_the_raw_weights():
    def history(momentum):
        variant = {**LSTM, "epochs": 4, "patience": 4, "ema_momentum": momentum}
        return fit_small({**SECTION, "variants": {"small": variant}}).history

    raw, averaged = history(0.0), history(0.6)
    # Keras swaps the averages in and out arithmetically, which costs float rounding only
    assert [row["train_loss"] for row in averaged] == pytest.approx(
        [row["train_loss"] for row in raw], rel=1e-5
    )
    assert all(a["val_loss"] != b["val_loss"] for a, b in zip(raw, averaged, strict=True))


def test_ppmi_embeddings_need_a_vocabulary_larger_than_the_embedding():
    too_wide = {
        **SECTION,
        "variants": {"small": {**LSTM, "embedding_init": "ppmi", "embedding_dim": 64}},
    }
    with pytest.raises(PipelineError, match="embedding_init 'ppmi' needs .* \\(64\\)"):
        fit_small(too_wide)


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


def test_a_token_tfidf_variant_trains_on_its_tokenizer_s_tokens():
    trained = fit_token_tfidf()
    assert trained.meta["tokenizer"] == {
        "name": "space",
        "config": {"method": "whitespace", "tags": False},
    }
    assert "영화 좋다" in trained.parts["tfidf.json"]["terms"]
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
