import keras
import numpy as np
import pytest

from pipeline.models import (
    BucketedBatches,
    MaskedMaxPooling,
    batch_dataset,
    build_lstm_model,
    fit,
    pad_batch,
)
from pipeline.variants import LstmConfig
from pipeline.vocab import TokenIds
from tests.helpers import LSTM


def test_a_given_embedding_table_and_the_moving_average_reach_the_model():
    table = np.arange(50 * 4, dtype=np.float32).reshape(50, 4) / 1000
    cfg = LstmConfig(**{**LSTM, "ema_momentum": 0.9})
    model = build_lstm_model(cfg, vocab_size=50, embeddings=table)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], table)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.9
    assert not build_lstm_model(LstmConfig(**LSTM), vocab_size=50).optimizer.use_ema


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
    history = fit(model, batches, batches, epochs=2, callbacks=[], verbose=0)
    assert len(history.history["val_loss"]) == 2


def _shuffled_batches(seed=5):
    rng = np.random.default_rng(0)
    ids = [np.arange(1, n + 1, dtype=np.int32) for n in rng.integers(0, 12, size=60)]
    return BucketedBatches(ids, rng.integers(0, 2, 60).astype(np.float32), 4, seed=seed)


def test_the_dataset_holds_each_epochs_batches_in_order_exactly_as_pad_batch_makes_them():
    batches = _shuffled_batches()
    expected = [batches.batch(rows) for epoch in range(3) for rows in batches.rows_for_epoch(epoch)]
    got = [(x.numpy(), y.numpy()) for x, y in batch_dataset(batches, epochs=3)]
    assert len(got) == len(expected) == 3 * len(batches)
    for (x, y), (want_x, want_y) in zip(got, expected, strict=True):
        assert x.dtype == want_x.dtype and np.array_equal(x, want_x)  # widths included
        assert np.array_equal(y, want_y)
    assert not np.array_equal(expected[0][1], expected[len(batches)][1])  # epochs differ


def test_batches_from_a_mapped_file_cross_chunks_as_they_were(tmp_path, monkeypatch):
    """Ids read from a memory-mapped file, handed to TensorFlow two batches at a time (epochs
    and chunks not aligned), make the same tensors as ids held in a list."""
    import pipeline.models

    listed = _shuffled_batches()
    path = tmp_path / "ids.int32"
    path.write_bytes(b"".join(x.tobytes() for x in listed.ids))
    lengths = np.array([len(x) for x in listed.ids])
    ids = TokenIds(np.memmap(path, dtype=np.int32, mode="r"), lengths)
    mapped = BucketedBatches(ids, listed.labels, 4, seed=5)
    monkeypatch.setattr(pipeline.models, "CHUNK_BATCHES", 2)
    got = [(x.numpy(), y.numpy()) for x, y in batch_dataset(mapped, epochs=3)]
    expected = [listed.batch(rows) for epoch in range(3) for rows in listed.rows_for_epoch(epoch)]
    assert len(got) == len(expected)
    for (x, y), (want_x, want_y) in zip(got, expected, strict=True):
        assert np.array_equal(x, want_x) and np.array_equal(y, want_y)


def test_the_dataset_states_how_many_batches_it_holds():
    # Keras trains differently on data of unknown length: the dropout variant's second epoch
    # drew other masks than with the same batches from memory.
    import tensorflow as tf

    batches = BucketedBatches([np.arange(1, n + 1) for n in range(1, 11)], np.ones(10), 3, seed=1)
    dataset = batch_dataset(batches, epochs=2)
    assert int(dataset.cardinality()) == 2 * len(batches) != tf.data.UNKNOWN_CARDINALITY


def test_an_empty_split_makes_an_empty_dataset():
    empty = BucketedBatches([], np.zeros(0, np.float32), 4, seed=None)
    assert list(batch_dataset(empty)) == []


@pytest.mark.slow
def test_each_epoch_of_fit_trains_on_that_epochs_own_shuffle():
    """fit's weights equal those of a loop that feeds each epoch's batches by hand."""
    batches = _shuffled_batches()
    cfg = LstmConfig(**{**LSTM, "epochs": 3})
    keras.utils.set_random_seed(1)
    fitted = build_lstm_model(cfg, vocab_size=50)
    fit(fitted, batches, batches, epochs=3, callbacks=[], verbose=0)
    keras.utils.set_random_seed(1)
    by_hand = build_lstm_model(cfg, vocab_size=50)
    for epoch in range(3):
        for rows in batches.rows_for_epoch(epoch):
            by_hand.train_on_batch(*batches.batch(rows))
    for a, b in zip(fitted.get_weights(), by_hand.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    keras.utils.set_random_seed(1)
    one_order = build_lstm_model(cfg, vocab_size=50)  # the first epoch's order three times
    for _ in range(3):
        for rows in batches.rows_for_epoch(0):
            one_order.train_on_batch(*batches.batch(rows))
    assert not all(
        np.allclose(a, b, rtol=1e-4, atol=1e-6)
        for a, b in zip(fitted.get_weights(), one_order.get_weights(), strict=True)
    )
