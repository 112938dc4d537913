"""The served model: raw Korean text in; label, sentiment and probability of positive out.

A trained variant is a folder (a "bundle") of JSON and Keras-native files only:
  bundle.json  variant name and type, tokenizer settings, sequence length
  vocab.json   token list, index = id            (LSTM variants)
  model.keras  the Keras model                  (LSTM variants)
  tfidf.json   vocabulary, idf and coefficients  (TF-IDF variants)
  members/     one bundle per member             (ensemble, see pipeline/ensemble.py)

Rules the README documents: a text is normalised like the training data (NFC, whitespace
collapsed); one with no visible character afterwards (empty, or only whitespace, control and
format characters such as NUL, U+200B, U+FEFF) gets label -1, sentiment "unknown", probability 0.5;
a text with more tokens than the sequence length keeps its first `max_length` tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import read_json
from pipeline.text import has_visible_character, normalize_text
from pipeline.tokenizers import TokenizerConfig, make_tokenizer
from pipeline.vocab import encode, index_of

BUNDLE_FILE = "bundle.json"
TEXT_COLUMN = "text"
THRESHOLD = 0.5
BATCH = 128


class Bundle:
    """One trained variant, loaded once; scores many texts per model call."""

    def __init__(self, folder: Path, with_tokenizer: bool = True):
        self.meta = read_json(folder / BUNDLE_FILE)
        self.tokenizers = {}  # tokenizer name -> tokenizer, loaded up front, not per request
        if self.meta["type"] == "tfidf_logreg":
            from pipeline.baseline import TfidfScorer

            self._tfidf = TfidfScorer(read_json(folder / "tfidf.json"))
        elif self.meta["type"] == "ensemble":
            from pipeline.ensemble import MEMBERS_DIR

            self.members = [
                Bundle(folder / MEMBERS_DIR / m, with_tokenizer=False) for m in self.meta["members"]
            ]
            # One tokenizer per name, however many members use it: texts are tokenized once.
            for member in self.members if with_tokenizer else []:
                if member.tokenizer_name and member.tokenizer_name not in self.tokenizers:
                    self.tokenizers[member.tokenizer_name] = member.make_tokenizer()
        else:
            self.index = index_of(read_json(folder / "vocab.json"))
            self.max_length = self.meta["max_length"]
            self.char_fallback = self.meta.get("char_fallback", False)  # absent in older bundles
            self.tagged = self.tokenizer_config().tags
            self._infer = _compiled(folder / "model.keras")
        if with_tokenizer and self.tokenizer_name:  # an LSTM or a TF-IDF model of tokens
            self.tokenizers[self.tokenizer_name] = self.make_tokenizer()

    @property
    def tokenizer_name(self) -> str | None:
        return self.meta.get("tokenizer", {}).get("name")

    def tokenizer_config(self) -> TokenizerConfig:
        return TokenizerConfig(**self.meta["tokenizer"]["config"])

    def make_tokenizer(self):
        return make_tokenizer(self.tokenizer_config())

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]] | None = None
    ) -> np.ndarray:
        """P(positive) per text; `tokens` (tokenizer name -> token lists) skips tokenizing."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        tokens = dict(tokens or {})
        for name, tokenize in self.tokenizers.items():
            if name not in tokens:
                tokens[name] = tokenize(texts)
        if self.meta["type"] == "tfidf_logreg":
            documents = tokens[self.tokenizer_name] if self.tokenizer_name else texts
            return self._tfidf(documents).astype(np.float32)
        if self.meta["type"] == "ensemble":
            from pipeline.ensemble import combine

            return combine([member.probabilities(texts, tokens) for member in self.members])
        return self._score_ids(
            encode(
                tokens[self.tokenizer_name],
                self.index,
                self.max_length,
                char_fallback=self.char_fallback,
                tagged=self.tagged,
            )
        )

    def _score_ids(self, ids: list[np.ndarray]) -> np.ndarray:
        from pipeline.models import pad_batch

        out = np.empty(len(ids), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            out[rows] = self._infer(pad_batch([ids[i] for i in rows]))
        return out

    def predict(self, texts: Sequence[str]) -> pd.DataFrame:
        normalised = [normalize_text(text) for text in texts]
        present = [i for i, text in enumerate(normalised) if has_visible_character(text)]
        probability = np.full(len(texts), THRESHOLD, dtype=np.float64)
        probability[present] = self.probabilities([normalised[i] for i in present])
        label = (probability >= THRESHOLD).astype(np.int64)
        empty = np.ones(len(texts), dtype=bool)
        empty[present] = False
        label[empty] = -1
        sentiment = np.where(label == 1, "positive", np.where(label == 0, "negative", "unknown"))
        return pd.DataFrame({"label": label, "sentiment": sentiment, "probability": probability})


def _compiled(model_path: Path):
    """A graph-compiled forward pass: Keras' predict() costs milliseconds per call."""
    import keras
    import tensorflow as tf

    from pipeline.models import CUSTOM_OBJECTS

    model = keras.saving.load_model(model_path, custom_objects=CUSTOM_OBJECTS, compile=False)
    forward = tf.function(
        lambda ids: model(ids, training=False),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
    )
    return lambda ids: forward(tf.constant(ids)).numpy().ravel()
