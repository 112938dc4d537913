"""Scoring with a trained LSTM bundle: token lists in, P(positive) out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline import bundle
from pipeline.tokenizers import TokenizerConfig
from pipeline.vocab import encode, index_of, pad_batch

BATCH = 128


class LstmScorer:
    """One LSTM variant: its vocabulary, sequence length and a graph-compiled forward pass."""

    def __init__(self, folder: Path, meta: dict):
        self.name = meta["tokenizer"]["name"]
        self.tokenizers = {self.name: TokenizerConfig(**meta["tokenizer"]["config"])}
        self.index = index_of(bundle.read_part(folder, bundle.VOCAB_FILE))
        self.max_length = meta["max_length"]
        self.char_fallback = meta.get("char_fallback", False)  # absent in older bundles
        self.tagged = self.tokenizers[self.name].tags
        self._infer = _compiled(folder / bundle.KERAS_FILE)

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray:
        ids = encode(
            tokens[self.name], self.index, self.max_length, self.char_fallback, self.tagged
        )
        return self.score_ids(ids)

    def score_ids(self, ids: list[np.ndarray]) -> np.ndarray:
        """Length-sorted batches, so each is padded only to its own longest member."""
        out = np.empty(len(ids), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            out[rows] = self._infer(pad_batch([ids[i] for i in rows]))
        return out


def _compiled(model_path: Path):
    """A graph-compiled forward pass: Keras' predict() costs milliseconds per call."""
    import tensorflow as tf

    model = bundle.load_keras(model_path)
    forward = tf.function(
        lambda ids: model(ids, training=False),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
    )
    return lambda ids: forward(tf.constant(ids)).numpy().ravel()
