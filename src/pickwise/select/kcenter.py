"""Greedy k-center: the core-set batch selection of Sener & Savarese (ICLR 2018).

State is one length-n vector: the squared distance of each candidate to its nearest labelled or
chosen point. It is initialised block by block (``chunk_size`` candidates × ``chunk_size``
labelled points at a time, O(n·|L|·d) time, O(chunk²) extra memory) and updated after each pick
with the distances to the new centre only, skipping rows that the norm bound
‖x_i − x_j‖ ≥ |‖x_i‖ − ‖x_j‖| proves cannot get closer. No n×n or n×|L| matrix is ever built.

This is the greedy 2-approximation only; the paper's robust mixed-integer refinement is not
implemented.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_finite
from ..utils import chunks

__all__ = ["kcenter_greedy", "min_sq_distances"]


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def min_sq_distances(x: np.ndarray, centres: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray:
    """min_j ‖x_i − centres_j‖² for every row of ``x``; ndarray of shape (n,) (inf when no centres).

    Works on blocks of ``chunk_size`` × ``chunk_size`` distances.
    """
    n = x.shape[0]
    out = np.full(n, np.inf)
    if centres.shape[0] == 0:
        return out
    xsq = _sq(x)
    csq = _sq(centres)
    for rs in chunks(n, chunk_size):
        xr = x[rs]
        best = out[rs]
        for cs in chunks(centres.shape[0], chunk_size):
            block = xsq[rs, None] + csq[None, cs] - 2.0 * (xr @ centres[cs].T)
            np.minimum(best, block.min(axis=1), out=best)
        out[rs] = np.maximum(best, 0.0)
    return out


def kcenter_greedy(
    x: np.ndarray,
    k: int,
    *,
    centres: np.ndarray | None = None,
    rng: np.random.Generator,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Choose ``k`` rows of ``x`` by greedy k-center from the given ``centres``; positions in pick order.

    Each pick is the row farthest from its nearest centre (first one on ties); it then becomes a
    centre. With no centres the first pick is drawn uniformly by ``rng`` (the only randomness).

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Candidate embeddings (the unlabelled pool).
    k : int
        1 ≤ k ≤ n.
    centres : ndarray of shape (m, d) or None
        Embeddings of the labelled set.
    rng : numpy Generator
    chunk_size : int
        Block side for the initial distances to ``centres`` (O(chunk_size²) extra memory).

    Returns
    -------
    ndarray of shape (k,), int64
    """
    x = check_finite("x", np.asarray(x, dtype=np.float64))
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must lie in 1 .. {n} (the number of rows)")
    c = np.empty((0, x.shape[1])) if centres is None else check_finite("centres", np.asarray(centres, dtype=np.float64))
    if c.ndim != 2 or c.shape[1] != x.shape[1]:
        raise ValueError(f"centres must have shape (m, {x.shape[1]}); got shape {c.shape}")

    d2 = min_sq_distances(x, c, chunk_size=chunk_size)
    xsq = _sq(x)
    xn = np.sqrt(xsq)
    picks = np.empty(k, dtype=np.int64)
    for t in range(k):
        j = int(rng.integers(n)) if t == 0 and c.shape[0] == 0 else int(np.argmax(d2))
        picks[t] = j
        if t == k - 1:
            break
        # ‖x_i − x_j‖ ≥ |‖x_i‖ − ‖x_j‖|: rows whose norm gap reaches their distance cannot move
        gap = xn - xn[j]
        rows = np.flatnonzero(gap * gap < d2)
        if rows.shape[0] > n // 2:
            for rs in chunks(n, 65536):
                new = xsq[rs] + xsq[j] - 2.0 * (x[rs] @ x[j])
                np.maximum(new, 0.0, out=new)
                np.minimum(d2[rs], new, out=d2[rs])
        elif rows.shape[0]:
            new = xsq[rows] + xsq[j] - 2.0 * (x[rows] @ x[j])
            np.maximum(new, 0.0, out=new)
            d2[rows] = np.minimum(d2[rows], new)
        # chosen rows stay below every unchosen one, even when every distance is 0
        d2[j] = -1.0
    return picks
