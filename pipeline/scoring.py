"""The metrics every model is judged by, from labels and P(positive): the leaderboard's, and
the comparison of a challenger with the registered champion."""

from __future__ import annotations

import numpy as np

from pipeline.probability import labels_of, log_loss
from pipeline.schema import METRICS

__all__ = ["LOWER_IS_BETTER", "METRICS", "scores"]
LOWER_IS_BETTER = {"log_loss"}


def scores(labels: np.ndarray, probability: np.ndarray) -> dict:
    from sklearn import metrics as skm  # slow to import; `registry status` needs none of it

    predicted = labels_of(probability)
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probability)),
        "log_loss": log_loss(labels, probability),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }
