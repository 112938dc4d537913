import json

import numpy as np
import pytest

from pipeline import ensemble
from pipeline.ensemble import EnsembleConfig, combine
from pipeline.errors import PipelineError
from pipeline.serving import Bundle
from pipeline.tokenizers import whitespace_tokens
from pipeline.train import TrainSettings, train_variant
from pipeline.train import write_bundle as write_variant
from tests.helpers import SECTION, TFIDF, fit_small, tiny_records

VARIANTS = ["base", "bilstm", "tfidf"]
BIGRAMS = {**TFIDF, "ngram_max": 2}


def test_members_come_from_params():
    assert EnsembleConfig.from_params({"members": ["tfidf", "bilstm"]}, VARIANTS).members == (
        "tfidf",
        "bilstm",
    )


@pytest.mark.parametrize("section", [None, {}, {"members": []}, {"members": None}])
def test_no_members_means_no_ensemble(section):
    assert EnsembleConfig.from_params(section, VARIANTS) is None


@pytest.mark.parametrize(
    ("section", "variants", "message"),
    [
        ({"members": ["tfidf", "gru"]}, VARIANTS, "unknown member.*'gru'.*defines base, bilstm"),
        ({"members": ["tfidf", "tfidf"]}, VARIANTS, "at least two different members"),
        ({"members": ["tfidf", "base"]}, [*VARIANTS, "ensemble"], "'ensemble' is reserved"),
    ],
)
def test_bad_ensemble_params_are_named(section, variants, message):
    with pytest.raises(PipelineError, match=message):
        EnsembleConfig.from_params(section, variants)


def test_combine_averages_log_odds():
    p = np.array([0.1, 0.5, 0.9, 0.99], dtype=np.float32)
    np.testing.assert_allclose(combine([p, p]), p, rtol=1e-5)
    np.testing.assert_allclose(combine([p, 1 - p]), 0.5, atol=1e-6)
    # log-odds 2 and 0 average to 1: sigmoid(1)
    np.testing.assert_allclose(
        combine([np.array([1 / (1 + np.exp(-2))]), np.array([0.5])]),
        1 / (1 + np.exp(-1)),
        rtol=1e-5,
    )


def test_combine_survives_certain_members():
    out = combine([np.array([0.0, 1.0]), np.array([1.0, 1.0])])
    assert np.isfinite(out).all() and out[0] == pytest.approx(0.5) and out[1] > 0.999


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("members")
    write_variant(fit_small(), root / "small")
    records = tiny_records()
    section = {**SECTION, "variants": {"tfidf": BIGRAMS}}
    splits = {"train": records[:16], "validation": records[16:]}
    write_variant(
        train_variant(TrainSettings.from_params(section, "tfidf"), splits, None), root / "tfidf"
    )
    return {"small": root / "small", "tfidf": root / "tfidf"}


def test_bundle_scores_the_mean_log_odds_of_its_members(members, tmp_path):
    ensemble.write_bundle(members, tmp_path)
    assert json.loads((tmp_path / "bundle.json").read_text())["members"] == ["small", "tfidf"]
    texts = ["영화 좋다 w1", "영화 싫다 w2", "좋다 좋다"]
    expected = combine([Bundle(folder).probabilities(texts) for folder in members.values()])
    bundle = Bundle(tmp_path)
    assert list(bundle.tokenizers) == ["space"]  # one tokenizer, however many members read it
    assert [set(member.tokenizers) for member in bundle.scorer.members] == [{"space"}, set()]
    assert not Bundle(tmp_path, with_tokenizer=False).tokenizers
    np.testing.assert_allclose(bundle.probabilities(texts), expected, atol=1e-6)
    tokens = {"space": whitespace_tokens(texts)}
    np.testing.assert_allclose(bundle.probabilities(texts, tokens), expected, atol=1e-6)
    out = bundle.predict([*texts, ""])
    assert out["label"].tolist()[-1] == -1 and out["label"].isin([-1, 0, 1]).all()


def test_a_text_is_unknown_only_when_no_member_has_a_feature_of_it(members, tmp_path):
    ensemble.write_bundle(members, tmp_path)
    bundle = Bundle(tmp_path)
    texts = ["😀👍🎬", "هذا الفيلم رائع", "w", "좋다"]  # "w": a character n-gram of the TF-IDF only
    lstm, tfidf = [Bundle(m).scores(texts)[1].tolist() for m in members.values()]
    assert (lstm, tfidf) == ([False, False, False, True], [False, False, True, True])
    out = bundle.predict(texts)
    assert out["label"].tolist()[:2] == [-1, -1] and out["label"].isin([0, 1]).tolist()[2:] == [
        True,
        True,
    ]


def test_bundle_holds_only_json_and_keras_files(members, tmp_path):
    ensemble.write_bundle(members, tmp_path)
    suffixes = {path.suffix for path in tmp_path.rglob("*") if path.is_file()}
    assert suffixes == {".json", ".keras"}
