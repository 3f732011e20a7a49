import itertools

import numpy as np
import pytest

from pickwise.scores import bald
from pickwise.select.batchbald import _plain_select, batchbald_scores, batchbald_select, conditional_entropies


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


# --- lazy greedy (issue 16): the same picks as the plain greedy that scores every item ---------


def _peaked(seed, t=8, n=300, k=3):
    """Draws like a trained model's: a peaked per-item mean plus per-draw disagreement."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(1, n, k)) + rng.normal(scale=1.5, size=(t, n, k))
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
def test_lazy_greedy_equals_plain_greedy_while_exact(seed):
    d = _peaked(seed)
    # 3^6 = 729 ≤ 1,000 configurations: every one of the 7 picks is exact
    lazy = batchbald_select(d, 7, rng=np.random.default_rng(0), max_configs=1_000)
    assert lazy.tolist() == _plain_select(d, 7, rng=np.random.default_rng(0), max_configs=1_000).tolist()


def test_lazy_greedy_ties_take_the_first_position_like_the_plain_greedy():
    base = _peaked(9, n=40)
    d = np.concatenate([base, base[:, ::-1], base], axis=1)  # every item three times
    lazy = batchbald_select(d, 6, rng=np.random.default_rng(0))
    assert lazy.tolist() == _plain_select(d, 6, rng=np.random.default_rng(0)).tolist()
    assert len(set(lazy.tolist())) == 6


def test_sampled_picks_after_exact_ones_agree_with_the_plain_greedy_on_clear_inputs():
    d = _peaked(4, t=10, n=200, k=4)
    # 4^3 = 64 > 50: picks 1-3 exact, the rest from 4,000 sampled configurations (approximate)
    lazy = batchbald_select(d, 6, rng=np.random.default_rng(1), max_configs=50, n_samples=4_000)
    plain = _plain_select(d, 6, rng=np.random.default_rng(1), max_configs=50, n_samples=4_000)
    assert lazy[:3].tolist() == plain[:3].tolist()
    assert len(set(lazy.tolist()) & set(plain.tolist())) >= 5


def test_class_and_cli_share_one_set_of_defaults():
    from pickwise.catalog import make_strategy
    from pickwise.select.batchbald import MAX_CONFIGS, N_SAMPLES
    from pickwise.strategies import BatchBALD

    cli = make_strategy("batchbald")
    assert cli == BatchBALD()
    assert (cli.max_candidates, cli.max_configs, cli.n_samples) == (None, MAX_CONFIGS, N_SAMPLES)
    assert make_strategy("batchbald", max_candidates=50, n_samples=300) == BatchBALD(max_candidates=50, n_samples=300)
