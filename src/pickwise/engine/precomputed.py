"""``pickwise select --engine``: catalog strategies over precomputed outputs held in shards.

The shards hold the unlabelled rows only (:func:`~pickwise.engine.npy_loaders` with ``exclude``),
in pool order, so position p of the sharded pool is ``pool.unlabeled[p]`` and every function here
returns what the single-machine strategy returns on the same :class:`~pickwise.precomputed.Precomputed`
model, with ``rng`` consumed the same way:

* ``least_confidence``, ``margin``, ``entropy`` (``Uncertainty``): the score of each shard's
  ``probs`` (checked as :class:`~pickwise.precomputed.Precomputed` checks them), then
  :func:`~pickwise.engine.sharded_top_k`;
* ``bald``, ``variation_ratio``, ``mean_std``, ``max_entropy`` (``MCDropout``): one
  ``rng.integers(2**31 - 1)`` (the dropout seed, unused by fixed draws), then the top-k of the
  score of each shard's ``mc_probs`` (held rows first, scored as (T, n, K));
* ``badge``: the factored gradient embedding (a = p − e_ŷ, h = embeddings, float64) built on each
  shard, then :func:`~pickwise.engine.sharded_kmeanspp`;
* ``coreset``: :func:`~pickwise.engine.sharded_kcenter` on the embeddings (float64), from the
  labelled items' embeddings as centres;
* ``dbal``: the top ⌈β·k⌉ margin scores by :func:`~pickwise.engine.sharded_top_k`, those items'
  embeddings gathered to the driver, and DBAL's weighted k-means there.

:func:`run_with_restarts` reruns a selection from the start, on a rebuilt engine and with the
generator restored, when a shard is lost (a Ray actor died).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .base import Engine
from .selection import _raise_first, sharded_kcenter, sharded_kmeanspp, sharded_top_k

__all__ = [
    "ENGINE_STRATEGIES",
    "MCScore",
    "ProbaScore",
    "needed_arrays",
    "run_with_restarts",
    "select_sharded",
]

PROBA_STRATEGIES = ("least_confidence", "margin", "entropy")
MC_STRATEGIES = ("bald", "variation_ratio", "mean_std", "max_entropy")
#: the catalog strategies that run on an engine
ENGINE_STRATEGIES = (*PROBA_STRATEGIES, *MC_STRATEGIES, "badge", "coreset", "dbal")

#: the name of the array holding each shard row's global position (errors name the item)
INDEX = "index"

T = TypeVar("T")


def needed_arrays(strategy: str) -> tuple[str, ...]:
    """The precomputed arrays (``probs``, ``embeddings``, ``mc_probs``) a strategy reads on the shards."""
    if strategy in PROBA_STRATEGIES:
        return ("probs",)
    if strategy in MC_STRATEGIES:
        return ("mc_probs",)
    if strategy in ("badge", "dbal"):
        return ("probs", "embeddings")
    if strategy == "coreset":
        return ("embeddings",)
    raise ValueError(f"strategy {strategy!r} does not run on an engine; the engine strategies are {', '.join(ENGINE_STRATEGIES)}")


def _checked(state: dict, name: str, rows: np.ndarray) -> np.ndarray:
    from ..precomputed import _checked as check

    index = state[INDEX] if INDEX in state else np.arange(state["offset"], state["offset"] + state["n"])
    return check(name, np.asarray(rows, dtype=np.float64), np.asarray(index, dtype=np.int64))


@dataclass(frozen=True)
class ProbaScore:
    """A shard-side score of the shard's ``probs`` (n_s, K): ``get_score(name)`` of the checked rows."""

    name: str

    def __call__(self, state: dict) -> np.ndarray:
        from ..scores import get_score

        return get_score(self.name)(_checked(state, "probs", state["probs"]))


@dataclass(frozen=True)
class MCScore:
    """A shard-side score of the first ``n_draws`` MC draws of the shard's ``mc_probs`` (held (n_s, T, K))."""

    name: str
    n_draws: int

    def __call__(self, state: dict) -> np.ndarray:
        from ..scores import get_score

        draws = np.ascontiguousarray(np.moveaxis(np.asarray(state["mc_probs"])[:, : self.n_draws], 1, 0))
        return get_score(self.name)(_checked(state, "mc_probs", draws))


def _grad_init(state: dict, _: Any) -> str | None:
    """The factored gradient embedding of the shard (``_pw_a``, ``_pw_h``), as BADGE builds it."""
    from ..embeddings import grad_embedding

    try:
        e = grad_embedding(_checked(state, "probs", state["probs"]), _checked(state, "embeddings", state["embeddings"]))
    except ValueError as err:
        return str(err)
    state["_pw_a"], state["_pw_h"] = np.asarray(e.a, dtype=np.float64), np.asarray(e.h, dtype=np.float64)
    return None


def _x_init(state: dict, _: Any) -> str | None:
    """The shard's embeddings as float64 (``_pw_x``), checked finite."""
    try:
        x = _checked(state, "embeddings", state["embeddings"])
    except ValueError as err:
        return str(err)
    if x.ndim != 2:
        return f"embeddings must have shape (n, d); got shape {x.shape}"
    state["_pw_x"] = x
    return None


def _drop_pw(state: dict, _: Any) -> None:
    for key in ("_pw_a", "_pw_h", "_pw_x"):
        state.pop(key, None)


def select_sharded(
    engine: Engine,
    strategy: str,
    k: int,
    *,
    rng: np.random.Generator,
    n_draws: int | None = None,
    centres: np.ndarray | None = None,
    on_pick: Callable[[int], None] | None = None,
    approximate: bool = False,
    sums: str = "sequential",
) -> np.ndarray:
    """Positions (in the sharded pool) of ``strategy``'s ``k`` picks, in pick order.

    Parameters
    ----------
    engine : Engine
        Shards holding :func:`needed_arrays` ``(strategy)`` (and optionally ``index``).
    strategy : str
        One of :data:`ENGINE_STRATEGIES`.
    k : int
    rng : numpy Generator
        Consumed as the single-machine strategy consumes it.
    n_draws : int, optional
        MC draws to score (the MC strategies; required there).
    centres : ndarray of shape (m, d), optional
        ``coreset``: the labelled items' embeddings.
    on_pick : callable, optional
        ``badge`` and ``coreset``: ``on_pick(t)`` after pick t (exact selection only).
    approximate : bool
        ``badge``: k-means|| instead of exact k-means++; ``coreset``: the two-round composable
        core-set instead of exact greedy (:mod:`pickwise.engine.approx`: a few rounds instead of
        k, not the single-machine picks). Refused for the other strategies.
    sums : "sequential" or "parallel"
        ``badge`` (exact): how k-means++ sums D² over the shards (see
        :func:`~pickwise.engine.sharded_kmeanspp`): "parallel" is two-level sampling, about 2 steps of
        latency per round instead of W + 3, equal picks up to the rounding of the sums.

    Returns
    -------
    ndarray of shape (k,), int64
    """
    needed_arrays(strategy)  # refuses a strategy without an engine path
    if not isinstance(approximate, (bool, np.bool_)):
        raise ValueError(f"approximate must be True or False; got {approximate!r}")
    if sums not in ("sequential", "parallel"):
        raise ValueError(f"sums must be 'sequential' or 'parallel'; got {sums!r}")
    if sums != "sequential" and (strategy != "badge" or approximate):
        raise ValueError(f"sums={sums!r} is for exact badge (k-means++); got strategy {strategy!r}"
                         + (" with approximate=True" if approximate else ""))
    if approximate and strategy not in ("badge", "coreset"):
        raise ValueError(f"approximate selection exists for badge (k-means||) and coreset (two-round); "
                         f"strategy {strategy!r} is exact already")
    if strategy in PROBA_STRATEGIES:
        return sharded_top_k(engine, k, rng=rng, score=ProbaScore(strategy))
    if strategy in MC_STRATEGIES:
        if n_draws is None:
            raise ValueError(f"strategy {strategy!r} needs n_draws (the MC draws to score)")
        rng.integers(2**31 - 1)  # MCDropout's dropout seed: drawn, unused by fixed draws
        return sharded_top_k(engine, k, rng=rng, score=MCScore(strategy, int(n_draws)))
    if strategy == "dbal":
        return _dbal(engine, k, rng=rng)
    try:
        if strategy == "badge":
            _raise_first(engine.map(_grad_init))
            if approximate:
                from .approx import sharded_kmeans_parallel

                return sharded_kmeans_parallel(engine, k, rng=rng, a="_pw_a", h="_pw_h")
            return sharded_kmeanspp(engine, k, rng=rng, a="_pw_a", h="_pw_h", on_pick=on_pick, sums=sums)
        _raise_first(engine.map(_x_init))
        if centres is not None:
            centres = np.asarray(centres, dtype=np.float64)
            if centres.shape[0] == 0:
                centres = None
        if approximate:
            from .approx import sharded_kcenter_two_round

            return sharded_kcenter_two_round(engine, k, centres=centres, rng=rng, x="_pw_x", chunk_size=1024)
        return sharded_kcenter(engine, k, centres=centres, rng=rng, x="_pw_x", chunk_size=1024, on_pick=on_pick)
    finally:
        engine.map(_drop_pw)


def _rows_at(state: dict, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """This shard's rows at the given global positions: (embeddings as float64, margin scores)."""
    from ..scores import get_score

    i = np.asarray(positions, dtype=np.int64) - state["offset"]
    probs = _checked(state, "probs", state["probs"][i])
    return np.asarray(state["embeddings"][i], dtype=np.float64), get_score("margin")(probs)


def _dbal(engine: Engine, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """DBAL (margin, β = 10, as the catalog's): the top ⌈β·k⌉ margin scores over the shards, their
    embeddings gathered, then the weighted k-means of :class:`~pickwise.strategies.DBAL` here."""
    import math

    from ..select import weighted_kmeans_select
    from ..strategies import DBAL

    d = DBAL()
    n = int(sum(engine.sizes))
    m = min(n, math.ceil(d.beta * k))
    keep = sharded_top_k(engine, m, rng=rng, score=ProbaScore("margin"))
    owner = np.searchsorted(np.cumsum(engine.sizes), keep, side="right")
    emb, s = np.empty((m, 0)), np.empty(m)
    parts = {}
    for shard in np.unique(owner):
        where = np.flatnonzero(owner == shard)
        parts[int(shard)] = (where, engine.call(int(shard), _rows_at, keep[where]))
    width = next(iter(parts.values()))[1][0].shape[1]
    emb = np.empty((m, width))
    for where, (e, sc) in parts.values():
        emb[where], s[where] = e, sc
    return keep[weighted_kmeans_select(emb, s, k, rng=rng, n_init=d.n_init, max_iter=d.max_iter)]


def run_with_restarts(
    build: Callable[[], Engine],
    run: Callable[[Engine], T],
    *,
    rng: np.random.Generator,
    attempts: int = 3,
) -> T:
    """``run(build())``, rerun from the start on a fresh engine when a shard is lost.

    A lost shard is an error of one of the types in the engine's ``fault_types`` (a
    :class:`~pickwise.engine.RayEngine`: a Ray actor or its node died). Before each rerun the
    engine is closed and rebuilt (the shards reload from their loaders) and ``rng`` is restored to
    its state at the call, so the picks are those of an undisturbed run. Other errors propagate at
    once; after ``attempts`` lost runs the last error propagates. The engine is closed at the end.
    """
    import copy

    from .._validation import check_positive_int

    attempts = check_positive_int("attempts", attempts)
    saved = copy.deepcopy(rng.bit_generator.state)
    for attempt in range(attempts):
        engine = build()
        try:
            return run(engine)
        except BaseException as err:
            faults = tuple(getattr(engine, "fault_types", ()))
            if not faults or not isinstance(err, faults) or attempt == attempts - 1:
                raise
            rng.bit_generator.state = copy.deepcopy(saved)
        finally:
            engine.close()
    raise AssertionError("unreachable")
