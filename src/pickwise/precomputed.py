"""Select from outputs a user computed with their own model (probabilities, embeddings, MC draws).

:class:`Precomputed` is a model whose "data" is the vector of absolute indices: strategies call
``model.predict_proba(take(x, idx))`` with ``x = np.arange(n)``, so every strategy works unchanged
on memory-mapped arrays, reading only the rows it asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._validation import check_finite


def _rows(name: str, arr: np.ndarray, idx: Any) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    return check_finite(name, np.asarray(arr[idx], dtype=np.float64))


class Precomputed:
    """A frozen model over precomputed outputs; ``x`` passed to strategies must be ``np.arange(n)``.

    Parameters
    ----------
    probs : array of shape (n, n_classes) or None
    embeddings : array of shape (n, d) or None — penultimate activations
    mc_probs : array of shape (n_draws, n, n_classes) or None — MC-dropout draws with one mask per
        draw for the whole pool
    Arrays may be memory-mapped; rows are read on demand.
    """

    def __init__(self, *, probs: Any = None, embeddings: Any = None, mc_probs: Any = None):
        arrays = {"probs": probs, "embeddings": embeddings, "mc_probs": mc_probs}
        given = {k: v for k, v in arrays.items() if v is not None}
        if not given:
            raise ValueError("Precomputed needs at least one of probs, embeddings, mc_probs")
        sizes = {k: (v.shape[1] if k == "mc_probs" else v.shape[0]) for k, v in given.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"the arrays disagree on the number of items: {sizes}")
        for name, ndim in (("probs", 2), ("embeddings", 2), ("mc_probs", 3)):
            v = arrays[name]
            if v is not None and v.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions; got shape {v.shape}")
        self.probs, self.embeddings, self.mc_probs = probs, embeddings, mc_probs
        self.n = next(iter(sizes.values()))
        k = probs.shape[1] if probs is not None else (mc_probs.shape[2] if mc_probs is not None else 0)
        self.n_classes = int(k)
        # capabilities are exactly the arrays given
        if probs is None:
            self.predict_proba = self._missing("probs")  # type: ignore[method-assign]
            self.grad_factors = self._missing("probs")  # type: ignore[method-assign]
        if embeddings is None:
            self.embed = self._missing("embeddings")  # type: ignore[method-assign]
            self.grad_factors = self._missing("embeddings")  # type: ignore[method-assign]
        if mc_probs is None:
            self.predict_proba_mc = self._missing("mc_probs")  # type: ignore[method-assign]

    @staticmethod
    def _missing(name: str):
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"this strategy needs {name}; pass it (e.g. --{name.replace('_', '-')} file.npy)")

        return fail

    @property
    def x(self) -> np.ndarray:
        """The data to hand to strategies: the absolute indices 0 .. n-1."""
        return np.arange(self.n)

    def fit(self, x: Any, y: Any, *, seed: int) -> Precomputed:
        return self

    def predict_proba(self, idx: Any) -> np.ndarray:
        return _rows("probs", self.probs, idx)

    def embed(self, idx: Any) -> np.ndarray:
        return _rows("embeddings", self.embeddings, idx)

    def grad_factors(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_proba(idx), self.embed(idx)

    def predict_proba_mc(self, idx: Any, n_draws: int, *, seed: int) -> np.ndarray:
        if n_draws > self.mc_probs.shape[0]:
            raise ValueError(f"n_draws={n_draws} exceeds the {self.mc_probs.shape[0]} precomputed MC draws")
        idx = np.asarray(idx, dtype=np.int64)
        return check_finite("mc_probs", np.asarray(self.mc_probs[:n_draws, idx], dtype=np.float64))


def load_npy(path: str | Path | None, *, mmap: bool = True) -> np.ndarray | None:
    """``np.load`` memory-mapped (None passes through); a clear error for a missing file."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
