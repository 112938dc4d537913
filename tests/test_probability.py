import numpy as np
import pytest

from pipeline.probability import THRESHOLD, labels_of, log_loss, sigmoid


def test_the_threshold_belongs_to_the_positive_class():
    assert labels_of(np.array([0.2, THRESHOLD, 0.9])).tolist() == [0, 1, 1]


def test_log_loss_clips_certain_mistakes():
    labels = np.array([1, 0])
    assert log_loss(labels, np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert np.isfinite(log_loss(labels, np.array([0.0, 1.0])))
    assert log_loss(labels, np.array([0.0, 1.0])) == pytest.approx(-np.log(1e-7))


def test_sigmoid():
    assert sigmoid(np.array([0.0]))[0] == 0.5
