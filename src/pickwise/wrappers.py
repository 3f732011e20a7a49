"""Strategies that wrap strategies. Compute-efficient candidate subsampling with history.

Németh & Matuszka (aiMotive, 2024), "Compute-efficient active learning": keep a historical
acquisition value per absolute sample index; the first round scores the whole pool; each later
round draws a candidate pool of ``alpha`` items without replacement with probability
softmax(values / tau), re-scores only the candidates, stores their new values by sample index, and
selects the top ``k`` among them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._validation import check_choice, check_selection
from .pool import Pool
from .protocols import ScoreBased
from .select.topk import top_k

WEIGHTINGS = ("temperature", "power")


def candidate_weights(values: np.ndarray, *, tau: float, weighting: str = "temperature") -> np.ndarray:
    """Log-weights for candidate sampling: ``values / tau`` ("temperature", the paper's softmax
    with temperature) or ``values ** 1.2`` ("power", the authors' published code; values clipped
    at 0 first since a negative base has no real power)."""
    v = np.asarray(values, dtype=np.float64)
    if weighting == "temperature":
        return v / tau
    return np.maximum(v, 0.0) ** 1.2


def sample_without_replacement(log_w: np.ndarray, m: int, *, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``m`` draws without replacement, each next draw ∝ exp(log_w) among the rest.

    The Gumbel-top-m trick (Efraimidis & Spirakis 2006; Kool et al. 2019): O(n), exactly the
    sequential softmax sampling distribution.
    """
    keys = log_w + rng.gumbel(size=log_w.shape[0])
    if m >= log_w.shape[0]:
        return np.argsort(-keys, kind="stable")
    part = np.argpartition(-keys, m - 1)[:m]
    return part[np.argsort(-keys[part], kind="stable")]


class Subsample:
    """Candidate subsampling with history around any score-based strategy.

    Parameters
    ----------
    inner : ScoreBased
        A top-k-over-scores strategy (``Uncertainty``, ``MCDropout``, ...).
    alpha : int or float
        Candidate pool size: a count (int >= 1) or a fraction of the unlabelled items (0 < float <= 1).
    tau : float
        Softmax temperature for ``weighting="temperature"``: large → uniform candidates, small →
        the historical top.
    weighting : {"temperature", "power"}
        "power" is the published code's softmax(values ** 1.2), ignoring ``tau``.
    prune_below : float or None
        Items whose latest value is below this are never drawn as candidates again.

    State (``values``: the latest score per absolute index, NaN when never scored) lives on the
    instance and travels through ``state_dict``; ``last_n_scored`` tells the loop how many items the
    last ``select`` scored.
    """

    def __init__(
        self,
        inner: Any,
        *,
        alpha: int | float,
        tau: float = 1.0,
        weighting: str = "temperature",
        prune_below: float | None = None,
    ):
        if not isinstance(inner, ScoreBased):
            raise ValueError(f"Subsample needs a score-based strategy with a scores() method; got {inner!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise ValueError(f"alpha must be a count or a fraction; got {alpha!r}")
        if isinstance(alpha, (float, np.floating)) and not 0 < alpha <= 1:
            raise ValueError(f"alpha as a fraction must lie in (0, 1]; got {alpha}")
        if isinstance(alpha, (int, np.integer)) and alpha < 1:
            raise ValueError(f"alpha as a count must be >= 1; got {alpha}")
        if isinstance(tau, (bool, np.bool_)) or not (isinstance(tau, (int, float, np.integer, np.floating))
                                                     and tau > 0 and np.isfinite(tau)):
            raise ValueError(f"tau must be a positive finite number; got {tau!r}")
        check_choice("weighting", weighting, WEIGHTINGS)
        if prune_below is not None and (isinstance(prune_below, (bool, np.bool_))
                                        or not isinstance(prune_below, (int, float, np.integer, np.floating))
                                        or np.isnan(prune_below)):
            raise ValueError(f"prune_below must be None or a number; got {prune_below!r}")
        self.inner = inner
        self.alpha = alpha
        self.tau = float(tau)
        self.weighting = weighting
        self.prune_below = prune_below
        self.values: np.ndarray | None = None
        self.last_n_scored = 0

    needs: ClassVar[tuple[type, ...]] = ()

    @property
    def name(self) -> str:
        return f"subsample({getattr(self.inner, 'name', type(self.inner).__name__)}, alpha={self.alpha})"

    def __repr__(self) -> str:
        return (
            f"Subsample({self.inner!r}, alpha={self.alpha!r}, tau={self.tau!r}, "
            f"weighting={self.weighting!r}, prune_below={self.prune_below!r})"
        )

    def n_candidates(self, n_unlabeled: int, k: int) -> int:
        m = int(round(self.alpha * n_unlabeled)) if isinstance(self.alpha, (float, np.floating)) else int(self.alpha)
        return min(max(m, k), n_unlabeled)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        if self.values is None or self.values.shape[0] != len(pool):
            self.values = np.full(len(pool), np.nan)
            cand = unl  # the first round scores the whole pool
        else:
            eligible = unl
            if self.prune_below is not None:
                keep = ~(self.values[unl] < self.prune_below)  # NaN (never scored) is kept
                if keep.sum() >= k:
                    eligible = unl[keep]
            m = self.n_candidates(eligible.shape[0], k)
            if m >= eligible.shape[0]:
                cand = eligible
            else:
                v = self.values[eligible]
                known = np.isfinite(v)
                # never-scored items are drawn as if they had the best known value (optimism)
                fill = v[known].max() if known.any() else 0.0
                log_w = candidate_weights(np.where(known, v, fill), tau=self.tau, weighting=self.weighting)
                cand = np.sort(eligible[sample_without_replacement(log_w, m, rng=rng)])
        s = np.asarray(self.inner.scores(model, x, cand, rng=rng), dtype=np.float64)
        if s.shape != cand.shape:
            raise ValueError(f"{getattr(self.inner, 'name', 'the inner strategy')} scores must have shape "
                             f"{cand.shape} (one per candidate); got shape {s.shape}")
        self.values[cand] = s  # by absolute sample index, in the order the scores were computed
        self.last_n_scored = int(cand.shape[0])
        return cand[top_k(s, k, rng=rng)]

    def state_dict(self) -> dict[str, Any]:
        return {"values": None if self.values is None else [None if np.isnan(v) else float(v) for v in self.values]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vals = state.get("values")
        self.values = None if vals is None else np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
