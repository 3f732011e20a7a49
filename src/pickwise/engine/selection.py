"""Selection over a sharded pool, written once for every :class:`~pickwise.engine.Engine`; exact.

Each function returns what its single-machine counterpart returns on the concatenation of the
shards (global row positions, in pick order), with the same ``rng`` consumed the same way:

* :func:`sharded_top_k` = :func:`pickwise.select.top_k`. Each shard keeps its top k under the one
  total order (score descending, then the tie uniform u, then the position) and the driver merges
  the ≤ S·k candidates. The tie uniforms are the local path's ``rng.random(n)`` in pool order:
  shard s draws its slice itself from a copy of the generator advanced by its offset (PCG64 and
  PCG64DXSM, numpy's default, can jump ahead; one uniform takes one 64-bit step), and the caller's
  ``rng`` is then advanced by n, exactly as the local call leaves it. Other bit generators draw the
  uniforms on the driver, shard by shard (n doubles moved).
* :func:`sharded_kmeanspp` = :func:`pickwise.select.kmeanspp_seeding` on the factored gradient
  embedding (a, h), k rounds of two-level D² sampling. Per round the driver broadcasts the new
  centre (K + d floats); every shard updates its D² (the same pruning as the local code) and then,
  shard after shard, extends the running sum of D² from the previous shard's total (a fold of one
  float: :meth:`Engine.scan`). That is the local ``np.cumsum`` bit for bit, so the driver's single
  ``rng.random()`` lands, after ``u · Σ``, in the same shard and at the same row as the local
  :func:`~pickwise.select.kmeanspp.sample_d2`. The D² updates run in parallel; only the O(n) sum
  is sequential (an order-independent, parallel sum would match the local picks only up to the
  rounding of the sum).
* :func:`sharded_kcenter` = :func:`pickwise.select.kcenter_greedy`, k rounds: every shard updates
  its distances to the new centre (the same norm and triangle bounds) and reports its farthest row
  (largest distance, first on ties) with the row itself; the driver takes the largest (first shard
  on ties, so the smallest position) and broadcasts it.

"Exact" has one caveat, the local code's own: its pruning decides between one dense pass and a
gathered update from the number of rows that the bounds leave, which a shard counts among its own
rows. Both give the same distances except where a bound and the distance round differently in the
last bit (see :mod:`pickwise.select.kmeanspp`); ``prune=False`` on both sides removes even that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_batch_size, check_choice, check_float_rows, check_rng
from ..progress import progress_bar
from ..select import kcenter as _kc
from ..select import kmeanspp as _kpp
from .base import Engine

__all__ = ["sharded_kcenter", "sharded_kmeanspp", "sharded_top_k"]

# bit generators that jump ahead exactly (advance(delta) = delta 64-bit draws = delta doubles)
_ADVANCE = ("PCG64", "PCG64DXSM")


def _raise_first(messages: list[Any]) -> None:
    """Shards report bad input as a message (the same on every engine); the driver raises it."""
    bad = [msg for msg in messages if isinstance(msg, str)]
    if bad:
        raise ValueError(bad[0])


def _drop(state: dict, prefix: str) -> None:
    """Forget a selection's working arrays."""
    for key in [k for k in state if isinstance(k, str) and k.startswith(prefix)]:
        del state[key]


def _first_best(values: list[float]) -> int:
    """The first shard holding the largest value (shards are in pool order, so: the smallest position)."""
    return int(np.argmax(np.asarray(values, dtype=np.float64)))


# ---------------------------------------------------------------------------------------- top-k


def _tk_scores(state: dict, score: str | Callable[[dict], Any]) -> str | None:
    try:
        raw = score(state) if callable(score) else state[score]
    except KeyError:
        return f"score {score!r} is not an array of the shards (they hold {sorted(k for k in state if k[0] != '_')})"
    except ValueError as err:  # a shard-side score refusing its input: reported like the checks below
        return str(err)
    s = np.asarray(raw, dtype=np.float64)
    if s.shape != (state["n"],):
        return f"scores must have shape (n,) per shard; got shape {s.shape} for {state['n']} rows"
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.shape[0]:
        return f"scores must be finite; got {s[bad[0]]} at position {state['offset'] + int(bad[0])}"
    state["_tk_s"] = s
    return None


def _tk_draw(state: dict, bitgen: tuple[str, dict]) -> None:
    name, st = bitgen
    bg = getattr(np.random, name)()
    bg.state = st
    bg.advance(state["offset"])
    state["_tk_u"] = np.random.Generator(bg).random(state["n"])


def _tk_set(state: dict, u: np.ndarray) -> None:
    state["_tk_u"] = u


def _tk_local(state: dict, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This shard's top min(k, n) under (−score, u), as pickwise.select.top_k cuts it."""
    s, u = state.pop("_tk_s"), state.pop("_tk_u")
    n = s.shape[0]
    k = min(k, n)
    if k == 0:
        cand = np.empty(0, dtype=np.int64)
    elif k == n:
        cand = np.arange(n)
    else:
        threshold = np.partition(s, n - k)[n - k]
        above = np.flatnonzero(s > threshold)
        tied = np.flatnonzero(s == threshold)
        tied = tied[np.argsort(u[tied], kind="stable")[: k - above.shape[0]]]
        cand = np.concatenate([above, tied])
    return s[cand], u[cand], cand.astype(np.int64) + state["offset"]


def sharded_top_k(
    engine: Engine, k: int, *, rng: np.random.Generator, score: str | Callable[[dict], Any] = "score"
) -> np.ndarray:
    """Global positions of the ``k`` largest scores, best first; equal to ``top_k(scores, k, rng=rng)``.

    Parameters
    ----------
    engine : Engine
        The pool's shards.
    k : int
        0 ≤ k ≤ n.
    rng : numpy Generator
        Consumed exactly as :func:`pickwise.select.top_k` consumes it (n uniforms).
    score : str or callable
        The name of a shard array of shape (n_s,), or a module-level function ``score(state)``
        returning one (e.g. an entropy of the shard's probabilities), computed where the shard lives.

    Returns
    -------
    ndarray of shape (k,), int64
    """
    _raise_first(engine.map(_tk_scores, score))
    n = int(sum(engine.sizes))
    k = check_batch_size(k, n, what="the number of scores", low=0)
    check_rng(rng)
    bg = rng.bit_generator
    name = type(bg).__name__
    if name in _ADVANCE:
        st = bg.state
        engine.map(_tk_draw, engine.broadcast((name, st)))
        bg.advance(n)  # what rng.random(n) leaves, with any buffered 32-bit draw kept
        after = bg.state
        after["has_uint32"], after["uinteger"] = st["has_uint32"], st["uinteger"]
        bg.state = after
    else:
        for shard, size in enumerate(engine.sizes):
            engine.call(shard, _tk_set, rng.random(size))
    parts = engine.map(_tk_local, k)
    s = np.concatenate([p[0] for p in parts])
    u = np.concatenate([p[1] for p in parts])
    idx = np.concatenate([p[2] for p in parts])
    return idx[np.lexsort((idx, u, -s))[:k]].astype(np.int64)


# ------------------------------------------------------------------------------ k-means++ (BADGE)


def _kpp_init(state: dict, keys: tuple[str, str]) -> Any:
    try:
        a = check_float_rows("emb.a", state[keys[0]])
        h = check_float_rows("emb.h", state[keys[1]])
    except KeyError as err:
        return f"the shards hold no array {err.args[0]!r} (they hold {sorted(k for k in state if k[0] != '_')})"
    except ValueError as err:
        return f"{err} (shard from position {state['offset']})"
    if a.shape[0] != h.shape[0]:
        return f"emb.a and emb.h must have the same number of rows; got {a.shape[0]} and {h.shape[0]}"
    kind = np.float32 if a.dtype == np.float32 and h.dtype == np.float32 else np.float64
    a = state["_kpp_a"] = np.ascontiguousarray(a, dtype=kind)
    h = state["_kpp_h"] = np.ascontiguousarray(h, dtype=kind)
    hh = _kpp._sq64(h)
    sqn = state["_kpp_sqn"] = _kpp._sq64(a) * hh
    state["_kpp_hn"] = np.sqrt(hh)
    state["_kpp_d2"] = np.full(a.shape[0], np.inf)
    state["_kpp_chosen"] = np.zeros(a.shape[0], dtype=bool)
    best = (float(sqn.max()), int(np.argmax(sqn))) if sqn.shape[0] else (-np.inf, -1)
    return np.dtype(kind).name, a.shape[1], h.shape[1], best


def _kpp_row(state: dict, c: int) -> tuple[np.ndarray, np.ndarray, np.float64, np.float64]:
    i = c - state["offset"]
    return state["_kpp_a"][i].copy(), state["_kpp_h"][i].copy(), state["_kpp_sqn"][i], state["_kpp_hn"][i]


def _kpp_update(state: dict, arg: tuple) -> None:
    """D² against the new centre: the body of pickwise.select.kmeanspp._seed_loop on this shard."""
    c, (ac, hc, sqc, hnc), t, prune = arg
    a, h, sqn, hn, d2 = (state[f"_kpp_{k}"] for k in ("a", "h", "sqn", "hn", "d2"))
    n = a.shape[0]
    if n == 0:
        return
    aa = a @ ac
    rows = None
    if prune and t > 0:
        bound = sqn + sqc - 2.0 * np.abs(aa) * (hn * hnc)
        cand = np.flatnonzero(bound < d2)
        if cand.shape[0] < _kpp._GATHER_BELOW * n:
            rows = cand
    if rows is None:
        new = sqn + sqc - 2.0 * aa * (h @ hc)
        np.maximum(new, 0.0, out=new)
        np.minimum(d2, new, out=d2)
    else:
        for start in range(0, rows.shape[0], _kpp._GATHER_ROWS):
            r = rows[start : start + _kpp._GATHER_ROWS]
            new = sqn[r] + sqc - 2.0 * aa[r] * (h[r] @ hc)
            np.maximum(new, 0.0, out=new)
            d2[r] = np.minimum(d2[r], new)
    i = c - state["offset"]
    if 0 <= i < n:
        d2[i] = 0.0
        state["_kpp_chosen"][i] = True


def _kpp_cumsum(state: dict, carry: float) -> tuple[float, tuple[float, int, int, float]]:
    """The running sum of D² continued from the previous shards' total: np.cumsum's own order."""
    d2 = state["_kpp_d2"]
    if d2.shape[0] == 0:
        return carry, (-np.inf, -1, 0, carry)
    cum = np.cumsum(np.concatenate([np.array([carry], dtype=np.float64), d2]))[1:]
    state["_kpp_cum"] = cum
    pos = np.flatnonzero(d2 > 0)
    last = int(pos[-1]) if pos.shape[0] else -1
    n_free = int(d2.shape[0] - np.count_nonzero(state["_kpp_chosen"]))
    return float(cum[-1]), (float(d2.max()), last, n_free, float(cum[-1]))


def _kpp_update_total(state: dict, arg: tuple) -> tuple[float, int, int, float]:
    """Two-level sampling (``sums="parallel"``): the D² update, then this shard's own running sum from 0."""
    _kpp_update(state, arg)
    return _kpp_cumsum(state, 0.0)[1]


def _kpp_locate(state: dict, target: float) -> tuple[int, tuple]:
    i = int(np.searchsorted(state["_kpp_cum"], target, side="right"))
    c = state["offset"] + i
    return c, _kpp_row(state, c)


def _kpp_free(state: dict, j: int) -> tuple[int, tuple]:
    c = state["offset"] + int(np.flatnonzero(~state["_kpp_chosen"])[j])
    return c, _kpp_row(state, c)


def _owner(engine: Engine, c: int) -> int:
    return int(np.searchsorted(np.cumsum(engine.sizes), c, side="right"))


def sharded_kmeanspp(
    engine: Engine,
    k: int,
    *,
    rng: np.random.Generator,
    first: str = "max_norm",
    prune: bool = True,
    a: str = "a",
    h: str = "h",
    on_pick: Callable[[int], None] | None = None,
    sums: str = "sequential",
) -> np.ndarray:
    """k-means++ seeding (BADGE) on the shards' factored embedding; global positions in pick order.

    Equal to ``kmeanspp_seeding(GradEmbedding(A, H), k, rng=rng, first=first, prune=prune)`` on the
    concatenated shards (see the module docstring), consuming ``rng`` the same way.

    Parameters
    ----------
    engine : Engine
        Shards holding the factors under the names ``a`` (n_s, K) and ``h`` (n_s, d); a dense
        embedding x is ``a = ones((n, 1)), h = x``.
    k : int
        1 ≤ k ≤ n.
    rng : numpy Generator
    first : "max_norm" or "random"
    prune : bool
    on_pick : callable, optional
        ``on_pick(t)`` after pick t is fixed (a hook for progress or fault tests).
    sums : "sequential" or "parallel"
        "sequential" (the default, exact): the running sum of D² is continued shard after shard,
        ``np.cumsum``'s own order, so the picks are the single-machine picks bit for bit; a round
        costs W + 3 steps of latency for W shards. "parallel": two-level D² sampling — every shard
        updates its D² and sums its own rows from 0 in one parallel step, the driver draws the
        shard ∝ its total and that shard the row ∝ D² within it (the same distribution, the same
        single ``rng.random()`` per pick); a round costs about 2 steps whatever W, and the picks
        equal the single-machine ones except where u·Σ falls within rounding of a boundary between
        rows (the sums are added in another order), which leads to another, equally likely pick.

    Returns
    -------
    ndarray of shape (k,), int64
    """
    check_choice("sums", sums, ("sequential", "parallel"))
    infos = engine.map(_kpp_init, (a, h))
    try:
        _raise_first(infos)
        kinds = {(i[0], i[1], i[2]) for i, size in zip(infos, engine.sizes) if size}
        if len(kinds) > 1:
            raise ValueError(f"the shards must agree on dtype and widths (dtype, K, d); got {sorted(kinds)}")
        n = int(sum(engine.sizes))
        k = check_batch_size(k, n, what="the number of rows")
        check_rng(rng)
        check_choice("first", first, ("max_norm", "random"))
        if first == "max_norm":
            s = _first_best([i[3][0] for i in infos])
            c = int(engine.offsets[s]) + infos[s][3][1]
        else:
            c = int(rng.integers(n))
        row = engine.call(_owner(engine, c), _kpp_row, c)
        picks = np.empty(k, dtype=np.int64)
        with progress_bar(k, "k-means++ picks", unit="pick") as bar:
            for t in range(k):
                picks[t] = c
                bar.update()
                if on_pick is not None:
                    on_pick(t)
                if t == k - 1:
                    break
                arg = engine.broadcast((c, row, t, prune))
                if sums == "sequential":
                    total, res = engine.scan(_kpp_cumsum, 0.0, prepare=_kpp_update, arg=arg)
                    starts = [0.0] * len(res)
                else:  # each shard's own total; the driver adds them in shard order
                    res = engine.map(_kpp_update_total, arg)
                    starts, total = [], 0.0
                    for r in res:
                        starts.append(total)
                        total += r[3]
                if max(r[0] for r in res) > 0:
                    target = rng.random() * total
                    ends = np.array([st + r[3] if size else -np.inf
                                     for r, size, st in zip(res, engine.sizes, starts)])
                    over = np.flatnonzero(ends > target)
                    if over.shape[0]:
                        s = int(over[0])
                        # two-level: the remainder within shard s, kept below its own total (rounding)
                        rem = target if sums == "sequential" else min(target - starts[s], np.nextafter(res[s][3], -np.inf))
                        c, row = engine.call(s, _kpp_locate, rem)
                    else:  # u·Σ rounded up to Σ: the last row with positive D², as sample_d2 does
                        s = max(i for i, r in enumerate(res) if r[1] >= 0)
                        c = int(engine.offsets[s]) + res[s][1]
                        row = engine.call(s, _kpp_row, c)
                else:  # every remaining row coincides with a centre: uniform over the unchosen ones
                    free = np.array([r[2] for r in res])
                    j = int(rng.integers(int(free.sum())))
                    s = int(np.searchsorted(np.cumsum(free), j, side="right"))
                    c, row = engine.call(s, _kpp_free, j - int(free[:s].sum()))
        return picks
    finally:
        engine.map(_drop, "_kpp_")


# ---------------------------------------------------------------------------- k-center (core-set)


def _kc_init(state: dict, key: str) -> Any:
    try:
        x = _kc._as_float("x", state[key])
    except KeyError:
        return f"the shards hold no array {key!r} (they hold {sorted(k for k in state if k[0] != '_')})"
    except ValueError as err:
        return f"{err} (shard from position {state['offset']})"
    if x.ndim != 2:
        return f"x must have shape (n, d); got shape {x.shape} (shard from position {state['offset']})"
    state["_kc_x"] = x
    return x.dtype.name, x.shape[1]


def _kc_best(state: dict) -> tuple[float, int, Any]:
    d2 = state["_kc_d2"]
    if d2.shape[0] == 0:
        return -np.inf, -1, None
    i = int(np.argmax(d2))
    return float(d2[i]), state["offset"] + i, _kc_row(state, state["offset"] + i)


def _kc_row(state: dict, j: int) -> tuple[np.ndarray, np.float64, np.float64]:
    i = j - state["offset"]
    return state["_kc_x"][i].copy(), state["_kc_xsq"][i], state["_kc_xn"][i]


def _kc_setup(state: dict, arg: tuple) -> tuple[float, int, Any]:
    centres, k, chunk_size, neighbors, exact = arg
    x = state["_kc_x"]
    c = centres.astype(x.dtype, copy=False)
    d2, assign = _kc.nearest_centres(x, c, chunk_size=chunk_size, neighbors=neighbors, exact=exact)
    state["_kc_d2"], state["_kc_assign"] = d2, assign
    xsq = state["_kc_xsq"] = _kc._sq(x)
    state["_kc_xn"] = np.sqrt(xsq)
    m0 = c.shape[0]
    allc = state["_kc_allc"] = np.empty((m0 + k, x.shape[1]), dtype=x.dtype)
    allc[:m0] = c
    allsq = state["_kc_allsq"] = np.empty(m0 + k)
    allsq[:m0] = _kc._sq(c) if m0 else allsq[:0]
    state["_kc_untested"] = 0
    return _kc_best(state)


def _kc_update(state: dict, arg: tuple) -> tuple[float, int, Any]:
    """Distances to the new centre: one iteration of pickwise.select.kcenter.kcenter_greedy's loop."""
    j, (xj, xsqj, xnj), m, prune, exact = arg
    x, d2, assign, xsq, xn = (state[f"_kc_{k}"] for k in ("x", "d2", "assign", "xsq", "xn"))
    allc, allsq = state["_kc_allc"], state["_kc_allsq"]
    n = x.shape[0]
    allc[m], allsq[m] = xj, xsqj
    if n == 0:
        return _kc_best(state)
    kind = np.dtype(np.float64) if exact else x.dtype  # the products' dtype, as in kcenter_greedy
    xj = xj.astype(kind)
    margin = 4.0 * (1.0 + _kc._MARGIN[kind])
    if prune and state["_kc_untested"] == 0:
        gap = xn - xnj
        keep = gap * gap < d2
        if m > 0:
            cd2 = allsq[:m] + xsqj - 2.0 * _kc._matvec(allc, slice(0, m), xj, exact)
            keep &= cd2[assign] <= margin * d2
        rows = np.flatnonzero(keep)
        dense = rows.shape[0] > _kc._GATHER_BELOW * n
        state["_kc_untested"] = _kc._RETEST_AFTER if dense else 0
    else:
        rows, dense = None, True
        state["_kc_untested"] = max(state["_kc_untested"] - 1, 0)
    if dense:
        for start in range(0, n, _kc._DENSE_ROWS):
            rs = slice(start, start + _kc._DENSE_ROWS)
            new = xsq[rs] + xsqj - 2.0 * _kc._matvec(x, rs, xj, exact)
            better = new < d2[rs]
            d2[rs] = np.where(better, np.maximum(new, 0.0), d2[rs])
            assign[rs] = np.where(better, m, assign[rs])
    else:
        for start in range(0, rows.shape[0], _kc._GATHER_ROWS):
            r = rows[start : start + _kc._GATHER_ROWS]
            new = xsq[r] + xsqj - 2.0 * _kc._matvec(x, r, xj, exact)
            better = new < d2[r]
            r = r[better]
            d2[r] = np.maximum(new[better], 0.0)
            assign[r] = m
    i = j - state["offset"]
    if 0 <= i < n:
        d2[i] = -1.0
        assign[i] = m
    return _kc_best(state)


def sharded_kcenter(
    engine: Engine,
    k: int,
    *,
    centres: np.ndarray | None = None,
    rng: np.random.Generator,
    x: str = "x",
    chunk_size: int = 1024,
    neighbors: Any = None,
    prune: bool = True,
    on_pick: Callable[[int], None] | None = None,
    exact: bool = True,
) -> np.ndarray:
    """Greedy k-center (core-set) on the shards' embeddings; global positions in pick order.

    Equal to ``kcenter_greedy(X, k, centres=centres, rng=rng, chunk_size=chunk_size, prune=prune, exact=exact)``
    on the concatenated shards (see the module docstring).

    Parameters
    ----------
    engine : Engine
        Shards holding the embeddings under the name ``x``, shape (n_s, d).
    k : int
        1 ≤ k ≤ n.
    centres : ndarray of shape (m, d) or None
        The labelled set, sent once to every shard.
    rng : numpy Generator
        Used only for the first pick when there are no centres (``rng.integers(n)``).
    chunk_size, neighbors, prune, exact
        As in :func:`pickwise.select.kcenter_greedy`; ``neighbors`` runs on every shard; float32
        shards stay float32 (with ``exact``, products in float64 blocks: the float64 picks).
    on_pick : callable, optional
        ``on_pick(t)`` after pick t is fixed (a hook for progress or fault tests).

    Returns
    -------
    ndarray of shape (k,), int64
    """
    from .._validation import check_positive_int

    infos = engine.map(_kc_init, x)
    try:
        _raise_first(infos)
        kinds = {i for i, size in zip(infos, engine.sizes) if size}
        if len(kinds) > 1:
            raise ValueError(f"the shards must agree on dtype and width (dtype, d); got {sorted(kinds)}")
        dtype, dim = next(iter(kinds)) if kinds else (infos[0][0], infos[0][1])
        n = int(sum(engine.sizes))
        k = check_batch_size(k, n, what="the number of rows")
        check_rng(rng)
        chunk_size = check_positive_int("chunk_size", chunk_size)
        c = np.empty((0, dim), dtype=dtype) if centres is None else _kc._as_float("centres", centres)
        if c.ndim != 2 or c.shape[1] != dim:
            raise ValueError(f"centres must have shape (m, {dim}); got shape {c.shape}")
        c = c.astype(dtype, copy=False)
        m0 = c.shape[0]
        best = engine.map(_kc_setup, engine.broadcast((c, k, chunk_size, neighbors, exact)))
        picks = np.empty(k, dtype=np.int64)
        with progress_bar(k, "k-center picks", unit="pick") as bar:
            for t in range(k):
                if t == 0 and m0 == 0:
                    j = int(rng.integers(n))
                    row = engine.call(_owner(engine, j), _kc_row, j)
                else:
                    s = _first_best([b[0] for b in best])
                    j, row = best[s][1], best[s][2]
                picks[t] = j
                bar.update()
                if on_pick is not None:
                    on_pick(t)
                if t == k - 1:
                    break
                best = engine.map(_kc_update, (j, row, m0 + t, prune, exact))
        return picks
    finally:
        engine.map(_drop, "_kc_")
