import sys

from pipeline.variants import LstmConfig, TfidfConfig, variant_from_params
from tests.helpers import LSTM, TFIDF


def test_settings_are_read_without_keras_or_scikit_learn():
    import subprocess

    probe = "import pipeline.variants, sys; print('keras' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_variant_s_dataclass_follows_its_type():
    assert isinstance(variant_from_params({**LSTM, "type": "bilstm"}), LstmConfig)
    tfidf = variant_from_params({**TFIDF, "tokenizer": "morph", "analyzer": "word"})
    assert isinstance(tfidf, TfidfConfig) and (tfidf.tokenizer, tfidf.analyzer) == ("morph", "word")
