"""The order in which items arrive on a simulated stream.

* ``"iid"``: a seeded uniform permutation.
* ``"pc"``: ascending first principal component of the standardised flattened inputs (the
  VeSSAL authors' non-i.i.d. stream: StandardScaler, then PCA with one component, then argsort).
  Computed in chunks without holding the standardised data: feature means and standard deviations
  (population, constant features scaled by 1 as StandardScaler does), the d×d correlation matrix,
  its top eigenvector (``scipy.sparse.linalg.eigsh`` over chunked products when d > 4096). The
  eigenvector's sign is fixed so that its largest-magnitude entry is positive (scikit-learn's
  ``svd_flip`` convention); ties in the projection keep index order.
* ``"class"``: classes in ascending order, each class in a seeded random order (reads every label
  from the oracle to build the order; no label is counted as queried).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice
from ..utils import chunks, n_items, take

__all__ = ["ORDERS", "first_pc_scores", "stream_order"]

ORDERS = ("iid", "pc", "class")
_DENSE_MAX = 4096


def _flat(x: Any, sl: slice) -> np.ndarray:
    block = take(x, np.arange(sl.start, sl.stop))
    block = np.asarray(block, dtype=np.float64)
    return block.reshape(block.shape[0], -1)


def first_pc_scores(x: Any, *, chunk_size: int = 4096, seed: int = 0) -> np.ndarray:
    """Projections (n,) of the standardised flattened rows of ``x`` on their first principal axis."""
    n = n_items(x)
    total = sum(_flat(x, sl).sum(axis=0) for sl in chunks(n, chunk_size))
    mean = total / n
    # a second pass for the variance: sums of centred squares do not cancel catastrophically
    var = sum((((_flat(x, sl) - mean) ** 2).sum(axis=0) for sl in chunks(n, chunk_size))) / n
    std = np.sqrt(var)
    std[std <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    d = mean.shape[0]

    def standardised(sl: slice) -> np.ndarray:
        return (_flat(x, sl) - mean) / std

    if d <= _DENSE_MAX:
        cov = np.zeros((d, d))
        for sl in chunks(n, chunk_size):
            b = standardised(sl)
            cov += b.T @ b
        _, vecs = np.linalg.eigh(cov)
        v = vecs[:, -1]
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        def matvec(w: np.ndarray) -> np.ndarray:
            out = np.zeros(d)
            for sl in chunks(n, chunk_size):
                b = standardised(sl)
                out += b.T @ (b @ w.ravel())
            return out

        op = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
        v0 = np.random.default_rng(seed).normal(size=d)
        _, vecs = eigsh(op, k=1, which="LA", v0=v0)
        v = vecs[:, 0]
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return np.concatenate([standardised(sl) @ v for sl in chunks(n, chunk_size)])


def stream_order(order: str | np.ndarray, x: Any, labels: Any, *, rng: np.random.Generator) -> np.ndarray:
    """Absolute indices of all items of ``x`` in arrival order.

    ``order`` is "iid", "pc", "class" or an explicit permutation of ``range(n)``. ``labels`` is a
    callable (indices → labels) or an array; it is read only for "class".
    """
    n = n_items(x)
    if not isinstance(order, str):
        perm = np.asarray(order)
        if perm.shape != (n,) or perm.dtype.kind not in "iu" or not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(f"an explicit order must be a permutation of range({n}); got shape {perm.shape}")
        return perm.astype(np.int64)
    check_choice("order", order, ORDERS)
    perm = rng.permutation(n).astype(np.int64)
    if order == "iid":
        return perm
    if order == "pc":
        return np.argsort(first_pc_scores(x), kind="stable").astype(np.int64)
    y = np.asarray(labels(np.arange(n)) if callable(labels) else labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) for order='class'; got {y.shape}")
    return perm[np.argsort(y[perm], kind="stable")]
