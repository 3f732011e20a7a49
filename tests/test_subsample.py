import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise import Pool, Uncertainty, initial_pool, pool_rounds
from pickwise.strategies import MCDropout
from pickwise.wrappers import Subsample, sample_without_replacement


@pytest.fixture
def setting():
    x, y = blobs(60, 5, 3, seed=2)
    pool = Pool.empty(60, n_classes=3).label(np.arange(0, 60, 6), y[::6])
    return FakeModel(5, 3, seed=1), x, y, pool


def test_contract(setting):
    model, x, _, pool = setting
    check_strategy_contract(lambda: Subsample(Uncertainty(score="margin"), alpha=10), model, x, pool)
    check_strategy_contract(lambda: Subsample(MCDropout(n_draws=3), alpha=0.5, weighting="power"), model, x, pool)


def _second_round(model, x, y, pool, wrapper, k=3, seed=0):
    first = wrapper.select(model, x, pool, k, rng=np.random.default_rng(seed))
    pool2 = pool.label(first, y[first])
    return wrapper, pool2, wrapper.select(model, x, pool2, k, rng=np.random.default_rng(seed + 1))


def test_values_are_stored_by_sample_index(setting):
    model, x, y, pool = setting
    inner = Uncertainty(score="entropy")
    w = Subsample(inner, alpha=12)
    w.select(model, x, pool, 3, rng=np.random.default_rng(0))
    unl = pool.unlabeled
    np.testing.assert_array_equal(w.values[unl], inner.scores(model, x, unl))
    assert np.all(np.isnan(w.values[pool.labeled]))
    # a second round: new values at exactly the candidates' own indices
    model2 = FakeModel(5, 3, seed=9)  # a "retrained" model gives different scores
    pool2 = pool.label(np.array([1, 2, 3]), y[[1, 2, 3]])
    before = w.values.copy()
    w.select(model2, x, pool2, 3, rng=np.random.default_rng(1))
    changed = np.flatnonzero(~np.isclose(before, w.values, equal_nan=True))
    assert w.last_n_scored == 12
    fresh = inner.scores(model2, x, pool2.unlabeled)
    lookup = dict(zip(pool2.unlabeled.tolist(), fresh))
    assert len(changed) > 0
    for i in changed:
        assert w.values[i] == lookup[i]


def test_alpha_all_equals_the_unwrapped_strategy(setting):
    model, x, y, pool = setting
    for inner in (Uncertainty(score="margin"), MCDropout(n_draws=4)):
        for seed in range(3):
            w = Subsample(inner, alpha=1.0)
            a = w.select(model, x, pool, 5, rng=np.random.default_rng(seed))
            b = inner.select(model, x, pool, 5, rng=np.random.default_rng(seed))
            np.testing.assert_array_equal(a, b)
            pool2 = pool.label(a, y[a])
            a2 = w.select(model, x, pool2, 5, rng=np.random.default_rng(seed + 10))
            b2 = inner.select(model, x, pool2, 5, rng=np.random.default_rng(seed + 10))
            np.testing.assert_array_equal(a2, b2)


def test_low_temperature_takes_the_historical_top(setting):
    model, x, y, pool = setting
    w = Subsample(Uncertainty(score="entropy"), alpha=8, tau=1e-9)
    w.select(model, x, pool, 2, rng=np.random.default_rng(0))
    hist = w.values.copy()
    pool2 = pool.label(np.array([1, 2]), y[[1, 2]])
    calls = []

    class Spy(Uncertainty):
        def scores(self, model, x, indices, *, rng=None):
            calls.append(np.asarray(indices).copy())
            return super().scores(model, x, indices, rng=rng)

    w.inner = Spy(score="entropy")
    w.select(model, x, pool2, 2, rng=np.random.default_rng(5))
    unl = pool2.unlabeled
    expected_top = unl[np.argsort(-hist[unl], kind="stable")[:8]]
    assert set(calls[0].tolist()) == set(expected_top.tolist())


def test_high_temperature_draws_uniform_candidates():
    # with tau huge, every item is a candidate equally often whatever its value
    log_w = np.linspace(0, 50, 20) / 1e12
    rng = np.random.default_rng(0)
    counts = np.zeros(20)
    trials = 4000
    for _ in range(trials):
        counts[sample_without_replacement(log_w, 5, rng=rng)] += 1
    expected = trials * 5 / 20
    # binomial standard deviation sqrt(n p (1-p)); 5 sigma
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(trials * 0.25 * 0.75))


def test_gumbel_sampling_matches_softmax_first_draw():
    log_w = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(1)
    trials = 20000
    firsts = np.bincount([sample_without_replacement(log_w, 2, rng=rng)[0] for _ in range(trials)], minlength=4)
    p = np.exp(log_w) / np.exp(log_w).sum()
    assert np.all(np.abs(firsts - trials * p) < 5 * np.sqrt(trials * p * (1 - p)))


def test_pruning_excludes_low_values(setting):
    model, x, y, pool = setting
    w = Subsample(Uncertainty(score="entropy"), alpha=5, prune_below=np.inf)
    w.select(model, x, pool, 2, rng=np.random.default_rng(0))
    # everything is below +inf, so pruning would leave < k items: it falls back to all
    assert w.select(model, x, pool.label([1], [y[1]]), 2, rng=np.random.default_rng(0)).shape == (2,)
    thr = np.nanmedian(w.values)
    w2 = Subsample(Uncertainty(score="entropy"), alpha=1000, prune_below=thr)
    w2.select(model, x, pool, 2, rng=np.random.default_rng(0))
    hist = w2.values.copy()
    sel = w2.select(FakeModel(5, 3, seed=4), x, pool, 2, rng=np.random.default_rng(1))
    scored = np.flatnonzero(~np.isclose(hist, w2.values, equal_nan=True))
    assert np.all(hist[scored] >= thr) and np.all(hist[sel] >= thr)


def test_loop_records_items_scored(setting):
    _, x, y, _ = setting
    pool = initial_pool(60, 6, y, seed=0, n_classes=3)
    recs = list(
        pool_rounds(
            lambda: FakeModel(5, 3), Subsample(Uncertainty(), alpha=10), x, pool, y, k=4, rounds=3, seed=0
        )
    )
    assert [r.n_scored for r in recs] == [54, 10, 10, 0]


def test_resume_restores_history(setting, tmp_path):
    _, x, y, _ = setting
    pool = initial_pool(60, 6, y, seed=0, n_classes=3)

    def run(path, n=None):
        g = pool_rounds(lambda: FakeModel(5, 3), Subsample(Uncertainty(), alpha=10), x, pool, y, k=4, rounds=4, seed=0, records=path)
        out = []
        for r in g:
            out.append(r.without_timings())
            if n is not None and len(out) == n:
                break
        return out

    full = run(tmp_path / "a.jsonl")
    run(tmp_path / "b.jsonl", n=2)
    assert run(tmp_path / "b.jsonl") == full


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(alpha=0), "alpha as a count must be >= 1; got 0"),
        (dict(alpha=1.5), r"alpha as a fraction must lie in \(0, 1\]; got 1.5"),
        (dict(alpha=5, tau=0.0), "tau must be a positive finite number; got 0.0"),
        (dict(alpha=5, weighting="cubic"), "'cubic'"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        Subsample(Uncertainty(), **kw)
    with pytest.raises(ValueError, match="score-based"):
        Subsample(object(), alpha=3)
