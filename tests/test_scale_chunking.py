"""Pools of millions: chunked scoring equals unchunked scoring; memory-mapped arrays and map-style
datasets are read one chunk at a time; progress bars change nothing but stderr.

Which equalities are exact: given a model that returns the same numbers for a row whatever chunk
it comes in (here :class:`Precomputed`, a lookup), everything pickwise computes row by row (scores,
MC reductions, gradient factors, embeddings) is bit-for-bit the same for every chunk size. A model
that runs a BLAS product per chunk (FakeModel, a network) may differ in the last bit between a
1-row and a 300-row product; the picks are still equal. The whole-pool mean of information density
sums chunk totals, so its scores agree to float tolerance (the sum is reordered) and its picks are
equal.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise.embeddings import grad_embedding
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed
from pickwise.progress import progress_bars, progress_enabled
from pickwise.scores import bald
from pickwise.select.batchbald import batchbald_select
from pickwise.select.topk import top_k
from pickwise.strategies import BADGE, DBAL, BatchBALD, CoreSet, InformationDensity, MCDropout, Uncertainty
from pickwise.strategies._base import LazyRows, gather_embeddings, gather_grad_embedding

N, F, K = 300, 6, 4
BIG = 10**6  # a chunk larger than the pool: the unchunked path


@pytest.fixture(scope="module")
def setting():
    x, y = blobs(N, F, K, seed=1)
    pool = Pool.empty(N, n_classes=K).label(np.arange(0, N, 7), y[::7])
    return FakeModel(F, K, width=10, seed=2), x, pool


class SpyArray:
    """An array-like that records how many rows each read asks for and refuses to be loaded whole."""

    def __init__(self, x):
        self.x, self.shape, self.reads = x, x.shape, []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        self.reads.append(np.size(np.arange(self.shape[0])[idx]))
        return self.x[idx]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole pool was loaded")


class MapDataset:
    """A map-style dataset: items one at a time by integer index."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[int(i)].copy()


STRATEGIES = {
    "margin": lambda c: Uncertainty(score="margin", chunk_size=c),
    "bald": lambda c: MCDropout(score="bald", n_draws=5, chunk_size=c),
    "badge": lambda c: BADGE(chunk_size=c),
    "badge_bias": lambda c: BADGE(bias=True, chunk_size=c),
    "coreset": lambda c: CoreSet(chunk_size=c),
    "dbal": lambda c: DBAL(beta=3.0, chunk_size=c),
    "density": lambda c: InformationDensity(chunk_size=c),
    "density_knn": lambda c: InformationDensity(n_neighbors=4, chunk_size=c),
    "batchbald": lambda c: BatchBALD(n_draws=4, n_samples=300, max_candidates=20, chunk_size=c),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_chunked_picks_equal_unchunked(name, setting):
    model, x, pool = setting
    make = STRATEGIES[name]
    whole = make(BIG).select(model, x, pool, 12, rng=np.random.default_rng(3))
    for chunk in (1, 17):
        np.testing.assert_array_equal(make(chunk).select(model, x, pool, 12, rng=np.random.default_rng(3)), whole)


@pytest.mark.parametrize("name", ["margin", "bald", "badge", "coreset", "dbal", "density"])
def test_memory_mapped_and_map_style_inputs_equal_in_memory(name, setting, tmp_path):
    model, x, pool = setting
    make = STRATEGIES[name]
    expected = make(64).select(model, x, pool, 9, rng=np.random.default_rng(5))
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(make(64).select(model, mm, pool, 9, rng=np.random.default_rng(5)), expected)
    np.testing.assert_array_equal(make(64).select(model, MapDataset(x), pool, 9, rng=np.random.default_rng(5)), expected)
    spy = SpyArray(x)
    np.testing.assert_array_equal(make(64).select(model, spy, pool, 9, rng=np.random.default_rng(5)), expected)
    assert spy.reads and max(spy.reads) <= 64, f"read {max(spy.reads)} rows at once"


def _lookup(model, x):
    """Precomputed outputs of ``model`` on ``x``: rows are exact whatever the chunk."""
    return Precomputed(probs=model.predict_proba(x), embeddings=model.embed(x),
                       mc_probs=model.predict_proba_mc(x, 5, seed=0)), np.arange(len(x))


def test_exact_scores_for_every_chunk_size(setting):
    model, x, pool = setting
    model, x = _lookup(model, x)
    unl = pool.unlabeled
    for make in (STRATEGIES["margin"], STRATEGIES["bald"]):
        ref = make(BIG).scores(model, x, unl, rng=np.random.default_rng(0))
        for chunk in (1, 5, 64):
            np.testing.assert_array_equal(make(chunk).scores(model, x, unl, rng=np.random.default_rng(0)), ref)
    # the whole-pool density mean sums chunk totals in another order: float tolerance only
    ref = InformationDensity(chunk_size=BIG).scores(model, x, unl)
    np.testing.assert_allclose(InformationDensity(chunk_size=7).scores(model, x, unl), ref, rtol=1e-12, atol=1e-15)


def test_gathered_embeddings_equal_the_whole_pool_exactly(setting):
    model, x, pool = setting
    model, x = _lookup(model, x)
    unl = pool.unlabeled
    for bias in (False, True):
        ref = grad_embedding(*model.grad_factors(x[unl]), bias=bias)
        for chunk in (1, 11, BIG):
            e = gather_grad_embedding(model, x, unl, chunk, bias=bias)
            np.testing.assert_array_equal(e.a, ref.a)
            np.testing.assert_array_equal(e.h, ref.h)
        e32 = gather_grad_embedding(model, x, unl, 11, bias=bias, dtype="float32")
        assert e32.a.dtype == e32.h.dtype == np.float32
        np.testing.assert_array_equal(e32.h, ref.h.astype(np.float32))
    np.testing.assert_array_equal(gather_embeddings(model, x, unl, 13), model.embed(x[unl]))
    assert gather_embeddings(model, x, unl[:0], 13).shape == (0, 0)


def test_batchbald_candidate_path_equals_keeping_every_draw(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    strat = BatchBALD(n_draws=4, n_samples=300, max_candidates=25, chunk_size=16)
    got = strat.select(model, x, pool, 6, rng=np.random.default_rng(9))
    # the former path: every draw of the pool in memory, BALD over all of them, then the candidates
    rng = np.random.default_rng(9)
    d = model.predict_proba_mc(x[unl], 4, seed=int(rng.integers(2**31 - 1)))
    keep = np.sort(top_k(bald(d), 25, rng=rng))
    ref = unl[keep][batchbald_select(d[:, keep], 6, rng=rng, max_configs=strat.max_configs, n_samples=300)]
    np.testing.assert_array_equal(got, ref)


def test_badge_gathers_without_a_second_copy():
    n, f, k = 20_000, 8, 5
    x = np.random.default_rng(0).normal(size=(n, f))
    model = FakeModel(f, k, width=64, seed=0)
    pool = Pool.empty(n)
    factored = n * (k + 64) * 8  # bytes of (a, h) in float64
    tracemalloc.start()
    BADGE(chunk_size=2048).select(model, x, pool, 5, rng=np.random.default_rng(0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # (a, h) once, O(n) state and one chunk; concatenating chunks would need (a, h) twice
    assert peak < 1.6 * factored, peak / factored


def test_float32_badge_and_coreset_match_float64_on_exact_inputs():
    """Inputs exactly representable in float32 (dyadic probabilities, small integer activations):
    every product is exact in both precisions, so the picks are identical."""
    rng = np.random.default_rng(4)
    n = 200

    class Dyadic:
        n_classes = 4

        def grad_factors(self, idx):
            return self.p[idx], self.h[idx]

        def embed(self, idx):
            return self.h[idx]

    m = Dyadic()
    counts = rng.multinomial(16, np.ones(4) / 4, size=n)
    m.p = counts / 16.0
    m.h = rng.integers(0, 4, size=(n, 7)).astype(np.float64)
    idx = np.arange(n)
    pool = Pool.empty(n).label(np.arange(0, n, 25), np.zeros(8, dtype=np.int64))
    for s in range(3):
        for make in (lambda dt: BADGE(dtype=dt), lambda dt: CoreSet(dtype=dt)):
            a = make("float64").select(m, idx, pool, 30, rng=np.random.default_rng(s))
            b = make("float32").select(m, idx, pool, 30, rng=np.random.default_rng(s))
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BADGE(dtype="float32"),
        lambda: CoreSet(dtype="float32"),
        lambda: DBAL(beta=2.0, dtype="float32"),
        lambda: InformationDensity(n_neighbors=3, dtype="float32"),
    ],
)
def test_contract_of_the_new_options(make, setting):
    check_strategy_contract(make, *setting)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="float16"):
        BADGE(dtype="float16")
    with pytest.raises(ValueError, match="neighbors"):
        CoreSet(neighbors="faiss")
    with pytest.raises(ValueError, match="n_neighbors"):
        InformationDensity(n_neighbors=0)
    from pickwise.neighbors import NumpySearch

    with pytest.raises(ValueError, match="only with n_neighbors"):
        InformationDensity(neighbors=NumpySearch())


def test_progress_bars_change_nothing_but_stderr(setting, capsys):
    model, x, pool = setting
    quiet = [make(32).select(model, x, pool, 8, rng=np.random.default_rng(1)) for make in STRATEGIES.values()]
    assert capsys.readouterr().err == ""
    assert not progress_enabled()
    with progress_bars():
        assert progress_enabled()
        loud = [make(32).select(model, x, pool, 8, rng=np.random.default_rng(1)) for make in STRATEGIES.values()]
    assert not progress_enabled()
    err = capsys.readouterr().err
    for a, b in zip(quiet, loud):
        np.testing.assert_array_equal(a, b)
    assert "k-means++ picks" in err and "k-center picks" in err and "scoring" in err
    with progress_bars(False):
        STRATEGIES["badge"](32).select(model, x, pool, 8, rng=np.random.default_rng(1))
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="True or False"), progress_bars("yes"):
        pass


def test_lazy_rows_fetch_only_what_is_indexed():
    x = np.arange(40.0).reshape(20, 2)
    spy = SpyArray(x)
    view = LazyRows(spy, np.array([3, 5, 7, 11]))
    assert view.shape == (4, 2) and len(view) == 4
    np.testing.assert_array_equal(np.asarray(view[np.array([1, 3])]), x[[5, 11]])
    np.testing.assert_array_equal(view[2], x[7])
    assert max(spy.reads) <= 2


def test_torch_mc_scores_read_the_pool_chunk_by_chunk(setting):
    pytest.importorskip("torch")
    from pickwise.adapters import TorchClassifier, mlp

    _, x, pool = setting
    y = np.arange(N) % K
    clf = TorchClassifier(mlp(F, K, hidden=(16,), dropout=0.3), n_classes=K, max_steps=5, chunk_size=32)
    clf.fit(x[pool.labeled], y[pool.labeled], seed=0)
    strat = MCDropout(score="bald", n_draws=4, chunk_size=32)
    ref = strat.select(clf, x, pool, 7, rng=np.random.default_rng(2))
    spy = SpyArray(x)
    np.testing.assert_array_equal(strat.select(clf, spy, pool, 7, rng=np.random.default_rng(2)), ref)
    assert max(spy.reads) <= 32
    np.testing.assert_array_equal(strat.select(clf, MapDataset(x), pool, 7, rng=np.random.default_rng(2)), ref)
