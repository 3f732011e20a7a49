"""VeSSAL: agreement with the direct transcription, the incremental trace, the fast path, guards."""

import warnings

import numpy as np
import pytest
from fakes import FakeModel, blobs
from hypothesis import given, settings
from hypothesis import strategies as st

from pickwise.protocols import Embedder, GradEmbedder
from pickwise.stream import VeSSAL, grad_features
from pickwise.stream.reference import vessal_direct


def stream(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    # heavy-tailed norms, as gradient embeddings have
    return rng.normal(size=(n, dim)) * rng.gamma(1.0, size=(n, 1))


def run_items(sel, z, rng):
    return np.array([sel.observe(zi, rng=rng) for zi in z])


def run_chunks(sel, z, rng, size):
    return np.concatenate([sel.observe_many(z[a : a + size], rng=rng) for a in range(0, len(z), size)])


def direct_trace(sel):
    st_ = sel.state_dict()
    a = (st_["second_moment_sum"] + st_["buffer"].T @ st_["buffer"]) / int(st_["t"])
    return float(np.trace(a @ st_["sigma_inv"]))


def test_uniform_draws_are_one_per_item_in_order():
    # the premise of "same decisions under the same draws": Generator.random(n) == n calls
    a = np.random.default_rng(9).random(257)
    r = np.random.default_rng(9)
    np.testing.assert_array_equal(a, [r.random() for _ in range(257)])


@pytest.mark.parametrize("rate", [{"q": 0.15}, {"budget": 40, "length": 300}, {"q": 1.0}, {"q": 0.3, "budget": 25}])
def test_equals_the_direct_transcription(rate):
    z = stream(300, 10, seed=1)
    ref = vessal_direct(z, np.random.default_rng(5).random(300), **rate)
    items = VeSSAL(refresh_every=13, **rate)
    chunks = VeSSAL(refresh_every=13, **rate)
    np.testing.assert_array_equal(run_items(items, z, np.random.default_rng(5)), ref.decisions)
    np.testing.assert_array_equal(run_chunks(chunks, z, np.random.default_rng(5), 37), ref.decisions)
    for sel in (items, chunks):
        state = sel.state_dict()
        np.testing.assert_allclose(state["sigma_inv"], ref.sigma_inv, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose((state["second_moment_sum"] + state["buffer"].T @ state["buffer"]) / 300, ref.a,
                                   rtol=1e-10, atol=1e-12)
        assert sel.n_queried == ref.decisions.sum()


def test_incremental_trace_equals_direct_trace():
    z = stream(400, 8, seed=2)
    for path in ("items", "chunks"):
        sel = VeSSAL(q=0.2, refresh_every=10_000)  # no exact refresh: the incremental trace alone
        rng = np.random.default_rng(0)
        for a in range(0, 400, 50):
            if path == "items":
                run_items(sel, z[a : a + 50], rng)
            else:
                sel.observe_many(z[a : a + 50], rng=rng)
            assert sel.trace == pytest.approx(direct_trace(sel), rel=1e-9)
        assert sel.n_queried > 30


def test_refresh_recomputes_the_trace_exactly():
    sel = VeSSAL(q=0.3, refresh_every=25)
    sel.observe_many(stream(100, 6), rng=np.random.default_rng(0))
    assert sel.state_dict()["buffer"].shape[0] == 0
    assert sel.trace == pytest.approx(direct_trace(sel), rel=1e-13)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 70),
    dim=st.integers(1, 7),
    q=st.floats(0.05, 1.0),
    refresh=st.integers(1, 20),
    cuts=st.lists(st.integers(0, 70), max_size=5),
    seed=st.integers(0, 2**16),
    adaptive=st.booleans(),
)
def test_chunked_equals_item_by_item_property(n, dim, q, refresh, cuts, seed, adaptive):
    z = stream(n, dim, seed)
    rate = {"budget": max(1, int(q * n)), "length": n} if adaptive else {"q": q}
    a = VeSSAL(refresh_every=refresh, **rate)
    b = VeSSAL(refresh_every=refresh, **rate)
    single = run_items(a, z, np.random.default_rng(seed))
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    rng = np.random.default_rng(seed)
    chunked = np.concatenate([b.observe_many(z[s:e], rng=rng) for s, e in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_array_equal(single, chunked)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-9, atol=1e-9, err_msg=k)


def test_many_queries_in_one_block():
    # q = 1 at small t queries nearly everything: exercises the in-block corrections heavily
    z = stream(200, 30, seed=4)
    ref = vessal_direct(z, np.random.default_rng(1).random(200), q=1.0)
    got = VeSSAL(q=1.0, refresh_every=200).observe_many(z, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(got, ref.decisions)
    assert got.sum() > 60


def test_zero_embedding_guard():
    z = np.zeros((400, 5))
    z[300:] = stream(100, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sel = VeSSAL(q=0.5)
        d = sel.observe_many(z, rng=np.random.default_rng(0))
        assert 120 <= d[:300].sum() <= 180  # while every g so far is 0: query with probability q
        assert VeSSAL(q=1.0).observe(np.zeros(5), rng=np.random.default_rng(0)) is True
        assert np.isfinite(sel.trace) and sel.trace > 0


def test_adaptive_rate_follows_the_diagonal():
    n, budget = 2000, 200
    z = stream(n, 12, seed=6)
    d = VeSSAL(budget=budget, length=n).observe_many(z, rng=np.random.default_rng(2))
    cum = np.cumsum(d)
    for f in (0.25, 0.5, 0.75):
        assert abs(cum[int(f * n) - 1] - f * budget) <= 0.1 * budget
    assert budget - 5 <= cum[-1] <= budget


def test_state_is_float64_and_guards():
    sel = VeSSAL(q=0.5)
    sel.observe_many(stream(20, 4).astype(np.float32), rng=np.random.default_rng(0))
    assert all(v.dtype in (np.float64, np.int64) for v in sel.state_dict().values())
    with pytest.raises(ValueError, match="5 columns|shape"):
        sel.observe_many(stream(3, 5), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="600"):
        VeSSAL(q=0.1, max_dim=512).observe_many(np.ones((2, 600)), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="refresh_every"):
        VeSSAL(q=0.5, refresh_every=7).load_state_dict(sel.state_dict())
    with pytest.raises(ValueError, match="lam"):
        VeSSAL(q=0.5, lam=0.0)
    with pytest.raises(ValueError, match="embedding"):
        VeSSAL(q=0.5, embedding="sorted")
    with pytest.raises(ValueError, match="no rate"):
        VeSSAL().observe(np.ones(3), rng=np.random.default_rng(0))


def test_featurize_uses_the_chosen_embedding():
    x, _ = blobs(12, 5, 3)
    model = FakeModel(5, 3, width=4)
    probs, h = model.grad_factors(x)
    np.testing.assert_array_equal(VeSSAL(q=0.1).featurize(model, x), grad_features(probs, h))
    np.testing.assert_array_equal(VeSSAL(q=0.1, embedding="pen").featurize(model, x), h)
    assert VeSSAL(q=0.1).needs == (GradEmbedder,) and VeSSAL(q=0.1, embedding="pen").needs == (Embedder,)
