"""TypiClust and ProbCover (pickwise.strategies.coldstart): the contract, exact equality with plain
O(n²) implementations of the papers' definitions, zero labels, and the papers' claim on digits."""

from __future__ import annotations

import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise.pool import Pool
from pickwise.strategies.coldstart import (
    ProbCover,
    TypiClust,
    coldstart_embedding,
    delta_graph,
    kmeans_labels,
    probcover_greedy,
    purity_delta,
    typicality,
    typiclust_pick,
)

# --------------------------------------------------------------------------------------------
# plain references: dense distance matrices, loops, the papers' definitions


def dense_dist(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt((diff * diff).sum(axis=-1))


def ref_typicality(x: np.ndarray, k: int) -> np.ndarray:
    d = dense_dist(x)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        others = np.sort(np.delete(d[i], i))[:k]
        with np.errstate(divide="ignore"):
            out[i] = 1.0 / np.mean(others)
    return out


def ref_typiclust(x, clusters, labeled, k, n_neighbors=20, min_cluster_size=6):
    """Clusters by (fewest labelled, largest, smallest id); round-robin over the big clusters, then
    the small ones; in each visit the most typical candidate within the cluster."""
    n = x.shape[0]
    ids = sorted(set(clusters.tolist()))
    size = {g: int(np.sum(clusters == g)) for g in ids}
    n_lab = {g: int(np.sum(labeled[clusters == g])) for g in ids}
    order = sorted(ids, key=lambda g: (n_lab[g], -size[g], g))
    picked: list[int] = []
    for group in ([g for g in order if size[g] >= min_cluster_size], [g for g in order if size[g] < min_cluster_size]):
        while len(picked) < k:
            before = len(picked)
            for g in group:
                if len(picked) == k:
                    break
                cand = [i for i in range(n) if clusters[i] == g and not labeled[i] and i not in picked]
                if not cand:
                    continue
                if len(cand) == 1:
                    picked.append(cand[0])
                    continue
                kk = max(1, min(n_neighbors, len(cand) // 2))
                picked.append(cand[int(np.argmax(ref_typicality(x[cand], kk)))])
            if len(picked) == before:
                break
    return np.array(picked)


def ref_probcover(x, labeled, k, delta, priority):
    """Dense adjacency ‖x − x'‖ ≤ δ; labelled balls covered; greedy most-uncovered, ties by priority."""
    adj = dense_dist(x) <= delta
    covered = adj[labeled].any(axis=0)
    cand = ~labeled.copy()
    out = []
    for _ in range(k):
        best, best_key = -1, None
        for i in np.flatnonzero(cand):
            key = (int(np.sum(adj[i] & ~covered)), int(priority[i]))
            if best_key is None or key > best_key:
                best, best_key = i, key
        out.append(best)
        cand[best] = False
        covered |= adj[best]
    return np.array(out)


def ref_purity(x, pseudo, delta):
    adj = dense_dist(x) <= delta
    return np.mean([np.all(pseudo[adj[i]] == pseudo[i]) for i in range(x.shape[0])])


def labelled_pool(n: int, labelled: list[int], n_classes: int = 3) -> Pool:
    pool = Pool.empty(n, n_classes=n_classes)
    return pool.label(np.array(labelled), np.array(labelled) % n_classes) if labelled else pool


# --------------------------------------------------------------------------------------------
# the shared contract


@pytest.mark.parametrize("make", [
    lambda: TypiClust(),
    lambda: TypiClust(features="x", min_cluster_size=1, n_neighbors=3),
    lambda: ProbCover(delta=1.5),
    lambda: ProbCover(),  # delta="auto": k-means pseudo-labels with K = pool.n_classes
    lambda: ProbCover(features="x", delta=2.0, normalize=True),
])
def test_contract(make):
    x, _ = blobs(60, seed=1)
    model = FakeModel(x.shape[1], seed=2)
    check_strategy_contract(make, model, x, labelled_pool(60, [0, 7, 31]))


# --------------------------------------------------------------------------------------------
# exact equality with the references


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typicality_equals_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(37, 4))
    x[5] = x[9]  # a duplicate: distance 0 to another row
    for k in (1, 5, 36):
        np.testing.assert_array_equal(typicality(x, k, chunk_size=8), ref_typicality(x, k))
    # a pickwise.neighbors search instead: its own (Gram-formula) distances, equal to rounding
    from pickwise.neighbors import NumpySearch

    np.testing.assert_allclose(typicality(x, 5, neighbors=NumpySearch()), ref_typicality(x, 5), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_typiclust_pick_equals_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 3)) + rng.integers(0, 4, size=(80, 1)) * 3.0
    clusters = rng.integers(0, 9, size=80)
    labeled = np.zeros(80, dtype=bool)
    labeled[rng.choice(80, 6, replace=False)] = True
    for k, n_nb, min_size in ((5, 20, 6), (30, 4, 6), (74, 20, 1), (12, 3, 12)):
        got = typiclust_pick(x, clusters, labeled, k, n_neighbors=n_nb, min_cluster_size=min_size)
        np.testing.assert_array_equal(got, ref_typiclust(x, clusters, labeled, k, n_nb, min_size))


@pytest.mark.parametrize("seed", [0, 5])
def test_typiclust_select_equals_reference(seed):
    x, _ = blobs(90, n_features=4, n_classes=4, seed=seed)
    pool = labelled_pool(90, [3, 40, 41])
    got = TypiClust(features="x").select(None, x, pool, 8, rng=np.random.default_rng(seed))
    # the same k-means (one seed drawn from the same generator), then the plain reference
    clusters = kmeans_labels(x, 3 + 8, rng=np.random.default_rng(seed))
    want = ref_typiclust(x, clusters, pool.labels != -1, 8)
    np.testing.assert_array_equal(got, want)
    # without the small-cluster rule the picks come from 8 distinct clusters without labelled items
    got = TypiClust(features="x", min_cluster_size=1).select(None, x, pool, 8, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(got, ref_typiclust(x, clusters, pool.labels != -1, 8, min_cluster_size=1))
    assert len(set(clusters[got].tolist())) == 8
    assert not set(clusters[got].tolist()) & set(clusters[pool.labeled].tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_graph_equals_dense(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 5)) * np.array([5.0, 1.0, 1.0, 0.5, 0.1])  # elongated: the band prunes
    d = dense_dist(x)
    x[7] = x[3]  # a duplicate
    d = dense_dist(x)
    for delta in (0.0, 1.0, float(d[0, 5]), float(d[10, 99]), 100.0):  # two deltas exactly at a distance
        g = delta_graph(x, delta, chunk_size=16)
        np.testing.assert_array_equal(g.toarray(), d <= delta)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_probcover_select_equals_reference(seed):
    x, _ = blobs(70, n_features=3, seed=seed)
    labelled = [] if seed == 0 else [2, 11, 50]
    pool = labelled_pool(70, labelled)
    for delta, k in ((1.0, 10), (2.5, 25), (50.0, 6)):  # 50: one ball covers all, the rest is random
        got = ProbCover(features="x", delta=delta).select(None, x, pool, k, rng=np.random.default_rng(seed))
        prio = np.random.default_rng(seed).permutation(70)
        want = ref_probcover(x, pool.labels != -1, k, delta, prio)
        np.testing.assert_array_equal(got, want)


def test_probcover_full_coverage_falls_back_to_the_seeded_random_order():
    x, _ = blobs(40, seed=3)
    pool = Pool.empty(40, n_classes=3)
    picks = ProbCover(features="x", delta=1e6).select(None, x, pool, 10, rng=np.random.default_rng(4))
    prio = np.random.default_rng(4).permutation(40)
    # all gains tie (the first ball covers everything), so every pick follows the permutation
    np.testing.assert_array_equal(picks, np.argsort(-prio)[:10])
    other = ProbCover(features="x", delta=1e6).select(None, x, pool, 10, rng=np.random.default_rng(5))
    assert not np.array_equal(picks, other)


def test_probcover_greedy_matches_reference_on_a_given_graph():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    g = delta_graph(x, 0.6)
    labeled = np.zeros(50, dtype=bool)
    labeled[[4, 9]] = True
    covered = np.asarray(g[np.flatnonzero(labeled)].sum(axis=0)).ravel() > 0
    prio = rng.permutation(50)
    got = probcover_greedy(g.indptr, g.indices, ~labeled, covered, 20, priority=prio)
    np.testing.assert_array_equal(got, ref_probcover(x, labeled, 20, 0.6, prio))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_purity_delta_is_the_largest_delta_with_purity_alpha(seed):
    x, _ = blobs(120, n_features=3, n_classes=4, seed=seed)
    pseudo = kmeans_labels(x, 4, rng=np.random.default_rng(seed))
    for alpha in (0.95, 0.8, 1.0):
        delta = purity_delta(x, pseudo, alpha=alpha, chunk_size=32)
        assert ref_purity(x, pseudo, delta) >= alpha
        assert ref_purity(x, pseudo, np.nextafter(delta, np.inf)) < alpha


def test_probcover_auto_delta_uses_purity_heuristic():
    x, _ = blobs(90, n_features=3, seed=2)
    pool = Pool.empty(90, n_classes=3)
    got = ProbCover(features="x").select(None, x, pool, 7, rng=np.random.default_rng(8))
    rng = np.random.default_rng(8)
    delta = purity_delta(x, kmeans_labels(x, 3, rng=rng, mode="full"))
    want = ref_probcover(x, np.zeros(90, dtype=bool), 7, delta, rng.permutation(90))
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# zero labels, features, validation


@pytest.mark.parametrize("strategy", [TypiClust(), ProbCover(), TypiClust(features="x"), ProbCover(features="embed")])
def test_zero_labelled_items(strategy):
    x, _ = blobs(50, seed=4)
    pool = Pool.empty(50)  # no labels, no n_classes: ProbCover's auto delta takes model.n_classes
    sel = strategy.select(FakeModel(x.shape[1], n_classes=3), x, pool, 6, rng=np.random.default_rng(0))
    assert sel.shape == (6,) and len(set(sel.tolist())) == 6


def test_features_default_embed_else_raw_x_and_given_array():
    x, _ = blobs(30, seed=0)
    model = FakeModel(x.shape[1])
    pool = Pool.empty(30)
    np.testing.assert_array_equal(coldstart_embedding(model, x, pool), model.embed(x))
    np.testing.assert_array_equal(coldstart_embedding(object(), x, pool), x)  # no embed(): raw x
    np.testing.assert_array_equal(coldstart_embedding(model, x, pool, "x"), x)
    feats = np.arange(60.0).reshape(30, 2)
    np.testing.assert_array_equal(coldstart_embedding(None, x, pool, feats), feats)
    unit = coldstart_embedding(None, x, pool, "x", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0)
    # a given array decides the picks: the raw x is then ignored
    a = TypiClust(features=feats).select(None, x, pool, 3, rng=np.random.default_rng(0))
    b = TypiClust(features=feats).select(None, x[::-1].copy(), pool, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert TypiClust(features="embed").needs and not TypiClust().needs and not ProbCover(features="x").needs


def test_clear_errors():
    x, _ = blobs(30, seed=0)
    pool = Pool.empty(30)
    with pytest.raises(ValueError, match="-1"):
        ProbCover(delta=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        ProbCover(alpha=0.0)
    with pytest.raises(ValueError, match="'pca'"):
        TypiClust(features="pca")
    with pytest.raises(ValueError, match="min_cluster_size"):
        TypiClust(min_cluster_size=0)
    with pytest.raises(ValueError, match="neighbors"):
        TypiClust(neighbors="faiss")
    with pytest.raises(ValueError, match="embed"):
        TypiClust(features="embed").select(None, x, pool, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="29 rows"):
        ProbCover(features=np.zeros((29, 2)), delta=1.0).select(None, x, pool, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="numeric rows"):
        TypiClust(features="x").select(None, ["a text"] * 30, pool, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="number of classes"):
        ProbCover(features="x").select(None, x, pool, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_edges=10"):
        ProbCover(features="x", delta=100.0, max_edges=10).select(None, x, pool, 2, rng=np.random.default_rng(0))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        ProbCover(features="x", delta=1.0).select(None, bad, pool, 2, rng=np.random.default_rng(0))


def test_value_semantics():
    assert TypiClust() == TypiClust() and hash(ProbCover()) == hash(ProbCover())
    assert ProbCover(delta=0.5) != ProbCover(delta=0.6)
    assert "features=<array of shape (5, 2)>" in repr(TypiClust(features=np.zeros((5, 2))))
    assert TypiClust().name == "typiclust" and ProbCover().name == "probcover"


# --------------------------------------------------------------------------------------------
# the papers' claim, on a real small set: from zero labels, better first picks than random


def test_digits_first_picks_beat_random():
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1300], perm[1300:]
    pool = Pool.empty(len(tr), n_classes=10)

    def accuracy(idx: np.ndarray) -> float:
        return KNeighborsClassifier(1).fit(x[tr][idx], y[tr][idx]).score(x[te], y[te])

    for k in (10, 20, 30):
        random = np.mean([accuracy(np.random.default_rng(s).choice(len(tr), k, replace=False)) for s in range(10)])
        for strategy in (TypiClust(features="x"), ProbCover(features="x")):
            acc = np.mean([accuracy(strategy.select(None, x[tr], pool, k, rng=np.random.default_rng(s)))
                           for s in range(3)])
            assert acc > random, (strategy.name, k, acc, random)
