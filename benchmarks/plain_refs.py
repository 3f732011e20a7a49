"""Plain reference implementations and measuring helpers shared by the benchmarks.

Moved here from benchmarks/select.py so that benchmarks/scale.py measures against the very same
references (see that file's docstring for what each reference reproduces):

- ``badge_materialised``: BADGE as the published 2020 code — the N×(K·d) float64 gradient
  embedding, distances of every row to each new centre with ``sklearn.metrics.pairwise_distances``.
- ``coreset_full``: core-set's furthest-first as published — the N×|L| distance matrix at once,
  then one ``pairwise_distances`` pass per pick.

Both may stop after ``picks`` picks; :func:`extrapolate` then scales the loop time linearly.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from pickwise.embeddings import grad_embedding, materialize
from pickwise.select.kcenter import kcenter_greedy
from pickwise.select.kmeanspp import kmeanspp_seeding, sample_d2

MB = 1024.0**2


def synthetic(n: int, n_classes: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, n_classes))
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    h = np.maximum(rng.normal(size=(n, d)), 0.0)
    return p, h


def measured(fn, *args, **kwargs):
    """(result, seconds, peak MB of allocations made during the call)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    sec = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / MB
    tracemalloc.stop()
    return out, sec, peak


def badge_fast(p, h, k, seed):
    return kmeanspp_seeding(grad_embedding(p, h), k, rng=np.random.default_rng(seed))


def badge_materialised(p, h, k, seed, picks):
    """Returns (picks, set-up seconds, loop seconds, picks run)."""
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    a = p.copy()
    a[np.arange(len(p)), p.argmax(1)] -= 1.0
    x = materialize(a, h)  # N × K·d float64
    first = int(np.argmax(np.linalg.norm(x, axis=1)))
    d2 = pairwise_distances(x, x[[first]]).ravel() ** 2
    d2[first] = 0.0
    setup = time.perf_counter() - t0
    chosen = [first]
    t1 = time.perf_counter()
    m = min(k, picks)
    while len(chosen) < m:
        c = sample_d2(d2, rng)
        chosen.append(c)
        if len(chosen) < m:
            np.minimum(d2, pairwise_distances(x, x[[c]]).ravel() ** 2, out=d2)
            d2[chosen] = 0.0
    return np.array(chosen), setup, time.perf_counter() - t1, m


def coreset_fast(x, lab, k, seed):
    return kcenter_greedy(x, k, centres=lab, rng=np.random.default_rng(seed))


def coreset_full(x, lab, k, picks):
    from sklearn.metrics import pairwise_distances

    t0 = time.perf_counter()
    min_dist = pairwise_distances(x, lab).min(axis=1)  # the N × |L| matrix
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = []
    m = min(k, picks)
    for _ in range(m):
        j = int(min_dist.argmax())
        out.append(j)
        np.minimum(min_dist, pairwise_distances(x, x[[j]]).ravel(), out=min_dist)
    return np.array(out), setup, time.perf_counter() - t1, m


def extrapolate(setup: float, loop: float, ran: int, k: int) -> float:
    if ran >= k:
        return setup + loop
    return setup + loop * (k - 1) / max(ran - 1, 1)
