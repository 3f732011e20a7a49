"""Opt-in approximate selection over shards: k-means|| (BADGE) and the two-round core-set.

Each is checked against a plain single-machine reference written here from the papers' steps (dense
gradient embeddings, one generator), exactly on small inputs, and for quality against the exact
selections on clustered data.
"""

from __future__ import annotations

import numpy as np
import pytest

from pickwise.embeddings import GradEmbedding, gradient_factor
from pickwise.engine import LocalEngine, select_sharded, sharded_kcenter_two_round, sharded_kmeans_parallel
from pickwise.select import kcenter_greedy, kmeanspp_seeding


def blobs(n: int = 600, n_clusters: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, 6)) * 4
    which = rng.integers(n_clusters, size=n)
    h = centres[which] + rng.normal(size=(n, 6)) * 0.3
    a = gradient_factor(rng.dirichlet(np.ones(4) * 0.4, size=n))
    return a, h


def plain_kmeans_parallel(g: np.ndarray, k: int, rng: np.random.Generator, rounds: int, ell: float) -> np.ndarray:
    """k-means|| as Bahmani et al. / Spark state it, on dense rows, first centre = largest norm."""
    n = g.shape[0]
    d2c = lambda c: ((g - g[c]) ** 2).sum(axis=1)  # noqa: E731
    first = int(np.argmax((g**2).sum(axis=1)))
    cand = [first]
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    d2 = d2c(first)
    d2[chosen] = 0
    for _ in range(rounds):
        phi = d2.sum()
        u = rng.random(n)
        new = np.flatnonzero((u < ell * d2 / phi) & ~chosen)
        for c in new:
            d2 = np.minimum(d2, d2c(c))
        chosen[new] = True
        d2[chosen] = 0
        cand += new.tolist()
    cand = np.array(cand)
    dist = ((g[:, None, :] - g[cand][None, :, :]) ** 2).sum(axis=2)
    w = np.bincount(dist.argmin(axis=1), minlength=cand.shape[0]).astype(float)
    # weighted k-means++ from candidate 0
    picks, cd2 = [0], np.full(cand.shape[0], np.inf)
    for _ in range(k - 1):
        cd2 = np.minimum(cd2, ((g[cand] - g[cand[picks[-1]]]) ** 2).sum(axis=1))
        cd2[picks] = 0
        p = cd2 * w
        picks.append(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right")))
    return cand[np.array(picks)]


def cost(g: np.ndarray, picks: np.ndarray) -> float:
    """k-means cost: Σ over rows of the squared distance to the nearest pick."""
    return float((((g[:, None, :] - g[picks][None, :, :]) ** 2).sum(axis=2)).min(axis=1).sum())


def test_kmeans_parallel_equals_the_plain_reference_on_one_shard():
    a, h = blobs(n=300)
    g = GradEmbedding(a, h).materialize()
    for k, rounds in ((10, 1), (25, 3), (40, 5)):
        got = sharded_kmeans_parallel(LocalEngine.from_arrays({"a": a, "h": h}), k, rng=np.random.default_rng(k),
                                      rounds=rounds)
        ref = plain_kmeans_parallel(g, k, np.random.default_rng(k), rounds, 2.0 * k)
        assert np.array_equal(got, ref), (k, rounds)


def test_kmeans_parallel_is_deterministic_distinct_and_close_to_exact_kmeanspp():
    a, h = blobs()
    g = GradEmbedding(a, h).materialize()
    costs_par, costs_exact = [], []
    for seed in range(5):
        eng = LocalEngine.from_arrays({"a": a, "h": h}, n_shards=3)
        p1 = sharded_kmeans_parallel(eng, 30, rng=np.random.default_rng(seed))
        p2 = sharded_kmeans_parallel(LocalEngine.from_arrays({"a": a, "h": h}, n_shards=3), 30,
                                     rng=np.random.default_rng(seed))
        assert np.array_equal(p1, p2)
        assert np.unique(p1).shape[0] == 30 and p1.min() >= 0 and p1.max() < a.shape[0]
        assert p1[0] == int(np.argmax((g**2).sum(axis=1)))  # BADGE's first centre
        costs_par.append(cost(g, p1))
        costs_exact.append(cost(g, kmeanspp_seeding(GradEmbedding(a, h), 30, rng=np.random.default_rng(seed))))
    assert np.mean(costs_par) <= 1.5 * np.mean(costs_exact), (costs_par, costs_exact)


def test_kmeans_parallel_fills_degenerate_pools():
    """Few distinct rows: fewer candidates than k come out; the rest is uniform over the unchosen rows."""
    a = np.ones((50, 1))
    h = np.repeat(np.eye(3), [20, 20, 10], axis=0)
    picks = sharded_kmeans_parallel(LocalEngine.from_arrays({"a": a, "h": h}, n_shards=2), 8,
                                    rng=np.random.default_rng(0))
    assert np.unique(picks).shape[0] == 8
    assert {int(np.argmax(h[p])) for p in picks} == {0, 1, 2}


def test_two_round_on_one_shard_is_the_greedy_and_close_to_it_on_many():
    rng = np.random.default_rng(4)
    x = blobs(n=800)[1]
    lab = x[:10] + 0.1
    one = sharded_kcenter_two_round(LocalEngine.from_arrays({"x": x}), 40, centres=lab,
                                    rng=np.random.default_rng(0))
    assert np.array_equal(one, kcenter_greedy(x, 40, centres=lab, rng=np.random.default_rng(0)))

    def radius(picks: np.ndarray) -> float:
        c = np.vstack([lab, x[picks]])
        return float(np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(axis=2).min(axis=1).max()))

    exact = radius(kcenter_greedy(x, 40, centres=lab, rng=rng))
    for shards in (2, 3, 5):
        picks = sharded_kcenter_two_round(LocalEngine.from_arrays({"x": x}, n_shards=shards), 40, centres=lab,
                                          rng=np.random.default_rng(0))
        assert np.unique(picks).shape[0] == 40
        # the plain two-round reference: greedy per shard, then greedy over the union
        bounds = np.linspace(0, x.shape[0], shards + 1).astype(int)
        union = np.concatenate([lo + kcenter_greedy(x[lo:hi], 40, centres=lab, rng=np.random.default_rng(0))
                                for lo, hi in zip(bounds[:-1], bounds[1:])])
        ref = union[kcenter_greedy(x[union], 40, centres=lab, rng=np.random.default_rng(1))]
        assert np.array_equal(np.sort(picks), np.sort(ref)) and np.array_equal(picks, ref)
        assert radius(picks) <= 1.5 * exact


def test_two_round_without_labels_draws_each_shards_first_pick():
    x = blobs(n=200)[1]
    p1 = sharded_kcenter_two_round(LocalEngine.from_arrays({"x": x}, n_shards=4), 12, rng=np.random.default_rng(3))
    p2 = sharded_kcenter_two_round(LocalEngine.from_arrays({"x": x}, n_shards=4), 12, rng=np.random.default_rng(3))
    assert np.array_equal(p1, p2) and np.unique(p1).shape[0] == 12


def test_select_sharded_approximate_option():
    a, h = blobs(n=200)
    probs = np.abs(a) / np.abs(a).sum(axis=1, keepdims=True)
    eng = LocalEngine.from_arrays({"probs": probs, "embeddings": h}, n_shards=2)
    picks = select_sharded(eng, "badge", 10, rng=np.random.default_rng(0), approximate=True)
    assert np.unique(picks).shape[0] == 10
    picks = select_sharded(eng, "coreset", 10, rng=np.random.default_rng(0), approximate=True)
    assert np.unique(picks).shape[0] == 10
    with pytest.raises(ValueError, match="strategy 'margin' is exact already"):
        select_sharded(eng, "margin", 10, rng=np.random.default_rng(0), approximate=True)
    with pytest.raises(ValueError, match="approximate must be True or False; got 'yes'"):
        select_sharded(eng, "badge", 10, rng=np.random.default_rng(0), approximate="yes")
    with pytest.raises(ValueError, match="oversample must be a positive number"):
        sharded_kmeans_parallel(LocalEngine.from_arrays({"a": a, "h": h}), 5, rng=np.random.default_rng(0),
                                oversample=-1)
