"""Random, uncertainty sampling and MC-dropout strategies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._validation import check_selection, check_positive_int
from ..pool import Pool
from ..protocols import Classifier, MCSampler
from ..scores import ScoreFn
from ._base import DEFAULT_CHUNK, mc_scores, proba_scores, resolve_score, score_name, select_top_scores


@dataclass(frozen=True)
class Random:
    """Uniformly random unlabelled items: the baseline every strategy must beat."""

    needs: ClassVar[tuple[type, ...]] = ()
    last_n_scored: ClassVar[int] = 0  # scores nothing

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        return rng.choice(pool.unlabeled, size=k, replace=False).astype(np.int64)

    @property
    def name(self) -> str:
        return "random"


@dataclass(frozen=True)
class Uncertainty:
    """Top-k by a single-model score over predicted probabilities (Lewis & Gale 1994; Settles 2009).

    ``score`` is a function over probs (n, K) or a name: "least_confidence", "margin", "entropy".
    """

    score: str | ScoreFn = "entropy"
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (Classifier,)

    def __post_init__(self) -> None:
        resolve_score(self.score)
        check_positive_int("chunk_size", self.chunk_size)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Scores of shape (len(indices),); deterministic (``rng`` is accepted for a uniform interface)."""
        return proba_scores(model, x, indices, resolve_score(self.score), self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return score_name(self.score)


@dataclass(frozen=True)
class MCDropout:
    """Top-k by a score over MC-dropout draws (Gal, Islam & Ghahramani, ICML 2017).

    ``score``: "bald", "variation_ratio", "mean_std", "max_entropy" or a function over
    draws (n_draws, n, K). The dropout seed is drawn from ``rng``.
    """

    score: str | ScoreFn = "bald"
    n_draws: int = 20
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (MCSampler,)

    def __post_init__(self) -> None:
        resolve_score(self.score)
        check_positive_int("n_draws", self.n_draws)
        check_positive_int("chunk_size", self.chunk_size)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        """Scores of shape (len(indices),); the dropout seed is the first draw from ``rng``."""
        seed = int(rng.integers(2**31 - 1))
        return mc_scores(model, x, indices, resolve_score(self.score), self.n_draws, seed, self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return score_name(self.score)
