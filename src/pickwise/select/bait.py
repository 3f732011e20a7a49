"""BAIT: batch selection by Fisher information (Ash, Goel, Krishnamurthy & Kakade, NeurIPS 2021).

Each item x has K Fisher rows V_x[y] = sqrt(p_y)·(e_y − p) ⊗ h (class-indexed blocks, y = 0..K−1),
so its last-layer Fisher is V_xᵀV_x = (diag p − p pᵀ) ⊗ h hᵀ. With F the mean Fisher over the
whole pool (labelled and unlabelled, as in the authors' code), BAIT minimises

    tr(M_S⁻¹ F),    M_S = λI + n_L/(n_L+B) · F_L + B/(n_L+B) · Σ_{x∈S} V_xᵀV_x

(F_L the mean Fisher of the labelled set, B = k; these weights are the authors' code's) by greedy
forward selection of ``oversample``·k items, then greedy backward removal down to k. Each step
is a rank-K Woodbury update of M⁻¹ (D×D, D = K·d).

Fast path: for every candidate we keep the K×K products A_x = V_x M⁻¹ V_xᵀ and
B_x = V_x M⁻¹ F M⁻¹ V_xᵀ. Adding (s = +1) or removing (s = −1) item j changes the objective by
−tr(B_j (sI + A_j)⁻¹); after the step, with W = M⁻¹V_jᵀ, C = (sI + A_j)⁻¹, G_x = V_x W,
Z_x = V_x M⁻¹ F W and E = Wᵀ F W:

    M⁻¹ ← M⁻¹ − W C Wᵀ,   A_x ← A_x − G_x C G_xᵀ,
    B_x ← B_x − G_x C Z_xᵀ − Z_x C G_xᵀ + G_x C E C G_xᵀ.

G_x and Z_x are formed from the factors (p_x, h_x) in O(K²·d) per item, so a step costs
O(n·K²·d + D²·K) time; V_x (K×D per item) is only ever built for the one item being added.
Memory: a few D×D matrices (M⁻¹, F and temporaries of their products) plus 2·n·K² floats. The one-off set-up
(F, F_L and the initial A_x, B_x) costs O(n·D²) time in blocks of about 2M floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import as_numeric, check_batch_size, check_finite, check_probs

__all__ = ["bait_select", "bait_greedy", "BaitTrace", "fisher_rows", "mean_fisher"]

_BLOCK = 1 << 21


def _factor(probs: np.ndarray) -> np.ndarray:
    """S_x with V_x = S_x ⊗ h_x: S[y, c] = sqrt(p_y)(δ_yc − p_c); shape (n, K, K)."""
    k = probs.shape[1]
    return np.sqrt(probs)[:, :, None] * (np.eye(k)[None] - probs[:, None, :])


def fisher_rows(probs: np.ndarray, h: np.ndarray) -> np.ndarray:
    """V_x materialised: ndarray of shape (n, K, K·d). For small inputs and tests."""
    s = _factor(check_probs("probs", probs))
    n, k, _ = s.shape
    return (s[:, :, :, None] * np.asarray(h, dtype=np.float64)[:, None, None, :]).reshape(n, k, -1)


def mean_fisher(probs: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(1/n) Σ_x V_xᵀV_x = (1/n) Σ_x (diag p_x − p_x p_xᵀ) ⊗ h_x h_xᵀ; shape (K·d, K·d).

    One (K·d × m)·(m × d) product per class and block of m items: O(n·D²) time, no n×D array.
    """
    n, k = probs.shape
    d = h.shape[1]
    out = np.zeros((k, d, k, d))
    step = max(1, _BLOCK // (k * d))
    for start in range(0, n, step):
        p = probs[start : start + step]
        hc = h[start : start + step]
        sig = -p[:, :, None] * p[:, None, :]
        sig[:, np.arange(k), np.arange(k)] += p
        for c in range(k):
            stack = (sig[:, c, :, None] * hc[:, None, :]).reshape(hc.shape[0], k * d)  # (m, K·d)
            out[c] += (hc.T @ stack).reshape(d, k, d)
    return out.reshape(k * d, k * d) / max(n, 1)


def _quad(s: np.ndarray, h: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """V_x mat V_xᵀ for every x, from the factors: (n, K, K)."""
    n, k, _ = s.shape
    d = h.shape[1]
    m4 = mat.reshape(k, d, k, d).transpose(1, 0, 2, 3).reshape(d, k * k * d)
    out = np.empty((n, k, k))
    step = max(1, _BLOCK // (k * k * d))
    for start in range(0, n, step):
        hc = h[start : start + step]
        y = (hc @ m4).reshape(hc.shape[0], k, k, d)
        t = np.einsum("mabg,mg->mab", y, hc)
        sc = s[start : start + step]
        out[start : start + step] = sc @ t @ sc.transpose(0, 2, 1)
    return out


def _times(s: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """V_x w for every x, w of shape (K·d, r): (n, K, r)."""
    k = s.shape[1]
    d = h.shape[1]
    r = w.shape[1]
    w3 = w.reshape(k, d, r).transpose(1, 0, 2).reshape(d, k * r)
    return s @ (h @ w3).reshape(h.shape[0], k, r)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass
class BaitTrace:
    """What :func:`bait_greedy` did: ``steps`` as (+1 add / −1 remove, position), the objective
    tr(M⁻¹F) before any step and after each one, and the final ``selected`` positions."""

    selected: np.ndarray
    steps: list[tuple[int, int]] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)


def bait_greedy(
    probs: np.ndarray,
    h: np.ndarray,
    k: int,
    *,
    probs_labeled: np.ndarray | None = None,
    h_labeled: np.ndarray | None = None,
    lam: float = 1.0,
    oversample: float = 2.0,
) -> BaitTrace:
    """BAIT forward–backward greedy; see the module docstring. Deterministic (first maximum on ties).

    Parameters
    ----------
    probs, h : ndarrays of shape (n, K) and (n, d)
        Candidates (the unlabelled pool).
    k : int
        Batch size, 1 ≤ k ≤ n.
    probs_labeled, h_labeled : ndarrays of shape (m, K) and (m, d), optional
        The labelled set (model predictions, not labels: the Fisher is an expectation over y).
    lam : float
        λ > 0, the ridge on M.
    oversample : float
        Forward steps = min(n, round(oversample·k)) ≥ k, then backward to k.
    """
    p = check_probs("probs", probs)
    hh = check_finite("h", np.asarray(as_numeric("h", h), dtype=np.float64))
    n, kc = p.shape
    if hh.ndim != 2 or hh.shape[0] != n:
        raise ValueError(f"h must have shape ({n}, d); got shape {hh.shape}")
    d = hh.shape[1]
    k = check_batch_size(k, n, what="the number of candidates")
    if not _is_number(lam) or not np.isfinite(lam) or not lam > 0:
        raise ValueError(f"lam must be a finite number > 0; got {lam!r}")
    if not _is_number(oversample) or not np.isfinite(oversample) or not oversample >= 1:
        raise ValueError(f"oversample must be a finite number >= 1; got {oversample!r}")
    if (probs_labeled is None) != (h_labeled is None):
        raise ValueError("give both probs_labeled and h_labeled, or neither")
    if probs_labeled is None:
        pl, hl = np.empty((0, kc)), np.empty((0, d))
    else:
        pl = check_probs("probs_labeled", probs_labeled)
        hl = check_finite("h_labeled", np.asarray(as_numeric("h_labeled", h_labeled), dtype=np.float64))
        if pl.shape[1] != kc or hl.shape != (pl.shape[0], d):
            raise ValueError(f"labelled factors must be ({pl.shape[0]}, {kc}) and ({pl.shape[0]}, {d}); "
                             f"got {pl.shape} and {hl.shape}")
    n_l = pl.shape[0]

    dim = kc * d
    fisher = mean_fisher(p, hh)
    m0 = lam * np.eye(dim)
    if n_l:
        fisher_l = mean_fisher(pl, hl)
        fisher *= n / (n + n_l)
        fisher += (n_l / (n + n_l)) * fisher_l
        fisher_l *= n_l / (n_l + k)
        m0 += fisher_l
        del fisher_l
    minv = np.linalg.inv(m0)
    del m0
    minv = (minv + minv.T) / 2
    s = _factor(p) * np.sqrt(k / (n_l + k))
    a_x = _quad(s, hh, minv)
    b_x = _quad(s, hh, minv @ fisher @ minv)
    eye = np.eye(kc)

    trace = BaitTrace(selected=np.empty(0, dtype=np.int64), objective=[float(np.trace(minv @ fisher))])
    chosen = np.zeros(n, dtype=bool)
    order: list[int] = []

    def step(sign: int, pool_mask: np.ndarray) -> None:
        nonlocal minv, a_x, b_x
        est = np.full(n, -np.inf)
        idx = np.flatnonzero(pool_mask)
        est[idx] = np.trace(np.linalg.solve(sign * eye + a_x[idx], b_x[idx]), axis1=1, axis2=2)
        j = int(np.argmax(est))
        c = np.linalg.inv(sign * eye + a_x[j])
        c = (c + c.T) / 2
        v_j = (s[j][:, :, None] * hh[j][None, None, :]).reshape(kc, dim)
        w = minv @ v_j.T  # (D, K)
        fw = fisher @ w
        r = minv @ fw
        e = w.T @ fw
        g = _times(s, hh, w)
        z = _times(s, hh, r)
        gc = g @ c
        a_x = a_x - gc @ g.transpose(0, 2, 1)
        zc_gt = z @ (c @ g.transpose(0, 2, 1))
        b_x = b_x - zc_gt - zc_gt.transpose(0, 2, 1) + gc @ e @ gc.transpose(0, 2, 1)
        minv = minv - w @ c @ w.T
        trace.objective.append(trace.objective[-1] - float(est[j]))
        trace.steps.append((sign, j))
        chosen[j] = sign > 0
        if sign > 0:
            order.append(j)
        else:
            order.remove(j)

    n_forward = min(n, max(k, int(round(oversample * k))))
    for _ in range(n_forward):
        step(+1, ~chosen)
    for _ in range(n_forward - k):
        step(-1, chosen)
    trace.selected = np.array(order, dtype=np.int64)
    return trace


def bait_select(
    probs: np.ndarray,
    h: np.ndarray,
    k: int,
    *,
    probs_labeled: np.ndarray | None = None,
    h_labeled: np.ndarray | None = None,
    lam: float = 1.0,
    oversample: float = 2.0,
) -> np.ndarray:
    """BAIT's ``k`` positions (forward order, pruned ones removed); ndarray of shape (k,), int64."""
    return bait_greedy(probs, h, k, probs_labeled=probs_labeled, h_labeled=h_labeled, lam=lam,
                       oversample=oversample).selected
