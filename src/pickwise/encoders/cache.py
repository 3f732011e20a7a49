"""An on-disk embedding cache keyed by item id and encoder fingerprint, resumable after a kill.

    x = embed_cached(encoder, texts, ids, "cache/")   # computes what is missing, returns (n, dim)

Layout: ``<cache_dir>/<16 hex of sha256(fingerprint)>/`` holds

* ``embeddings.npy`` — float32 (capacity, dim), opened with ``np.lib.format.open_memmap``;
* ``index.sqlite`` (write-ahead log) — table ``meta`` (the full fingerprint, dim) and table ``items``
  (item_id → row, done), where item_id is the JSON text of the id (``"a"`` and ``1`` differ);
* ``lock`` — an exclusive ``flock`` held during a call, so two processes never write at once.

Rows are computed chunk by chunk in the order of ``ids``; a chunk's rows are written, flushed to
disk, and only then marked done in one transaction. A run killed mid-way therefore loses at most
the chunk in flight, and the next call computes exactly the rows not marked done. Chunk ``j`` is
always positions ``[j·chunk_size, (j+1)·chunk_size)`` of ``ids``, so a resumed run hands the encoder
the same batches as an uninterrupted one and (with a deterministic encoder) stores the same bits.
New ids get new rows (the file grows by copying to a larger one, then an atomic rename); a
different fingerprint lives in a different folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_finite, check_positive_int

__all__ = ["cache_path", "embed_cached"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, row INTEGER NOT NULL UNIQUE, done INTEGER NOT NULL)",
)
_COPY_ROWS = 65536  # rows copied per step when the embeddings file grows


def cache_path(cache_dir: str | os.PathLike[str], fingerprint: str) -> Path:
    """The folder of ``cache_dir`` that holds the embeddings of the encoder with ``fingerprint``."""
    return Path(cache_dir) / hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]


def _id_key(i: int, value: Any) -> str:
    if isinstance(value, (np.integer, np.str_)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"ids[{i}] must be a str or int; got {type(value).__name__} {value!r:.60}")
    return json.dumps(value)


def embed_cached(
    encoder: Any,
    items: Sequence[Any] | Iterable[Any],
    ids: Sequence[Any],
    cache_dir: str | os.PathLike[str],
    *,
    chunk_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of ``items``, computed only for ids not yet in the cache: float32 (n, dim).

    Parameters
    ----------
    encoder : object with ``fingerprint`` (str) and ``encode(list) -> (m, dim)``
        E.g. :class:`SentenceEncoder`, :class:`HFEncoder`, :class:`TorchEncoder`.
    items : sequence or iterable of n items
        A sequence (``len`` and ``items[i]``) is read only at the positions that need computing;
        any other iterable is read in order, chunk by chunk, and only as far as needed.
    ids : sequence of n str or int
        ``ids[i]`` names ``items[i]``; equal ids are the same item (computed once, same row).
    cache_dir : path
        Root of the cache; each encoder fingerprint gets its own folder (see :func:`cache_path`).
    chunk_size : int
        Positions per chunk: rows are encoded, flushed and marked done chunk by chunk.
    progress : bool
        A tqdm bar on stderr over the rows computed (nothing is shown when all are cached).

    Returns the rows in the order of ``ids`` (an in-memory array, not a view of the cache).
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
        raise ValueError(f"ids must be a sequence of str or int; got {type(ids).__name__}")
    keys = [_id_key(i, v) for i, v in enumerate(ids)]
    n = len(keys)
    if isinstance(items, (str, bytes)):
        raise ValueError("items must be a sequence or iterable of items, not a single str")
    is_seq = hasattr(items, "__len__") and hasattr(items, "__getitem__")
    if is_seq and len(items) != n:
        raise ValueError(f"items has {len(items)} entries but ids has {n}")
    fingerprint = getattr(encoder, "fingerprint", None)
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError(f"encoder must have a non-empty str fingerprint; got {fingerprint!r} from {encoder!r}")
    if not callable(getattr(encoder, "encode", None)):
        raise ValueError(f"encoder must have an encode(items) method; got {encoder!r}")

    folder = cache_path(cache_dir, fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / "lock"), contextlib.closing(_open_index(folder, fingerprint)) as db:
        rows, done = _assign_rows(db, keys)
        store = _Store(folder / "embeddings.npy", db)
        if not store.path.exists():  # never written, or deleted: no row of it can count as done
            with db:
                db.execute("UPDATE items SET done = 0 WHERE done = 1")
            done[:] = False
        row_done = np.zeros(int(rows.max()) + 1 if n else 0, dtype=bool)
        row_done[rows[done]] = True
        todo = int(np.unique(rows[~done]).size)
        if todo:
            source = _Source(items, is_seq)
            with _bar(todo, progress) as bar:
                for start in range(0, n, chunk_size):
                    stop = min(start + chunk_size, n)
                    need = _first_missing(rows[start:stop], row_done[rows[start:stop]]) + start
                    if need.size == 0:
                        continue
                    batch = source.get(need, stop)
                    out = _checked_output(encoder.encode(batch), len(need), store.dim, encoder)
                    store.write(rows[need], out, capacity=row_done.size)
                    row_done[rows[need]] = True
                    bar.update(len(need))
        return store.read(rows, encoder)


def _first_missing(rows: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Positions (within the chunk) of the first occurrence of each row not yet done."""
    pos = np.flatnonzero(~done)
    _, first = np.unique(rows[pos], return_index=True)
    return pos[np.sort(first)]


def _checked_output(out: Any, m: int, dim: int | None, encoder: Any) -> np.ndarray:
    arr = np.asarray(out)
    if arr.ndim != 2 or arr.shape[0] != m or (dim is not None and arr.shape[1] != dim):
        want = f"({m}, {dim if dim is not None else 'dim'})"
        raise ValueError(f"{encoder!r}.encode returned shape {arr.shape} for {m} items; expected {want}")
    return check_finite(f"{encoder!r}.encode output", arr.astype(np.float32, copy=False))


class _Source:
    """Items at given positions: by index for a sequence, by reading ahead for an iterable."""

    def __init__(self, items: Any, is_seq: bool) -> None:
        self.items, self.is_seq = items, is_seq
        self.it: Iterator[Any] | None = None if is_seq else iter(items)
        self.pos = 0  # next position the iterator yields

    def get(self, positions: np.ndarray, stop: int) -> list[Any]:
        if self.is_seq:
            return [self.items[int(p)] for p in positions]
        wanted = set(positions.tolist())
        got: dict[int, Any] = {}
        while self.pos < stop:
            try:
                item = next(self.it)
            except StopIteration:
                raise ValueError(f"items ended after {self.pos} entries; ids has more") from None
            if self.pos in wanted:
                got[self.pos] = item
            self.pos += 1
        return [got[int(p)] for p in positions]


class _Store:
    """The float32 (capacity, dim) memory-mapped matrix of one cache folder."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path, self.db = path, db
        row = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        self.dim: int | None = int(row[0]) if row else None
        self.mm: np.memmap | None = None

    def _open(self, capacity: int) -> np.memmap:
        """The matrix opened read-write with at least ``capacity`` rows (created or grown as needed)."""
        if self.mm is None and self.path.exists():
            self.mm = np.lib.format.open_memmap(self.path, mode="r+")
        if self.mm is not None and self.mm.shape[0] >= capacity:
            return self.mm
        old = self.mm
        new_cap = capacity if old is None else max(capacity, old.shape[0] + old.shape[0] // 2)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            grown = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(new_cap, self.dim))
            if old is not None:
                for s in range(0, old.shape[0], _COPY_ROWS):
                    e = min(s + _COPY_ROWS, old.shape[0])
                    grown[s:e] = old[s:e]
            grown.flush()
            del grown
            self.mm = None
            os.replace(tmp, self.path)  # atomic: a kill leaves either the old or the grown file
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves the old file and no half-grown copy
            raise
        del old
        self.mm = np.lib.format.open_memmap(self.path, mode="r+")
        return self.mm

    def write(self, rows: np.ndarray, out: np.ndarray, *, capacity: int) -> None:
        """Write ``out`` (m, dim) at ``rows``, flush it to disk, then mark those rows done."""
        if self.dim is None:
            self.dim = int(out.shape[1])
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(self.dim),))
        mm = self._open(capacity)
        order = np.argsort(rows)
        mm[rows[order]] = out[order]
        mm.flush()
        with self.db:  # one transaction: all of the chunk's rows or none
            self.db.executemany("UPDATE items SET done = 1 WHERE row = ?", [(int(r),) for r in rows])

    def read(self, rows: np.ndarray, encoder: Any) -> np.ndarray:
        """Rows ``rows`` of the matrix, float32 (len(rows), dim), in memory."""
        if rows.size == 0:
            dim = self.dim if self.dim is not None else int(getattr(encoder, "dim", 0))
            return np.empty((0, dim), dtype=np.float32)
        mm = self.mm if self.mm is not None else np.lib.format.open_memmap(self.path, mode="r")
        return np.asarray(mm[rows], dtype=np.float32)


def _open_index(folder: Path, fingerprint: str) -> sqlite3.Connection:
    db = sqlite3.connect(folder / "index.sqlite", isolation_level=None)
    try:
        # WAL + NORMAL: a commit survives a killed process; the rows it marks were msync'ed before it,
        # so even a power cut can only lose done-marks (those rows are recomputed), never mark bad rows
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        with db:
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
            elif row[0] != fingerprint:
                raise ValueError(f"{folder} holds embeddings of {row[0]!r}, not {fingerprint!r}; use another cache_dir")
    except BaseException:
        db.close()
        raise
    return db


def _assign_rows(db: sqlite3.Connection, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(row, done) per key; keys seen for the first time get new rows, in order, not done."""
    with db:
        db.execute("BEGIN")
        db.execute("CREATE TEMP TABLE IF NOT EXISTS req (pos INTEGER PRIMARY KEY, item_id TEXT NOT NULL)")
        db.execute("DELETE FROM req")
        db.executemany("INSERT INTO req VALUES (?, ?)", enumerate(keys))
        next_row = db.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM items").fetchone()[0]
        new = db.execute(
            "SELECT item_id FROM req WHERE item_id NOT IN (SELECT item_id FROM items) "
            "GROUP BY item_id ORDER BY MIN(pos)"
        ).fetchall()
        db.executemany("INSERT INTO items VALUES (?, ?, 0)", [(k, next_row + j) for j, (k,) in enumerate(new)])
        got = db.execute("SELECT items.row, items.done FROM req JOIN items USING (item_id) ORDER BY req.pos").fetchall()
        db.execute("DELETE FROM req")
    arr = np.asarray(got, dtype=np.int64).reshape(len(keys), 2)
    return arr[:, 0], arr[:, 1].astype(bool)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (a no-op where ``fcntl`` is missing)."""
    with open(path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _bar(total: int, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc="embedding", unit="item", file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar
