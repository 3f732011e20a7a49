"""Model outputs as Parquet: one row per item, the layout ``pickwise select`` and the engines read.

Columns (every one optional but ``id``):

* ``id`` — the item's id (string or integer), unique;
* ``probs`` — fixed-size list<float32|float64>[K]: class probabilities;
* ``embeddings`` — fixed-size list[d]: penultimate features;
* ``mc_probs`` — fixed-size list[T·K]: the item's T MC-dropout draws, draws first (row-major (T, K));
  the schema's metadata ``pickwise.mc_probs.shape`` holds ``"T,K"``;
* any other column: a number per item (e.g. a score, ``score_entropy``; ``row``, the input row that
  ``pickwise score`` writes), or a list per item (read as rows of a 2-D array, e.g. gradient factors ``a``).

A *source* is a ``.parquet`` file or a folder of them (``*.parquet`` directly inside it, read in sorted
name order — never recursively, so outputs written next to inputs are not read as inputs). Items are
in file order, then row order: item i is the i-th row of the concatenation.

:func:`write_outputs` writes one file (atomically); :func:`read_outputs` reads columns back as arrays
in the layouts of :class:`pickwise.precomputed.Precomputed` (``mc_probs`` as (T, N, K));
:func:`parquet_loaders` splits a source into shard loaders that read only their own row groups (for
:class:`~pickwise.engine.LocalEngine` / :class:`~pickwise.engine.RayEngine`, like
:func:`~pickwise.engine.npy_loaders`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import drop_rows, shard_drops

__all__ = ["ARRAY_COLUMNS", "ParquetLoader", "parquet_files", "parquet_loaders", "read_outputs", "read_row_range",
           "write_outputs"]

#: the list columns and the name of their per-item width in errors
ARRAY_COLUMNS = ("probs", "embeddings", "mc_probs")
MC_SHAPE_KEY = b"pickwise.mc_probs.shape"
INSTALL_HINT = 'Parquet needs pyarrow: pip install "pickwise[data]"'


def _pa() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - pyarrow is in the data extra
        raise ImportError(INSTALL_HINT) from err
    return pa, pq


def open_parquet(path: str | Path) -> Any:
    """``pyarrow.parquet.ParquetFile(path)``; a file that is not Parquet (or cannot be read) is a
    ValueError naming it."""
    pa, pq = _pa()
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"cannot read Parquet file {str(path)!r}: {err}") from err


def write_outputs(path: str | Path, ids: Sequence[Any], *, probs: Any = None, embeddings: Any = None,
                  mc_probs: Any = None, columns: Mapping[str, Any] | None = None,
                  row_group_size: int = 65536) -> Path:
    """Write one Parquet file of model outputs (see the module doc); returns its path.

    ``mc_probs`` has the layout (T, N, K) (draws first, as everywhere in pickwise). ``columns``: extra
    columns, one value per item (integers stay int64, anything else is float64). The file is written under a temporary name and renamed.
    """
    from .._fs import atomic_write

    pa, pq = _pa()
    ids = list(ids)
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("ids must be unique")
    fields: dict[str, Any] = {"id": pa.array(ids)}
    meta = {}
    for name, arr in (("probs", probs), ("embeddings", embeddings), ("mc_probs", mc_probs)):
        if arr is None:
            continue
        a = np.asarray(arr)
        if a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float64)
        if name == "mc_probs":
            if a.ndim != 3 or a.shape[1] != n:
                raise ValueError(f"mc_probs must have shape (T, N, K) with N = {n} ids; got {a.shape}")
            meta[MC_SHAPE_KEY] = f"{a.shape[0]},{a.shape[2]}".encode()
            a = np.ascontiguousarray(np.moveaxis(a, 1, 0)).reshape(n, -1)
        elif a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"{name} must have shape (N, width) with N = {n} ids; got {a.shape}")
        flat = pa.array(np.ascontiguousarray(a).reshape(-1))
        fields[name] = pa.FixedSizeListArray.from_arrays(flat, a.shape[1])
    for name, values in (columns or {}).items():
        v = np.asarray(values)
        v = v.astype(np.int64) if v.dtype.kind in "iu" else v.astype(np.float64)
        if v.shape != (n,):
            raise ValueError(f"column {name!r} must hold one value per id ({n}); got shape {v.shape}")
        fields[str(name)] = pa.array(v)
    table = pa.table(fields).replace_schema_metadata(meta or None)
    path = Path(path)
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size)
    return path


def parquet_files(source: str | Path) -> list[Path]:
    """The files of a source: the file itself, or the ``*.parquet`` directly inside a folder (sorted)."""
    p = Path(source)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".parquet" and f.is_file())
        if not files:
            raise ValueError(f"no .parquet files directly inside {str(p)!r}")
        return files
    raise ValueError(f"no Parquet file or folder at {str(p)!r}")


def _column_array(table: Any, name: str, shape: tuple[int, int] | None) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    n = len(col)
    is_list = pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type)
    if name in ARRAY_COLUMNS or is_list:  # any other list column (e.g. gradient factors) is rows too
        if not is_list:
            raise ValueError(f"column {name!r} must be a list column (one list of floats per item); got {col.type}")
        values = col.flatten().to_numpy(zero_copy_only=False)
        width = values.shape[0] // n if n else 0
        if n and values.shape[0] != n * width:
            raise ValueError(f"column {name!r} holds lists of different lengths")
        arr = values.reshape(n, width)
        if name == "mc_probs":
            if shape is None:
                raise ValueError("column 'mc_probs' needs the schema metadata pickwise.mc_probs.shape = 'T,K'")
            t, k = shape
            if width != t * k:
                raise ValueError(f"column 'mc_probs' holds {width} values per item, not T·K = {t}·{k}")
            return np.ascontiguousarray(np.moveaxis(arr.reshape(n, t, k), 0, 1))  # (T, N, K)
        return arr
    return col.to_numpy(zero_copy_only=False)


def _mc_shape(schema: Any) -> tuple[int, int] | None:
    meta = schema.metadata or {}
    if MC_SHAPE_KEY not in meta:
        return None
    t, k = (int(v) for v in meta[MC_SHAPE_KEY].decode().split(","))
    return t, k


def read_outputs(source: str | Path, columns: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Columns of a source as arrays: ``id`` (N,), ``probs`` (N, K), ``embeddings`` (N, d), ``mc_probs``
    (T, N, K), float columns (N,). ``columns`` (default all) names what to read; a missing one raises
    ``ValueError`` naming the source and the columns it has."""
    pa, pq = _pa()
    files = parquet_files(source)
    tables = []
    for f in files:
        pf = open_parquet(f)
        names = pf.schema_arrow.names
        want = list(columns) if columns is not None else names
        missing = [c for c in want if c not in names]
        if missing:
            raise ValueError(f"{str(f)!r} has no column {missing[0]!r} (it has {', '.join(names)})")
        tables.append(pf.read(columns=want))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    shape = _mc_shape(open_parquet(files[0]).schema_arrow)
    return {name: _column_array(table, name, shape) for name in table.column_names}


def read_row_range(files: Sequence[str | Path], columns: Sequence[str], start: int, stop: int,
                   groups: Sequence[Sequence[int]] | None = None) -> Any:
    """Global rows ``start .. stop`` of ``files`` (in order) as one pyarrow Table of ``columns``, reading
    only the row groups that hold them. ``groups`` (rows per row group, per file) saves the footers."""
    pa, pq = _pa()
    parts, offset = [], 0
    for i, f in enumerate(files):
        if offset >= stop:
            break
        pf = None
        sizes = groups[i] if groups is not None else None
        if sizes is None:
            pf = open_parquet(f)
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        for g, rows in enumerate(sizes):
            lo, hi = max(start, offset), min(stop, offset + rows)
            if lo < hi:
                pf = pf or open_parquet(f)
                parts.append(pf.read_row_group(g, columns=list(columns)).slice(lo - offset, hi - lo))
            offset += rows
    if not parts:
        raise ValueError(f"rows {start}..{stop - 1} are not in the {offset} rows of the files")
    return pa.concat_tables(parts)


@dataclass(frozen=True)
class ParquetLoader:
    """A shard read where it lives: global rows ``start .. stop`` of a source, reading only the row
    groups that hold them; arrays rows first (``mc_probs`` as (rows, T, K), like
    :class:`~pickwise.engine.NpyLoader`'s ``axis1``). ``drop`` and ``index`` as in NpyLoader."""

    files: tuple[str, ...]
    columns: tuple[str, ...]
    start: int
    stop: int
    drop: tuple[int, ...] = ()
    index: str | None = None

    @property
    def size(self) -> int:
        return self.stop - self.start - len(self.drop)

    def __call__(self) -> dict[str, np.ndarray]:
        _, pq = _pa()
        table = read_row_range(self.files, self.columns, self.start, self.stop)
        shape = _mc_shape(open_parquet(self.files[0]).schema_arrow)
        out = {}
        for name in self.columns:
            arr = _column_array(table, name, shape)
            out[name] = np.ascontiguousarray(np.moveaxis(arr, 1, 0)) if name == "mc_probs" else arr
        return drop_rows(out, self.start, self.stop, self.drop, self.index)


def parquet_loaders(source: str | Path, columns: Sequence[str], n_shards: int, *, exclude: Any = None,
                    index: str | None = None) -> list[ParquetLoader]:
    """Split a source into ``n_shards`` contiguous :class:`ParquetLoader` s (only the footers are read
    here). ``exclude``: global rows left out of every shard (see :func:`~pickwise.engine.npy_loaders`)."""
    _, pq = _pa()
    files = parquet_files(source)
    n = 0
    for f in files:
        meta = open_parquet(f)
        missing = [c for c in columns if c not in meta.schema_arrow.names]
        if missing:
            raise ValueError(f"{str(f)!r} has no column {missing[0]!r} (it has {', '.join(meta.schema_arrow.names)})")
        n += meta.metadata.num_rows
    names = tuple(str(f.resolve()) for f in files)
    return [ParquetLoader(names, tuple(columns), lo, hi, part, index) for lo, hi, part in shard_drops(n, n_shards, exclude)]
