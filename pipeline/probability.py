"""P(positive) conventions shared by training, evaluation, the ensemble and the served model."""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5  # P(positive) at or above it is label 1
LOSS_EPS = 1e-7  # log loss clips probabilities to [LOSS_EPS, 1 - LOSS_EPS], as Keras does
# The ensemble clips each member's probability to [MEMBER_EPS, 1 - MEMBER_EPS] before averaging
# log-odds, so no single over-confident member (|log-odds| above 13.8) can outvote the others.
MEMBER_EPS = 1e-6


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) of a very negative x is inf: the sigmoid, 0
        return 1 / (1 + np.exp(-x))


def labels_of(probability: np.ndarray) -> np.ndarray:
    return (probability >= THRESHOLD).astype(np.int64)


def log_loss(labels: np.ndarray, probability: np.ndarray) -> float:
    p = np.clip(np.asarray(probability, dtype=np.float64), LOSS_EPS, 1 - LOSS_EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
