import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pickwise import scores as S


def _probs(shape):
    return arrays(np.float64, shape, elements=st.floats(0.0, 10.0)).filter(lambda a: np.all(a.sum(-1) > 1e-3)).map(
        lambda a: a / a.sum(-1, keepdims=True)
    )


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 6), st.integers(2, 5)).flatmap(_probs))
def test_single_model_bounds(p):
    k = p.shape[1]
    assert np.all((S.least_confidence(p) >= -1e-12) & (S.least_confidence(p) <= 1 - 1 / k + 1e-12))
    assert np.all((S.margin(p) >= -1e-12) & (S.margin(p) <= 1 + 1e-12))
    assert np.all((S.entropy(p) >= -1e-12) & (S.entropy(p) <= np.log(k) + 1e-9))
    # permuting classes changes nothing
    perm = np.random.default_rng(0).permutation(k)
    for fn in (S.least_confidence, S.margin, S.entropy):
        np.testing.assert_allclose(fn(p), fn(p[:, perm]), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(2, 4)).flatmap(_probs))
def test_mc_bounds_and_identities(d):
    t, n, k = d.shape
    b = S.bald(d)
    assert np.all(b >= 0) and np.all(b <= np.log(k) + 1e-9)
    assert np.all(b <= S.max_entropy(d) + 1e-9)
    vr = S.variation_ratio(d)
    assert np.all((vr >= 0) & (vr <= 1 - 1 / k + 1e-12))
    assert np.all(S.mean_std(d) >= 0)
    np.testing.assert_allclose(S.max_entropy(d), S.entropy(d.mean(0)), atol=1e-12)
    # the order of the draws does not matter
    rev = d[::-1]
    np.testing.assert_allclose(S.bald(d), S.bald(rev), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.tuples(st.integers(1, 5), st.integers(2, 4)).flatmap(_probs))
def test_bald_is_zero_when_draws_agree(p):
    draws = np.repeat(p[None], 7, axis=0)
    np.testing.assert_allclose(S.bald(draws), 0.0, atol=1e-12)
    np.testing.assert_allclose(S.mean_std(draws), 0.0, atol=1e-12)
    np.testing.assert_array_equal(S.variation_ratio(draws), 0.0)
    np.testing.assert_allclose(S.kl_to_consensus(draws), 0.0, atol=1e-12)
    np.testing.assert_allclose(S.vote_entropy(draws), 0.0, atol=1e-12)


def test_known_values():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]])
    np.testing.assert_allclose(S.least_confidence(p), [0.5, 0.0, 0.3])
    np.testing.assert_allclose(S.margin(p), [1.0, 0.0, 0.6])
    np.testing.assert_allclose(S.entropy(p), [np.log(2), 0.0, -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))])
    # two draws that disagree completely: BALD = log 2
    d = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(S.bald(d), [np.log(2)])
    np.testing.assert_allclose(S.variation_ratio(d), [0.5])
    np.testing.assert_allclose(S.mean_std(d), [0.5])
    np.testing.assert_allclose(S.vote_entropy(d), [np.log(2)])
    # KL of one-hot members to their 50/50 consensus is log 2 each
    np.testing.assert_allclose(S.kl_to_consensus(d), [np.log(2)])
    # three members voting 0, 0, 1
    m = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.2, 0.8]]])
    np.testing.assert_allclose(S.vote_entropy(m), [-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))])


def test_bald_averages_probabilities_not_logits():
    d = np.array([[[0.99, 0.01]], [[0.01, 0.99]]])
    # mean of probabilities is 50/50: entropy log 2, minus mean entropy of the draws
    h = -(0.99 * np.log(0.99) + 0.01 * np.log(0.01))
    np.testing.assert_allclose(S.bald(d), [np.log(2) - h])


@pytest.mark.parametrize(
    "fn, arr, match",
    [
        (S.entropy, np.array([[0.5, np.nan]]), "nan"),
        (S.entropy, np.array([[0.5, np.inf]]), "inf"),
        (S.entropy, np.array([0.5, 0.5]), r"shape \(n, n_classes\)"),
        (S.entropy, np.array([[0.6, 0.6]]), "sums to 1.2"),
        (S.margin, np.array([[1.5, -0.5]]), r"\[0, 1\]"),
        (S.bald, np.ones((2, 3)) / 3, r"shape \(n_draws, n, n_classes\)"),
    ],
)
def test_bad_input(fn, arr, match):
    with pytest.raises(ValueError, match=match):
        fn(arr)


def test_unknown_name():
    with pytest.raises(ValueError, match="'nope'"):
        S.get_score("nope")


def _joint_entropy_bruteforce(draws, items):
    """H(y_items) from consistent draws by enumerating every configuration."""
    import itertools

    t, _, k = draws.shape
    h = 0.0
    for ys in itertools.product(range(k), repeat=len(items)):
        p = np.mean([np.prod([draws[s, i, y] for i, y in zip(items, ys)]) for s in range(t)])
        h -= p * np.log(p) if p > 0 else 0.0
    return h


def test_batchbald_scores_give_chosen_items_a_of_s():
    """Items already in S get a(S) = H(y_S) − Σ_S E H(y_s | ω) (not a(S ∪ {x}) with x counted twice);
    the others get a(S ∪ {x}); both against brute-force enumeration."""
    from pickwise.select.batchbald import (
        batchbald_scores,
        batchbald_select,
        conditional_entropies,
    )

    rng = np.random.default_rng(3)
    d = rng.dirichlet(np.ones(3) * 0.5, size=(6, 7))  # (T, n, K)
    cond = conditional_entropies(d)
    for chosen in ([2], [2, 5], [0, 3, 6]):
        s = batchbald_scores(d, np.array(chosen))
        a_s = _joint_entropy_bruteforce(d, chosen) - cond[chosen].sum()
        np.testing.assert_allclose(s[chosen], a_s, atol=1e-12)
        for i in set(range(7)) - set(chosen):
            ref = _joint_entropy_bruteforce(d, chosen + [i]) - cond[chosen + [i]].sum()
            np.testing.assert_allclose(s[i], ref, atol=1e-12)
        # sampled configurations estimate the same a(S) for the chosen items
        sampled = batchbald_scores(d, np.array(chosen), rng=np.random.default_rng(0), max_configs=1,
                                   n_samples=40_000)
        np.testing.assert_allclose(sampled[chosen], a_s, atol=0.03)
    # the picks are the greedy maxima of a(S ∪ {x}) over x ∉ S
    picks = batchbald_select(d, 3, rng=np.random.default_rng(0))
    for step in range(3):
        s = batchbald_scores(d, picks[:step])
        s[picks[:step]] = -np.inf
        assert picks[step] == int(np.argmax(s))
