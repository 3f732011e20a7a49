"""Acquisition scores: pure functions over probability arrays. Higher = more informative.

Single-model scores take ``probs`` of shape (n, n_classes); MC-dropout scores take
``draws`` of shape (n_draws, n, n_classes) — draws first, items second, the layout of every MC
array in pickwise; committee scores take ``members`` of shape (n_members, n, n_classes). Every
function returns a float64 array of shape (n,).

Layout check: an (n, n_draws, n_classes) array has the same number of axes, so from the array
alone the two layouts cannot be told apart. Pass ``n_items=n`` (the number of items scored) to the
MC and committee scores and a swapped array raises ``ValueError`` naming its shape and the layout
expected; the strategies pass it for every chunk. Bad input (wrong ndim or dtype, NaN or inf,
values outside [0, 1], rows not summing to 1) raises ``ValueError`` naming the argument.
Entropies use natural logarithms. Definitions follow ../shared/ALGORITHMS.md (Gal et al. 2017
for the MC scores; Settles' survey for the committee scores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._validation import (
    as_numeric,
    check_choice,
    check_draws,
    check_mc_layout,
    check_positive_int,
    check_probs,
)

__all__ = [
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "variation_ratio",
    "mean_std",
    "max_entropy",
    "vote_entropy",
    "kl_to_consensus",
    "SCORES",
    "MC_SCORES",
    "COMMITTEE_SCORES",
    "get_score",
]


def _entropy(p: np.ndarray) -> np.ndarray:
    # 0 log 0 = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 − max_c p_c, in [0, 1 − 1/K]."""
    p = check_probs("probs", probs)
    return 1.0 - p.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 − (p_(1) − p_(2)): one minus the gap between the two most likely classes, in [0, 1]."""
    p = check_probs("probs", probs)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy −Σ p_c log p_c, in [0, log K]."""
    p = check_probs("probs", probs)
    return _entropy(p)


def max_entropy(draws: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """Entropy of the mean prediction over MC draws, H(mean_t p_t).

    ``draws``: (n_draws, n, n_classes), draws first; ``n_items`` (optional) is the number of
    items, checked against axis 1 so that an (n, n_draws, n_classes) array raises.
    """
    d = check_draws("draws", draws, n_items=n_items)
    return _entropy(d.mean(axis=0))


# values (n_draws · items · n_classes) per block of the blocked MC scores: a block stays in the
# CPU cache across its passes (the check, the logarithm, the sums), so the draws are read from
# memory once and no temporary grows with n
_BLOCK_VALUES = 1 << 17


def _draw_blocks(name: str, draws: Any, n_items: int | None, atol: float = 1e-4) -> Iterator[tuple[slice, np.ndarray]]:
    """(items, block) over MC draws (n_draws, n, n_classes), ``block = draws[:, items]`` checked as
    :func:`pickwise._validation.check_draws` checks the whole array (same rules, same messages).

    float32 and float64 stay as they are (no copy unless a block needs clipping to [0, 1]); any
    other number type is widened to float64 once. Each block is checked in one read: min, max
    (NaN and inf show in them) and row sums by a product with ones; a block that fails (or comes
    within 1e-6 of ``atol``) is handed to the full check, whose error names the position in the
    whole array.
    """
    if n_items is not None:
        n_items = check_positive_int("n_items", n_items, allow_zero=True)
    arr = as_numeric(name, draws)
    check_mc_layout(name, arr.shape, n_items=n_items)
    if arr.dtype not in (np.float32, np.float64) or arr.shape[-1] < 1:
        arr = check_probs(name, arr, ndim=3, atol=atol)
    n_draws, n, k = arr.shape
    step = max(1, _BLOCK_VALUES // (n_draws * k))
    ones = np.ones(k, dtype=arr.dtype)
    for start in range(0, n, step):
        items = slice(start, min(start + step, n))
        block = arr[:, items]
        lo, hi = float(block.min()), float(block.max())
        sums = block @ ones  # (n_draws, m): BLAS, many times faster than .sum(axis=-1) over short rows
        if not (-atol <= lo and hi <= 1 + atol and float(np.max(np.abs(sums - 1))) <= atol - 1e-6):
            try:
                check_probs(name, block, ndim=3, atol=atol)  # the exact rule: a borderline block passes
            except ValueError:
                check_probs(name, arr, ndim=3, atol=atol)  # the same error, naming the position in the whole array
                raise
        if lo < 0 or hi > 1:
            block = np.clip(block, 0.0, 1.0)
        yield items, block


def _bald_block(d: np.ndarray) -> np.ndarray:
    """BALD of one checked block (n_draws, m, n_classes), float64 (m,).

    float64 input: the plain formula's operations in its order (bit for bit, on
    inputs without subnormal probabilities). float32 input: p·log p in float32 (0·log 0 = 0 by
    clipping p to the smallest normal float before the log, so no mask and no ``np.where``), the
    sums over classes in float32 (a product with ones), every sum over draws and the entropy of the
    mean in float64; scores agree with the float64 formula on the same values to about 1e-6.
    """
    n_draws, _, k = d.shape
    tiny = np.finfo(d.dtype).tiny
    terms = np.maximum(d, tiny)
    np.log(terms, out=terms)
    terms *= d
    if d.dtype == np.float64:
        mean = np.add.reduce(d, axis=0) / n_draws
        neg_mean_h = np.add.reduce(terms.sum(axis=-1), axis=0) / n_draws
    else:
        mean = np.add.reduce(d, axis=0, dtype=np.float64) / n_draws
        neg_mean_h = np.add.reduce(terms @ np.ones(k, dtype=d.dtype), axis=0, dtype=np.float64) / n_draws
    return np.maximum(_entropy(mean) + neg_mean_h, 0.0)


def bald(draws: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """Mutual information H(mean_t p_t) − mean_t H(p_t) (Houlsby et al. 2011; Gal et al. 2017).

    Averages probabilities, not logits. Zero when all draws agree; clipped at 0 against rounding.

    ``draws``: (n_draws, n, n_classes), draws first; ``n_items`` (optional) is the number of
    items, checked against axis 1 so that an (n, n_draws, n_classes) array raises.

    Computed in blocks of items (no temporary grows with n) in the input's float type: float64
    equals the plain whole-array float64 formula exactly; float32 is never copied to float64 (sums
    over draws in float64) and agrees with it to about 1e-6 relative (docs/performance.md, "The
    small selection costs").
    """
    d = as_numeric("draws", draws)
    out = np.empty(d.shape[1] if d.ndim == 3 else 0)
    for items, block in _draw_blocks("draws", d, n_items):
        out[items] = _bald_block(block)
    return out


def variation_ratio(draws: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """1 − (count of the modal predicted class over draws) / n_draws, in [0, 1 − 1/K].

    ``draws``: (n_draws, n, n_classes), draws first; ``n_items`` (optional) is the number of
    items, checked against axis 1 so that an (n, n_draws, n_classes) array raises.
    """
    d = check_draws("draws", draws, n_items=n_items)
    n_draws, n, k = d.shape
    votes = d.argmax(axis=2)  # (T, n)
    counts = np.zeros((n, k), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(n), votes.shape), votes), 1)
    return 1.0 - counts.max(axis=1) / n_draws


def mean_std(draws: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """Mean over classes of the standard deviation over draws of p_c.

    ``draws``: (n_draws, n, n_classes), draws first; ``n_items`` (optional) is the number of
    items, checked against axis 1 so that an (n, n_draws, n_classes) array raises.
    """
    d = check_draws("draws", draws, n_items=n_items)
    return d.std(axis=0).mean(axis=1)


def vote_entropy(members: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """−Σ_c (V_c / C) log(V_c / C), V_c = number of committee members voting for class c.

    ``members``: (n_members, n, n_classes), members first; ``n_items`` (optional) is the
    number of items, checked against axis 1.
    """
    m = check_draws("members", members, n_items=n_items, axes="n_members, n, n_classes")
    n_members, n, k = m.shape
    votes = m.argmax(axis=2)
    counts = np.zeros((n, k), dtype=np.float64)
    np.add.at(counts, (np.broadcast_to(np.arange(n), votes.shape), votes), 1.0)
    return _entropy(counts / n_members)


def kl_to_consensus(members: np.ndarray, *, n_items: int | None = None) -> np.ndarray:
    """mean_c KL(P_c ‖ P_mean): the average divergence of each member from the consensus.

    ``members``: (n_members, n, n_classes), members first; ``n_items`` (optional) is the
    number of items, checked against axis 1.
    """
    m = check_draws("members", members, n_items=n_items, axes="n_members, n, n_classes")
    consensus = m.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(m > 0, m * (np.log(np.where(m > 0, m, 1.0)) - np.log(np.where(m > 0, consensus, 1.0))), 0.0)
    return np.maximum(terms.sum(axis=2).mean(axis=0), 0.0)


ScoreFn = Callable[[np.ndarray], np.ndarray]

#: single-model scores over probs (n, K), by name (the one table of names)
SCORES: dict[str, ScoreFn] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
#: scores over MC draws (T, n, K)
MC_SCORES: dict[str, ScoreFn] = {
    "bald": bald,
    "variation_ratio": variation_ratio,
    "mean_std": mean_std,
    "max_entropy": max_entropy,
}
#: scores over committee members (C, n, K)
COMMITTEE_SCORES: dict[str, ScoreFn] = {
    "vote_entropy": vote_entropy,
    "kl_to_consensus": kl_to_consensus,
}


def get_score(name: str) -> ScoreFn:
    """Look a score up by name in any of the three tables."""
    return check_choice("score", name, {**SCORES, **MC_SCORES, **COMMITTEE_SCORES})
