"""The shared contract every stream selector must pass.

Use from a test module::

    from stream_contract import check_stream_selector_contract
    def test_contract():
        check_stream_selector_contract(lambda **rate: MySelector(**rate), make_z)

``make_selector(**rate)`` builds a fresh selector from rate keywords (``q``, or ``budget`` and
``length``); ``make_z(n, rng)`` returns features of shape (n, dim) of the kind the selector takes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

MakeSelector = Callable[..., Any]
MakeZ = Callable[[int, np.random.Generator], np.ndarray]


def _decide_chunked(sel: Any, z: np.ndarray, rng: np.random.Generator, cuts: list[int]) -> np.ndarray:
    bounds = [0, *cuts, z.shape[0]]
    return np.concatenate([sel.observe_many(z[a:b], rng=rng) for a, b in zip(bounds[:-1], bounds[1:])])


def check_decisions(make_selector: MakeSelector, make_z: MakeZ, n: int) -> None:
    z = make_z(n, np.random.default_rng(1))
    sel = make_selector(q=0.2)
    one = sel.observe(z[0], rng=np.random.default_rng(0))
    assert type(one) is bool, f"observe must return a bool; got {type(one).__name__}"
    many = sel.observe_many(z[1:], rng=np.random.default_rng(0))
    assert isinstance(many, np.ndarray) and many.dtype == bool and many.shape == (n - 1,)
    # decisions are final: later items never change what was returned before
    kept = many.copy()
    sel.observe_many(make_z(5, np.random.default_rng(2)), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(many, kept)
    assert sel.observe_many(z[:0], rng=np.random.default_rng(0)).shape == (0,)


def check_same_seed_same_decisions(make_selector: MakeSelector, make_z: MakeZ, n: int) -> None:
    z = make_z(n, np.random.default_rng(3))
    for rate in ({"q": 0.15}, {"budget": n // 8, "length": n}):
        a = make_selector(**rate).observe_many(z, rng=np.random.default_rng(7))
        b = make_selector(**rate).observe_many(z, rng=np.random.default_rng(7))
        np.testing.assert_array_equal(a, b)


def check_chunked_equals_item_by_item(make_selector: MakeSelector, make_z: MakeZ, n: int) -> None:
    z = make_z(n, np.random.default_rng(4))
    for rate in ({"q": 0.2}, {"budget": n // 6, "length": n}):
        sel = make_selector(**rate)
        rng = np.random.default_rng(11)
        single = np.array([sel.observe(zi, rng=rng) for zi in z])
        chunked = _decide_chunked(make_selector(**rate), z, np.random.default_rng(11), [1, 2, 17, 18, n // 2, n - 3])
        np.testing.assert_array_equal(single, chunked)
        assert single.any(), "the check needs some queries"


def check_realised_count(
    make_selector: MakeSelector, make_z: MakeZ, n: int, *, seeds: int = 6, q_slack: float = 4.0
) -> None:
    """Adaptive rate: never above the budget, within a binomial tolerance below it, for every seed.
    Fixed rate: the mean count over seeds within ``q_slack`` binomial standard deviations of q·n."""
    budget = n // 10
    counts = []
    for seed in range(seeds):
        z = make_z(n, np.random.default_rng(100 + seed))
        d = make_selector(budget=budget, length=n).observe_many(z, rng=np.random.default_rng(seed))
        assert d.sum() <= budget, f"seed {seed}: {d.sum()} queries exceed the budget {budget}"
        assert d.sum() >= budget - 3 * np.sqrt(budget), f"seed {seed}: {d.sum()} queries for a budget of {budget}"
        q = 0.1
        fixed = make_selector(q=q).observe_many(z, rng=np.random.default_rng(seed))
        counts.append(fixed.sum())
        capped = make_selector(q=0.5, budget=budget).observe_many(z, rng=np.random.default_rng(seed))
        assert capped.sum() <= budget, "a budget given with a fixed q must cap the count"
    sd = np.sqrt(n * q * (1 - q) / seeds)
    assert abs(np.mean(counts) - q * n) <= q_slack * sd, f"mean count {np.mean(counts)} for q·n = {q * n}"


def check_state_round_trip_and_resume(make_selector: MakeSelector, make_z: MakeZ, n: int) -> None:
    z = make_z(n, np.random.default_rng(5))
    for rate in ({"q": 0.2}, {"budget": n // 5, "length": n}):
        whole = _decide_chunked(make_selector(**rate), z, np.random.default_rng(3), [n // 3])
        fresh = make_selector(**rate)
        empty_state = fresh.state_dict()
        fresh.load_state_dict(empty_state)  # an unused selector round-trips too
        for cut in (1, n // 2 + 1, n - 1):
            rng = np.random.default_rng(3)
            sel = make_selector(**rate)
            first = _decide_chunked(sel, z[:cut], rng, [n // 3] if n // 3 < cut else [])
            state = sel.state_dict()
            assert all(isinstance(v, np.ndarray) for v in state.values()), "state values must be numpy arrays"
            other = make_selector(**rate)
            other.load_state_dict(state)
            again = other.state_dict()
            assert again.keys() == state.keys()
            for k in state:
                np.testing.assert_array_equal(again[k], state[k], err_msg=k)
            rest = other.observe_many(z[cut:], rng=rng)
            np.testing.assert_array_equal(np.concatenate([first, rest]), whole, err_msg=f"resume at {cut}")


def check_bad_input(make_selector: MakeSelector, make_z: MakeZ) -> None:
    z = make_z(6, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    bad = z.astype(np.float64).copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="nan"):
        make_selector(q=0.5).observe_many(bad, rng=rng)
    with pytest.raises(ValueError, match="nan"):
        make_selector(q=0.5).observe(bad[2], rng=rng)
    with pytest.raises(ValueError, match="shape"):
        make_selector(q=0.5).observe_many(z[0], rng=rng)
    with pytest.raises(ValueError, match="shape"):
        make_selector(q=0.5).observe(z, rng=rng)
    with pytest.raises(ValueError, match="shape"):
        make_selector(q=0.5).observe_many(z[None], rng=rng)
    for q in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=str(q)):
            make_selector(q=q)
    with pytest.raises(ValueError, match="-3"):
        make_selector(budget=-3, length=10)
    with pytest.raises(ValueError, match="length"):
        make_selector(budget=3)
    sel = make_selector(budget=2, length=4)
    with pytest.raises(ValueError, match="length=4"):
        sel.observe_many(make_z(5, np.random.default_rng(0)), rng=rng)


def check_clone(make_selector: MakeSelector, make_z: MakeZ, n: int) -> None:
    sel = make_selector(q=0.3)
    sel.observe_many(make_z(n, np.random.default_rng(0)), rng=np.random.default_rng(0))
    twin = sel.clone()
    assert type(twin) is type(sel) and twin.get_params() == sel.get_params()
    assert twin.t == 0 and twin.n_queried == 0 and sel.t == n
    adaptive = sel.clone(q=None, budget=5, length=50)
    assert adaptive.budget == 5 and adaptive.q is None


def check_stream_selector_contract(make_selector: MakeSelector, make_z: MakeZ, *, n: int = 240, q_slack: float = 4.0) -> None:
    check_decisions(make_selector, make_z, n)
    check_same_seed_same_decisions(make_selector, make_z, n)
    check_chunked_equals_item_by_item(make_selector, make_z, n)
    check_realised_count(make_selector, make_z, n, q_slack=q_slack)
    check_state_round_trip_and_resume(make_selector, make_z, n)
    check_bad_input(make_selector, make_z)
    check_clone(make_selector, make_z, n)
