"""A numpy-only model with every capability, for fast deterministic strategy tests."""

from __future__ import annotations

import numpy as np

from pickwise.utils import take


class FakeModel:
    """Fixed random two-layer network: h = relu(x W1), p = softmax(h W2).

    ``fit`` does nothing but record its call, so tests are fast and outputs depend only on
    ``seed`` given at construction. MC draws drop penultimate units with a seeded mask per draw.
    """

    def __init__(self, n_features: int, n_classes: int = 3, width: int = 8, *, seed: int = 0, dropout: float = 0.3):
        rng = np.random.default_rng(seed)
        self.n_classes = n_classes
        self.w1 = rng.normal(size=(n_features, width)) / np.sqrt(n_features)
        self.w2 = rng.normal(size=(width, n_classes)) * 2.0
        self.dropout = dropout
        self.fit_calls = 0

    def fit(self, x, y, *, seed: int):
        self.fit_calls += 1
        return self

    def embed(self, x) -> np.ndarray:
        return np.maximum(np.asarray(x, dtype=np.float64) @ self.w1, 0.0)

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def predict_proba(self, x) -> np.ndarray:
        return self._softmax(self.embed(x) @ self.w2)

    def grad_factors(self, x):
        h = self.embed(x)
        return self._softmax(h @ self.w2), h

    def predict_proba_mc(self, x, n_draws: int, *, seed: int) -> np.ndarray:
        h = self.embed(x)
        rng = np.random.default_rng(seed)
        masks = rng.random((n_draws, 1, h.shape[1])) >= self.dropout
        return self._softmax((h[None] * masks / (1 - self.dropout)) @ self.w2)


def blobs(n: int = 60, n_features: int = 5, n_classes: int = 3, *, seed: int = 0):
    """Gaussian blobs: x of shape (n, n_features), y of shape (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(scale=3.0, size=(n_classes, n_features))
    x = centres[y] + rng.normal(size=(n, n_features))
    return x, y


__all__ = ["CentroidModel", "FakeModel", "blobs", "take"]


class CentroidModel:
    """A nearest-centroid classifier whose fit depends on the labels and the seed, with every capability."""

    n_classes = 3
    fits = 0

    def __init__(self):
        self.w = np.random.default_rng(0).normal(size=(5, 6)) / 2

    def fit(self, x, y, *, seed):
        CentroidModel.fits += 1
        rng = np.random.default_rng(seed)
        h = self.embed(x)
        self.centres = np.stack([h[y == c].mean(axis=0) if np.any(y == c) else np.zeros(6) for c in range(3)])
        self.centres += rng.normal(scale=0.01, size=self.centres.shape)
        return self

    def embed(self, x):
        return np.maximum(np.asarray(x) @ self.w, 0.0)

    def predict_proba(self, x):
        d = ((self.embed(x)[:, None, :] - self.centres[None]) ** 2).sum(axis=2)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)

    def grad_factors(self, x):
        return self.predict_proba(x), self.embed(x)
