"""Boundary checks shared by the model adapters (numpy only; no torch here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import _show


def check_seed(seed: Any) -> int:
    """A training / sampling seed: a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a non-negative integer; got {_show(seed)}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed}")
    return int(seed)


def check_rows(name: str, rows: Any, *, offset: int = 0, row_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Rows of inputs as a numeric ndarray of shape (m, ...) with finite values.

    ``offset`` is the absolute index of the first row, so errors name the row in the caller's data;
    ``row_shape``, when given, is the shape every row must have (that of the training rows).
    """
    arr = np.asarray(rows)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (n, n_features) or (n, ...); got shape {arr.shape}")
    if row_shape is not None and tuple(arr.shape[1:]) != tuple(row_shape):
        raise ValueError(
            f"{name} has rows of shape {tuple(arr.shape[1:])}; "
            f"the model was fitted on rows of shape {tuple(row_shape)}"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = (int(bad[0]) + offset, *(int(b) for b in bad[1:]))
        raise ValueError(f"{name} contains a non-finite value {arr[tuple(bad)].item()!r} at index {where}")
    return arr


def check_labels(y: Any, n_classes: int, n: int) -> np.ndarray:
    """Class labels as an int64 ndarray of shape (n,) with values in ``0 .. n_classes - 1``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"y must have shape (n,); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"x has {n} rows but y has {arr.shape[0]} labels")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"y must hold integer class labels; got {arr[i]!r} at index {i}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"y must hold integer class labels 0..{n_classes - 1}; got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    bad = np.flatnonzero((out < 0) | (out >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"y holds label {out[i]} at index {i}, outside 0..{n_classes - 1} (n_classes={n_classes})")
    return out


def check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2; got {_show(n_classes)}")
    return int(n_classes)


def check_real(name: str, value: Any, *, low: float, high: float = np.inf, low_open: bool = False) -> float:
    """A finite real number in [low, high] (or (low, high] when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {_show(value)}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    if not np.isfinite(v) or too_low or v > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}]; got {value!r}")
    return v
