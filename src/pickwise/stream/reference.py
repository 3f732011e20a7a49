"""A direct transcription of VeSSAL's published pseudo-code, for tests and benchmarks only.

It keeps A_t as a D×D matrix updated every item and computes tr(A_t Σ̂⁻¹) as a full matrix product
every item, as the authors' code does: O(D³) per item. ``VeSSAL`` must take the same decisions
under the same uniforms; use ``VeSSAL`` for real work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import check_rate, rate_at

__all__ = ["DirectResult", "vessal_direct"]


@dataclass(frozen=True)
class DirectResult:
    """decisions (n,) bool; probs (n,) the p_t before capping at 1; traces (n,) tr(A_t Σ̂⁻¹) before
    the item's own update of Σ̂⁻¹; a (D, D) final A_t; sigma_inv (D, D) final Σ̂⁻¹."""

    decisions: np.ndarray
    probs: np.ndarray
    traces: np.ndarray
    a: np.ndarray
    sigma_inv: np.ndarray


def vessal_direct(
    z: np.ndarray,
    uniforms: np.ndarray,
    *,
    q: float | None = None,
    budget: int | None = None,
    length: int | None = None,
    lam: float = 0.01,
) -> DirectResult:
    """Run the pseudo-code on ``z`` (n, D) with one uniform per item (``uniforms`` (n,))."""
    q, budget, length = check_rate(q, budget, length)
    z = np.asarray(z, dtype=np.float64)
    n, dim = z.shape
    a = np.zeros((dim, dim))
    sigma_inv = np.eye(dim) / lam
    decisions = np.zeros(n, dtype=bool)
    probs = np.zeros(n)
    traces = np.zeros(n)
    n_queried = 0
    for i in range(n):
        t = i + 1
        g = z[i]
        a = ((t - 1) / t) * a + (1 / t) * np.outer(g, g)
        trace = float(np.trace(a @ sigma_inv))
        norm = float(g @ sigma_inv @ g)
        rate = rate_at(q, budget, length, t, n_queried)
        p = rate * norm / trace if trace > 0 else rate
        traces[i], probs[i] = trace, p
        if uniforms[i] < p:
            decisions[i] = True
            n_queried += 1
            w = sigma_inv @ g
            sigma_inv = sigma_inv - np.outer(w, w) / (1.0 + g @ w)
    return DirectResult(decisions, probs, traces, a, sigma_inv)
