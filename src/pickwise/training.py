"""Training variants: how the loop trains the model of each round.

A trainer is called as ``trainer(model, x, pool, seed=..., round=...)``; it fits ``model`` and may
return a dict of facts for the round record (``RoundRecord.extra``). Trainers never write to the
pool: pseudo-labels are used for training only and never become labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_positive_int
from .pool import Pool
from .scores import entropy
from .utils import derive_rng, take


def fit_labeled(model: Any, x: Any, pool: Pool, *, seed: int, round: int) -> dict[str, Any]:
    """Plain training on the labelled items (the loop's default)."""
    lab = pool.labeled
    model.fit(take(x, lab), pool.labels[lab], seed=seed)
    return {}


def _subset(indices: np.ndarray, limit: int | None, seed: int, round: int) -> np.ndarray:
    if limit is None or indices.shape[0] <= limit:
        return indices
    return np.sort(derive_rng(seed, round, 7).choice(indices, limit, replace=False))


@dataclass(frozen=True)
class JointEntropy:
    """Joint entropy-regularised training (Ranganathan et al., ICIP 2017).

    Minimises mean CE on the labelled items + λ · mean predictive entropy on the unlabelled items,
    mini-batches drawn from both. λ is the model's ``entropy_weight`` (``TorchClassifier``), so
    λ = 0 is plain training. ``max_unlabeled`` caps (by a seeded subset) the unlabelled items handed
    to the model each round.
    """

    max_unlabeled: int | None = None

    def __post_init__(self) -> None:
        if self.max_unlabeled is not None:
            check_positive_int("max_unlabeled", self.max_unlabeled)

    def __call__(self, model: Any, x: Any, pool: Pool, *, seed: int, round: int) -> dict[str, Any]:
        if not hasattr(model, "entropy_weight"):
            raise TypeError(f"JointEntropy needs a model with an entropy_weight (TorchClassifier); got {type(model).__name__}")
        lab = pool.labeled
        unl = _subset(pool.unlabeled, self.max_unlabeled, seed, round)
        model.fit(take(x, lab), pool.labels[lab], seed=seed, unlabeled_x=take(x, unl))
        return {"n_unlabeled_in_training": int(unl.shape[0]), "entropy_weight": float(model.entropy_weight)}


@dataclass(frozen=True)
class PseudoLabel:
    """CEAL: cost-effective active learning with pseudo-labels (Wang et al., IEEE TCSVT 2016).

    Each round: train on the labelled items; give the pseudo-label argmax p to every unlabelled item
    whose predictive entropy is below δ_r = max(delta0 − decay · round, 0); retrain on labelled +
    pseudo-labelled items (same seed). The strategy still queries from the true pool, and the
    pseudo-labels live only in this round's training set. The defaults δ₀ = 0.005, dr = 0.00033 are
    pickwise's choice, not verified against the paper's text (the paper's experimental section could not
    be consulted offline; ALGORITHMS.md marks them unverified). They are the values of the widely used
    public PyTorch re-implementation of CEAL (``delta_0=0.005, dr=0.00033``); the threshold is on the
    predictive entropy in nats. Set them per dataset: with K classes the entropy ranges over [0, ln K].

    ``max_pseudo`` caps the pseudo-labelled items (the most confident first).
    """

    delta0: float = 0.005
    decay: float = 0.00033
    max_pseudo: int | None = None
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        for name in ("delta0", "decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.max_pseudo is not None:
            check_positive_int("max_pseudo", self.max_pseudo, allow_zero=True)

    def threshold(self, round: int) -> float:
        return max(self.delta0 - self.decay * round, 0.0)

    def __call__(self, model: Any, x: Any, pool: Pool, *, seed: int, round: int) -> dict[str, Any]:
        lab = pool.labeled
        x_lab, y_lab = take(x, lab), pool.labels[lab]
        model.fit(x_lab, y_lab, seed=seed)
        delta = self.threshold(round)
        unl = pool.unlabeled
        if delta <= 0 or unl.shape[0] == 0:
            return {"n_pseudo": 0, "delta": delta}
        probs_pred = np.concatenate(
            [model.predict_proba(take(x, unl[i : i + self.chunk_size])) for i in range(0, unl.shape[0], self.chunk_size)]
        )
        h = entropy(probs_pred)
        confident = np.flatnonzero(h < delta)
        if self.max_pseudo is not None and confident.shape[0] > self.max_pseudo:
            confident = confident[np.argsort(h[confident], kind="stable")[: self.max_pseudo]]
        confident = np.sort(confident)
        if confident.shape[0] == 0:
            return {"n_pseudo": 0, "delta": delta}
        pseudo_idx = unl[confident]
        pseudo_y = probs_pred[confident].argmax(axis=1)
        both = np.concatenate([lab, pseudo_idx])
        model.fit(take(x, both), np.concatenate([y_lab, pseudo_y]), seed=seed)
        return {"n_pseudo": int(pseudo_idx.shape[0]), "delta": delta}
