"""Execution engines: a pool held as ordered, stateful shards, and selection written once over them.

* :class:`LocalEngine`: shards as numpy arrays in this process (one shard = the single-machine path).
* :class:`RayEngine`: one Ray actor per shard (``pip install "pickwise[distributed]"``); ray is
  imported only when a RayEngine is built.
* :func:`sharded_top_k`, :func:`sharded_kmeanspp` (BADGE), :func:`sharded_kcenter` (core-set):
  exact, with the picks of :func:`pickwise.select.top_k`, :func:`~pickwise.select.kmeanspp_seeding`
  and :func:`~pickwise.select.kcenter_greedy` on the concatenated shards.
* :func:`sharded_kmeans_parallel` (k-means||) and :func:`sharded_kcenter_two_round` (composable
  core-set): opt-in approximations in a few rounds instead of k (:mod:`pickwise.engine.approx`).
* :func:`score_to_parquet`: a model's probabilities, embeddings, MC draws and scores for a pool, written
  as Parquet (:mod:`pickwise.engine.parquet`), in this process or by a Ray Data actor pool.
* :func:`sharded_candidates` over :func:`history_loaders`: compute-efficient candidate subsampling,
  the candidates :class:`pickwise.wrappers.Subsample` draws, each shard reading its own items'
  latest scores from earlier rounds' Parquet (:mod:`pickwise.engine.subsample`).
* :func:`select_sharded`: the catalog strategies of :data:`ENGINE_STRATEGIES` over precomputed
  outputs (``pickwise select --engine``); :func:`run_with_restarts` reruns a selection from the
  start on a rebuilt engine when a shard is lost.

Example::

    from pickwise.engine import LocalEngine, RayEngine, sharded_kmeanspp
    with RayEngine.from_arrays({"a": a, "h": h}, n_shards=4) as eng:
        picks = sharded_kmeanspp(eng, 1000, rng=np.random.default_rng(0))
"""

from __future__ import annotations

from typing import Any

from .base import Engine, Loader, NpyLoader, npy_loaders, shard_bounds, split_arrays
from .local import LocalEngine
from .precomputed import ENGINE_STRATEGIES, run_with_restarts, select_sharded
from .approx import sharded_kcenter_two_round, sharded_kmeans_parallel
from .score import TorchCheckpoint, latest_scores, score_rows, score_to_parquet
from .selection import sharded_kcenter, sharded_kmeanspp, sharded_top_k
from .subsample import history_loaders, sharded_candidates

__all__ = [
    "ENGINE_STRATEGIES",
    "Engine",
    "Loader",
    "LocalEngine",
    "NpyLoader",
    "RayEngine",
    "TorchCheckpoint",
    "history_loaders",
    "latest_scores",
    "npy_loaders",
    "run_with_restarts",
    "score_rows",
    "score_to_parquet",
    "select_sharded",
    "shard_bounds",
    "sharded_candidates",
    "sharded_kcenter",
    "sharded_kcenter_two_round",
    "sharded_kmeans_parallel",
    "sharded_kmeanspp",
    "sharded_top_k",
    "split_arrays",
]


def __getattr__(name: str) -> Any:
    if name == "RayEngine":  # imports nothing of ray until a RayEngine is built
        from .ray import RayEngine

        return RayEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
