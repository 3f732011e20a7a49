"""Factored last-layer gradient embeddings: norms, inner products and distances without N×(K·d).

The gradient of the cross-entropy loss at the model's own prediction ŷ with respect to the last
linear layer's weights W (shape (K, d)) is the outer product

    g(x) = (p − e_ŷ) ⊗ h,    block c (class c, never probability rank) = (p_c − 1[c = ŷ]) · h,

with p the predicted probabilities and h the penultimate activation (Ash et al., ICLR 2020). We keep
the two factors a = p − e_ŷ of shape (n, K) and h of shape (n, d); then

    ⟨g_i, g_j⟩   = (a_i·a_j)(h_i·h_j)
    ‖g_i − g_j‖² = ‖a_i‖²‖h_i‖² + ‖a_j‖²‖h_j‖² − 2(a_i·a_j)(h_i·h_j)

so every quantity costs O(K + d) per pair instead of O(K·d). The sign convention (p − e_ŷ versus
e_ŷ − p in the authors' code) changes no distance or norm.

Bias: with ``bias=True`` the last layer is taken to have a bias, whose gradient block p − e_ŷ is
folded in by appending a constant 1 to h (g = a ⊗ [h, 1], i.e. the gradient of [W | b] row by
row). The default ``bias=False`` matches the authors' code (weights only).

A dense embedding x of shape (n, d) is the factored embedding with a = 1 of shape (n, 1), so the
selection algorithms accept either.

Also here: expected gradient length (EGL) from the same factors, and the mean cosine similarity
of each row to all rows in O(n·d) (information density).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import (
    as_numeric,
    check_finite,
    check_float_rows,
    check_positive_int,
    check_probs,
)

__all__ = [
    "GradEmbedding",
    "grad_embedding",
    "gradient_factor",
    "sq_norms",
    "inner_products",
    "sq_distances",
    "materialize",
    "expected_gradient_length",
    "mean_cosine_similarity",
    "mean_knn_cosine_similarity",
]


def gradient_factor(probs: np.ndarray) -> np.ndarray:
    """a = p − e_ŷ with ŷ = argmax p (first maximum on ties); ndarray of shape (n, n_classes)."""
    p = check_probs("probs", probs)
    a = p.copy()
    a[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
    return a


def _with_bias(h: np.ndarray, bias: bool) -> np.ndarray:
    h = check_finite("h", np.asarray(as_numeric("h", h), dtype=np.float64))
    if h.ndim != 2:
        raise ValueError(f"h must have shape (n, d); got shape {h.shape}")
    return np.hstack([h, np.ones((h.shape[0], 1))]) if bias else h


@dataclass(frozen=True)
class GradEmbedding:
    """g_i = a_i ⊗ h_i for i < n, never materialised unless asked.

    Attributes
    ----------
    a : ndarray of shape (n, K)
        p − e_ŷ (or any left factor; ones of shape (n, 1) for a dense embedding h).
    h : ndarray of shape (n, d)
        penultimate activations (with a trailing 1 when built with ``bias=True``).
    """

    a: np.ndarray
    h: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", as_numeric("a", self.a))
        object.__setattr__(self, "h", as_numeric("h", self.h))
        if self.a.ndim != 2 or self.h.ndim != 2 or self.a.shape[0] != self.h.shape[0]:
            raise ValueError(f"a and h must be (n, K) and (n, d); got {self.a.shape} and {self.h.shape}")

    @classmethod
    def dense(cls, x: np.ndarray) -> GradEmbedding:
        """A plain (n, d) embedding seen as the factored embedding 1 ⊗ x."""
        x = _with_bias(x, False)
        return cls(np.ones((x.shape[0], 1)), x)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    @property
    def dim(self) -> int:
        """K·d, the length of a materialised row."""
        return int(self.a.shape[1] * self.h.shape[1])

    def take(self, rows: np.ndarray) -> GradEmbedding:
        return GradEmbedding(self.a[rows], self.h[rows])

    def sq_norms(self) -> np.ndarray:
        return sq_norms(self.a, self.h)

    def norms(self) -> np.ndarray:
        return np.sqrt(self.sq_norms())

    def inner(self, other: GradEmbedding) -> np.ndarray:
        return inner_products(self.a, self.h, other.a, other.h)

    def sq_distances(self, centres: GradEmbedding) -> np.ndarray:
        return sq_distances(self.a, self.h, centres.a, centres.h)

    def materialize(self) -> np.ndarray:
        return materialize(self.a, self.h)


def grad_embedding(probs: np.ndarray, h: np.ndarray, *, bias: bool = False) -> GradEmbedding:
    """The factored gradient embedding of predictions ``probs`` (n, K) and activations ``h`` (n, d)."""
    a = gradient_factor(probs)
    hb = _with_bias(h, bias)
    if hb.shape[0] != a.shape[0]:
        raise ValueError(f"probs and h must have the same number of rows; got {a.shape[0]} and {hb.shape[0]}")
    return GradEmbedding(a, hb)


def sq_norms(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """‖a_i ⊗ h_i‖² = ‖a_i‖²‖h_i‖²; ndarray of shape (n,)."""
    return np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", h, h)


def inner_products(a: np.ndarray, h: np.ndarray, a_c: np.ndarray, h_c: np.ndarray) -> np.ndarray:
    """⟨g_i, c_j⟩ = (a_i·a_c_j)(h_i·h_c_j); ndarray of shape (n, m) for m centres."""
    return (a @ a_c.T) * (h @ h_c.T)


def sq_distances(a: np.ndarray, h: np.ndarray, a_c: np.ndarray, h_c: np.ndarray) -> np.ndarray:
    """‖g_i − c_j‖², clipped at 0 against rounding; ndarray of shape (n, m) for m centres.

    Memory O(n·m) for the result plus O(n·m) temporaries; callers chunk over rows or centres.
    """
    d2 = sq_norms(a, h)[:, None] + sq_norms(a_c, h_c)[None, :] - 2.0 * inner_products(a, h, a_c, h_c)
    return np.maximum(d2, 0.0)


def materialize(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The explicit embedding of shape (n, K·d); block c (columns c·d .. c·d+d−1) is a[:, c]·h.

    For small inputs and tests only: it costs n·K·d floats.
    """
    return (a[:, :, None] * h[:, None, :]).reshape(a.shape[0], a.shape[1] * h.shape[1])


def expected_gradient_length(probs: np.ndarray, h: np.ndarray, *, bias: bool = False) -> np.ndarray:
    """EGL = Σ_c p_c ‖∇_W ℓ(x, c)‖ = ‖h‖ Σ_c p_c ‖p − e_c‖ (Settles, Craven & Ray, NIPS 2008).

    The last-layer gradient for label c is (p − e_c) ⊗ h, with norm ‖p − e_c‖·‖h‖ and
    ‖p − e_c‖² = Σ_{j≠c} p_j² + (1 − p_c)²; the first sum is taken directly for the most likely
    class (where ‖p‖² − p_c² would cancel). ndarray of shape (n,).
    """
    p = check_probs("probs", probs)
    hb = _with_bias(h, bias)
    sq = p * p
    pp = sq.sum(axis=1, keepdims=True)
    others = pp - sq  # Σ_{j≠c} p_j², accurate unless p_c dominates
    rows = np.arange(p.shape[0])
    top = p.argmax(axis=1)
    masked = sq.copy()
    masked[rows, top] = 0.0
    others[rows, top] = masked.sum(axis=1)
    grad_norm = np.sqrt(np.maximum(others, 0.0) + (1.0 - p) ** 2)  # (n, K)
    return (p * grad_norm).sum(axis=1) * np.sqrt(np.einsum("ij,ij->i", hb, hb))


def _float_rows(name: str, x: np.ndarray) -> np.ndarray:
    """float32 stays float32 (no n×d float64 copy), anything else becomes float64; checked in blocks."""
    return check_float_rows(name, x)


def _inverse_norms(xc: np.ndarray) -> np.ndarray:
    nrm = np.sqrt(np.einsum("ij,ij->i", xc, xc))
    return np.where(nrm > 0, 1.0 / np.where(nrm > 0, nrm, 1.0), 0.0)


def mean_cosine_similarity(x: np.ndarray, *, chunk_size: int = 4096) -> np.ndarray:
    """mean_j cos(x_i, x_j) over all n rows j (i itself included); ndarray of shape (n,).

    Cosine similarity is linear in the unit vectors, so the mean over j is
    x̂_i · (mean_j x̂_j): two O(n·d) passes and O(d) state instead of an n×n matrix. A zero row has
    similarity 0 to everything (itself included). float32 input is widened one chunk at a time.
    """
    x = _float_rows("x", x)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    n = x.shape[0]
    total = np.zeros(x.shape[1])
    inv = np.empty(n)
    for start in range(0, n, chunk_size):
        xc = np.asarray(x[start : start + chunk_size], dtype=np.float64)
        inv[start : start + chunk_size] = _inverse_norms(xc)
        total += (xc * inv[start : start + chunk_size, None]).sum(axis=0)
    mean_unit = total / max(n, 1)
    if x.dtype == np.float64:
        return (x @ mean_unit) * inv
    out = np.empty(n)
    for start in range(0, n, chunk_size):
        out[start : start + chunk_size] = np.asarray(x[start : start + chunk_size], dtype=np.float64) @ mean_unit
    return out * inv


def mean_knn_cosine_similarity(x: np.ndarray, n_neighbors: int, *, neighbors: Any = None) -> np.ndarray:
    """Mean cosine similarity of each row to its ``n_neighbors`` most similar other rows; shape (n,).

    A local density (the whole-pool mean is :func:`mean_cosine_similarity`). Rows are scaled to unit
    length, where ‖x̂_i − x̂_j‖² = 2 − 2 cos(x_i, x_j), so the most similar rows are the Euclidean
    nearest ones: ``neighbors`` (a :mod:`pickwise.neighbors` search; default exact numpy, O(n²·d))
    is asked for ``n_neighbors + 1`` of them and row i itself is dropped (the last one when the
    search did not return i). Zero rows are left at zero length (similarity 0 to everything).
    Memory: one unit-length copy of x in its own dtype, plus what the search holds.
    """
    from .neighbors import NumpySearch

    x = _float_rows("x", x)
    n = x.shape[0]
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be an integer in 1 .. {n - 1} (rows − 1); got {n_neighbors!r}")
    unit = np.empty_like(x)
    zero = np.empty(n, dtype=bool)
    for start in range(0, n, 65536):
        xc = np.asarray(x[start : start + 65536], dtype=np.float64)
        inv = _inverse_norms(xc)
        unit[start : start + 65536] = xc * inv[:, None]
        zero[start : start + 65536] = inv == 0
    search = neighbors if neighbors is not None else NumpySearch()
    d2, idx = search.search(unit, unit, n_neighbors + 1)
    keep = idx != np.arange(n)[:, None]
    keep[keep.all(axis=1), -1] = False  # i not returned: drop the farthest instead
    # an approximate search may return −1 (nothing found) for trailing places: count them as dropped
    found = keep & (idx >= 0)
    found &= ~zero[:, None] & ~zero[np.maximum(idx, 0)]  # a zero row is similar to nothing
    sims = np.where(found, 1.0 - 0.5 * d2, 0.0)
    return sims.sum(axis=1) / n_neighbors
