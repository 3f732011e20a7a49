"""Oracles: who answers with labels. In simulations, the held-back true labels."""

from __future__ import annotations

from typing import Any

import numpy as np


class SimulatedOracle:
    """Answers from known labels ``y`` (absolute indices), counting the queries it answered."""

    def __init__(self, y: Any, *, n_classes: int | None = None):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"oracle labels must have shape (n,); got shape {y.shape}")
        if y.size and y.dtype.kind not in "iu":
            raise ValueError(f"oracle labels must be integer class ids; got dtype {y.dtype}")
        if y.size and y.min() < 0:
            raise ValueError(f"oracle label {int(y.min())} is negative")
        if n_classes is not None and y.size and y.max() >= n_classes:
            raise ValueError(f"oracle label {int(y.max())} is outside the classes 0 .. {n_classes - 1}")
        self.y = y.astype(np.int64)
        self.n_queries = 0

    def __call__(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.y.shape[0]):
            bad = idx[(idx < 0) | (idx >= self.y.shape[0])][0]
            raise ValueError(f"index {int(bad)} is out of range for an oracle over {self.y.shape[0]} items")
        self.n_queries += int(idx.size)
        return self.y[idx].copy()


def check_answer(labels: Any, indices: Any, *, n_classes: int | None = None) -> np.ndarray:
    """An oracle's answer for ``indices`` as int64 class ids, checked: one label per index, each an
    integer class id (integral floats such as 3.0 are accepted), non-negative and below
    ``n_classes`` when given. Raises ``ValueError`` naming the offending label and its item — a
    label of 0.7 is an error, never truncated to 0."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    y = np.asarray(labels)
    if y.shape != idx.shape:
        raise ValueError(f"the oracle answered labels of shape {y.shape} for {idx.shape[0]} items; "
                         f"expected one label per item, shape ({idx.shape[0]},)")
    if y.size == 0:
        return np.empty(0, dtype=np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            j = int(np.argmax(bad))
            raise ValueError(f"the oracle's label {y[j].item()!r} for item {int(idx[j])} is not an integer class id")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"the oracle's labels must be integer class ids; got dtype {y.dtype} "
                         f"(first label {y.reshape(-1)[0].item()!r} for item {int(idx[0])})")
    out = y.astype(np.int64)
    if out.min() < 0:
        j = int(np.argmin(out))
        raise ValueError(f"the oracle's label {y[j].item()!r} for item {int(idx[j])} is negative")
    if n_classes is not None and out.max() >= n_classes:
        j = int(np.argmax(out))
        raise ValueError(f"the oracle's label {y[j].item()!r} for item {int(idx[j])} is outside the classes "
                         f"0 .. {n_classes - 1}")
    return out


def as_oracle(oracle: Any, *, n_classes: int | None = None) -> Any:
    """An array of labels becomes a :class:`SimulatedOracle`; a callable is used as it is (the loops
    check each of its answers with :func:`check_answer`)."""
    if callable(oracle):
        return oracle
    return SimulatedOracle(oracle, n_classes=n_classes)
