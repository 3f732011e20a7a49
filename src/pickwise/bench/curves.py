"""Learning curves of finished runs: values at a label count, mean curves over seeds, areas.

A :class:`Curve` is one run: accuracy ``acc[i]`` after training on ``n[i]`` labels (n increasing).
Its value between two recorded sizes is the linear interpolation. Pool runs record exactly the
sizes initial + r·k. A stream run records whatever it had queried after each window, and may end a
few labels short of its budget (VeSSAL queries with probability min(p, 1)): up to ``n_end`` (the
budget's size) such a run keeps its last accuracy — the accuracy it reached with fewer labels,
which never flatters it. Beyond ``n_end`` (or below ``n[0]``) a run has no value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Curve:
    """One run's learning curve; ``n`` of shape (m,) strictly increasing, ``acc`` of shape (m,)."""

    n: np.ndarray
    acc: np.ndarray
    n_end: float | None = None  # the size the run was meant to reach; default n[-1]

    def __post_init__(self) -> None:
        n = np.asarray(self.n, dtype=float)
        acc = np.asarray(self.acc, dtype=float)
        if n.ndim != 1 or n.shape != acc.shape or n.size == 0:
            raise ValueError(f"n and acc must be 1-D of the same non-zero length; got {n.shape} and {acc.shape}")
        if np.any(np.diff(n) <= 0):
            raise ValueError(f"label counts must increase strictly; got {n.tolist()}")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "acc", acc)
        end = float(n[-1]) if self.n_end is None else max(float(self.n_end), float(n[-1]))
        object.__setattr__(self, "n_end", end)

    @property
    def start(self) -> float:
        return float(self.n[0])

    def at(self, size: float) -> float:
        """Accuracy at ``size`` labels (interpolated; held after the last record up to ``n_end``); NaN outside."""
        if size < self.n[0] or size > self.n_end:
            return float("nan")
        return float(np.interp(size, self.n, self.acc))

    def values(self, sizes: np.ndarray) -> np.ndarray:
        sizes = np.asarray(sizes, dtype=float)
        out = np.interp(sizes, self.n, self.acc)
        out[(sizes < self.n[0]) | (sizes > self.n_end)] = np.nan
        return out


@dataclass(frozen=True, eq=False)
class MeanCurve:
    """Mean over runs at sizes ``n`` (the union of the runs' sizes inside the range all runs cover)."""

    n: np.ndarray
    mean: np.ndarray
    se: np.ndarray  # standard error over runs (0 with one run)
    n_runs: int


def mean_curve(curves: Sequence[Curve]) -> MeanCurve:
    """Mean ± standard error of several runs, each interpolated on the common size grid."""
    if not curves:
        raise ValueError("mean_curve needs at least one curve")
    lo = max(c.start for c in curves)
    hi = min(c.n_end for c in curves)
    grid = np.unique(np.concatenate([c.n for c in curves] + [[lo, hi]]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    vals = np.array([c.values(grid) for c in curves])
    mean = vals.mean(axis=0)
    se = vals.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
    return MeanCurve(grid, mean, se, len(curves))


def area_under_curve(curve: Curve, lo: float, hi: float) -> float:
    """Mean accuracy over [lo, hi] labels: trapezoid area / (hi − lo) (NaN if the run does not cover it)."""
    if hi <= lo or lo < curve.start or hi > curve.n_end:
        return float("nan")
    inner = curve.n[(curve.n > lo) & (curve.n < hi)]
    xs = np.concatenate([[lo], inner, [hi]])
    ys = curve.values(xs)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2 / (hi - lo))
