"""Checks at the public boundary. Each raises ``ValueError`` naming the offending argument or value.

One kind of error for every bad input: a wrong value, a wrong shape and a wrong type (a string,
complex or boolean array where numbers are meant, ``k=2.5``) all raise ``ValueError`` (never
``TypeError``, ``IndexError`` or an error from deep inside numpy), so callers catch one thing.

Conventions checked here:

* probabilities: a real array whose last axis holds the classes, entries in [0, 1] and rows summing
  to 1 (within ``atol``);
* MC draws and committee members: (n_draws, n, n_classes), draws first, n the number of items
  (:func:`check_draws`); the layout is checked wherever the number of items is known.

The checks read float32 input as it is (no float64 copy just to validate) and make one pass for
the range and one for the row sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# dtype kinds accepted as numbers: floats, signed and unsigned integers
_NUMERIC = "fiu"
_KIND_NAMES = {"b": "bool", "c": "complex", "O": "object", "U": "str", "S": "bytes", "M": "datetime",
               "m": "timedelta", "V": "void"}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_numeric(name: str, value: Any) -> np.ndarray:
    """``value`` as a real numeric ndarray (float, int or uint; not copied when it already is one).

    Ragged nested lists and arrays of bool, complex, object, str, bytes or datetimes raise
    ``ValueError`` naming ``name`` and the dtype.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as err:  # ragged lists, tensors that need .detach()
        raise ValueError(f"{name} must be a numeric array; could not read {_show(value)}: {err}") from None
    if arr.dtype.kind not in _NUMERIC:
        kind = _KIND_NAMES.get(arr.dtype.kind, str(arr.dtype))
        raise ValueError(f"{name} must be a real numeric array; got dtype {kind} ({arr.dtype})")
    return arr


def check_finite(name: str, arr: np.ndarray) -> np.ndarray:
    """Raise if ``arr`` holds NaN or inf, naming the first bad position."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains a non-finite value {arr[tuple(bad)].item()!r} at index {tuple(int(b) for b in bad)}"
        )
    return arr


def check_ndim(name: str, arr: np.ndarray, ndim: int, shape_doc: str) -> np.ndarray:
    """Raise unless ``arr`` has ``ndim`` axes; ``shape_doc`` (e.g. "(n, d)") goes in the message."""
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}; got shape {arr.shape}")
    return arr


def check_float_rows(name: str, x: Any, *, block: int = 65536) -> np.ndarray:
    """A finite (n, d) array: float32 stays float32 (no copy), any other number becomes float64.

    Finiteness is checked ``block`` rows at a time (no n×d temporary); the full check then names
    the first bad position.
    """
    arr = as_numeric(name, x)
    if arr.dtype != np.float32:
        arr = np.asarray(arr, dtype=np.float64)
    check_ndim(name, arr, 2, "(n, d)")
    for start in range(0, arr.shape[0], block):
        if not np.isfinite(arr[start : start + block]).all():
            check_finite(name, arr)
    return arr


_PROB_DOCS = {1: "(n_classes,)", 2: "(n, n_classes)", 3: "(n_draws, n, n_classes)"}


def check_probs(name: str, probs: Any, ndim: int = 2, *, atol: float = 1e-4) -> np.ndarray:
    """Validate probabilities over the last axis: finite, in [0, 1], rows summing to 1 (± ``atol``).

    Returns float64 values clipped to [0, 1] (the input itself when it is float64 and needs no
    clipping; float32 is read as it is for the checks and widened once for the caller).
    """
    p = check_ndim(name, as_numeric(name, probs), ndim, _PROB_DOCS.get(ndim, f"({ndim} axes)"))
    if p.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one class; got shape {p.shape}")
    lo = hi = 0.0
    if p.size:
        lo, hi = float(p.min()), float(p.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            check_finite(name, p)  # names the first NaN or inf
        if lo < -atol or hi > 1 + atol:
            raise ValueError(f"{name} must lie in [0, 1]; got values in [{lo}, {hi}]")
        sums = p.sum(axis=-1, dtype=np.float64)
        worst = np.unravel_index(np.argmax(np.abs(sums - 1)), sums.shape)
        if abs(sums[worst] - 1) > atol:
            raise ValueError(
                f"{name} rows must sum to 1; row {tuple(int(w) for w in worst)} sums to {float(sums[worst])}"
            )
    out = np.asarray(p, dtype=np.float64)
    return np.clip(out, 0.0, 1.0) if lo < 0 or hi > 1 else out


def check_mc_layout(
    name: str, shape: tuple[int, ...], *, n_items: int | None = None, n_draws: int | None = None,
    axes: str = "n_draws, n, n_classes",
) -> None:
    """Raise unless ``shape`` is (n_draws, n, n_classes) — draws first — for the counts given.

    An (n, n_draws, n_classes) array (items first) is named as such in the message.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must have shape ({axes}); got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} must hold at least one of axis 0 ({axes.split(', ')[0]}); got shape {shape}")
    want = (n_draws, n_items)
    if all(w is None or w == s for w, s in zip(want, shape[:2])):
        return
    expected = ", ".join(str(w) if w is not None else a for w, a in zip((*want, None), axes.split(", ")))
    hint = ""
    swapped = (shape[1], shape[0])
    if all(w is None or w == s for w, s in zip(want, swapped)):
        first = axes.split(", ")[0]
        hint = f"; it looks like (n, {first}, n_classes): put the {first} axis first (np.swapaxes(a, 0, 1))"
    raise ValueError(f"{name} must have shape ({axes}) = ({expected}); got shape {shape}{hint}")


def check_draws(
    name: str, draws: Any, *, n_items: int | None = None, n_draws: int | None = None,
    axes: str = "n_draws, n, n_classes", atol: float = 1e-4,
) -> np.ndarray:
    """MC draws (or committee members' probabilities) of shape (n_draws, n, n_classes):
    the layout (:func:`check_mc_layout`) and then the probabilities (:func:`check_probs`)."""
    if n_items is not None:
        n_items = check_positive_int("n_items", n_items, allow_zero=True)
    arr = as_numeric(name, draws)
    check_mc_layout(name, arr.shape, n_items=n_items, n_draws=n_draws, axes=axes)
    return check_probs(name, arr, ndim=3, atol=atol)


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """An integer (Python or numpy, not bool) ≥ 1, or ≥ 0 with ``allow_zero``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {_show(value)}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: dict[str, Any] | list[str] | tuple[str, ...]) -> Any:
    """``value`` if it is one of ``choices`` (for a dict: the value it maps to)."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value looked up in a dict
        ok = False
    if not ok:
        raise ValueError(f"unknown {name} {_show(value)}; choose one of {sorted(choices)}")
    return choices[value] if isinstance(choices, dict) else value


def check_batch_size(k: Any, n: int, *, what: str = "the number of items", low: int = 1) -> int:
    """A batch size ``k``: an integer (not bool, not 2.5) in ``low`` .. ``n``."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer; got {_show(k)}")
    if not low <= k <= n:
        raise ValueError(f"k={k} must lie in {low} .. {n} ({what})")
    return int(k)


def check_k(pool: Any, k: Any) -> int:
    """Validate a batch size against a pool; returns ``k`` as int."""
    if not hasattr(pool, "n_unlabeled") or not hasattr(pool, "unlabeled"):
        raise ValueError(f"pool must be a pickwise.Pool; got {_show(pool)}")
    n_unl = pool.n_unlabeled
    if n_unl == 0:
        raise ValueError(f"the pool has no unlabelled items left (all {len(pool)} are labelled)")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer; got {_show(k)}")
    if k <= 0:
        raise ValueError(f"k must be >= 1; got {k}")
    if k > n_unl:
        raise ValueError(f"k={k} exceeds the {n_unl} unlabelled items in the pool")
    return int(k)


def check_rng(rng: Any) -> np.random.Generator:
    """``rng`` must be a ``numpy.random.Generator`` (e.g. ``np.random.default_rng(0)``)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator such as np.random.default_rng(0); got {_show(rng)}")
    return rng


def n_rows(x: Any) -> int | None:
    """The number of rows of ``x`` (``shape[0]`` or ``len``); None when it has neither."""
    shape = getattr(x, "shape", None)
    if shape is not None:
        try:
            return int(shape[0])
        except (TypeError, IndexError):
            return None  # a 0-d array: no rows
    try:
        return len(x)
    except TypeError:
        return None


def check_selection(x: Any, pool: Any, k: Any, rng: Any) -> int:
    """What every ``select(model, x, pool, k, rng=...)`` checks first; returns ``k`` as int.

    ``pool`` a :class:`pickwise.Pool`, ``k`` an integer in 1 .. unlabelled count, ``rng`` a numpy
    Generator, and ``x`` with one row per pool item (when its length can be read).
    """
    k = check_k(pool, k)
    check_rng(rng)
    n = n_rows(x)
    if n is None and getattr(x, "ndim", 1) == 0:
        raise ValueError(f"x must hold one row per pool item ({len(pool)}); got a scalar {_show(x)}")
    if n is not None and n != len(pool):
        raise ValueError(f"x has {n} rows but the pool has {len(pool)} items; give x one row per pool item")
    return k


def check_indices(name: str, indices: Any, n: int) -> np.ndarray:
    """Integer positions in 0 .. n − 1 as a 1-D int64 array (an empty list is fine)."""
    try:
        idx = np.asarray(indices)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} must be a 1-D array of integers; could not read {_show(indices)}: {err}") from None
    if idx.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integers; got shape {idx.shape}")
    if idx.size and idx.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers; got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise ValueError(f"{name} holds {bad}, out of range for {n} items (0 .. {n - 1})")
    return idx


def check_int_values(name: str, values: Any) -> np.ndarray:
    """An array of whole numbers (ints, or floats such as 2.0) as int64; refuses 1.5, NaN, bool, str."""
    arr = np.asarray(values) if isinstance(values, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(values)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name} must be an array of integers; could not read {_show(values)}: {err}") from None
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.size == 0 and arr.dtype.kind == "f":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if whole.all():
            return arr.astype(np.int64)
        raise ValueError(f"{name} must be integers; got {arr[~whole].flat[0]!r}")
    kind = _KIND_NAMES.get(arr.dtype.kind, str(arr.dtype))
    first = _show(arr.flat[0]) if arr.size else "an empty array"
    raise ValueError(f"{name} must be integers; got dtype {kind} ({first})")
