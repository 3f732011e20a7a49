"""Cluster-Margin (Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar, "Batch
Active Learning at Scale", NeurIPS 2021): uncertain items spread over clusters, for very large batches.

Once, at the first selection: embed the unlabelled pool (the model's penultimate features, or given
``features``) and cluster it by hierarchical agglomerative clustering with average linkage,
cutting the tree at distance ε (:func:`hac_clusters`). Every selection after reuses those clusters:

1. take the k_m = ⌈ratio·k⌉ unlabelled items of lowest margin p_(1) − p_(2) (highest
   :func:`pickwise.scores.margin`, which is one minus it);
2. group them by cluster and sort the clusters by size, smallest first;
3. visit the clusters round-robin, taking one random item from each (skipping exhausted ones)
   until k are taken (:func:`round_robin`).

HAC and its limits. The clustering is scipy's average linkage on the condensed Euclidean distance
matrix: O(n²) time and n(n−1)/2 float64 distances (plus scipy's working copy), i.e. about
0.8 GB at n = 10,000 and 80 GB at 100,000. So at most ``max_cluster_items`` items (10,000 by
default) are clustered exactly; above that a uniform sample of that size (drawn from ``rng``) is
clustered and every other item joins the cluster of its nearest sampled item (exact nearest
neighbour, blocked distances, O(n·max_cluster_items·d) time). The paper clusters the whole pool
once with a distributed HAC; this sample-then-assign is pickwise's single-machine stand-in, and
below ``max_cluster_items`` it is the exact average-linkage HAC.

ε: ``epsilon`` cuts the tree at that average-linkage distance (the paper's parameter). Without it
the tree is cut into ``n_clusters`` clusters, by default ⌈m/10⌉ for m clustered items (a
pickwise default: the paper tunes ε per dataset and gives no scale-free rule).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import check_positive_int, check_selection
from ..pool import Pool
from ..protocols import Classifier, Embedder
from ..scores import margin
from ..select.kcenter import nearest_centres
from ..select.topk import top_k
from ..utils import n_items, take
from ._base import DEFAULT_CHUNK, gather_embeddings, proba_scores

__all__ = ["ClusterMargin", "hac_clusters", "round_robin"]


def _check_number(name: str, value: Any, *, low: float, strict: bool) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}; got {value!r}")
    return float(value)


def hac_clusters(emb: np.ndarray, *, epsilon: float | None = None, n_clusters: int | None = None) -> np.ndarray:
    """Average-linkage HAC of the rows of ``emb``: cluster ids, int64 of shape (n,), numbered 0 .. c−1
    in order of first appearance.

    Cut at distance ``epsilon`` (clusters whose members are merged at average Euclidean distance
    ≤ ε), or into ``n_clusters`` clusters; exactly one of the two. O(n²) memory (see the module doc).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"emb must have shape (n, d); got shape {x.shape}")
    if (epsilon is None) == (n_clusters is None):
        raise ValueError(f"give exactly one of epsilon and n_clusters; got epsilon={epsilon!r}, n_clusters={n_clusters!r}")
    if epsilon is not None:
        _check_number("epsilon", epsilon, low=0.0, strict=False)
    else:
        check_positive_int("n_clusters", n_clusters)
    n = x.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(pdist(x), method="average")
    if epsilon is not None:
        raw = fcluster(tree, t=float(epsilon), criterion="distance")
    else:
        raw = fcluster(tree, t=min(int(n_clusters), n), criterion="maxclust")
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)]


def round_robin(clusters: np.ndarray, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """Cluster-Margin's sampling: ``k`` positions of ``clusters`` in pick order.

    The items' cluster ids (n,) are grouped; clusters are ordered by size, smallest first (ties by
    id), and visited round-robin, each visit taking the next item of that cluster in a random
    order. The random order is one ``rng.permutation(n)``: each cluster's items in the order that
    permutation lists them. 1 ≤ k ≤ n.
    """
    c = np.asarray(clusters, dtype=np.int64).reshape(-1)
    n = c.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} must be an integer in 1 .. {n} (the number of items)")
    perm = rng.permutation(n)
    ids, size = np.unique(c, return_counts=True)
    # position of each cluster in the visiting order: by size, then by id
    rank_of = np.empty(ids.shape[0], dtype=np.int64)
    rank_of[np.lexsort((ids, size))] = np.arange(ids.shape[0])
    visit = rank_of[np.searchsorted(ids, c[perm])]
    # the r-th item of a cluster (in permutation order) is taken in round r
    order = np.argsort(visit, kind="stable")
    counts = np.bincount(visit, minlength=ids.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    round_of = np.empty(n, dtype=np.int64)
    round_of[order] = np.arange(n) - starts[visit[order]]
    picked = np.lexsort((visit, round_of))[:k]
    return perm[picked].astype(np.int64)


class ClusterMargin:
    """Margin-uncertain items, round-robin over HAC clusters (Citovsky et al., NeurIPS 2021).

    Parameters
    ----------
    margin_ratio : float
        k_m / k, ≥ 1: how many low-margin items the batch is drawn from. 10 by default (the
        paper's large-batch setting; it reports ratios from 1.25 upwards).
    epsilon : float or None
        The HAC distance threshold ε (average linkage, Euclidean). None: cut into ``n_clusters``.
    n_clusters : int or None
        Used when ``epsilon`` is None; None means ⌈m/10⌉ for m clustered items.
    max_cluster_items : int
        Most items clustered by exact HAC (O(m²) memory); a larger pool clusters a seeded sample
        and assigns the rest to their nearest sampled item.
    features : array of shape (n, d) or None
        Embeddings of every row of ``x`` (absolute index space); None uses ``model.embed``.
    chunk_size : int

    Mutable: the clustering is computed at the first ``select`` (from that round's model, on the
    items then unlabelled, as the paper clusters once) and reused; ``clusters_`` holds it, -1 for
    items not clustered. Use a fresh instance per run; ``state_dict()`` / ``load_state_dict()``
    carry it. ``rng`` gives the sample for large pools (first call only), the margin tie-breaks,
    then the round-robin order.
    """

    def __init__(self, *, margin_ratio: float = 10.0, epsilon: float | None = None, n_clusters: int | None = None,
                 max_cluster_items: int = 10_000, features: Any = None, chunk_size: int = DEFAULT_CHUNK):
        self.margin_ratio = _check_number("margin_ratio", margin_ratio, low=1.0, strict=False)
        if epsilon is not None and n_clusters is not None:
            raise ValueError(f"give epsilon or n_clusters, not both; got epsilon={epsilon!r}, n_clusters={n_clusters!r}")
        self.epsilon = None if epsilon is None else _check_number("epsilon", epsilon, low=0.0, strict=False)
        self.n_clusters = None if n_clusters is None else check_positive_int("n_clusters", n_clusters)
        self.max_cluster_items = check_positive_int("max_cluster_items", max_cluster_items)
        if features is not None:
            shape = np.shape(features)
            if len(shape) != 2 or shape[0] < 1:
                raise ValueError(f"features must have shape (n, d) with n >= 1; got shape {shape}")
        self.features = features
        self.chunk_size = check_positive_int("chunk_size", chunk_size)
        self.clusters_: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f"ClusterMargin(margin_ratio={self.margin_ratio!r}, epsilon={self.epsilon!r}, "
                f"n_clusters={self.n_clusters!r}, max_cluster_items={self.max_cluster_items!r})")

    def n_margin(self, k: int) -> int:
        """k_m = ⌈margin_ratio·k⌉ (a product within 1e-9 of an integer counts as that integer)."""
        return max(k, math.ceil(self.margin_ratio * k - 1e-9))

    @property
    def needs(self) -> tuple[type, ...]:
        return (Classifier,) if self.features is not None else (Classifier, Embedder)

    @property
    def name(self) -> str:
        return "cluster_margin"

    def embedding(self, model: Any, x: Any, indices: np.ndarray) -> np.ndarray:
        """Rows ``indices`` of ``features``, or the model's penultimate features; (n, d) float64."""
        if self.features is not None:
            return np.asarray(take(self.features, indices), dtype=np.float64)
        return gather_embeddings(model, x, indices, self.chunk_size)

    def cluster(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        """Cluster ids of ``indices`` (int64 (m,)): exact HAC up to ``max_cluster_items`` items, else
        HAC of a sample drawn from ``rng`` plus nearest-sampled-item assignment."""
        m = indices.shape[0]
        if m > self.max_cluster_items:
            sample = np.sort(rng.choice(m, size=self.max_cluster_items, replace=False))
        else:
            sample = np.arange(m)
        emb = self.embedding(model, x, indices[sample])
        n_clusters = None
        if self.epsilon is None:
            n_clusters = self.n_clusters if self.n_clusters is not None else math.ceil(sample.shape[0] / 10)
        ids_sample = hac_clusters(emb, epsilon=self.epsilon, n_clusters=n_clusters)
        if sample.shape[0] == m:
            return ids_sample
        out = np.empty(m, dtype=np.int64)
        out[sample] = ids_sample
        rest = np.setdiff1d(np.arange(m), sample, assume_unique=True)
        for start in range(0, rest.shape[0], self.chunk_size):
            part = rest[start:start + self.chunk_size]
            out[part] = ids_sample[nearest_centres(self.embedding(model, x, indices[part]), emb)[1]]
        return out

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        if self.features is not None and n_items(self.features) != pool.n:
            raise ValueError(f"features has {n_items(self.features)} rows; the pool has {pool.n} items")
        if self.clusters_ is None:
            clusters = np.full(pool.n, -1, dtype=np.int64)
            clusters[unl] = self.cluster(model, x, unl, rng=rng)
            self.clusters_ = clusters
        elif self.clusters_.shape[0] != pool.n:
            raise ValueError(
                f"ClusterMargin clustered a pool of {self.clusters_.shape[0]} items; this pool has {pool.n} "
                "(use a fresh instance per run)"
            )
        cand_of = self.clusters_[unl]
        if np.any(cand_of < 0):
            bad = unl[cand_of < 0][:5].tolist()
            raise ValueError(f"unlabelled items {bad} were labelled when the clusters were made (use a fresh instance per run)")
        s = proba_scores(model, x, unl, margin, self.chunk_size, desc="margin")
        keep = top_k(s, min(unl.shape[0], self.n_margin(k)), rng=rng)
        return unl[keep[round_robin(cand_of[keep], k, rng=rng)]]

    def state_dict(self) -> dict:
        """The clustering as JSON-ready lists (None before the first selection)."""
        return {"clusters": None if self.clusters_ is None else self.clusters_.tolist()}

    def load_state_dict(self, state: dict) -> None:
        c = state.get("clusters")
        if c is None:
            self.clusters_ = None
            return
        arr = np.asarray(c)
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or (arr.size and arr.min() < -1):
            raise ValueError(f"state clusters must be a list of cluster ids >= -1; got {str(c)[:80]}")
        self.clusters_ = arr.astype(np.int64)
