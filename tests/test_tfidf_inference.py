import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from pipeline import tfidf_inference
from pipeline.baseline import fit_tfidf_logreg
from pipeline.tfidf_inference import TfidfScorer, token_ngrams
from pipeline.variants import TfidfConfig
from tests.helpers import LABELS, TOKEN_CFG, TOKENS

TRAIN = [
    "정말 재밌다 ABC",
    "완전 최고 최고",
    "감동 그 자체 😀",
    "너무 지루하다",
    "최악 노잼 xyz",
    "시간 낭비",
]
PROBE = [
    "재밌다 최고",
    "재밌다  \t 재밌다 재밌다",  # whitespace runs, repeated n-grams
    "ABC abc Abc",  # lower-cased like training
    "😀😀 감동",  # outside the Basic Multilingual Plane
    "처음 보는 글자 ☆",  # characters no term has
    "x",
    "",
    "최",
]


def sparse_reference(exported: dict, documents, dtype=np.float32) -> np.ndarray:
    """What the previous scorer computed, in its float32: scikit-learn's transform, idf, norm,
    dot product (float64: the exact formula, to check the float32 is close to it)."""
    tokenized = exported.get("tokenized", False)
    analyzer = (
        {"analyzer": lambda d: token_ngrams(d, *exported["ngram_range"])}
        if tokenized
        else {"analyzer": exported["analyzer"], "ngram_range": tuple(exported["ngram_range"])}
    )
    vectorizer = CountVectorizer(**analyzer, vocabulary=exported["terms"], dtype=dtype)
    counts = vectorizer.transform(documents)
    if exported["sublinear_tf"]:
        counts.data = np.log(counts.data) + 1
    features = normalize(counts @ sparse.diags(np.asarray(exported["idf"], dtype=dtype)))
    coef = np.asarray(exported["coef"], dtype=dtype)
    return 1 / (1 + np.exp(-(features @ coef + exported["intercept"])))


def random_texts(count: int, seed: int) -> list[str]:
    """Texts of up to 200 characters drawn from the training texts' characters and spaces."""
    alphabet = list("".join(TRAIN) + "  ")
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(alphabet, rng.integers(1, 200))) for _ in range(count)]


ANALYZERS = [
    ("char", (1, 4), True, True),
    ("char", (2, 3), False, False),
    ("char_wb", (1, 3), True, False),
    ("word", (1, 2), True, False),
]


@pytest.mark.parametrize(("analyzer", "ngrams", "sublinear", "nb"), ANALYZERS)
def test_scores_equal_scikit_learn_s_transform(analyzer, ngrams, sublinear, nb):
    cfg = TfidfConfig("tfidf_logreg", None, analyzer, *ngrams, 1, 1000, sublinear, nb, 4.0)
    exported = fit_tfidf_logreg(TRAIN, LABELS, cfg, seed=0)
    scorer = TfidfScorer(exported)
    assert (scorer.ngrams is not None) == (analyzer == "char")
    np.testing.assert_array_equal(scorer(PROBE), sparse_reference(exported, PROBE))
    one_by_one = [scorer([text])[0] for text in PROBE]
    np.testing.assert_array_equal(one_by_one, scorer(PROBE))
    exact = sparse_reference(exported, PROBE, dtype=np.float64)
    np.testing.assert_allclose(scorer(PROBE), exact, atol=1e-6)


def test_long_texts_score_the_same_to_the_last_bit():
    """Many n-grams per text: the sums must run in the previous scorer's order."""
    cfg = TfidfConfig("tfidf_logreg", None, "char", 1, 4, 1, 1000, True, True, 4.0)
    exported = fit_tfidf_logreg(TRAIN, LABELS, cfg, seed=0)
    texts = random_texts(500, seed=0)
    np.testing.assert_array_equal(TfidfScorer(exported)(texts), sparse_reference(exported, texts))


def test_a_text_with_no_known_n_gram_scores_the_intercept():
    cfg = TfidfConfig("tfidf_logreg", None, "char", 1, 2, 1, 1000, True, False, 4.0)
    exported = fit_tfidf_logreg(TRAIN, LABELS, cfg, seed=0)
    expected = 1 / (1 + np.exp(-np.float32(exported["intercept"])))
    np.testing.assert_array_equal(TfidfScorer(exported)(["☆☆", ""]), [expected, expected])


def test_token_n_grams_equal_scikit_learn_s_transform():
    exported = fit_tfidf_logreg(TOKENS, LABELS, TOKEN_CFG, seed=0)
    scorer = TfidfScorer(exported)
    assert scorer.ngrams is not None
    probe = [
        ["재밌/VA", "다/EF", "다/EF"],
        ["지루/XR", "하/XSA"],
        ["처음/NNG"],
        [],
        ["재밌/VA 다/EF", "최고/NNG"],  # a token with a space: looked up as a string
        ["DA/EF", "재밌/va"],  # lower-cased like training
    ]
    np.testing.assert_array_equal(scorer(probe), sparse_reference(exported, probe))


def test_an_alphabet_too_large_for_integer_keys_falls_back_to_a_dict(monkeypatch):
    cfg = TfidfConfig("tfidf_logreg", None, "char", 1, 4, 1, 1000, True, False, 4.0)
    exported = fit_tfidf_logreg(TRAIN, LABELS, cfg, seed=0)
    monkeypatch.setattr(tfidf_inference, "_KEY_BITS", 16)
    scorer = TfidfScorer(exported)
    assert scorer.ngrams is None
    np.testing.assert_array_equal(scorer(PROBE), sparse_reference(exported, PROBE))


def test_tokens_holding_spaces_are_counted_like_scikit_learn():
    spaced = [[*tokens, "두 단어/NNP"] if i % 2 else tokens for i, tokens in enumerate(TOKENS)]
    exported = fit_tfidf_logreg(spaced, LABELS, TOKEN_CFG, seed=0)
    assert any(len(term.split(" ")) > 2 for term in exported["terms"])  # "다/ef 두 단어/nnp"
    scorer = TfidfScorer(exported)
    probe = [["다/EF", "두 단어/NNP"], ["두 단어/NNP"], ["재밌/VA", "다/EF"]]
    np.testing.assert_array_equal(scorer(probe), sparse_reference(exported, probe))
