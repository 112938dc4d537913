import sys

import pytest

from pipeline.errors import PipelineError
from pipeline.variants import LstmConfig, TfidfConfig, variant_from_params, with_defaults
from tests.helpers import LSTM, TFIDF


def test_settings_are_read_without_keras_or_scikit_learn():
    import subprocess

    probe = "import pipeline.variants, sys; print('keras' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_variant_starts_from_its_family_s_defaults_and_its_own_keys_win():
    defaults = {"lstm": {**LSTM, "units": 7}, "tfidf": TFIDF}
    lstm = with_defaults({"type": "bilstm", "units": 9}, defaults)
    assert lstm == {**LSTM, "type": "bilstm", "units": 9}
    assert isinstance(variant_from_params("x", lstm), LstmConfig)
    tfidf = with_defaults({"type": "tfidf_logreg", "C": 2.0}, defaults)
    assert isinstance(variant_from_params("y", tfidf), TfidfConfig) and tfidf["C"] == 2.0
    assert with_defaults({"type": "lstm", "units": 3}, None) == {"type": "lstm", "units": 3}


def test_an_unknown_family_of_defaults_is_named():
    with pytest.raises(PipelineError, match="unknown setting.*train.defaults.*gru"):
        with_defaults({"type": "lstm"}, {"gru": {}})


def test_unknown_variant_type_is_an_error():
    with pytest.raises(PipelineError, match="unknown type 'transformer'"):
        variant_from_params("x", {**LSTM, "type": "transformer"})


def test_missing_and_unknown_settings_are_errors():
    incomplete = {k: v for k, v in LSTM.items() if k != "units"}
    with pytest.raises(PipelineError, match="lacks setting.*units"):
        variant_from_params("x", incomplete)
    with pytest.raises(PipelineError, match="unknown setting.*unit\\b"):
        variant_from_params("x", {**LSTM, "unit": 3})
    with pytest.raises(PipelineError, match="pooling"):
        variant_from_params("x", {**LSTM, "pooling": "attention"})
    for depth in (0, 1.5, "2"):
        with pytest.raises(PipelineError, match="lstm_layers must be a whole number"):
            variant_from_params("x", {**LSTM, "lstm_layers": depth})
    with pytest.raises(PipelineError, match="'x': embedding_init must be one of random, ppmi"):
        variant_from_params("x", {**LSTM, "embedding_init": "word2vec"})
    for momentum in (-0.1, 1.0, "0.9", True):
        with pytest.raises(PipelineError, match="ema_momentum must be a number in"):
            variant_from_params("x", {**LSTM, "ema_momentum": momentum})


def test_tfidf_reads_raw_text_or_a_tokenizer_s_tokens():
    assert variant_from_params("x", TFIDF).tokenizer is None
    words = variant_from_params("x", {**TFIDF, "tokenizer": "morph", "analyzer": "word"})
    assert (words.tokenizer, words.analyzer) == ("morph", "word")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"analyzer": "chars"}, "analyzer must be one of char, char_wb, word"),
        ({"tokenizer": "morph"}, "with tokenizer 'morph' the analyzer must be 'word'.*'char'"),
        ({"tokenizer": "morph", "analyzer": "char_wb"}, "analyzer must be 'word'"),
        ({"nb_scaling": "yes"}, "nb_scaling must be true or false"),
    ],
)
def test_bad_tfidf_analyzer_is_named(settings, message):
    with pytest.raises(PipelineError, match=message):
        variant_from_params("x", {**TFIDF, **settings})
