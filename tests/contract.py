"""The shared contract every pool strategy must pass (in the spirit of scikit-learn's estimator checks).

Use from a test module::

    from contract import check_strategy_contract
    def test_contract():
        check_strategy_contract(lambda: MyStrategy(...), model, x, pool)

``make_strategy`` builds a fresh strategy (strategies may hold state, e.g. ALBL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pickwise.pool import Pool


def _check_valid(sel: np.ndarray, pool: Pool, k: int) -> None:
    sel = np.asarray(sel)
    assert sel.ndim == 1 and sel.shape[0] == k, f"expected {k} indices, got shape {sel.shape}"
    assert sel.dtype.kind in "iu", f"indices must be integers, got {sel.dtype}"
    assert len(np.unique(sel)) == k, "indices must be distinct"
    assert np.all(np.isin(sel, pool.unlabeled)), "indices must be unlabelled absolute indices"


def check_strategy_contract(make_strategy: Callable[[], Any], model: Any, x: Any, pool: Pool, *, k: int = 5) -> None:
    assert pool.n_unlabeled > k >= 1, "the contract needs a pool with more than k unlabelled items"
    snapshot = (pool.labels.copy(), pool.labeled_at.copy())

    # returns k distinct unlabelled absolute indices
    sel = make_strategy().select(model, x, pool, k, rng=np.random.default_rng(0))
    _check_valid(sel, pool, k)

    # same seed, same result (a fresh strategy and a fresh generator)
    again = make_strategy().select(model, x, pool, k, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(sel), np.asarray(again))

    # the pool is not mutated
    np.testing.assert_array_equal(pool.labels, snapshot[0])
    np.testing.assert_array_equal(pool.labeled_at, snapshot[1])

    # k equal to the number unlabelled returns all of them
    everything = make_strategy().select(model, x, pool, pool.n_unlabeled, rng=np.random.default_rng(1))
    _check_valid(everything, pool, pool.n_unlabeled)

    # k larger than the unlabelled count, k <= 0, or an empty pool raise clear errors
    for bad_k in (pool.n_unlabeled + 1, 0, -3):
        with pytest.raises(ValueError, match=str(bad_k)):
            make_strategy().select(model, x, pool, bad_k, rng=np.random.default_rng(0))
    full = Pool.empty(pool.n, n_classes=pool.n_classes).label(np.arange(pool.n), np.zeros(pool.n, dtype=np.int64))
    with pytest.raises(ValueError, match="unlabelled"):
        make_strategy().select(model, x, full, 1, rng=np.random.default_rng(0))
