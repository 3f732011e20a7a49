"""Stream sources: items in chunks from arrays, iterables and files, never loading a file whole.

Every source yields ``(x_chunk, y_chunk)``: ``x_chunk`` an ndarray of shape (m, ...) with
1 ≤ m ≤ ``chunk_size`` (float64 for files), ``y_chunk`` an int64 ndarray of shape (m,) or None when
the source has no labels. Chunks arrive in file/row order.

File formats:

* JSON Lines (stdlib): one object per line, features under ``x_key`` (a number or a nested list),
  the label under ``y_key`` when given; with ``x_key=None`` each line is the feature list itself.
  Blank lines are skipped.
* CSV: a header row; features are ``columns`` (default: every column except ``label_column``).
  Read with ``pandas.read_csv(chunksize=...)`` when pandas is installed, else with the ``csv``
  module (``engine="csv"`` forces it).
* Parquet: ``pyarrow.parquet.ParquetFile.iter_batches`` (pyarrow is imported only here). Numeric
  columns become the feature columns; a single list-typed feature column becomes the rows of x.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int

__all__ = [
    "Chunk",
    "array_chunks",
    "iterable_chunks",
    "jsonl_chunks",
    "csv_chunks",
    "parquet_chunks",
    "open_chunks",
    "select_stream",
]

Chunk = tuple[np.ndarray, "np.ndarray | None"]
PathLike = str | os.PathLike


def _labels(values: Sequence[Any], where: str) -> np.ndarray:
    y = np.asarray(values)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
            raise ValueError(f"labels must be integer class ids; got {bad!r} in {where}")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class ids; got dtype {y.dtype} in {where}")
    return y.astype(np.int64)


def array_chunks(x: Any, y: Any = None, *, chunk_size: int = 1024) -> Iterator[Chunk]:
    """Consecutive row chunks of an array (or memory map) ``x`` and optional labels ``y``."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    n = x.shape[0]
    if y is not None and len(y) != n:
        raise ValueError(f"x and y must have the same length; got {n} and {len(y)}")
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        yield np.asarray(x[start:stop]), (None if y is None else _labels(y[start:stop], "y"))


def iterable_chunks(items: Iterable[Any], *, chunk_size: int = 1024, labelled: bool = False) -> Iterator[Chunk]:
    """Chunks from any iterable of rows, or of ``(row, label)`` pairs when ``labelled``."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    it = iter(items)
    while True:
        block = list(itertools.islice(it, chunk_size))
        if not block:
            return
        if labelled:
            try:
                xs, ys = zip(*block)
            except (TypeError, ValueError) as e:
                raise ValueError(f"labelled=True needs (row, label) pairs; got {block[0]!r:.80}") from e
            yield np.stack([np.asarray(r) for r in xs]), _labels(ys, "the iterable")
        else:
            yield np.stack([np.asarray(r) for r in block]), None


def jsonl_chunks(
    path: PathLike, *, x_key: str | None = "x", y_key: str | None = None, chunk_size: int = 1024
) -> Iterator[Chunk]:
    """Chunks from a JSON Lines file read line by line (see the module doc for the row format)."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    with open(path, encoding="utf-8") as f:
        xs: list[Any] = []
        ys: list[Any] = []
        lineno = 0
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
            try:
                xs.append(obj if x_key is None else obj[x_key])
                if y_key is not None:
                    ys.append(obj[y_key])
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: missing key {e} (x_key={x_key!r}, y_key={y_key!r})") from e
            if len(xs) == chunk_size:
                yield _float_rows(xs, path, lineno), (_labels(ys, f"{path}:{lineno}") if y_key else None)
                xs, ys = [], []
        if xs:
            yield _float_rows(xs, path, lineno), (_labels(ys, f"{path}:{lineno}") if y_key else None)


def _float_rows(rows: list[Any], path: PathLike, lineno: int) -> np.ndarray:
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} up to line {lineno}: rows are not numeric arrays of one shape ({e})") from e
    return arr.reshape(arr.shape[0], -1) if arr.ndim == 1 else arr


def csv_chunks(
    path: PathLike,
    *,
    label_column: str | None = None,
    columns: Sequence[str] | None = None,
    chunk_size: int = 1024,
    engine: str = "auto",
) -> Iterator[Chunk]:
    """Chunks from a CSV file with a header row (pandas when available, else the csv module)."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    check_choice("engine", engine, ("auto", "pandas", "csv"))
    if engine != "csv":
        try:
            import pandas as pd
        except ImportError:
            if engine == "pandas":
                raise ImportError("engine='pandas' needs pandas: pip install 'pickwise[data]'") from None
        else:
            yield from _csv_pandas(pd, path, label_column, columns, chunk_size)
            return
    yield from _csv_stdlib(path, label_column, columns, chunk_size)


def _feature_names(header: Sequence[str], label_column: str | None, columns: Sequence[str] | None, path) -> list[str]:
    if label_column is not None and label_column not in header:
        raise ValueError(f"{path}: no label column {label_column!r}; columns are {list(header)[:20]}")
    names = list(columns) if columns is not None else [c for c in header if c != label_column]
    missing = [c for c in names if c not in header]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r}; columns are {list(header)[:20]}")
    if not names:
        raise ValueError(f"{path}: no feature columns")
    return names


def _csv_pandas(pd, path, label_column, columns, chunk_size) -> Iterator[Chunk]:
    header = list(pd.read_csv(path, nrows=0).columns)
    names = _feature_names(header, label_column, columns, path)
    for frame in pd.read_csv(path, chunksize=chunk_size):
        try:
            x = frame[names].to_numpy(dtype=np.float64)
        except ValueError as e:
            raise ValueError(f"{path}: feature columns must be numeric ({e})") from e
        yield x, (None if label_column is None else _labels(frame[label_column].to_numpy(), str(path)))


def _csv_stdlib(path, label_column, columns, chunk_size) -> Iterator[Chunk]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        names = _feature_names(header, label_column, columns, path)
        cols = [header.index(c) for c in names]
        ycol = None if label_column is None else header.index(label_column)
        rows = (r for r in reader if r)  # blank lines carry no row
        while True:
            block = list(itertools.islice(rows, chunk_size))
            if not block:
                return
            try:
                x = np.array([[float(r[c]) for c in cols] for r in block])
                y = None if ycol is None else _labels([float(r[ycol]) for r in block], str(path))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}: a row is not numeric or is short ({e})") from e
            yield x, y


def parquet_chunks(
    path: PathLike,
    *,
    label_column: str | None = None,
    columns: Sequence[str] | None = None,
    chunk_size: int = 1024,
) -> Iterator[Chunk]:
    """Chunks from a Parquet file, batch by batch (``ParquetFile.iter_batches``)."""
    chunk_size = check_positive_int("chunk_size", chunk_size)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'pickwise[data]'") from None
    pf = pq.ParquetFile(path)
    names = _feature_names(pf.schema_arrow.names, label_column, columns, path)
    wanted = names + ([label_column] if label_column is not None else [])
    for batch in pf.iter_batches(batch_size=chunk_size, columns=wanted):
        if len(names) == 1 and _is_list(batch.schema.field(names[0]).type):
            x = np.asarray(batch.column(names[0]).to_pylist(), dtype=np.float64)
        else:
            x = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in names]).astype(np.float64)
        y = None if label_column is None else _labels(batch.column(label_column).to_numpy(zero_copy_only=False), str(path))
        yield x, y


def _is_list(t) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def open_chunks(source: Any, *, chunk_size: int = 1024, **options: Any) -> Iterator[Chunk]:
    """Chunks from ``source``: an array, a path (.jsonl/.ndjson, .csv, .parquet/.pq) or an iterable.

    ``options`` go to the reader (``y`` for arrays; ``labelled`` for iterables; ``x_key``/``y_key``
    for JSON Lines; ``label_column``/``columns`` for CSV and Parquet).
    """
    if isinstance(source, (str, os.PathLike)):
        suffix = Path(source).suffix.lower()
        readers = {".jsonl": jsonl_chunks, ".ndjson": jsonl_chunks, ".csv": csv_chunks,
                   ".parquet": parquet_chunks, ".pq": parquet_chunks}
        reader = check_choice("file suffix", suffix, readers)
        return reader(source, chunk_size=chunk_size, **options)
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        return array_chunks(source, chunk_size=chunk_size, **options)
    return iterable_chunks(source, chunk_size=chunk_size, **options)


def select_stream(
    selector: Any, source: Iterable[tuple[Any, Any]], *, rng: np.random.Generator,
    transform: Callable[[Any], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Decide on a stream read in chunks (from the readers above) with a fixed model.

    For each ``(x_chunk, y_chunk)`` of ``source``, ``z = transform(x_chunk)`` (``x_chunk`` itself by
    default) goes to ``selector.observe_many``; yields the positions (0-based over the whole stream)
    of the items queried in that chunk. ``selector`` is used as given (not cloned).
    """
    offset = 0
    for x_chunk, _ in source:
        z = x_chunk if transform is None else transform(x_chunk)
        decisions = selector.observe_many(z, rng=rng)
        yield offset + np.flatnonzero(decisions)
        offset += int(decisions.shape[0])
