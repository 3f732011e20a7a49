"""The pool loop: fit, evaluate, select, ask the oracle, label — as a generator of round records."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import __version__
from ._validation import check_positive_int
from .oracle import as_oracle
from .pool import Pool
from .protocols import check_capabilities
from .records import RecordWriter, RoundRecord, read_jsonl
from .training import fit_labeled
from .utils import derive_rng, derive_seed, n_items

Evaluate = Callable[[Any], dict[str, float]]


def _strategy_name(strategy: Any) -> str:
    return str(getattr(strategy, "name", type(strategy).__name__))


def _header(strategy: Any, pool: Pool, k: int, seed: int, rounds: int | None) -> dict[str, Any]:
    return {
        "type": "header",
        "pickwise": __version__,
        "strategy": _strategy_name(strategy),
        "strategy_repr": repr(strategy),
        "k": k,
        "seed": seed,
        "rounds": rounds,
        "n": len(pool),
        "initial": pool.labeled.tolist(),
        "initial_labels": pool.labels[pool.labeled].tolist(),
    }


_CHECKED_KEYS = ("config", "strategy_repr", "trainer_repr", "k", "seed", "n", "initial", "initial_labels")


def pool_rounds(
    make_model: Callable[[], Any],
    strategy: Any,
    x: Any,
    pool: Pool,
    oracle: Any,
    *,
    k: int,
    seed: int = 0,
    evaluate: Evaluate | None = None,
    rounds: int | None = None,
    records: str | os.PathLike[str] | None = None,
    trainer: Callable[..., dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[RoundRecord]:
    """Run pool-based active learning, one :class:`RoundRecord` per round.

    Round ``r`` trains a fresh model from ``make_model()`` on the labels in the pool (seeded from
    ``(seed, r)``), evaluates it, selects ``k`` items with a generator seeded from ``(seed, r)``,
    asks ``oracle`` (a callable, or an array of labels to simulate one) and labels them.
    With ``rounds`` given, round ``rounds`` evaluates but selects nothing, and the loop ends;
    otherwise it ends when the pool is exhausted, or when the caller stops iterating.

    ``trainer``: how each round's model is trained (default :func:`pickwise.training.fit_labeled`;
    see :mod:`pickwise.training` for pseudo-labelling and the joint entropy objective).

    ``records``: a JSON Lines path written as rounds finish. If it already holds rounds of the same
    run (same strategy, k, seed and initial labels), they are yielded again without recomputation
    and the run continues where it stopped, with the same results as an uninterrupted run.
    ``config`` (JSON-serialisable: model and data settings) is stored in the header and must match
    on resume too, so a rerun with other settings never continues the wrong run.
    """
    k = check_positive_int("k", k)
    if rounds is not None:
        rounds = check_positive_int("rounds", rounds, allow_zero=True)
    if n_items(x) != len(pool):
        raise ValueError(f"x has {n_items(x)} items but the pool has {len(pool)}")
    if pool.n_labeled == 0:
        raise ValueError("the pool has no labelled items; label an initial set first (Pool.label)")
    oracle = as_oracle(oracle, n_classes=pool.n_classes)
    writer = RecordWriter(records) if records is not None else None
    trainer = trainer if trainer is not None else fit_labeled
    header = _header(strategy, pool, k, seed, rounds)
    header["trainer_repr"] = repr(trainer) if trainer is not fit_labeled else "fit_labeled"
    header["config"] = json.loads(json.dumps(config or {}, sort_keys=True))

    done: list[RoundRecord] = []
    if writer is not None:
        rows = read_jsonl(writer.path, repair=True)
        if rows:
            old = next((r for r in rows if r.get("type") == "header"), None)
            if old is None or any(old.get(key) != header[key] for key in _CHECKED_KEYS):
                diff = [key for key in _CHECKED_KEYS if old is None or old.get(key) != header[key]]
                raise ValueError(
                    f"{writer.path} holds records of a different run (differs in {', '.join(diff)}); "
                    "choose another path or delete it"
                )
            done = [RoundRecord.from_dict(r) for r in rows if r.get("type") == "round"]
        else:
            writer.write(header)

    for rec in done:
        if rec.selected:
            pool = pool.label(rec.selected, rec.labels, round=rec.round + 1)
        yield rec
    if done and done[-1].strategy_state is not None and hasattr(strategy, "load_state_dict"):
        strategy.load_state_dict(done[-1].strategy_state)
    if done and (not done[-1].selected or (rounds is not None and done[-1].round >= rounds)):
        return

    r = done[-1].round + 1 if done else 0
    checked = False
    while True:
        t0 = time.perf_counter()
        model = make_model()
        if not checked:
            check_capabilities(strategy, model)
            checked = True
        info = trainer(model, x, pool, seed=derive_seed(seed, r, 0), round=r) or {}
        fit_s = time.perf_counter() - t0
        metrics = dict(evaluate(model)) if evaluate is not None else {}
        if r > 0 and hasattr(strategy, "observe_labels"):
            prev = pool.labeled_in(r)
            strategy.observe_labels(model, x, prev, pool.labels[prev])

        final = (rounds is not None and r >= rounds) or pool.n_unlabeled == 0
        t1 = time.perf_counter()
        if final:
            selected = np.empty(0, dtype=np.int64)
            labels = np.empty(0, dtype=np.int64)
        else:
            batch = min(k, pool.n_unlabeled)
            selected = np.asarray(strategy.select(model, x, pool, batch, rng=derive_rng(seed, r, 1)), dtype=np.int64)
        select_s = time.perf_counter() - t1
        if not final:
            labels = np.asarray(oracle(selected), dtype=np.int64)
        n_scored = int(getattr(strategy, "last_n_scored", pool.n_unlabeled)) if not final else 0
        state = strategy.state_dict() if hasattr(strategy, "state_dict") else None
        rec = RoundRecord(
            round=r,
            n_labeled=pool.n_labeled,
            metrics={key: float(v) for key, v in metrics.items()},
            selected=selected.tolist(),
            labels=labels.tolist(),
            fit_seconds=fit_s,
            select_seconds=select_s,
            n_scored=n_scored,
            strategy=_strategy_name(strategy),
            strategy_state=state,
            extra=dict(info),
        )
        if writer is not None:
            writer.write(rec.to_dict())
        yield rec
        if final:
            return
        pool = pool.label(selected, labels, round=r + 1)
        r += 1


def replay_pool(initial: Pool, records: list[RoundRecord]) -> Pool:
    """The pool after the rounds in ``records``, starting from ``initial``."""
    pool = initial
    for rec in records:
        if rec.selected:
            pool = pool.label(rec.selected, rec.labels, round=rec.round + 1)
    return pool


def initial_pool(
    n: int, n_initial: int, y: Any, *, seed: int, n_classes: int | None = None, stratified: bool = False
) -> Pool:
    """A pool with ``n_initial`` random items labelled from ``y`` (seeded; optionally one per class first)."""
    n_initial = check_positive_int("n_initial", n_initial)
    if n_initial > n:
        raise ValueError(f"n_initial={n_initial} exceeds the pool size {n}")
    rng = derive_rng(seed, 2**20)
    y = np.asarray(y)
    if stratified:
        classes = np.unique(y)
        first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])[: n_initial]
        rest = np.setdiff1d(np.arange(n), first)
        idx = np.concatenate([first, rng.choice(rest, n_initial - len(first), replace=False)])
    else:
        idx = rng.choice(n, n_initial, replace=False)
    idx = np.sort(idx)
    return Pool.empty(n, n_classes=n_classes).label(idx, y[idx])
