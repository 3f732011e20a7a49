"""Issue 16, the small selection costs: blocked float32 BALD against the plain float64 formula,
core-set without a float64 copy (exact picks), and MC draws for a subset of the pool."""

from __future__ import annotations

import numpy as np
import pytest

from pickwise import Pool
from pickwise.cli import main
from pickwise.precomputed import Precomputed, check_mc_ids
from pickwise.scores import bald
from pickwise.select.kcenter import kcenter_greedy
from pickwise.select.topk import top_k
from pickwise.strategies import BatchBALD, CoreSet, MCDropout


def plain_bald(draws: np.ndarray) -> np.ndarray:
    """The straightforward float64 formula: H(mean_t p_t) − mean_t H(p_t), 0 log 0 = 0."""
    d = np.asarray(draws, dtype=np.float64)

    def h(p: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)

    return np.maximum(h(d.mean(axis=0)) - h(d).mean(axis=0), 0.0)


def draws(seed: int, t: int = 7, n: int = 3000, k: int = 5, zeros: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.dirichlet(np.full(k, 0.3), size=(t, n))
    if zeros:  # exact zeros and one-hot rows: 0 log 0 must be 0
        d[:, :40] = 0.0
        d[:, :40, 0] = 1.0
        d[0, 40:80] = np.eye(k)[rng.integers(k, size=40)]
    return d


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bald_float64_equals_the_plain_formula_exactly(seed):
    d = draws(seed)
    np.testing.assert_array_equal(bald(d), plain_bald(d))
    np.testing.assert_array_equal(bald(d, n_items=d.shape[1]), plain_bald(d))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bald_float32_matches_the_plain_formula_and_its_top_k(seed):
    d32 = draws(seed).astype(np.float32)
    fast, ref = bald(d32), plain_bald(d32)
    assert fast.dtype == np.float64
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-7)
    assert np.median(np.abs(fast - ref) / np.maximum(ref, 1e-12)) < 1e-6
    for k in (1, 10, 100):
        np.testing.assert_array_equal(top_k(fast, k, rng=np.random.default_rng(seed)),
                                      top_k(ref, k, rng=np.random.default_rng(seed)))


def test_bald_checks_every_block_and_names_positions():
    d = draws(3, n=2000).astype(np.float32)
    bad = d.copy()
    bad[2, 1700, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* index \(2, 1700, 1\)"):
        bald(bad)
    bad = d.copy()
    bad[1, 1500] *= 1.01
    with pytest.raises(ValueError, match=r"row \(1, 1500\) sums to"):
        bald(bad)
    bad = d.copy()
    bad[0, 1900, 0] = -0.5
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        bald(bad)
    # within tolerance outside [0, 1]: clipped as the plain check clips
    near = d.astype(np.float64)
    near[0, 5] = 0.0
    near[0, 5, 0], near[0, 5, 1] = 1.00005, -0.00005
    np.testing.assert_array_equal(bald(near), plain_bald(np.clip(near, 0, 1)))
    with pytest.raises(ValueError, match="put the n_draws axis first"):
        bald(np.swapaxes(d, 0, 1), n_items=d.shape[1])


def test_mcdropout_on_precomputed_float32_picks_like_the_plain_formula():
    d32 = draws(4, t=10, n=5000).astype(np.float32)
    model = Precomputed(mc_probs=d32)
    pool = Pool.empty(5000).label(np.arange(0, 5000, 7), np.zeros(715, dtype=np.int64))
    picks = MCDropout(n_draws=10, chunk_size=512).select(model, model.x, pool, 50, rng=np.random.default_rng(0))
    rng = np.random.default_rng(0)
    rng.integers(2**31 - 1)  # the dropout seed MCDropout draws first
    unl = pool.unlabeled
    np.testing.assert_array_equal(picks, unl[top_k(plain_bald(d32[:, unl]), 50, rng=rng)])


# ------------------------------------------------------------------------------------- core-set


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("labelled", [0, 30])
def test_kcenter_float32_exact_equals_float64_picks(seed, labelled):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(6000, 48)) + rng.integers(0, 4, size=(6000, 1)) * 3).astype(np.float32)
    lab = x[:labelled] + np.float32(0.01)
    want = kcenter_greedy(x.astype(np.float64), 40, centres=lab.astype(np.float64), rng=np.random.default_rng(5))
    got = kcenter_greedy(x, 40, centres=lab, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(got, want)
    fast = kcenter_greedy(x, 40, centres=lab, rng=np.random.default_rng(5), exact=False)
    assert fast.shape == (40,) and np.unique(fast).shape == (40,)


def test_coreset_keeps_float32_embeddings_and_the_float64_picks(monkeypatch):
    from pickwise.strategies import batch

    rng = np.random.default_rng(2)
    emb = rng.normal(size=(3000, 16)).astype(np.float32)
    pool = Pool.empty(3000).label(np.arange(10), np.zeros(10, dtype=np.int64))
    seen = []
    real = batch.kcenter_greedy
    monkeypatch.setattr(batch, "kcenter_greedy", lambda x, *a, **kw: seen.append(x.dtype) or real(x, *a, **kw))
    model32 = Precomputed(embeddings=emb)
    auto = CoreSet().select(model32, model32.x, pool, 25, rng=np.random.default_rng(0))
    model64 = Precomputed(embeddings=emb.astype(np.float64))
    ref = CoreSet(dtype="float64").select(model64, model64.x, pool, 25, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(auto, ref)
    assert seen == [np.float32, np.float64]
    with pytest.raises(ValueError, match="exact must be True or False"):
        CoreSet(exact="yes")


# ------------------------------------------------------------------------- MC draws for a subset


def subset_case(seed: int = 0, n: int = 400, m: int = 120, t: int = 6, k: int = 4):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    mc_ids = rng.choice(n, size=m, replace=False)  # unsorted on purpose
    mc = rng.dirichlet(np.full(k, 0.5), size=(t, m)).astype(np.float32)
    return probs, mc, mc_ids


@pytest.mark.parametrize("strategy", [MCDropout(n_draws=6), MCDropout(score="variation_ratio", n_draws=6),
                                      BatchBALD(n_draws=6)])
def test_subset_selection_equals_the_sliced_pool_mapped_back(strategy):
    probs, mc, mc_ids = subset_case()
    model = Precomputed(probs=probs, mc_probs=mc, mc_ids=mc_ids)
    assert np.array_equal(model.mc_items, np.sort(mc_ids))
    others = np.setdiff1d(np.arange(400), mc_ids)
    pool = Pool.empty(400).label(others, np.zeros(others.shape[0], dtype=np.int64))
    got = strategy.select(model, model.x, pool, 8, rng=np.random.default_rng(1))
    order = np.argsort(mc_ids)
    sliced = Precomputed(mc_probs=mc[:, order])
    want = strategy.select(sliced, sliced.x, Pool.empty(120), 8, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(got, mc_ids[order][want])
    # outside the subset: a clear error naming the item
    missing = int(others[0])
    with pytest.raises(ValueError, match=rf"no MC draws .*\[{missing}\]"):
        model.predict_proba_mc(np.array([missing]), 6, seed=0)
    # other strategies still see the whole pool
    assert model.predict_proba(np.arange(400)).shape == (400, 4)


def test_subset_ids_are_validated():
    probs, mc, mc_ids = subset_case()
    with pytest.raises(ValueError, match=r"outside the pool's 0 \.\. 399: \[400\]"):
        Precomputed(probs=probs, mc_probs=mc, mc_ids=np.r_[mc_ids[:-1], 400])
    dup = mc_ids.copy()
    dup[5] = dup[9]
    with pytest.raises(ValueError, match=rf"more than once .*\[{dup[9]}\]"):
        Precomputed(probs=probs, mc_probs=mc, mc_ids=dup)
    with pytest.raises(ValueError, match="holds 119 ids but mc_probs has shape"):
        Precomputed(probs=probs, mc_probs=mc, mc_ids=mc_ids[:-1])
    with pytest.raises(ValueError, match=r"looks like \(M, T, K\)"):
        check_mc_ids(mc_ids, (120, 6, 4), 400)
    with pytest.raises(ValueError, match="integer item indices"):
        Precomputed(probs=probs, mc_probs=mc, mc_ids=mc_ids.astype(float))
    with pytest.raises(ValueError, match="give the number of items"):
        Precomputed(mc_probs=mc, mc_ids=mc_ids)
    with pytest.raises(ValueError, match="pass mc_probs too"):
        Precomputed(probs=probs, mc_ids=mc_ids)
    bad = mc.copy()
    bad[2, 7, 0] = np.nan
    model = Precomputed(probs=probs, mc_probs=bad, mc_ids=mc_ids)
    with pytest.raises(ValueError, match=rf"draw 2, item {mc_ids[7]}, column 0"):
        model.predict_proba_mc(np.array([mc_ids[7]]), 6, seed=0)


def test_cli_select_with_mc_ids(tmp_path, capsys):
    probs, mc, mc_ids = subset_case(3)
    for name, arr in (("probs", probs), ("mc", mc), ("mc_ids", mc_ids)):
        np.save(tmp_path / f"{name}.npy", arr)
    base = ["select", "--probs", str(tmp_path / "probs.npy"), "--mc-probs", str(tmp_path / "mc.npy"),
            "--mc-ids", str(tmp_path / "mc_ids.npy"), "--k", "5", "--no-progress"]
    assert main([*base, "--strategy", "bald", "--out", str(tmp_path / "b.csv")]) == 0
    rows = np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1, usecols=(1,), dtype=np.int64)
    order = np.argsort(mc_ids)
    sliced = Precomputed(mc_probs=mc[:, order])
    want = MCDropout(n_draws=6).select(sliced, sliced.x, Pool.empty(120), 5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(rows, mc_ids[order][want])
    # a strategy over probabilities still chooses from the whole pool
    assert main([*base, "--strategy", "entropy", "--out", str(tmp_path / "e.csv")]) == 0
    # bad ids: one line on stderr, exit status 2
    np.save(tmp_path / "bad.npy", np.r_[mc_ids[:-1], 10_000])
    capsys.readouterr()
    bad = [a if a != str(tmp_path / "mc_ids.npy") else str(tmp_path / "bad.npy") for a in base]
    assert main([*bad, "--strategy", "bald", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pickwise select: error: --mc-ids") and "[10000]" in err and err.count("\n") == 1
    assert main([*base, "--strategy", "bald", "--k", "121", "--out", str(tmp_path / "x.csv")]) == 2
    assert "without MC draws" in capsys.readouterr().err
    # ids by name through --ids
    (tmp_path / "ids.txt").write_text("\n".join(f"item{i}" for i in range(400)))
    (tmp_path / "mc_ids.txt").write_text("\n".join(f"item{i}" for i in mc_ids))
    named = [*base[:-5], "--mc-ids", str(tmp_path / "mc_ids.txt"), "--ids", str(tmp_path / "ids.txt"),
             "--k", "5", "--no-progress"]
    assert main([*named, "--strategy", "bald", "--out", str(tmp_path / "n.csv")]) == 0
    text = (tmp_path / "n.csv").read_text().splitlines()[1:]
    assert [line.split(",")[2] for line in text] == [f"item{i}" for i in mc_ids[order][want]]
