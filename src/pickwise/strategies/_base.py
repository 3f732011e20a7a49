"""What every pool strategy shares: scoring and gathering the unlabelled items in chunks.

Memory shape (DESIGN, "Performance shape"): a pass over the pool holds one chunk of inputs and of
model outputs at a time; what it keeps is O(n) per-item state (a score), or, for the strategies
whose selection needs it, the per-item rows of an embedding written into one preallocated array
(never a list of chunks concatenated at the end, which would hold the rows twice).

Inputs ``x`` may be numpy arrays, memory-mapped ``.npy`` arrays or map-style datasets: rows are
fetched with :func:`pickwise.utils.take` one chunk at a time, and never all at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import (
    _show,
    as_numeric,
    check_choice,
    check_float_rows,
    check_indices,
    check_mc_layout,
    check_probs,
    check_selection,
    n_rows,
)
from ..embeddings import GradEmbedding, grad_embedding
from ..progress import progress_bar
from ..scores import ScoreFn, get_score
from ..utils import chunks, take

DEFAULT_CHUNK = 4096

#: storage types for gathered embeddings: float64 (default, bit-for-bit the plain reference) or
#: float32 (half the memory and memory traffic; see docs/performance.md, "Pools of millions")
DTYPES = {"float64": np.float64, "float32": np.float32}


def resolve_score(score: str | ScoreFn) -> ScoreFn:
    return get_score(score) if isinstance(score, str) else score


def score_name(score: str | ScoreFn) -> str:
    return score if isinstance(score, str) else getattr(score, "__name__", repr(score))


def check_dtype(dtype: Any) -> type:
    """The numpy type of a storage ``dtype`` name ("float64" or "float32")."""
    return check_choice("dtype", dtype, DTYPES)


def check_pool_indices(x: Any, indices: Any) -> np.ndarray:
    """``indices`` as int64 positions of ``x`` (1-D integers, each a row of ``x`` when its length is known)."""
    n = n_rows(x)
    return check_indices("indices", indices, n if n is not None else np.iinfo(np.int64).max)


def model_rows(name: str, out: Any, m: int, *, axis: int = 0) -> np.ndarray:
    """A model's output for a chunk of ``m`` rows, which must have ``m`` entries along ``axis``."""
    arr = np.asarray(out)
    if arr.ndim <= axis or arr.shape[axis] != m:
        raise ValueError(f"{name} must have {m} rows (one per input row) along axis {axis}; got shape {arr.shape}")
    return arr


def mc_output(model: Any, xc: Any, n_draws: int, seed: int) -> np.ndarray:
    """``model.predict_proba_mc(xc, n_draws, seed=seed)``, checked to be (n_draws, len(xc), K)."""
    d = as_numeric("predict_proba_mc output", model.predict_proba_mc(xc, n_draws, seed=seed))
    check_mc_layout("predict_proba_mc output", d.shape, n_items=n_rows(xc), n_draws=n_draws)
    return d


def map_chunks(
    fn: Callable[[Any], np.ndarray], x: Any, indices: np.ndarray, chunk_size: int, *, desc: str = "scoring"
) -> np.ndarray:
    """``fn(x[chunk])`` over chunks of ``indices``, stacked along axis 0 into one preallocated array.

    Never holds more than one chunk of inputs; the result has the first chunk's dtype and trailing
    shape (an empty ``indices`` gives ``np.empty(0)``). ``fn`` must give one row per input row.
    """
    indices = check_pool_indices(x, indices)
    n = indices.shape[0]
    out = None
    with progress_bar(n, desc) as bar:
        for sl in chunks(n, chunk_size):
            part = model_rows(f"{desc} output", fn(take(x, indices[sl])), sl.stop - sl.start)
            if out is not None and part.shape[1:] != out.shape[1:]:
                raise ValueError(f"{desc}: chunks disagree on the shape of a row; got {out.shape[1:]} and "
                                 f"{part.shape[1:]}")
            if out is None:
                out = np.empty((n, *part.shape[1:]), dtype=part.dtype)
            out[sl] = part
            bar.update(sl.stop - sl.start)
    return out if out is not None else np.empty(0)


def proba_scores(model: Any, x: Any, indices: np.ndarray, score: ScoreFn, chunk_size: int = DEFAULT_CHUNK, *,
                 desc: str = "scoring") -> np.ndarray:
    """score(model.predict_proba(x[i])) for every i in ``indices``, chunk by chunk (one row per input row
    is checked; the score checks the probabilities)."""
    return map_chunks(lambda xc: score(model_rows("predict_proba output", model.predict_proba(xc), n_rows(xc))),
                      x, indices, chunk_size, desc=desc)


class LazyRows:
    """The rows ``x[indices]`` as an array-like that fetches only the rows it is indexed with.

    Hands a model's own chunked method (``TorchClassifier.mc_scores``) the unlabelled pool without
    copying it: ``take(view, rows)`` reads ``x[indices[rows]]`` only. ``desc`` names a progress bar
    that counts the rows fetched.
    """

    def __init__(self, x: Any, indices: np.ndarray, *, desc: str | None = None):
        self.x, self.indices = x, np.asarray(indices, dtype=np.int64)
        sample = take(x, self.indices[:1]) if self.indices.shape[0] else None
        row_shape = tuple(np.shape(sample)[1:]) if sample is not None and not isinstance(sample, list) else ()
        self.shape = (self.indices.shape[0], *row_shape)
        self._bar = progress_bar(self.indices.shape[0], desc) if desc else None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> Any:
        idx = self.indices[rows]
        out = take(self.x, np.atleast_1d(idx))
        if self._bar is not None:
            self._bar.update(np.size(idx))
        return out if np.ndim(idx) else out[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(take(self.x, self.indices), dtype=dtype)  # whole pool: only if someone asks

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def mc_scores(
    model: Any, x: Any, indices: np.ndarray, score: ScoreFn, n_draws: int, seed: int, chunk_size: int = DEFAULT_CHUNK
) -> np.ndarray:
    """score(MC draws) per item, reducing each chunk's (n_draws, m, K) draws before the next chunk.

    A model with its own ``mc_scores`` (``TorchClassifier``: head-only MC, masks seeded by chunk)
    gets a :class:`LazyRows` view of the pool, so it fetches one chunk of rows at a time too.
    """
    if hasattr(model, "mc_scores"):
        indices = check_pool_indices(x, indices)
        view = LazyRows(x, indices, desc="MC scoring")
        try:
            out = model.mc_scores(view, {"s": score}, n_draws, seed=seed, chunk_size=chunk_size)["s"]
        finally:
            view.close()
        return model_rows("mc_scores output", out, indices.shape[0])
    return map_chunks(lambda xc: score(mc_output(model, xc, n_draws, seed)), x, indices, chunk_size,
                      desc="MC scoring")


def _grad_factors(model: Any, xc: Any, m: int, *, values: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``model.grad_factors(xc)`` checked: one row per input row, and (with ``values``) probabilities
    (m, K) and finite activations (m, d)."""
    out = model.grad_factors(xc)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"grad_factors must return a pair (probs, h); got {_show(out)}")
    p = model_rows("grad_factors probs", out[0], m)
    hc = model_rows("grad_factors h", out[1], m)
    if values:
        p, hc = check_probs("grad_factors probs", p), check_float_rows("grad_factors h", hc)
    return p, hc


def mc_draws(model: Any, x: Any, indices: np.ndarray, n_draws: int, *, seed: int, chunk_size: int) -> np.ndarray:
    """``model.predict_proba_mc`` of ``x[indices]`` chunk by chunk: float64 (n_draws, n, K), every
    chunk with the same dropout ``seed`` (the draws BatchBALD, EPIG and BatchEPIG work on)."""
    indices = check_pool_indices(x, indices)
    out = None
    for sl in chunks(indices.shape[0], chunk_size):
        p = np.asarray(mc_output(model, take(x, indices[sl]), n_draws, seed), dtype=np.float64)
        if out is not None and p.shape[2] != out.shape[2]:
            raise ValueError(f"predict_proba_mc output: chunks disagree on n_classes; got {p.shape} after "
                             f"{out.shape[2]} classes")
        if out is None:
            out = np.empty((p.shape[0], indices.shape[0], p.shape[2]))
        out[:, sl] = p
    if out is None:
        raise ValueError("MC draws need at least one item; got 0")
    return out


def gather_embeddings(model: Any, x: Any, indices: np.ndarray, chunk_size: int, dtype: str = "float64") -> np.ndarray:
    """``model.embed`` over ``indices`` chunk by chunk into one (n, d) array of ``dtype``.

    Float64 values equal ``np.asarray(model.embed(x[indices]), float64)`` exactly; 0 rows give (0, 0).
    """
    if np.shape(indices)[0] == 0:
        return np.empty((0, 0), dtype=check_dtype(dtype))
    kind = check_dtype(dtype)

    def one(xc: Any) -> np.ndarray:
        e = model_rows("embed output", model.embed(xc), n_rows(xc))
        if e.ndim != 2:
            raise ValueError(f"embed output must have shape (n, d); got shape {e.shape}")
        return check_float_rows("embed output", e).astype(kind, copy=False)

    return map_chunks(one, x, indices, chunk_size, desc="embedding")


def gather_grad_factors(
    model: Any, x: Any, indices: np.ndarray, chunk_size: int, dtype: str = "float64"
) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, K), h (n, d)) of ``model.grad_factors`` over ``indices``, chunk by chunk, as ``dtype``."""
    kind = check_dtype(dtype)
    indices = check_pool_indices(x, indices)
    n = indices.shape[0]
    probs = h = None
    with progress_bar(n, "gradient factors") as bar:
        for sl in chunks(n, chunk_size):
            p, hc = _grad_factors(model, take(x, indices[sl]), sl.stop - sl.start)
            if probs is not None and (p.shape[1] != probs.shape[1] or hc.shape[1] != h.shape[1]):
                raise ValueError(f"grad_factors output: chunks disagree on K or d; got {p.shape} and {hc.shape} "
                                 f"after {probs.shape[1:]} and {h.shape[1:]}")
            if probs is None:
                probs = np.empty((n, np.shape(p)[1]), dtype=kind)
                h = np.empty((n, np.shape(hc)[1]), dtype=kind)
            probs[sl] = np.asarray(p, dtype=np.float64)
            h[sl] = np.asarray(hc, dtype=np.float64)
            bar.update(sl.stop - sl.start)
    if probs is None:
        return np.empty((0, 0), dtype=kind), np.empty((0, 0), dtype=kind)
    return probs, h


def gather_grad_embedding(
    model: Any, x: Any, indices: np.ndarray, chunk_size: int, *, bias: bool = False, dtype: str = "float64"
) -> GradEmbedding:
    """The factored gradient embedding (a = p − e_ŷ, h) of ``indices``, built chunk by chunk.

    Each chunk goes through :func:`pickwise.embeddings.grad_embedding` (validation, ŷ, the bias
    column) and is written into preallocated (n, K) and (n, d [+1]) arrays of ``dtype``: float64
    values equal ``grad_embedding`` on the whole pool exactly, and nothing of size n·K·d exists.
    """
    kind = check_dtype(dtype)
    indices = check_pool_indices(x, indices)
    n = indices.shape[0]
    a = h = None
    with progress_bar(n, "gradient embedding") as bar:
        for sl in chunks(n, chunk_size):
            e = grad_embedding(*_grad_factors(model, take(x, indices[sl]), sl.stop - sl.start, values=False), bias=bias)
            if a is not None and (e.a.shape[1] != a.shape[1] or e.h.shape[1] != h.shape[1]):
                raise ValueError(f"grad_factors output: chunks disagree on K or d; got {e.a.shape} and {e.h.shape}")
            if a is None:
                a = np.empty((n, e.a.shape[1]), dtype=kind)
                h = np.empty((n, e.h.shape[1]), dtype=kind)
            a[sl], h[sl] = e.a, e.h
            bar.update(sl.stop - sl.start)
    if a is None:
        raise ValueError("the gradient embedding needs at least one item; got 0")
    return GradEmbedding(a, h)


def select_top_scores(strategy: Any, model: Any, x: Any, pool: Any, k: int, *, rng: np.random.Generator) -> np.ndarray:
    """The ``select`` of every score-based strategy: the top ``k`` unlabelled items by
    ``strategy.scores`` (ties broken by ``rng``), consuming ``rng`` as :class:`ScoreBased` promises."""
    from ..select.topk import top_k

    k = check_selection(x, pool, k, rng)
    unl = pool.unlabeled
    return unl[top_k(strategy.scores(model, x, unl, rng=rng), k, rng=rng)]
