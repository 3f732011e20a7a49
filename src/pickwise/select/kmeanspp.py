"""k-means++ seeding on factored embeddings: BADGE's batch selection (Ash et al., ICLR 2020).

State is one length-n vector D² (squared distance of each item to its nearest chosen centre),
updated after each pick with the distances to the new centre only. On a factored embedding
g_i = a_i ⊗ h_i (see :mod:`pickwise.embeddings`) one update costs O(n·(K + d)) time and O(n)
extra memory; the n×(K·d) matrix is never built.

Pruning: the cheap part of the distance, a_i·a_c (O(K) per row), comes first; with
|h_i·h_c| ≤ ‖h_i‖‖h_c‖ it bounds ‖g_i − g_c‖² ≥ ‖g_i‖² + ‖g_c‖² − 2|a_i·a_c|‖h_i‖‖h_c‖, and a row
whose bound already reaches its current D² cannot get closer, so only the other rows pay the O(d)
product. This changes no result (beyond rounding in the last bit), only the work: late picks,
with small D², touch few rows.

Precision: float32 factors (both a and h) stay float32 — the O(n·(K + d)) products per pick run in
float32, at half the memory traffic — while norms, D² and the sampling stay float64. Anything else
is computed in float64, bit for bit as before.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_batch_size, check_choice, check_float_rows, check_rng
from ..embeddings import GradEmbedding
from ..progress import progress_bar

__all__ = ["kmeanspp_seeding", "sample_d2"]

# below this fraction of rows to recompute, gathering them beats one dense pass
_GATHER_BELOW = 0.25
# rows gathered at a time, so that the copies stay small (8192 × d floats)
_GATHER_ROWS = 8192


def sample_d2(d2: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn with probability ∝ ``d2`` (entries ≥ 0 with a positive sum).

    Draws u ~ U[0, 1) from ``rng`` and returns the first index whose running sum of ``d2`` exceeds
    u·Σd2. Items with d2 = 0 are never returned. The reference in the tests uses the same rule.
    """
    cum = np.cumsum(d2)
    idx = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    if idx >= d2.shape[0]:  # u·Σ rounded up to Σ: take the last item with positive mass
        idx = int(np.flatnonzero(d2 > 0)[-1])
    return idx


def kmeanspp_seeding(
    emb: GradEmbedding | np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    first: str = "max_norm",
    prune: bool = True,
) -> np.ndarray:
    """Choose ``k`` distinct rows by k-means++ seeding (no Lloyd steps); positions in pick order.

    Parameters
    ----------
    emb : GradEmbedding or ndarray of shape (n, d)
        Factored embedding (a, h), or a dense embedding.
    k : int
        Number of centres, 1 ≤ k ≤ n.
    rng : numpy Generator
        One ``rng.random()`` per pick after the first (see :func:`sample_d2`); a pick among
        all-zero distances (every remaining item coincides with a centre) draws
        ``rng.integers`` over the unchosen rows instead.
    first : "max_norm" or "random"
        BADGE starts from the largest-norm row (first one on ties), as in the authors' code;
        "random" starts uniformly at random (classical k-means++).
    prune : bool
        Skip rows that the norm bound proves cannot move (see the module docstring).

    Returns
    -------
    ndarray of shape (k,), int64
    """
    if isinstance(emb, GradEmbedding):
        e = GradEmbedding(check_float_rows("emb.a", emb.a), check_float_rows("emb.h", emb.h))
    else:
        arr = check_float_rows("emb", emb)  # float32 stays float32
        e = GradEmbedding(np.ones((arr.shape[0], 1), dtype=arr.dtype), arr)
    kind = np.float32 if e.a.dtype == np.float32 and e.h.dtype == np.float32 else np.float64
    a = np.ascontiguousarray(e.a, dtype=kind)
    h = np.ascontiguousarray(e.h, dtype=kind)
    n = a.shape[0]
    k = check_batch_size(k, n, what="the number of rows")
    check_rng(rng)
    check_choice("first", first, ("max_norm", "random"))

    hh = _sq64(h)
    sqn = _sq64(a) * hh
    hn = np.sqrt(hh)
    chosen = np.zeros(n, dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    d2 = np.full(n, np.inf)

    c = int(np.argmax(sqn)) if first == "max_norm" else int(rng.integers(n))
    with progress_bar(k, "k-means++ picks", unit="pick") as bar:
        _seed_loop(a, h, sqn, hn, d2, chosen, picks, c, k, rng, prune, bar)
    return picks


def _sq64(x: np.ndarray) -> np.ndarray:
    """Squared row norms in float64 (float32 rows are widened a block at a time)."""
    if x.dtype == np.float64:
        return np.einsum("ij,ij->i", x, x)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _GATHER_ROWS):
        xr = x[start : start + _GATHER_ROWS].astype(np.float64)
        out[start : start + _GATHER_ROWS] = np.einsum("ij,ij->i", xr, xr)
    return out


def _seed_loop(a, h, sqn, hn, d2, chosen, picks, c, k, rng, prune, bar) -> None:
    """The k picks of :func:`kmeanspp_seeding` from the first centre ``c``; fills ``picks``."""
    n = a.shape[0]
    for t in range(k):
        picks[t] = c
        chosen[c] = True
        bar.update()
        if t == k - 1:
            break
        # distances to the new centre, only where a lower bound allows a decrease
        aa = a @ a[c]  # (n,): cheap next to h @ h[c]
        rows = None
        if prune and t > 0:
            # |h_i·h_c| ≤ ‖h_i‖‖h_c‖ gives d² ≥ ‖g_i‖² + ‖g_c‖² − 2|a_i·a_c|‖h_i‖‖h_c‖
            bound = sqn + sqn[c] - 2.0 * np.abs(aa) * (hn * hn[c])
            cand = np.flatnonzero(bound < d2)
            if cand.shape[0] < _GATHER_BELOW * n:
                rows = cand
        if rows is None:
            new = sqn + sqn[c] - 2.0 * aa * (h @ h[c])
            np.maximum(new, 0.0, out=new)
            np.minimum(d2, new, out=d2)
        else:
            for start in range(0, rows.shape[0], _GATHER_ROWS):  # bounded copies of h's rows
                r = rows[start : start + _GATHER_ROWS]
                new = sqn[r] + sqn[c] - 2.0 * aa[r] * (h[r] @ h[c])
                np.maximum(new, 0.0, out=new)
                d2[r] = np.minimum(d2[r], new)
        d2[c] = 0.0
        if d2.max() > 0:
            c = sample_d2(d2, rng)
        else:
            free = np.flatnonzero(~chosen)
            c = int(free[rng.integers(free.shape[0])])
