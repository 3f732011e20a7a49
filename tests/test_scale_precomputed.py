"""Every strategy on small memory-mapped files through :class:`Precomputed` (the model behind
``pickwise select``): same picks as on in-memory arrays and as the plain computation."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise.catalog import make_strategy, strategy_names
from pickwise.embeddings import grad_embedding
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed, load_npy
from pickwise.scores import bald, margin, vote_entropy
from pickwise.select.kcenter import kcenter_greedy
from pickwise.select.kmeanspp import kmeanspp_seeding
from pickwise.select.topk import top_k
from pickwise.strategies import BADGE, CoreSet, MCDropout, Uncertainty

N, F, K, T = 240, 5, 4, 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    x, _ = blobs(N, F, K, seed=4)
    m = FakeModel(F, K, width=9, seed=3)
    arrays = {
        "probs": m.predict_proba(x),
        "embeddings": m.embed(x),
        "mc_probs": m.predict_proba_mc(x, T, seed=1),
        "member_probs": np.stack([FakeModel(F, K, width=9, seed=s).predict_proba(x) for s in range(3)]),
    }
    for name, arr in arrays.items():
        np.save(d / f"{name}.npy", arr)
        np.save(d / f"{name}32.npy", arr.astype(np.float32))
    return d, arrays


def _mmap(d, suffix=""):
    names = ("probs", "embeddings", "mc_probs", "member_probs")
    return Precomputed(**{n: load_npy(d / f"{n}{suffix}.npy") for n in names})


@pytest.fixture(scope="module")
def pool():
    lab = np.arange(3, N, 11)
    return Pool.empty(N).label(lab, np.zeros(lab.shape[0], dtype=np.int64))


def test_arrays_are_memory_mapped(files):
    d, _ = files
    model = _mmap(d)
    assert isinstance(model.probs, np.memmap) and isinstance(model.mc_probs, np.memmap)


def test_badge_coreset_margin_bald_equal_the_plain_computation(files, pool):
    d, arr = files
    model = _mmap(d)
    unl = pool.unlabeled
    rng = np.random.default_rng
    # margin: top-k of the score
    got = Uncertainty(score="margin", chunk_size=50).select(model, model.x, pool, 10, rng=rng(0))
    np.testing.assert_array_equal(got, unl[top_k(margin(arr["probs"][unl]), 10, rng=rng(0))])
    # BALD over the stored draws (the seed drawn from rng is ignored by precomputed draws)
    got = MCDropout(score="bald", n_draws=T, chunk_size=50).select(model, model.x, pool, 10, rng=rng(0))
    r = rng(0)
    r.integers(2**31 - 1)
    np.testing.assert_array_equal(got, unl[top_k(bald(arr["mc_probs"][:, unl]), 10, rng=r)])
    # BADGE: k-means++ on the factored gradient embedding of the unlabelled rows
    got = BADGE(chunk_size=50).select(model, model.x, pool, 10, rng=rng(0))
    e = grad_embedding(arr["probs"][unl], arr["embeddings"][unl])
    np.testing.assert_array_equal(got, unl[kmeanspp_seeding(e, 10, rng=rng(0))])
    # core-set: k-center from the labelled embeddings
    got = CoreSet(chunk_size=50).select(model, model.x, pool, 10, rng=rng(0))
    ref = kcenter_greedy(arr["embeddings"][unl], 10, centres=arr["embeddings"][pool.labeled], rng=rng(0))
    np.testing.assert_array_equal(got, unl[ref])


@pytest.mark.parametrize("name", strategy_names())
def test_every_catalog_strategy_on_memory_mapped_files(name, files, pool):
    d, arr = files
    mm = _mmap(d)
    mem = Precomputed(**arr)
    k = 8
    got = make_strategy(name, n_draws=T, chunk_size=37).select(mm, mm.x, pool, k, rng=np.random.default_rng(1))
    assert got.shape == (k,) and len(set(got.tolist())) == k and np.isin(got, pool.unlabeled).all()
    again = make_strategy(name, n_draws=T).select(mem, mem.x, pool, k, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(got, again)


@pytest.mark.parametrize("name", ["margin", "bald", "badge", "coreset", "dbal", "qbc"])
def test_float32_files_give_the_picks_of_float64_files_with_the_same_values(name, files, pool):
    d, arr = files
    as32 = {n: a.astype(np.float32).astype(np.float64) for n, a in arr.items()}
    got = make_strategy(name, n_draws=T).select(_mmap(d, "32"), np.arange(N), pool, 8, rng=np.random.default_rng(2))
    ref = make_strategy(name, n_draws=T).select(Precomputed(**as32), np.arange(N), pool, 8, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(got, ref)


def test_qbc_reads_member_probabilities(files, pool):
    d, arr = files
    model = _mmap(d)
    got = make_strategy("qbc").select(model, model.x, pool, 6, rng=np.random.default_rng(0))
    unl = pool.unlabeled
    np.testing.assert_array_equal(got, unl[top_k(vote_entropy(arr["member_probs"][:, unl]), 6, rng=np.random.default_rng(0))])


def test_missing_and_inconsistent_arrays_are_named(files):
    d, arr = files
    only = Precomputed(probs=load_npy(d / "probs.npy"))
    with pytest.raises(ValueError, match="member_probs"):
        make_strategy("qbc").select(only, only.x, Pool.empty(N), 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="number of classes"):
        Precomputed(probs=arr["probs"], mc_probs=arr["mc_probs"][..., :2])
    with pytest.raises(ValueError, match="number of items"):
        Precomputed(probs=arr["probs"], member_probs=arr["member_probs"][:, :5])
    with pytest.raises(ValueError, match="member_probs must have 3"):
        Precomputed(member_probs=arr["probs"])
    assert MCDropout(n_draws=T).select(Precomputed(mc_probs=arr["mc_probs"]), np.arange(N), Pool.empty(N), 2,
                                       rng=np.random.default_rng(0)).shape == (2,)
