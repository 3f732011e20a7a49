"""Compute-efficient candidate subsampling over a sharded pool: draw the candidates to re-score from history.

:class:`pickwise.wrappers.Subsample` re-scores, each round, only a candidate pool drawn from the
items' latest scores (Gumbel-top-m over log-weights ``values / tau``, never-scored items at the best
known value). On a pool of 100M items those latest values do not belong on one machine: here every
shard reads its own items' history from the earlier rounds' Parquet folders
(:class:`HistoryLoader`; the folders :func:`~pickwise.engine.score_to_parquet` writes, items
identified by integer ids or by the ``row`` column: :func:`history_loaders`' ``key``) and :func:`sharded_candidates` draws the same candidates as ``Subsample.select`` would:

* eligible = the shard's unlabelled items, less those whose latest value is below ``prune_below``
  (unless fewer than k would remain: one count per shard);
* m = ``sub.n_candidates(#eligible, k)``; if m covers every eligible item, all are candidates and
  the generator is untouched (``Subsample``'s own rule);
* else the never-scored items get the largest known value (one max per shard), the log-weights are
  :func:`~pickwise.wrappers.candidate_weights`, and the Gumbel noise is the local path's
  ``rng.gumbel(size=#eligible)`` in pool order: shard s draws its slice from a copy of the generator
  advanced by the number of eligible items before it (PCG64 / PCG64DXSM jump ahead exactly; other
  bit generators draw on the driver, shard by shard), and the caller's ``rng`` is left where the
  local draw leaves it;
* the m largest keys are found without moving them: a bisection on the keys' order (≤ 64 rounds of
  one count per shard) finds the m-th largest key, then each shard returns its items above it (and,
  for an exact tie at the threshold, the first in pool order).

So ``Subsample`` and this function return the same candidates from the same history, labels and
generator state (tested); the one caveat is numpy's own: a Gumbel draw rejects a uniform of exactly
0 and draws again (probability 2⁻⁵³ per item), which would shift the later shards' noise by one.
The driver holds only O(shards) numbers and the m candidates it returns.

Typical round on a large pool (every command also takes ``--engine ray --shards N``)::

    pickwise candidates --history scores/r1 scores/r2 --n-items 100000000 --labeled labeled.npy \
        --k 1000 --alpha 0.05 --seed 3 --out cand.npy        # 5M candidates drawn from the history
    pickwise score --inputs pool.npy --rows cand.npy --out scores/r3 ...   # score only those
    pickwise select --parquet scores/r3 --strategy entropy --k 1000 --out picks.csv

``--rows`` takes row numbers of the input: for a Parquet pool whose integer ids are not its row
numbers, draw the candidates with ``--key row``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_rng
from .base import Engine, drop_rows, shard_drops
from .selection import _ADVANCE, _drop, _raise_first

__all__ = ["HistoryLoader", "history_loaders", "sharded_candidates"]

VALUES = "values"
INDEX = "index"


@dataclass(frozen=True)
class HistoryLoader:
    """A shard read where it lives: the latest ``column`` of items ``start .. stop`` over ``rounds``.

    ``rounds``: tuples of Parquet files, one tuple per earlier round, oldest first; ``keys`` name
    each round's column of item indices (``row``, or ``id`` where a round has no ``row``). Only the
    row groups whose statistics of that column meet ``start .. stop`` are read. The shard holds
    ``values`` (float64, NaN where no round scored the item; a later round overwrites an earlier
    one) without the items ``drop``, and ``index`` (their item indices) when ``index`` is given.
    """

    rounds: tuple[tuple[str, ...], ...]
    column: str
    start: int
    stop: int
    drop: tuple[int, ...] = ()
    index: str | None = INDEX
    keys: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """The number of items the shard will hold."""
        return self.stop - self.start - len(self.drop)

    def __call__(self) -> dict[str, np.ndarray]:
        import pyarrow.dataset as ds

        values = np.full(self.stop - self.start, np.nan)
        for i, files in enumerate(self.rounds):
            key = self.keys[i] if self.keys else "id"
            table = ds.dataset(list(files), format="parquet").to_table(
                columns=[key, self.column], filter=(ds.field(key) >= self.start) & (ds.field(key) < self.stop))
            ids = table.column(key).to_numpy().astype(np.int64, copy=False)
            values[ids - self.start] = table.column(self.column).to_numpy(zero_copy_only=False).astype(np.float64)
        return drop_rows({VALUES: values}, self.start, self.stop, self.drop, self.index)


def history_loaders(
    rounds: Sequence[str | Path],
    n_items: int,
    n_shards: int,
    *,
    score: str = "entropy",
    exclude: Any = None,
    key: str = "auto",
) -> list[HistoryLoader]:
    """Split items ``0 .. n_items − 1`` into ``n_shards`` :class:`HistoryLoader` s over the round folders.

    Only the files' footers are read here. ``key`` names the column of item indices in every round
    (:func:`pickwise.engine.score.item_key`: "id" for integer ids, "row" for the input row that
    ``pickwise score`` writes whatever the ids, "auto" = "id" where the ids are integers, else "row");
    every round needs the column ``score_<score>``, and the statistics of every row group must lie
    in 0 .. n_items − 1 (``ValueError`` naming the file otherwise). ``exclude`` (item indices, e.g. the labelled items)
    are left out of every shard.
    """
    from .._validation import check_positive_int
    from .parquet import open_parquet, parquet_files
    from .score import item_key

    n_items = check_positive_int("n_items", n_items)
    if isinstance(rounds, (str, Path)) or not rounds:
        raise ValueError(f"rounds must be a non-empty list of earlier rounds' folders; got {rounds!r}")
    column = f"score_{score}"
    parts, keys = [], []
    for r in rounds:
        files = parquet_files(r)
        name_key = item_key(files, key)
        for f in files:
            meta = open_parquet(f)
            schema = meta.schema_arrow
            for name in (name_key, column):
                if name not in schema.names:
                    raise ValueError(f"{str(f)!r} has no column {name!r} (it has {', '.join(schema.names)})")
            if not (str(schema.field(name_key).type).startswith(("int", "uint"))):
                raise ValueError(f"{name_key}s of {str(f)!r} must be integer item indices; got {schema.field(name_key).type}")
            col = schema.names.index(name_key)
            for g in range(meta.metadata.num_row_groups):
                st = meta.metadata.row_group(g).column(col).statistics
                if st is not None and st.has_min_max:
                    lo, hi = st.min, st.max
                else:  # a writer without statistics: read the indices once
                    idx = meta.read_row_group(g, columns=[name_key]).column(0).to_numpy()
                    lo, hi = (int(idx.min()), int(idx.max())) if idx.shape[0] else (0, 0)
                if lo < 0 or hi >= n_items:
                    raise ValueError(f"{str(f)!r} holds {name_key}s outside 0 .. {n_items - 1} "
                                     f"(row group {g}: {lo} .. {hi})")
        parts.append(tuple(str(f.resolve()) for f in files))
        keys.append(name_key)
    return [HistoryLoader(tuple(parts), column, lo, hi, drop, INDEX, tuple(keys))
            for lo, hi, drop in shard_drops(n_items, n_shards, exclude)]


# --------------------------------------------------------------------------- shard-side steps


def _cs_eligible(state: dict, arg: tuple[str, float | None]) -> Any:
    """Check the values; count the items not pruned (and all); keep both masks."""
    name, prune_below = arg
    if name not in state:
        return f"the shards hold no array {name!r} (they hold {sorted(k for k in state if k[0] != '_')})"
    v = np.asarray(state[name], dtype=np.float64)
    if v.shape != (state["n"],):
        return f"{name} must have shape (n,) per shard; got shape {v.shape} for {state['n']} rows"
    inf = np.flatnonzero(np.isinf(v))
    if inf.shape[0]:
        return f"{name} must be finite or NaN (never scored); got {v[inf[0]]} at position {state['offset'] + int(inf[0])}"
    state["_cs_v"] = v
    keep = ~(v < prune_below) if prune_below is not None else np.ones(v.shape[0], dtype=bool)
    state["_cs_keep"] = keep
    return int(keep.sum())


def _cs_use(state: dict, pruned: bool) -> tuple[int, float | None]:
    """Fix the eligible mask (pruned or all); report its size and largest known value."""
    v = state["_cs_v"]
    keep = state.pop("_cs_keep")
    elig = keep if pruned else np.ones(v.shape[0], dtype=bool)
    state["_cs_elig"] = np.flatnonzero(elig)
    ve = v[state["_cs_elig"]]
    known = np.isfinite(ve)
    return int(ve.shape[0]), (float(ve[known].max()) if known.any() else None)


def _cs_keys(state: dict, arg: tuple) -> None:
    """Log-weights plus this shard's slice of the Gumbel noise, as order-preserving int64 keys."""
    from ..wrappers import candidate_weights

    fill, tau, weighting, noise = arg
    v = state["_cs_v"][state["_cs_elig"]]
    log_w = candidate_weights(np.where(np.isfinite(v), v, fill), tau=tau, weighting=weighting)
    if isinstance(noise, np.ndarray):
        g = noise
    else:
        name, st, before = noise  # before: eligible items in earlier shards, by shard offset
        bg = getattr(np.random, name)()
        bg.state = st
        bg.advance(before[state["offset"]])
        g = np.random.Generator(bg).gumbel(size=v.shape[0])
    keys = (log_w + g) + 0.0  # + 0.0: −0.0 orders as 0.0
    bits = keys.view(np.int64)
    state["_cs_key"] = bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))


def _cs_range(state: dict, _: Any) -> tuple[int, int] | None:
    key = state["_cs_key"]
    return (int(key.min()), int(key.max())) if key.shape[0] else None


def _cs_count(state: dict, t: int) -> tuple[int, int]:
    """Items with key > t and key == t."""
    key = state["_cs_key"]
    return int(np.count_nonzero(key > t)), int(np.count_nonzero(key == t))


def _cs_take(state: dict, arg: tuple[int, dict[int, int], str | None]) -> np.ndarray:
    """The shard's candidates: keys above t, and the first ``ties[offset]`` keys equal to t; as item indices."""
    t, ties_by_offset, index = arg
    key, elig = state["_cs_key"], state["_cs_elig"]
    ties = ties_by_offset[state["offset"]]
    take = key > t
    if ties:
        take[np.flatnonzero(key == t)[:ties]] = True
    rows = elig[take]
    return (state[index][rows] if index is not None and index in state else rows + state["offset"]).astype(np.int64)


def _cs_all(state: dict, index: str | None) -> np.ndarray:
    elig = state["_cs_elig"]
    return (state[index][elig] if index is not None and index in state else elig + state["offset"]).astype(np.int64)


def _count(engine: Engine, t: int) -> tuple[int, int]:
    parts = engine.map(_cs_count, t)
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


# ---------------------------------------------------------------------------------------- driver


def sharded_candidates(
    engine: Engine,
    sub: Any,
    k: int,
    *,
    rng: np.random.Generator,
    values: str = VALUES,
    index: str | None = INDEX,
) -> np.ndarray:
    """The candidates ``sub.select`` would re-score this round, drawn over a sharded pool; sorted.

    Parameters
    ----------
    engine : Engine
        Shards of the unlabelled items holding ``values`` (the latest score, NaN if never scored)
        and, optionally, ``index`` (each row's item index), e.g. from :func:`history_loaders`.
    sub : pickwise.wrappers.Subsample
        Supplies ``alpha``, ``tau``, ``weighting``, ``prune_below`` and ``n_candidates``.
    k : int
        The round's batch size (1 ≤ k ≤ unlabelled items).
    rng : numpy Generator
        Consumed as ``Subsample.select`` consumes it before scoring (one Gumbel per eligible item
        when there is a draw).

    Returns
    -------
    ndarray of int64
        Item indices (the shards' ``index``; without it, positions in the sharded pool), ascending.
        The first round of ``Subsample`` (no history yet) scores every unlabelled item: call this
        only once there is history.
    """
    from .._validation import check_batch_size
    from ..wrappers import Subsample

    if not isinstance(sub, Subsample):
        raise ValueError(f"sub must be a pickwise.wrappers.Subsample (its alpha, tau, weighting, prune_below); got {sub!r}")
    check_rng(rng)
    try:
        counts = engine.map(_cs_eligible, (values, sub.prune_below))
        _raise_first(counts)
        n = int(sum(engine.sizes))
        k = check_batch_size(k, n, what="the number of unlabelled items")
        pruned = sub.prune_below is not None and sum(counts) >= k
        used = engine.map(_cs_use, pruned)
        sizes = [u[0] for u in used]
        n_elig = int(sum(sizes))
        m = sub.n_candidates(n_elig, k)
        if m >= n_elig:
            return np.concatenate(engine.map(_cs_all, index))
        known = [u[1] for u in used if u[1] is not None]
        fill = max(known) if known else 0.0
        # per-shard values travel in one map keyed by the shard's offset (an empty shard shares its
        # offset with the next one; it has no eligible items, so the shared entry is right for both)
        offs = [int(o) for o in engine.offsets]
        bg = rng.bit_generator
        name = type(bg).__name__
        if name in _ADVANCE:
            st = bg.state
            before = dict(zip(offs, (int(b) for b in np.cumsum([0, *sizes[:-1]]))))
            engine.map(_cs_keys, engine.broadcast((fill, sub.tau, sub.weighting, (name, st, before))))
            bg.advance(n_elig)  # what rng.gumbel(size=n_elig) leaves, with any buffered 32-bit draw kept
            after = bg.state
            after["has_uint32"], after["uinteger"] = st["has_uint32"], st["uinteger"]
            bg.state = after
        else:
            for s, size in enumerate(sizes):
                engine.call(s, _cs_keys, (fill, sub.tau, sub.weighting, rng.gumbel(size=size)))
        ranges = [r for r in engine.map(_cs_range) if r is not None]
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        while lo < hi:  # the largest t with #(key >= t) >= m: the m-th largest key
            mid = lo + (hi - lo + 1) // 2
            above, tied = _count(engine, mid)
            if above + tied >= m:
                lo = mid
            else:
                hi = mid - 1
        parts = engine.map(_cs_count, lo)
        need = m - sum(p[0] for p in parts)  # keys equal to the threshold, first in pool order
        quotas = {}
        for off, (_, tied) in zip(offs, parts):
            quotas[off] = min(tied, need)
            need -= quotas[off]
        return np.concatenate(engine.map(_cs_take, (lo, quotas, index)))
    finally:  # no working arrays left on the shards, even after an error
        engine.map(_drop, "_cs_")
