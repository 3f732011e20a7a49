"""A strategy with a live model on an engine: the model's outputs on the driver, the selection on the shards.

:func:`select_on_engine` is :func:`pickwise.precomputed.select_with_values` with the selection run
over shards (``pickwise next --engine`` for labelling projects). The model is evaluated where it was
trained (the driver): only the arrays the selection needs travel to the shards, and the picks — and
the generator's state after them — are those of the single-machine path:

* every score-based strategy (uncertainty, MC dropout, EGL, QBC, information density, …): the
  strategy scores the unlabelled items exactly as :func:`~pickwise.precomputed.select_with_values`
  does, then :func:`~pickwise.engine.sharded_top_k` takes the top k of the sharded scores;
* :class:`~pickwise.strategies.BADGE`: the strategy's own factored gradient embedding (a, h) in
  shards, then :func:`~pickwise.engine.sharded_kmeanspp`;
* :class:`~pickwise.strategies.CoreSet`: the strategy's embeddings (its storage dtype and
  ``exact`` rule) in shards and the labelled items' embeddings as centres, then
  :func:`~pickwise.engine.sharded_kcenter`;
* :class:`~pickwise.strategies.DBAL`: its informativeness scores in shards, the top ⌈β·k⌉ by
  :func:`~pickwise.engine.sharded_top_k`, then the weighted k-means on the driver over those items only.

Other strategies are refused with the list above. A lost shard (a Ray actor that died) reruns the
selection from the start on a rebuilt engine (:func:`~pickwise.engine.run_with_restarts`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .base import Engine
from .precomputed import run_with_restarts
from .selection import sharded_kcenter, sharded_kmeanspp, sharded_top_k

__all__ = ["ENGINE_STRATEGY_KINDS", "engine_builder", "select_on_engine"]

#: what runs on an engine, in words (errors name it)
ENGINE_STRATEGY_KINDS = ("score-based strategies (uncertainty, MC dropout, EGL, QBC, density, ...), badge, coreset "
                         "and dbal")

BuildEngine = Callable[[Mapping[str, np.ndarray]], Engine]


def select_on_engine(
    build: BuildEngine, strategy: Any, model: Any, x: Any, pool: Any, k: int, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``strategy``'s ``k`` picks from ``pool.unlabeled``, selected over the shards of ``build(arrays)``.

    Parameters
    ----------
    build : callable
        ``build(arrays)`` returns an engine holding ``arrays`` (name -> rows-first array, one row per
        unlabelled item in pool order), e.g. ``lambda a: LocalEngine.from_arrays(a, n_shards=4)``;
        called again after a lost shard.
    strategy, model, x, pool, k, rng
        As in :func:`pickwise.precomputed.select_with_values` (``model`` fitted).

    Returns
    -------
    (picks, values, scores)
        As :func:`~pickwise.precomputed.select_with_values` returns them: pool indices in pick order,
        the value each was picked by, and the score of every unlabelled item (score-based strategies;
        else None).
    """
    from .._validation import check_selection
    from ..precomputed import natural_values
    from ..protocols import ScoreBased
    from ..strategies import BADGE, DBAL, CoreSet
    from ..strategies._base import gather_embeddings

    k = check_selection(x, pool, k, rng)
    unl = pool.unlabeled
    if isinstance(strategy, ScoreBased):
        scores = np.asarray(strategy.scores(model, x, unl, rng=rng), dtype=np.float64)
        pos = run_with_restarts(lambda: build({"score": scores}),
                                lambda eng: sharded_top_k(eng, k, rng=rng, score="score"), rng=rng)
        return unl[pos], scores[pos], scores
    before = copy.deepcopy(rng)
    if isinstance(strategy, DBAL):
        import math

        from ..select import weighted_kmeans_select
        from ..strategies._base import proba_scores, resolve_score

        s = proba_scores(model, x, unl, resolve_score(strategy.score), strategy.chunk_size)
        m = min(unl.shape[0], math.ceil(strategy.beta * k))
        keep = run_with_restarts(lambda: build({"score": s}),
                                 lambda eng: sharded_top_k(eng, m, rng=rng, score="score"), rng=rng)
        emb = gather_embeddings(model, x, unl[keep], strategy.chunk_size, strategy.dtype)
        pos = keep[weighted_kmeans_select(emb, s[keep], k, rng=rng, n_init=strategy.n_init,
                                          max_iter=strategy.max_iter)]
        picks = unl[np.asarray(pos, dtype=np.int64)]
        return picks, natural_values(strategy, model, x, pool, picks, rng=before), None
    if isinstance(strategy, BADGE):
        emb = strategy.embedding(model, x, unl)
        arrays = {"a": emb.a, "h": emb.h}
        pos = run_with_restarts(lambda: build(arrays),
                                lambda eng: sharded_kmeanspp(eng, k, rng=rng, a="a", h="h"), rng=rng)
    elif isinstance(strategy, CoreSet):
        if strategy.neighbors is not None:
            raise ValueError("coreset with a neighbors search does not run on an engine; use the default search")
        dtype = strategy.storage(model, x, unl)
        emb = gather_embeddings(model, x, unl, strategy.chunk_size, dtype)
        lab = gather_embeddings(model, x, pool.labeled, strategy.chunk_size, dtype).reshape(-1, emb.shape[1])
        centres = lab if lab.shape[0] else None
        exact = bool(getattr(strategy, "exact", True))
        pos = run_with_restarts(
            lambda: build({"x": emb}),
            lambda eng: sharded_kcenter(eng, k, centres=centres, rng=rng, x="x",
                                        chunk_size=min(strategy.chunk_size, 1024), exact=exact),
            rng=rng)
    else:
        name = getattr(strategy, "name", type(strategy).__name__)
        raise ValueError(f"strategy {name!r} does not run on an engine; these do: {ENGINE_STRATEGY_KINDS}")
    picks = unl[np.asarray(pos, dtype=np.int64)]
    return picks, natural_values(strategy, model, x, pool, picks, rng=before), None


def engine_builder(engine: str, *, shards: int | None = None, address: str | None = None) -> BuildEngine:
    """``build(arrays)`` for :func:`select_on_engine`: ``engine`` "local" or "ray", ``shards`` (default 1).

    ``address`` (Ray only) joins a running cluster (host:port, ray://host:port or "auto"); without it
    a local Ray instance on 127.0.0.1 is started (see :class:`~pickwise.engine.RayEngine`). Bad values
    raise ``ValueError`` naming them; a missing ray package or an unreachable address too, in one line.
    """
    from .._validation import check_positive_int

    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray'; got {engine!r}")
    n_shards = 1 if shards is None else check_positive_int("shards", shards)
    if address is not None and engine != "ray":
        raise ValueError(f"address {address!r} needs engine 'ray' (got {engine!r})")

    def build(arrays: Mapping[str, np.ndarray]) -> Engine:
        n = next(iter(arrays.values())).shape[0]
        if n_shards > n:
            raise ValueError(f"shards {n_shards} exceeds the {n} unlabelled items to choose from")
        if engine == "local":
            from .local import LocalEngine

            return LocalEngine.from_arrays(arrays, n_shards=n_shards)
        from .ray import RayEngine, open_ray_engine

        return open_ray_engine(
            lambda init: RayEngine.from_arrays(arrays, n_shards=n_shards, address=address, init_options=init), address)

    return build
