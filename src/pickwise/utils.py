"""Small shared helpers: indexing any dataset, chunking, seeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def take(x: Any, indices: np.ndarray) -> Any:
    """Rows ``indices`` of ``x``: numpy/memmap arrays by fancy indexing, other sequences by stacking."""
    idx = np.asarray(indices, dtype=np.int64)
    if isinstance(x, np.ndarray):
        return x[idx]
    if hasattr(x, "iloc"):  # pandas DataFrame / Series: rows by position, never by label
        return x.iloc[idx]
    if hasattr(x, "__array__") and hasattr(x, "shape"):
        return np.asarray(x[idx])
    if isinstance(x, list) and x and isinstance(x[0], str):
        return [x[i] for i in idx]
    items = [x[int(i)] for i in idx]
    if items and isinstance(items[0], str):
        return items
    if items and isinstance(items[0], tuple):  # (x, y, ...) items of a torch-style Dataset: the inputs
        items = [it[0] for it in items]
    return np.stack([np.asarray(it) for it in items]) if items else np.empty((0,))


def n_items(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices covering ``range(n)`` with at most ``size`` items each."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1; got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def derive_seed(seed: int | np.random.SeedSequence, *key: int) -> int:
    """A 32-bit seed derived from ``seed`` and a path ``key``; independent of call order."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + tuple(key))
    return int(child.generate_state(1)[0])


def derive_rng(seed: int | np.random.SeedSequence, *key: int) -> np.random.Generator:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + tuple(key)))
