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


def as_oracle(oracle: Any, *, n_classes: int | None = None) -> Any:
    """An array of labels becomes a :class:`SimulatedOracle`; a callable is used as it is."""
    if callable(oracle):
        return oracle
    return SimulatedOracle(oracle, n_classes=n_classes)
