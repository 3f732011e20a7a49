"""Evaluation metrics over predicted probabilities, and the held-out evaluator the loop uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._validation import check_int_values, check_positive_int, check_probs


def _labels(y: Any, probs: np.ndarray) -> np.ndarray:
    """``y`` checked against ``probs``: one whole-number class id in 0 .. K − 1 per row."""
    if probs.shape[0] == 0:
        raise ValueError(f"probs must hold at least one row to evaluate; got shape {probs.shape}")
    y = check_int_values("y", y)
    if y.ndim != 1 or y.shape[0] != probs.shape[0]:
        raise ValueError(f"y must have shape ({probs.shape[0]},); got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= probs.shape[1]):
        bad = y[(y < 0) | (y >= probs.shape[1])][0]
        raise ValueError(f"label {bad} is outside the classes 0 .. {probs.shape[1] - 1}")
    return y


def accuracy(y: Any, probs: np.ndarray) -> float:
    """Fraction of rows whose most likely class is ``y``."""
    p = check_probs("probs", probs)
    return float(np.mean(p.argmax(axis=1) == _labels(y, p)))


def macro_f1(y: Any, probs: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y`` or the predictions."""
    p = check_probs("probs", probs)
    y = _labels(y, p)
    pred = p.argmax(axis=1)
    k = p.shape[1]
    tp = np.bincount(y[pred == y], minlength=k).astype(float)
    n_pred = np.bincount(pred, minlength=k).astype(float)
    n_true = np.bincount(y, minlength=k).astype(float)
    present = (n_pred + n_true) > 0
    f1 = np.divide(2 * tp, n_pred + n_true, out=np.zeros(k), where=present)
    return float(f1[present].mean()) if present.any() else 0.0


def nll(y: Any, probs: np.ndarray, *, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at ``eps``)."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not 0 < eps < 1:
        raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
    p = check_probs("probs", probs)
    y = _labels(y, p)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def ece(y: Any, probs: np.ndarray, *, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence over ``n_bins`` equal-width bins."""
    n_bins = check_positive_int("n_bins", n_bins)
    p = check_probs("probs", probs)
    y = _labels(y, p)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return float(total / max(len(y), 1))


METRICS: dict[str, Callable[[Any, np.ndarray], float]] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "nll": nll,
    "ece": ece,
}


def evaluate_probs(y: Any, probs: np.ndarray) -> dict[str, float]:
    return {name: fn(y, probs) for name, fn in METRICS.items()}


def holdout(x_test: Any, y_test: Any) -> Callable[[Any], dict[str, float]]:
    """An evaluator: ``holdout(x, y)(model)`` gives accuracy, macro-F1, NLL and ECE on (x, y)."""
    y_test = np.asarray(y_test)

    def evaluate(model: Any) -> dict[str, float]:
        return evaluate_probs(y_test, model.predict_proba(x_test))

    return evaluate
