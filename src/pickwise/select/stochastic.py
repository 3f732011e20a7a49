"""Stochastic batch acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal, TMLR 2023).

Instead of the top-k scores, draw k items without replacement, each next item with probability
proportional to

    "softmax":  exp(β·s_i)
    "power":    s_i^β            (scores must be ≥ 0)
    "softrank": rank_i^(−β)      (rank 1 = highest score; ties ranked by a seeded draw)

among the items not yet drawn. Implemented with the Gumbel-top-k trick: keys log w_i + G_i with
G_i ~ Gumbel(0, 1) i.i.d., sorted descending, give exactly that sequential (Plackett–Luce)
distribution in O(n + k log k). Items with zero weight (power mode, s = 0) come after every item
with positive weight, in uniformly random order.
"""

from __future__ import annotations

import numpy as np

from .._validation import (
    as_numeric,
    check_batch_size,
    check_choice,
    check_finite,
    check_rng,
)

__all__ = ["stochastic_batch", "stochastic_log_weights", "STOCHASTIC_MODES"]

STOCHASTIC_MODES = ("softmax", "power", "softrank")


def stochastic_log_weights(
    scores: np.ndarray, *, mode: str = "softmax", beta: float = 1.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """log of the unnormalised sampling weights; ndarray of shape (n,) (−inf for zero weight).

    ``rng`` is needed only by "softrank", to rank tied scores.
    """
    s = check_finite("scores", np.asarray(as_numeric("scores", scores), dtype=np.float64))
    check_choice("mode", mode, STOCHASTIC_MODES)
    if mode == "softmax":
        return beta * s
    if mode == "power":
        if s.size and s.min() < 0:
            raise ValueError(f"power mode needs scores >= 0; got {float(s.min())}")
        with np.errstate(divide="ignore"):
            return np.where(s > 0, beta * np.log(np.where(s > 0, s, 1.0)), -np.inf)
    if rng is None:
        raise ValueError("softrank mode needs an rng to rank tied scores")
    order = np.lexsort((rng.random(s.shape[0]), -s))
    rank = np.empty(s.shape[0])
    rank[order] = np.arange(1, s.shape[0] + 1)
    return -beta * np.log(rank)


def stochastic_batch(
    scores: np.ndarray, k: int, *, rng: np.random.Generator, mode: str = "softmax", beta: float = 1.0
) -> np.ndarray:
    """``k`` distinct positions drawn sequentially without replacement ∝ the mode's weight.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Higher = more informative.
    k : int
        0 ≤ k ≤ n.
    rng : numpy Generator
        (softrank: one uniform per item for ties first), then one Gumbel per item, then one
        uniform per item to order zero-weight items.
    mode : "softmax", "power" or "softrank"
    beta : float
        β ≥ 0; β = 0 is uniform sampling.

    Returns
    -------
    ndarray of shape (k,), int64, in draw order.
    """
    s = np.asarray(as_numeric("scores", scores), dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must have shape (n,); got shape {s.shape}")
    check_batch_size(k, s.shape[0], what="the number of scores", low=0)
    check_rng(rng)
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0; got {beta}")
    logw = stochastic_log_weights(s, mode=mode, beta=beta, rng=rng)
    keys = logw + rng.gumbel(size=s.shape[0])
    tie = rng.random(s.shape[0])
    # zero-weight items (key −inf) sort last, among themselves by the uniform draw
    order = np.lexsort((tie, -np.where(np.isfinite(keys), keys, -np.inf)))
    return order[:k].astype(np.int64)
