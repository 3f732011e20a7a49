import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pickwise.select.topk import top_k, top_k_reference


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=40), st.data(), st.integers(0, 10**6))
def test_equals_reference_with_many_ties(values, data, seed):
    s = np.array(values, dtype=float)
    k = data.draw(st.integers(0, len(s)))
    a = top_k(s, k, rng=np.random.default_rng(seed))
    b = top_k_reference(s, k, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(a, b)


def test_ties_are_broken_at_random_but_reproducibly():
    s = np.zeros(10)
    picks = {tuple(top_k(s, 3, rng=np.random.default_rng(seed))) for seed in range(20)}
    assert len(picks) > 10
    assert tuple(top_k(s, 3, rng=np.random.default_rng(4))) == tuple(top_k(s, 3, rng=np.random.default_rng(4)))


def test_best_first():
    np.testing.assert_array_equal(top_k(np.array([0.1, 0.9, 0.5]), 2, rng=np.random.default_rng(0)), [1, 2])


def test_bad_input():
    with pytest.raises(ValueError, match="nan"):
        top_k(np.array([0.1, np.nan]), 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k=3"):
        top_k(np.array([0.1, 0.2]), 3, rng=np.random.default_rng(0))
