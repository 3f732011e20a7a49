"""Select from outputs a user computed with their own model (probabilities, embeddings, MC draws,
committee members' probabilities).

:class:`Precomputed` is a model whose "data" is the vector of absolute indices: strategies call
``model.predict_proba(take(x, idx))`` with ``x = np.arange(n)``, so every strategy works unchanged
on memory-mapped arrays, reading only the rows it asks for — one chunk at a time, since strategies
score in chunks (docs/performance.md, "Pools of millions"). Probabilities and committee members come
back as float64 whatever the stored type; MC draws and embeddings stored as float32 come back as
float32 (the same values, half the bytes: BALD computes in float32 and core-set keeps float32 rows;
the scores agree with float64 files holding the same values, see :func:`pickwise.scores.bald`).
MC draws may cover a subset of the items (``mc_ids``) beside outputs for the whole pool.

:func:`read_ids`, :func:`resolve_refs`, :func:`select_with_values` and :func:`natural_values` serve
``pickwise select`` (and a labelling project's ``next``): your own item ids (or file names) in and
out, items already sent out excluded, and a value for every chosen item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LAYOUTS", "Precomputed", "check_arrays", "check_items", "check_mc_ids", "load_npy", "natural_values", "read_ids", "read_mc_ids", "resolve_refs", "select_with_values"]


#: the layout of each array, as named in errors: N items, K classes, T draws, M committee members
LAYOUTS = {
    "probs": "(N, K) = (n_items, n_classes)",
    "embeddings": "(N, d) = (n_items, dim)",
    "mc_probs": "(T, N, K) = (n_draws, n_items, n_classes)",
    "member_probs": "(M, N, K) = (n_members, n_items, n_classes)",
}
_PROBABILITIES = ("probs", "mc_probs", "member_probs")
_ATOL = 1e-4


# arrays whose float32 rows come back as float32 (the same values, half the bytes): the scores and
# strategies that read them compute in float32 or widen a chunk at a time themselves
_KEEP_FLOAT32 = ("embeddings", "mc_probs")


def _rows(name: str, arr: np.ndarray, idx: Any) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    return _checked(name, _as_float(name, arr[idx]), idx)


def _items(arr: np.ndarray, n_draws: int, idx: np.ndarray) -> np.ndarray:
    """``arr[:n_draws, idx]``: a read-only view (no copy) when ``idx`` is a run of consecutive
    items, as chunks of an unlabelled pool mostly are; a gathered copy otherwise."""
    if idx.ndim == 1 and idx.shape[0] and idx[-1] - idx[0] == idx.shape[0] - 1 and 0 <= idx[0] \
            and idx[-1] < arr.shape[1] and (idx.shape[0] < 3 or bool(np.all(np.diff(idx) == 1))):
        view = arr[:n_draws, int(idx[0]) : int(idx[-1]) + 1].view()
        view.flags.writeable = False
        return view
    return arr[:n_draws, idx]


def _as_float(name: str, rows: np.ndarray) -> np.ndarray:
    """float64 rows, or float32 rows as they are for the arrays of :data:`_KEEP_FLOAT32`."""
    keep = rows.dtype == np.float32 and name in _KEEP_FLOAT32
    return np.asarray(rows, dtype=np.float32 if keep else np.float64)


def _checked(name: str, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``rows`` (the items ``idx`` of array ``name``, items on axis -2 for probabilities) checked:
    finite, and for probabilities in [0, 1] with every distribution summing to 1. Errors name the
    absolute item index.

    One read of the rows when they are good: min and max (NaN and inf show in them) and the row
    sums as a product with ones; only a bad chunk is searched for the position to name."""
    if rows.size == 0:
        return rows
    lo, hi = float(rows.min()), float(rows.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = tuple(int(b) for b in np.argwhere(~np.isfinite(rows))[0])
        where = _where(name, bad, idx)
        raise ValueError(f"{name} holds a non-finite value {float(rows[bad])} at {where}")
    if name not in _PROBABILITIES:
        return rows
    if lo < -_ATOL or hi > 1 + _ATOL:
        bad = tuple(int(b) for b in np.argwhere((rows < -_ATOL) | (rows > 1 + _ATOL))[0])
        raise ValueError(f"{name} must hold probabilities in [0, 1]; got {float(rows[bad])!r} at {_where(name, bad, idx)}")
    sums = rows @ np.ones(rows.shape[-1], dtype=rows.dtype)
    if float(np.max(np.abs(sums - 1))) > _ATOL - 1e-6:  # near the bound: the float64 sums decide
        sums = rows.sum(axis=-1, dtype=np.float64)
        off = np.abs(sums - 1) > _ATOL
        if off.any():
            bad = tuple(int(b) for b in np.argwhere(off)[0])
            raise ValueError(f"{name} rows must sum to 1 (probabilities over the classes); the row at "
                             f"{_where(name, bad, idx, row=True)} sums to {float(sums[bad])!r}")
    return rows


def _where(name: str, pos: tuple[int, ...], idx: np.ndarray, *, row: bool = False) -> str:
    """A position in array ``name`` in absolute terms (the item index, not the chunk's)."""
    if len(pos) - (0 if row else 1) == 2:  # (draw or member, item[, class])
        lead = "draw" if name == "mc_probs" else "member"
        text = f"{lead} {pos[0]}, item {int(idx[pos[1]])}"
        return text if row else f"{text}, column {pos[2]}"
    text = f"item {int(idx[pos[0]])}"
    return text if row else f"{text}, column {pos[1]}"


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be the number of items, an integer >= 1; got {n!r}")
    return int(n)


def check_arrays(given: dict[str, Any]) -> None:
    """Each array of ``given`` (name → array; names of :data:`LAYOUTS`) on its own: a numpy array
    of real numbers with the layout's number of dimensions and no empty axis. Raises ``ValueError``
    naming the array, its shape or dtype and the layout expected."""
    for name, v in given.items():
        layout = LAYOUTS[name]
        if not hasattr(v, "ndim") or not hasattr(v, "dtype"):
            raise ValueError(f"{name} must be a numpy array of shape {layout}; got {type(v).__name__}")
        if v.dtype.kind not in "fiu":
            raise ValueError(f"{name} must hold real numbers (a float array); got dtype {v.dtype}")
        ndim = 2 if name in ("probs", "embeddings") else 3
        if v.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, shape {layout}; got shape {v.shape}")
        if v.size == 0:
            raise ValueError(f"{name} is empty: shape {v.shape}; expected {layout} with every axis >= 1")


def check_items(given: dict[str, Any], n: int | None = None, n_from: str | None = None) -> int:
    """N, the number of items, checked across the arrays ``given`` (name → array with the layout of
    :data:`LAYOUTS`) and against ``n`` when given (``n_from`` says where ``n`` came from, for the
    error: e.g. "--ids ids.txt holds 50 ids"). Raises ``ValueError`` naming the shape received and
    the shape expected."""
    flat = {k: int(v.shape[0]) for k, v in given.items() if v.ndim == 2}
    if n is not None:
        source = n_from or f"n={n}"
    elif flat:
        name = next(iter(flat))
        n, source = flat[name], f"{name} has {flat[name]} rows"
    else:
        name, v = next(iter(given.items()))
        n, source = int(v.shape[1]), f"{name} has shape {tuple(v.shape)}"
    for name, v in given.items():
        if v.ndim == 2 and v.shape[0] != n:
            raise ValueError(f"the arrays disagree on the number of items: {name} has {v.shape[0]} rows, "
                             f"but {source}; every array needs one row per item")
        if v.ndim != 3:
            continue
        lead, swapped = ("draws", "(N, T, K)") if name == "mc_probs" else ("members", "(N, M, K)")
        what = f"{name} has shape {tuple(v.shape)}, read as {LAYOUTS[name]}: {v.shape[0]} {lead} of {v.shape[1]} items"
        if v.shape[1] != n:
            flipped = v.shape[0] == n
            hint = f"; it looks like {swapped}: transpose it with np.transpose(a, (1, 0, 2))" if flipped else ""
            raise ValueError(f"the arrays disagree on the number of items: {what}, but {source}; expected shape "
                             f"({v.shape[1] if flipped else v.shape[0]}, {n}, {v.shape[2]}): {lead} for every "
                             f"item{hint}")
        if source.startswith(f"{name} has shape") and v.shape[0] > v.shape[1]:
            raise ValueError(f"{what}: more {lead} than items, as when the axes are swapped to {swapped}; the "
                             f"layout is {LAYOUTS[name]}. Transpose it with np.transpose(a, (1, 0, 2)), or "
                             "confirm the number of items (n=; --ids or --probs in pickwise select)")
    return n


def check_mc_ids(mc_ids: Any, mc_shape: tuple[int, ...], n: int, *, name: str = "mc_ids") -> np.ndarray:
    """``mc_ids`` (the absolute item of each column of MC draws of shape ``mc_shape`` = (T, M, K))
    checked: M distinct integers in 0 .. n-1. Returns int64 (M,). Raises ``ValueError`` naming the
    offending ids (out of range, repeated) or the two lengths that disagree."""
    arr = np.asarray(mc_ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or arr.dtype == np.bool_:
        raise ValueError(f"{name} must be a 1-D array of integer item indices (0 .. {n - 1}); got shape "
                         f"{arr.shape}, dtype {arr.dtype}")
    ids = arr.astype(np.int64)
    m = ids.shape[0]
    if m != mc_shape[1]:
        hint = ""
        if mc_shape[0] == m:
            hint = "; it looks like (M, T, K): transpose it with np.transpose(a, (1, 0, 2))"
        raise ValueError(f"{name} holds {m} ids but mc_probs has shape {tuple(mc_shape)}, read as (T, M, K) = "
                         f"(n_draws, n_mc_items, n_classes): {mc_shape[1]} items; one id per item of the draws{hint}")
    bad = ids[(ids < 0) | (ids >= n)]
    if bad.shape[0]:
        raise ValueError(f"{name} holds {bad.shape[0]} indices outside the pool's 0 .. {n - 1}: "
                         f"{bad[:5].tolist()}{' ...' if bad.shape[0] > 5 else ''}")
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.shape[0] != m:
        dup = uniq[counts > 1]
        raise ValueError(f"{name} names {dup.shape[0]} items more than once (each item needs one column of draws): "
                         f"{dup[:5].tolist()}{' ...' if dup.shape[0] > 5 else ''}")
    return ids


class Precomputed:
    """A frozen model over precomputed outputs; ``x`` passed to strategies must be ``np.arange(n)``.

    Parameters
    ----------
    probs : array of shape (N, K) or None — predicted probabilities of the N items
    embeddings : array of shape (N, d) or None — penultimate activations
    mc_probs : array of shape (T, N, K) or None — MC-dropout draws with one mask per draw for the
        whole pool: draws first, then items (an (N, T, K) array must be transposed first,
        ``np.transpose(a, (1, 0, 2))``); every item needs its draws, unless ``mc_ids`` is given
    mc_ids : array of shape (M,) or None — with ``mc_probs`` of shape (T, M, K): the draws cover
        only the M items ``mc_ids`` (distinct absolute indices in 0 .. N-1; column j of
        ``mc_probs`` holds item ``mc_ids[j]``), beside ``probs`` / ``embeddings`` for all N items.
        N then comes from ``probs``, ``embeddings`` or ``n``. Strategies that need MC draws must
        choose among :attr:`mc_items` (``pickwise select`` restricts the pool to them); asking
        for the draws of any other item raises ``ValueError`` naming it
    member_probs : array of shape (M, N, K) or None — each committee member's probabilities (for
        query by committee): members first, then items
    n : int, optional
        The number of items the arrays must cover (e.g. the length of your id list). Without it
        the 2-D arrays (``probs``, ``embeddings``) set N; with only 3-D arrays, N is their second
        axis, and an array with more draws or members than items (T > N) is refused as the likely
        (N, T, K) layout unless ``n`` confirms it.

    Arrays may be memory-mapped; rows are read on demand and checked as they are read (finite;
    probabilities in [0, 1] summing to 1 over the classes), with errors naming the item.
    Raises ``ValueError`` naming the array, the shape received and the layout expected when the
    arrays disagree on N or K, have another number of dimensions, hold no items or are not numbers.
    """

    def __init__(self, *, probs: Any = None, embeddings: Any = None, mc_probs: Any = None, member_probs: Any = None,
                 n: int | None = None, mc_ids: Any = None):
        arrays = {"probs": probs, "embeddings": embeddings, "mc_probs": mc_probs, "member_probs": member_probs}
        given = {k: v for k, v in arrays.items() if v is not None}
        if not given:
            raise ValueError("Precomputed needs at least one of probs, embeddings, mc_probs, member_probs")
        check_arrays(given)
        if mc_ids is None:
            self.n = check_items(given, None if n is None else _count(n))
            self.mc_ids = self.mc_items = self._mc_sorted = None
        else:
            if mc_probs is None:
                raise ValueError("mc_ids names the items of mc_probs; pass mc_probs too (shape (T, M, K))")
            rest = {k: v for k, v in given.items() if k != "mc_probs"}
            if not rest and n is None:
                raise ValueError("with mc_ids, give the number of items of the pool: n=, or probs or embeddings "
                                 "for every item")
            self.n = check_items(rest, None if n is None else _count(n)) if rest else _count(n)
            self.mc_ids = check_mc_ids(mc_ids, mc_probs.shape, self.n)
            # sorted ids with the column of each: absolute index -> column by binary search
            self._mc_sorted = np.argsort(self.mc_ids, kind="stable")
            self.mc_items = self.mc_ids[self._mc_sorted]
        classes = {k: v.shape[-1] for k, v in given.items() if k != "embeddings"}
        if len(set(classes.values())) > 1:
            raise ValueError(f"the arrays disagree on the number of classes K (the last axis): "
                             f"{ {k: tuple(given[k].shape) for k in classes} }")
        self.probs, self.embeddings, self.mc_probs, self.member_probs = probs, embeddings, mc_probs, member_probs
        self.n_classes = int(next(iter(classes.values()), 0))
        # capabilities are exactly the arrays given
        if probs is None:
            self.predict_proba = self._missing("probs")  # type: ignore[method-assign]
            self.grad_factors = self._missing("probs")  # type: ignore[method-assign]
        if embeddings is None:
            self.embed = self._missing("embeddings")  # type: ignore[method-assign]
            self.grad_factors = self._missing("embeddings")  # type: ignore[method-assign]
        if mc_probs is None:
            self.predict_proba_mc = self._missing("mc_probs")  # type: ignore[method-assign]
        if member_probs is None:
            self.predict_proba_members = self._missing("member_probs")  # type: ignore[method-assign]

    @staticmethod
    def _missing(name: str):
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"this strategy needs {name}; pass it (e.g. --{name.replace('_', '-')} file.npy)")

        return fail

    @property
    def x(self) -> np.ndarray:
        """The data to hand to strategies: the absolute indices 0 .. n-1."""
        return np.arange(self.n)

    def fit(self, x: Any, y: Any, *, seed: int) -> Precomputed:
        """Nothing to train: the outputs are fixed. Returns ``self``."""
        return self

    def predict_proba(self, idx: Any) -> np.ndarray:
        """Rows ``idx`` of ``probs``, float64 of shape (len(idx), n_classes)."""
        return _rows("probs", self.probs, idx)

    def embed(self, idx: Any) -> np.ndarray:
        """Rows ``idx`` of ``embeddings``, shape (len(idx), d): float32 when stored as float32 (so
        ``CoreSet`` keeps them in float32), else float64."""
        return _rows("embeddings", self.embeddings, idx)

    def grad_factors(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        """(probs, embeddings) of rows ``idx``, both float64: the factors of the last-layer gradient embedding."""
        return self.predict_proba(idx), np.asarray(self.embed(idx), dtype=np.float64)

    def predict_proba_mc(self, idx: Any, n_draws: int, *, seed: int) -> np.ndarray:
        """The first ``n_draws`` MC draws of rows ``idx``, shape (n_draws, len(idx), n_classes),
        float32 when stored as float32 (a read-only view when ``idx`` is a run of consecutive
        columns), else float64; ``seed`` is unused (the draws are fixed)."""
        if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
            raise ValueError(f"n_draws must be an integer >= 1; got {n_draws!r}")
        if n_draws > self.mc_probs.shape[0]:
            raise ValueError(f"n_draws={n_draws} exceeds the {self.mc_probs.shape[0]} precomputed MC draws "
                             f"(mc_probs of shape {tuple(self.mc_probs.shape)}, layout {LAYOUTS['mc_probs']})")
        idx = np.asarray(idx, dtype=np.int64)
        cols = idx if self.mc_ids is None else self._mc_columns(idx)
        return _checked("mc_probs", _as_float("mc_probs", _items(self.mc_probs, n_draws, cols)), idx)

    def _mc_columns(self, idx: np.ndarray) -> np.ndarray:
        """The columns of ``mc_probs`` that hold the absolute items ``idx`` (``mc_ids`` given)."""
        pos = np.searchsorted(self.mc_items, idx)
        found = pos < self.mc_items.shape[0]
        found[found] = self.mc_items[pos[found]] == idx[found]
        if not found.all():
            missing = idx[~found]
            raise ValueError(f"mc_probs holds no MC draws for {missing.shape[0]} of the items asked for "
                             f"({missing[:5].tolist()}{' ...' if missing.shape[0] > 5 else ''}): its draws cover "
                             f"the {self.mc_items.shape[0]} items of mc_ids; a strategy that needs MC draws must "
                             "choose among them (leave the others out of the pool)")
        return self._mc_sorted[pos]

    def predict_proba_members(self, idx: Any) -> np.ndarray:
        """Committee members' probabilities of rows ``idx``, shape (n_members, len(idx), n_classes)."""
        idx = np.asarray(idx, dtype=np.int64)
        return _checked("member_probs", np.asarray(self.member_probs[:, idx], dtype=np.float64), idx)


def load_npy(path: str | Path | None, *, mmap: bool = True) -> np.ndarray | None:
    """``np.load`` memory-mapped, never unpickling (None passes through).

    Clear errors: ``FileNotFoundError`` for a missing file; ``ValueError`` for a folder, a file that
    is not in the .npy format ("not a .npy file: <path>", e.g. random bytes or text), a .npy that
    holds an object array (pickled Python objects, which are never loaded), and a truncated one.
    """
    if path is None:
        return None
    from numpy.lib import format as npy_format

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.is_dir():
        raise ValueError(f"not a .npy file: {p} is a folder")
    with open(p, "rb") as f:
        if f.read(len(npy_format.MAGIC_PREFIX)) != npy_format.MAGIC_PREFIX:
            raise ValueError(f"not a .npy file: {p} (it lacks the .npy header; save arrays with numpy.save)")
        f.seek(0)
        try:
            version = npy_format.read_magic(f)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            dtype = read_header(f)[2]  # the header only: no data read
        except Exception as e:  # noqa: BLE001 - numpy parses the header with ast/tokenize: any failure means damage
            raise ValueError(f"not a .npy file: {p} (its header is damaged: {type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise ValueError(f"{p} holds an object array (pickled Python objects, dtype {dtype}), which pickwise never "
                         "loads; save a numeric (or, for ids, string) array")
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{p}: cannot read this .npy file; is it truncated? ({e})") from None


def read_mc_ids(path: str | Path, *, ids: list[str] | None = None) -> np.ndarray:
    """The pool item of each column of ``--mc-probs`` when the draws cover a subset of the pool
    (``pickwise select --mc-ids``), in column order.

    - ``.npy`` holding integers: absolute indices (rows of the pool, 0 .. N-1);
    - otherwise any id file :func:`read_ids` reads (``.npy`` of strings, ``.txt``, ``.csv``): your
      ids, looked up in ``ids`` (the ``--ids`` list); without ``ids``, each must be an integer index.

    Returns int64 (M,); :func:`check_mc_ids` checks range, repeats and the length against the draws.
    Raises ``ValueError`` naming entries that are not ids of the pool (or not integers).
    """
    p = Path(path)
    if p.suffix == ".npy" and p.is_file():
        arr = load_npy(p, mmap=False)
        if arr.ndim != 1:
            raise ValueError(f"{p} must hold a 1-D array of item indices (or ids); got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64)
        if arr.dtype.kind == "f":
            raise ValueError(f"{p} must hold integer item indices (or ids as strings); got dtype {arr.dtype}")
    refs = read_ids(p)
    if ids is not None:
        where = {v: i for i, v in enumerate(ids)}
        unknown = [r for r in refs if r not in where]
        if unknown:
            raise ValueError(f"{p}: {len(unknown)} entries are not among the {len(ids)} ids of --ids: "
                             f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
        return np.asarray([where[r] for r in refs], dtype=np.int64)
    bad = [r for r in refs if not r.lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"{p}: {len(bad)} entries are not integer item indices (give --ids to refer to items by "
                         f"id): {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    return np.asarray([int(r) for r in refs], dtype=np.int64)


def read_ids(path: str | Path) -> list[str]:
    """Item ids, one per row of the pool, from a file (or the file names of an image folder).

    - ``.npy``: a 1-D array (integers or strings; no pickles); each value as str.
    - ``.txt``: one id per line (blank lines skipped).
    - ``.csv``: a header row; the column named ``id``, else the first column.
    - a folder laid out as ``<folder>/<class name>/<file>``: the relative file names
      (``"cat/001.png"``) in the order :func:`pickwise.data.load_image_folder` reads them.

    Raises ``ValueError`` on a repeated id (naming it).
    """
    import csv

    p = Path(path)
    if p.is_dir():
        from .data.loaders import image_folder_files

        ids = image_folder_files(p)[0]
    elif not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    elif p.suffix == ".npy":
        arr = load_npy(p, mmap=False)
        if arr.ndim != 1:
            raise ValueError(f"{p} must hold a 1-D array of ids; got shape {arr.shape}")
        ids = [str(v) for v in arr.tolist()]
    elif p.suffix == ".txt":
        ids = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif p.suffix == ".csv":
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if not rows:
            raise ValueError(f"{p} is empty; expected a header row (a column named 'id', else the first column)")
        col = rows[0].index("id") if "id" in rows[0] else 0
        ids = [r[col].strip() for r in rows[1:]]
    else:
        raise ValueError(f"unsupported id file {str(p)!r}; use .npy, .txt, .csv or an image folder")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{p}: id {i!r} appears more than once; ids must be unique")
        seen.add(i)
    return ids


def resolve_refs(refs: list[str], *, n: int, ids: list[str] | None = None, what: str = "--exclude") -> np.ndarray:
    """Absolute indices (sorted, unique, int64) of ``refs``: entries of ``ids`` when given, else
    integer indices in ``0 .. n-1``. Raises ``ValueError`` naming the entries that match nothing."""
    if ids is None:
        out, bad = [], []
        for r in refs:
            try:
                v = int(r)
            except ValueError:
                v = -1
            if 0 <= v < n:
                out.append(v)
            else:
                bad.append(r)
        if bad:
            raise ValueError(f"{what}: {len(bad)} entries are not indices in 0 .. {n - 1} (give --ids to refer to "
                             f"items by id): {bad[:5]}{' ...' if len(bad) > 5 else ''}")
        return np.unique(np.asarray(out, dtype=np.int64))
    where = {v: i for i, v in enumerate(ids)}
    unknown = [r for r in refs if r not in where]
    if unknown:
        raise ValueError(f"{what}: {len(unknown)} entries are not among the {len(ids)} ids: "
                         f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return np.unique(np.asarray([where[r] for r in refs], dtype=np.int64))


def select_with_values(strategy: Any, model: Any, x: Any, pool: Any, k: int, *,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``strategy``'s ``k`` picks with the value each was picked by, scoring the pool once.

    Returns ``(picks, values, scores)``: for a :class:`~pickwise.protocols.ScoreBased` strategy the
    picks equal ``strategy.select`` (its contract) and ``scores`` holds the score of every item of
    ``pool.unlabeled`` (so nobody scores the pool a second time to record them); otherwise ``scores``
    is None and ``values`` come from :func:`natural_values` (NaN where a strategy has none).
    """
    import copy

    from ._validation import check_selection
    from .protocols import ScoreBased
    from .select.topk import top_k

    if isinstance(strategy, ScoreBased):
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        scores = np.asarray(strategy.scores(model, x, unl, rng=rng), dtype=np.float64)
        pos = top_k(scores, k, rng=rng)
        return unl[pos], scores[pos], scores
    before = copy.deepcopy(rng)
    picks = np.asarray(strategy.select(model, x, pool, k, rng=rng), dtype=np.int64)
    return picks, natural_values(strategy, model, x, pool, picks, rng=before), None


def natural_values(strategy: Any, model: Any, x: Any, pool: Any, picks: np.ndarray, *,
                   rng: np.random.Generator) -> np.ndarray:
    """A value for each chosen item of a strategy without a per-item score; NaN where it has none.

    ``rng`` must be in the state ``strategy.select`` started from (a copy taken before it ran).

    - ``StochasticBatch``: the inner strategy's score that the item was sampled by (recomputed
      over the same unlabelled items from ``rng``, so exactly the one used).
    - ``DBAL``: the item's informativeness score (``strategy.score``, margin by default).
    - ``BADGE``: D², the squared distance in gradient-embedding space to the nearest earlier pick
      when it was picked (k-means++'s sampling weight); the first pick: its squared norm.
    - ``CoreSet``: the Euclidean distance to the nearest labelled item or earlier pick when it was
      picked (the k-center radius it closed); NaN for a first pick with nothing labelled.
    - anything else (Random, BatchBALD, BAIT, ALBL, ...): NaN.

    Returns float64 of shape (len(picks),).
    """
    from .embeddings import GradEmbedding
    from .select.kcenter import min_sq_distances
    from .strategies import BADGE, DBAL, CoreSet, StochasticBatch
    from .strategies._base import gather_embeddings, proba_scores, resolve_score

    picks = np.asarray(picks, dtype=np.int64)
    out = np.full(picks.shape[0], np.nan)
    if isinstance(strategy, StochasticBatch):
        unl = pool.unlabeled
        s = np.asarray(strategy.inner.scores(model, x, unl, rng=rng), dtype=np.float64)
        return s[np.searchsorted(unl, picks)]
    if isinstance(strategy, DBAL):
        return proba_scores(model, x, picks, resolve_score(strategy.score), strategy.chunk_size)
    if isinstance(strategy, BADGE):
        e = strategy.embedding(model, x, picks)
        a, h = np.asarray(e.a, dtype=np.float64), np.asarray(e.h, dtype=np.float64)
        sq = GradEmbedding(a, h).sq_norms()
        out[:1] = sq[:1]
        for start in range(1, picks.shape[0], 256):
            rows = slice(start, min(start + 256, picks.shape[0]))
            # ‖g_j − g_i‖² = ‖g_j‖² + ‖g_i‖² − 2 (a_j·a_i)(h_j·h_i), for i < j only
            d2 = sq[rows, None] + sq[None, : rows.stop] - 2 * (a[rows] @ a[: rows.stop].T) * (h[rows] @ h[: rows.stop].T)
            earlier = np.arange(rows.stop)[None, :] < np.arange(rows.start, rows.stop)[:, None]
            out[rows] = np.maximum(np.where(earlier, d2, np.inf).min(axis=1), 0.0)
        return out
    if isinstance(strategy, CoreSet):
        emb = gather_embeddings(model, x, picks, strategy.chunk_size)
        to_lab = np.full(picks.shape[0], np.inf)
        if pool.n_labeled:
            lab = gather_embeddings(model, x, pool.labeled, strategy.chunk_size)
            to_lab = min_sq_distances(emb, lab)
        for j in range(picks.shape[0]):
            d2 = to_lab[j]
            if j:
                d2 = min(d2, float(np.min(np.sum((emb[:j] - emb[j]) ** 2, axis=1))))
            out[j] = np.sqrt(d2) if np.isfinite(d2) else np.nan
        return out
    return out
