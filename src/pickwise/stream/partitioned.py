"""A committal selector over a partitioned stream, restartable, with one coin per item for good.

Streams at scale arrive as partitions (Parquet files read in order, Kafka partitions, shards of a
dataset) and are delivered *at least once*: after a crash the reader replays from its last commit, so
items the selector already decided on come again. Two rules keep the decisions those of one
uninterrupted pass:

1. **The coin belongs to the item.** The uniform an item is decided with is :func:`id_uniforms` of
   (seed, item id) — a counter-based hash (SplitMix64), not a draw from a generator whose position
   depends on how many items came before, how they were chunked or where the run restarted.
2. **An item is decided once.** :func:`select_partitions` keeps the ids decided so far and the
   selector's state in a checkpoint (``state``, an ``.npz`` rewritten atomically after every chunk);
   a restarted run loads it and skips every id it holds, so a replayed item never gets a second flip
   and never moves the selector's state (VeSSAL's Σ̂⁻¹ and A_t) twice.

:func:`parquet_id_chunks` reads ``(ids, x)`` chunks from a Parquet file or a folder of them (sorted,
non-recursive), the layout of :mod:`pickwise.engine.parquet` with a feature column.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int

__all__ = ["id_uniforms", "parquet_id_chunks", "select_partitions"]

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _ids64(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).view(np.uint64)
    if arr.dtype.kind in "USO":
        return np.array([int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little")
                         for i in arr.tolist()], dtype=np.uint64)
    raise ValueError(f"ids must be integers or strings; got dtype {arr.dtype}")


def id_uniforms(seed: int, ids: Any) -> np.ndarray:
    """One uniform in [0, 1) per id, a function of (seed, id) only: the same id gets the same value in
    any order, chunking or run. Integer ids are used as they are, strings through an 8-byte BLAKE2b;
    two SplitMix64 rounds mix the seed in; the top 53 bits make the double."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    x = _splitmix(_splitmix(np.full(1, seed, dtype=np.uint64))[0] ^ _ids64(ids))
    x = _splitmix(x)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _save(path: Path, selector: Any, decided: np.ndarray, queried: list[Any], seed: int) -> None:
    from .._fs import atomic_write

    state = {f"selector.{k}": np.asarray(v) for k, v in selector.state_dict().items()}
    meta = json.dumps({"seed": seed, "selector": repr(selector), "n_decided": int(decided.shape[0])})
    with atomic_write(path) as f:
        np.savez(f, decided=decided, queried=np.asarray(queried), meta=np.asarray(meta), **state)


def _load(path: Path, selector: Any, seed: int) -> tuple[set, list[Any]]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta["seed"] != seed or meta["selector"] != repr(selector):
            raise ValueError(f"state {str(path)!r} belongs to another run (seed {meta['seed']}, {meta['selector']}); "
                             f"this run: seed {seed}, {selector!r}")
        selector.load_state_dict({k[len("selector."):]: z[k] for k in z.files if k.startswith("selector.")})
        return set(z["decided"].tolist()), z["queried"].tolist()


def select_partitions(
    selector: Any,
    partitions: Iterable[Iterable[tuple[Sequence[Any], Any]]],
    *,
    seed: int,
    transform: Callable[[Any], np.ndarray] | None = None,
    state: str | Path | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decide on every item of ``partitions`` (in order), each with its own coin; yields ``(ids, queried)``
    per chunk: the chunk's ids not decided before, and those of them queried.

    Parameters
    ----------
    selector : a pickwise stream selector (``VeSSAL``, ``PacedVeSSAL``, ``StreamUniform``, ...), used as
        given (not cloned); its rate (q, or budget and length) is its own.
    partitions : iterable of iterables of ``(ids, x)`` chunks; ids unique across the stream (integers or
        strings), x of shape (len(ids), ...).
    seed : int
        The coins: :func:`id_uniforms` (seed, id).
    transform : callable, optional
        ``z = transform(x)`` (e.g. a frozen model's gradient embedding); default x itself.
    state : path, optional
        Checkpoint (.npz): loaded when it exists (the same seed and selector settings are required),
        rewritten atomically after every chunk. Ids it holds are skipped (a replay never flips twice).
    """
    seed = check_positive_int("seed", seed, allow_zero=True)
    path = None if state is None else Path(state)
    decided: set = set()
    queried: list[Any] = []
    if path is not None and path.exists():
        decided, queried = _load(path, selector, seed)
    for part in partitions:
        for ids, x in part:
            ids = np.asarray(ids)
            if len(set(ids.tolist())) != ids.shape[0]:
                raise ValueError("a chunk repeats an id; ids must be unique across the stream")
            fresh = np.array([i not in decided for i in ids.tolist()], dtype=bool)
            if not fresh.any():
                yield ids[:0], ids[:0]
                continue
            new_ids = ids[fresh]
            z = np.asarray(x)[fresh] if transform is None else transform(np.asarray(x)[fresh])
            chosen = selector.observe_uniforms(z, id_uniforms(seed, new_ids))
            decided.update(new_ids.tolist())
            queried.extend(new_ids[chosen].tolist())
            if path is not None:
                _save(path, selector, np.asarray(sorted(decided, key=str)), queried, seed)
            yield new_ids, new_ids[chosen]


def parquet_id_chunks(source: str | Path, *, x_column: str = "x", id_column: str = "id",
                      chunk_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids, x)`` chunks from a Parquet file or a folder of ``*.parquet`` (sorted, not recursive); ``x``
    a fixed-size list column (rows of floats) or a numeric column (one feature)."""
    from ..engine.parquet import open_parquet, parquet_files

    chunk_size = check_positive_int("chunk_size", chunk_size)
    import pyarrow as pa

    for f in parquet_files(source):
        pf = open_parquet(f)
        for col in (x_column, id_column):
            if col not in pf.schema_arrow.names:
                raise ValueError(f"{str(f)!r} has no column {col!r} (it has {', '.join(pf.schema_arrow.names)})")
        for batch in pf.iter_batches(batch_size=chunk_size, columns=[id_column, x_column]):
            ids = batch.column(0).to_numpy(zero_copy_only=False)
            col = batch.column(1)
            if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
                x = col.flatten().to_numpy(zero_copy_only=False).reshape(len(ids), -1)
            else:
                x = col.to_numpy(zero_copy_only=False).reshape(len(ids), 1)
            yield ids, np.asarray(x, dtype=np.float64)
