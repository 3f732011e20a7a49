import numpy as np
import pytest

from pickwise.embeddings import grad_embedding, materialize
from pickwise.select.kmeanspp import kmeanspp_seeding, sample_d2


def reference_kmeanspp(g: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Plain k-means++ seeding on a materialised (n, D) float64 embedding: every distance recomputed
    from scratch at every pick; first = argmax norm; draw rule of ``sample_d2`` written out."""
    g = np.asarray(g, dtype=np.float64)
    picks = [int(np.argmax((g**2).sum(1)))]
    while len(picks) < k:
        centres = g[picks]
        d2 = ((g[:, None, :] - centres[None, :, :]) ** 2).sum(-1).min(axis=1)
        d2[picks] = 0.0
        cum = np.cumsum(d2)
        u = rng.random() * cum[-1]
        picks.append(int(np.searchsorted(cum, u, side="right")))
    return np.array(picks)


def _factors(seed, n=40, k=4, d=6, scale=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=scale, size=(n, k))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = np.maximum(rng.normal(size=(n, d)), 0)
    return p, h


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("prune", [True, False])
def test_same_picks_as_the_materialised_reference(seed, prune):
    p, h = _factors(seed)
    e = grad_embedding(p, h)
    k = 15
    fast = kmeanspp_seeding(e, k, rng=np.random.default_rng(seed), prune=prune)
    ref = reference_kmeanspp(materialize(e.a, e.h), k, np.random.default_rng(seed))
    np.testing.assert_array_equal(fast, ref)


def test_dense_input_matches_reference():
    x = np.random.default_rng(1).normal(size=(30, 5))
    fast = kmeanspp_seeding(x, 10, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(fast, reference_kmeanspp(x, 10, np.random.default_rng(2)))


def test_first_pick_is_the_largest_norm_and_picks_are_distinct():
    p, h = _factors(3)
    e = grad_embedding(p, h)
    sel = kmeanspp_seeding(e, 40, rng=np.random.default_rng(0))
    assert sel[0] == np.argmax(e.sq_norms())
    assert sorted(sel) == list(range(40))


def test_second_pick_follows_d_squared():
    """Empirical distribution of the second pick against D² within a binomial tolerance."""
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.0]])
    first = int(np.argmax((x**2).sum(1)))  # [3, 0]
    d2 = ((x - x[first]) ** 2).sum(1)
    prob = d2 / d2.sum()
    trials = 3000
    rng = np.random.default_rng(123)
    counts = np.zeros(len(x))
    for _ in range(trials):
        counts[kmeanspp_seeding(x, 2, rng=rng)[1]] += 1
    assert counts[first] == 0
    sd = np.sqrt(trials * prob * (1 - prob))
    assert np.all(np.abs(counts - trials * prob) <= 4.5 * sd + 1), (counts, trials * prob)


def test_coincident_points_still_give_distinct_picks():
    x = np.ones((8, 3))
    x[0] = 2.0
    sel = kmeanspp_seeding(x, 8, rng=np.random.default_rng(0))
    assert sorted(sel) == list(range(8))


def test_sample_d2_never_returns_zero_mass():
    d2 = np.array([0.0, 1.0, 0.0, 2.0, 0.0])
    rng = np.random.default_rng(0)
    got = {sample_d2(d2, rng) for _ in range(200)}
    assert got == {1, 3}


def test_same_generator_same_picks_and_random_first():
    p, h = _factors(5)
    e = grad_embedding(p, h)
    a = kmeanspp_seeding(e, 10, rng=np.random.default_rng(9), first="random")
    b = kmeanspp_seeding(e, 10, rng=np.random.default_rng(9), first="random")
    np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    x = np.zeros((4, 2))
    for k in (0, 5):
        with pytest.raises(ValueError, match=f"k={k}"):
            kmeanspp_seeding(x, k, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="middle"):
        kmeanspp_seeding(x, 2, rng=np.random.default_rng(0), first="middle")
