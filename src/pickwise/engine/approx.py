"""Approximate selection over shards, opt-in, for large k or slow links: a few rounds instead of k.

The exact functions of :mod:`pickwise.engine.selection` make one round trip per pick (k rounds of
"broadcast a centre, gather a few floats"): on a cluster, k = 1000 picks cost about 1000 × the
network latency. These two trade exactness for a constant number of rounds:

* :func:`sharded_kmeans_parallel` — BADGE's k-means++ seeding replaced by **k-means||** (Bahmani,
  Moseley, Vattani, Kumar & Vassilvitskii, VLDB 2012) in Spark's form: (1) the first centre is the
  row of largest gradient norm (BADGE's rule; k-means|| proper draws it uniformly); (2) ``rounds``
  times, every row joins the candidates independently with probability min(1, ℓ·D²/φ), φ = Σ D²
  (ℓ = ``oversample``, default 2k, as Spark), and D² is updated against the new candidates only;
  (3) each candidate is weighted by the rows nearest to it (one counting pass); (4) weighted
  k-means++ over the ~1 + rounds·ℓ candidates, on the driver, chooses the k picks (its first pick
  is the first centre, then D²·weight sampling). If fewer than k candidates come out (tiny or
  degenerate pools) further rounds run; a pool whose rows all coincide with candidates is filled
  uniformly at random. Rounds: ``rounds`` + 1 counting pass + 1, each moving ~ℓ·(K + d) floats.
  Distances stay in factored form, ‖a⊗h − a'⊗h'‖² = ‖a‖²‖h‖² + ‖a'‖²‖h'‖² − 2(a·a')(h·h').
* :func:`sharded_kcenter_two_round` — core-set's greedy k-center replaced by the **two-round
  composable core-set** (Malkomes, Kusner, Chen, Weinberger & Moseley, NeurIPS 2015): every shard
  runs greedy k-center over its own rows from the labelled set for min(k, n_s) centres; the driver
  runs greedy k-center over the union of those S·k rows, from the labelled set, for the k picks.
  Two rounds whatever k; a constant-factor approximation of the greedy's covering radius.

Determinism: with the same shards (same sizes) and seed the picks are the same on every engine (the
uniforms of k-means|| come from the caller's generator advanced by each shard's offset, as in
:func:`~pickwise.engine.sharded_top_k`). Across different shard counts the picks can differ: φ is
summed shard by shard (k-means||), and the per-shard greedy sees other rows (two-round). For the
exact picks of the single-machine strategy use the exact functions (the default everywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_batch_size, check_positive_int, check_rng
from .base import Engine
from .selection import _ADVANCE, _drop, _first_best, _kpp_init, _raise_first

__all__ = ["sharded_kcenter_two_round", "sharded_kmeans_parallel"]

_BLOCK = 2048  # rows per block of the row × centre distance products


def _factored_d2(a: np.ndarray, h: np.ndarray, sqn: np.ndarray, ca: np.ndarray, ch: np.ndarray,
                 sqc: np.ndarray) -> np.ndarray:
    """Squared distances (len(a), len(ca)) between a_i⊗h_i and ca_j⊗ch_j, float64, clipped at 0."""
    d = sqn[:, None] + sqc[None, :] - 2.0 * (a @ ca.T).astype(np.float64) * (h @ ch.T).astype(np.float64)
    return np.maximum(d, 0.0, out=d)


def _kmp_update(state: dict, arg: tuple) -> float:
    """D² of this shard's rows against new centres (ids, a, h, ‖g‖²); the shard's Σ D²."""
    ids, ca, ch, sqc = arg
    a, h, sqn, d2 = (state[f"_kpp_{k}"] for k in ("a", "h", "sqn", "d2"))
    for start in range(0, a.shape[0], _BLOCK):
        sl = slice(start, start + _BLOCK)
        if ca.shape[0]:
            np.minimum(d2[sl], _factored_d2(a[sl], h[sl], sqn[sl], ca.astype(a.dtype), ch.astype(h.dtype),
                                            sqc).min(axis=1), out=d2[sl])
    local = np.asarray(ids, dtype=np.int64) - state["offset"]
    mine = local[(local >= 0) & (local < a.shape[0])]
    d2[mine] = 0.0
    state["_kpp_chosen"][mine] = True
    return float(np.sum(d2))


def _kmp_rows(state: dict, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i = np.asarray(positions, dtype=np.int64) - state["offset"]
    return state["_kpp_a"][i].copy(), state["_kpp_h"][i].copy(), state["_kpp_sqn"][i].copy()


def _kmp_sample(state: dict, arg: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows kept with probability min(1, ℓ·D²/φ) under this shard's slice of the round's uniforms."""
    bitgen, u, ell, phi = arg
    n = state["n"]
    if bitgen is not None:
        name, st = bitgen
        bg = getattr(np.random, name)()
        bg.state = st
        bg.advance(state["offset"])
        u = np.random.Generator(bg).random(n)
    d2 = state["_kpp_d2"]
    keep = np.flatnonzero((u < ell * d2 / phi) & ~state["_kpp_chosen"])
    pos = keep.astype(np.int64) + state["offset"]
    return (pos, *_kmp_rows(state, pos))


def _kmp_counts(state: dict, arg: tuple) -> np.ndarray:
    """How many of this shard's rows have each candidate as their nearest (first on ties)."""
    ca, ch, sqc = arg
    a, h, sqn = state["_kpp_a"], state["_kpp_h"], state["_kpp_sqn"]
    counts = np.zeros(ca.shape[0], dtype=np.int64)
    for start in range(0, a.shape[0], _BLOCK):
        sl = slice(start, start + _BLOCK)
        nearest = _factored_d2(a[sl], h[sl], sqn[sl], ca.astype(a.dtype), ch.astype(h.dtype), sqc).argmin(axis=1)
        counts += np.bincount(nearest, minlength=ca.shape[0])
    return counts


def _kmp_free(state: dict, j: int) -> int:
    return state["offset"] + int(np.flatnonzero(~state["_kpp_chosen"])[j])


def _weighted_kmeanspp(a: np.ndarray, h: np.ndarray, sqn: np.ndarray, w: np.ndarray, k: int,
                       rng: np.random.Generator) -> np.ndarray:
    """k-means++ over weighted candidates (factored), first pick = candidate 0; positions in pick order."""
    m = a.shape[0]
    picks = np.empty(k, dtype=np.int64)
    d2 = np.full(m, np.inf)
    chosen = np.zeros(m, dtype=bool)
    c = 0
    for t in range(k):
        picks[t] = c
        chosen[c] = True
        if t == k - 1:
            break
        new = _factored_d2(a, h, sqn, a[c : c + 1], h[c : c + 1], sqn[c : c + 1])[:, 0]
        np.minimum(d2, new, out=d2)
        d2[chosen] = 0.0
        p = d2 * w
        total = float(p.sum())
        if total > 0:
            c = int(np.searchsorted(np.cumsum(p), rng.random() * total, side="right"))
            c = min(c, int(np.flatnonzero(p > 0)[-1]))
        else:  # every candidate left coincides with a pick: uniform over the unchosen ones
            free = np.flatnonzero(~chosen)
            c = int(free[rng.integers(free.shape[0])])
    return picks


def sharded_kmeans_parallel(
    engine: Engine,
    k: int,
    *,
    rng: np.random.Generator,
    rounds: int = 5,
    oversample: float | None = None,
    a: str = "a",
    h: str = "h",
    on_round: Callable[[int], None] | None = None,
) -> np.ndarray:
    """k picks by k-means|| on the shards' factored embedding (see the module docstring); global positions.

    Parameters
    ----------
    engine : Engine
        Shards holding ``a`` (n_s, K) and ``h`` (n_s, d), as for :func:`~pickwise.engine.sharded_kmeanspp`.
    k : int
        1 ≤ k ≤ n.
    rng : numpy Generator
    rounds : int
        Oversampling rounds (≥ 1; Bahmani et al. found about 5 enough, Spark defaults to 2).
    oversample : float, optional
        ℓ, the expected rows kept per round (default 2k).
    on_round : callable, optional
        ``on_round(r)`` after oversampling round r.

    Returns
    -------
    ndarray of shape (k,), int64, in pick order (the first is the largest-norm row).
    """
    infos = engine.map(_kpp_init, (a, h))
    try:
        _raise_first(infos)
        n = int(sum(engine.sizes))
        k = check_batch_size(k, n, what="the number of rows")
        check_rng(rng)
        rounds = check_positive_int("rounds", rounds)
        ell = float(2 * k if oversample is None else oversample)
        if not np.isfinite(ell) or ell <= 0:
            raise ValueError(f"oversample must be a positive number; got {oversample!r}")
        s = _first_best([i[3][0] for i in infos])
        first = int(engine.offsets[s]) + infos[s][3][1]
        ids = [np.array([first], dtype=np.int64)]
        rows = [engine.call(s, _kmp_rows, ids[0])]
        phi = sum(engine.map(_kmp_update, engine.broadcast((ids[0], *rows[0]))))
        done = 0
        while True:
            n_cand = sum(i.shape[0] for i in ids)
            if (done >= rounds and n_cand >= k) or phi <= 0 or n_cand >= n or done >= rounds + 20:
                break
            bg = rng.bit_generator
            if type(bg).__name__ in _ADVANCE:
                st = bg.state
                parts = engine.map(_kmp_sample, engine.broadcast(((type(bg).__name__, st), None, ell, phi)))
                bg.advance(n)
                after = bg.state
                after["has_uint32"], after["uinteger"] = st["has_uint32"], st["uinteger"]
                bg.state = after
            else:
                parts = [engine.call(i, _kmp_sample, (None, rng.random(size), ell, phi))
                         for i, size in enumerate(engine.sizes)]
            new_ids = np.concatenate([p[0] for p in parts])
            new_rows = tuple(np.concatenate([p[j] for p in parts]) for j in (1, 2, 3))
            ids.append(new_ids)
            rows.append(new_rows)
            phi = sum(engine.map(_kmp_update, engine.broadcast((new_ids, *new_rows))))
            done += 1
            if on_round is not None:
                on_round(done)
        cand = np.concatenate(ids)
        ca, ch, sqc = (np.concatenate([r[j] for r in rows]) for j in range(3))
        if cand.shape[0] < k:  # every row left coincides with a candidate: fill uniformly at random
            free = np.array(engine.map(_kmp_free_count))
            extra = []
            for j in np.sort(rng.choice(int(free.sum()), size=k - cand.shape[0], replace=False)):
                sh = int(np.searchsorted(np.cumsum(free), j, side="right"))
                extra.append(engine.call(sh, _kmp_free, int(j - free[:sh].sum())))
            return np.concatenate([cand, np.array(extra, dtype=np.int64)])
        counts = np.sum(engine.map(_kmp_counts, engine.broadcast((ca, ch, sqc))), axis=0).astype(np.float64)
        return cand[_weighted_kmeanspp(ca, ch, sqc, counts, k, rng)]
    finally:
        engine.map(_drop, "_kpp_")


def _kmp_free_count(state: dict, _: Any) -> int:
    return int(state["n"] - np.count_nonzero(state["_kpp_chosen"]))


# ------------------------------------------------------------------------- two-round core-set


def _tr_local(state: dict, arg: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center over this shard's rows from the centres: (global positions, rows). A first pick
    without centres is drawn from a generator seeded by (seed, the shard's offset)."""
    from ..select import kcenter_greedy

    key, k, centres, seed, chunk_size, exact = arg
    x = state[key]
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.int64), x[:0]
    local = kcenter_greedy(x, min(k, x.shape[0]), centres=centres, rng=np.random.default_rng([seed, state["offset"]]),
                           chunk_size=chunk_size, exact=exact)
    return local.astype(np.int64) + state["offset"], np.asarray(x[local]).copy()


def sharded_kcenter_two_round(
    engine: Engine,
    k: int,
    *,
    centres: np.ndarray | None = None,
    rng: np.random.Generator,
    x: str = "x",
    chunk_size: int = 1024,
    exact: bool = True,
) -> np.ndarray:
    """k picks by the two-round composable core-set (see the module docstring); global positions.

    Parameters
    ----------
    engine : Engine
        Shards holding the embeddings under the name ``x``, shape (n_s, d).
    k : int
        1 ≤ k ≤ n.
    centres : ndarray of shape (m, d) or None
        The labelled set.
    rng : numpy Generator
        One draw seeds the shards' first picks when there are no centres; the driver's greedy
        then uses it as :func:`~pickwise.select.kcenter_greedy` does.
    chunk_size, exact
        As in :func:`pickwise.select.kcenter_greedy`.

    Returns
    -------
    ndarray of shape (k,), int64, in the driver's greedy order.
    """
    from ..select import kcenter_greedy

    n = int(sum(engine.sizes))
    k = check_batch_size(k, n, what="the number of rows")
    check_rng(rng)
    if centres is not None:
        centres = np.asarray(centres)
        if centres.shape[0] == 0:
            centres = None
    seed = int(rng.integers(2**63 - 1))
    parts = engine.map(_tr_local, engine.broadcast((x, k, centres, seed, chunk_size, exact)))
    pos = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    pick = kcenter_greedy(rows, k, centres=centres, rng=rng, chunk_size=chunk_size, exact=exact)
    return pos[pick]
