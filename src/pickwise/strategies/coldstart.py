"""Cold-start pool strategies for few or no labels: TypiClust and ProbCover.

Both choose points of an embedding of the whole pool (labelled ∪ unlabelled) and use no model
prediction, so they work from zero labels:

* :class:`TypiClust` (Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies
  Suit High and Low Budgets", ICML 2022): k-means into |L| + k clusters, then the most *typical*
  point of each of the largest clusters that hold no labelled point.
* :class:`ProbCover` (Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens",
  NeurIPS 2022): greedy max coverage of δ-balls around the points.

The embedding (``features=``): ``None`` (default) is the model's penultimate features
(``model.embed``) when the model has them and the raw rows of ``x`` otherwise; ``"embed"`` insists on
``model.embed``; ``"x"`` uses the raw rows of ``x`` (flattened to float64 vectors); an array of shape
(n, d) gives features of every pool row (absolute index space: self-supervised or frozen-encoder
features, as the papers use). ``normalize=True`` scales each row to unit length, as the official code
does with its SimCLR features (github avihu111/TypiClust, ``load_features(normalized=True)``).

The math lives in pure functions over arrays (:func:`typicality`, :func:`typiclust_pick`,
:func:`kmeans_labels`, :func:`delta_graph`, :func:`probcover_greedy`, :func:`purity_delta`); the two
classes are thin. Distances are exact: blocked float32 products ‖a‖² + ‖b‖² − 2a·b only *prefilter*
pairs (with a rounding margin), and every distance that decides anything is recomputed as
√Σ(a − b)² in float64, so the picks equal a plain O(n²) implementation bit for bit. No n×n matrix
is formed; ProbCover's graph is a sparse CSR edge list.

Cost at n items of width d: TypiClust is one k-means plus O(Σ m_c²·d) for the typicality of the
clusters it picks from (m_c members each; about n²/c·d in all). ProbCover's δ-ball graph needs every
pair within δ: O(n²·d) arithmetic (pruned by a band along the first principal axis, which helps
when the embedding is elongated or clustered) and O(edges) memory; the greedy is O(edges + k·n).
``delta="auto"`` adds one k-means and another O(n²·d) pass (each point's nearest point of another
k-means cluster). ``benchmarks/coldstart.py`` measures a 100k × 64 pool at k = 1000.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import (
    check_choice,
    check_finite,
    check_positive_int,
    check_selection,
)
from ..pool import Pool
from ..progress import progress_bar
from ..protocols import Embedder
from ..utils import chunks, n_items, take
from ._base import DEFAULT_CHUNK, gather_embeddings, map_chunks

__all__ = [
    "ProbCover",
    "TypiClust",
    "coldstart_embedding",
    "delta_graph",
    "kmeans_labels",
    "probcover_greedy",
    "purity_delta",
    "typicality",
    "typiclust_pick",
]

#: float32 unit roundoff: the prefilter's products are float32, their error is bounded by a
#: multiple of it (see _margin)
_EPS32 = float(np.finfo(np.float32).eps)
#: columns per float32 product block (rows × this many float32 values at a time)
_COL_BLOCK = 16384
KMEANS_MODES = ("auto", "full", "minibatch")


# --------------------------------------------------------------------------------------------
# exact distances


def _exact_dist(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """√Σ(x_i − x_j)² for paired index arrays, float64: the one formula every decision uses."""
    diff = x[i] - x[j]
    return np.sqrt((diff * diff).sum(axis=1))


def _margin(d: int, sq: np.ndarray, sq_max: float) -> np.ndarray:
    """A bound on the error of the float32 prefilter's squared distance (‖a‖² + ‖b‖² − 2a·b computed
    as one float32 product of augmented rows): γ_{d+2}·(‖a‖² + ‖b‖²) with room to spare."""
    return 8.0 * (d + 8) * _EPS32 * (sq + sq_max) + 1e-30


class _Prefilter:
    """Augmented float32 rows whose product is −½‖a − b‖² (approximately): one GEMM per block.

    Rows are centred first (distances do not change; the float32 error, which scales with the
    norms, shrinks).
    """

    def __init__(self, x: np.ndarray):
        xc = x - x.mean(axis=0) if x.shape[0] else x
        self.sq = (xc * xc).sum(axis=1)
        n = x.shape[0]
        self.a = np.empty((n, x.shape[1] + 2), dtype=np.float32)
        self.a[:, :-2] = xc
        self.a[:, -2] = -0.5 * self.sq
        self.a[:, -1] = 1.0
        bt = np.empty((x.shape[1] + 2, n), dtype=np.float32)
        bt[:-2] = xc.T
        bt[-2] = 1.0
        bt[-1] = -0.5 * self.sq
        self.bt = bt
        self.d = x.shape[1]

    def approx_sq(self, rows: slice | np.ndarray, cols: slice) -> np.ndarray:
        """Approximate squared distances, float32 (len(rows), len(cols))."""
        g = self.a[rows] @ self.bt[:, cols]
        g *= -2.0
        return g


def _check_emb(name: str, emb: Any) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d); got shape {x.shape}")
    return check_finite(name, x)


def _check_delta(delta: Any) -> float:
    ok = isinstance(delta, (int, float, np.integer, np.floating)) and not isinstance(delta, bool)
    if not ok or not math.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite number >= 0 or 'auto'; got {delta!r}")
    return float(delta)


# --------------------------------------------------------------------------------------------
# TypiClust


def typicality(emb: np.ndarray, n_neighbors: int, *, chunk_size: int = 1024, neighbors: Any = None) -> np.ndarray:
    """Typicality(x) = 1 / (mean Euclidean distance from x to its ``n_neighbors`` nearest other
    rows) (Hacohen et al. 2022, eq. 3); ndarray of shape (m,), float64. A mean of 0 (duplicates)
    gives ``inf``.

    Exact: the k + 1 smallest distances of each row (itself included, at exactly 0) come from a
    float32 prefilter and are recomputed in float64, then summed in ascending order.
    1 ≤ n_neighbors ≤ m − 1. O(m²·d) time: for one big cluster (few picks from a large pool) a
    ``neighbors`` search from :mod:`pickwise.neighbors` (e.g. ``FaissFlat()``) is faster; its
    distances are then the search's own (float32 for faiss), so ties may resolve differently.
    """
    x = _check_emb("emb", emb)
    m = x.shape[0]
    check_positive_int("n_neighbors", n_neighbors)
    if n_neighbors > m - 1:
        raise ValueError(f"n_neighbors={n_neighbors} needs at least {n_neighbors + 1} rows; got {m}")
    check_positive_int("chunk_size", chunk_size)
    kk = n_neighbors + 1
    if neighbors is not None:
        sq, _ = neighbors.search(x, x, kk)
        best = np.sort(np.sqrt(np.maximum(sq, 0.0)), axis=1)
        with np.errstate(divide="ignore"):
            return 1.0 / best[:, 1:].mean(axis=1)
    pf = _Prefilter(x)
    sq_max = float(pf.sq.max())
    out = np.empty(m)
    # rows per block so that a block holds about 4M distances
    for rs in chunks(m, max(1, min(chunk_size, 2**22 // m))):
        approx = pf.approx_sq(rs, slice(0, m))
        kth = np.partition(approx, kk - 1, axis=1)[:, kk - 1].astype(np.float64)
        thr = kth + _margin(pf.d, pf.sq[rs], sq_max)
        r, c = np.nonzero(approx <= thr[:, None])
        exact = np.full(approx.shape, np.inf)
        exact[r, c] = _exact_dist(x, r + rs.start, c)
        best = np.sort(np.partition(exact, kk - 1, axis=1)[:, :kk], axis=1)
        mean = best[:, 1:].mean(axis=1)  # best[:, 0] is the row itself (or a duplicate), at 0
        with np.errstate(divide="ignore"):
            out[rs] = 1.0 / mean
    return out


def kmeans_labels(emb: np.ndarray, n_clusters: int, *, rng: np.random.Generator, mode: str = "auto",
                  batch_size: int = 5000) -> np.ndarray:
    """k-means cluster ids of the rows of ``emb``, int64 of shape (n,).

    scikit-learn's ``KMeans`` (k-means++, one init) or ``MiniBatchKMeans`` (``batch_size``, one
    init); ``mode="auto"`` uses KMeans up to 50 clusters and MiniBatchKMeans above, as the TypiClust
    paper and code do. Seeded by one draw from ``rng``. 1 ≤ n_clusters ≤ n.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = _check_emb("emb", emb)
    check_positive_int("n_clusters", n_clusters)
    check_choice("mode", mode, KMEANS_MODES)
    check_positive_int("batch_size", batch_size)
    n = x.shape[0]
    if n_clusters > n:
        raise ValueError(f"n_clusters={n_clusters} exceeds the {n} rows")
    seed = int(rng.integers(2**31 - 1))
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    minibatch = mode == "minibatch" or (mode == "auto" and n_clusters > 50)
    if minibatch:
        km = MiniBatchKMeans(n_clusters=n_clusters, batch_size=batch_size, n_init=1, random_state=seed)
    else:
        km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        # duplicate rows can leave fewer distinct clusters than asked for; the ids are still valid
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        return np.asarray(km.fit_predict(x), dtype=np.int64)


def _typiclust_k(m: int, n_neighbors: int) -> int:
    """Neighbours for a cluster of m candidates: min(n_neighbors, m // 2), at least 1 (the
    official code's rule for small clusters: the density over half the cluster)."""
    return max(1, min(n_neighbors, m // 2))


def typiclust_pick(emb: np.ndarray, clusters: np.ndarray, labeled: np.ndarray, k: int, *, n_neighbors: int = 20,
                   min_cluster_size: int = 6, chunk_size: int = 1024, neighbors: Any = None) -> np.ndarray:
    """TypiClust's choice given the clusters: ``k`` row positions of unlabelled rows, in pick order.

    Parameters
    ----------
    emb : ndarray of shape (n, d)
        Embedding of every row (labelled and unlabelled).
    clusters : ndarray of shape (n,)
        Cluster id of every row (any integers).
    labeled : ndarray of shape (n,), bool
        Which rows are labelled; they are never picked.
    k : int
        1 ≤ k ≤ number of unlabelled rows.
    n_neighbors : int
        K of the typicality (20 in the paper); a cluster with m candidates uses
        max(1, min(K, m // 2)) neighbours (the official code's rule for small clusters).
    min_cluster_size : int
        Clusters with fewer rows are visited only when every larger one has no candidate left.
        6 by default: the official code drops clusters of at most ``MIN_CLUSTER_SIZE = 5`` rows;
        the paper states no such rule. 1 turns it off.
    neighbors : a :mod:`pickwise.neighbors` search or None
        Passed to :func:`typicality` (None: the exact blocked computation).

    Clusters are visited in the order (fewest labelled rows, largest, smallest id): with |L| + k
    clusters the first k visits are the k largest uncovered clusters of the paper. Each visit
    takes the most typical candidate of the cluster, the typicality computed within the cluster
    over its candidates (its unlabelled rows not yet picked; ties to the lower position). When k
    exceeds the clusters with candidates the order is repeated (round-robin, as the official code).
    """
    x = _check_emb("emb", emb)
    n = x.shape[0]
    c = np.asarray(clusters).reshape(-1)
    lab = np.asarray(labeled, dtype=bool).reshape(-1)
    if c.shape != (n,) or lab.shape != (n,):
        raise ValueError(f"clusters and labeled must have shape ({n},); got {c.shape} and {lab.shape}")
    check_positive_int("n_neighbors", n_neighbors)
    check_positive_int("min_cluster_size", min_cluster_size)
    n_unl = int(n - lab.sum())
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_unl:
        raise ValueError(f"k={k!r} must be an integer in 1 .. {n_unl} (the unlabelled rows)")
    ids, inverse, size = np.unique(c, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_lab = np.bincount(inverse, weights=lab, minlength=ids.shape[0])
    order = np.lexsort((np.arange(ids.shape[0]), -size, n_lab))
    # members of each cluster in ascending row position, unlabelled only
    by_cluster = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(size)])
    members = [by_cluster[starts[g]:starts[g + 1]] for g in range(ids.shape[0])]
    members = [mem[~lab[mem]] for mem in members]
    big = [g for g in order if size[g] >= min_cluster_size]
    small = [g for g in order if size[g] < min_cluster_size]
    picked: list[int] = []
    taken = np.zeros(n, dtype=bool)
    with progress_bar(k, "TypiClust picks") as bar:
        for group in (big, small):
            while len(picked) < k:
                progressed = False
                for g in group:
                    if len(picked) == k:
                        break
                    cand = members[g][~taken[members[g]]]
                    if cand.shape[0] == 0:
                        continue
                    if cand.shape[0] == 1:
                        best = int(cand[0])
                    else:
                        t = typicality(x[cand], _typiclust_k(cand.shape[0], n_neighbors), chunk_size=chunk_size,
                                       neighbors=neighbors)
                        best = int(cand[np.argmax(t)])
                    picked.append(best)
                    taken[best] = True
                    progressed = True
                    bar.update(1)
                if not progressed:
                    break
    return np.asarray(picked, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# ProbCover


def _principal_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rows sorted by their projection on the first principal axis: (order, sorted projections,
    rounding slack). |p_a − p_b| ≤ ‖a − b‖, so a pair further apart along the axis than δ (plus
    the slack) is no edge."""
    n, d = x.shape
    xc = x - x.mean(axis=0)
    if n < 2 or d == 0:
        p = np.zeros(n)
    else:
        _, vecs = np.linalg.eigh(xc.T @ xc)
        p = xc @ vecs[:, -1]
    order = np.argsort(p, kind="stable")
    norm = float(np.sqrt((xc * xc).sum(axis=1).max())) if n else 0.0
    return order, p[order], 1e-9 * (1.0 + norm)


def _ball_graph(x: np.ndarray, delta: float, *, chunk_size: int, max_edges: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The δ-ball graph in principal-axis order: (order (n,), indptr (n+1,), indices (E,)).

    Node t is row ``order[t]``; row t of the CSR lists every node u with ‖x_t − x_u‖ ≤ δ (itself
    included), ascending. Symmetric.
    """
    n = x.shape[0]
    order, proj, slack = _principal_order(x)
    xs = np.ascontiguousarray(x[order])
    pf = _Prefilter(xs)
    sq_max = float(pf.sq.max()) if n else 0.0
    itype = np.int32 if n < 2**31 - 1 else np.int64
    counts = np.zeros(n, dtype=np.int64)
    parts: list[np.ndarray] = []
    total = 0
    d2 = delta * delta
    with progress_bar(n, f"δ-ball graph (δ={delta:.4g})") as bar:
        for rs in chunks(n, chunk_size):
            lo = int(np.searchsorted(proj, proj[rs.start] - delta - slack, side="left"))
            hi = int(np.searchsorted(proj, proj[rs.stop - 1] + delta + slack, side="right"))
            thr = (d2 + _margin(pf.d, pf.sq[rs], sq_max)).astype(np.float32)[:, None]
            rows, cols = [], []
            for c0 in range(lo, hi, _COL_BLOCK):
                cs = slice(c0, min(c0 + _COL_BLOCK, hi))
                r, c = np.nonzero(pf.approx_sq(rs, cs) <= thr)
                keep = _exact_dist(xs, r + rs.start, c + c0) <= delta
                rows.append(r[keep])
                cols.append((c[keep] + c0).astype(itype))
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            by_row = np.argsort(r, kind="stable")
            counts[rs] = np.bincount(r, minlength=rs.stop - rs.start)
            parts.append(c[by_row])
            total += c.shape[0]
            if total > max_edges:
                raise ValueError(
                    f"the δ-ball graph with delta={delta!r} has more than max_edges={max_edges} edges "
                    f"(after {rs.stop} of {n} rows); use a smaller delta or raise max_edges"
                )
            bar.update(rs.stop - rs.start)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.empty(0, dtype=itype)
    return order, indptr, indices


def delta_graph(emb: np.ndarray, delta: float, *, chunk_size: int = 1024, max_edges: int = 200_000_000) -> Any:
    """ProbCover's graph: a ``scipy.sparse.csr_matrix`` (n, n) of bool with an edge i → j iff
    ‖x_i − x_j‖ ≤ ``delta`` (self-loops included; symmetric). Built in row blocks, never dense;
    raises ``ValueError`` past ``max_edges`` edges."""
    from scipy.sparse import csr_matrix

    x = _check_emb("emb", emb)
    delta = _check_delta(delta)
    check_positive_int("chunk_size", chunk_size)
    check_positive_int("max_edges", max_edges)
    n = x.shape[0]
    order, indptr, indices = _ball_graph(x, delta, chunk_size=chunk_size, max_edges=max_edges)
    g = csr_matrix((np.ones(indices.shape[0], dtype=bool), indices, indptr), shape=(n, n))
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    out = g[inv][:, inv].tocsr()
    out.sort_indices()
    return out


def _rows_of(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated CSR rows ``rows`` (column indices)."""
    if rows.shape[0] == 0:
        return indices[:0]
    start, stop = indptr[rows], indptr[rows + 1]
    length = stop - start
    offset = np.repeat(start - np.concatenate([[0], np.cumsum(length)[:-1]]), length)
    return indices[offset + np.arange(offset.shape[0])]


def probcover_greedy(indptr: np.ndarray, indices: np.ndarray, candidates: np.ndarray, covered: np.ndarray, k: int,
                     *, priority: np.ndarray) -> np.ndarray:
    """Greedy max coverage over a symmetric CSR graph: ``k`` node ids in pick order.

    Each step takes the candidate whose ball holds the most uncovered nodes (ties: the highest
    ``priority``), marks its ball covered, and never takes it again. With every node covered the
    gain is 0 for all, so the rest follow ``priority`` alone: a random order when ``priority`` is
    a random permutation, which is the paper's random fallback at full coverage.

    ``candidates`` (n,) bool: nodes that may be picked; ``covered`` (n,) bool: nodes covered at the
    start (the balls of the labelled nodes); ``priority`` (n,) distinct integers in 0 .. n − 1.
    O(edges + k·n).
    """
    n = indptr.shape[0] - 1
    cand = np.asarray(candidates, dtype=bool)
    cov = np.array(covered, dtype=bool)
    prio = np.asarray(priority, dtype=np.int64)
    if cand.shape != (n,) or cov.shape != (n,) or prio.shape != (n,):
        raise ValueError(f"candidates, covered and priority must have shape ({n},); "
                         f"got {cand.shape}, {cov.shape} and {prio.shape}")
    n_cand = int(cand.sum())
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_cand:
        raise ValueError(f"k={k!r} must be an integer in 1 .. {n_cand} (the candidates)")
    running = np.concatenate([[0], np.cumsum(~cov[indices], dtype=np.int64)])
    gain = running[indptr[1:]] - running[indptr[:-1]]
    # one integer key: gain first, then priority; non-candidates far below every candidate
    key = gain * n + prio
    floor = -(n + 1) * (n + 1) - 1
    key[~cand] = floor
    out = np.empty(k, dtype=np.int64)
    with progress_bar(k, "ProbCover picks") as bar:
        for step in range(k):
            best = int(np.argmax(key))
            out[step] = best
            key[best] = floor
            ball = indices[indptr[best]:indptr[best + 1]]
            new = ball[~cov[ball]].astype(np.int64)
            if new.shape[0]:
                cov[new] = True
                # the graph is symmetric: the nodes whose balls hold a newly covered node are its own ball
                np.subtract.at(key, _rows_of(indptr, indices, new), n)
            bar.update(1)
    return out


def _min_dist_other(x: np.ndarray, labels: np.ndarray, chunk_size: int) -> np.ndarray:
    """Exact distance from each row to the nearest row with a different label, (n,) float64
    (inf where there is none). Rows sorted by label, so each label's rows meet the other labels'
    rows as two contiguous column ranges; float32 prefilter with a margin, float64 recomputation."""
    n = x.shape[0]
    order = np.argsort(labels, kind="stable")
    xs = np.ascontiguousarray(x[order])
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    starts, stops = np.concatenate([[0], bounds]), np.concatenate([bounds, [n]])
    pf = _Prefilter(xs)
    sq_max = float(pf.sq.max()) if n else 0.0
    out = np.full(n, np.inf)
    with progress_bar(n, "purity distances") as bar:
        for s0, s1 in zip(starts, stops):
            others = [(c0, min(c0 + _COL_BLOCK, hi)) for lo, hi in ((0, s0), (s1, n)) for c0 in range(lo, hi, _COL_BLOCK)]
            for rs in chunks(s1 - s0, chunk_size):
                rs = slice(rs.start + s0, rs.stop + s0)
                margin = _margin(pf.d, pf.sq[rs], sq_max)
                best_approx = np.full(rs.stop - rs.start, np.inf)
                best = np.full(rs.stop - rs.start, np.inf)
                for c0, c1 in others:
                    approx = pf.approx_sq(rs, slice(c0, c1))
                    best_approx = np.minimum(best_approx, approx.min(axis=1))
                    # the exact nearest is within the margin of the running approximate minimum
                    r, c = np.nonzero(approx <= (best_approx + margin).astype(np.float32)[:, None])
                    if r.shape[0]:
                        np.minimum.at(best, r, _exact_dist(xs, r + rs.start, c + c0))
                out[rs] = best
                bar.update(rs.stop - rs.start)
    result = np.empty(n)
    result[order] = out
    return result


def purity_delta(emb: np.ndarray, pseudo_labels: np.ndarray, *, alpha: float = 0.95, chunk_size: int = 1024) -> float:
    """ProbCover's δ heuristic: the largest δ whose ball purity is at least ``alpha``.

    A ball B_δ(x) = {x' : ‖x − x'‖ ≤ δ} is pure when every point in it has the pseudo-label of x
    (the paper: k-means with K = the number of classes); purity π(δ) is the fraction of points
    with a pure ball. B_δ(x) is pure iff δ < d(x), the distance from x to the nearest point of
    another pseudo-label, so π(δ) = #{x : d(x) > δ} / n is non-increasing and the answer is the
    largest float below the (m+1)-th smallest d(x), m the most impure balls allowed
    (π(δ) ≥ alpha ⇔ impure ≤ m). Exact; O(n²·d) time, O(n) memory. Needs two distinct labels.
    """
    x = _check_emb("emb", emb)
    lab = np.asarray(pseudo_labels).reshape(-1)
    n = x.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"pseudo_labels must have shape ({n},); got {lab.shape}")
    ok = isinstance(alpha, (int, float, np.integer, np.floating)) and not isinstance(alpha, bool)
    if not ok or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1]; got {alpha!r}")
    if np.unique(lab).shape[0] < 2:
        raise ValueError("the purity heuristic needs at least 2 distinct pseudo-labels; got 1 "
                         "(too few distinct points for k-means, or n_classes=1): give delta explicitly")
    check_positive_int("chunk_size", chunk_size)
    d = np.sort(_min_dist_other(x, lab, chunk_size))
    # fewest pure balls with pure / n >= alpha, by the same float comparison the definition uses
    need = min(n, max(0, math.ceil(alpha * n)))
    while need > 0 and (need - 1) / n >= alpha:
        need -= 1
    while need / n < alpha:
        need += 1
    impure = n - need
    return float(np.nextafter(d[impure], -np.inf))


# --------------------------------------------------------------------------------------------
# embeddings and the strategies


def _raw_rows(x: Any, indices: np.ndarray, chunk_size: int) -> np.ndarray:
    def flat(xc: Any) -> np.ndarray:
        try:
            arr = np.asarray(xc, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                "features='x' needs numeric rows of x (the raw features); got rows that are not numbers "
                f"({type(xc).__name__}): pass features=<array (n, d)> or use a model with embed()"
            ) from err
        return arr.reshape(arr.shape[0], -1)

    return map_chunks(flat, x, indices, chunk_size, desc="raw features")


def coldstart_embedding(model: Any, x: Any, pool: Pool, features: Any = None, *, normalize: bool = False,
                        chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """The embedding of every pool row the cold-start strategies use: (pool.n, d) float64.

    ``features``: None (``model.embed`` if the model is an :class:`~pickwise.protocols.Embedder`,
    else the raw rows of ``x``), ``"embed"``, ``"x"``, or an array of shape (pool.n, d).
    ``normalize`` scales rows to unit length (zero rows stay zero).
    """
    rows = np.arange(pool.n, dtype=np.int64)
    if isinstance(features, str):
        check_choice("features", features, ("embed", "x"))
        use = features
    elif features is None:
        use = "embed" if isinstance(model, Embedder) else "x"
    else:
        if n_items(features) != pool.n:
            raise ValueError(f"features has {n_items(features)} rows; the pool has {pool.n} items")
        use = "array"
    if use == "embed":
        if not isinstance(model, Embedder):
            raise ValueError(f"features='embed' needs a model with embed(); {type(model).__name__} has none")
        emb = gather_embeddings(model, x, rows, chunk_size)
    elif use == "x":
        if n_items(x) != pool.n:
            raise ValueError(f"x has {n_items(x)} rows; the pool has {pool.n} items")
        emb = _raw_rows(x, rows, chunk_size)
    else:
        emb = np.asarray(take(features, rows), dtype=np.float64)
    emb = _check_emb("the embedding", emb.reshape(pool.n, -1))
    if normalize:
        norm = np.sqrt((emb * emb).sum(axis=1, keepdims=True))
        emb = np.divide(emb, norm, out=np.zeros_like(emb), where=norm > 0)
    return emb


def _check_features(features: Any) -> None:
    if features is None or isinstance(features, str):
        if isinstance(features, str):
            check_choice("features", features, ("embed", "x"))
        return
    shape = np.shape(features)
    if len(shape) != 2 or shape[0] < 1:
        raise ValueError(f"features must be None, 'embed', 'x' or an array of shape (n, d); got shape {shape}")


def _features_repr(features: Any) -> str:
    if features is None or isinstance(features, str):
        return repr(features)
    return f"<array of shape {tuple(np.shape(features))}>"


def _features_key(features: Any) -> Any:
    return features if features is None or isinstance(features, str) else ("array", id(features))


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")  # noqa: TRY004 (bad input is a ValueError here)


class _ColdStart:
    """Equality, hashing and repr by the hyperparameters (an array of features by identity)."""

    _fields: tuple[str, ...] = ()

    def _key(self) -> tuple:
        return tuple(_features_key(v) if f == "features" else v for f, v in ((f, getattr(self, f)) for f in self._fields))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={_features_repr(getattr(self, f)) if f == 'features' else repr(getattr(self, f))}"
                         for f in self._fields)
        return f"{type(self).__name__}({args})"

    @property
    def needs(self) -> tuple[type, ...]:
        """(Embedder,) with ``features="embed"``; otherwise nothing (raw ``x`` is the fallback)."""
        return (Embedder,) if getattr(self, "features", None) == "embed" else ()


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TypiClust(_ColdStart):
    """The most typical point of each of the largest uncovered k-means clusters (Hacohen, Dekel &
    Weinshall, "Active Learning on a Budget: Opposite Strategies Suit High and Low Budgets",
    ICML 2022).

    Cluster labelled ∪ unlabelled into |L| + k clusters (capped by ``max_clusters`` when given:
    the official code caps at 500, the paper does not), then visit the clusters holding no
    labelled item, largest first, taking from each its most typical unlabelled item
    (:func:`typiclust_pick`, typicality = 1 / mean distance to the ``n_neighbors`` = 20 nearest
    items of the same cluster). Clusters of fewer than ``min_cluster_size`` items (6: the official
    code skips clusters of ≤ 5) come last. k-means: :func:`kmeans_labels` (``kmeans="auto"``:
    KMeans up to 50 clusters, MiniBatchKMeans above, as the paper), seeded by ``rng``.

    Works from zero labels. ``features``/``normalize``: see :func:`coldstart_embedding`.
    ``neighbors`` (a :mod:`pickwise.neighbors` search, e.g. ``FaissFlat()``) computes the
    typicality's nearest neighbours instead of the exact O(m²·d) pass per cluster: worth it when
    clusters are large (|L| + k small against the pool). Deterministic given ``rng`` (one draw,
    the k-means seed).
    """

    n_neighbors: int = 20
    min_cluster_size: int = 6
    max_clusters: int | None = None
    kmeans: str = "auto"
    features: Any = None
    normalize: bool = False
    neighbors: Any = None
    chunk_size: int = DEFAULT_CHUNK
    _fields = ("n_neighbors", "min_cluster_size", "max_clusters", "kmeans", "features", "normalize", "neighbors",
               "chunk_size")

    def __post_init__(self) -> None:
        check_positive_int("n_neighbors", self.n_neighbors)
        check_positive_int("min_cluster_size", self.min_cluster_size)
        if self.max_clusters is not None:
            check_positive_int("max_clusters", self.max_clusters)
        check_choice("kmeans", self.kmeans, KMEANS_MODES)
        _check_features(self.features)
        _check_bool("normalize", self.normalize)
        if self.neighbors is not None and not callable(getattr(self.neighbors, "search", None)):
            raise ValueError(f"neighbors must be None or a search from pickwise.neighbors (e.g. FaissFlat()); "
                             f"got {self.neighbors!r}")
        check_positive_int("chunk_size", self.chunk_size)

    def n_clusters(self, n_labeled: int, k: int, n: int) -> int:
        """min(|L| + k, max_clusters, n)."""
        c = n_labeled + k
        if self.max_clusters is not None:
            c = min(c, self.max_clusters)
        return max(1, min(c, n))

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        """``k`` unlabelled absolute indices, in pick order."""
        k = check_selection(x, pool, k, rng)
        emb = coldstart_embedding(model, x, pool, self.features, normalize=self.normalize, chunk_size=self.chunk_size)
        labeled = pool.labels != -1
        clusters = kmeans_labels(emb, self.n_clusters(pool.n_labeled, k, pool.n), rng=rng, mode=self.kmeans)
        return typiclust_pick(emb, clusters, labeled, k, n_neighbors=self.n_neighbors,
                              min_cluster_size=self.min_cluster_size, neighbors=self.neighbors)

    @property
    def name(self) -> str:
        return "typiclust"


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ProbCover(_ColdStart):
    """Greedy max probability coverage with δ-balls (Yehuda, Dekel, Hacohen & Weinshall, "Active
    Learning Through a Covering Lens", NeurIPS 2022).

    Graph over labelled ∪ unlabelled with an edge x → x' when ‖x − x'‖ ≤ δ (:func:`delta_graph`,
    sparse). The balls of the labelled items are covered at the start; each step takes the
    unlabelled item whose ball holds the most uncovered items and covers its ball
    (:func:`probcover_greedy`). Ties, and every pick once all is covered (the paper's random
    fallback), follow one random permutation drawn from ``rng``. (The official code takes the
    lowest index on ties and, at full coverage, keeps taking index 0.)

    ``delta``: a number, or ``"auto"`` (default): :func:`purity_delta` with ``alpha`` = 0.95 on
    k-means pseudo-labels with K = ``n_classes`` clusters (None: ``pool.n_classes``, else
    ``model.n_classes``), the paper's heuristic. The official code uses L2-normalised features
    (``normalize=True``); its δ values (0.6–0.75 on CIFAR) are for unit vectors.
    ``max_edges`` bounds the graph's memory (4–8 bytes per edge). Works from zero labels.
    ``rng``: the k-means seed (with ``"auto"``), then the permutation.
    """

    delta: float | str = "auto"
    alpha: float = 0.95
    n_classes: int | None = None
    features: Any = None
    normalize: bool = False
    max_edges: int = 200_000_000
    chunk_size: int = DEFAULT_CHUNK
    _fields = ("delta", "alpha", "n_classes", "features", "normalize", "max_edges", "chunk_size")

    def __post_init__(self) -> None:
        if not (isinstance(self.delta, str) and self.delta == "auto"):
            _check_delta(self.delta)
        ok = isinstance(self.alpha, (int, float, np.integer, np.floating)) and not isinstance(self.alpha, bool)
        if not ok or not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be a number in (0, 1]; got {self.alpha!r}")
        if self.n_classes is not None:
            check_positive_int("n_classes", self.n_classes)
        _check_features(self.features)
        _check_bool("normalize", self.normalize)
        check_positive_int("max_edges", self.max_edges)
        check_positive_int("chunk_size", self.chunk_size)

    def resolve_delta(self, emb: np.ndarray, pool: Pool, model: Any, *, rng: np.random.Generator) -> float:
        """δ itself, or the purity heuristic's δ (k-means seeded by one draw from ``rng``)."""
        if not isinstance(self.delta, str):
            return float(self.delta)
        n_classes = self.n_classes or pool.n_classes or getattr(model, "n_classes", None)
        if n_classes is None:
            raise ValueError("delta='auto' needs the number of classes: give n_classes=, a pool with n_classes, "
                             "or a model with n_classes (or give delta explicitly)")
        if n_classes < 2:
            raise ValueError(f"delta='auto' needs n_classes >= 2; got {n_classes}")
        pseudo = kmeans_labels(emb, min(int(n_classes), emb.shape[0]), rng=rng, mode="full")
        return purity_delta(emb, pseudo, alpha=self.alpha, chunk_size=min(self.chunk_size, 512))

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        """``k`` unlabelled absolute indices, in pick order."""
        k = check_selection(x, pool, k, rng)
        emb = coldstart_embedding(model, x, pool, self.features, normalize=self.normalize, chunk_size=self.chunk_size)
        delta = self.resolve_delta(emb, pool, model, rng=rng)
        priority = rng.permutation(pool.n)
        order, indptr, indices = _ball_graph(emb, delta, chunk_size=min(self.chunk_size, 1024),
                                             max_edges=self.max_edges)
        labeled = (pool.labels != -1)[order]
        covered = np.zeros(pool.n, dtype=bool)
        covered[_rows_of(indptr, indices, np.flatnonzero(labeled)).astype(np.int64)] = True
        nodes = probcover_greedy(indptr, indices, ~labeled, covered, k, priority=priority[order])
        return order[nodes].astype(np.int64)

    @property
    def name(self) -> str:
        return "probcover"
