"""The classical variants: TF-IDF n-grams + logistic regression, stored as JSON.

The n-grams are of the raw text's characters or words, or of a tokenizer's tokens (Kiwi
morphemes). With `nb_scaling` each TF-IDF column is multiplied by its naive Bayes log-count
ratio before the regression (Wang & Manning 2012, "NBSVM"); the ratios are folded into the
exported coefficients, so both kinds score alike. A model is exported as plain numbers
(vocabulary, idf, coefficients) so that the served model never unpickles anything;
pipeline/tfidf_inference.py scores that JSON.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from pipeline.tfidf_inference import Documents, token_ngrams
from pipeline.variants import TfidfConfig


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
