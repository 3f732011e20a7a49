"""EPIG and greedy BatchEPIG on consistent MC-dropout draws (Bickford Smith, Kirsch, Farquhar, Gal,
Foster & Rainforth, "Prediction-Oriented Bayesian Active Learning", AISTATS 2023).

Both score candidates by the information their label carries about the labels of target inputs
x* ~ p*(x*) (:mod:`pickwise.select.epig`). The targets are, by default, a sample of ``n_targets``
unlabelled items drawn from ``rng`` (the paper's approximation of p* by the pool; 100 targets is
the authors' code's default), or the rows of ``targets`` (inputs in the form of ``x``, e.g. a
sample of the test distribution).

One dropout seed (drawn from ``rng`` first) serves the targets and every chunk of the pool, so
draw t of a candidate and of a target share the parameter sample ω_t: the model's MC draws must
use the same masks for every item of a draw (``TorchClassifier(consistent_masks=True)``, the
default, as BatchBALD needs).

Memory: EPIG keeps O(n) scores plus the targets' (T, M, K) draws; each pool chunk's draws are
reduced before the next. BatchEPIG holds its candidates' draws, O(T·n·K) (``max_candidates`` keeps
only the items with the highest EPIG), and its greedy step costs O(M·n·C·K·T) (see
:mod:`pickwise.select.epig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._validation import check_positive_int, check_selection
from ..pool import Pool
from ..protocols import MCSampler
from ..select.epig import batch_epig_select, epig_scores
from ..select.topk import top_k
from ..utils import n_items
from ._base import (
    DEFAULT_CHUNK,
    mc_draws,
    mc_scores,
    select_top_scores,
)

__all__ = ["EPIG", "BatchEPIG", "mc_draws"]


def _check_targets(targets: Any) -> None:
    if targets is None:
        return
    try:
        n = n_items(targets)
    except TypeError as err:
        raise ValueError(f"targets must be None or rows of inputs (an array or a dataset); got {targets!r}") from err
    if n < 1:
        raise ValueError(f"targets must hold at least one input row; got {n}")


@dataclass(frozen=True, kw_only=True)
class _Targets:
    """What EPIG and BatchEPIG share: the MC settings and the target inputs."""

    n_draws: int = 20
    n_targets: int = 100
    targets: Any = field(default=None, repr=False, compare=False)
    chunk_size: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        check_positive_int("n_draws", self.n_draws)
        check_positive_int("n_targets", self.n_targets)
        _check_targets(self.targets)
        check_positive_int("chunk_size", self.chunk_size)

    def target_draws(self, model: Any, x: Any, indices: np.ndarray, *, seed: int,
                     rng: np.random.Generator) -> np.ndarray:
        """MC draws (n_draws, M, K) of the targets: ``targets`` if given, else ``n_targets`` items of
        ``indices`` drawn without replacement from ``rng`` (all of them when there are fewer)."""
        if self.targets is not None:
            rows = np.arange(n_items(self.targets), dtype=np.int64)
            return mc_draws(model, self.targets, rows, self.n_draws, seed=seed, chunk_size=self.chunk_size)
        chosen = rng.choice(indices, size=min(self.n_targets, indices.shape[0]), replace=False)
        return mc_draws(model, x, np.asarray(chosen, dtype=np.int64), self.n_draws, seed=seed,
                        chunk_size=self.chunk_size)

    def _epig(self, model: Any, x: Any, indices: np.ndarray, seed: int, target: np.ndarray) -> np.ndarray:
        return mc_scores(model, x, indices, lambda d: epig_scores(d, target), self.n_draws, seed, self.chunk_size)


@dataclass(frozen=True, kw_only=True)
class EPIG(_Targets):
    """Top-k by expected predictive information gain (Bickford Smith et al., AISTATS 2023).

    ``n_draws`` MC-dropout passes; ``n_targets`` target inputs sampled from the unlabelled items
    (ignored when ``targets``, input rows of the target distribution, are given). ``rng`` gives
    the dropout seed, then the target sample, then the tie-breaks.
    """

    needs: ClassVar[tuple[type, ...]] = (MCSampler,)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        """EPIG of shape (len(indices),); the seed and the target sample are drawn from ``rng``."""
        seed = int(rng.integers(2**31 - 1))
        target = self.target_draws(model, x, indices, seed=seed, rng=rng)
        return self._epig(model, x, indices, seed, target)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return "epig"


@dataclass(frozen=True, kw_only=True)
class BatchEPIG(_Targets):
    """Greedy batch EPIG, EPIG(S) = E_{x*} I(y_S; y* | x_S, x*), grown one item at a time as
    BatchBALD grows BALD (Bickford Smith et al., AISTATS 2023).

    Joint entropies as in :class:`pickwise.strategies.BatchBALD`: exact while K^b ≤ ``max_configs``,
    else from ``n_samples`` sampled configurations. ``max_candidates`` (None = the whole pool) keeps
    only that many items with the highest EPIG (same draws, same targets) as candidates: the pool
    pass then keeps O(n) scores and only the candidates' draws. The greedy step costs
    O(n_targets·candidates·C·K·n_draws); for large pools and batches set ``max_candidates``,
    ``n_targets`` and ``n_samples`` small (benchmarks/new_strategies.py measures it).
    """

    max_candidates: int | None = None
    max_configs: int = 40_000
    n_samples: int = 40_000
    needs: ClassVar[tuple[type, ...]] = (MCSampler,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_candidates is not None:
            check_positive_int("max_candidates", self.max_candidates)
        check_positive_int("max_configs", self.max_configs)
        check_positive_int("n_samples", self.n_samples)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        k = check_selection(x, pool, k, rng)
        unl = pool.unlabeled
        seed = int(rng.integers(2**31 - 1))
        target = self.target_draws(model, x, unl, seed=seed, rng=rng)
        if self.max_candidates is not None and unl.shape[0] > max(self.max_candidates, k):
            scores = self._epig(model, x, unl, seed, target)
            unl = unl[np.sort(top_k(scores, max(self.max_candidates, k), rng=rng))]
        d = mc_draws(model, x, unl, self.n_draws, seed=seed, chunk_size=self.chunk_size)
        return unl[batch_epig_select(d, target, k, rng=rng, max_configs=self.max_configs, n_samples=self.n_samples)]

    @property
    def name(self) -> str:
        return "batch_epig"
