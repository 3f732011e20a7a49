"""Fuzz the Python API with bad arrays (issue 12, "no silent wrong answers").

Every public entry point — ``Pool``, each score in :mod:`pickwise.scores`, each catalog strategy's
``select`` (plus EPIG, BatchEPIG, Cluster-Margin, TypiClust, ProbCover and ``Subsample``), the
selection algorithms of :mod:`pickwise.select` and the metrics — answers bad input with a
``ValueError`` whose message names the offending argument: never another exception type from deep
inside numpy or scikit-learn, never a silent answer. Valid input gives results that pass basic
invariants (k distinct unlabelled indices, finite float64 scores of the right length).

Kept fast: hypothesis is derandomized with few examples per test (the whole file runs in seconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fakes import FakeModel, blobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pickwise import metrics as M
from pickwise import scores as S
from pickwise.catalog import make_strategy, strategy_names
from pickwise.pool import Pool
from pickwise.select import (
    bait_select,
    batchbald_scores,
    batchbald_select,
    kcenter_greedy,
    kmeanspp_seeding,
    stochastic_batch,
    top_k,
    weighted_kmeans_select,
)
from pickwise.strategies import Uncertainty
from pickwise.strategies.cluster_margin import ClusterMargin
from pickwise.strategies.coldstart import ProbCover, TypiClust
from pickwise.strategies.epig import EPIG, BatchEPIG
from pickwise.wrappers import Subsample

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=20)


def expect_value_error(fn, *names: str) -> ValueError:
    """``fn()`` must raise ValueError whose message contains one of ``names``; nothing else will do."""
    try:
        out = fn()
    except ValueError as err:
        msg = str(err)
        assert any(n in msg for n in names), f"ValueError {msg!r} names none of {names}"
        return err
    except Exception as err:  # noqa: BLE001 - any other type is the failure looked for
        pytest.fail(f"raised {type(err).__name__} instead of ValueError: {err}")
    pytest.fail(f"no error; returned {out!r}")


# ---------------------------------------------------------------------------------------------- scores

SINGLE = list(S.SCORES.items())
MC = list(S.MC_SCORES.items())
COMMITTEE = list(S.COMMITTEE_SCORES.items())
ALL_SCORES = [(n, f, 2, "probs") for n, f in SINGLE] + [(n, f, 3, "draws") for n, f in MC] + \
    [(n, f, 3, "members") for n, f in COMMITTEE]


def _valid_probs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    p = rng.random(shape) + 1e-3
    return p / p.sum(axis=-1, keepdims=True)


BAD_KINDS = ["fewer_axes", "more_axes", "scalar", "nan", "inf", "negative", "above_one", "unnormalised",
             "no_classes", "object", "str", "complex", "bool", "ragged", "none", "zero_draws"]


def _mutate(p: np.ndarray, kind: str, rng: np.random.Generator) -> Any:
    pos = tuple(int(rng.integers(s)) for s in p.shape)
    q = p.copy()
    if kind == "fewer_axes":
        return p[..., 0]
    if kind == "more_axes":
        return p[None]
    if kind == "scalar":
        return np.float64(0.5)
    if kind in ("nan", "inf"):
        q[pos] = np.nan if kind == "nan" else -np.inf
        return q
    if kind == "negative":
        q[pos] = -0.5
        return q
    if kind == "above_one":
        q[pos] = 1.5
        return q
    if kind == "unnormalised":
        return q * 0.8
    if kind == "no_classes":
        return q[..., :0]
    if kind == "object":
        return q.astype(object)
    if kind == "str":
        return q.astype(str)
    if kind == "complex":
        return q.astype(complex)
    if kind == "bool":
        return np.eye(q.shape[-1], dtype=bool)[q.argmax(axis=-1)]  # one-hot, but booleans
    if kind == "ragged":
        rows = q.reshape(-1, q.shape[-1]).tolist()
        return [rows[0], rows[0][:-1]] if q.ndim == 2 else [[rows[0]], [rows[0], rows[0][:-1]]]
    if kind == "none":
        return None
    if kind == "zero_draws":
        return q[:0] if q.ndim == 3 else q[..., :0]
    raise AssertionError(kind)


@FUZZ
@given(st.sampled_from(ALL_SCORES), st.sampled_from(BAD_KINDS), st.integers(1, 5), st.integers(2, 4),
       st.integers(0, 2**31 - 1))
def test_scores_refuse_bad_arrays(entry, kind, n, k, seed):
    _name, fn, ndim, arg = entry
    rng = np.random.default_rng(seed)
    p = _valid_probs(rng, (3, n, k) if ndim == 3 else (n, k))
    expect_value_error(lambda: fn(_mutate(p, kind, rng)), arg)


@FUZZ
@given(st.sampled_from(ALL_SCORES), st.integers(0, 5), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from(["float64", "float32", "onehot_int", "list"]), st.integers(0, 2**31 - 1))
def test_scores_on_valid_arrays(entry, n, k, t, form, seed):
    _name, fn, ndim, _arg = entry
    rng = np.random.default_rng(seed)
    p = _valid_probs(rng, (t, n, k) if ndim == 3 else (n, k))
    if form == "float32":
        p = p.astype(np.float32)
    elif form == "onehot_int":
        p = np.eye(k, dtype=np.int64)[p.argmax(axis=-1)]
    elif form == "list":
        p = p.tolist()
        if n == 0:  # an empty list has lost its class axis: refused, not guessed
            expect_value_error(lambda: fn(p), _arg)
            return
    out = fn(p)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n,)
    assert np.all(np.isfinite(out)) and np.all(out >= -1e-12) and np.all(out <= np.log(max(k, 2)) + 1e-6)
    if ndim == 3:  # the right n_items is accepted and changes nothing
        np.testing.assert_array_equal(fn(p, n_items=n), out)


# ------------------------------------------------------------------------------ MC layout (T, N, K)

@FUZZ
@given(st.sampled_from(MC + COMMITTEE), st.integers(2, 6), st.integers(2, 6), st.integers(2, 4),
       st.integers(0, 2**31 - 1))
def test_mc_scores_refuse_items_first_layout(entry, t, n, k, seed):
    _name, fn = entry
    if t == n:
        t += 1
    draws = _valid_probs(np.random.default_rng(seed), (t, n, k))
    swapped = np.swapaxes(draws, 0, 1)  # (n, t, k): what a loop over items stacks
    err = expect_value_error(lambda: fn(swapped, n_items=n), str(swapped.shape))
    assert "n_classes)" in str(err) and "swapaxes" in str(err)
    np.testing.assert_array_equal(fn(draws, n_items=n), fn(draws))
    expect_value_error(lambda: fn(draws, n_items=n + 1), str(draws.shape))


def test_batchbald_refuses_items_first_layout():
    draws = _valid_probs(np.random.default_rng(0), (7, 5, 3))
    swapped = np.swapaxes(draws, 0, 1)
    err = expect_value_error(lambda: batchbald_select(swapped, 2, rng=np.random.default_rng(0), n_items=5), "(5, 7, 3)")
    assert "(n_draws, n, n_classes)" in str(err)
    expect_value_error(lambda: batchbald_scores(swapped, [], n_items=5), "(5, 7, 3)")
    picks = batchbald_select(draws, 2, rng=np.random.default_rng(0), n_items=5)
    np.testing.assert_array_equal(picks, batchbald_select(draws, 2, rng=np.random.default_rng(0)))


class ItemsFirstModel(FakeModel):
    """A model whose MC draws come out as (n, n_draws, K) — items first."""

    def predict_proba_mc(self, x, n_draws, *, seed):
        return np.swapaxes(super().predict_proba_mc(x, n_draws, seed=seed), 0, 1)


@pytest.mark.parametrize("name", ["bald", "variation_ratio", "mean_std", "max_entropy", "batchbald",
                                  "stochastic_bald"])
def test_strategies_refuse_items_first_draws(name):
    x, _ = blobs(30, 4)
    pool = Pool.empty(30, n_classes=3).label(np.arange(4), np.arange(4) % 3)
    model = ItemsFirstModel(4)
    strategy = make_strategy(name, n_draws=5)
    err = expect_value_error(lambda: strategy.select(model, x, pool, 3, rng=np.random.default_rng(0)),
                             "predict_proba_mc output")
    assert "(26, 5, 3)" in str(err) and "(n_draws, n, n_classes)" in str(err)


# ---------------------------------------------------------------------------------------------- Pool

def _pool_cases(n: int, rng: np.random.Generator) -> list[tuple[str, Any, tuple[str, ...]]]:
    lab = np.full(n, -1)
    at = np.full(n, -1)
    lab[0], at[0] = 1, 0
    f = lab.astype(float)
    f[1] = 1.5
    at1 = at.copy()
    at1[1] = 0
    nan = f.copy()
    nan[1] = np.nan
    return [
        ("fractional label", lambda: Pool(f, at1), ("labels", "1.5")),
        ("NaN label", lambda: Pool(nan, at1), ("labels", "nan")),
        ("str labels", lambda: Pool(lab.astype(str), at), ("labels",)),
        ("bool labels", lambda: Pool(lab > 0, at), ("labels",)),
        ("label below -1", lambda: Pool(np.where(lab == 1, -5, lab), at), ("-5",)),
        ("label >= n_classes", lambda: Pool(np.where(lab == 1, 3, lab), at, 3), ("label 3",)),
        ("labeled_at below -1", lambda: Pool(lab, np.where(at == 0, -4, at)), ("-4",)),
        ("disagree", lambda: Pool(lab, at1), ("disagree",)),
        ("2-D labels", lambda: Pool(lab[None], at[None]), ("1-D",)),
        ("length mismatch", lambda: Pool(lab, at[:-1]), ("equal length",)),
        ("n_classes 0", lambda: Pool(lab, at, 0), ("n_classes",)),
        ("n_classes 2.5", lambda: Pool(lab, at, 2.5), ("n_classes",)),
        ("n_classes True", lambda: Pool(lab, at, True), ("n_classes",)),
        ("empty n=0", lambda: Pool.empty(0), ("n ",)),
        ("empty n=2.5", lambda: Pool.empty(2.5), ("n ",)),
    ]


def _label_cases(pool: Pool, rng: np.random.Generator) -> list[tuple[str, Any, tuple[str, ...]]]:
    n = len(pool)
    free = pool.unlabeled
    i, j = int(free[0]), int(free[-1])
    return [
        ("duplicate index", lambda: pool.label([i, i], [0, 1]), (f"index {i}", "more than once")),
        ("index n", lambda: pool.label([n], [0]), (f"index {n}",)),
        ("index -1", lambda: pool.label([-1], [0]), ("index -1",)),
        ("already labelled", lambda: pool.label([int(pool.labeled[0])], [0]), ("already labelled",)),
        ("float index", lambda: pool.label([float(i)], [0]), ("indices",)),
        ("bool index", lambda: pool.label([True], [0]), ("indices",)),
        ("str index", lambda: pool.label(["1"], [0]), ("indices",)),
        ("label 1.5", lambda: pool.label([i], [1.5]), ("1.5",)),
        ("label NaN", lambda: pool.label([i], [np.nan]), ("nan",)),
        ("label -2", lambda: pool.label([i], [-2]), ("label -2",)),
        ("label n_classes", lambda: pool.label([i], [pool.n_classes]), (f"label {pool.n_classes}",)),
        ("label str", lambda: pool.label([i], ["a"]), ("labels",)),
        ("length mismatch", lambda: pool.label([i, j], [0]), ("equal length",)),
        ("2-D indices", lambda: pool.label([[i]], [[0]]), ("1-D",)),
        ("ragged", lambda: pool.label([[i], [i, j]], [0, 1]), ("indices",)),
        ("round -1", lambda: pool.label([i], [0], round=-1), ("round",)),
        ("round 2.5", lambda: pool.label([i], [0], round=2.5), ("round",)),
        ("round True", lambda: pool.label([i], [0], round=True), ("round",)),
        ("is_labeled -1", lambda: pool.is_labeled([-1]), ("indices", "-1")),
        ("is_labeled n", lambda: pool.is_labeled([n]), ("indices",)),
        ("is_labeled float", lambda: pool.is_labeled([0.5]), ("indices",)),
        ("labeled_in 0.5", lambda: pool.labeled_in(0.5), ("round",)),
    ]


@FUZZ
@given(st.integers(3, 40), st.data())
def test_pool_refuses_bad_arrays(n, data):
    rng = np.random.default_rng(n)
    _case, fn, names = data.draw(st.sampled_from(_pool_cases(n, rng)), label="constructor case")
    expect_value_error(fn, *names)
    pool = Pool.empty(n, n_classes=3).label([0], [2])
    _case, fn, names = data.draw(st.sampled_from(_label_cases(pool, rng)), label="label case")
    expect_value_error(fn, *names)
    # the failed calls changed nothing
    assert pool.n_labeled == 1 and pool.labels[0] == 2


@FUZZ
@given(st.integers(2, 40), st.integers(0, 2**31 - 1))
def test_pool_label_valid(n, seed):
    rng = np.random.default_rng(seed)
    pool = Pool.empty(n, n_classes=4)
    m = int(rng.integers(1, n + 1))
    idx = rng.choice(n, size=m, replace=False)
    lab = rng.integers(0, 4, size=m)
    as_float = bool(rng.integers(2))
    new = pool.label(idx, lab.astype(float) if as_float else lab)  # 2.0 is read as 2
    assert new.n_labeled == m and pool.n_labeled == 0
    np.testing.assert_array_equal(new.labels[idx], lab)
    np.testing.assert_array_equal(np.sort(new.labeled), np.sort(idx))
    assert np.all(new.is_labeled(idx)) and new.round == 0
    np.testing.assert_array_equal(np.sort(new.labeled_in(0)), np.sort(idx))
    assert Pool(new.labels.astype(float), new.labeled_at, 4) == new


# ------------------------------------------------------------------------------------ strategies

class FullModel(FakeModel):
    """FakeModel plus a committee of five (its MC draws as members), so every strategy can run."""

    def predict_proba_members(self, x):
        return super().predict_proba_mc(x, 5, seed=123)


def _extra_strategies() -> dict[str, Any]:
    return {
        "epig": lambda: EPIG(n_draws=5, n_targets=6),
        "batch_epig": lambda: BatchEPIG(n_draws=5, n_targets=4, max_candidates=10, n_samples=500),
        "cluster_margin": lambda: ClusterMargin(),
        "typiclust": lambda: TypiClust(),
        "probcover": lambda: ProbCover(),
        "subsample": lambda: Subsample(Uncertainty(score="margin"), alpha=8),
    }


def _make(name: str) -> Any:
    extra = _extra_strategies()
    return extra[name]() if name in extra else make_strategy(name, n_draws=5)


NAMES = strategy_names() + sorted(_extra_strategies())


def _setup(n: int, n_labeled: int, seed: int) -> tuple[np.ndarray, Pool, FullModel]:
    x, y = blobs(n, 4, seed=seed)
    pool = Pool.empty(n, n_classes=3).label(np.arange(n_labeled), y[:n_labeled]) if n_labeled else \
        Pool.empty(n, n_classes=3)
    return x, pool, FullModel(4, seed=seed)


PER_NAME = settings(FUZZ, max_examples=8)


@pytest.mark.parametrize("name", NAMES)
@PER_NAME
@given(st.integers(12, 30), st.integers(0, 6), st.data(), st.integers(0, 2**16))
def test_strategies_valid_selection(name, n, n_labeled, data, seed):
    x, pool, model = _setup(n, n_labeled, seed)
    k = data.draw(st.integers(1, min(6, pool.n_unlabeled)), label="k")
    k = data.draw(st.sampled_from([k, np.int64(k), np.int32(k)]), label="k type")
    sel = np.asarray(_make(name).select(model, x, pool, k, rng=np.random.default_rng(seed)))
    assert sel.ndim == 1 and sel.shape == (int(k),) and sel.dtype.kind in "iu"
    assert np.unique(sel).shape[0] == k and np.all(np.isin(sel, pool.unlabeled))


BAD_K = [0, -1, 2.5, True, False, np.float64(2.0), "3", None, [2], "n_unlabeled + 1"]


BAD_ARGS = BAD_K + ["pool", "x_short", "x_long", "x_scalar", "rng_int", "rng_none", "rng_legacy", "full_pool"]


@pytest.mark.parametrize("name", NAMES)
def test_strategies_refuse_bad_arguments(name):
    for bad in BAD_ARGS:
        _refuse_bad_argument(name, bad)


def _refuse_bad_argument(name, bad):
    x, pool, model = _setup(16, 3, 0)
    k, names = 3, ("k",)
    rng: Any = np.random.default_rng(0)
    if isinstance(bad, str) and bad == "n_unlabeled + 1":
        k, names = pool.n_unlabeled + 1, (str(pool.n_unlabeled + 1),)
    elif isinstance(bad, str) and bad == "pool":
        pool, names = pool.labels, ("pool",)
    elif isinstance(bad, str) and bad.startswith("x_"):
        x = {"x_short": x[:-1], "x_long": np.vstack([x, x[:2]]), "x_scalar": np.float64(1.0)}[bad]
        names = ("x ",)
    elif isinstance(bad, str) and bad.startswith("rng_"):
        rng, names = {"rng_int": 0, "rng_none": None, "rng_legacy": np.random.RandomState(0)}[bad], ("rng",)
    elif isinstance(bad, str) and bad == "full_pool":
        pool, names = Pool.empty(16, n_classes=3).label(np.arange(16), np.zeros(16, dtype=int)), ("unlabelled",)
    else:
        k = bad
    expect_value_error(lambda: _make(name).select(model, x, pool, k, rng=rng), *names)


class CorruptModel:
    """A FullModel one of whose outputs is broken in one way; ``used`` records whether it was called."""

    def __init__(self, method: str, fault: str, **kw):
        self.clean = FullModel(4, **kw)
        self.n_classes = self.clean.n_classes
        self.method, self.fault, self.used = method, fault, False

    def fit(self, x, y, *, seed):
        return self

    def _break(self, name: str, out: np.ndarray, item_axis: int = 0) -> Any:
        if name != self.method:
            return out
        self.used = True
        out = np.array(out, dtype=np.float64)
        if self.fault == "nan":
            out.flat[out.size // 2] = np.nan
        elif self.fault == "rows":
            out = np.delete(out, -1, axis=item_axis)
        elif self.fault == "unnormalised":
            out = out * 0.5
        elif self.fault == "str":
            return out.astype(str)
        elif self.fault == "flat":
            return out.reshape(-1)
        return out

    def predict_proba(self, x):
        return self._break("predict_proba", self.clean.predict_proba(x))

    def predict_proba_mc(self, x, n_draws, *, seed):
        return self._break("predict_proba_mc", self.clean.predict_proba_mc(x, n_draws, seed=seed), item_axis=1)

    def predict_proba_members(self, x):
        return self._break("predict_proba_members", self.clean.predict_proba_members(x), item_axis=1)

    def embed(self, x):
        return self._break("embed", self.clean.embed(x))

    def grad_factors(self, x):
        p, h = self.clean.grad_factors(x)
        return self._break("grad_factors", p), self._break("grad_factors_h", h)


METHODS = ["predict_proba", "predict_proba_mc", "predict_proba_members", "embed", "grad_factors", "grad_factors_h"]
FAULTS = ["nan", "rows", "unnormalised", "str", "flat"]
OUTPUT_NAMES = ("predict_proba", "predict_proba_mc", "predict_proba_members", "embed", "grad_factors", "probs",
                "draws", "members", "h ", "h contains", "x contains", "scores")


@pytest.mark.parametrize("name", NAMES)
@PER_NAME
@given(st.sampled_from(METHODS), st.sampled_from(FAULTS))
def test_strategies_refuse_broken_model_outputs(name, method, fault):
    if fault == "unnormalised" and method in ("embed", "grad_factors_h"):
        fault = "nan"  # embeddings have no normalisation to break
    x, pool, _ = _setup(16, 3, 0)
    model = CorruptModel(method, fault)
    try:
        sel = _make(name).select(model, x, pool, 3, rng=np.random.default_rng(0))
    except ValueError as err:
        assert model.used, f"ValueError without a broken output: {err}"
        assert any(s in str(err) for s in OUTPUT_NAMES), f"message names no model output: {err}"
        return
    except Exception as err:  # noqa: BLE001 - any other type is the failure looked for
        pytest.fail(f"{name}: broken {method} ({fault}) raised {type(err).__name__}: {err}")
    # no error: only right when the strategy never used the broken output
    assert not model.used, f"{name} silently used a broken {method} ({fault}) and returned {sel}"
    assert np.unique(sel).shape[0] == 3 and np.all(np.isin(sel, pool.unlabeled))


# ------------------------------------------------------------------------------ select algorithms

def _select_calls(n: int, rng: np.random.Generator) -> dict[str, Any]:
    emb = rng.normal(size=(n, 3))
    probs = _valid_probs(rng, (n, 3))
    draws = _valid_probs(rng, (4, n, 3))
    s = rng.random(n)
    g = lambda: np.random.default_rng(0)
    return {
        "top_k": (lambda a, k: top_k(a, k, rng=g()), s, "scores"),
        "stochastic_batch": (lambda a, k: stochastic_batch(a, k, rng=g()), s, "scores"),
        "kcenter_greedy": (lambda a, k: kcenter_greedy(a, k, rng=g()), emb, "x"),
        "kmeanspp_seeding": (lambda a, k: kmeanspp_seeding(a, k, rng=g()), emb, "emb"),
        "weighted_kmeans_select": (lambda a, k: weighted_kmeans_select(a, s, k, rng=g()), emb, "x"),
        "bait_select": (lambda a, k: bait_select(a, emb, k), probs, "probs"),
        "batchbald_select": (lambda a, k: batchbald_select(a, k, rng=g()), draws, "draws"),
    }


ARRAY_FAULTS = ["nan", "inf", "str", "object", "complex", "fewer_axes", "more_axes", "none", "ragged"]


@FEW
@given(st.sampled_from(sorted(_select_calls(5, np.random.default_rng(0)))),
       st.sampled_from(ARRAY_FAULTS + ["k=2.5", "k=True", "k=-1", "k=n+1", "k='2'"]), st.integers(4, 12))
def test_select_algorithms_refuse_bad_input(name, fault, n):
    rng = np.random.default_rng(n)
    fn, arr, arg = _select_calls(n, rng)[name]
    if fault.startswith("k="):
        k = {"k=2.5": 2.5, "k=True": True, "k=-1": -1, "k=n+1": n + 1, "k='2'": "2"}[fault]
        expect_value_error(lambda: fn(arr, k), "k")
        return
    bad: Any = arr.copy()
    if fault in ("nan", "inf"):
        bad.flat[1] = np.nan if fault == "nan" else np.inf
    elif fault in ("str", "object", "complex"):
        bad = bad.astype({"str": str, "object": object, "complex": complex}[fault])
    elif fault == "fewer_axes":
        bad = bad[..., 0] if bad.ndim > 1 else np.float64(0.5)
    elif fault == "more_axes":
        bad = bad[None]
    elif fault == "none":
        bad = None
    elif fault == "ragged":
        bad = [[0.5, 0.5], [1.0]]
    expect_value_error(lambda: fn(bad, 2), arg)
    out = fn(arr, 2)  # and the valid input works
    assert out.shape == (2,) and np.unique(out).shape[0] == 2 and out.min() >= 0 and out.max() < n


# -------------------------------------------------------------------------------------------- metrics

@FEW
@given(st.sampled_from(sorted(M.METRICS)), st.sampled_from(["y=0.5", "y=nan", "y=str", "y short", "y=-1", "y=K",
                                                           "empty", "probs nan", "probs 1-D"]))
def test_metrics_refuse_bad_input(metric, fault):
    rng = np.random.default_rng(0)
    p = _valid_probs(rng, (6, 3))
    y: Any = np.arange(6) % 3
    fn = M.METRICS[metric]
    names: tuple[str, ...] = ("y",)
    if fault == "y=0.5":
        y = y + 0.5
    elif fault == "y=nan":
        y = np.where(y == 0, np.nan, y)
    elif fault == "y=str":
        y = y.astype(str)
    elif fault == "y short":
        y = y[:-1]
    elif fault == "y=-1":
        y, names = np.where(y == 0, -1, y), ("label -1",)
    elif fault == "y=K":
        y, names = np.where(y == 0, 3, y), ("label 3",)
    elif fault == "empty":
        p, y, names = p[:0], y[:0], ("probs",)
    elif fault == "probs nan":
        p, names = np.where(p > 0.5, np.nan, p), ("probs",)
    elif fault == "probs 1-D":
        p, names = p[:, 0], ("probs",)
    expect_value_error(lambda: fn(y, p), *names)
    assert np.isfinite(fn(np.arange(6) % 3, _valid_probs(rng, (6, 3))))
