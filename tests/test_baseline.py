from dataclasses import replace

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from pipeline.baseline import fit_tfidf_logreg, nb_log_count_ratios
from pipeline.tfidf_inference import TfidfScorer, token_ngrams
from pipeline.variants import TfidfConfig
from tests.helpers import LABELS, TOKEN_CFG, TOKENS

TEXTS = ["정말 재밌다", "완전 최고", "감동 그 자체", "너무 지루하다", "최악 노잼", "시간 낭비"]
CFG = TfidfConfig("tfidf_logreg", None, "char", 1, 3, 1, 1000, True, False, 2.0)


def test_json_export_scores_like_scikit_learn():
    exported = fit_tfidf_logreg(TEXTS, LABELS, CFG, seed=0)
    vectorizer = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=1000
    )
    model = LogisticRegression(C=2.0, max_iter=1000).fit(vectorizer.fit_transform(TEXTS), LABELS)
    probe = ["재밌다 최고", "지루 노잼", "처음 보는 글자 ☆"]
    expected = model.predict_proba(vectorizer.transform(probe))[:, 1]
    np.testing.assert_allclose(TfidfScorer(exported)(probe), expected, atol=1e-4)


def test_export_is_plain_json_types():
    exported = fit_tfidf_logreg(TEXTS, LABELS, CFG, seed=0)
    assert isinstance(exported["terms"][0], str) and isinstance(exported["idf"][0], float)


def test_token_ngrams_join_neighbouring_tokens_and_lower_case_them():
    assert token_ngrams(["A/SL", "b/SL", "c/SL"], 1, 2) == [
        "a/sl",
        "b/sl",
        "c/sl",
        "a/sl b/sl",
        "b/sl c/sl",
    ]
    assert token_ngrams(["a"], 2, 3) == []


def test_tokenized_export_keeps_tokens_whole_and_scores_like_scikit_learn():
    exported = fit_tfidf_logreg(TOKENS, LABELS, TOKEN_CFG, seed=0)
    assert exported["tokenized"] is True
    assert {"재밌/va", "재밌/va 었/ep", "다/ef"} <= set(exported["terms"])
    vectorizer = TfidfVectorizer(analyzer=lambda d: token_ngrams(d, 1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(TOKENS)
    model = LogisticRegression(C=2.0, max_iter=1000).fit(features, LABELS)
    probe = [["재밌/VA", "다/EF"], ["지루/XR", "하/XSA"], ["처음/NNG"]]
    expected = model.predict_proba(vectorizer.transform(probe))[:, 1]
    np.testing.assert_allclose(TfidfScorer(exported)(probe), expected, atol=1e-4)


def test_nb_log_count_ratios_compare_document_shares_by_class():
    features = sparse.csr_matrix(
        [[2.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32
    )
    labels = np.array([1, 1, 0, 0])
    # column documents +1 (add-one): positive [3, 1, 2] of 6, negative [1, 3, 2] of 6
    expected = np.log(np.array([3, 1, 2]) / 6) - np.log(np.array([1, 3, 2]) / 6)
    np.testing.assert_allclose(nb_log_count_ratios(features, labels), expected)


def test_nb_scaling_is_folded_into_the_exported_coefficients():
    cfg = replace(CFG, nb_scaling=True)
    exported = fit_tfidf_logreg(TEXTS, LABELS, cfg, seed=0)
    vectorizer = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=1000
    )
    features = vectorizer.fit_transform(TEXTS)
    scale = sparse.diags(nb_log_count_ratios(features, LABELS))
    model = LogisticRegression(C=2.0, max_iter=1000).fit(features @ scale, LABELS)
    probe = ["재밌다 최고", "지루 노잼", "처음 보는 글자 ☆"]
    expected = model.predict_proba(vectorizer.transform(probe) @ scale)[:, 1]
    np.testing.assert_allclose(TfidfScorer(exported)(probe), expected, atol=1e-4)
    plain = fit_tfidf_logreg(TEXTS, LABELS, CFG, seed=0)
    assert not np.allclose(TfidfScorer(plain)(probe), expected, atol=1e-3)
