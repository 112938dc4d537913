import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from pipeline.baseline import TfidfScorer, fit_tfidf_logreg
from pipeline.models import TfidfConfig

TEXTS = ["정말 재밌다", "완전 최고", "감동 그 자체", "너무 지루하다", "최악 노잼", "시간 낭비"]
LABELS = np.array([1, 1, 1, 0, 0, 0])
CFG = TfidfConfig("tfidf_logreg", "char", 1, 3, 1, 1000, True, 2.0)


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
