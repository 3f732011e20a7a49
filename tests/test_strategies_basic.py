import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise.pool import Pool
from pickwise.scores import entropy, margin
from pickwise.strategies import MCDropout, Random, Uncertainty


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    return FakeModel(5, 3), x, pool


@pytest.mark.parametrize(
    "make",
    [
        Random,
        lambda: Uncertainty(score="least_confidence"),
        lambda: Uncertainty(score="margin"),
        lambda: Uncertainty(score=entropy, chunk_size=7),
        lambda: MCDropout(score="bald", n_draws=5, chunk_size=6),
        lambda: MCDropout(score="variation_ratio", n_draws=5),
        lambda: MCDropout(score="mean_std", n_draws=5),
        lambda: MCDropout(score="max_entropy", n_draws=5),
    ],
)
def test_contract(make, setting):
    check_strategy_contract(make, *setting)


def test_uncertainty_picks_the_highest_scores(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    s = margin(model.predict_proba(x[unl]))
    sel = Uncertainty(score="margin").select(model, x, pool, 4, rng=np.random.default_rng(0))
    assert sorted(s[np.searchsorted(unl, sel)]) == sorted(np.sort(s)[-4:])


def test_chunked_scores_equal_unchunked(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    a = Uncertainty(score="entropy", chunk_size=3).scores(model, x, unl)
    b = Uncertainty(score="entropy", chunk_size=10_000).scores(model, x, unl)
    np.testing.assert_array_equal(a, b)
    c = MCDropout(n_draws=4, chunk_size=3).scores(model, x, unl, rng=np.random.default_rng(5))
    d = MCDropout(n_draws=4, chunk_size=10_000).scores(model, x, unl, rng=np.random.default_rng(5))
    np.testing.assert_allclose(c, d, rtol=0, atol=1e-12)


def test_unknown_score_name_is_rejected():
    with pytest.raises(ValueError, match="nonsense"):
        Uncertainty(score="nonsense")
    with pytest.raises(ValueError, match="n_draws"):
        MCDropout(n_draws=0)
