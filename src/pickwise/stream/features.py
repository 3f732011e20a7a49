"""The item features ``z`` a stream selector sees: gradient embeddings, penultimate features, sketches.

* ``grad_features(probs, h)``: the last-layer gradient embedding g = (p − e_ŷ) ⊗ h as an explicit
  (n, K·d) array, block c = (p_c − 1[c = ŷ])·h, built from ``pickwise.embeddings`` (the factored form
  the pool strategies use; same class-indexed layout and bias convention). Blocks are indexed by
  CLASS: the VeSSAL authors' published code sorts the probabilities first, which makes items
  predicted as different classes collide; pickwise never sorts. With ``bias=True`` the bias gradient
  is included (h extended by a constant 1); by default it is left out, as in BADGE/VeSSAL.
* ``pen_features(h)``: the penultimate features themselves (the poster's "pen" baseline).
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

from .._validation import check_choice, check_finite, check_ndim, check_positive_int
from ..embeddings import grad_embedding, materialize

__all__ = ["KroneckerSketch", "grad_features", "pen_features", "stream_features", "EMBEDDINGS"]


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
        return materialize(self.project_a(a), self.project_h(h))


def _check_h(h: Any) -> np.ndarray:
    h = check_ndim("h", np.asarray(h, dtype=np.float64), 2, "(n, d)")
    return check_finite("h", h)


def grad_features(
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
    g = grad_embedding(probs, h, bias=bias)  # validates; factors a = p − e_ŷ and h (with a 1 for bias)
    return g.materialize() if sketch is None else sketch(g.a, g.h)


def pen_features(h: Any, *, sketch: KroneckerSketch | None = None) -> np.ndarray:
    """Penultimate features as the embedding: ``h`` (n, d), or R_h h (n, n_h) with a sketch."""
    h = _check_h(h)
    return h if sketch is None else sketch.project_h(h)


#: embedding modes by name (the one table of names)
EMBEDDINGS = ("grad", "pen")


def stream_features(
    probs: Any, h: Any, *, mode: str = "grad", bias: bool = False, sketch: KroneckerSketch | None = None
) -> np.ndarray:
    """z for VeSSAL from (probs, h): ``mode="grad"`` → ``grad_features``; ``"pen"`` → ``pen_features``."""
    check_choice("embedding", mode, EMBEDDINGS)
    if mode == "pen":
        return pen_features(h, sketch=sketch)
    return grad_features(probs, h, bias=bias, sketch=sketch)
