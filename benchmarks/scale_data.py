"""Synthetic pools of realistic shape for benchmarks/scale.py, cached as .npy files.

A pool of n items, K classes, penultimate width d:

- h (n, d) float32: ReLU of a point drawn around one of 4·K cluster centres (centres N(0, 1),
  isotropic noise N(0, ``noise``²), default 0.5), so the embeddings are clustered as a trained
  network's are: squared distances between clusters are about 5× those within one;
- probs (n, K) float32 = softmax(h·W + b) for a random linear head W (d, K), b (K), scaled once so
  that the median top probability over the first 10,000 items is 0.75 (a mix of confident and
  uncertain predictions, as on a real pool mid-way through active learning);
- MC dropout (T draws) is head-only dropout on h with one mask per draw for the whole pool:
  p_t = softmax((h ⊙ m_t/(1 − q))·W + b), computed on demand chunk by chunk (:class:`HeadDropout`),
  never stored (at n = 10⁶, K = 100, T = 20 the draws would take 8 GB in float32).

Arrays are generated in blocks of 65,536 rows from ``numpy.random.default_rng(seed)`` and written
under a cache folder, so every measuring subprocess loads the same pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pickwise.precomputed import Precomputed

BLOCK = 65536


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


NOISE = 0.5


def pool_dir(root: Path, n: int, n_classes: int, dim: int, seed: int, noise: float = NOISE) -> Path:
    return Path(root) / f"pool_n{n}_k{n_classes}_d{dim}_s{seed}_noise{noise}"


def make_pool(root: Path, n: int, n_classes: int, dim: int, seed: int = 0, noise: float = NOISE) -> Path:
    """Write h.npy, probs.npy, head.npz and meta.json (once; later calls return the folder)."""
    out = pool_dir(root, n, n_classes, dim, seed, noise)
    if (out / "meta.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_clusters = 4 * n_classes
    centres = rng.normal(scale=1.0, size=(n_clusters, dim)).astype(np.float32)
    w = rng.normal(size=(dim, n_classes)).astype(np.float32) / np.sqrt(dim)
    b = rng.normal(scale=0.5, size=n_classes).astype(np.float32)
    h = np.lib.format.open_memmap(out / "h.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        cl = rng.integers(n_clusters, size=m)
        block = centres[cl] + np.float32(noise) * rng.standard_normal(size=(m, dim), dtype=np.float32)
        h[start : start + m] = np.maximum(block, 0.0)
    # scale the head so that the median top probability on a sample is 0.75
    sample = np.asarray(h[: min(n, 10_000)])
    lo, hi = 1e-3, 1e3
    for _ in range(60):
        s = np.sqrt(lo * hi)
        med = np.median(_softmax((sample @ (w * s) + b).astype(np.float64)).max(axis=1))
        lo, hi = (s, hi) if med < 0.75 else (lo, s)
    w = (w * np.float32(np.sqrt(lo * hi))).astype(np.float32)
    probs = np.lib.format.open_memmap(out / "probs.npy", mode="w+", dtype=np.float32, shape=(n, n_classes))
    for start in range(0, n, BLOCK):
        probs[start : start + BLOCK] = _softmax(np.asarray(h[start : start + BLOCK]) @ w + b)
    h.flush()
    probs.flush()
    del h, probs
    np.savez(out / "head.npz", w=w, b=b)
    (out / "meta.json").write_text(json.dumps({"n": n, "n_classes": n_classes, "dim": dim, "seed": seed, "noise": noise}))
    return out


class HeadDropout(Precomputed):
    """Precomputed probabilities and embeddings, plus head-only MC dropout on the embeddings.

    Draw t uses one mask m_t (shape (d,), keep probability 1 − ``rate``, scaled by 1/(1 − rate))
    for every item, drawn from ``default_rng(seed)``: p_t = softmax((h ⊙ m_t)·W + b). The T draws
    of a chunk are one product h·[diag(m_1)W, …, diag(m_T)W] (d × T·K).
    """

    def __init__(self, *, probs, embeddings, w, b, rate: float = 0.5):
        super().__init__(probs=probs, embeddings=embeddings)
        del self.predict_proba_mc  # Precomputed marks it missing without mc_probs: use the method below
        self.w, self.b, self.rate = np.asarray(w, np.float32), np.asarray(b, np.float32), rate

    def predict_proba_mc(self, idx, n_draws: int, *, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        masks = (rng.random((n_draws, self.w.shape[0])) >= self.rate).astype(np.float32) / (1 - self.rate)
        heads = (masks[:, :, None] * self.w[None]).transpose(1, 0, 2).reshape(self.w.shape[0], -1)  # (d, T·K)
        h = np.asarray(self.embeddings[np.asarray(idx, dtype=np.int64)], dtype=np.float32)
        z = (h @ heads).reshape(h.shape[0], n_draws, -1) + self.b
        return _softmax(z).transpose(1, 0, 2)  # (T, m, K) float32


def load_pool(folder: Path, *, mmap: bool = False) -> tuple[HeadDropout, dict]:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    mode = "r" if mmap else None
    head = np.load(folder / "head.npz")
    model = HeadDropout(probs=np.load(folder / "probs.npy", mmap_mode=mode),
                        embeddings=np.load(folder / "h.npy", mmap_mode=mode), w=head["w"], b=head["b"])
    return model, meta
