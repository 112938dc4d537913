import numpy as np
import pytest

from pipeline.io import read_json
from pipeline.models import pad_batch
from pipeline.serving import Bundle
from pipeline.tokenizers import whitespace_tokens
from pipeline.train import write_bundle
from pipeline.vocab import OOV_ID, encode, index_of
from tests.helpers import SECTION, fit_small, fit_token_tfidf


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    write_bundle(fit_small(), folder)
    return Bundle(folder)


def test_predict_returns_label_sentiment_probability(bundle):
    out = bundle.predict(["영화 좋다 w1", "영화 싫다 w2"])
    assert list(out.columns) == ["label", "sentiment", "probability"]
    assert out["probability"].between(0, 1).all()
    assert set(out["sentiment"]) <= {"positive", "negative"}
    assert ((out["probability"] >= 0.5).astype(int) == out["label"]).all()


def test_empty_text_is_unknown(bundle):
    out = bundle.predict(["", "  \n\t ", "\u200b", "\ufeff\x00 \u2060", "\u3164", "좋다"])
    assert out["label"].tolist() == [-1, -1, -1, -1, -1, 1]
    assert out["sentiment"].tolist()[:5] == ["unknown"] * 5
    assert out["probability"].tolist()[:5] == [0.5] * 5


def test_long_text_keeps_its_first_max_length_tokens(bundle):
    head = "영화 좋다 w1 w2 w3 w0 좋다 영화"  # max_length is 8 tokens
    scores = bundle.predict([head, head + " 싫다" * 500])["probability"]
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)


EMOJI, ARABIC = "😀👍🎬🍿", "هذا الفيلم رائع جدا"  # nothing any model of the tests has seen


def test_a_text_without_any_feature_of_the_model_is_unknown(bundle):
    out = bundle.predict([EMOJI, ARABIC, "😀😀 good 映畫 12345 ㅋㅋ", "!!!", f"{EMOJI} 좋다"])
    assert out["label"].tolist() == [-1, -1, -1, -1, 1]
    assert out["sentiment"].tolist()[:4] == ["unknown"] * 4
    assert out["probability"].tolist()[:4] == [0.5] * 4
    assert bundle.scores([EMOJI, "싫다"])[1].tolist() == [False, True]
    # what evaluate scores is unchanged: every text's probability, known features or not
    texts = [EMOJI, ARABIC, "영화 좋다 w1"]
    np.testing.assert_array_equal(bundle.probabilities(texts), bundle.scores(texts)[0])


def test_a_char_fallback_lstm_knows_a_text_by_one_known_character(tmp_path):
    small = SECTION["variants"]["small"]
    write_bundle(
        fit_small({**SECTION, "variants": {"small": {**small, "char_fallback": True}}}), tmp_path
    )
    out = Bundle(tmp_path).predict([EMOJI, ARABIC, "좋았음", "화"])
    assert out["label"].tolist()[:2] == [-1, -1]
    assert out["label"].isin([0, 1]).tolist()[2:] == [True, True]  # 좋, 화: known characters


def test_a_tfidf_bundle_knows_a_text_by_one_n_gram_of_its_vocabulary(tmp_path):
    write_bundle(fit_token_tfidf(), tmp_path)
    served = Bundle(tmp_path)
    out = served.predict([EMOJI, ARABIC, "영화관 최고", f"{ARABIC} 영화"])
    assert out["label"].tolist()[:3] == [-1, -1, -1]  # 영화관, 최고: no token of its vocabulary
    assert out["label"].tolist()[3] in (0, 1)


def test_batch_scores_equal_one_by_one(bundle):
    texts = [f"영화 {'좋다' if i % 2 else '싫다'} w{i % 4}" for i in range(300)]
    batch = bundle.probabilities(texts)
    single = np.array([bundle.probabilities([t])[0] for t in texts[:20]])
    np.testing.assert_allclose(batch[:20], single, atol=1e-5)


@pytest.mark.slow
def test_a_max_pooling_bilstm_bundle_loads_and_scores(tmp_path):
    small = SECTION["variants"]["small"]
    section = {**SECTION, "variants": {"small": {**small, "type": "bilstm", "pooling": "max"}}}
    trained = fit_small(section)
    write_bundle(trained, tmp_path)
    texts = ["영화 좋다 w1", "영화 싫다"]
    ids = encode(whitespace_tokens(texts), index_of(read_json(tmp_path / "vocab.json")), 8)
    expected = trained.keras_model.predict(pad_batch(ids), verbose=0).ravel()
    np.testing.assert_allclose(Bundle(tmp_path).probabilities(texts), expected, atol=1e-5)


def test_a_char_fallback_bundle_spells_unknown_words_like_training(tmp_path):
    small = SECTION["variants"]["small"]
    trained = fit_small({**SECTION, "variants": {"small": {**small, "char_fallback": True}}})
    write_bundle(trained, tmp_path)
    assert read_json(tmp_path / "bundle.json")["char_fallback"] is True
    index = index_of(read_json(tmp_path / "vocab.json"))
    texts = ["영화 좋았다", "싫었다 영화"]  # 좋았다, 싫었다: unknown words with known characters
    ids = encode(whitespace_tokens(texts), index, 8, char_fallback=True)
    assert index["##좋"] in ids[0] and OOV_ID not in ids[0]
    expected = trained.keras_model.predict(pad_batch(ids), verbose=0).ravel()
    np.testing.assert_allclose(Bundle(tmp_path).probabilities(texts), expected, atol=1e-5)


def test_a_token_tfidf_bundle_tokenizes_raw_text_like_training(tmp_path):
    write_bundle(fit_token_tfidf(), tmp_path)
    texts = ["영화 좋다 w1", "싫다 영화"]
    served = Bundle(tmp_path)
    assert set(served.tokenizers) == {"space"}
    from_tokens = Bundle(tmp_path, with_tokenizer=False).probabilities(
        texts, {"space": whitespace_tokens(texts)}
    )
    np.testing.assert_array_equal(served.probabilities(texts), from_tokens)
    assert from_tokens[0] > 0.5 > from_tokens[1]


@pytest.mark.slow
def test_a_ppmi_moving_average_bundle_serves_the_weights_it_kept(tmp_path):
    small = SECTION["variants"]["small"]
    variant = {**small, "embedding_init": "ppmi", "ema_momentum": 0.6}
    trained = fit_small({**SECTION, "variants": {"small": variant}})
    write_bundle(trained, tmp_path)
    texts = ["영화 좋다 w1", "영화 싫다"]
    ids = encode(whitespace_tokens(texts), index_of(read_json(tmp_path / "vocab.json")), 8)
    expected = trained.keras_model.predict(pad_batch(ids), verbose=0).ravel()
    np.testing.assert_allclose(Bundle(tmp_path).probabilities(texts), expected, atol=1e-5)
