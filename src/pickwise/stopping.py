"""When to stop labelling: stabilising predictions (Bloodgood & Vijay-Shanker, CoNLL 2009).

A *stop set* — a fixed sample of items that need no labels — is predicted by the model of every
round; Cohen's kappa between consecutive rounds' predictions on it measures how much the model still
changes. The rule fires at the first round where the mean kappa over a window of the last
:data:`WINDOW` rounds (3 in the paper) reaches :data:`THRESHOLD` (0.99 in the paper): from then on
further labels hardly change what the model predicts.

``pool_rounds`` and ``stream_segments`` report it in every record: ``stop_kappa`` (agreement of this
round's model with the previous round's on the stop set; None for the first model, a round without
a model, or when either model predicted nothing) and ``stop_reached`` (the first round at which the
rule fired, carried on in every later record; None until it fires). The rule only reports: the loops
go on for the rounds asked for.

The stop set (:func:`stop_set`) is drawn, seeded, from the items unlabelled at the start of the run
(at most :data:`STOP_SET_SIZE`); items chosen for labelling later stay in it (the paper's stop set is
unlabelled data chosen once, not the current unlabelled pool). Kappa is
:func:`pickwise.project.aggregate.cohen_kappa`, the one labelling projects use between rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import check_positive_int
from .utils import chunks, take

__all__ = ["STOP_SET_SIZE", "THRESHOLD", "WINDOW", "prediction_kappa", "stop_predictions", "stop_round", "stop_set"]

#: items in the stop set (fewer when fewer are unlabelled at the start)
STOP_SET_SIZE = 1000
#: mean kappa over the window at which the rule fires (the paper's 0.99)
THRESHOLD = 0.99
#: rounds averaged (the paper's window of 3)
WINDOW = 3


def stop_set(candidates: Any, *, rng: np.random.Generator, size: int = STOP_SET_SIZE) -> np.ndarray:
    """A sorted sample of ``min(size, len(candidates))`` of the absolute indices ``candidates``
    (ndarray of shape (m,), int64), drawn without replacement with ``rng``."""
    size = check_positive_int("size", size, allow_zero=True)
    cand = np.asarray(candidates, dtype=np.int64).ravel()
    if cand.size <= size:
        return np.sort(cand)
    return np.sort(rng.choice(cand, size, replace=False))


def stop_predictions(model: Any, x: Any, indices: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray | None:
    """The predicted class (argmax of ``model.predict_proba``) of each row ``indices`` of ``x``;
    ndarray of shape (len(indices),), int64. None when there is no model, no stop set, or the model
    has no ``predict_proba``."""
    if model is None or len(indices) == 0 or not hasattr(model, "predict_proba"):
        return None
    parts = [np.asarray(model.predict_proba(take(x, indices[sl]))).argmax(axis=1)
             for sl in chunks(len(indices), chunk_size)]
    return np.concatenate(parts).astype(np.int64)


def prediction_kappa(prev: Any, cur: Any) -> float | None:
    """Cohen's kappa between two rounds' predictions on the same stop set (None when either is
    missing or empty). Two identical constant predictions give 1.0."""
    if prev is None or cur is None:
        return None
    a, b = np.asarray(prev).ravel(), np.asarray(cur).ravel()
    if a.shape != b.shape:
        raise ValueError(f"predictions on the stop set must have equal length; got {a.shape[0]} and {b.shape[0]}")
    from .project.aggregate import cohen_kappa

    value = cohen_kappa(a.tolist(), b.tolist())
    return None if value is None else float(value)


def stop_round(kappas: Sequence[float | None], *, threshold: float = THRESHOLD, window: int = WINDOW) -> int | None:
    """The first index ``r`` with ``window`` consecutive kappas ``kappas[r − window + 1 .. r]`` (none
    missing) whose mean is ≥ ``threshold``; None when the rule never fires. ``kappas[r]`` is round
    ``r``'s agreement with round ``r − 1`` (None where there is none)."""
    window = check_positive_int("window", window)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    for r in range(window - 1, len(kappas)):
        last = kappas[r - window + 1 : r + 1]
        if all(v is not None for v in last) and float(np.mean(last)) >= threshold:
            return r
    return None
