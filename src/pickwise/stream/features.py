"""The item features ``z`` a stream selector sees: gradient embeddings, penultimate features, sketches.

* ``grad_embedding(probs, h)``: the last-layer gradient embedding g = (p − e_ŷ) ⊗ h, a K·d vector
  whose block c is (p_c − 1[c = ŷ])·h. Blocks are indexed by CLASS. The VeSSAL authors' published
  code sorts the probabilities first, which makes items predicted as different classes collide;
  pickwise never sorts. The bias gradient (the block p − e_ŷ) is appended only with ``bias=True``
  (equivalently, h is extended by a constant 1); by default it is left out, as in BADGE/VeSSAL.
* ``pen_embedding(h)``: the penultimate features themselves (the poster's "pen" baseline).
* ``KroneckerSketch``: a seeded Gaussian projection R = R_a ⊗ R_h applied to a ⊗ h WITHOUT forming
  a ⊗ h, using (R_a ⊗ R_h)(a ⊗ h) = (R_a a) ⊗ (R_h h). Entries of R_h are N(0, 1/n_h) (R_a likewise,
  or R_a = I when ``n_a`` is None, the default: K is small, so only h is projected). Inner products
  are preserved in expectation, ⟨z_i, z_j⟩ = (a_i·a_j)(R_h h_i · R_h h_j) with
  E[R_h h_i · R_h h_j] = h_i·h_j and a relative error of order sqrt(2/n_h) on the h factor; the
  dimension is n_h·K (or n_h·n_a), whatever d is. ``benchmarks/stream.py`` measures how much the
  sketch changes VeSSAL's sampling probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_ndim, check_positive_int, check_probs

__all__ = ["KroneckerSketch", "grad_embedding", "pen_embedding", "stream_embedding", "EMBEDDINGS"]


@lru_cache(maxsize=16)
def _gaussian(seed: int, which: int, n_in: int, n_out: int) -> np.ndarray:
    # a fixed matrix per (seed, factor, shape); read-only so the cache cannot be corrupted
    rng = np.random.default_rng([seed, which, n_in, n_out])
    r = rng.normal(scale=1.0 / np.sqrt(n_out), size=(n_in, n_out))
    r.setflags(write=False)
    return r


@dataclass(frozen=True)
class KroneckerSketch:
    """A seeded Kronecker-structured Gaussian projection of a ⊗ h (see the module doc).

    Parameters
    ----------
    n_h : int
        Output width for the h factor.
    n_a : int or None
        Output width for the a factor; None keeps a exact (R_a = I).
    seed : int
        The projection is a function of (seed, shapes) only, so every chunk and every resumed run
        uses the same one.
    """

    n_h: int
    n_a: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("n_h", self.n_h)
        if self.n_a is not None:
            check_positive_int("n_a", self.n_a)
        check_positive_int("seed", self.seed, allow_zero=True)

    def project_h(self, h: np.ndarray) -> np.ndarray:
        """R_h h for each row: ndarray of shape (n, n_h)."""
        return h @ _gaussian(self.seed, 1, h.shape[1], self.n_h)

    def project_a(self, a: np.ndarray) -> np.ndarray:
        """R_a a for each row: shape (n, n_a), or ``a`` itself when n_a is None."""
        return a if self.n_a is None else a @ _gaussian(self.seed, 2, a.shape[1], self.n_a)

    def __call__(self, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        """(R_a a) ⊗ (R_h h) per row: ndarray of shape (n, n_a·n_h) (n_a = K when exact)."""
        return _outer_rows(self.project_a(a), self.project_h(h))


def _outer_rows(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    # row i: block c = a[i, c] * h[i]  (class-major, class-indexed)
    return (a[:, :, None] * h[:, None, :]).reshape(a.shape[0], a.shape[1] * h.shape[1])


def _check_h(h: Any, n: int | None = None) -> np.ndarray:
    h = check_ndim("h", np.asarray(h, dtype=np.float64), 2, "(n, d)")
    check_finite("h", h)
    if n is not None and h.shape[0] != n:
        raise ValueError(f"probs and h must have the same number of rows; got {n} and {h.shape[0]}")
    return h


def grad_embedding(
    probs: Any, h: Any, *, bias: bool = False, sketch: KroneckerSketch | None = None
) -> np.ndarray:
    """Class-indexed last-layer gradient embedding g = (p − e_ŷ) ⊗ h.

    Parameters
    ----------
    probs : ndarray of shape (n, K)
    h : ndarray of shape (n, d)
        Penultimate activations (the input of the last linear layer).
    bias : bool
        Append the bias gradient p − e_ŷ (h extended by a constant 1).
    sketch : KroneckerSketch, optional
        Project without materialising the (n, K·d) embedding.

    Returns
    -------
    ndarray of shape (n, K·d) (K·(d+1) with ``bias``; the sketch's width with ``sketch``), float64.
    Block c (columns c·d … c·d + d − 1) is (p_c − 1[c = ŷ])·h, ŷ = argmax p (first on ties).
    """
    p = check_probs("probs", probs)
    h = _check_h(h, p.shape[0])
    a = p.copy()
    a[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
    if bias:
        h = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
    return _outer_rows(a, h) if sketch is None else sketch(a, h)


def pen_embedding(h: Any, *, sketch: KroneckerSketch | None = None) -> np.ndarray:
    """Penultimate features as the embedding: ``h`` (n, d), or R_h h (n, n_h) with a sketch."""
    h = _check_h(h)
    return h if sketch is None else sketch.project_h(h)


#: embedding modes by name (the one table of names)
EMBEDDINGS = ("grad", "pen")


def stream_embedding(
    probs: Any, h: Any, *, mode: str = "grad", bias: bool = False, sketch: KroneckerSketch | None = None
) -> np.ndarray:
    """z for VeSSAL from (probs, h): ``mode="grad"`` → ``grad_embedding``; ``"pen"`` → ``pen_embedding``."""
    check_choice("embedding", mode, EMBEDDINGS)
    if mode == "pen":
        return pen_embedding(h, sketch=sketch)
    return grad_embedding(probs, h, bias=bias, sketch=sketch)
