"""The classical reference: character n-gram TF-IDF + logistic regression, stored as JSON.

It is exported as plain numbers (vocabulary, idf, coefficients) so that the served model never
unpickles anything; scoring re-implements TfidfVectorizer.transform on that JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from pipeline.models import TfidfConfig


def fit_tfidf_logreg(texts: Sequence[str], labels: np.ndarray, cfg: TfidfConfig, seed: int) -> dict:
    """Fit the baseline and return it as a JSON-ready dict."""
    vectorizer = TfidfVectorizer(
        analyzer=cfg.analyzer,
        ngram_range=(cfg.ngram_min, cfg.ngram_max),
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        sublinear_tf=cfg.sublinear_tf,
        lowercase=True,
        dtype=np.float32,
    )
    features = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(C=cfg.C, max_iter=1000, random_state=seed)
    classifier.fit(features, labels)
    terms = [None] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        terms[column] = term
    return {
        "analyzer": cfg.analyzer,
        "ngram_range": [cfg.ngram_min, cfg.ngram_max],
        "sublinear_tf": cfg.sublinear_tf,
        "terms": terms,
        "idf": vectorizer.idf_.round(6).tolist(),
        "coef": classifier.coef_[0].round(6).tolist(),
        "intercept": float(classifier.intercept_[0]),
    }


class TfidfScorer:
    """Probability of the positive class from the exported baseline."""

    def __init__(self, exported: dict):
        self.counter = CountVectorizer(
            analyzer=exported["analyzer"],
            ngram_range=tuple(exported["ngram_range"]),
            vocabulary=exported["terms"],
            lowercase=True,
            dtype=np.float32,
        )
        self.sublinear_tf = exported["sublinear_tf"]
        self.idf = sparse.diags(np.asarray(exported["idf"], dtype=np.float32))
        self.coef = np.asarray(exported["coef"], dtype=np.float32)
        self.intercept = exported["intercept"]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        counts = self.counter.transform(texts)
        if self.sublinear_tf:
            counts.data = np.log(counts.data) + 1
        features = normalize(counts @ self.idf)
        return 1 / (1 + np.exp(-(features @ self.coef + self.intercept)))
