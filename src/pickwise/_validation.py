"""Checks at the public boundary. Each raises ``ValueError`` naming the offending value."""

from __future__ import annotations

from typing import Any

import numpy as np


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}; got shape {arr.shape}")
    return arr


def check_probs(name: str, probs: Any, ndim: int = 2, *, atol: float = 1e-4) -> np.ndarray:
    """Validate probabilities over the last axis: finite, in [0, 1], rows summing to 1."""
    doc = {2: "(n, n_classes)", 3: "(n_draws, n, n_classes)"}[ndim]
    p = check_ndim(name, np.asarray(probs, dtype=np.float64), ndim, doc)
    check_finite(name, p)
    if p.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one class; got shape {p.shape}")
    if p.size and (p.min() < -atol or p.max() > 1 + atol):
        lo, hi = float(p.min()), float(p.max())
        raise ValueError(f"{name} must lie in [0, 1]; got values in [{lo}, {hi}]")
    if p.size:
        sums = p.sum(axis=-1)
        worst = np.unravel_index(np.argmax(np.abs(sums - 1)), sums.shape)
        if abs(sums[worst] - 1) > atol:
            raise ValueError(
                f"{name} rows must sum to 1; row {tuple(int(w) for w in worst)} sums to {float(sums[worst])}"
            )
    return np.clip(p, 0.0, 1.0)


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {_show(value)}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: dict[str, Any] | list[str] | tuple[str, ...]) -> Any:
    if value not in choices:
        raise ValueError(f"unknown {name} {_show(value)}; choose one of {sorted(choices)}")
    return choices[value] if isinstance(choices, dict) else value


def check_k(pool: Any, k: Any) -> int:
    """Validate a batch size against a pool; returns ``k`` as int."""
    n_unl = pool.n_unlabeled
    if n_unl == 0:
        raise ValueError(f"the pool has no unlabelled items left (all {len(pool)} are labelled)")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer; got {_show(k)}")
    if k <= 0:
        raise ValueError(f"k must be >= 1; got {k}")
    if k > n_unl:
        raise ValueError(f"k={k} exceeds the {n_unl} unlabelled items in the pool")
    return int(k)
