"""Active learning by learning, ALBL (Hsu & Lin, AAAI 2015): an EXP4.P bandit over strategies.

Each round one arm (an inner strategy) is drawn from the bandit's mixed probabilities
q = (1 − A·p_min)·w/Σw + p_min (A arms) and picks the whole batch, as in the BADGE repository's
batch ALBL. Once the labels are in and the model retrained, the loop calls
``observe_labels(model, x, indices, labels)``; the reward is the importance-weighted accuracy
(IW-ACC) of that model on every point ALBL has queried so far, each weighted by 1/q_arm of the
round that queried it:

    r_t = Σ_{queried j} (1/q_{arm(j)}) · 1[f_t(x_j) = y_j] / (A · #queried).

Under arm sampling E[Σ_{j∈batch} 1[…]/q_arm] sums the correct counts of every arm's batch, so
r_t estimates the mean accuracy over the batches the arms would have queried. (Hsu & Lin divide
by n·T for one point per round, which scales the same estimate by t/T; we divide by what has
been queried so far. The propensity is the drawn arm's probability, as in the BADGE repository's
code, not the exact probability that any arm would have queried the point.) EXP4.P (Beygelzimer
et al., AISTATS 2011) with one-hot advice (expert i recommends arm i) then updates every arm (the
BADGE repository's code updates only the drawn one):

    log w_i += (p_min/2)·(r̂_i + v̂_i·sqrt(ln(A/δ)/(A·T))),  r̂_i = r_t/q_i if i was drawn else 0,
    v̂_i = 1/q_i,

with δ = 0.1, p_min = 1/(10·A) by default (the authors' settings) and T = ``horizon`` (1 when
None, as in the BADGE repository's code).

Loop protocol: ``select`` remembers the drawn arm, its probability and the batch;
``observe_labels`` turns them into a reward. Calls without a pending selection (e.g. for the
initial labels) and indices that were not in the pending batch are ignored. State goes through
``state_dict()`` / ``load_state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import (
    check_int_values,
    check_positive_int,
    check_probs,
    check_selection,
)
from ..pool import Pool
from ..utils import take
from ._base import check_pool_indices, model_rows

__all__ = ["ALBL", "exp4p_probabilities", "exp4p_update", "iw_accuracy"]


def exp4p_probabilities(log_weights: np.ndarray, p_min: float) -> np.ndarray:
    """q = (1 − A·p_min)·w/Σw + p_min; ndarray of shape (A,)."""
    w = np.exp(log_weights - log_weights.max())
    return (1.0 - log_weights.shape[0] * p_min) * w / w.sum() + p_min


def exp4p_update(
    log_weights: np.ndarray, probs: np.ndarray, arm: int, reward: float, *, p_min: float, delta: float, horizon: int
) -> np.ndarray:
    """EXP4.P's weight update with one-hot advice (expert i = arm i); returns new log-weights."""
    a = log_weights.shape[0]
    r_hat = np.zeros(a)
    r_hat[arm] = reward / probs[arm]
    v_hat = 1.0 / probs
    return log_weights + p_min / 2.0 * (r_hat + v_hat * math.sqrt(math.log(a / delta) / (a * horizon)))


def iw_accuracy(correct: np.ndarray, weights: np.ndarray, n_arms: int) -> float:
    """Σ w_j·1[correct_j] / (n_arms · #points); 0 for no points."""
    if correct.shape[0] == 0:
        return 0.0
    return float(np.sum(weights * correct) / (n_arms * correct.shape[0]))


class ALBL:
    """EXP4.P over strategies, one arm per batch (Hsu & Lin, "Active Learning by Learning", AAAI 2015).

    Parameters
    ----------
    arms : sequence of strategies
        At least two; ``needs`` is the union of theirs.
    delta : float
        EXP4.P's confidence, 0 < δ < 1 (0.1).
    p_min : float or None
        Minimum arm probability, 0 < p_min ≤ 1/A; default 1/(10·A).
    horizon : int or None
        T in EXP4.P's exploration bonus; None means 1 (the BADGE repository's code).
    history : bool
        True (the paper, and the authors' libact code): the reward is the IW accuracy over every
        point ALBL has queried so far. False: over the latest batch only, which credits the
        drawn arm alone.

    Mutable: holds the bandit's weights and the queried history. Use a fresh instance per run.
    """

    def __init__(self, arms: Sequence[Any], *, delta: float = 0.1, p_min: float | None = None,
                 horizon: int | None = None, history: bool = True):
        arms = list(arms)
        if len(arms) < 2:
            raise ValueError(f"ALBL needs at least 2 arms; got {len(arms)}")
        for arm in arms:
            if not callable(getattr(arm, "select", None)):
                raise ValueError(f"every arm must be a strategy with select(); got {arm!r}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must lie in (0, 1); got {delta}")
        a = len(arms)
        if p_min is None:
            p_min = 1.0 / (10 * a)
        if not 0 < p_min <= 1.0 / a:
            raise ValueError(f"p_min must lie in (0, 1/{a}]; got {p_min}")
        if horizon is not None:
            check_positive_int("horizon", horizon)
        if not isinstance(history, (bool, np.bool_)):
            raise ValueError(f"history must be True or False; got {history!r}")
        self.history = bool(history)
        self.arms = arms
        self.delta = float(delta)
        self.p_min = float(p_min)
        self.horizon = horizon
        needs: list[type] = []
        for arm in arms:
            needs += [cap for cap in getattr(arm, "needs", ()) if cap not in needs]
        self.needs = tuple(needs)
        self.log_weights = np.zeros(a)
        self.pending: dict[str, Any] | None = None
        self.history_indices = np.empty(0, dtype=np.int64)
        self.history_labels = np.empty(0, dtype=np.int64)
        self.history_weights = np.empty(0)
        self.rewards: list[float] = []
        self.arms_drawn: list[int] = []

    @property
    def name(self) -> str:
        return "albl"

    def probabilities(self) -> np.ndarray:
        """The arms' current probabilities, shape (A,)."""
        return exp4p_probabilities(self.log_weights, self.p_min)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        q = self.probabilities()
        arm = int(rng.choice(len(self.arms), p=q))
        chosen = np.asarray(self.arms[arm].select(model, x, pool, k, rng=rng), dtype=np.int64)
        self.pending = {"arm": arm, "probs": q, "indices": chosen}
        self.arms_drawn.append(arm)
        return chosen

    def observe_labels(self, model: Any, x: Any, indices: np.ndarray, labels: np.ndarray) -> float | None:
        """Reward the last drawn arm with the IW accuracy of ``model`` (already retrained on the new
        labels) on all points ALBL has queried; returns the reward, or None without a pending batch."""
        if self.pending is None:
            return None
        idx = check_pool_indices(x, indices)
        lab = check_int_values("labels", labels)
        if idx.shape != lab.shape:
            raise ValueError(f"indices and labels must have the same shape; got {idx.shape} and {lab.shape}")
        mine = np.isin(idx, self.pending["indices"])
        arm = self.pending["arm"]
        q = self.pending["probs"]
        if not self.history:
            self.history_indices = self.history_indices[:0]
            self.history_labels = self.history_labels[:0]
            self.history_weights = self.history_weights[:0]
        self.history_indices = np.concatenate([self.history_indices, idx[mine]])
        self.history_labels = np.concatenate([self.history_labels, lab[mine]])
        self.history_weights = np.concatenate([self.history_weights, np.full(int(mine.sum()), 1.0 / q[arm])])
        if self.history_indices.shape[0]:
            rows = self.history_indices.shape[0]
            probs = model_rows("predict_proba output", model.predict_proba(take(x, self.history_indices)), rows)
            pred = check_probs("predict_proba output", probs).argmax(axis=1)
            correct = (pred == self.history_labels).astype(np.float64)
        else:
            correct = np.empty(0)
        reward = iw_accuracy(correct, self.history_weights, len(self.arms))
        self.log_weights = exp4p_update(self.log_weights, q, arm, reward, p_min=self.p_min, delta=self.delta,
                                        horizon=self.horizon or 1)
        self.rewards.append(reward)
        self.pending = None
        return reward

    def state_dict(self) -> dict:
        pending = None
        if self.pending is not None:
            pending = {"arm": self.pending["arm"], "probs": self.pending["probs"].tolist(),
                       "indices": self.pending["indices"].tolist()}
        return {
            "log_weights": self.log_weights.tolist(),
            "pending": pending,
            "history_indices": self.history_indices.tolist(),
            "history_labels": self.history_labels.tolist(),
            "history_weights": self.history_weights.tolist(),
            "rewards": list(self.rewards),
            "arms_drawn": list(self.arms_drawn),
        }

    def load_state_dict(self, state: dict) -> None:
        lw = np.asarray(state["log_weights"], dtype=np.float64)
        if lw.shape != (len(self.arms),):
            raise ValueError(f"state has {lw.shape[0]} arm weights; this ALBL has {len(self.arms)} arms")
        self.log_weights = lw
        p = state["pending"]
        self.pending = None if p is None else {"arm": int(p["arm"]), "probs": np.asarray(p["probs"], dtype=np.float64),
                                               "indices": np.asarray(p["indices"], dtype=np.int64)}
        self.history_indices = np.asarray(state["history_indices"], dtype=np.int64)
        self.history_labels = np.asarray(state["history_labels"], dtype=np.int64)
        self.history_weights = np.asarray(state["history_weights"], dtype=np.float64)
        self.rewards = [float(r) for r in state["rewards"]]
        self.arms_drawn = [int(a) for a in state["arms_drawn"]]

    def __repr__(self) -> str:
        names = ", ".join(getattr(a, "name", type(a).__name__) for a in self.arms)
        return (f"ALBL(arms=[{names}], delta={self.delta}, p_min={self.p_min}, horizon={self.horizon}, "
                f"history={self.history})")
