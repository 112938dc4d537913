import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.models import (
    BucketedBatches,
    LstmConfig,
    MaskedMaxPooling,
    build_lstm_model,
    fit_input,
    pad_batch,
    variant_from_params,
)

LSTM = {
    "type": "lstm",
    "tokenizer": "space",
    "vocab_size": 50,
    "char_fallback": False,
    "max_length": 8,
    "embedding_dim": 4,
    "embedding_init": "random",
    "units": 3,
    "lstm_layers": 1,
    "pooling": "last",
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "epochs": 1,
    "batch_size": 4,
    "learning_rate": 0.01,
    "ema_momentum": 0.0,
    "patience": 1,
}


def test_unknown_variant_type_is_an_error():
    with pytest.raises(PipelineError, match="unknown type 'transformer'"):
        variant_from_params("x", {**LSTM, "type": "transformer"})


def test_missing_and_unknown_settings_are_errors():
    incomplete = {k: v for k, v in LSTM.items() if k != "units"}
    with pytest.raises(PipelineError, match="lacks setting.*units"):
        variant_from_params("x", incomplete)
    with pytest.raises(PipelineError, match="unknown setting.*unit\\b"):
        variant_from_params("x", {**LSTM, "unit": 3})
    with pytest.raises(PipelineError, match="pooling"):
        variant_from_params("x", {**LSTM, "pooling": "attention"})
    for depth in (0, 1.5, "2"):
        with pytest.raises(PipelineError, match="lstm_layers must be a whole number"):
            variant_from_params("x", {**LSTM, "lstm_layers": depth})
    with pytest.raises(PipelineError, match="'x': embedding_init must be one of random, ppmi"):
        variant_from_params("x", {**LSTM, "embedding_init": "word2vec"})
    for momentum in (-0.1, 1.0, "0.9", True):
        with pytest.raises(PipelineError, match="ema_momentum must be a number in"):
            variant_from_params("x", {**LSTM, "ema_momentum": momentum})


def test_a_given_embedding_table_and_the_moving_average_reach_the_model():
    table = np.arange(50 * 4, dtype=np.float32).reshape(50, 4) / 1000
    cfg = LstmConfig(**{**LSTM, "ema_momentum": 0.9})
    model = build_lstm_model(cfg, vocab_size=50, embeddings=table)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], table)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9
    assert not build_lstm_model(LstmConfig(**LSTM), vocab_size=50).optimizer.use_ema


TFIDF = {
    "type": "tfidf_logreg",
    "tokenizer": None,
    "analyzer": "char",
    "ngram_min": 1,
    "ngram_max": 3,
    "min_df": 1,
    "max_features": 1000,
    "sublinear_tf": True,
    "nb_scaling": False,
    "C": 1.0,
}


def test_tfidf_reads_raw_text_or_a_tokenizer_s_tokens():
    assert variant_from_params("x", TFIDF).tokenizer is None
    words = variant_from_params("x", {**TFIDF, "tokenizer": "morph", "analyzer": "word"})
    assert (words.tokenizer, words.analyzer) == ("morph", "word")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"analyzer": "chars"}, "analyzer must be one of char, char_wb, word"),
        ({"tokenizer": "morph"}, "with tokenizer 'morph' the analyzer must be 'word'.*'char'"),
        ({"tokenizer": "morph", "analyzer": "char_wb"}, "analyzer must be 'word'"),
        ({"nb_scaling": "yes"}, "nb_scaling must be true or false"),
    ],
)
def test_bad_tfidf_analyzer_is_named(settings, message):
    with pytest.raises(PipelineError, match=message):
        variant_from_params("x", {**TFIDF, **settings})


@pytest.mark.parametrize(
    ("kind", "pooling", "layers"),
    [
        ("lstm", "last", ["Embedding", "LSTM", "Dense"]),
        ("lstm_dropout", "last", ["Embedding", "Dropout", "LSTM", "Dropout", "Dense"]),
        ("bilstm", "last", ["Embedding", "Bidirectional", "Dense"]),
        ("bilstm", "max", ["Embedding", "Bidirectional", "MaskedMaxPooling", "Dense"]),
        ("lstm", "mean", ["Embedding", "LSTM", "GlobalAveragePooling1D", "Dense"]),
    ],
)
def test_the_notebook_architectures(kind, pooling, layers):
    cfg = LstmConfig(**{**LSTM, "type": kind, "pooling": pooling, "dropout": 0.2})
    model = build_lstm_model(cfg, vocab_size=50)
    assert [type(layer).__name__ for layer in model.layers] == layers
    assert model(np.array([[2, 3, 0]], dtype=np.int32)).shape == (1, 1)


@pytest.mark.parametrize(
    ("kind", "pooling", "returns_sequences"),
    [("bilstm", "last", [True, False]), ("lstm", "max", [True, True])],
)
def test_stacked_layers_pass_every_time_step_on(kind, pooling, returns_sequences):
    cfg = LstmConfig(**{**LSTM, "type": kind, "pooling": pooling, "lstm_layers": 2})
    model = build_lstm_model(cfg, vocab_size=50)
    recurrent = [
        layer for layer in model.layers if type(layer).__name__ in ("LSTM", "Bidirectional")
    ]
    assert [layer.return_sequences for layer in recurrent] == returns_sequences
    short = model(np.array([[5, 6, 7]], dtype=np.int32))
    padded = model(np.array([[5, 6, 7, 0, 0]], dtype=np.int32))
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_padding_does_not_change_the_prediction():
    cfg = LstmConfig(**{**LSTM, "type": "bilstm", "pooling": "max"})
    model = build_lstm_model(cfg, vocab_size=50)
    short = model(np.array([[5, 6, 7]], dtype=np.int32))
    padded = model(np.array([[5, 6, 7, 0, 0, 0]], dtype=np.int32))
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_masked_max_pooling_ignores_padding():
    values = np.array([[[1.0], [-5.0], [9.0]]], dtype=np.float32)
    mask = np.array([[True, True, False]])
    assert float(MaskedMaxPooling()(values, mask=mask)[0, 0]) == 1.0


def test_bucketed_batches_cover_everything_once_and_are_deterministic():
    ids = [np.arange(1, n + 1, dtype=np.int32) for n in (5, 1, 3, 2, 4, 1, 6)]
    labels = np.arange(7, dtype=np.float32)
    first = BucketedBatches(ids, labels, batch_size=3, seed=1)
    again = BucketedBatches(ids, labels, batch_size=3, seed=1)
    seen = sorted(float(y) for i in range(len(first)) for y in first[i][1])
    assert seen == labels.tolist()
    assert all(np.array_equal(first[i][0], again[i][0]) for i in range(len(first)))
    x, _ = BucketedBatches(ids, labels, batch_size=3, seed=None)[0]
    assert x.shape == (3, 8)  # the three shortest, padded to 2 and rounded up to 8


def test_pad_batch():
    batch = pad_batch([np.array([1, 2]), np.array([], dtype=np.int32)])
    assert batch.tolist() == [[1, 2, 0, 0, 0, 0, 0, 0], [0] * 8]
    assert pad_batch([np.arange(1, 10)]).shape == (1, 16)


def test_fit_accepts_batches_whose_width_changes_after_the_first_two():
    ids = [np.arange(1, n + 1, dtype=np.int32) for n in (2, 3, 2, 3, 12, 11)]
    batches = BucketedBatches(ids, np.array([0, 1, 0, 1, 0, 1], np.float32), 2, seed=None)
    assert [batches[i][0].shape[1] for i in range(3)] == [8, 8, 16]
    model = build_lstm_model(LstmConfig(**LSTM), vocab_size=50)
    history = model.fit(fit_input(batches), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_each_training_epoch_gets_its_own_deterministic_shuffle():
    rng = np.random.default_rng(0)
    ids = [np.arange(1, n + 1, dtype=np.int32) for n in rng.integers(1, 12, size=60)]
    batches = BucketedBatches(ids, rng.integers(0, 2, 60).astype(np.float32), 4, seed=5)
    epochs = [batches.rows_for_epoch(e) for e in range(3)]
    assert not all(np.array_equal(a, b) for a, b in zip(epochs[0], epochs[1], strict=True))
    requested = []
    rows_for_epoch = batches.rows_for_epoch
    batches.rows_for_epoch = lambda epoch: requested.append(epoch) or rows_for_epoch(epoch)
    model = build_lstm_model(LstmConfig(**LSTM), vocab_size=50)
    model.fit(fit_input(batches), epochs=3, verbose=0)
    assert requested == [0, 1, 2]  # one shuffle per epoch, in order, whatever tf.data prefetches
    again = BucketedBatches(ids, batches.labels, 4, seed=5)
    assert all(
        np.array_equal(a, b) for a, b in zip(again.rows_for_epoch(2), epochs[2], strict=True)
    )
