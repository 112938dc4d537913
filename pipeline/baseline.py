"""The classical variants: TF-IDF n-grams + logistic regression, stored as JSON.

The n-grams are of the raw text's characters or words, or of a tokenizer's tokens (Kiwi
morphemes). With `nb_scaling` each TF-IDF column is multiplied by its naive Bayes log-count
ratio before the regression (Wang & Manning 2012, "NBSVM"); the ratios are folded into the
exported coefficients, so both kinds score alike. A model is exported as plain numbers
(vocabulary, idf, coefficients) so that the served model never unpickles anything; scoring
re-implements TfidfVectorizer.transform on that JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from pipeline import bundle
from pipeline.tokenizers import TokenizerConfig
from pipeline.variants import TfidfConfig

Documents = Sequence[str] | Sequence[Sequence[str]]  # texts, or token lists of a tokenizer


def token_ngrams(tokens: Sequence[str], ngram_min: int, ngram_max: int) -> list[str]:
    """['a', 'b', 'c'], 1, 2 -> ['a', 'b', 'c', 'a b', 'b c'] (lower-cased)."""
    tokens = [token.lower() for token in tokens]
    return [
        " ".join(tokens[start : start + n])
        for n in range(ngram_min, ngram_max + 1)
        for start in range(len(tokens) - n + 1)
    ]


def _analyzer_args(analyzer: str, ngram_range: tuple[int, int], tokenized: bool) -> dict:
    if tokenized:
        return {
            "analyzer": partial(token_ngrams, ngram_min=ngram_range[0], ngram_max=ngram_range[1])
        }
    return {"analyzer": analyzer, "ngram_range": ngram_range, "lowercase": True}


def nb_log_count_ratios(features: sparse.spmatrix, labels: np.ndarray) -> np.ndarray:
    """Per column: log of its share of positive documents over its share of negative ones.

    Document counts (a column counts once per document), add-one smoothed.
    """
    present = (features > 0).astype(np.float64)
    positive = 1.0 + np.asarray(present[labels == 1].sum(axis=0)).ravel()
    negative = 1.0 + np.asarray(present[labels == 0].sum(axis=0)).ravel()
    return np.log(positive / positive.sum()) - np.log(negative / negative.sum())


def fit_tfidf_logreg(documents: Documents, labels: np.ndarray, cfg: TfidfConfig, seed: int) -> dict:
    """Fit the model and return it as a JSON-ready dict."""
    tokenized = cfg.tokenizer is not None
    vectorizer = TfidfVectorizer(
        **_analyzer_args(cfg.analyzer, (cfg.ngram_min, cfg.ngram_max), tokenized),
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        sublinear_tf=cfg.sublinear_tf,
        dtype=np.float32,
    )
    features = vectorizer.fit_transform(documents)
    ratios = np.ones(features.shape[1])
    if cfg.nb_scaling:
        ratios = nb_log_count_ratios(features, labels)
        features = features @ sparse.diags(ratios.astype(np.float32))
    classifier = LogisticRegression(C=cfg.C, max_iter=1000, random_state=seed)
    classifier.fit(features, labels)
    terms = [None] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        terms[column] = term
    return {
        "analyzer": cfg.analyzer,
        "tokenized": tokenized,
        "ngram_range": [cfg.ngram_min, cfg.ngram_max],
        "sublinear_tf": cfg.sublinear_tf,
        "nb_scaling": cfg.nb_scaling,  # already folded into coef; kept for the record
        "terms": terms,
        "idf": vectorizer.idf_.round(6).tolist(),
        "coef": (classifier.coef_[0] * ratios).round(6).tolist(),
        "intercept": float(classifier.intercept_[0]),
    }


class TfidfScorer:
    """Probability of the positive class from an exported model."""

    def __init__(self, exported: dict, tokenizer: dict | None = None):
        tokenized = exported.get("tokenized", False)  # absent in older bundles
        self.counter = CountVectorizer(
            **_analyzer_args(exported["analyzer"], tuple(exported["ngram_range"]), tokenized),
            vocabulary=exported["terms"],
            dtype=np.float32,
        )
        self.sublinear_tf = exported["sublinear_tf"]
        self.idf = sparse.diags(np.asarray(exported["idf"], dtype=np.float32))
        self.coef = np.asarray(exported["coef"], dtype=np.float32)
        self.intercept = exported["intercept"]
        # n-grams of a tokenizer's tokens ({"name", "config"} from bundle.json), or of raw text
        self.name = tokenizer["name"] if tokenizer else None
        self.tokenizers = {self.name: TokenizerConfig(**tokenizer["config"])} if tokenizer else {}

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict) -> TfidfScorer:
        return cls(bundle.read_part(folder, bundle.TFIDF_FILE), meta.get("tokenizer"))

    def probabilities(
        self, texts: Sequence[str], tokens: Mapping[str, Sequence[Sequence[str]]]
    ) -> np.ndarray:
        return self(tokens[self.name] if self.name else texts).astype(np.float32)

    def __call__(self, documents: Documents) -> np.ndarray:
        counts = self.counter.transform(documents)
        if self.sublinear_tf:
            counts.data = np.log(counts.data) + 1
        features = normalize(counts @ self.idf)
        return 1 / (1 + np.exp(-(features @ self.coef + self.intercept)))
