"""pickwise.engine on the local engine: the sharded selections equal the single-machine functions.

Every check compares against pickwise's own single-machine functions (top_k, kmeanspp_seeding,
kcenter_greedy, BADGE.select, CoreSet.select; each has its own plain reference in its test file)
on the concatenated shards, for several shard counts, including the generator's state afterwards.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise import BADGE, CoreSet, Pool
from pickwise.embeddings import GradEmbedding, gradient_factor
from pickwise.engine import (
    Engine,
    LocalEngine,
    npy_loaders,
    shard_bounds,
    sharded_kcenter,
    sharded_kmeanspp,
    sharded_top_k,
    split_arrays,
)
from pickwise.select import kcenter_greedy, kmeanspp_seeding, top_k

SHARDS = (1, 2, 3, 5)


def same_rng_after(r1: np.random.Generator, r2: np.random.Generator) -> bool:
    # the next draws agree (MT19937's state holds an array, so compare what it produces)
    return np.array_equal(r1.random(4), r2.random(4)) and np.array_equal(
        r1.integers(2**32, size=3, dtype=np.uint32), r2.integers(2**32, size=3, dtype=np.uint32)
    )


def entropy(state: dict) -> np.ndarray:
    p = state["probs"]
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


# ------------------------------------------------------------------------------------- plumbing


def test_import_pickwise_and_engine_do_not_import_ray():
    code = "import sys, pickwise, pickwise.engine; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shard_bounds_cover_the_rows_in_order():
    for n in (1, 7, 10):
        for s in range(1, n + 1):
            b = shard_bounds(n, s)
            assert b[0][0] == 0 and b[-1][1] == n and all(b[i][1] == b[i + 1][0] for i in range(s - 1))
            assert max(hi - lo for lo, hi in b) - min(hi - lo for lo, hi in b) <= 1
    with pytest.raises(ValueError, match="n_shards=4"):
        shard_bounds(3, 4)
    with pytest.raises(ValueError, match="same number of rows"):
        split_arrays({"a": np.zeros(3), "b": np.zeros(4)}, 1)


def test_local_engine_operations():
    eng = LocalEngine.from_arrays({"v": np.arange(10.0)}, n_shards=3)
    assert isinstance(eng, Engine)
    assert eng.sizes == (3, 3, 4) and list(eng.offsets) == [0, 3, 6]
    assert eng.map(lambda s, a: float(s["v"].sum()) * a, 2) == [6.0, 24.0, 60.0]
    assert eng.call(1, lambda s, _: s["offset"]) == 3
    # the fold runs prepare everywhere first, then shard by shard in order
    carry, res = eng.scan(lambda s, c: (c + s["w"].sum(), c), 0.0, prepare=lambda s, a: s.update(w=s["v"] * a), arg=10)
    assert carry == 450.0 and res == [0.0, 30.0, 150.0]


# ---------------------------------------------------------------------------------------- top-k


@pytest.mark.parametrize("n_shards", SHARDS)
@pytest.mark.parametrize("k", [0, 1, 37, 200])
def test_top_k_equals_top_k_with_ties(n_shards, k):
    rng = np.random.default_rng(3)
    s = np.round(rng.normal(size=200), 1)  # many ties straddle every cut
    eng = LocalEngine.from_arrays({"score": s}, n_shards=n_shards)
    r1, r2 = np.random.default_rng(11), np.random.default_rng(11)
    assert np.array_equal(sharded_top_k(eng, k, rng=r1), top_k(s, k, rng=r2))
    assert same_rng_after(r1, r2)


@pytest.mark.parametrize("bitgen", [np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_top_k_other_bit_generators(bitgen):
    s = np.repeat(np.arange(30.0), 4)
    eng = LocalEngine.from_arrays({"score": s}, n_shards=3)
    r1, r2 = np.random.Generator(bitgen(7)), np.random.Generator(bitgen(7))
    assert np.array_equal(sharded_top_k(eng, 17, rng=r1), top_k(s, 17, rng=r2))
    assert same_rng_after(r1, r2)


def test_top_k_keeps_a_buffered_32bit_draw():
    s = np.zeros(50)
    r1, r2 = np.random.default_rng(2), np.random.default_rng(2)
    r1.integers(2**31, dtype=np.uint32), r2.integers(2**31, dtype=np.uint32)  # leaves half a 64-bit draw
    eng = LocalEngine.from_arrays({"score": s}, n_shards=2)
    assert np.array_equal(sharded_top_k(eng, 10, rng=r1), top_k(s, 10, rng=r2))
    assert same_rng_after(r1, r2)


def test_top_k_score_function_and_float32():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=300).astype(np.float32)
    eng = LocalEngine.from_arrays({"probs": probs}, n_shards=3)
    ref = top_k(entropy({"probs": probs}), 25, rng=np.random.default_rng(1))
    assert np.array_equal(sharded_top_k(eng, 25, rng=np.random.default_rng(1), score=entropy), ref)


def test_top_k_errors_name_the_value():
    s = np.arange(10.0)
    s[7] = np.nan
    eng = LocalEngine.from_arrays({"score": s}, n_shards=3)
    with pytest.raises(ValueError, match="nan at position 7"):
        sharded_top_k(eng, 2, rng=np.random.default_rng(0))
    eng = LocalEngine.from_arrays({"score": np.arange(10.0)}, n_shards=2)
    with pytest.raises(ValueError, match="k=11"):
        sharded_top_k(eng, 11, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="'entropy' is not an array"):
        sharded_top_k(eng, 1, rng=np.random.default_rng(0), score="entropy")
    with pytest.raises(ValueError, match="rng must be"):
        sharded_top_k(eng, 1, rng=0)


# ------------------------------------------------------------------------------ k-means++ (BADGE)


def factors(n: int, dtype=np.float64, seed: int = 0, dup: int = 1):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=n // dup)
    h = rng.normal(size=(n // dup, 7))
    a = gradient_factor(probs)
    return np.repeat(a, dup, axis=0).astype(dtype), np.repeat(h, dup, axis=0).astype(dtype)


@pytest.mark.parametrize("n_shards", SHARDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("prune", [True, False])
@pytest.mark.parametrize("sums", ["sequential", "parallel"])
def test_kmeanspp_equals_kmeanspp_seeding(n_shards, dtype, prune, sums):
    """"sequential" is exact by construction; "parallel" (two-level sampling) differs only where u·Σ
    lands within rounding of a row boundary, which none of these draws does."""
    a, h = factors(400, dtype)
    eng = LocalEngine.from_arrays({"a": a, "h": h}, n_shards=n_shards)
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    got = sharded_kmeanspp(eng, 80, rng=r1, prune=prune, sums=sums)
    assert np.array_equal(got, kmeanspp_seeding(GradEmbedding(a, h), 80, rng=r2, prune=prune))
    assert same_rng_after(r1, r2)


@pytest.mark.parametrize("n_shards", SHARDS)
@pytest.mark.parametrize("sums", ["sequential", "parallel"])
def test_kmeanspp_random_first_and_exhausted_mass(n_shards, sums):
    # 30 distinct rows, each 4 times: after 30 picks every D² is 0 and the picks go uniform
    a, h = factors(120, seed=1, dup=4)
    eng = LocalEngine.from_arrays({"a": a, "h": h}, n_shards=n_shards)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    got = sharded_kmeanspp(eng, 50, rng=r1, first="random", sums=sums)
    ref = kmeanspp_seeding(GradEmbedding(a, h), 50, rng=r2, first="random")
    assert np.array_equal(got, ref) and len(set(got)) == 50
    assert same_rng_after(r1, r2)


def test_kmeanspp_dense_embedding_and_empty_shard():
    x = np.random.default_rng(2).normal(size=(90, 6))
    eng = LocalEngine.from_loaders([
        lambda: {"a": np.ones((40, 1)), "h": x[:40]},
        lambda: {"a": np.ones((0, 1)), "h": x[:0]},
        lambda: {"a": np.ones((50, 1)), "h": x[40:]},
    ])
    assert eng.sizes == (40, 0, 50)
    ref = kmeanspp_seeding(x, 30, rng=np.random.default_rng(0))
    assert np.array_equal(sharded_kmeanspp(eng, 30, rng=np.random.default_rng(0)), ref)
    assert np.array_equal(sharded_kmeanspp(eng, 30, rng=np.random.default_rng(0), sums="parallel"), ref)


def test_two_level_sampling_draws_in_proportion_to_d2():
    """sums="parallel": the second pick's frequencies over many seeds follow D² to the first centre
    (a chi-square check against the exact probabilities; the first pick is the largest norm)."""
    x = np.array([[0.0], [1.0], [2.0], [4.0], [-3.0], [10.0]])
    eng = LocalEngine.from_arrays({"a": np.ones((6, 1)), "h": x}, n_shards=3)
    d2 = (x[:, 0] - 10.0) ** 2
    p = d2 / d2.sum()
    counts = np.bincount([sharded_kmeanspp(eng, 2, rng=np.random.default_rng(s), sums="parallel")[1]
                          for s in range(3000)], minlength=6)
    assert counts[5] == 0
    expected = 3000 * p[:5]
    chi2 = float(((counts[:5] - expected) ** 2 / expected).sum())
    assert chi2 < 18.5  # 4 degrees of freedom, p = 0.001


def test_badge_select_equals_sharded_kmeanspp():
    x, y = blobs(150, n_features=5, n_classes=3, seed=2)
    model = FakeModel(5, 3, seed=1)
    pool = Pool.empty(150, n_classes=3).label(np.arange(0, 150, 7), y[::7])
    unl = pool.unlabeled
    ref = BADGE().select(model, x, pool, 20, rng=np.random.default_rng(5))
    emb = BADGE().embedding(model, x, unl)
    for n_shards in (1, 3):
        eng = LocalEngine.from_arrays({"a": emb.a, "h": emb.h}, n_shards=n_shards)
        assert np.array_equal(unl[sharded_kmeanspp(eng, 20, rng=np.random.default_rng(5))], ref)


def test_kmeanspp_errors():
    a, h = factors(20)
    eng = LocalEngine.from_arrays({"a": a, "h": h}, n_shards=2)
    with pytest.raises(ValueError, match="k=21"):
        sharded_kmeanspp(eng, 21, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="first"):
        sharded_kmeanspp(eng, 2, rng=np.random.default_rng(0), first="max")
    with pytest.raises(ValueError, match="sums.*'tree'"):
        sharded_kmeanspp(eng, 2, rng=np.random.default_rng(0), sums="tree")
    with pytest.raises(ValueError, match="no array 'g'"):
        sharded_kmeanspp(eng, 2, rng=np.random.default_rng(0), a="g")
    mixed = LocalEngine([{"a": a[:10], "h": h[:10]}, {"a": a[10:].astype(np.float32), "h": h[10:].astype(np.float32)}])
    with pytest.raises(ValueError, match="agree on dtype"):
        sharded_kmeanspp(mixed, 2, rng=np.random.default_rng(0))
    h2 = h.copy()
    h2[13, 2] = np.inf
    with pytest.raises(ValueError, match="shard from position 10"):
        sharded_kmeanspp(LocalEngine.from_arrays({"a": a, "h": h2}, n_shards=2), 2, rng=np.random.default_rng(0))
    assert "_kpp_d2" not in eng.call(0, lambda s, _: s)  # working arrays are dropped, even after an error


# ---------------------------------------------------------------------------- k-center (core-set)


@pytest.mark.parametrize("n_shards", SHARDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("labelled", [0, 12])
def test_kcenter_equals_kcenter_greedy(n_shards, dtype, labelled):
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(400, 8)) + rng.integers(0, 4, size=(400, 1)) * 3).astype(dtype)
    c = rng.normal(size=(labelled, 8)) if labelled else None
    eng = LocalEngine.from_arrays({"x": x}, n_shards=n_shards)
    for prune in (True, False):
        r1, r2 = np.random.default_rng(8), np.random.default_rng(8)
        got = sharded_kcenter(eng, 60, centres=c, rng=r1, chunk_size=64, prune=prune)
        assert np.array_equal(got, kcenter_greedy(x, 60, centres=c, rng=r2, chunk_size=64, prune=prune))
        assert same_rng_after(r1, r2)


def test_kcenter_ties_and_duplicates():
    x = np.repeat(np.eye(3), 5, axis=0)  # 3 points, 5 copies each: ties at every pick
    for n_shards in (1, 2, 4):
        eng = LocalEngine.from_arrays({"x": x}, n_shards=n_shards)
        ref = kcenter_greedy(x, 10, rng=np.random.default_rng(1))
        assert np.array_equal(sharded_kcenter(eng, 10, rng=np.random.default_rng(1)), ref)


def test_coreset_select_equals_sharded_kcenter():
    x, y = blobs(150, n_features=5, n_classes=3, seed=4)
    model = FakeModel(5, 3, seed=2)
    pool = Pool.empty(150, n_classes=3).label(np.arange(0, 150, 9), y[::9])
    ref = CoreSet().select(model, x, pool, 15, rng=np.random.default_rng(0))
    emb, lab = model.embed(x[pool.unlabeled]), model.embed(x[pool.labeled])
    eng = LocalEngine.from_arrays({"x": emb}, n_shards=3)
    got = sharded_kcenter(eng, 15, centres=lab, rng=np.random.default_rng(0))
    assert np.array_equal(pool.unlabeled[got], ref)


def test_kcenter_errors():
    eng = LocalEngine.from_arrays({"x": np.zeros((10, 3))}, n_shards=2)
    with pytest.raises(ValueError, match=r"centres must have shape \(m, 3\)"):
        sharded_kcenter(eng, 2, centres=np.zeros((2, 4)), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k=0"):
        sharded_kcenter(eng, 0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="chunk_size"):
        sharded_kcenter(eng, 1, rng=np.random.default_rng(0), chunk_size=0)


def test_npy_loaders_read_their_rows(tmp_path):
    rng = np.random.default_rng(0)
    a, h = rng.normal(size=(50, 3)), rng.normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "h.npy", h)
    loaders = npy_loaders({"a": tmp_path / "a.npy", "h": tmp_path / "h.npy"}, 3)
    assert [(ld.start, ld.stop) for ld in loaders] == [(0, 16), (16, 33), (33, 50)]
    eng = LocalEngine.from_loaders(loaders)
    ref = kmeanspp_seeding(GradEmbedding(a, h), 12, rng=np.random.default_rng(3))
    assert np.array_equal(sharded_kmeanspp(eng, 12, rng=np.random.default_rng(3)), ref)
    np.save(tmp_path / "short.npy", a[:10])
    with pytest.raises(ValueError, match="same number of rows"):
        npy_loaders({"a": tmp_path / "a.npy", "b": tmp_path / "short.npy"}, 2)
    with pytest.raises(ValueError, match="no .npy file at"):
        npy_loaders({"a": tmp_path / "missing.npy"}, 2)


def _set_d2(state: dict, _: object) -> None:
    state["_kpp_d2"], state["_kpp_chosen"] = state["d2"], np.zeros(state["n"], dtype=bool)


@pytest.mark.parametrize("n_shards", SHARDS)
def test_the_sharded_running_sum_is_np_cumsum_bit_for_bit(n_shards):
    # magnitudes over 16 decades: a shard-local cumsum plus an offset would differ in the last bits
    from pickwise.engine.selection import _kpp_cumsum

    d2 = np.exp(np.random.default_rng(0).normal(scale=8.0, size=5000))
    eng = LocalEngine.from_arrays({"d2": d2}, n_shards=n_shards)
    total, _ = eng.scan(_kpp_cumsum, 0.0, prepare=_set_d2)
    got = np.concatenate(eng.map(lambda s, _: s["_kpp_cum"]))
    ref = np.cumsum(d2)
    assert np.array_equal(got, ref) and total == ref[-1]


# ------------------------------------------------------------------------------ lost shards


class _LostShard(ConnectionResetError):
    """Stands for a lost Ray actor in the fake engine below."""


class _FlakyEngine(LocalEngine):
    """A LocalEngine whose shard 1 is lost once, after ``fail_at`` calls of ``scan``."""

    fault_types = (_LostShard,)

    def __init__(self, shards, log: list[str], fail_at: int | None) -> None:
        super().__init__(shards)
        self._log, self._fail_at, self._scans = log, fail_at, 0
        log.append("build")

    def scan(self, *args, **kwargs):
        self._scans += 1
        if self._scans == self._fail_at:
            raise _LostShard("shard 1 lost")
        return super().scan(*args, **kwargs)

    def close(self) -> None:
        self._log.append("close")
        super().close()


def test_run_with_restarts_reruns_from_the_start_with_the_rng_restored():
    from pickwise.engine import run_with_restarts

    a, h = factors(200, seed=4)
    log: list[str] = []
    fails = iter([7, None])  # the first engine loses a shard at pick 7, the second runs through
    parts = split_arrays({"a": a, "h": h}, 3)
    rng = np.random.default_rng(11)
    picks = run_with_restarts(lambda: _FlakyEngine(parts, log, next(fails)),
                              lambda eng: sharded_kmeanspp(eng, 30, rng=rng), rng=rng)
    ref = np.random.default_rng(11)
    assert np.array_equal(picks, kmeanspp_seeding(GradEmbedding(a, h), 30, rng=ref))
    assert same_rng_after(rng, ref)
    assert log == ["build", "close", "build", "close"]
    # lost every time: the last loss propagates after `attempts` builds
    log.clear()
    with pytest.raises(_LostShard):
        run_with_restarts(lambda: _FlakyEngine(parts, log, 2), lambda eng: sharded_kmeanspp(eng, 30, rng=rng),
                          rng=rng, attempts=2)
    assert log == ["build", "close", "build", "close"]
    # any other error is raised at once (no rebuild), and the engine is closed
    log.clear()
    with pytest.raises(ValueError, match="k=500"):
        run_with_restarts(lambda: _FlakyEngine(parts, log, None), lambda eng: sharded_kmeanspp(eng, 500, rng=rng),
                          rng=rng)
    assert log == ["build", "close"]
