"""The notebook's three LSTMs in Keras 3, and how they are fed and trained.

Every LSTM reads right-padded token ids with id 0 as padding; the embedding masks it, so a
batch may be padded to any length without changing the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from pipeline.variants import LstmConfig
from pipeline.vocab import PAD_MULTIPLE, pad_batch


@keras.saving.register_keras_serializable(package="pipeline")
class MaskedMaxPooling(layers.Layer):
    """Max over the time steps that are not padding."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = ops.where(ops.expand_dims(mask, -1), inputs, ops.full_like(inputs, -1e9))
        return ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


CUSTOM_OBJECTS = {"pipeline>MaskedMaxPooling": MaskedMaxPooling}


def seed_everything(seed: int) -> None:
    """Same seed, same weights, same batches, same result (TensorFlow's deterministic ops)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def epoch_metrics(logs: dict) -> dict[str, float]:
    """Keras' epoch logs as the pipeline names them: train_/val_ loss and accuracy."""
    return {
        (name if name.startswith("val_") else f"train_{name}"): float(value)
        for name, value in logs.items()
        if name.removeprefix("val_") in ("loss", "accuracy")
    }


class EpochReport(keras.callbacks.Callback):
    """Calls `report(metrics, epoch)` as each epoch ends, epochs counted from 1."""

    def __init__(self, report):
        super().__init__()
        self.report = report

    def on_epoch_end(self, epoch, logs=None):
        self.report(epoch_metrics(logs or {}), epoch + 1)


def lstm_callbacks(cfg: LstmConfig) -> list:
    """Early stopping that keeps the best epoch's weights, validated with the moving average."""
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True
    )
    # With a moving average, each epoch is validated, and the best kept, with averaged weights:
    # the swap must come before EarlyStopping so that it records those.
    average = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema_momentum else []
    return [*average, stop]


def _recurrent(cfg: LstmConfig) -> list[layers.Layer]:
    """`lstm_layers` stacked LSTMs (each wrapped in Bidirectional for a BiLSTM)."""
    stack = []
    for depth in range(1, cfg.lstm_layers + 1):
        lstm = layers.LSTM(
            cfg.units,
            dropout=cfg.dropout if cfg.type == "lstm_dropout" else 0.0,
            recurrent_dropout=cfg.recurrent_dropout if cfg.type == "lstm_dropout" else 0.0,
            return_sequences=depth < cfg.lstm_layers or cfg.pooling != "last",
        )
        stack.append(layers.Bidirectional(lstm) if cfg.type == "bilstm" else lstm)
    return stack


def _pooling(cfg: LstmConfig) -> list[layers.Layer]:
    if cfg.pooling == "mean":
        return [layers.GlobalAveragePooling1D()]
    if cfg.pooling == "max":
        return [MaskedMaxPooling()]
    return []


def build_lstm_model(
    cfg: LstmConfig, vocab_size: int, embeddings: np.ndarray | None = None
) -> keras.Model:
    """Embedding -> [Dropout] -> LSTM or BiLSTM (stacked) -> [pooling] -> [Dropout] -> Dense.

    `embeddings`, a (vocab_size, embedding_dim) table, replaces the embedding's random start."""
    dropout = [layers.Dropout(cfg.dropout)] if cfg.type == "lstm_dropout" else []
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            layers.Embedding(vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding"),
            *dropout,
            *_recurrent(cfg),
            *_pooling(cfg),
            *dropout,
            layers.Dense(1, activation="sigmoid"),
        ],
        name=cfg.type,
    )
    if embeddings is not None:
        model.get_layer("embedding").embeddings.assign(embeddings)
    average = {"use_ema": True, "ema_momentum": cfg.ema_momentum} if cfg.ema_momentum else {}
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate, **average),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


CHUNK_BATCHES = 256  # batches handed from Python to TensorFlow at a time


class BucketedBatches(keras.utils.PyDataset):
    """Batches of documents of similar length, each padded only to its own longest member.

    Sorting by length inside pools of 50 batches keeps padding small while the pools and the
    batch order are reshuffled every epoch from `seed`, so training stays deterministic.
    """

    POOL = 50

    def __init__(
        self, ids: Sequence[np.ndarray], labels: np.ndarray, batch_size: int, seed: int | None
    ):
        super().__init__()
        self.ids, self.labels, self.batch_size, self.seed = ids, labels, batch_size, seed
        self.lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.epoch = 0
        self.batches = self.rows_for_epoch(0)

    def rows_for_epoch(self, epoch: int) -> list[np.ndarray]:
        """The row indices of each batch of `epoch`: a pure function of seed and epoch."""
        lengths = self.lengths
        if self.seed is None:
            order = np.argsort(lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.ids))
        pool = self.batch_size * self.POOL
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pad_batch([self.ids[i] for i in rows]), self.labels[rows]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        return self.batch(self.batches[index])

    def on_epoch_end(self):
        if self.seed is not None:
            self.epoch += 1
            self.batches = self.rows_for_epoch(self.epoch)


def fit(
    model: keras.Model,
    train: BucketedBatches,
    validation: BucketedBatches,
    epochs: int,
    callbacks: list,
    verbose: int,
) -> keras.callbacks.History:
    """`model.fit` on bucketed batches: each epoch its own shuffle, each batch its own width."""
    if keras.backend.backend() == "tensorflow":
        # one dataset for all epochs; steps_per_epoch makes each epoch go on where the last stopped
        data, steps, checked = batch_dataset(train, epochs), len(train), batch_dataset(validation)
    else:
        data, steps, checked = train, None, validation
    return model.fit(
        data,
        steps_per_epoch=steps,
        validation_data=checked,
        epochs=epochs,
        shuffle=False,  # the batches shuffle themselves, per epoch, from their seed
        callbacks=callbacks,
        verbose=verbose,
    )


def batch_dataset(batches: BucketedBatches, epochs: int = 1):
    """The batches of `epochs` epochs, one after the other, as a TensorFlow dataset of tensors.

    Python hands TensorFlow CHUNK_BATCHES batches at a time (their ids and labels, gathered from
    `batches.ids`, which may be a file mapped into memory), so memory holds a chunk, not the
    corpus, and Python runs once per chunk, not per batch: with `Dataset.from_generator` per
    batch the `train` command of the NSMC LSTM ran 1.5x slower on a 2-core CPU
    (docs/experiments.md). Not a PyDataset: under TensorFlow, Keras fixes its tensor shapes from
    the first two batches, while these change width from batch to batch."""
    import tensorflow as tf

    def chunks():
        for epoch in range(epochs):
            rows = batches.rows_for_epoch(epoch)
            for start in range(0, len(rows), CHUNK_BATCHES):
                part = rows[start : start + CHUNK_BATCHES]
                members = np.concatenate(part)
                ids = [batches.ids[i] for i in members]
                yield (
                    np.concatenate([*ids, np.zeros(0, np.int32)]).astype(np.int32),
                    batches.lengths[members],
                    np.array([len(r) for r in part], dtype=np.int64),
                    batches.labels[members],
                )

    spec = tf.TensorSpec(shape=(None,), dtype=tf.int64)
    signature = (tf.TensorSpec(shape=(None,), dtype=tf.int32), spec, spec)
    signature += (tf.TensorSpec(shape=(None,), dtype=batches.labels.dtype),)

    def split(flat, lengths, sizes, labels):  # a chunk's batches, one by one
        documents = tf.RaggedTensor.from_row_lengths(flat, lengths)
        return tf.data.Dataset.from_tensor_slices(
            (
                tf.RaggedTensor.from_row_lengths(documents, sizes),
                tf.RaggedTensor.from_row_lengths(labels, sizes),
            )
        )

    def padded(members, labels):  # pad_batch in TensorFlow
        x = members.to_tensor()
        width = tf.maximum(PAD_MULTIPLE, -(-tf.shape(x)[1] // PAD_MULTIPLE) * PAD_MULTIPLE)
        return tf.pad(x, [[0, 0], [0, width - tf.shape(x)[1]]]), labels

    chunked = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    steps = tf.data.experimental.assert_cardinality(len(batches.rows_for_epoch(0)) * epochs)
    return chunked.flat_map(split).map(padded).apply(steps).prefetch(2)
