import numpy as np
import pytest
from sklearn.cluster import KMeans

from pickwise.select.wkmeans import nearest_distinct, weighted_kmeans_select


def reference_matching(x, centres):
    """Global greedy on the full distance matrix: closest (centre, row) pair first."""
    d = ((centres[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    out = np.full(len(centres), -1)
    used = set()
    for flat in np.argsort(d, axis=None, kind="stable"):
        c, j = divmod(int(flat), x.shape[0])
        if out[c] < 0 and j not in used:
            out[c] = j
            used.add(j)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_nearest_distinct_equals_full_matrix_matching(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    centres = rng.normal(scale=0.3, size=(9, 3))  # crowded centres compete for the same rows
    np.testing.assert_array_equal(nearest_distinct(x, centres, chunk_size=4), reference_matching(x, centres))


def test_two_centres_on_one_point_get_distinct_rows():
    x = np.array([[0.0], [1.0], [5.0]])
    sel = nearest_distinct(x, np.array([[0.1], [0.0]]))
    assert sorted(sel.tolist()) == [0, 1] and sel[1] == 0


def test_weighted_kmeans_equals_sklearn_plus_matching():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    w = rng.random(60)
    got = weighted_kmeans_select(x, w, 5, rng=np.random.default_rng(7))
    seed = int(np.random.default_rng(7).integers(2**31 - 1))
    km = KMeans(n_clusters=5, n_init=1, max_iter=300, random_state=seed).fit(x, sample_weight=w)
    np.testing.assert_array_equal(got, reference_matching(x, km.cluster_centers_))


def test_weights_pull_centroids():
    # an isolated heavy point becomes its own cluster and is queried
    x = np.vstack([np.random.default_rng(1).normal(size=(30, 2)), [[6.0, 6.0], [6.5, 6.0]]])
    w = np.ones(32)
    w[30] = 1000.0
    sel = weighted_kmeans_select(x, w, 3, rng=np.random.default_rng(0))
    assert 30 in sel


def test_zero_weights_and_duplicates_still_give_k_distinct_rows():
    x = np.zeros((10, 2))
    x[5:] = 1.0
    sel = weighted_kmeans_select(x, np.zeros(10), 4, rng=np.random.default_rng(0))
    assert len(set(sel.tolist())) == 4


def test_bad_arguments():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="-1"):
        weighted_kmeans_select(x, -np.ones(5), 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k=6"):
        weighted_kmeans_select(x, np.ones(5), 6, rng=np.random.default_rng(0))
