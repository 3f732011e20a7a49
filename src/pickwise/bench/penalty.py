"""The pairwise penalty matrix (Ash et al., BADGE, ICLR 2020; also used by VeSSAL), as in ALGORITHMS.md.

Per setting (dataset, model, batch size B), with n0 the runs' initial labelled size (100 in the
papers):

* checkpoints: n0, n0 + B, n0 + 2B, n0 + 4B, n0 + 8B, … (:func:`checkpoints`), kept up to but not
  including the first one where the reference's (random's) mean accuracy exceeds 0.99 × its final
  mean accuracy, or that lies beyond the reference's largest size (:func:`kept_checkpoints`);
  L = number kept;
* at each kept checkpoint, for each ordered pair (i, j), i ≠ j: the first n = min(n_i, n_j, 5) runs
  of each, paired by run order, Z = acc_i − acc_j; skipped when n ≤ 1; i beats j when mean Z > 0
  and the two-sided one-sample t-test of Z against 0 has p < 0.05 — then cell (i, j) += 1/L.

The pre-selection checkpoint. At n0 no algorithm has chosen anything yet: every run of a seed
fits the same initial labels (pool and stream arms share the round-0 model), so any "win" there is
noise. ``pre_selection=False`` (what ``pickwise report`` uses) leaves n0 out of the kept
checkpoints, and out of L; the default keeps it, as the papers' list n0, n0 + B, … does.

So a setting adds at most 1 to a cell; the matrix is the sum over settings, and its column means
(over ALL rows, the zero diagonal included) say how often an algorithm is beaten: lower = better.

Degenerate differences (pickwise's rule). When every Z is the same value the t statistic is 0/0 or
±∞ and ``scipy.stats.ttest_1samp`` returns p = NaN or p = 0 (or, with rounding, a huge t and a
warning). pickwise decides these cases itself: all Z = 0 → no win either way; all Z equal and
non-zero → a win in the sign's direction (the limit of t → ±∞ as the spread vanishes: every paired
run agrees). "Equal" means a spread (max − min) of at most 1e-12, so rounding in acc_i − acc_j
cannot flip the decision. Runs whose accuracy is NaN at a checkpoint (not covering it) are left
out before pairing: n_i counts the runs of i that have a value there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .curves import Curve

ALPHA = 0.05
MAX_RUNS = 5
STOP_FRACTION = 0.99
_TIE = 1e-12


def checkpoints(initial: int, k: int, max_size: float) -> list[int]:
    """Labelled-set sizes initial, initial + k, initial + 2k, initial + 4k, … up to ``max_size``."""
    if k < 1:
        raise ValueError(f"batch size must be >= 1; got {k}")
    out = [int(initial)] if initial <= max_size else []
    step = 1
    while initial + step * k <= max_size:
        out.append(int(initial + step * k))
        step *= 2
    return out


def kept_checkpoints(reference: Sequence[Curve], initial: int, k: int) -> list[int]:
    """The checkpoints before the reference's mean accuracy exceeds 0.99 × its final mean accuracy.

    The reference's largest size is the smallest last size over its runs (where all have a value);
    its final mean accuracy is the mean of their accuracies there.
    """
    if not reference:
        return []
    last = min(float(c.n[-1]) for c in reference)
    final = float(np.mean([c.at(last) for c in reference]))
    kept = []
    for c in checkpoints(initial, k, last):
        mean = float(np.mean([r.at(c) for r in reference]))
        if not math.isfinite(mean) or mean > STOP_FRACTION * final:
            break
        kept.append(c)
    return kept


def paired_win(z: np.ndarray, *, alpha: float = ALPHA) -> int:
    """+1 if the differences ``z`` are significantly > 0, −1 if significantly < 0, else 0 (see module doc)."""
    z = np.asarray(z, dtype=float)
    if z.size <= 1:
        return 0
    mean = float(z.mean())
    if float(np.ptp(z)) <= _TIE * max(1.0, abs(mean)):
        if abs(mean) <= _TIE:
            return 0
        return 1 if mean > 0 else -1
    from scipy.stats import ttest_1samp

    p = float(ttest_1samp(z, 0.0).pvalue)
    if not p < alpha:
        return 0
    return 1 if mean > 0 else -1


@dataclass(frozen=True, eq=False)
class SettingPenalty:
    names: tuple[str, ...]
    matrix: np.ndarray  # (A, A): row i beats column j this often (in units of 1/L)
    checkpoints: tuple[int, ...]

    @property
    def L(self) -> int:
        return len(self.checkpoints)


def setting_penalty(
    curves: Mapping[str, Sequence[Curve]],
    *,
    k: int,
    initial: int | None = None,
    reference: str = "random",
    names: Sequence[str] | None = None,
    alpha: float = ALPHA,
    max_runs: int = MAX_RUNS,
    pre_selection: bool = True,
) -> SettingPenalty:
    """The penalty matrix of one setting: ``curves[name]`` = that algorithm's runs in run order.

    ``pre_selection=False``: the checkpoint at ``initial`` (before any selection) is not counted.
    """
    names = tuple(names) if names is not None else tuple(curves)
    a = len(names)
    mat = np.zeros((a, a))
    ref = list(curves.get(reference, ()))
    if not ref:
        return SettingPenalty(names, mat, ())
    if initial is None:
        initial = int(round(min(c.start for c in ref)))
    kept = kept_checkpoints(ref, initial, k)
    if not pre_selection:
        kept = [c for c in kept if c > initial]
    if not kept:
        return SettingPenalty(names, mat, ())
    for c in kept:
        acc = {}
        for name in names:
            vals = np.array([r.at(c) for r in curves.get(name, ())], dtype=float)
            acc[name] = vals[~np.isnan(vals)]
        for i, ni in enumerate(names):
            for j, nj in enumerate(names):
                if i == j:
                    continue
                n = min(len(acc[ni]), len(acc[nj]), max_runs)
                if n <= 1:
                    continue
                if paired_win(acc[ni][:n] - acc[nj][:n], alpha=alpha) > 0:
                    mat[i, j] += 1.0 / len(kept)
    return SettingPenalty(names, mat, tuple(kept))


@dataclass(frozen=True, eq=False)
class PenaltyMatrix:
    names: tuple[str, ...]
    matrix: np.ndarray  # summed over settings
    settings: tuple[tuple[str, ...], ...]
    per_setting: tuple[SettingPenalty, ...]

    @property
    def column_means(self) -> np.ndarray:
        """Mean of each column over ALL rows, the zero diagonal included (lower = beaten less)."""
        return self.matrix.mean(axis=0) if len(self.names) else np.zeros(0)

    def restricted(self, names: Sequence[str]) -> PenaltyMatrix:
        """The matrix over a subset of the algorithms (column means then average over that subset)."""
        idx = [self.names.index(n) for n in names]
        per = tuple(SettingPenalty(tuple(names), s.matrix[np.ix_(idx, idx)], s.checkpoints) for s in self.per_setting)
        return PenaltyMatrix(tuple(names), self.matrix[np.ix_(idx, idx)], self.settings, per)


def penalty_matrix(
    settings: Iterable[tuple[tuple[str, ...], int, int | None, Mapping[str, Sequence[Curve]]]],
    *,
    names: Sequence[str] | None = None,
    reference: str = "random",
    alpha: float = ALPHA,
    max_runs: int = MAX_RUNS,
    pre_selection: bool = True,
) -> PenaltyMatrix:
    """Sum of :func:`setting_penalty` over ``settings`` = [(key, k, initial or None, curves), ...].

    ``names``: the rows/columns (default: every algorithm seen, in first-seen order); an algorithm
    missing from a setting simply adds nothing there.
    """
    settings = list(settings)
    if names is None:
        seen: dict[str, None] = {}
        for _, _, _, curves in settings:
            seen.update(dict.fromkeys(curves))
        names = tuple(seen)
    names = tuple(names)
    total = np.zeros((len(names), len(names)))
    per = []
    for key, k, initial, curves in settings:
        sp = setting_penalty(curves, k=k, initial=initial, reference=reference, names=names, alpha=alpha,
                             max_runs=max_runs, pre_selection=pre_selection)
        total += sp.matrix
        per.append(sp)
    return PenaltyMatrix(names, total, tuple(tuple(s[0]) for s in settings), tuple(per))
