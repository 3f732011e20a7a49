import itertools

import numpy as np
import pytest

from pickwise.scores import bald
from pickwise.select.batchbald import batchbald_scores, batchbald_select, conditional_entropies


def _draws(seed, t=6, n=7, k=3, sharp=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=sharp, size=(t, n, k))
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def brute_force_mi(draws: np.ndarray, subset) -> float:
    """I(y_S; ω) = H(y_S) − Σ_s E_ω H(y_s|ω), the joint summed over every configuration explicitly."""
    t, _, k = draws.shape
    joint = 0.0
    for config in itertools.product(range(k), repeat=len(subset)):
        per_draw = np.ones(t)
        for s, y in zip(subset, config):
            per_draw = per_draw * draws[:, s, y]
        prob = per_draw.mean()
        if prob > 0:
            joint -= prob * np.log(prob)
    cond = sum(-(draws[:, s] * np.log(draws[:, s])).sum(-1).mean() for s in subset)
    return joint - cond


def reference_greedy(draws: np.ndarray, k: int) -> list[int]:
    picks: list[int] = []
    for _ in range(k):
        vals = [brute_force_mi(draws, picks + [i]) if i not in picks else -np.inf for i in range(draws.shape[1])]
        picks.append(int(np.argmax(vals)))
    return picks


@pytest.mark.parametrize("seed", range(3))
def test_scores_equal_brute_force_joint_mutual_information(seed):
    d = _draws(seed)
    for chosen in ([], [2], [0, 5], [1, 3, 6]):
        s = batchbald_scores(d, np.array(chosen, dtype=np.int64))
        for i in range(d.shape[1]):
            if i not in chosen:
                np.testing.assert_allclose(s[i], brute_force_mi(d, chosen + [i]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_brute_force_greedy(seed):
    d = _draws(seed + 10)
    assert batchbald_select(d, 4, rng=np.random.default_rng(0)).tolist() == reference_greedy(d, 4)


def test_k_one_is_bald_top_one():
    d = _draws(4, n=20)
    np.testing.assert_allclose(batchbald_scores(d, np.empty(0, dtype=np.int64)), bald(d), atol=1e-12)
    assert batchbald_select(d, 1, rng=np.random.default_rng(0))[0] == np.argmax(bald(d))


def test_sampled_joint_entropy_estimates_the_exact_one():
    d = _draws(5, t=8, n=6, k=3)
    chosen = np.array([0, 1, 2])
    exact = batchbald_scores(d, chosen)  # 3^3 = 27 configurations
    est = batchbald_scores(d, chosen, rng=np.random.default_rng(0), max_configs=26, n_samples=40_000)
    free = [3, 4, 5]
    np.testing.assert_allclose(est[free], exact[free], atol=0.02)
    again = batchbald_scores(d, chosen, rng=np.random.default_rng(0), max_configs=26, n_samples=40_000)
    np.testing.assert_array_equal(est, again)


def test_switch_to_sampling_is_at_max_configs():
    d = _draws(6, k=2)
    chosen = np.array([0, 1, 2])  # 2^3 = 8 configurations
    exact = batchbald_scores(d, chosen, max_configs=8)
    np.testing.assert_array_equal(exact, batchbald_scores(d, chosen, max_configs=8, rng=np.random.default_rng(1)))
    with pytest.raises(ValueError, match="max_configs=7"):
        batchbald_scores(d, chosen, max_configs=7)


def test_sampled_greedy_is_reproducible_and_distinct():
    d = _draws(7, n=12, k=3)
    a = batchbald_select(d, 8, rng=np.random.default_rng(3), max_configs=10, n_samples=2000)
    b = batchbald_select(d, 8, rng=np.random.default_rng(3), max_configs=10, n_samples=2000)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 8


def test_float32_draws_are_promoted():
    d = _draws(8)
    np.testing.assert_allclose(conditional_entropies(d.astype(np.float32).astype(np.float64)),
                               conditional_entropies(d), atol=1e-6)
    sel = batchbald_select(d.astype(np.float32), 3, rng=np.random.default_rng(0))
    assert sel.dtype == np.int64 and len(set(sel.tolist())) == 3


def test_bad_arguments():
    d = _draws(0)
    with pytest.raises(ValueError, match="k=8"):
        batchbald_select(d, 8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_configs"):
        batchbald_select(d, 2, rng=np.random.default_rng(0), max_configs=0)
