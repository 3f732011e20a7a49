"""The contracts on one page: model capabilities, Strategy, StreamSelector, Oracle.

A strategy declares the model capabilities it ``needs``; the loop checks them once before round 1
with :func:`check_capabilities`. Models are adapters (``pickwise.adapters``) or any object with the
right methods. Data ``x`` is anything indexable by an integer array: a numpy array, a memory-mapped
``.npy`` array, or a map-style dataset (see :func:`pickwise.utils.take`).

All probabilities are float arrays whose last axis sums to one; all indices are absolute row
indices into the full dataset.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .pool import Pool


@runtime_checkable
class Classifier(Protocol):
    """Fits on labelled data and predicts class probabilities."""

    n_classes: int

    def fit(self, x: Any, y: np.ndarray, *, seed: int) -> Classifier:
        """Train (from scratch unless the adapter says otherwise) on ``x`` with labels ``y``."""

    def predict_proba(self, x: Any) -> np.ndarray:
        """ndarray of shape (n, n_classes)."""


@runtime_checkable
class Embedder(Protocol):
    """Exposes the penultimate activations (the input of the last linear layer)."""

    def embed(self, x: Any) -> np.ndarray:
        """ndarray of shape (n, d)."""


@runtime_checkable
class GradEmbedder(Protocol):
    """Gives what the last-layer gradient embedding needs, in factored form."""

    def grad_factors(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """(probs of shape (n, n_classes), penultimate h of shape (n, d))."""


@runtime_checkable
class MCSampler(Protocol):
    """Stochastic forward passes (MC dropout) with a seed; same seed, same draws."""

    def predict_proba_mc(self, x: Any, n_draws: int, *, seed: int) -> np.ndarray:
        """ndarray of shape (n_draws, n, n_classes); the same dropout masks for every item of a draw."""


@runtime_checkable
class Strategy(Protocol):
    """Chooses ``k`` unlabelled absolute indices to label next.

    ``select`` returns an int64 array of ``k`` distinct indices from ``pool.unlabeled``, ordered by
    preference when the strategy has one. It never mutates ``pool`` and takes all randomness from
    ``rng``.
    """

    needs: ClassVar[tuple[type, ...]]

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class ScoreBased(Protocol):
    """A strategy that is top-k over a per-item score; wrappers (e.g. candidate subsampling) use it.

    ``select`` must equal ``indices[top_k(scores(model, x, indices, rng=rng), k, rng=rng)]`` over
    the sorted unlabelled indices, consuming ``rng`` in that order.
    """

    needs: ClassVar[tuple[type, ...]]

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class StreamSelector(Protocol):
    """Decides, item by item and for good, whether to query each arriving item."""

    def observe(self, z: np.ndarray, *, rng: np.random.Generator) -> bool: ...

    def observe_many(self, z: np.ndarray, *, rng: np.random.Generator) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class Oracle(Protocol):
    """Answers with the labels of absolute indices."""

    def __call__(self, indices: np.ndarray) -> np.ndarray: ...


def check_capabilities(strategy: Any, model: Any) -> None:
    """Raise ``TypeError`` naming each capability ``strategy.needs`` that ``model`` lacks."""
    missing = [cap for cap in getattr(strategy, "needs", ()) if not isinstance(model, cap)]
    if missing:
        # adapters that can say why (SklearnClassifier.explain_missing) get their reason appended
        explain = getattr(model, "explain_missing", None)
        why = [explain(cap) for cap in missing] if callable(explain) else []
        detail = "".join(f": {w}" for w in why if w)
        raise TypeError(
            f"{type(strategy).__name__} needs a model with {', '.join(c.__name__ for c in missing)}; "
            f"{type(model).__name__} does not provide it{detail}"
        )
