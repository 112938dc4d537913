import subprocess
import sys

import numpy as np
import pytest

from pipeline import bundle
from pipeline.lstm_inference import Forward, reversed_rows
from pipeline.models import build_lstm_model
from pipeline.variants import LstmConfig
from tests.helpers import LSTM, fit_small

ARCHITECTURES = [
    (kind, pooling, layers)
    for kind in ("lstm", "lstm_dropout", "bilstm")
    for pooling in ("last", "mean", "max")
    for layers in (1, 2)
]


@pytest.mark.parametrize(("kind", "pooling", "layers"), ARCHITECTURES)
def test_the_numpy_forward_pass_equals_keras(tmp_path, kind, pooling, layers):
    cfg = LstmConfig(
        **{**LSTM, "type": kind, "pooling": pooling, "lstm_layers": layers, "dropout": 0.3}
    )
    model = build_lstm_model(cfg, vocab_size=50)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.weights])
    bundle.save_keras(model, tmp_path / "model.keras")
    ids = [rng.integers(1, 50, size) for size in (1, 7, 3, 12, 3, 1, 9)]
    expected = []
    for x in ids:  # one by one, unpadded: what Keras computes for each text alone
        expected.append(float(model(x[None, :].astype(np.int32), training=False)[0, 0]))
    np.testing.assert_allclose(
        Forward.from_keras_file(tmp_path / "model.keras")(ids), expected, atol=1e-6
    )


def test_reversed_rows_reverse_each_real_prefix():
    rows = np.array([[1, 2, 3], [4, 5, 0], [6, 0, 0]])
    lengths = np.array([3, 2, 1])
    assert reversed_rows(rows, lengths).tolist() == [[3, 2, 1], [5, 4, 0], [6, 0, 0]]


SCORE_WITHOUT_TENSORFLOW = """
import sys
from pathlib import Path

from pipeline.serving import Bundle

Bundle(Path(sys.argv[1]), with_tokenizer=False).probabilities(["a"], {"space": [["영화", "좋다"]]})
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_a_served_lstm_does_not_load_tensorflow(tmp_path):
    from pipeline.train import write_bundle

    write_bundle(fit_small(), tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SCORE_WITHOUT_TENSORFLOW, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("pooling", ["last", "max"])
def test_a_text_without_tokens_scores_as_keras_scores_padding_only(tmp_path, pooling):
    cfg = LstmConfig(**{**LSTM, "type": "bilstm", "pooling": pooling})
    model = build_lstm_model(cfg, vocab_size=50)
    bundle.save_keras(model, tmp_path / "model.keras")
    forward = Forward.from_keras_file(tmp_path / "model.keras")
    padding = float(model(np.zeros((1, 8), dtype=np.int32), training=False)[0, 0])
    scored = forward([np.array([], dtype=np.int32), np.array([3, 4], dtype=np.int32)])
    assert scored[0] == pytest.approx(padding, abs=1e-6)
    assert scored[1] == pytest.approx(float(model(np.array([[3, 4]]), training=False)[0, 0]))


def test_the_forward_pass_runs_on_one_blas_thread_and_gives_the_rest_back(tmp_path):
    from threadpoolctl import threadpool_info, threadpool_limits

    from pipeline.serving import load_scorer
    from pipeline.train import write_bundle

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    write_bundle(fit_small(), tmp_path)
    scorer = load_scorer(tmp_path)
    forward, seen = scorer.forward, []
    scorer.forward = lambda ids: seen.append(blas_threads()) or forward(ids)
    with threadpool_limits(2, user_api="blas"):
        scorer.probabilities(["a"], {scorer.name: [["영화", "좋다"]]})
        assert seen == [{1}]
        assert blas_threads() == {2}
