"""Batch-aware pool strategies: BADGE, core-set, DBAL, BatchBALD, BAIT, EGL, information density
and stochastic batch acquisition. Thin frozen dataclasses over :mod:`pickwise.select` and
:mod:`pickwise.embeddings`; model outputs are gathered chunk by chunk."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np

from .._validation import check_choice, check_k, check_positive_int
from ..embeddings import GradEmbedding, expected_gradient_length, grad_embedding, mean_cosine_similarity
from ..pool import Pool
from ..protocols import Classifier, Embedder, GradEmbedder, MCSampler, ScoreBased
from ..scores import ScoreFn, bald
from ..select.bait import bait_select
from ..select.batchbald import batchbald_select
from ..select.kcenter import kcenter_greedy
from ..select.kmeanspp import kmeanspp_seeding
from ..select.stochastic import STOCHASTIC_MODES, stochastic_batch
from ..select.topk import top_k
from ..select.wkmeans import weighted_kmeans_select
from ..utils import chunks, take
from ._base import DEFAULT_CHUNK, map_chunks, proba_scores, resolve_score, score_name

__all__ = ["BADGE", "CoreSet", "DBAL", "BatchBALD", "BAIT", "EGL", "InformationDensity", "StochasticBatch"]


def grad_factors(model: Any, x: Any, indices: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, K), h (n, d)) of ``model.grad_factors`` over ``indices``, chunk by chunk."""
    probs, hs = [], []
    for sl in chunks(indices.shape[0], chunk_size):
        p, h = model.grad_factors(take(x, indices[sl]))
        probs.append(np.asarray(p, dtype=np.float64))
        hs.append(np.asarray(h, dtype=np.float64))
    return np.concatenate(probs), np.concatenate(hs)


def embeddings(model: Any, x: Any, indices: np.ndarray, chunk_size: int) -> np.ndarray:
    """``model.embed`` over ``indices`` chunk by chunk; (n, d) float64 (0 rows give (0, 0))."""
    if indices.shape[0] == 0:
        return np.empty((0, 0))
    return np.asarray(map_chunks(model.embed, x, indices, chunk_size), dtype=np.float64)


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
    """

    bias: bool = False
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (GradEmbedder,)

    def __post_init__(self) -> None:
        _check_bool("bias", self.bias)
        check_positive_int("chunk_size", self.chunk_size)

    def embedding(self, model: Any, x: Any, indices: np.ndarray) -> GradEmbedding:
        probs, h = grad_factors(model, x, indices, self.chunk_size)
        return grad_embedding(probs, h, bias=self.bias)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_k(pool, k)
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
    """

    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (Embedder,)

    def __post_init__(self) -> None:
        check_positive_int("chunk_size", self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_k(pool, k)
        unl = pool.unlabeled
        emb = embeddings(model, x, unl, self.chunk_size)
        lab = embeddings(model, x, pool.labeled, self.chunk_size).reshape(-1, emb.shape[1])
        return unl[kcenter_greedy(emb, k, centres=lab, rng=rng, chunk_size=min(self.chunk_size, 1024))]

    @property
    def name(self) -> str:
        return "coreset"


@dataclass(frozen=True, kw_only=True)
class DBAL:
    """Diverse mini-batch active learning (Zhdanov, "Diverse mini-batch Active Learning", 2019).

    Keep the ⌈beta·k⌉ most informative unlabelled items by ``score`` (margin by default), cluster
    their penultimate embeddings into k clusters with k-means weighted by the score, and query the
    nearest distinct item to each centroid.
    """

    beta: float = 10.0
    score: str | ScoreFn = "margin"
    n_init: int = 1
    max_iter: int = 300
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (Classifier, Embedder)

    def __post_init__(self) -> None:
        _check_number("beta", self.beta, low=1.0)
        resolve_score(self.score)
        check_positive_int("n_init", self.n_init)
        check_positive_int("max_iter", self.max_iter)
        check_positive_int("chunk_size", self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_k(pool, k)
        unl = pool.unlabeled
        s = proba_scores(model, x, unl, resolve_score(self.score), self.chunk_size)
        keep = top_k(s, min(unl.shape[0], math.ceil(self.beta * k)), rng=rng)
        emb = embeddings(model, x, unl[keep], self.chunk_size)
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
    configurations (:mod:`pickwise.select.batchbald`). Holds the (n_draws, n, K) draws in memory;
    each greedy step costs O(n·C·K·n_draws) with C ≤ max(max_configs, n_samples) configurations.
    ``max_candidates`` (None = the whole pool) keeps only that many items with the highest BALD
    (from the same draws) as candidates, a common shortcut for large pools.
    """

    n_draws: int = 20
    max_configs: int = 40_000
    n_samples: int = 40_000
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
        parts = [model.predict_proba_mc(take(x, indices[sl]), self.n_draws, seed=seed)
                 for sl in chunks(indices.shape[0], self.chunk_size)]
        return np.concatenate(parts, axis=1).astype(np.float64)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_k(pool, k)
        unl = pool.unlabeled
        d = self.draws(model, x, unl, seed=int(rng.integers(2**31 - 1)))
        if self.max_candidates is not None and unl.shape[0] > max(self.max_candidates, k):
            keep = np.sort(top_k(bald(d), max(self.max_candidates, k), rng=rng))
            unl, d = unl[keep], d[:, keep]
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
        k = check_k(pool, k)
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
        k = check_k(pool, k)
        unl = pool.unlabeled
        return unl[top_k(self.scores(model, x, unl, rng=rng), k, rng=rng)]

    @property
    def name(self) -> str:
        return "egl"


@dataclass(frozen=True, kw_only=True)
class InformationDensity:
    """Informativeness × (mean cosine similarity to the unlabelled pool)^β, top-k (Settles & Craven,
    EMNLP 2008; Settles' survey §5.1).

    Similarity uses penultimate embeddings, computed in O(n·d) via
    :func:`pickwise.embeddings.mean_cosine_similarity` (i itself included in the mean; negative
    means are clipped to 0 so that the power is defined). ``score`` must be ≥ 0.
    """

    score: str | ScoreFn = "entropy"
    beta: float = 1.0
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (Classifier, Embedder)

    def __post_init__(self) -> None:
        resolve_score(self.score)
        _check_number("beta", self.beta, low=0.0)
        check_positive_int("chunk_size", self.chunk_size)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Density-weighted scores of shape (len(indices),), the density over ``indices`` themselves;
        deterministic (``rng`` is accepted for a uniform interface)."""
        info = proba_scores(model, x, indices, resolve_score(self.score), self.chunk_size)
        sim = mean_cosine_similarity(embeddings(model, x, indices, self.chunk_size), chunk_size=self.chunk_size)
        return info * np.maximum(sim, 0.0) ** self.beta

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_k(pool, k)
        unl = pool.unlabeled
        return unl[top_k(self.scores(model, x, unl, rng=rng), k, rng=rng)]

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
        k = check_k(pool, k)
        unl = pool.unlabeled
        s = self.inner.scores(model, x, unl, rng=rng)
        return unl[stochastic_batch(s, k, rng=rng, mode=self.mode, beta=self.beta)]

    @property
    def name(self) -> str:
        return f"{self.mode}_{getattr(self.inner, 'name', type(self.inner).__name__.lower())}"
