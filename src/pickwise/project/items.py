"""Items from the user's own data, each with a stable id (never a row position).

- **A folder of images** (``.png .jpg .jpeg .webp``, searched recursively): id = the path relative to
  the project's media root (the folder given to ``init``), in POSIX form. Adding the same folder again
  later picks up new files only.
- **A table with a text column** (``.csv``, ``.parquet``, ``.jsonl``): the id column is ``id`` (or
  ``id_column``), the text column ``text`` (or ``text_column``). Without an id column the id is
  ``"sha1:" + the first 12 hex digits of sha1(text)``: stable across files and reorderings, but
  identical texts are then one item (the duplicates are counted and dropped). Other columns are kept as
  the item's metadata (``data``). CSV cells are read as strings (``0012`` stays ``0012``).
- **Features** (``.npy``, shape (n, d)): ids come from ``ids_file`` (one id per line, or a CSV/Parquet
  with an id column) with one id per row; ``row_ids=True`` says explicitly that the ids are
  ``"row-<n>"`` (the row position in that file: only stable while the file is never reordered).

An id already in the project is skipped when its content (text, image bytes, feature row) is the same,
and refused with an error naming it when the content differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
TABLE_EXTS = (".csv", ".parquet", ".jsonl")


@dataclass
class ItemBatch:
    """Items read from one source: parallel lists, plus the feature rows of a ``.npy`` source."""

    kind: str  # text | image | features
    item_ids: list[str]
    texts: list[str | None]
    relpaths: list[str | None]
    data: list[dict[str, Any]]
    sha1: list[str]
    features: np.ndarray | None = None
    dropped_duplicates: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.item_ids)


def data_kind(path: str | Path) -> str:
    """``image`` for a folder, ``features`` for ``.npy``, ``text`` for a table (ValueError otherwise)."""
    p = Path(path)
    if p.is_dir():
        return "image"
    if not p.exists():
        raise ValueError(f"data {str(p)!r} not found")
    if p.suffix.lower() == ".npy":
        return "features"
    if p.suffix.lower() in TABLE_EXTS:
        return "text"
    raise ValueError(f"data {str(p)!r}: expected a folder of images, a .csv/.parquet/.jsonl table or a .npy "
                     f"array; got suffix {p.suffix!r}")


def text_id(text: str) -> str:
    """The id of a text without an id column: ``"sha1:" + 12 hex digits of sha1(utf-8 text)``."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _read_table(path: Path) -> dict[str, list[Any]]:
    """Column name → cells (:func:`pickwise.data.read_table`: CSV cells stay strings, ``0012`` too)."""
    from ..data.loaders import read_table

    return read_table(path)


def _plain(value: Any) -> Any:
    """A JSON-safe scalar (NaN → None, numpy scalars → Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def read_table_items(path: str | Path, *, id_column: str | None = None, text_column: str | None = None) -> ItemBatch:
    """Text items from a CSV / Parquet / JSON Lines table (see the module docstring for the id rule)."""
    path = Path(path)
    table = _read_table(path)
    cols = [str(c) for c in table]
    tcol = text_column or "text"
    if tcol not in cols:
        raise ValueError(f"{path}: no text column {tcol!r} (columns: {', '.join(cols)}); pass text_column")
    if id_column is not None and id_column not in cols:
        raise ValueError(f"{path}: no id column {id_column!r} (columns: {', '.join(cols)})")
    icol = id_column or ("id" if "id" in cols else None)
    texts = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in table[tcol]]
    if icol is not None:
        ids = [str(_plain(v)) if _plain(v) is not None else "" for v in table[icol]]
        empty = [i for i, v in enumerate(ids) if not v.strip()]
        if empty:
            raise ValueError(f"{path}: empty id in column {icol!r} on data row {empty[0] + 1}")
    else:
        ids = [text_id(t) for t in texts]
    meta_cols = [c for c in cols if c not in (tcol, icol)]
    records = [{c: table[c][i] for c in meta_cols} for i in range(len(ids))]
    out = ItemBatch("text", [], [], [], [], [], source=str(path))
    seen: dict[str, str] = {}
    for item_id, text, rec in zip(ids, texts, records):
        h = _sha1(text.encode("utf-8"))
        if item_id in seen:
            if seen[item_id] != h:
                raise ValueError(f"{path}: id {item_id!r} appears twice with different texts")
            out.dropped_duplicates += 1
            continue
        seen[item_id] = h
        out.item_ids.append(item_id)
        out.texts.append(text)
        out.relpaths.append(None)
        out.data.append({str(k): _plain(v) for k, v in rec.items()})
        out.sha1.append(h)
    if icol is None and out.dropped_duplicates:
        out.notes.append(f"{out.dropped_duplicates} rows repeat an earlier text: identical texts are one item "
                         "(ids are sha1 of the text)")
    return out


def check_relpath(root: Path, relpath: str) -> Path:
    """``root / relpath`` resolved, refusing a path that leaves ``root`` (``..``, absolute, a symlink out)."""
    if not relpath or relpath.startswith("/") or ".." in Path(relpath).parts or "\\" in relpath:
        raise ValueError(f"image path {relpath!r} is not a plain path inside {root}")
    full = (root / relpath).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ValueError(f"image path {relpath!r} leads outside {root} (a symlink?)")
    if full.suffix.lower() not in IMAGE_EXTS:
        raise ValueError(f"image path {relpath!r}: only {', '.join(IMAGE_EXTS)} are served")
    return full


def read_image_items(folder: str | Path, *, media_root: str | Path) -> ItemBatch:
    """Image items: every ``.png/.jpg/.jpeg/.webp`` under ``folder`` (which must lie in ``media_root``),
    id = path relative to ``media_root`` in POSIX form, sorted."""
    folder, root = Path(folder).resolve(), Path(media_root).resolve()
    if not folder.is_relative_to(root):
        raise ValueError(f"image folder {str(folder)!r} is not inside the project's media root {str(root)!r}")
    out = ItemBatch("image", [], [], [], [], [], source=str(folder))
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        rel = p.relative_to(root).as_posix() if not p.is_symlink() else (p.parent.relative_to(root) / p.name).as_posix()
        full = check_relpath(root, rel)
        out.item_ids.append(rel)
        out.texts.append(None)
        out.relpaths.append(rel)
        out.data.append({})
        out.sha1.append(_sha1(full.read_bytes()))
    if not out.item_ids:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) found under {str(folder)!r}")
    return out


def _read_ids(path: Path, id_column: str | None) -> list[str]:
    if path.suffix.lower() in (".csv", ".parquet", ".jsonl"):
        table = _read_table(path)
        col = id_column or "id"
        if col not in table:
            raise ValueError(f"{path}: no id column {col!r} (columns: {', '.join(map(str, table))})")
        return [str(_plain(v)) for v in table[col]]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_feature_items(path: str | Path, *, ids_file: str | Path | None = None, id_column: str | None = None,
                       row_ids: bool = False) -> ItemBatch:
    """Feature items from a ``.npy`` array of shape (n, d): ids from ``ids_file``, or ``row-<n>`` with ``row_ids``."""
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected a numeric array of shape (n, d); got {x.dtype} {x.shape}")
    if ids_file is not None:
        ids = _read_ids(Path(ids_file), id_column)
        if len(ids) != x.shape[0]:
            raise ValueError(f"{ids_file} holds {len(ids)} ids but {path} has {x.shape[0]} rows")
        dup = next((i for i in ids if ids.count(i) > 1), None) if len(set(ids)) != len(ids) else None
        if dup is not None:
            raise ValueError(f"{ids_file}: id {dup!r} appears more than once")
    elif row_ids:
        ids = [f"row-{i}" for i in range(x.shape[0])]
    else:
        raise ValueError(f"{path}: features need ids: pass ids_file (one id per row) or, explicitly, row_ids=True "
                         "for ids 'row-<n>' (positional: stable only while the file is never reordered)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    return ItemBatch("features", list(ids), [None] * len(ids), [None] * len(ids),
                     [{"row": i} for i in range(len(ids))], [_sha1(row.tobytes()) for row in x], features=x,
                     source=str(path))


def read_items(path: str | Path, *, id_column: str | None = None, text_column: str | None = None,
               media_root: str | Path | None = None, ids_file: str | Path | None = None,
               row_ids: bool = False) -> ItemBatch:
    """Items from ``path`` by its kind (a folder, a table, a ``.npy``); see the module docstring."""
    kind = data_kind(path)
    if kind == "image":
        return read_image_items(path, media_root=media_root if media_root is not None else path)
    if kind == "features":
        return read_feature_items(path, ids_file=ids_file, id_column=id_column, row_ids=row_ids)
    return read_table_items(path, id_column=id_column, text_column=text_column)


DB_KIND = {"text": "text", "image": "image", "features": "tabular"}


@dataclass(frozen=True)
class AddSummary:
    """What ``add_data`` did: items added, skipped (already present, same content), dropped duplicates."""

    added: int
    skipped: int
    dropped_duplicates: int
    first_idx: int
    notes: tuple[str, ...] = ()


def insert_items(conn: sqlite3.Connection, batch: ItemBatch) -> tuple[AddSummary, np.ndarray]:
    """Insert the new items of ``batch`` inside the caller's transaction.

    Returns the summary and the positions (into ``batch``) of the rows added, in the order of their new
    indices. Ids already present with other content raise a ValueError naming them (nothing is added).
    """
    existing: dict[str, str] = {}
    ids = batch.item_ids
    for start in range(0, len(ids), 900):
        part = ids[start:start + 900]
        q = f"SELECT item_id, content_sha1 FROM items WHERE item_id IN ({','.join('?' * len(part))})"
        existing.update({r[0]: r[1] for r in conn.execute(q, part)})
    changed = [i for i, h in zip(ids, batch.sha1) if i in existing and existing[i] != h]
    if changed:
        shown = ", ".join(repr(c) for c in changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise ValueError(f"{batch.source}: {len(changed)} item ids are already in the project with different "
                         f"content: {shown}; give changed items new ids")
    first = int(conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM items").fetchone()[0])
    new = np.array([j for j, i in enumerate(ids) if i not in existing], dtype=np.int64)
    kind = DB_KIND[batch.kind]
    conn.executemany(
        "INSERT INTO items (idx, item_id, kind, relpath, text, data_json, content_sha1) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((first + n, ids[j], kind, batch.relpaths[j], batch.texts[j], json.dumps(batch.data[j]), batch.sha1[j])
         for n, j in enumerate(new.tolist())),
    )
    return AddSummary(len(new), len(ids) - len(new), batch.dropped_duplicates, first, tuple(batch.notes)), new
