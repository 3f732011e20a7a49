"""VeSSAL: volume sampling for streaming active learning (Saran et al., ICML 2023).

The algorithm as published (see ../shared/ALGORITHMS.md). For the t-th arriving item with
embedding g (D = K·d, or d for "pen"):

1. A_t = ((t−1)/t)·A_{t−1} + (1/t)·g gᵀ       (second moment over ALL items seen, A_0 = 0)
2. p_t = q_t · gᵀΣ̂⁻¹g / tr(Σ̂⁻¹A_t)           (Σ̂⁻¹ = inverse covariance of the CHOSEN items)
3. query with probability min(p_t, 1); the decision is final
4. on a query, Σ̂⁻¹ ← Σ̂⁻¹ − (Σ̂⁻¹g)(Σ̂⁻¹g)ᵀ / (1 + gᵀΣ̂⁻¹g)

with Σ̂⁻¹ starting at λ⁻¹·I (λ = 0.01, the authors' ``cov_inv_scaling = 100``) and q_t the fixed or
adaptive rate of ``_base``. The decision is ``u_t < p_t`` with one uniform u_t per item.

Guard for g = 0 at t = 1: while every item seen so far has g = 0 the trace is 0 and p_t = 0/0; pickwise
then queries with probability q_t (the item is indistinguishable from any other, so the target
rate is the only information left). Once a non-zero g has been seen the trace is > 0.

Cost. The authors' code forms A_t·Σ̂⁻¹ as a D×D×D product per item (O(D³)). Here the trace
T = tr(A_tΣ̂⁻¹) is kept incrementally: every item T ← ((t−1)/t)·T + (1/t)·gᵀΣ̂⁻¹g; on a query with
w = Σ̂⁻¹g and c = 1 + gᵀw, T ← T − wᵀA_t w / c. A_t is never formed item by item either: the sum
S of g gᵀ is updated ``refresh_every`` items at a time from a buffer of the last items (one
matrix–matrix product), so wᵀA_t w = (wᵀSw + ‖B w‖²)/t with B the buffered rows. At every
refresh, T is recomputed exactly as ⟨S, Σ̂⁻¹⟩/t (O(D²)) against drift. All state is float64.

``observe_many`` works on blocks that end at refresh boundaries. U = G·Σ̂⁻¹ for the whole block is
one GEMM; then the items are decided in order. A query at item i changes Σ̂⁻¹ by the rank-1 term
w wᵀ/c; the later rows of the block see it through the scalars r_j = g_j·w only (s_j −= r_j²/c, one
matrix–vector product over the block), and a later query rebuilds its own w from its row of U and
the block's earlier w's (O(k·D)). Σ̂⁻¹ itself is updated once per block with all the block's queries
(a rank-k GEMM). The products S·w that queries need are one S·w each at low rates, and one GEMM S·U
for the rest of the block when the rate is high. No step grows with the number of labels already
chosen. Decisions equal the item-by-item path under the same uniforms (up to floating-point rounding
of the same quantities, which the tests check never flips one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import blas

from .._validation import check_choice, check_positive_int
from ..protocols import Embedder, GradEmbedder
from ._base import StreamSelectorBase, finite_float
from .features import EMBEDDINGS, KroneckerSketch, grad_features, pen_features

__all__ = ["VeSSAL"]

# When a block's first query comes at a rate of at least _SU_RATE, S·u is formed for all the block's
# remaining rows by one GEMM; below it each query does one S·w (a memory-bound pass over S). Measured
# cross-over near 0.2 at D = 1280 and 5120 (benchmarks/stream.py). A pure speed switch: both paths
# give the same numbers up to rounding.
_SU_RATE = 0.2


class VolumeSamplerBase(StreamSelectorBase):
    """What :class:`VeSSAL` and :class:`~pickwise.stream.PacedVeSSAL` share: the embedding z is computed
    from (``embedding``, ``bias``, ``sketch``), Σ̂⁻¹ starts at I/``lam``, and the state is allocated on the
    first item, refusing dimensions above ``max_dim``. Subclasses implement ``_allocate_state(dim)``."""

    #: how the state grows with D, for the max_dim error
    _state_size = "a {d}×{d} float64 matrix"

    def _init_embedding(self, lam: float, embedding: str, bias: bool, sketch: KroneckerSketch | None,
                        max_dim: int) -> None:
        self.lam = finite_float("lam", lam)
        self.embedding = check_choice("embedding", embedding, EMBEDDINGS)
        self.bias = bool(bias)
        if sketch is not None and not isinstance(sketch, KroneckerSketch):
            raise ValueError(f"sketch must be a KroneckerSketch or None; got {type(sketch).__name__}")
        self.sketch = sketch
        self.max_dim = check_positive_int("max_dim", max_dim)
        self._dim: int | None = None

    @property
    def needs(self) -> tuple[type, ...]:
        return (GradEmbedder,) if self.embedding == "grad" else (Embedder,)

    def featurize(self, model: Any, x: Any) -> np.ndarray:
        """z for the items ``x`` under ``model`` (see ``embedding``)."""
        if self.embedding == "pen":
            return pen_features(model.embed(x), sketch=self.sketch)
        probs, h = model.grad_factors(x)
        return grad_features(probs, h, bias=self.bias, sketch=self.sketch)

    def _allocate(self, dim: int) -> None:
        if dim > self.max_dim:
            raise ValueError(
                f"embedding dimension {dim} exceeds max_dim={self.max_dim} (the state is "
                f"{self._state_size.format(d=dim)}); pass sketch=KroneckerSketch(n_h=...) or raise max_dim"
            )
        if dim < 1:
            raise ValueError(f"z must have at least one column; got dimension {dim}")
        self._dim = dim
        self._sigma_inv = np.eye(dim) / self.lam
        self._allocate_state(dim)

    def _allocate_state(self, dim: int) -> None:
        raise NotImplementedError

    def _validate(self, z: Any) -> np.ndarray:
        rows = self._as_rows(z, self._dim)
        if self._dim is None and rows.shape[0]:
            self._allocate(rows.shape[1])
        return rows


class VeSSAL(VolumeSamplerBase):
    """Volume sampling for streaming active learning (Saran et al., ICML 2023). Committal.

    Parameters
    ----------
    q : float in (0, 1], optional
        Fixed target query rate (the stream length unknown). With ``budget`` it is also capped.
    budget, length : int, optional
        Without ``q``: the adaptive rate q_t = (budget − queried)/(length − t + 1).
    lam : float
        Ridge λ: Σ̂⁻¹ starts at I/λ. Default 0.01 as in the authors' code.
    embedding : {"grad", "pen"}
        What ``featurize`` computes from a model: the class-indexed gradient embedding
        (p − e_ŷ) ⊗ h (needs ``grad_factors``) or the penultimate features h (needs ``embed``).
        ``observe``/``observe_many`` take z directly whichever is chosen.
    bias : bool
        Append the bias gradient to the "grad" embedding.
    sketch : KroneckerSketch, optional
        Bound the dimension for large K·d (see ``features``).
    refresh_every : int
        Items between folding the buffered items into S and recomputing the trace exactly.
    max_dim : int
        Refuse dimensions above this (the state is two D×D float64 matrices); use a sketch.
    """

    _params = ("q", "budget", "length", "lam", "embedding", "bias", "sketch", "refresh_every", "max_dim")
    _state_size = "two {d}×{d} float64 matrices"

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
        refresh_every: int = 256,
        max_dim: int = 8192,
    ):
        super().__init__(q=q, budget=budget, length=length)
        self.refresh_every = check_positive_int("refresh_every", refresh_every)
        self._init_embedding(lam, embedding, bias, sketch, max_dim)
        self._trace = 0.0
        self._n_buf = 0

    @property
    def name(self) -> str:
        return "vessal" if self.embedding == "grad" else "vessal_pen"

    # -- state ---------------------------------------------------------------------------------
    @property
    def trace(self) -> float:
        """The running T = tr(A_t Σ̂⁻¹) (0 before the first item)."""
        return self._trace

    def _allocate_state(self, dim: int) -> None:
        self._S = np.zeros((dim, dim))
        self._buf = np.zeros((self.refresh_every, dim))
        self._n_buf = 0
        self._trace = 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue the stream exactly: counters, trace, Σ̂⁻¹, S and the buffer."""
        state = self._counter_state()
        state["trace"] = np.asarray(self._trace, dtype=np.float64)
        state["refresh_every"] = np.asarray(self.refresh_every, dtype=np.int64)
        if self._dim is None:
            state["dim"] = np.asarray(-1, dtype=np.int64)
            empty = np.zeros((0, 0))
            state["sigma_inv"], state["second_moment_sum"], state["buffer"] = empty, empty.copy(), empty.copy()
        else:
            state["dim"] = np.asarray(self._dim, dtype=np.int64)
            state["sigma_inv"] = self._sigma_inv.copy()
            state["second_moment_sum"] = self._S.copy()
            state["buffer"] = self._buf[: self._n_buf].copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("t", "n_queried", "trace", "refresh_every", "dim", "sigma_inv", "second_moment_sum", "buffer")
        self._require(state, keys, "VeSSAL")
        every = int(np.asarray(state["refresh_every"]))
        if every != self.refresh_every:
            raise ValueError(f"state was saved with refresh_every={every}; this selector has {self.refresh_every}")
        dim = int(np.asarray(state["dim"]))
        self._load_counters(state)
        if dim < 0:
            self._dim, self._trace, self._n_buf = None, 0.0, 0
            return
        si = np.array(state["sigma_inv"], dtype=np.float64)
        s = np.array(state["second_moment_sum"], dtype=np.float64)
        buf = np.asarray(state["buffer"], dtype=np.float64)
        if si.shape != (dim, dim) or s.shape != (dim, dim) or buf.ndim != 2 or buf.shape[1] != dim:
            raise ValueError(
                f"state shapes disagree with dim={dim}: sigma_inv {si.shape}, second_moment_sum {s.shape}, "
                f"buffer {buf.shape}"
            )
        if buf.shape[0] >= every:
            raise ValueError(f"state buffer holds {buf.shape[0]} rows; at most {every - 1} expected")
        self._allocate(dim)
        self._sigma_inv, self._S = si, s
        self._buf[: buf.shape[0]] = buf
        self._n_buf = buf.shape[0]
        self._trace = float(np.asarray(state["trace"]))

    # -- item by item --------------------------------------------------------------------------
    def observe(self, z: Any, *, rng: np.random.Generator) -> bool:
        g = self._validate(self._as_item(z)[None, :])[0]
        self._check_room(1)
        u = rng.random()
        si, buf, n_buf = self._sigma_inv, self._buf, self._n_buf
        buf[n_buf] = g
        w = si @ g
        s = float(g @ w)
        t = self.t + 1
        trace = self._trace * ((t - 1) / t) + s / t
        rate = self._rate(t, self.n_queried)
        p = rate * s / trace if trace > 0 else rate
        chosen = bool(u < p)
        if chosen:
            c = 1.0 + s
            bw = buf[: n_buf + 1] @ w
            trace -= (float(w @ (self._S @ w)) + float(bw @ bw)) / t / c
            v = w / np.sqrt(c)
            blas.dger(-1.0, v, v, a=si.T, overwrite_a=1)  # in place: Σ̂⁻¹ −= v vᵀ
            self.n_queried += 1
        self.t, self._trace = t, trace
        self._n_buf = n_buf + 1
        self._maybe_refresh()
        return chosen

    # -- vectorised ----------------------------------------------------------------------------
    def _observe_block(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=bool)
        start = 0
        while start < rows.shape[0]:
            stop = min(rows.shape[0], start + self.refresh_every - self._n_buf)
            out[start:stop] = self._block(rows[start:stop], u[start:stop])
            self._maybe_refresh()
            start = stop
        return out

    def _block(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        m, dim = g.shape
        base = self._n_buf
        buf, si, S = self._buf, self._sigma_inv, self._S
        buf[base : base + m] = g
        U = g @ si  # row i is (Σ̂⁻¹ g_i)ᵀ for the Σ̂⁻¹ at the block's start (Σ̂⁻¹ is symmetric)
        s = np.einsum("ij,ij->i", g, U)  # kept equal to g_iᵀ Σ̂⁻¹ g_i for the current Σ̂⁻¹
        out = np.zeros(m, dtype=bool)
        # the block's queries so far: w_k = Σ̂⁻¹g_k at query time, S·w_k, c_k, r[k, j] = g_j·w_k for later j
        w_k = sw_k = r = None
        c_k = np.empty(m)
        k = 0
        su = None  # S·u_i for rows from su_from on, when many queries are expected
        su_from = m
        t, trace, nq = self.t, self._trace, self.n_queried
        for i in range(m):
            t += 1
            trace = trace * ((t - 1) / t) + s[i] / t
            rate = self._rate(t, nq)
            p = rate * s[i] / trace if trace > 0 else rate
            if not u[i] < p:
                continue
            out[i] = True
            nq += 1
            if w_k is None:
                w_k, sw_k, r = np.empty((m, dim)), np.empty((m, dim)), np.zeros((m, m))
                if rate >= _SU_RATE:
                    su, su_from = U[i:] @ S, i
            # Σ̂⁻¹ now = Σ̂⁻¹_start − Σ_k w_k w_kᵀ / c_k, so w = u_i − Σ_k w_k (g_i·w_k)/c_k
            coeff = r[:k, i] / c_k[:k]
            w = U[i] - coeff @ w_k[:k]
            sw = su[i - su_from] - coeff @ sw_k[:k] if su is not None else S @ w
            c = 1.0 + s[i]
            bw = buf[: base + i + 1] @ w
            trace -= (float(w @ sw) + float(bw @ bw)) / t / c
            if i + 1 < m:
                r[k, i + 1 :] = g[i + 1 :] @ w
                s[i + 1 :] -= r[k, i + 1 :] ** 2 / c
            w_k[k], sw_k[k], c_k[k] = w, sw, c
            k += 1
        if k:
            v = w_k[:k] / np.sqrt(c_k[:k])[:, None]
            blas.dgemm(-1.0, v, v, beta=1.0, c=si.T, trans_a=1, overwrite_c=1)  # Σ̂⁻¹ −= Vᵀ V in place
        self.t, self._trace, self.n_queried = t, trace, nq
        self._n_buf = base + m
        return out

    def _maybe_refresh(self) -> None:
        if self._n_buf < self.refresh_every:
            return
        _add_gram(self._S, self._buf)
        self._n_buf = 0
        # exact trace against drift: tr(S Σ̂⁻¹)/t, both symmetric
        self._trace = float(np.vdot(self._S, self._sigma_inv)) / self.t


def _add_gram(S: np.ndarray, b: np.ndarray) -> None:
    """S += bᵀb in place for a symmetric C-ordered S: one triangle by syrk, then mirrored."""
    # S.T is S's memory in Fortran order; syrk with lower=1 fills its lower triangle = S's upper one
    blas.dsyrk(1.0, b, beta=1.0, c=S.T, trans=1, lower=1, overwrite_c=1)
    n = S.shape[0]
    for a in range(0, n, 512):
        e = min(n, a + 512)
        S[e:, a:e] = S[a:e, e:].T  # rows below the diagonal block from the columns right of it
        blk = S[a:e, a:e]
        blk[:] = np.triu(blk) + np.triu(blk, 1).T
