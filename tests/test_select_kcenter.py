import tracemalloc

import numpy as np
import pytest

from pickwise.select.kcenter import kcenter_greedy, min_sq_distances


def reference_kcenter(x: np.ndarray, k: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brute force: the full distance matrix to every centre, recomputed at every pick."""
    picks: list[int] = []
    for t in range(k):
        if t == 0 and len(centres) == 0:
            picks.append(int(rng.integers(len(x))))
            continue
        c = np.vstack([centres, x[picks]]) if picks else centres
        d = np.sqrt(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)).min(axis=1)
        d[picks] = -1.0
        picks.append(int(np.argmax(d)))
    return np.array(picks)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("chunk", [3, 1024])
def test_identical_picks_to_brute_force(seed, chunk):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 4))
    lab = rng.normal(size=(7, 4))
    fast = kcenter_greedy(x, 20, centres=lab, rng=np.random.default_rng(0), chunk_size=chunk)
    np.testing.assert_array_equal(fast, reference_kcenter(x, 20, lab, np.random.default_rng(0)))


def test_without_labelled_points_the_first_pick_comes_from_rng():
    x = np.random.default_rng(1).normal(size=(30, 3))
    fast = kcenter_greedy(x, 10, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(fast, reference_kcenter(x, 10, np.empty((0, 3)), np.random.default_rng(4)))


def test_duplicates_and_all_zero_distances_give_distinct_picks():
    x = np.zeros((6, 2))
    sel = kcenter_greedy(x, 6, centres=np.zeros((2, 2)), rng=np.random.default_rng(0))
    assert sorted(sel) == list(range(6))


def test_min_sq_distances_blocks_equal_the_full_matrix():
    rng = np.random.default_rng(2)
    x, c = rng.normal(size=(37, 5)), rng.normal(size=(11, 5))
    full = ((x[:, None] - c[None]) ** 2).sum(-1).min(1)
    for chunk in (1, 4, 100):
        np.testing.assert_allclose(min_sq_distances(x, c, chunk_size=chunk), full, atol=1e-12)


def test_memory_is_not_n_times_labelled():
    rng = np.random.default_rng(0)
    x, lab = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    tracemalloc.start()
    kcenter_greedy(x, 5, centres=lab, rng=np.random.default_rng(0), chunk_size=512)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3000 * 3000 * 8 / 4  # a quarter of the 3000×3000 float64 matrix


def test_bad_arguments():
    with pytest.raises(ValueError, match="k=4"):
        kcenter_greedy(np.zeros((3, 2)), 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="centres"):
        kcenter_greedy(np.zeros((3, 2)), 1, centres=np.zeros((2, 3)), rng=np.random.default_rng(0))
