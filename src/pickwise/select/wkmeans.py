"""Weighted k-means selection: the clustering step of diverse mini-batch AL (Zhdanov 2019).

Cluster the (pre-filtered) candidates into k clusters with k-means weighted by informativeness,
then query, for each centroid, the nearest candidate not already taken by another centroid.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._validation import (
    as_numeric,
    check_batch_size,
    check_finite,
    check_positive_int,
    check_rng,
)
from ..utils import chunks

__all__ = ["weighted_kmeans_select", "nearest_distinct"]


def nearest_distinct(x: np.ndarray, centres: np.ndarray, *, chunk_size: int = 1024) -> np.ndarray:
    """One distinct row of ``x`` per centre, nearest first: ndarray of shape (m,), int64.

    Greedy matching: all (centre, row) pairs are taken in order of increasing distance and a pair
    is kept when neither its centre nor its row is used yet, so every centre gets its nearest row
    unless a closer centre already claimed it. Only each centre's m nearest rows are considered
    (enough, since at most m − 1 rows can be claimed by others); memory O(m²).
    """
    if np.ndim(x) != 2 or np.ndim(centres) != 2 or x.shape[1] != centres.shape[1]:
        raise ValueError(f"x and centres must have shapes (n, d) and (m, d); got {np.shape(x)} and {np.shape(centres)}")
    n, m = x.shape[0], centres.shape[0]
    if m > n:
        raise ValueError(f"{m} centres need at least {m} rows; got {n}")
    width = min(m, n)
    xsq = np.einsum("ij,ij->i", x, x)
    near = np.empty((m, width), dtype=np.int64)
    dist = np.empty((m, width))
    for cs in chunks(m, chunk_size):
        c = centres[cs]
        d2 = np.einsum("ij,ij->i", c, c)[:, None] + xsq[None, :] - 2.0 * (c @ x.T)
        part = np.argpartition(d2, width - 1, axis=1)[:, :width] if width < n else np.tile(np.arange(n), (c.shape[0], 1))
        near[cs] = part
        dist[cs] = np.take_along_axis(d2, part, axis=1)
    order = np.lexsort((near.ravel(), np.repeat(np.arange(m), width), dist.ravel()))
    out = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    left = m
    for flat in order:
        ci, row = divmod(int(flat), width)
        j = near[ci, row]
        if out[ci] < 0 and not taken[j]:
            out[ci] = j
            taken[j] = True
            left -= 1
            if left == 0:
                break
    return out


def weighted_kmeans_select(
    x: np.ndarray,
    weights: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    n_init: int = 1,
    max_iter: int = 300,
) -> np.ndarray:
    """k distinct rows of ``x``: weighted k-means, then the nearest distinct row to each centroid.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        float32 is kept (k-means and the matching run in float32); anything else is float64.
    weights : ndarray of shape (n,)
        Non-negative sample weights (informativeness); all zeros fall back to equal weights.
    k : int
        1 ≤ k ≤ n clusters.
    rng : numpy Generator
        Seeds scikit-learn's KMeans (k-means++ initialisation) with one draw.

    Returns
    -------
    ndarray of shape (k,), int64, in centroid order.
    """
    from sklearn.cluster import KMeans

    x = as_numeric("x", x)
    # float32 stays float32 (scikit-learn's k-means then runs in float32, about twice as fast)
    x = check_finite("x", x if x.dtype == np.float32 else np.asarray(x, dtype=np.float64))
    w = check_finite("weights", np.asarray(as_numeric("weights", weights), dtype=np.float64))
    if x.ndim != 2 or w.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, d) and weights (n,); got {x.shape} and {w.shape}")
    if w.size and w.min() < 0:
        raise ValueError(f"weights must be >= 0; got {float(w.min())}")
    n = x.shape[0]
    k = check_batch_size(k, n, what="the number of rows")
    check_rng(rng)
    check_positive_int("n_init", n_init)
    check_positive_int("max_iter", max_iter)
    if not w.sum() > 0:
        w = np.ones(n)
    seed = int(rng.integers(2**31 - 1))
    if k == n:
        return np.arange(n, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        # duplicate points give fewer distinct clusters than k; the distinct matching still returns k rows
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        km.fit(x, sample_weight=w)
    return nearest_distinct(x, km.cluster_centers_)
