import itertools

import numpy as np
import pytest

from pickwise.select.stochastic import stochastic_batch, stochastic_log_weights


def plackett_luce(w: np.ndarray, order) -> float:
    """Probability of drawing ``order`` first, sequentially without replacement ∝ w."""
    left = w.astype(float).copy()
    prob = 1.0
    for i in order:
        prob *= left[i] / left.sum()
        left[i] = 0.0
    return prob


@pytest.mark.parametrize(("mode", "beta"), [("softmax", 1.5), ("power", 2.0), ("softrank", 1.0)])
def test_ordered_pairs_follow_sequential_sampling(mode, beta):
    s = np.array([0.2, 1.0, 0.5, 0.9])
    if mode == "softmax":
        w = np.exp(beta * s)
    elif mode == "power":
        w = s**beta
    else:
        w = np.argsort(np.argsort(-s)) + 1.0
        w = w**-beta
    trials = 4000
    rng = np.random.default_rng(11)
    counts: dict[tuple[int, int], int] = {}
    for _ in range(trials):
        pair = tuple(stochastic_batch(s, 2, rng=rng, mode=mode, beta=beta).tolist())
        counts[pair] = counts.get(pair, 0) + 1
    for pair in itertools.permutations(range(4), 2):
        p = plackett_luce(w, pair)
        sd = np.sqrt(trials * p * (1 - p))
        assert abs(counts.get(pair, 0) - trials * p) <= 4.5 * sd + 1, (pair, counts.get(pair, 0), trials * p)


def test_zero_weights_come_last_and_beta_zero_is_uniform():
    s = np.array([0.0, 0.3, 0.0, 0.7, 0.0])
    for seed in range(20):
        sel = stochastic_batch(s, 5, rng=np.random.default_rng(seed), mode="power")
        assert set(sel[:2].tolist()) == {1, 3}
    assert np.all(stochastic_log_weights(s, mode="softmax", beta=0.0) == 0)


def test_reproducible_and_distinct():
    s = np.random.default_rng(0).random(30)
    a = stochastic_batch(s, 10, rng=np.random.default_rng(5))
    b = stochastic_batch(s, 10, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 10 and a.dtype == np.int64


def test_large_beta_approaches_top_k():
    s = np.array([0.1, 0.9, 0.4, 0.8, 0.3])
    np.testing.assert_array_equal(stochastic_batch(s, 2, rng=np.random.default_rng(0), beta=1e4), [1, 3])


def test_bad_arguments():
    with pytest.raises(ValueError, match="-0.5"):
        stochastic_batch(np.array([-0.5, 1.0]), 1, rng=np.random.default_rng(0), mode="power")
    with pytest.raises(ValueError, match="boltzmann"):
        stochastic_batch(np.ones(3), 1, rng=np.random.default_rng(0), mode="boltzmann")
    with pytest.raises(ValueError, match="-1"):
        stochastic_batch(np.ones(3), 1, rng=np.random.default_rng(0), beta=-1)
    with pytest.raises(ValueError, match="k=4"):
        stochastic_batch(np.ones(3), 4, rng=np.random.default_rng(0))
