"""The served model: raw Korean text in; label, sentiment and probability of positive out.

A trained variant is a bundle folder (pipeline/bundle.py). Each model type has one scorer (token
lists in, P(positive) out); this module picks it from the bundle's type and adds what every
served model shares: the tokenizers, and the rules the serving contract documents. A text is
normalised like the training data (NFC, whitespace collapsed); one with no visible character
afterwards (empty, or only whitespace, control and format characters such as NUL, U+200B,
U+FEFF), and one in which the model finds no feature (no token or character of an LSTM's
vocabulary, no n-gram of a TF-IDF model's, none for every member of an ensemble: emoji only, a
script it never saw) gets label -1, sentiment "unknown", probability 0.5; a text with more
tokens than the sequence length keeps its first `max_length` tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.probability import THRESHOLD, labels_of
from pipeline.text import has_visible_character, normalize_text
from pipeline.tokenizers import TokenizerConfig, make_tokenizer
from pipeline.variants import LSTM_TYPES


class Scorer(Protocol):
    tokenizers: dict[str, TokenizerConfig]  # every tokenizer whose tokens it reads, by name

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray: ...

    def scores(  # the probabilities, and whether the model has any feature of each text
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _lstm(folder: Path, meta: dict) -> Scorer:
    from pipeline.lstm_inference import LstmScorer

    return LstmScorer(folder, meta)


def _tfidf(folder: Path, meta: dict) -> Scorer:
    from pipeline.tfidf_inference import TfidfScorer

    return TfidfScorer.from_bundle(folder, meta)


def _ensemble(folder: Path, meta: dict) -> Scorer:
    from pipeline.ensemble import EnsembleScorer

    return EnsembleScorer(folder, meta, load_member=load_scorer)


# One scorer per model type; each is imported only when a bundle of its type loads.
SCORERS: dict[str, Callable[[Path, dict], Scorer]] = {
    **dict.fromkeys(LSTM_TYPES, _lstm),
    "tfidf_logreg": _tfidf,
    "ensemble": _ensemble,
}


def load_scorer(folder: Path) -> Scorer:
    meta = bundle.read_meta(folder)
    if meta["type"] not in SCORERS:
        raise PipelineError(f"{folder}: unknown model type {meta['type']!r}")
    return SCORERS[meta["type"]](folder, meta)


class Bundle:
    """One trained variant, loaded once; scores many texts per model call."""

    def __init__(self, folder: Path, with_tokenizer: bool = True):
        self.meta = bundle.read_meta(folder)
        self.scorer = load_scorer(folder)
        # One tokenizer per name, however many ensemble members use it: texts are tokenized
        # once. Without them (evaluate), callers pass the tokens the split already holds.
        self.tokenizers = (
            {name: make_tokenizer(cfg) for name, cfg in self.scorer.tokenizers.items()}
            if with_tokenizer
            else {}
        )

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]] | None = None
    ) -> np.ndarray:
        """P(positive) per text, what evaluate scores (every text, known features or not);
        `tokens` (tokenizer name -> token lists) skips tokenizing."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        return self.scorer.probabilities(texts, self._tokens(texts, tokens))

    def scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """P(positive) per text, and whether the model has any feature of it."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        return self.scorer.scores(texts, self._tokens(texts, None))

    def _tokens(self, texts: Sequence[str], tokens: Mapping | None) -> dict:
        tokens = dict(tokens or {})
        for name, tokenize in self.tokenizers.items():
            if name not in tokens:
                tokens[name] = tokenize(texts)
        return tokens

    def predict(self, texts: Sequence[str]) -> pd.DataFrame:
        normalised = [normalize_text(text) for text in texts]
        present = [i for i, text in enumerate(normalised) if has_visible_character(text)]
        probability = np.full(len(texts), THRESHOLD, dtype=np.float64)
        known = np.zeros(len(texts), dtype=bool)
        probability[present], known[present] = self.scores([normalised[i] for i in present])
        probability[~known] = THRESHOLD
        label = labels_of(probability)
        label[~known] = -1
        sentiment = np.where(label == 1, "positive", np.where(label == 0, "negative", "unknown"))
        return pd.DataFrame({"label": label, "sentiment": sentiment, "probability": probability})
