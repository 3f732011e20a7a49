"""Top-k with seeded tie-breaking, in O(n) plus O(k log k)."""

from __future__ import annotations

import numpy as np

from .._validation import as_numeric, check_batch_size, check_finite, check_rng


def _prepare(scores: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    s = check_finite("scores", np.asarray(as_numeric("scores", scores), dtype=np.float64))
    if s.ndim != 1:
        raise ValueError(f"scores must have shape (n,); got shape {s.shape}")
    check_batch_size(k, s.shape[0], what="the number of scores", low=0)
    check_rng(rng)
    # one uniform draw per item decides ties; both implementations consume the generator alike
    return s, rng.random(s.shape[0])


def top_k(scores: np.ndarray, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest scores, best first; ties broken uniformly at random by ``rng``.

    Equals :func:`top_k_reference` exactly: order by (−score, u) with u ~ U(0, 1) per item.
    """
    s, u = _prepare(scores, k, rng)
    n = s.shape[0]
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if k == n:
        cand = np.arange(n)
    else:
        threshold = np.partition(s, n - k)[n - k]
        above = np.flatnonzero(s > threshold)
        tied = np.flatnonzero(s == threshold)
        need = k - above.shape[0]
        tied = tied[np.argsort(u[tied], kind="stable")[:need]]
        cand = np.concatenate([above, tied])
    order = np.lexsort((u[cand], -s[cand]))
    return cand[order].astype(np.int64)


def top_k_reference(scores: np.ndarray, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """Plain full sort; the reference that :func:`top_k` must match."""
    s, u = _prepare(scores, k, rng)
    return np.lexsort((u, -s))[:k].astype(np.int64)
