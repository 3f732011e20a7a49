"""What every pool strategy shares: scoring the unlabelled items in chunks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..scores import ScoreFn, get_score
from ..utils import chunks, take

DEFAULT_CHUNK = 4096


def resolve_score(score: str | ScoreFn) -> ScoreFn:
    return get_score(score) if isinstance(score, str) else score


def score_name(score: str | ScoreFn) -> str:
    return score if isinstance(score, str) else getattr(score, "__name__", repr(score))


def map_chunks(fn: Callable[[Any], np.ndarray], x: Any, indices: np.ndarray, chunk_size: int) -> np.ndarray:
    """Concatenate ``fn(x[chunk])`` over chunks of ``indices``; never holds more than one chunk of inputs."""
    parts = [fn(take(x, indices[sl])) for sl in chunks(indices.shape[0], chunk_size)]
    return np.concatenate(parts, axis=0) if parts else np.empty(0)


def proba_scores(model: Any, x: Any, indices: np.ndarray, score: ScoreFn, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """score(model.predict_proba(x[i])) for every i in ``indices``, chunk by chunk."""
    return map_chunks(lambda xc: score(model.predict_proba(xc)), x, indices, chunk_size)


def mc_scores(
    model: Any, x: Any, indices: np.ndarray, score: ScoreFn, n_draws: int, seed: int, chunk_size: int = DEFAULT_CHUNK
) -> np.ndarray:
    """score(MC draws) per item, reducing each chunk's (n_draws, m, K) draws before the next chunk."""
    if hasattr(model, "mc_scores"):
        return model.mc_scores(take_all(x, indices), {"s": score}, n_draws, seed=seed, chunk_size=chunk_size)["s"]
    return map_chunks(lambda xc: score(model.predict_proba_mc(xc, n_draws, seed=seed)), x, indices, chunk_size)


def take_all(x: Any, indices: np.ndarray) -> Any:
    return take(x, indices)
