"""Greedy BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019).

Acquisition of a batch S = {x_1 .. x_b}:

    a(S) = H(y_1, …, y_b) − Σ_i E_ω H(y_i | ω)

estimated from T consistent MC draws (the same dropout masks ω_t for every pool item):
P(y_S) = mean_t Π_{s∈S} p_t,s[y_s]. The batch is grown greedily, each step adding the candidate
with the largest a(S ∪ {x}) (submodular, so within 1 − 1/e of the best batch).

Exact or sampled joint entropy — where the switch is: with b points already chosen, the joint
over them has K^b configurations. While K^b ≤ ``max_configs`` the table P_t(y_S) of shape
(T, K^b) is kept exactly and H(y_S, y_x) is summed over all K^(b+1) configurations. Beyond that,
``n_samples`` configurations of y_S drawn from P(y_S) are used (stratified: sample m uses draw
t = m mod T, then each y_s ~ p_t,s), and

    H(y_S, y_x) ≈ −(1/M) Σ_m [ log P(y_S^m) + Σ_y q_m(y) log q_m(y) ],
    q_m(y) = P(y_S^m, y_x = y) / P(y_S^m)

(importance form; products of probabilities are kept in logs to avoid underflow).
:func:`batchbald_scores` (and the plain greedy ``_plain_select``, the reference of the tests and
``benchmarks/select.py``) draw the configurations afresh at every step, as in the authors' code,
all in float64.

:func:`batchbald_select` is a lazy greedy (Minoux's accelerated greedy). The marginal gain
a(S ∪ {i}) − a(S) only shrinks as S grows (submodularity), so every item keeps an upper bound:
first its BALD a({i}), then the smaller of that and I(y_i; ω | y_p) for each new pick p (its gain
given p alone, a K-configuration joint, cheap for the whole pool), and its gain when last
evaluated. A step evaluates items in decreasing bound (then increasing position), a chunk at a
time, and stops when the next bound is below the best gain found (less a 1e-9 relative rounding
slack): no item is dropped in advance, and while the joint is exact the picks are the plain
exact greedy's, first maximum on ties included (tested against it and a brute force). The joint
entropy of the chosen set H(y_S) is computed once per step, not per candidate. Once sampling
starts, the M configurations are drawn once and then extended at each pick by y_pick ~ p_t,pick
for their draw t — still a stratified draw from P(y_S), without redrawing the whole chosen set —
and the gains H(y_x | y_S) − E_ω H(y_x | ω) are computed in float32 as −(1/M) Σ_m Σ_y q log q with
q_m = Σ_t w_t,m p_t,x (w the normalised P_t(y_S^m)). Approximate there: the gains are estimates
(common to all items of a step), and earlier estimates serve as the lazy bounds without slack.
Once the estimated a(S) reaches log T (the draws can tell no more), every gain is ~0 and the pick
among near-zero estimates is arbitrary, as in the plain greedy.

Defaults (:data:`MAX_CONFIGS`, :data:`N_SAMPLES`, shared by :class:`pickwise.strategies.BatchBALD`
and the CLI): exact up to 1,000 configurations (with K = 10 the first four picks), then 1,000
sampled ones. Measured on 9,900 candidates, T = 20, K = 10, one thread: k = 100 in 4–8 s and
k = 1000 in 26–35 s, the first four picks equal to the exact greedy's on MNIST-MLP and synthetic
draws (``python benchmarks/select.py --batchbald-only``; the old class defaults, whole pool with
40,000 configurations and every item scored, cost about 31 s per sampled pick in the same run). Memory: the (T, n, K)
draws (plus a float32 copy once sampling starts) and one chunk of (configurations × chunk × K).
"""

from __future__ import annotations

from collections.abc import Callable

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
# relative rounding slack of the lazy-greedy stopping rule
_SLACK = 1e-9
#: defaults shared by :func:`batchbald_select`, :class:`pickwise.strategies.BatchBALD` and the CLI
MAX_CONFIGS = 1_000
N_SAMPLES = 1_000


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
    max_configs: int = MAX_CONFIGS,
    n_samples: int = N_SAMPLES,
    n_items: int | None = None,
) -> np.ndarray:
    """Greedy BatchBALD: ``k`` distinct positions in pick order (lazy greedy, see the module doc).

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

    Each step takes the first maximum; k = 1 is BALD's top item. While K^b ≤ ``max_configs`` the
    picks equal those of the plain greedy that scores every item at every step.
    """
    d = check_draws("draws", draws, n_items=n_items)
    n = d.shape[1]
    k = check_batch_size(k, n)
    check_positive_int("max_configs", max_configs)
    check_positive_int("n_samples", n_samples)
    t, _, kc = d.shape
    cond = _conditional_entropies(d)
    # upper bound on every item's marginal gain: BALD(i) = a({i}) ≥ a(S ∪ {i}) − a(S) (submodular)
    bound = _joint_entropies(d, np.ones((t, 1)), log_scale=None) - cond
    picks: list[int] = []
    free = np.ones(n, dtype=bool)
    table = np.ones((t, 1))  # exact P_t(y_S), (T, K^b)
    log_table: np.ndarray | None = None  # sampled log P_t(y_S^m), (T, M), once exact stops
    which = np.arange(n_samples) % t  # sampled configuration m is drawn from draw m mod T
    d32: np.ndarray | None = None
    for b in range(k):
        if b == 0:
            pick = int(np.argmax(bound))
        else:
            if log_table is None and kc**b > max_configs:
                log_table = _sampled_log_table(d[:, picks, :], n_samples, rng)
                d32 = d.astype(np.float32)
            if log_table is None:
                marg = table.mean(axis=0)
                gains = _exact_gains(d, table, float(-xlogy(marg, marg).sum()), cond)
                slack = _SLACK
            else:
                # q_m(y) = Σ_t w_t,m p_t,i[y] with w_t,m = P_t(y_S^m) / Σ_t' P_t'(y_S^m), in float32
                w = np.exp(log_table - logsumexp(log_table, axis=0)).astype(np.float32)
                gains = _sampled_gains(d32, w, cond)
                slack = 0.0
            configs = table.shape[1] if log_table is None else n_samples
            pick = _lazy_step(gains, bound, free, slack=slack, step=max(16, _BLOCK // (configs * kc)))
        picks.append(pick)
        free[pick] = False
        if b + 1 < k:
            # tighter bound from the new pick alone: a(S ∪ {i}) − a(S) ≤ I(y_i; ω | y_pick) for pick ∈ S
            rest = np.flatnonzero(free)
            pair = d[:, pick, :]
            marg = pair.mean(axis=0)
            bound[rest] = np.minimum(bound[rest], _joint_entropies(d[:, rest, :], pair, log_scale=None)
                                     + xlogy(marg, marg).sum() - cond[rest])
        if log_table is None:
            if b + 1 < k and kc ** (b + 1) <= max_configs:
                table = (table[:, :, None] * d[:, pick, None, :]).reshape(t, -1)
        else:
            # extend every sampled configuration by y_pick ~ p_{m mod T, pick}: still a draw from P(y_S)
            log_table += _sample_log_probs(d[:, pick, :], which, rng)
    return np.array(picks, dtype=np.int64)


def _sample_log_probs(p: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """log p_t[y^m] for y^m ~ p_{which[m]} (one item's (T, K) draws): (T, M)."""
    cdf = np.cumsum(p[which], axis=1)
    u = rng.random(which.shape[0]) * cdf[:, -1]
    y = np.minimum((u[:, None] >= cdf).sum(axis=1), p.shape[1] - 1)
    with np.errstate(divide="ignore"):
        return np.log(p[:, y])


def _exact_gains(draws: np.ndarray, table: np.ndarray, h_s: float, cond: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Exact marginal gains H(y_S, y_i) − H(y_S) − E_ω H(y_i | ω) of items ``idx`` (float64)."""
    return lambda idx: _joint_entropies(draws[:, idx, :], table, log_scale=None) - h_s - cond[idx]


def _sampled_gains(draws32: np.ndarray, w: np.ndarray, cond: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Sampled marginal gains −(1/M) Σ_m Σ_y q_m(y) log q_m(y) − E_ω H(y_i | ω) (float32 products)."""
    t, _, k = draws32.shape
    m = w.shape[1]

    def gains(idx: np.ndarray) -> np.ndarray:
        q = (w.T @ draws32[:, idx, :].reshape(t, -1)).reshape(m, idx.shape[0], k)
        return -xlogy(q, q).sum(axis=(0, 2), dtype=np.float64) / m - cond[idx]

    return gains


def _lazy_step(gains: Callable[[np.ndarray], np.ndarray], bound: np.ndarray, free: np.ndarray, *, slack: float,
               step: int) -> int:
    """One lazy-greedy step: evaluate free items ``step`` at a time in decreasing ``bound`` (then
    increasing position) until the next bound falls below the best gain found, less a relative
    rounding ``slack``; ``bound`` is updated in place with the evaluated gains.

    Returns the first maximum of the evaluated gains: every item whose bound reaches that maximum
    has been evaluated, so with valid bounds (exact gains, submodularity) it is the first maximum
    over all free items.
    """
    cand = np.flatnonzero(free)
    cand = cand[np.argsort(-bound[cand], kind="stable")]
    best, best_i = -np.inf, -1
    for start in range(0, cand.shape[0], step):
        if start and bound[cand[start]] < best - slack * max(1.0, abs(best)):
            break
        idx = cand[start:start + step]
        gain = gains(idx)
        bound[idx] = gain
        top = float(gain.max())
        if top >= best:  # ties: the smallest position among equal gains, as np.argmax over all items
            first = int(idx[gain == top].min())
            best_i = first if top > best else min(best_i, first)
            best = top
    return best_i


def _plain_select(
    draws: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    max_configs: int = MAX_CONFIGS,
    n_samples: int = N_SAMPLES,
    n_items: int | None = None,
) -> np.ndarray:
    """The plain greedy: every item scored by :func:`batchbald_scores` at every step, sampled
    configurations drawn afresh from all chosen points at each step (the reference for
    :func:`batchbald_select` in tests and ``benchmarks/select.py``)."""
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
