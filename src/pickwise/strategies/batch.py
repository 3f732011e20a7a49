"""Batch-aware pool strategies: BADGE, core-set, DBAL, BatchBALD, BAIT, EGL, information density
and stochastic batch acquisition. Thin frozen dataclasses over :mod:`pickwise.select` and
:mod:`pickwise.embeddings`; model outputs are gathered chunk by chunk.

What each keeps across the pool (n items, K classes, d penultimate width, T MC draws); everything
else is one chunk at a time:

* EGL, StochasticBatch over a score: O(n) scores.
* BADGE: the factored gradient embedding (a, h), O(n·(K + d)), plus O(n) k-means++ state.
* core-set, information density: the embeddings, O(n·d), plus O(n) k-center state.
* DBAL: O(n) scores, then embeddings of the ⌈β·k⌉ pre-filtered items only.
* BAIT: (p, h), O(n·(K + d)), plus its D×D matrices (D = K·d).
* BatchBALD: the exception — the greedy joint entropy needs every candidate's draws, O(T·n·K).
  With ``max_candidates`` the pool pass reduces draws to BALD per chunk and keeps the draws of the
  candidates only, O(T·max_candidates·K).
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np

from .._validation import check_choice, check_selection, check_positive_int
from ..embeddings import GradEmbedding, expected_gradient_length, mean_cosine_similarity, mean_knn_cosine_similarity
from ..pool import Pool
from ..protocols import Classifier, Embedder, GradEmbedder, MCSampler, ScoreBased
from ..scores import ScoreFn, bald
from ..select.bait import bait_select
from ..select.batchbald import MAX_CONFIGS, N_SAMPLES, batchbald_select
from ..select.kcenter import kcenter_greedy
from ..select.kmeanspp import kmeanspp_seeding
from ..select.stochastic import STOCHASTIC_MODES, stochastic_batch
from ..select.topk import top_k
from ..select.wkmeans import weighted_kmeans_select
from ._base import (
    DEFAULT_CHUNK,
    check_dtype,
    gather_embeddings,
    gather_grad_embedding,
    gather_grad_factors,
    map_chunks,
    mc_draws,
    mc_output,
    proba_scores,
    resolve_score,
    score_name,
    select_top_scores,
)

__all__ = ["BADGE", "CoreSet", "DBAL", "BatchBALD", "BAIT", "EGL", "InformationDensity", "StochasticBatch"]


def grad_factors(model: Any, x: Any, indices: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, K), h (n, d)) of ``model.grad_factors`` over ``indices``, chunk by chunk, float64."""
    return gather_grad_factors(model, x, indices, chunk_size)


def embeddings(model: Any, x: Any, indices: np.ndarray, chunk_size: int) -> np.ndarray:
    """``model.embed`` over ``indices`` chunk by chunk; (n, d) float64 (0 rows give (0, 0))."""
    return gather_embeddings(model, x, indices, chunk_size)


def _check_neighbors(value: Any) -> None:
    if value is not None and not callable(getattr(value, "search", None)):
        raise ValueError(f"neighbors must be None or a search from pickwise.neighbors (e.g. FaissFlat()); got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")


def _check_number(name: str, value: Any, *, low: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}; got {value!r}")


@dataclass(frozen=True, kw_only=True)
class BADGE:
    """k-means++ seeding on last-layer gradient embeddings (Ash, Zhang, Krishnamurthy, Langford &
    Agarwal, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds", ICLR 2020).

    The embedding stays factored (a = p − e_ŷ, h); see :mod:`pickwise.embeddings`. ``bias``
    appends the bias-gradient block. First centre = largest gradient norm, then D² sampling.
    ``dtype="float32"`` stores (a, h) in float32: half the memory (n·(K + d)·4 bytes) and faster
    picks; D² and the sampling stay float64 (see :func:`pickwise.select.kmeanspp_seeding`).
    """

    bias: bool = False
    chunk_size: int = DEFAULT_CHUNK
    dtype: str = "float64"
    needs: ClassVar[tuple[type, ...]] = (GradEmbedder,)

    def __post_init__(self) -> None:
        _check_bool("bias", self.bias)
        check_positive_int("chunk_size", self.chunk_size)
        check_dtype(self.dtype)

    def embedding(self, model: Any, x: Any, indices: np.ndarray) -> GradEmbedding:
        """The factored gradient embedding of ``indices``, gathered chunk by chunk (``dtype``)."""
        return gather_grad_embedding(model, x, indices, self.chunk_size, bias=self.bias, dtype=self.dtype)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        return unl[kmeanspp_seeding(self.embedding(model, x, unl), k, rng=rng)]

    @property
    def name(self) -> str:
        return "badge"


@dataclass(frozen=True, kw_only=True)
class CoreSet:
    """Greedy k-center on penultimate embeddings from the labelled set (Sener & Savarese, "Active
    Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR 2018).

    O(n) distance state, distances in blocks; with no labelled items the first pick is random.
    ``neighbors`` (a :mod:`pickwise.neighbors` search, e.g. ``FaissFlat()`` or ``FaissIVF()``) takes
    the initial distances of the pool to the labelled set, the part that grows with |L|; the
    greedy loop (one O(n·d) pass per pick at most) is the same for every search.

    ``dtype``: how the embeddings are stored. "auto" (the default): as the model gives them,
    float32 when ``model.embed`` returns float32 (a torch model, a float32 ``Precomputed``), else
    float64 — never a float64 copy of float32 embeddings. "float32" / "float64" force one.
    ``exact=True`` (the default) forms every distance in float64 even from float32 rows (widened a
    small block at a time), so the picks equal those of the same values stored as float64 exactly,
    at about the same speed; ``exact=False`` forms them in float32, about twice as fast per pick,
    and may pick another item on near-ties (:func:`pickwise.select.kcenter_greedy`).
    """

    chunk_size: int = DEFAULT_CHUNK
    dtype: str = "auto"
    neighbors: Any = None
    exact: bool = True
    needs: ClassVar[tuple[type, ...]] = (Embedder,)

    def __post_init__(self) -> None:
        check_positive_int("chunk_size", self.chunk_size)
        if self.dtype != "auto":
            check_dtype(self.dtype)
        if not isinstance(self.exact, (bool, np.bool_)):
            raise ValueError(f"exact must be True or False; got {self.exact!r}")
        _check_neighbors(self.neighbors)

    def storage(self, model: Any, x: Any, indices: np.ndarray) -> str:
        """The storage dtype name: ``dtype``, or for "auto" the type of ``model.embed`` on the first
        of ``indices`` ("float32" if it is float32, else "float64")."""
        from ..utils import take

        if self.dtype != "auto":
            return self.dtype
        first = np.asarray(model.embed(take(x, np.asarray(indices[:1], dtype=np.int64))))
        return "float32" if first.dtype == np.float32 else "float64"

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        dtype = self.storage(model, x, unl)
        emb = gather_embeddings(model, x, unl, self.chunk_size, dtype)
        lab = gather_embeddings(model, x, pool.labeled, self.chunk_size, dtype).reshape(-1, emb.shape[1])
        return unl[kcenter_greedy(emb, k, centres=lab, rng=rng, chunk_size=min(self.chunk_size, 1024),
                                  neighbors=self.neighbors, exact=self.exact)]

    @property
    def name(self) -> str:
        return "coreset"


@dataclass(frozen=True, kw_only=True)
class DBAL:
    """Diverse mini-batch active learning (Zhdanov, "Diverse mini-batch Active Learning", 2019).

    Keep the ⌈beta·k⌉ most informative unlabelled items by ``score`` (margin by default), cluster
    their penultimate embeddings into k clusters with k-means weighted by the score, and query the
    nearest distinct item to each centroid. Only the pre-filtered items are embedded; the k-means is
    scikit-learn's (float32 with ``dtype="float32"``, about twice as fast).
    """

    beta: float = 10.0
    score: str | ScoreFn = "margin"
    n_init: int = 1
    max_iter: int = 300
    chunk_size: int = DEFAULT_CHUNK
    dtype: str = "float64"
    needs: ClassVar[tuple[type, ...]] = (Classifier, Embedder)

    def __post_init__(self) -> None:
        _check_number("beta", self.beta, low=1.0)
        resolve_score(self.score)
        check_positive_int("n_init", self.n_init)
        check_positive_int("max_iter", self.max_iter)
        check_positive_int("chunk_size", self.chunk_size)
        check_dtype(self.dtype)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        s = proba_scores(model, x, unl, resolve_score(self.score), self.chunk_size)
        keep = top_k(s, min(unl.shape[0], math.ceil(self.beta * k)), rng=rng)
        emb = gather_embeddings(model, x, unl[keep], self.chunk_size, self.dtype)
        pos = weighted_kmeans_select(emb, s[keep], k, rng=rng, n_init=self.n_init, max_iter=self.max_iter)
        return unl[keep[pos]]

    @property
    def name(self) -> str:
        return "dbal"


@dataclass(frozen=True, kw_only=True)
class BatchBALD:
    """Greedy BatchBALD on consistent MC-dropout draws (Kirsch, van Amersfoort & Gal, "BatchBALD:
    Efficient and Diverse Batch Acquisition for Deep Bayesian Active Learning", NeurIPS 2019).

    One dropout seed (drawn from ``rng``) for the whole pool, so every chunk sees the same masks.
    Joint entropy exact while K^b ≤ ``max_configs``, else estimated from ``n_samples`` sampled
    configurations (:mod:`pickwise.select.batchbald`). Holds the candidates' (n_draws, n, K) draws.
    The greedy is lazy: an item is scored only while its upper bound (its BALD, its gain given the
    latest pick alone, or its last evaluated gain — submodularity) can still beat the best gain of
    the step, so no candidate is dropped in advance and, while exact, the picks are exact greedy
    BatchBALD's. Each scored item costs O(C·K·n_draws) with C ≤ max(max_configs, n_samples).
    The defaults (1,000 and 1,000: with K = 10 the first four picks exact) are the CLI's too;
    on 9,900 candidates, T = 20, one thread: 4–8 s for k = 100, 26–31 s for k = 1000
    (``benchmarks/select.py --batchbald-only``).
    ``max_candidates`` (None = the whole pool) keeps only that many items with the highest BALD
    (from the same draws) as candidates, a shortcut for pools whose draws do not fit in memory
    (it may drop items the exact greedy would pick): then the pool pass reduces each chunk's draws
    to BALD at once and only the candidates' draws are kept (taken again with the same seed, so
    with the same masks), O(n) + O(n_draws·max_candidates·K) memory. Without it, the draws of the
    whole pool are held: the one strategy whose memory is O(n·T·K).
    """

    n_draws: int = 20
    max_configs: int = MAX_CONFIGS
    n_samples: int = N_SAMPLES
    max_candidates: int | None = None
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (MCSampler,)

    def __post_init__(self) -> None:
        check_positive_int("n_draws", self.n_draws)
        check_positive_int("max_configs", self.max_configs)
        check_positive_int("n_samples", self.n_samples)
        if self.max_candidates is not None:
            check_positive_int("max_candidates", self.max_candidates)
        check_positive_int("chunk_size", self.chunk_size)

    def draws(self, model: Any, x: Any, indices: np.ndarray, *, seed: int) -> np.ndarray:
        """MC probabilities of ``indices``, float64 of shape (n_draws, n, K), written chunk by chunk."""
        return mc_draws(model, x, indices, self.n_draws, seed=seed, chunk_size=self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        seed = int(rng.integers(2**31 - 1))
        if self.max_candidates is not None and unl.shape[0] > max(self.max_candidates, k):
            # BALD of every item from the same draws as below, reduced chunk by chunk
            scores = map_chunks(lambda xc: bald(mc_output(model, xc, self.n_draws, seed)),
                                x, unl, self.chunk_size, desc="BALD pre-filter")
            unl = unl[np.sort(top_k(scores, max(self.max_candidates, k), rng=rng))]
        d = self.draws(model, x, unl, seed=seed)
        return unl[batchbald_select(d, k, rng=rng, max_configs=self.max_configs, n_samples=self.n_samples)]

    @property
    def name(self) -> str:
        return "batchbald"


@dataclass(frozen=True, kw_only=True)
class BAIT:
    """Forward–backward greedy on Fisher information (Ash, Goel, Krishnamurthy & Kakade, "Gone
    Fishing: Neural Active Learning with Fisher Embeddings", NeurIPS 2021).

    ``lam`` is λ in M = λI + …; ``oversample`` the forward factor (2 in the paper). Memory and
    time grow with D = K·d squared (:mod:`pickwise.select.bait`).
    """

    lam: float = 1.0
    oversample: float = 2.0
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (GradEmbedder,)

    def __post_init__(self) -> None:
        _check_number("lam", self.lam, low=0.0, strict=True)
        _check_number("oversample", self.oversample, low=1.0)
        check_positive_int("chunk_size", self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        p, h = grad_factors(model, x, unl, self.chunk_size)
        pl, hl = grad_factors(model, x, pool.labeled, self.chunk_size) if pool.n_labeled else (None, None)
        return unl[bait_select(p, h, k, probs_labeled=pl, h_labeled=hl, lam=self.lam, oversample=self.oversample)]

    @property
    def name(self) -> str:
        return "bait"


@dataclass(frozen=True, kw_only=True)
class EGL:
    """Expected gradient length Σ_c p_c ‖∇_W ℓ(x, c)‖ of the last layer, top-k (Settles, Craven &
    Ray, "Multiple-Instance Active Learning", NIPS 2008; Settles' survey §3.4)."""

    bias: bool = False
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (GradEmbedder,)

    def __post_init__(self) -> None:
        _check_bool("bias", self.bias)
        check_positive_int("chunk_size", self.chunk_size)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """EGL of shape (len(indices),); deterministic (``rng`` is accepted for a uniform interface)."""

        def one(xc: Any) -> np.ndarray:
            p, h = model.grad_factors(xc)
            return expected_gradient_length(p, h, bias=self.bias)

        return map_chunks(one, x, indices, self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return "egl"


@dataclass(frozen=True, kw_only=True)
class InformationDensity:
    """Informativeness × (mean cosine similarity to the unlabelled pool)^β, top-k (Settles & Craven,
    EMNLP 2008; Settles' survey §5.1).

    Similarity uses penultimate embeddings. By default (``n_neighbors=None``) it is the paper's mean
    over the whole pool, computed exactly in O(n·d) via
    :func:`pickwise.embeddings.mean_cosine_similarity` (i itself included in the mean): no
    neighbour search is needed at any n. With ``n_neighbors=m`` it is the mean cosine similarity to
    the m most similar other pool items (a local density,
    :func:`pickwise.embeddings.mean_knn_cosine_similarity`), found by ``neighbors`` (default: exact
    numpy search, O(n²·d) — use ``FaissFlat()`` for exact faiss or ``FaissIVF()``/``FaissHNSW()``
    for large pools). Negative means are clipped to 0 so that the power is defined; ``score`` must
    be ≥ 0. ``dtype="float32"`` stores the embeddings in float32.
    """

    score: str | ScoreFn = "entropy"
    beta: float = 1.0
    chunk_size: int = DEFAULT_CHUNK
    n_neighbors: int | None = None
    neighbors: Any = None
    dtype: str = "float64"
    needs: ClassVar[tuple[type, ...]] = (Classifier, Embedder)

    def __post_init__(self) -> None:
        resolve_score(self.score)
        _check_number("beta", self.beta, low=0.0)
        check_positive_int("chunk_size", self.chunk_size)
        if self.n_neighbors is not None:
            check_positive_int("n_neighbors", self.n_neighbors)
        _check_neighbors(self.neighbors)
        if self.neighbors is not None and self.n_neighbors is None:
            raise ValueError("neighbors is used only with n_neighbors (the whole-pool mean needs no search)")
        check_dtype(self.dtype)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Density-weighted scores of shape (len(indices),), the density over ``indices`` themselves;
        deterministic (``rng`` is accepted for a uniform interface)."""
        info = proba_scores(model, x, indices, resolve_score(self.score), self.chunk_size)
        emb = gather_embeddings(model, x, indices, self.chunk_size, self.dtype)
        if self.n_neighbors is None:
            sim = mean_cosine_similarity(emb, chunk_size=self.chunk_size)
        else:
            sim = mean_knn_cosine_similarity(emb, self.n_neighbors, neighbors=self.neighbors)
        return info * np.maximum(sim, 0.0) ** self.beta

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return f"density_{score_name(self.score)}"


@dataclass(frozen=True)
class StochasticBatch:
    """Draw k items without replacement ∝ exp(β·s), s^β or rank^−β of an inner strategy's scores
    (Kirsch et al., "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning",
    TMLR 2023) instead of taking its top k.

    ``inner`` is any score-based strategy (:class:`pickwise.protocols.ScoreBased`), e.g.
    ``Uncertainty(score="entropy")``, ``MCDropout(score="bald")``, ``EGL()``, ``QBC()``; ``needs`` is
    the inner one's. ``rng`` is consumed by the inner scores first, then by the sampling.
    """

    inner: Any
    _: KW_ONLY
    mode: str = "softmax"
    beta: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.inner, ScoreBased):
            raise ValueError(f"inner must be a score-based strategy with a scores() method; got {self.inner!r}")
        check_choice("mode", self.mode, STOCHASTIC_MODES)
        _check_number("beta", self.beta, low=0.0)

    @property
    def needs(self) -> tuple[type, ...]:
        return tuple(getattr(self.inner, "needs", ()))

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        s = self.inner.scores(model, x, unl, rng=rng)
        return unl[stochastic_batch(s, k, rng=rng, mode=self.mode, beta=self.beta)]

    @property
    def name(self) -> str:
        return f"{self.mode}_{getattr(self.inner, 'name', type(self.inner).__name__.lower())}"
