"""Greedy k-center: the core-set batch selection of Sener & Savarese (ICLR 2018).

State is O(n): the squared distance of each candidate to its nearest labelled or chosen point,
and which centre that is. It is initialised block by block (``chunk_size`` candidates ×
``chunk_size`` labelled points at a time, each block one GEMM finished in place, O(n·|L|·d) time,
O(chunk²) extra memory; or by a :mod:`pickwise.neighbors` search such as faiss) and updated after each pick with the distances to
the new centre only, on the rows that two bounds cannot rule out:

* norms: ‖x_i − x_j‖ ≥ |‖x_i‖ − ‖x_j‖|;
* the triangle inequality: with c the current nearest centre of x_i, ‖x_i − x_j‖ ≥ ‖c − x_j‖ −
  ‖x_i − c‖, so a row with ‖c − x_j‖ ≥ 2‖x_i − c‖ cannot get closer. The distances from the new
  centre to the m current centres cost one (m, d) product per pick; late in the batch, when the
  radius is small, most rows are skipped.

Both bounds only skip work; they change no pick beyond rounding in the last bit (a small relative
margin keeps rows on the boundary in). No n×n or n×|L| matrix is ever built; rows to recompute are
gathered at most ``_GATHER_ROWS`` at a time.

float32 input stays float32 in memory (no float64 copy of the embeddings). With ``exact=True`` (the
default) every product is still formed in float64, from float32 rows widened a small block at a
time (``_widen_rows``, a power of two that divides every block the float64 path works on): the
distances, and so the picks, equal those of the same values stored as float64 bit for bit, at
about the float64 path's speed and half its memory. ``exact=False`` forms the products in float32
(about twice as fast per pick; distances and norms still accumulated in float64), and may then pick
another row on near-ties. Anything else is computed in float64.

This is the greedy 2-approximation only; the paper's robust mixed-integer refinement is not
implemented.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import (
    as_numeric,
    check_batch_size,
    check_finite,
    check_positive_int,
    check_rng,
)
from ..progress import progress_bar
from ..utils import chunks

__all__ = ["kcenter_greedy", "min_sq_distances", "nearest_centres"]

# below this fraction of rows to recompute, gathering them beats one dense pass
_GATHER_BELOW = 0.25
# rows gathered (copied) at a time, and rows per slice of a dense pass
_GATHER_ROWS = 8192
_DENSE_ROWS = 65536
# the triangle bound skips a row only when ‖c − x_j‖² > 4‖x_i − c‖²·(1 + margin)
_MARGIN = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
# when the bounds left more than _GATHER_BELOW of the rows, the next picks skip testing them
# (a dense pass follows anyway) and test again after this many picks: on data where the bounds
# never apply (overlapping clusters) their O(n) cost then stays a small fraction of the passes
_RETEST_AFTER = 4


def _as_float(name: str, a: Any) -> np.ndarray:
    """float32 stays float32, anything else becomes float64; finiteness checked in row blocks."""
    arr = as_numeric(name, a)
    if arr.dtype != np.float32:
        arr = np.asarray(arr, dtype=np.float64)
    for rs in chunks(arr.shape[0] if arr.ndim else 1, _DENSE_ROWS):
        if arr.ndim and not np.isfinite(arr[rs]).all():
            check_finite(name, arr)  # the full check names the position
    return arr


def _sq(x: np.ndarray) -> np.ndarray:
    """Squared row norms in float64 (float32 rows are widened a block at a time)."""
    if x.dtype == np.float64:
        return np.einsum("ij,ij->i", x, x)
    out = np.empty(x.shape[0])
    for rs in chunks(x.shape[0], _GATHER_ROWS):
        xr = x[rs].astype(np.float64)
        out[rs] = np.einsum("ij,ij->i", xr, xr)
    return out


def _widen_rows(dim: int) -> int:
    """Rows of float32 widened to float64 at a time: a power of two ≤ 4096 (so every dense slice
    and gathered block of the float64 path splits into whole blocks) of about 4 MB."""
    rows = 4096
    while rows > 1 and rows * dim > 1 << 19:
        rows //= 2
    return rows


def _matvec(x: np.ndarray, rows: slice | np.ndarray, v: np.ndarray, exact: bool) -> np.ndarray:
    """``x[rows] @ v``; with ``exact`` float32 rows are widened a block at a time and multiplied in
    float64 (``v`` float64), giving the float64 path's values bit for bit."""
    if not exact or x.dtype == np.float64:
        return x[rows] @ v
    step = _widen_rows(x.shape[1])
    if isinstance(rows, slice):
        start, stop, _ = rows.indices(x.shape[0])
        out = np.empty(max(stop - start, 0))
        for s in range(start, stop, step):
            out[s - start : s - start + step] = x[s : min(s + step, stop)].astype(np.float64) @ v
        return out
    out = np.empty(rows.shape[0])
    for s in range(0, rows.shape[0], step):
        out[s : s + step] = x[rows[s : s + step]].astype(np.float64) @ v
    return out


def _check_pair(x: np.ndarray, centres: np.ndarray) -> None:
    if np.ndim(x) != 2 or np.ndim(centres) != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"x and centres must have shapes (n, d) and (m, d); got {np.shape(x)} and {np.shape(centres)}")


def nearest_centres(
    x: np.ndarray, centres: np.ndarray, *, chunk_size: int = 1024, neighbors: Any = None, exact: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(min_j ‖x_i − centres_j‖², argmin_j) for every row of ``x``: float64 (n,) and int64 (n,).

    Without ``neighbors``: exact, in blocks of ``chunk_size`` × ``chunk_size`` distances (ties go to
    the smaller index). With a :class:`pickwise.neighbors.NeighborSearch` (e.g. ``FaissFlat()``),
    its ``search(x, centres, 1)``; rows that an approximate search found no centre for are computed
    exactly. No centres: (inf, −1) everywhere. ``x`` and ``centres`` are used as given (float
    arrays of one dtype; :func:`min_sq_distances` checks them); only their shapes are checked here.
    ``exact`` (float32 input): each block's product in float64, as for float64 input (module docstring).
    """
    _check_pair(x, centres)
    n = x.shape[0]
    out = np.full(n, np.inf)
    arg = np.full(n, -1, dtype=np.int64)
    if centres.shape[0] == 0 or n == 0:
        return out, arg
    if neighbors is not None:
        d, i = neighbors.search(x, centres, 1)
        out[:], arg[:] = d[:, 0], i[:, 0]
        missing = np.flatnonzero(arg < 0)
        if missing.shape[0]:
            out[missing], arg[missing] = nearest_centres(x[missing], centres, chunk_size=chunk_size, exact=exact)
        return out, arg
    xsq = _sq(x)
    widen = exact and x.dtype != np.float64
    # ‖x_i − c_j‖² = ‖x_i‖² + (‖c_j‖² − 2 x_i·c_j): the bracket is formed in place in the products'
    # dtype (one GEMM output, no n×m temporaries), its row minimum taken, and ‖x_i‖² added in float64
    csq = _sq(centres).astype(np.float64 if widen else x.dtype)
    rows_at = np.arange(min(n, chunk_size))
    with progress_bar(n, "distances to the labelled set") as bar:
        for rs in chunks(n, chunk_size):
            xr = x[rs].astype(np.float64) if widen else x[rs]
            best, where = np.full(xr.shape[0], np.inf), arg[rs]
            for cs in chunks(centres.shape[0], chunk_size):
                block = xr @ (centres[cs].astype(np.float64) if widen else centres[cs]).T
                block *= -2.0
                block += csq[None, cs]
                j = block.argmin(axis=1)
                m = block[rows_at[: block.shape[0]], j]
                better = m < best
                best[better], where[better] = m[better], j[better] + cs.start
            out[rs], arg[rs] = np.maximum(best + xsq[rs], 0.0), where
            bar.update(rs.stop - rs.start)
    return out, arg


def min_sq_distances(
    x: np.ndarray, centres: np.ndarray, *, chunk_size: int = 1024, neighbors: Any = None, exact: bool = True
) -> np.ndarray:
    """min_j ‖x_i − centres_j‖² for every row of ``x``; ndarray of shape (n,) (inf when no centres).

    Works on blocks of ``chunk_size`` × ``chunk_size`` distances, or with a ``neighbors`` search
    (see :func:`nearest_centres`).
    """
    x = _as_float("x", x)
    c = _as_float("centres", centres).astype(x.dtype, copy=False)
    _check_pair(x, c)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    return nearest_centres(x, c, chunk_size=chunk_size, neighbors=neighbors, exact=exact)[0]


def kcenter_greedy(
    x: np.ndarray,
    k: int,
    *,
    centres: np.ndarray | None = None,
    rng: np.random.Generator,
    chunk_size: int = 1024,
    neighbors: Any = None,
    prune: bool = True,
    exact: bool = True,
) -> np.ndarray:
    """Choose ``k`` rows of ``x`` by greedy k-center from the given ``centres``; positions in pick order.

    Each pick is the row farthest from its nearest centre (first one on ties); it then becomes a
    centre. With no centres the first pick is drawn uniformly by ``rng`` (the only randomness).

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Candidate embeddings (the unlabelled pool); float32 is kept, anything else is float64.
    k : int
        1 ≤ k ≤ n.
    centres : ndarray of shape (m, d) or None
        Embeddings of the labelled set.
    rng : numpy Generator
    chunk_size : int
        Block side for the initial distances to ``centres`` (O(chunk_size²) extra memory).
    neighbors : NeighborSearch or None
        Search for the initial distances to ``centres`` (see :mod:`pickwise.neighbors`); None is
        the exact numpy blocks. The greedy loop itself is the same for every search.
    prune : bool
        Skip rows that the norm and triangle bounds prove cannot get closer (module docstring).
    exact : bool
        float32 ``x``: products in float64 from float32 rows widened a block at a time, so the
        picks equal those of ``x.astype(np.float64)`` exactly (the default); False: products in
        float32, about twice as fast per pick, and another row may win a near-tie. No effect on
        float64 input. Either way ``x`` is never copied to float64.

    Returns
    -------
    ndarray of shape (k,), int64
    """
    x = _as_float("x", x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got shape {x.shape}")
    n, dim = x.shape
    k = check_batch_size(k, n, what="the number of rows")
    check_rng(rng)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    c = np.empty((0, dim), dtype=x.dtype) if centres is None else _as_float("centres", centres)
    if c.ndim != 2 or c.shape[1] != dim:
        raise ValueError(f"centres must have shape (m, {dim}); got shape {c.shape}")
    c = c.astype(x.dtype, copy=False)

    d2, assign = nearest_centres(x, c, chunk_size=chunk_size, neighbors=neighbors, exact=exact)
    xsq = _sq(x)
    xn = np.sqrt(xsq)
    kind = np.dtype(np.float64) if exact else x.dtype  # the products' dtype
    margin = 4.0 * (1.0 + _MARGIN[kind])
    # every centre so far (labelled, then picked) with its squared norm: the triangle bound's table
    m0 = c.shape[0]
    allc = np.empty((m0 + k, dim), dtype=x.dtype)
    allc[:m0] = c
    allsq = np.empty(m0 + k)
    allsq[:m0] = _sq(c) if m0 else allsq[:0]
    picks = np.empty(k, dtype=np.int64)
    untested = 0  # picks left before the bounds are tried again
    with progress_bar(k, "k-center picks", unit="pick") as bar:
        for t in range(k):
            j = int(rng.integers(n)) if t == 0 and m0 == 0 else int(np.argmax(d2))
            picks[t] = j
            bar.update()
            if t == k - 1:
                break
            m = m0 + t  # index of the new centre
            xj = x[j].astype(kind)
            allc[m], allsq[m] = x[j], xsq[j]
            if prune and untested == 0:
                gap = xn - xn[j]
                keep = gap * gap < d2  # ‖x_i − x_j‖ ≥ |‖x_i‖ − ‖x_j‖|
                if m > 0:
                    cd2 = allsq[:m] + xsq[j] - 2.0 * _matvec(allc, slice(0, m), xj, exact)  # ‖c − x_j‖², every centre c
                    # rows without a centre yet (assign −1) have d2 = inf and always stay in
                    keep &= cd2[assign] <= margin * d2
                rows = np.flatnonzero(keep)
                dense = rows.shape[0] > _GATHER_BELOW * n
                untested = _RETEST_AFTER if dense else 0
            else:
                rows, dense = None, True
                untested = max(untested - 1, 0)
            if dense:
                for rs in chunks(n, _DENSE_ROWS):
                    new = xsq[rs] + xsq[j] - 2.0 * _matvec(x, rs, xj, exact)
                    better = new < d2[rs]
                    d2[rs] = np.where(better, np.maximum(new, 0.0), d2[rs])
                    assign[rs] = np.where(better, m, assign[rs])
            else:
                for start in range(0, rows.shape[0], _GATHER_ROWS):  # bounded copies of x's rows
                    r = rows[start : start + _GATHER_ROWS]
                    new = xsq[r] + xsq[j] - 2.0 * _matvec(x, r, xj, exact)
                    better = new < d2[r]
                    r = r[better]
                    d2[r] = np.maximum(new[better], 0.0)
                    assign[r] = m
            # chosen rows stay below every unchosen one, even when every distance is 0
            d2[j] = -1.0
            assign[j] = m
    return picks
