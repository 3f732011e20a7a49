"""Nearest-neighbour backends and the k-center / k-means++ fast paths at scale: exact numpy search
equals brute force; faiss exact search (IndexFlatL2, float32) gives the numpy path's picks on small
inputs; approximate searches never report a distance below the true one; the pruning bounds and
float32 storage change no pick where the arithmetic is exact."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeModel, blobs
from test_select_kcenter import reference_kcenter

from pickwise.embeddings import mean_cosine_similarity, mean_knn_cosine_similarity
from pickwise.neighbors import FaissFlat, FaissHNSW, FaissIVF, NeighborSearch, NumpySearch
from pickwise.pool import Pool
from pickwise.select.kcenter import kcenter_greedy, min_sq_distances, nearest_centres
from pickwise.select.kmeanspp import kmeanspp_seeding
from pickwise.strategies import CoreSet, InformationDensity


def brute(q, b, k):
    d2 = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    idx = np.lexsort((np.broadcast_to(np.arange(b.shape[0]), d2.shape), d2), axis=-1)[:, :k]
    return np.take_along_axis(d2, idx, axis=1), idx


def clustered(n, d, *, seed, centres=6, noise=0.3):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)) * 3
    return c[rng.integers(centres, size=n)] + noise * rng.normal(size=(n, d))


@pytest.mark.parametrize("chunk", [1, 7, 1024])
@pytest.mark.parametrize("k", [1, 3, 9])
def test_numpy_search_equals_brute_force(chunk, k):
    rng = np.random.default_rng(k)
    q, b = rng.normal(size=(23, 4)), rng.normal(size=(17, 4))
    d, i = NumpySearch(chunk_size=chunk).search(q, b, k)
    bd, bi = brute(q, b, k)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_allclose(d, bd, atol=1e-12)
    # ties go to the smaller index
    _, ti = NumpySearch(chunk_size=chunk).search(np.zeros((2, 3)), np.zeros((5, 3)), min(k, 5))
    np.testing.assert_array_equal(ti, np.tile(np.arange(min(k, 5)), (2, 1)))
    assert isinstance(NumpySearch(), NeighborSearch)


def test_nearest_centres_is_the_argmin():
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(40, 5)), rng.normal(size=(13, 5))
    for chunk in (1, 4, 100):
        d2, arg = nearest_centres(x, c, chunk_size=chunk)
        bd, bi = brute(x, c, 1)
        np.testing.assert_array_equal(arg, bi[:, 0])
        np.testing.assert_allclose(d2, bd[:, 0], atol=1e-12)
    d2, arg = nearest_centres(x, c[:0])
    assert np.isinf(d2).all() and (arg == -1).all()


@pytest.mark.parametrize("seed", range(4))
def test_pruned_k_center_equals_brute_force_on_clustered_data(seed):
    # well-separated clusters: the triangle bound skips most rows after the first few picks
    x = clustered(150, 6, seed=seed)
    lab = clustered(5, 6, seed=seed + 10)
    ref = reference_kcenter(x, 40, lab, np.random.default_rng(0))
    for prune in (True, False):
        got = kcenter_greedy(x, 40, centres=lab, rng=np.random.default_rng(0), prune=prune)
        np.testing.assert_array_equal(got, ref)
    got = kcenter_greedy(x, 40, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(got, reference_kcenter(x, 40, np.empty((0, 6)), np.random.default_rng(3)))


def test_float32_k_center_and_kmeanspp_equal_float64_on_exact_inputs():
    rng = np.random.default_rng(1)
    x = rng.integers(-4, 5, size=(120, 5)).astype(np.float64)  # every product exact in float32
    lab = rng.integers(-4, 5, size=(6, 5)).astype(np.float64)
    for s in range(3):
        a = kcenter_greedy(x, 30, centres=lab, rng=np.random.default_rng(s))
        b = kcenter_greedy(x.astype(np.float32), 30, centres=lab.astype(np.float32), rng=np.random.default_rng(s))
        np.testing.assert_array_equal(a, b)
        a = kmeanspp_seeding(x, 30, rng=np.random.default_rng(s))
        b = kmeanspp_seeding(x.astype(np.float32), 30, rng=np.random.default_rng(s))
        np.testing.assert_array_equal(a, b)


def test_knn_similarity_equals_brute_force():
    x = np.random.default_rng(2).normal(size=(60, 4))
    x[5] = 0.0  # a zero row is similar to nothing
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :7]
    ref = np.take_along_axis(u @ u.T, order, axis=1).mean(axis=1)
    np.testing.assert_allclose(mean_knn_cosine_similarity(x, 7), ref, atol=1e-12)
    assert mean_knn_cosine_similarity(x, 7)[5] == 0.0
    with pytest.raises(ValueError, match="n_neighbors"):
        mean_knn_cosine_similarity(x, 60)


def test_mean_cosine_similarity_keeps_float32_without_a_float64_copy():
    x = np.random.default_rng(3).normal(size=(500, 6)).astype(np.float32)
    np.testing.assert_allclose(mean_cosine_similarity(x, chunk_size=64), mean_cosine_similarity(x.astype(np.float64)),
                               rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- faiss (optional)


@pytest.fixture
def faiss():
    return pytest.importorskip("faiss")


def test_faiss_flat_equals_numpy_search(faiss):
    rng = np.random.default_rng(5)
    q, b = rng.normal(size=(300, 8)), rng.normal(size=(90, 8))
    nd, ni = NumpySearch().search(q, b, 4)
    fd, fi = FaissFlat(query_chunk=64).search(q, b, 4)
    np.testing.assert_array_equal(fi, ni)
    np.testing.assert_allclose(fd, nd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_faiss_exact_core_set_picks_equal_numpy(faiss, seed):
    x, y = blobs(400, 8, 4, seed=seed)
    model = FakeModel(8, 4, width=12, seed=seed)
    pool = Pool.empty(400).label(np.arange(0, 400, 9), y[::9])
    ref = CoreSet().select(model, x, pool, 40, rng=np.random.default_rng(0))
    for dtype in ("float64", "float32"):
        got = CoreSet(neighbors=FaissFlat(), dtype=dtype).select(model, x, pool, 40, rng=np.random.default_rng(0))
        np.testing.assert_array_equal(got, ref)
    # small integer embeddings: float32 is exact, so the picks are identical by construction
    xi = np.random.default_rng(seed).integers(-5, 6, size=(300, 6)).astype(np.float64)
    lab = xi[:10]
    a = kcenter_greedy(xi[10:], 50, centres=lab, rng=np.random.default_rng(0))
    b = kcenter_greedy(xi[10:], 50, centres=lab, rng=np.random.default_rng(0), neighbors=FaissFlat())
    np.testing.assert_array_equal(a, b)


def test_approximate_searches_never_undercut_the_true_distance(faiss):
    x = clustered(2000, 16, seed=0, centres=20, noise=1.0).astype(np.float32)
    c = clustered(400, 16, seed=1, centres=20, noise=1.0).astype(np.float32)
    exact = min_sq_distances(x, c)
    for search in (FaissIVF(nlist=16, nprobe=2), FaissHNSW(m=8, ef_search=16)):
        approx = min_sq_distances(x, c, neighbors=search)
        assert (approx >= exact * (1 - 1e-5) - 1e-4).all()
        assert np.mean(np.isclose(approx, exact, rtol=1e-4, atol=1e-4)) > 0.5
        picks = kcenter_greedy(x, 20, centres=c, rng=np.random.default_rng(0), neighbors=search)
        assert len(set(picks.tolist())) == 20
    # scanning every cell is exact
    full = min_sq_distances(x, c, neighbors=FaissIVF(nlist=8, nprobe=8))
    np.testing.assert_allclose(full, exact, rtol=1e-4, atol=1e-3)
    # the same search twice gives the same answer (fixed training sample and k-means seed)
    a = FaissIVF(nlist=16, nprobe=2).search(x, c, 3)
    b = FaissIVF(nlist=16, nprobe=2).search(x, c, 3)
    np.testing.assert_array_equal(a[1], b[1])


def test_faiss_knn_density_equals_numpy(faiss):
    x, y = blobs(300, 6, 3, seed=7)
    model = FakeModel(6, 3, width=10, seed=1)
    pool = Pool.empty(300).label(np.arange(0, 300, 10), y[::10])
    ref_scores = InformationDensity(n_neighbors=5).scores(model, x, pool.unlabeled)
    got_scores = InformationDensity(n_neighbors=5, neighbors=FaissFlat()).scores(model, x, pool.unlabeled)
    np.testing.assert_allclose(got_scores, ref_scores, rtol=1e-5, atol=1e-6)
    a = InformationDensity(n_neighbors=5).select(model, x, pool, 20, rng=np.random.default_rng(0))
    b = InformationDensity(n_neighbors=5, neighbors=FaissFlat()).select(model, x, pool, 20, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    hnsw = InformationDensity(n_neighbors=5, neighbors=FaissHNSW()).scores(model, x, pool.unlabeled)
    assert np.corrcoef(hnsw, ref_scores)[0, 1] > 0.99


def test_bad_search_arguments(faiss):
    with pytest.raises(ValueError, match="k=5"):
        FaissFlat().search(np.zeros((3, 2)), np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match="shapes"):
        NumpySearch().search(np.zeros((3, 2)), np.zeros((4, 3)), 1)
    with pytest.raises(ValueError, match="nprobe"):
        FaissIVF(nprobe=0)
