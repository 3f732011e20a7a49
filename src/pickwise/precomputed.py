"""Select from outputs a user computed with their own model (probabilities, embeddings, MC draws,
committee members' probabilities).

:class:`Precomputed` is a model whose "data" is the vector of absolute indices: strategies call
``model.predict_proba(take(x, idx))`` with ``x = np.arange(n)``, so every strategy works unchanged
on memory-mapped arrays, reading only the rows it asks for — one chunk at a time, since strategies
score in chunks (docs/performance.md, "Pools of millions"). Rows come back as float64 whatever the
stored type, so float32 files give the same scores as float64 ones holding the same values.
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
    member_probs : array of shape (n_members, n, n_classes) or None — each committee member's
        probabilities (for query by committee)
    Arrays may be memory-mapped; rows are read on demand.
    """

    def __init__(self, *, probs: Any = None, embeddings: Any = None, mc_probs: Any = None, member_probs: Any = None):
        arrays = {"probs": probs, "embeddings": embeddings, "mc_probs": mc_probs, "member_probs": member_probs}
        given = {k: v for k, v in arrays.items() if v is not None}
        if not given:
            raise ValueError("Precomputed needs at least one of probs, embeddings, mc_probs, member_probs")
        for name, ndim in (("probs", 2), ("embeddings", 2), ("mc_probs", 3), ("member_probs", 3)):
            v = arrays[name]
            if v is not None and v.ndim != ndim:
                raise ValueError(f"{name} must have {ndim} dimensions; got shape {v.shape}")
        sizes = {k: (v.shape[1] if v.ndim == 3 else v.shape[0]) for k, v in given.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"the arrays disagree on the number of items: {sizes}")
        classes = {k: v.shape[-1] for k, v in given.items() if k != "embeddings"}
        if len(set(classes.values())) > 1:
            raise ValueError(f"the arrays disagree on the number of classes: {classes}")
        self.probs, self.embeddings, self.mc_probs, self.member_probs = probs, embeddings, mc_probs, member_probs
        self.n = next(iter(sizes.values()))
        self.n_classes = int(next(iter(classes.values()), 0))
        # capabilities are exactly the arrays given
        if probs is None:
            self.predict_proba = self._missing("probs")  # type: ignore[method-assign]
            self.grad_factors = self._missing("probs")  # type: ignore[method-assign]
        if embeddings is None:
            self.embed = self._missing("embeddings")  # type: ignore[method-assign]
            self.grad_factors = self._missing("embeddings")  # type: ignore[method-assign]
        if mc_probs is None:
            self.predict_proba_mc = self._missing("mc_probs")  # type: ignore[method-assign]
        if member_probs is None:
            self.predict_proba_members = self._missing("member_probs")  # type: ignore[method-assign]

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

    def predict_proba_members(self, idx: Any) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return check_finite("member_probs", np.asarray(self.member_probs[:, idx], dtype=np.float64))


def load_npy(path: str | Path | None, *, mmap: bool = True) -> np.ndarray | None:
    """``np.load`` memory-mapped (None passes through); a clear error for a missing file."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
