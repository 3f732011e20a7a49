"""Rate-controlled VeSSAL: the published volume-sampling probability with a normaliser that holds q.

Why (issue 13). VeSSAL (Saran et al., ICML 2023; :class:`~pickwise.stream.VeSSAL`) queries the t-th item
with p_t = q·s_t / T_t, s_t = g_tᵀΣ̂⁻¹g_t, T_t = tr(Σ̂⁻¹A_t) = the mean over ALL items seen of their
quadratic forms under the *current* Σ̂⁻¹. An item that was chosen has its form collapsed by its own
update (s → s/(1+s) < 1) while an unchosen item of a new direction keeps s ≈ ‖g‖²/λ, so T_t falls far
below the forms of the items still to come and the realised rate overshoots q until about D items are
chosen: at q ≈ 0.2 and D = 640 the published rule queried 88 % of the first 488 mnist items. Within a
window of a few hundred items and D in the hundreds that regime is never left.

What this selector changes (pickwise's variant, beyond the paper). The probability keeps the published
form p_t = ρ_t·s_t / T̂_t — proportional to the item's quadratic form, so the volume-sampling
preference (the relative ranking of the items' probabilities at any time) is the published one — and
two things are estimated differently:

1. **Normaliser from recent items, leave-one-out.** T̂_t is calibrated on the last ``window`` items
   (this one included) by their quadratic forms under the current Σ̂⁻¹ *without their own update*:
   v_j = g_jᵀΣ̂⁻¹g_j for an unchosen item, and for a chosen one its leave-one-out form, which
   Sherman–Morrison gives exactly from its current form f_j: g_jᵀΣ̂₋ⱼ⁻¹g_j = f_j / (1 − f_j). That is
   what the next item — exchangeable with the recent ones — is expected to show, so it neither
   collapses with the items chosen (the published bias) nor drops the high-form items that were
   chosen (the bias of averaging over the unchosen ones only), and it follows a drifting stream with
   a lag of at most ``window`` items. The cap at 1 is part of the calibration: T̂ is replaced by the
   scale c_t solving mean_j min(c_t·v_j, 1) = ρ_t (:func:`calibrate`; without capped items
   c_t = ρ_t / mean_j v_j, the published form), and p_t = min(c_t·s_t, 1). So at high rates the
   mass lost to capping is given back to the rest, in proportion to their forms.
2. **Pacing.** The rate aimed at is ρ_t = min(1, q_t·m_t), q_t the selector's rate (fixed, or the
   adaptive (budget − queried)/(items left) of ``_base``, which also keeps the hard budget cap), and
   m_t = clip(exp(−e_t / h), 1/max_boost, max_boost) a multiplier from the budget error
   e_t = queried − q̄·(t − 1) (q̄ = q, or budget/length), with h = max(1, q̄·``pace``) queries: an error
   decays over about ``pace`` items. The multiplier is common to every item at time t and bounded,
   so it never reorders items and never turns the sampler into "query everything" (``pace=None``:
   no pacing, m_t = 1).

At t = 1 (or whenever the window holds a single item) c_t·s_t = ρ_t: the first item is queried with
the target rate, like a uniform coin; items with g = 0 get probability 0 unless every recent form is 0
(then ρ_t, as ``VeSSAL``'s guard) or the rate exceeds the share of positive forms (then they share
what is left). Decisions are ``u_t < p_t`` with one uniform per item, deterministic given the uniforms.

Cost. O(D²) per query and O(window·D + m·D) per item: ``observe_many`` forms U = G·Σ̂⁻¹ for a block of
up to 256 items with one GEMM and keeps each row's form current under the block's queries through the
scalars g_j·w (as ``VeSSAL`` does); a query updates the window's forms by one (window × D)
matrix–vector product; Σ̂⁻¹ gets the block's queries as one rank-k update. No A_t is kept. The
state is Σ̂⁻¹ (D×D float64) and the window's rows, forms and chosen flags.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import blas

from .._validation import check_positive_int
from ._base import finite_float
from .features import KroneckerSketch
from .vessal import VolumeSamplerBase

__all__ = ["PacedVeSSAL", "calibrate", "leave_one_out_forms", "pace_multiplier", "paced_probability"]

# rows decided against one U = G·Σ̂⁻¹; bounds the block's (m × m) table of g_j·w_k
_BLOCK = 256
# the leave-one-out form f/(1 − f) of a chosen item: 1 − f is > 0 in exact arithmetic; rounding is kept off 0
_TINY = 1e-12


def leave_one_out_forms(forms: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Quadratic forms without each item's own update: f/(1 − f) where ``chosen``, else f.

    ``forms`` (m,): g_jᵀΣ̂⁻¹g_j under a Σ̂ that includes g_j g_jᵀ for the ``chosen`` (m,) items
    (Sherman–Morrison: g_jᵀ(Σ̂ − g_j g_jᵀ)⁻¹g_j = f_j/(1 − f_j)).
    """
    forms = np.maximum(np.asarray(forms, dtype=np.float64), 0.0)  # ≥ 0 in exact arithmetic
    return np.where(chosen, forms / np.maximum(1.0 - forms, _TINY), forms)


def calibrate(forms: np.ndarray, rate: float) -> float:
    """The scale c ≥ 0 with mean_j min(c·forms_j, 1) = rate (math.inf if rate ≥ the share of forms > 0,
    or if c exceeds the largest float, as it does when the uncapped forms are subnormal beside the rest).

    ``forms`` (m,) ≥ 0, ``rate`` in [0, 1]; forms are scaled by their maximum first, so one below
    max·2⁻¹⁰²² counts with the few bits of a subnormal (quadratic forms of real embeddings never spread
    that far). Without capping c = rate·m / Σ forms; otherwise the j
    largest forms are capped and c = (rate·m − j) / (sum of the others), j the least for which the
    (j+1)-th largest is not capped (water filling).
    """
    v = np.asarray(forms, dtype=np.float64)
    top = float(v.max()) if v.size else 0.0
    if top <= 0.0:
        return math.inf
    num, den = _unit_scale(v / top, rate)
    with np.errstate(over="ignore", divide="ignore"):  # a scale beyond the largest float counts as inf
        return float(np.float64(num) / np.float64(den) / top)


def _unit_scale(v: np.ndarray, rate: float) -> tuple[float, float]:
    """``calibrate`` for forms with maximum 1, as the fraction (numerator, denominator) of the scale —
    (1, 0) for "all positive forms capped" — so that callers can form c·form as num·(form/den) without
    overflow. The cap test (rate·m − j)·pos_j ≤ tails_j never divides."""
    target = rate * v.size
    total = float(v.sum())
    if target <= total:  # nothing capped: c·max = target/total ≤ 1
        return target, total
    pos = np.sort(v[v > 0])[::-1]
    if target >= pos.size:
        return 1.0, 0.0
    tails = np.cumsum(pos[::-1])[::-1]  # tails[j] = sum of pos[j:]
    rest = target - np.arange(pos.size)
    j = int(np.argmax(rest * pos <= tails))  # exists: at j = pos.size − 1, rest·pos = (target − j)·pos ≤ pos
    return float(rest[j]), float(tails[j])


def paced_probability(form: float, forms: np.ndarray, rate: float) -> float:
    """p = min(c·form, 1), c = ``calibrate(forms, rate)``; ``forms`` (m,) include this item's ``form``.

    All forms 0: ``rate``. Rate above the share of positive forms: 1 for a positive form, and the
    remaining rate spread over the zero forms.
    """
    top = float(forms.max())
    if top <= 0.0:
        return rate
    num, den = _unit_scale(forms / top, rate)  # on forms scaled to maximum 1
    if den == 0.0:
        m = forms.size
        positive = int(np.count_nonzero(forms > 0))
        return 1.0 if form > 0 else (rate * m - positive) / (m - positive)
    with np.errstate(over="ignore"):
        c = float(np.float64(num) / np.float64(den))
        if math.isfinite(c):
            return min(c * (form / top), 1.0)
        # c beyond the largest float (the uncapped forms are subnormal): form/den first, then the cap
        return float(min(np.float64(num) * (np.float64(form / top) / np.float64(den)), 1.0))


def pace_multiplier(excess: float, horizon: float, max_boost: float) -> float:
    """clip(exp(−excess / horizon), 1/max_boost, max_boost): below 1 after too many queries, above after too few."""
    return min(max(math.exp(-excess / horizon), 1.0 / max_boost), max_boost)


class PacedVeSSAL(VolumeSamplerBase):
    """VeSSAL whose realised query rate holds its target (see the module doc). Committal.

    pickwise's variant of Saran et al. (ICML 2023): p_t = min(c_t·g_tᵀΣ̂⁻¹g_t, 1), proportional to the
    published probability, with c_t calibrated so that the last ``window`` items' leave-one-out forms
    would be queried at the rate ρ_t on average, and ρ_t the selector's rate times a bounded pacing
    multiplier from the budget error. ``VeSSAL`` stays the published sampler.

    Parameters
    ----------
    q, budget, length
        The rate, as for ``VeSSAL`` (fixed q; or the adaptive rate from budget and length).
    lam : float
        Ridge λ: Σ̂⁻¹ starts at I/λ (0.01, as ``VeSSAL``).
    embedding : {"grad", "pen"}
    bias : bool
    sketch : KroneckerSketch, optional
        As for ``VeSSAL``.
    window : int
        Recent items (this one included) whose leave-one-out forms calibrate the normaliser.
    pace : int or None
        Items over which a budget error decays (the pacing horizon h = max(1, q̄·pace) queries);
        None: no pacing.
    max_boost : float ≥ 1
        Bound of the pacing multiplier: the rate aimed at stays within [q_t/max_boost, q_t·max_boost].
    max_dim : int
        Refuse dimensions above this (the state holds a D×D float64 matrix).
    """

    _params = ("q", "budget", "length", "lam", "embedding", "bias", "sketch", "window", "pace", "max_boost",
               "max_dim")

    def __init__(
        self,
        *,
        q: float | None = None,
        budget: int | None = None,
        length: int | None = None,
        lam: float = 0.01,
        embedding: str = "grad",
        bias: bool = False,
        sketch: KroneckerSketch | None = None,
        window: int = 256,
        pace: int | None = 100,
        max_boost: float = 2.0,
        max_dim: int = 8192,
    ):
        super().__init__(q=q, budget=budget, length=length)
        self.window = check_positive_int("window", window)
        self.pace = None if pace is None else check_positive_int("pace", pace)
        self.max_boost = finite_float("max_boost", max_boost)
        if self.max_boost < 1.0:
            raise ValueError(f"max_boost must be >= 1; got {self.max_boost!r}")
        self._init_embedding(lam, embedding, bias, sketch, max_dim)

    @property
    def name(self) -> str:
        return "vessal_paced" if self.embedding == "grad" else "vessal_paced_pen"

    # -- state ---------------------------------------------------------------------------------
    def _allocate_state(self, dim: int) -> None:
        self._rows = np.zeros((self.window, dim))  # ring: item t (1-based) at row (t − 1) % window
        self._forms = np.zeros(self.window)  # current g_jᵀΣ̂⁻¹g_j of each row
        self._chosen = np.zeros(self.window, dtype=bool)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Counters, Σ̂⁻¹ and the window's rows, forms and chosen flags (in ring order)."""
        state = self._counter_state()
        state["window"] = np.asarray(self.window, dtype=np.int64)
        filled = min(self.t, self.window)
        if self._dim is None:
            state["dim"] = np.asarray(-1, dtype=np.int64)
            state["sigma_inv"], state["window_rows"] = np.zeros((0, 0)), np.zeros((0, 0))
            state["window_forms"], state["window_chosen"] = np.zeros(0), np.zeros(0, dtype=bool)
        else:
            state["dim"] = np.asarray(self._dim, dtype=np.int64)
            state["sigma_inv"] = self._sigma_inv.copy()
            state["window_rows"] = self._rows[:filled].copy()
            state["window_forms"] = self._forms[:filled].copy()
            state["window_chosen"] = self._chosen[:filled].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("t", "n_queried", "window", "dim", "sigma_inv", "window_rows", "window_forms", "window_chosen")
        self._require(state, keys, "PacedVeSSAL")
        window = int(np.asarray(state["window"]))
        if window != self.window:
            raise ValueError(f"state was saved with window={window}; this selector has {self.window}")
        dim = int(np.asarray(state["dim"]))
        self._load_counters(state)
        if dim < 0:
            if self.t:
                raise ValueError(f"state has t={self.t} items seen but no dimension")
            self._dim = None
            return
        si = np.array(state["sigma_inv"], dtype=np.float64)
        rows = np.asarray(state["window_rows"], dtype=np.float64)
        forms = np.asarray(state["window_forms"], dtype=np.float64)
        chosen = np.asarray(state["window_chosen"], dtype=bool)
        filled = min(self.t, window)
        if si.shape != (dim, dim) or rows.shape != (filled, dim) or forms.shape != (filled,) or chosen.shape != (filled,):
            raise ValueError(
                f"state shapes disagree with dim={dim} and {filled} window rows: sigma_inv {si.shape}, window_rows "
                f"{rows.shape}, window_forms {forms.shape}, window_chosen {chosen.shape}"
            )
        self._allocate(dim)
        self._sigma_inv = si
        self._rows[:filled], self._forms[:filled], self._chosen[:filled] = rows, forms, chosen

    # -- deciding ------------------------------------------------------------------------------
    def _base_rate(self) -> float:
        """q̄, the plan's rate: q, or budget/length."""
        if self.q is not None:
            return self.q
        return self.budget / self.length  # type: ignore[operator]

    def _target(self, t: int, nq: int) -> float:
        """ρ_t = min(1, q_t·m_t) for the t-th item (1-based) after ``nq`` queries."""
        rate = self._rate(t, nq)
        if self.pace is None or rate == 0.0:
            return rate
        plan = self._base_rate()
        m = pace_multiplier(nq - plan * (t - 1), max(1.0, plan * self.pace), self.max_boost)
        return min(1.0, rate * m)

    def _observe_block(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=bool)
        for start in range(0, rows.shape[0], _BLOCK):
            stop = min(rows.shape[0], start + _BLOCK)
            out[start:stop] = self._block(rows[start:stop], u[start:stop])
        return out

    def _block(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        m, dim = g.shape
        si, ring, forms, chosen, size = self._sigma_inv, self._rows, self._forms, self._chosen, self.window
        U = g @ si  # row i is (Σ̂⁻¹ g_i)ᵀ for the Σ̂⁻¹ at the block's start (Σ̂⁻¹ is symmetric)
        s = np.einsum("ij,ij->i", g, U)  # kept equal to g_iᵀ Σ̂⁻¹ g_i for the current Σ̂⁻¹
        out = np.zeros(m, dtype=bool)
        w_k = r = None  # the block's queries: w_k = Σ̂⁻¹g_k at query time; r[k, j] = g_j·w_k for later j
        c_k = np.empty(m)
        k = 0
        t, nq = self.t, self.n_queried
        for i in range(m):
            t += 1
            pos = (t - 1) % size
            ring[pos], forms[pos], chosen[pos] = g[i], s[i], False
            filled = min(t, size)
            rho = self._target(t, nq)
            v = leave_one_out_forms(forms[:filled], chosen[:filled])
            p = paced_probability(max(float(s[i]), 0.0), v, rho)
            if not u[i] < p:
                continue
            out[i] = True
            nq += 1
            if w_k is None:
                w_k, r = np.empty((m, dim)), np.zeros((m, m))
            # Σ̂⁻¹ now = Σ̂⁻¹_start − Σ_k w_k w_kᵀ / c_k, so w = u_i − Σ_k w_k (g_i·w_k)/c_k
            w = U[i] - (r[:k, i] / c_k[:k]) @ w_k[:k]
            c = 1.0 + s[i]
            forms[:filled] -= (ring[:filled] @ w) ** 2 / c
            chosen[pos] = True
            if i + 1 < m:
                r[k, i + 1 :] = g[i + 1 :] @ w
                s[i + 1 :] -= r[k, i + 1 :] ** 2 / c
            w_k[k], c_k[k] = w, c
            k += 1
        if k:
            vk = w_k[:k] / np.sqrt(c_k[:k])[:, None]  # type: ignore[index]
            blas.dgemm(-1.0, vk, vk, beta=1.0, c=si.T, trans_a=1, overwrite_c=1)  # Σ̂⁻¹ −= Vᵀ V in place
        self.t, self.n_queried = t, nq
        return out
