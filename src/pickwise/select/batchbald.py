"""Greedy BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019).

Acquisition of a batch S = {x_1 .. x_b}:

    a(S) = H(y_1, …, y_b) − Σ_i E_ω H(y_i | ω)

estimated from T consistent MC draws (the same dropout masks ω_t for every pool item):
P(y_S) = mean_t Π_{s∈S} p_t,s[y_s]. The batch is grown greedily, each step adding the candidate
with the largest a(S ∪ {x}) (submodular, so within 1 − 1/e of the best batch).

Exact or sampled joint entropy — where the switch is: with b points already chosen, the joint
over them has K^b configurations. While K^b ≤ ``max_configs`` (40,000 by default) the table
P_t(y_S) of shape (T, K^b) is kept exactly and H(y_S, y_x) is summed over all K^(b+1)
configurations. Beyond that, ``n_samples`` configurations of y_S are drawn from P(y_S) (stratified:
sample m uses draw t = m mod T, then each y_s ~ p_t,s), afresh at every step from all chosen points
as in the authors' code, and

    H(y_S, y_x) ≈ −(1/M) Σ_m [ log P(y_S^m) + Σ_y q_m(y) log q_m(y) ],
    q_m(y) = P(y_S^m, y_x = y) / P(y_S^m)

(importance form; products of probabilities are kept in logs to avoid underflow). Everything is
float64. Memory: the (T, n, K) draws plus one chunk of (configurations × chunk × K).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, xlogy

from .._validation import (
    check_batch_size,
    check_draws,
    check_indices,
    check_positive_int,
)

__all__ = ["batchbald_select", "batchbald_scores", "conditional_entropies"]

# entries of one (configurations × chunk × K) block
_BLOCK = 1 << 21


def conditional_entropies(draws: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """E_ω H(y_i | ω) = mean_t H(p_t,i); ndarray of shape (n,). ``draws``: (n_draws, n, n_classes)."""
    return _conditional_entropies(check_draws("draws", draws, n_items=n_items))


def _conditional_entropies(draws: np.ndarray) -> np.ndarray:
    return -xlogy(draws, draws).sum(axis=2).mean(axis=0)


def _exact_table(chosen_draws: np.ndarray) -> np.ndarray:
    """P_t(y_S) for every configuration: (T, K^b), the last chosen point varying fastest."""
    t = chosen_draws.shape[0]
    table = np.ones((t, 1))
    for s in range(chosen_draws.shape[1]):
        table = (table[:, :, None] * chosen_draws[:, s, None, :]).reshape(t, -1)
    return table


def _sampled_log_table(chosen_draws: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """log P_t(y_S^m) for ``n_samples`` configurations drawn from P(y_S): (T, M)."""
    t, b, k = chosen_draws.shape
    which = np.arange(n_samples) % t  # stratified over draws
    log_table = np.zeros((t, n_samples))
    with np.errstate(divide="ignore"):
        for s in range(b):
            cdf = np.cumsum(chosen_draws[which, s, :], axis=1)  # (M, K)
            u = rng.random(n_samples) * cdf[:, -1]
            y = np.minimum((u[:, None] >= cdf).sum(axis=1), k - 1)
            log_table += np.log(chosen_draws[:, s, y])  # (T, M)
    return log_table


def _joint_entropies(draws: np.ndarray, table: np.ndarray, *, log_scale: np.ndarray | None) -> np.ndarray:
    """H(y_S, y_i) for every candidate i, from the exact table or the sampled one (see module doc).

    ``table`` is (T, C). Exact mode: ``log_scale`` None. Sampled mode: ``table`` holds P_t(y_S^m)
    divided by its maximum over t, and ``log_scale`` (M,) is log P(y_S^m).
    """
    t, n, k = draws.shape
    c = table.shape[1]
    step = max(1, _BLOCK // (c * k))
    out = np.empty(n)
    marg = table.mean(axis=0)  # (C,)
    for start in range(0, n, step):
        stop = min(start + step, n)
        m = stop - start
        joint = (table.T @ draws[:, start:stop, :].reshape(t, m * k)).reshape(c, m, k) / t
        if log_scale is None:
            out[start:stop] = -xlogy(joint, joint).sum(axis=(0, 2))
        else:
            q = joint / marg[:, None, None]
            out[start:stop] = -(log_scale.sum() + xlogy(q, q).sum(axis=(0, 2))) / c
    return out


def batchbald_scores(
    draws: np.ndarray,
    chosen: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    max_configs: int = 40_000,
    n_samples: int = 40_000,
    cond: np.ndarray | None = None,
    n_items: int | None = None,
) -> np.ndarray:
    """a(S ∪ {x_i}) for every item i, with S = ``chosen``; ndarray of shape (n,).

    ``draws`` has shape (n_draws, n, n_classes), draws first (``n_items``, when given, is checked
    against axis 1); ``chosen`` holds distinct positions in 0 .. n − 1. Exact while
    K^|S| ≤ ``max_configs``; otherwise sampled with ``n_samples`` configurations drawn from ``rng``
    (required then). Items in S get the value a(S) = H(y_S) − Σ_{s∈S} E_ω H(y_s | ω) (from the same
    exact table or sampled configurations as the others), not a(S ∪ {x_i}) with x_i counted twice.
    ``cond`` (shape (n,)) may pass :func:`conditional_entropies` in when it is already known.
    """
    d = check_draws("draws", draws, n_items=n_items)
    n = d.shape[1]
    s = check_indices("chosen", chosen, n)
    if np.unique(s).shape[0] != s.shape[0]:
        raise ValueError(f"chosen must hold distinct positions; got {s.tolist()}")
    check_positive_int("max_configs", max_configs)
    check_positive_int("n_samples", n_samples)
    if cond is not None:
        cond = np.asarray(cond, dtype=np.float64)
        if cond.shape != (n,) or not np.all(np.isfinite(cond)):
            raise ValueError(f"cond must be {n} finite conditional entropies; got shape {cond.shape}")
    return _batchbald_scores(d, s, rng=rng, max_configs=max_configs, n_samples=n_samples, cond=cond)


def _batchbald_scores(
    draws: np.ndarray, chosen: np.ndarray, *, rng: np.random.Generator | None, max_configs: int, n_samples: int,
    cond: np.ndarray | None,
) -> np.ndarray:
    """:func:`batchbald_scores` on checked float64 draws and int64 ``chosen`` (the greedy loop's step)."""
    t, n, k = draws.shape
    if cond is None:
        cond = _conditional_entropies(draws)
    b = chosen.shape[0]
    if k**b <= max_configs:
        table = _exact_table(draws[:, chosen, :])
        joint = _joint_entropies(draws, table, log_scale=None)
        marg = table.mean(axis=0)
        h_s = float(-xlogy(marg, marg).sum())  # H(y_S), exact
    else:
        if rng is None:
            raise ValueError(f"{k}^{b} configurations exceed max_configs={max_configs}; sampling needs an rng")
        log_table = _sampled_log_table(draws[:, chosen, :], n_samples, rng)
        top = log_table.max(axis=0)
        log_marg = logsumexp(log_table, axis=0) - np.log(t)
        joint = _joint_entropies(draws, np.exp(log_table - top), log_scale=log_marg)
        h_s = float(-log_marg.mean())  # H(y_S) ≈ −mean_m log P(y_S^m), the configurations being drawn from P
    out = joint - cond[chosen].sum() - cond
    out[chosen] = h_s - cond[chosen].sum()  # a(S) itself: y_i for i ∈ S adds nothing
    return out


def batchbald_select(
    draws: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    max_configs: int = 40_000,
    n_samples: int = 40_000,
    n_items: int | None = None,
) -> np.ndarray:
    """Greedy BatchBALD: ``k`` distinct positions in pick order.

    Parameters
    ----------
    draws : ndarray of shape (n_draws, n, n_classes)
        Consistent MC draws (one seed for the whole pool), draws first. Converted to float64.
    k : int
        1 ≤ k ≤ n.
    rng : numpy Generator
        Used only once K^b exceeds ``max_configs`` (sampled configurations).
    max_configs : int
        Largest K^b for which the joint entropy is computed exactly.
    n_samples : int
        M, the number of sampled configurations beyond that.
    n_items : int, optional
        The number of items n: checked against axis 1, so that an (n, n_draws, n_classes) array
        raises ``ValueError`` instead of selecting draw indices.

    Each step takes the first maximum; k = 1 is BALD's top item.
    """
    d = check_draws("draws", draws, n_items=n_items)
    n = d.shape[1]
    k = check_batch_size(k, n)
    check_positive_int("max_configs", max_configs)
    check_positive_int("n_samples", n_samples)
    cond = _conditional_entropies(d)
    picks: list[int] = []
    for _ in range(k):
        scores = _batchbald_scores(d, np.array(picks, dtype=np.int64), rng=rng, max_configs=max_configs,
                                   n_samples=n_samples, cond=cond)
        if picks:
            scores[picks] = -np.inf
        picks.append(int(np.argmax(scores)))
    return np.array(picks, dtype=np.int64)
