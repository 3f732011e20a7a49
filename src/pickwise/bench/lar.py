"""Label amplification ratio (Saran et al., VeSSAL, ICML 2023), as in ALGORITHMS.md.

LAR(n_u) = n_u / n_a: n_u labels used by the baseline (stream-uniform for stream selectors, random
for pool strategies), n_a the smallest number of labels at which the active learner's mean learning
curve reaches the accuracy the baseline's mean curve has at n_u. Both mean curves are means over
seeds of linearly interpolated runs (:func:`pickwise.bench.curves.mean_curve`); label counts
include the initial labels (the curves' x axis). Reported at n_u = f·N, N the pool size, for
f = 0.06, 0.08, …, 0.50 where the baseline's mean curve has data.

n_a on the piecewise-linear mean curve A: the first size where A reaches the target; between two
recorded sizes it is the linear crossing point. If A already reaches the target at its first size
(both curves start at the initial labels), n_a is that first size. If A never reaches it within its
sizes, n_a and the ratio are NaN ("not reached": the active learner is worse there).

Flat baselines. When the target is at most the learner's accuracy at its first size, n_a is that
first size n_0 and the ratio is exactly n_u / n_0 whatever either learner did: a straight ramp in
n_u that says only "the baseline has not yet risen above the starting accuracy". Such points are
marked in ``LAR.flat``; the ratio is kept there, but :attr:`LAR.defined` is False and summaries
(``pickwise report``) leave them out of means and count them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .curves import Curve, MeanCurve, mean_curve

FRACTIONS = np.round(np.arange(0.06, 0.5 + 1e-9, 0.02), 2)


def labels_to_reach(curve: MeanCurve, target: float) -> float:
    """Smallest size at which the piecewise-linear ``curve`` reaches ``target`` (NaN if never)."""
    n, a = curve.n, curve.mean
    hit = np.flatnonzero(a >= target)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(n[0])
    # a[i-1] < target <= a[i]: the linear crossing in (n[i-1], n[i]]
    return float(n[i - 1] + (target - a[i - 1]) * (n[i] - n[i - 1]) / (a[i] - a[i - 1]))


@dataclass(frozen=True, eq=False)
class LAR:
    fractions: np.ndarray  # f, shape (m,)
    n_u: np.ndarray  # f·N
    target: np.ndarray  # baseline mean accuracy at n_u
    n_a: np.ndarray  # labels the active learner needs (NaN: not reached)
    ratio: np.ndarray  # n_u / n_a (NaN: no baseline data at n_u, or not reached)
    flat: np.ndarray | None = None  # bool: target <= the learner's first accuracy (ratio = n_u / n_0, not defined)

    @property
    def defined(self) -> np.ndarray:
        """Where the ratio means something: baseline data, reached, and not a flat baseline."""
        flat = self.flat if self.flat is not None else np.zeros(self.ratio.shape, bool)
        return ~np.isnan(self.ratio) & ~flat


def label_amplification(
    active: Sequence[Curve] | MeanCurve,
    baseline: Sequence[Curve] | MeanCurve,
    *,
    n_pool: int,
    fractions: Sequence[float] = FRACTIONS,
) -> LAR:
    """LAR at ``n_u = f·n_pool`` for each fraction f where the baseline has data (NaN elsewhere)."""
    act = active if isinstance(active, MeanCurve) else mean_curve(active)
    base = baseline if isinstance(baseline, MeanCurve) else mean_curve(baseline)
    f = np.asarray(fractions, dtype=float)
    n_u = f * n_pool
    inside = (n_u >= base.n[0]) & (n_u <= base.n[-1])
    target = np.where(inside, np.interp(n_u, base.n, base.mean), np.nan)
    n_a = np.array([labels_to_reach(act, t) if ok else np.nan for t, ok in zip(target, inside)])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = n_u / n_a
    flat = inside & (target <= act.mean[0])
    return LAR(f, n_u, target, n_a, ratio, flat)
