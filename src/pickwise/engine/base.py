"""The executor interface: a pool split into stateful shards, with map / scan / call on the driver.

A shard is a ``dict`` of arrays (its rows of the pool, in pool order) plus two ints, ``offset``
(its first global row) and ``n`` (its number of rows). Shards are contiguous and ordered: shard s
holds global rows ``offset_s .. offset_s + n_s − 1`` and ``offset_{s+1} = offset_s + n_s``.
Algorithms keep their running state (``mind``, running sums) in the shard's dict between steps, so
one step moves only a small argument (a centre, a few floats) and a small result.

Operations (every ``fn`` is a plain module-level function, so that Ray can ship it by reference):

* ``map(fn, arg)`` → ``[fn(state_s, arg) for every shard]``, in parallel where the engine can;
* ``scan(fn, init, prepare=..., arg=...)`` → first ``prepare(state_s, arg)`` on every shard (in
  parallel), then ``carry, r_s = fn(state_s, carry)`` shard by shard in pool order: a sequential
  fold for the few quantities whose floating-point value depends on the order of summation;
* ``call(s, fn, arg)`` → ``fn(state_s, arg)`` on one shard;
* ``broadcast(value)`` → a handle that ``map`` / ``call`` / ``scan`` accept in place of ``arg``
  (Ray stores it once in the object store instead of once per shard).

The driver reduces the small results itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._validation import check_positive_int

__all__ = ["Engine", "Loader", "NpyLoader", "npy_loaders", "shard_bounds", "split_arrays"]

#: a callable run where the shard lives (in the Ray actor), returning the shard's arrays
Loader = Callable[[], Mapping[str, np.ndarray]]


@runtime_checkable
class Engine(Protocol):
    """A pool held as ordered, contiguous, stateful shards (see the module docstring)."""

    @property
    def sizes(self) -> tuple[int, ...]:
        """Rows per shard, in pool order."""
        ...

    def map(self, fn: Callable[[dict, Any], Any], arg: Any = None) -> list[Any]:
        """``[fn(state_s, arg) for each shard s]`` in shard order."""
        ...

    def call(self, shard: int, fn: Callable[[dict, Any], Any], arg: Any = None) -> Any:
        """``fn(state_shard, arg)`` on one shard."""
        ...

    def scan(
        self,
        fn: Callable[[dict, Any], tuple[Any, Any]],
        init: Any,
        *,
        prepare: Callable[[dict, Any], Any] | None = None,
        arg: Any = None,
    ) -> tuple[Any, list[Any]]:
        """``prepare`` on every shard, then the fold ``carry, r_s = fn(state_s, carry)``; (carry, [r_s])."""
        ...

    def broadcast(self, value: Any) -> Any:
        """A handle for ``value`` that the other operations accept as ``arg``."""
        ...

    def close(self) -> None:
        """Release the shards (and anything the engine started)."""
        ...


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """``n_shards`` contiguous (start, stop) row ranges covering ``0 .. n``, sizes differing by ≤ 1."""
    n_shards = check_positive_int("n_shards", n_shards)
    if n_shards > max(n, 1):
        raise ValueError(f"n_shards={n_shards} must be at most the number of rows ({n})")
    edges = [n * s // n_shards for s in range(n_shards + 1)]
    return list(itertools.pairwise(edges))


def split_arrays(arrays: Mapping[str, Any], n_shards: int) -> list[dict[str, np.ndarray]]:
    """Split equal-length arrays (rows first) into ``n_shards`` contiguous shards (views, no copies)."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(f"arrays must be a non-empty mapping of name -> array; got {type(arrays).__name__}")
    arrs = {str(name): np.asarray(a) for name, a in arrays.items()}
    lengths = {name: (a.shape[0] if a.ndim else None) for name, a in arrs.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must all have the same number of rows; got {lengths}")
    n = next(iter(lengths.values()))
    return [{name: a[lo:hi] for name, a in arrs.items()} for lo, hi in shard_bounds(n, n_shards)]


def new_state(arrays: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """A shard's state: its arrays plus ``offset`` and ``n`` (checked to agree)."""
    state: dict[str, Any] = {str(k): np.asarray(v) for k, v in arrays.items()}
    lengths = {k: v.shape[0] for k, v in state.items() if v.ndim}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"a shard's arrays must all have the same number of rows; got {lengths}")
    state["n"] = next(iter(lengths.values()), 0)
    state["offset"] = int(offset)
    return state


def offsets(sizes: Sequence[int]) -> np.ndarray:
    """First global row of each shard: the exclusive prefix sums of ``sizes``; int64 (n_shards,)."""
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))[:-1]]).astype(np.int64)


@dataclass(frozen=True)
class NpyLoader:
    """A shard read where it lives: rows ``start .. stop`` of each named ``.npy`` file (memory-mapped).

    ``NpyLoader({"a": "a.npy", "h": "h.npy"}, 0, 1000)()`` is ``{"a": A[0:1000], "h": H[0:1000]}``
    with A, H opened by ``np.load(path, mmap_mode="r")`` (no pickle: ``allow_pickle`` stays off).
    ``drop`` (sorted global rows inside ``start .. stop``) leaves those rows out, e.g. the labelled
    items; ``index`` names an extra int64 array holding each kept row's global position. The arrays
    named in ``axis1`` hold their items on axis 1 (MC draws (T, N, K)): the shard reads
    ``X[:, start:stop]`` and holds it rows first, as (rows, T, K).
    """

    paths: Mapping[str, str]
    start: int
    stop: int
    drop: tuple[int, ...] = ()
    index: str | None = None
    axis1: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """The number of rows the shard will hold."""
        return self.stop - self.start - len(self.drop)

    def __call__(self) -> dict[str, np.ndarray]:
        out = {}
        for name, path in self.paths.items():
            arr = np.load(path, mmap_mode="r")
            if name in self.axis1:
                out[name] = np.ascontiguousarray(np.moveaxis(arr[:, self.start : self.stop], 1, 0))
            else:
                out[name] = arr[self.start : self.stop]
        return drop_rows(out, self.start, self.stop, self.drop, self.index)


def drop_rows(arrays: dict[str, np.ndarray], start: int, stop: int, drop: Sequence[int],
              index: str | None) -> dict[str, np.ndarray]:
    """A loaded shard (global rows ``start .. stop``, rows first) without the global rows ``drop``,
    plus an int64 array ``index`` of the kept rows' global positions when ``index`` is given."""
    rows = np.arange(start, stop, dtype=np.int64)
    if drop:
        keep = np.ones(stop - start, dtype=bool)
        keep[np.asarray(drop, dtype=np.int64) - start] = False
        arrays = {name: a[keep] for name, a in arrays.items()}
        rows = rows[keep]
    if index is not None:
        arrays[index] = rows
    return arrays


def shard_drops(n: int, n_shards: int, exclude: Any) -> list[tuple[int, int, tuple[int, ...]]]:
    """``(start, stop, dropped rows)`` of each of ``n_shards`` contiguous shards of ``n`` rows, the global
    positions ``exclude`` split among them (``ValueError`` naming positions outside 0 .. n-1)."""
    drop = np.unique(np.asarray([] if exclude is None else exclude, dtype=np.int64))
    if drop.shape[0] and (drop[0] < 0 or drop[-1] >= n):
        raise ValueError(f"exclude holds positions outside 0 .. {n - 1}: {drop[(drop < 0) | (drop >= n)][:5].tolist()}")
    return [(lo, hi, tuple(int(i) for i in drop[np.searchsorted(drop, lo) : np.searchsorted(drop, hi)]))
            for lo, hi in shard_bounds(n, n_shards)]


def npy_loaders(
    paths: Mapping[str, str | Path],
    n_shards: int,
    *,
    exclude: Any = None,
    index: str | None = None,
    axis1: Sequence[str] = (),
) -> list[NpyLoader]:
    """Split equal-length ``.npy`` files (name -> path) into ``n_shards`` contiguous :class:`NpyLoader` s.

    Only the files' headers are read here; the shards read their own rows. ``exclude`` (global row
    positions) are left out of every shard, so the shards hold the other rows in order: position p
    of the sharded pool is the p-th row not excluded. ``index``, ``axis1``: see :class:`NpyLoader`
    (the items of an ``axis1`` array are counted on its axis 1).
    """
    if not isinstance(paths, Mapping) or not paths:
        raise ValueError(f"paths must be a non-empty mapping of name -> .npy path; got {paths!r}")
    rows = {}
    for name, path in paths.items():
        if not Path(path).is_file():
            raise ValueError(f"no .npy file at {str(path)!r} (array {name!r})")
        shape = np.load(path, mmap_mode="r").shape
        rows[name] = shape[1:2] if name in axis1 else shape[:1]
    if any(r == () for r in rows.values()) or len(set(rows.values())) != 1:
        raise ValueError(f"the .npy files must all have the same number of rows; got {rows}")
    n = next(iter(rows.values()))[0]
    files = {str(k): str(Path(v).resolve()) for k, v in paths.items()}
    return [NpyLoader(files, lo, hi, part, index, tuple(str(a) for a in axis1))
            for lo, hi, part in shard_drops(n, n_shards, exclude)]
