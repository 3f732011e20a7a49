"""EPIG and greedy BatchEPIG (Bickford Smith, Kirsch, Farquhar, Gal, Foster & Rainforth,
"Prediction-Oriented Bayesian Active Learning", AISTATS 2023).

The expected predictive information gain of a candidate x is the mutual information between its
label y and the label y* of a target input x* ~ p*(x*), averaged over the targets:

    EPIG(x) = E_{x*} I(y; y* | x, x*) = E_{x*} KL( p(y, y*) ‖ p(y) p(y*) ),

estimated from T consistent MC draws (the same parameter sample ω_t for x and x*; MC layout
(T, n, K) as everywhere in pickwise):

    p(y, y*) = (1/T) Σ_t p_t(y | x) p_t(y* | x*),   p(y) = (1/T) Σ_t p_t(y | x),   p(y*) likewise,

and E_{x*} the mean over M target inputs. :func:`epig_scores` evaluates this KL form as written
(not H(y) + H(y*) − H(y, y*), which equals it only when every row sums to exactly 1): the joint of
a block of candidates with every target is one matrix product (m·K, T) @ (T, M·K), so time is
O(n·M·K²·T) and memory one block of 2^21 joint entries plus the inputs.

Batch version (greedy, as BatchBALD extends BALD): for a batch S,

    EPIG(S) = E_{x*} I(y_S; y* | x_S, x*) = H(y_S) + E_{x*} H(y*) − E_{x*} H(y_S, y*),

grown one point at a time by the largest EPIG(S ∪ {x}). The joint entropies come from
:func:`pickwise.select.batchbald.batchbald_scores` with zero conditional entropies (it then returns
H(y_S, y_x) itself): H(y_S, y_x) on the candidates' draws, and H(y_S, y*, y_x) with the target x*
appended to S. Both are exact while K^|S| (resp. K^(|S|+1)) ≤ ``max_configs`` and otherwise
estimated from ``n_samples`` configurations drawn from ``rng`` (BatchBALD's importance estimator,
drawn afresh for each target and step). With 0 < |S| the sampled estimates of the two entropies
use different draws, so the difference is noisier than either.

Cost of one greedy step: M calls of the BatchBALD joint entropy over n candidates, O(M·n·C·K·T)
with C ≤ max(max_configs, n_samples) configurations; k steps in all. That is only practical for
small candidate sets (a few hundred, pre-filtered by EPIG), few targets and small k.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import xlogy

from .._validation import check_positive_int, check_probs
from .batchbald import _batchbald_scores

__all__ = ["batch_epig_scores", "batch_epig_select", "check_mc_pair", "epig_scores"]

# entries of one (m·K) × (M·K) block of joint probabilities
_BLOCK = 1 << 21


def check_mc_pair(probs_pool: Any, probs_target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate two sets of consistent MC draws: float64 arrays (T, n, K) and (T, M, K).

    Raises ``ValueError`` naming the shapes when the number of draws (axis 0) or of classes (axis 2)
    differ — what a (n, T, K) array passed for (T, n, K) usually shows — or a set is empty.
    """
    p = check_probs("probs_pool", probs_pool, ndim=3)
    q = check_probs("probs_target", probs_target, ndim=3)
    if p.shape[0] != q.shape[0] or p.shape[2] != q.shape[2]:
        raise ValueError(
            "probs_pool and probs_target must both have shape (n_draws, n, n_classes) with the same n_draws and "
            f"n_classes; got shapes {p.shape} and {q.shape}"
        )
    if p.shape[1] == 0:
        raise ValueError(f"probs_pool must hold at least one item; got shape {p.shape}")
    if q.shape[1] == 0:
        raise ValueError(f"probs_target must hold at least one target input; got shape {q.shape}")
    return p, q


def epig_scores(probs_pool: np.ndarray, probs_target: np.ndarray) -> np.ndarray:
    """EPIG of every pool item against the target inputs; float64 ndarray of shape (n,).

    Parameters
    ----------
    probs_pool : ndarray of shape (n_draws, n, n_classes)
        MC draws p_t(y | x) of the candidates.
    probs_target : ndarray of shape (n_draws, M, n_classes)
        MC draws p_t(y* | x*) of the target inputs, from the same parameter samples (draw t of
        both comes from one ω_t).

    Returns (1/M) Σ_j KL(p(y, y*_j) ‖ p(y) p(y*_j)) per item, in [0, log K] up to rounding.
    """
    p, q = check_mc_pair(probs_pool, probs_target)
    t, n, k = p.shape
    m_t = q.shape[1]
    q_flat = q.reshape(t, m_t * k)
    q_mean = q.mean(axis=0)  # (M, K)
    out = np.empty(n)
    step = max(1, _BLOCK // (k * m_t * k))
    for start in range(0, n, step):
        stop = min(start + step, n)
        m = stop - start
        block = p[:, start:stop, :]
        joint = (block.reshape(t, m * k).T @ q_flat).reshape(m, k, m_t, k)
        joint /= t
        neg_h = xlogy(joint, joint).sum(axis=(1, 2, 3))
        # Σ_{j,y} p(y, y*_j summed out) log p(y) and Σ_{j,y*} p(y summed out, y*_j) log p(y*_j)
        cross_pool = xlogy(joint.sum(axis=(2, 3)), block.mean(axis=0)).sum(axis=1)
        cross_targ = xlogy(joint.sum(axis=1), q_mean[None]).sum(axis=(1, 2))
        out[start:stop] = (neg_h - cross_pool - cross_targ) / m_t
    return out


def _joint_entropy(draws: np.ndarray, chosen: np.ndarray, rng: np.random.Generator | None, max_configs: int,
                   n_samples: int) -> np.ndarray:
    """H(y_chosen, y_i) for every item i of ``draws``: BatchBALD's joint entropy (zero conditionals)."""
    return _batchbald_scores(draws, chosen, rng=rng, max_configs=max_configs, n_samples=n_samples,
                             cond=np.zeros(draws.shape[1]))


def _batch_epig(p: np.ndarray, q: np.ndarray, chosen: np.ndarray, rng: np.random.Generator | None,
                max_configs: int, n_samples: int) -> np.ndarray:
    n = p.shape[1]
    q_mean = q.mean(axis=0)
    mean_h_targ = float(-xlogy(q_mean, q_mean).sum(axis=1).mean())
    h_pool = _joint_entropy(p, chosen, rng, max_configs, n_samples)
    with_target = np.append(chosen, n)  # the target is appended as item n
    aug = np.empty((p.shape[0], n + 1, p.shape[2]))
    aug[:, :n] = p
    h_joint = np.zeros(n)
    for j in range(q.shape[1]):
        aug[:, n] = q[:, j]
        h_joint += _joint_entropy(aug, with_target, rng, max_configs, n_samples)[:n]
    return h_pool + mean_h_targ - h_joint / q.shape[1]


def batch_epig_scores(
    probs_pool: np.ndarray,
    probs_target: np.ndarray,
    chosen: Any,
    *,
    rng: np.random.Generator | None = None,
    max_configs: int = 40_000,
    n_samples: int = 40_000,
) -> np.ndarray:
    """EPIG(S ∪ {x_i}) = H(y_S, y_i) + E H(y*) − E H(y_S, y_i, y*) for every item i; shape (n,).

    ``chosen`` holds the positions of S in ``probs_pool``. With S empty this is EPIG in its
    entropy form (equal to :func:`epig_scores` when every row sums to 1). Exact while
    K^(|S|+1) ≤ ``max_configs``; beyond, sampled with ``n_samples`` configurations from ``rng``
    (required then). Values for items in S are not meaningful.
    """
    p, q = check_mc_pair(probs_pool, probs_target)
    check_positive_int("max_configs", max_configs)
    check_positive_int("n_samples", n_samples)
    s = np.asarray(chosen, dtype=np.int64).reshape(-1)
    if s.size and (s.min() < 0 or s.max() >= p.shape[1]):
        raise ValueError(f"chosen must hold positions in 0 .. {p.shape[1] - 1}; got {s.tolist()}")
    return _batch_epig(p, q, s, rng, max_configs, n_samples)


def batch_epig_select(
    probs_pool: np.ndarray,
    probs_target: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    max_configs: int = 40_000,
    n_samples: int = 40_000,
) -> np.ndarray:
    """Greedy BatchEPIG: ``k`` distinct positions of ``probs_pool`` in pick order.

    Parameters
    ----------
    probs_pool : ndarray of shape (n_draws, n, n_classes)
        Consistent MC draws of the candidates.
    probs_target : ndarray of shape (n_draws, M, n_classes)
        Draws of the target inputs from the same parameter samples.
    k : int
        1 ≤ k ≤ n.
    rng : numpy Generator
        Used only once the joint has more than ``max_configs`` configurations (sampled estimate).
    max_configs, n_samples : int
        As in :func:`pickwise.select.batchbald.batchbald_select`.

    Each step takes the first maximum of :func:`batch_epig_scores`; k = 1 is EPIG's top item.
    """
    p, q = check_mc_pair(probs_pool, probs_target)
    n = p.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} must be an integer in 1 .. {n} (the number of candidates)")
    check_positive_int("max_configs", max_configs)
    check_positive_int("n_samples", n_samples)
    picks: list[int] = []
    for _ in range(int(k)):
        scores = _batch_epig(p, q, np.array(picks, dtype=np.int64), rng, max_configs, n_samples)
        if picks:
            scores[picks] = -np.inf
        picks.append(int(np.argmax(scores)))
    return np.array(picks, dtype=np.int64)
