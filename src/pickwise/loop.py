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
from .oracle import as_oracle, check_answer
from .pool import Pool
from .protocols import check_capabilities
from .records import RecordWriter, RoundRecord, read_jsonl
from .stopping import STOP_SET_SIZE, prediction_kappa, stop_predictions, stop_round, stop_set
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


#: what must match for a records file to continue: every setting that changes the results
#: (``rounds`` is not one: a rerun with more rounds extends the run, with fewer it stops earlier)
#: (``initial_strategy``: the strategy of round 0 of a run from no labels, None otherwise — as in
#: headers written before it existed)
_CHECKED_KEYS = ("config", "strategy_repr", "trainer_repr", "k", "seed", "n", "initial", "initial_labels",
                 "initial_strategy")


def model_free(strategy: Any) -> bool:
    """Whether ``strategy`` selects without a trained model: it declares ``needs`` and needs nothing
    (random, typiclust, probcover on raw features). Such a strategy is called with ``model=None``."""
    return hasattr(strategy, "needs") and not tuple(strategy.needs)


def cold_start_strategy(strategy: Any, initial_strategy: Any = None) -> Any:
    """The strategy to make the first selection of a run from no labels (what ``pickwise run
    --initial 0`` passes as :func:`pool_rounds`'s ``initial_strategy``): ``initial_strategy`` when
    given (it must be :func:`model_free`), else ``strategy`` itself when it is model-free, else
    :class:`~pickwise.strategies.Random`."""
    if initial_strategy is not None:
        if not model_free(initial_strategy):
            raise ValueError(
                f"initial strategy {_strategy_name(initial_strategy)!r} needs a trained model "
                f"(needs {', '.join(t.__name__ for t in getattr(initial_strategy, 'needs', ())) or 'undeclared'}); "
                "with no labels use one that needs none: random, typiclust, probcover")
        return initial_strategy
    if model_free(strategy):
        return strategy
    from .strategies import Random

    return Random()


def _run_header(strategy: Any, pool: Pool, k: int, seed: int, rounds: int | None, trainer: Any,
                config: dict[str, Any] | None, initial_strategy: Any = None) -> dict[str, Any]:
    header = _header(strategy, pool, k, seed, rounds)
    header["trainer_repr"] = repr(trainer) if trainer is not None and trainer is not fit_labeled else "fit_labeled"
    header["config"] = json.loads(json.dumps(config or {}, sort_keys=True))
    header["initial_strategy"] = repr(initial_strategy) if pool.n_labeled == 0 else None
    return header


def run_identity(strategy: Any, pool: Pool, *, k: int, seed: int = 0, trainer: Any = None,
                 config: dict[str, Any] | None = None, initial_strategy: Any = None) -> dict[str, Any]:
    """What identifies a run of :func:`pool_rounds` in its records' header (the settings that change
    its results, ``rounds`` aside), as JSON-ready values: equal identities resume one another."""
    header = _run_header(strategy, pool, k, seed, None, trainer, config, initial_strategy)
    return {key: header[key] for key in _CHECKED_KEYS}


def records_differ(path: str | os.PathLike[str], identity: dict[str, Any]) -> list[str]:
    """The keys of ``identity`` (from :func:`run_identity`) in which the run recorded at ``path``
    differs; ``[]`` when the file is missing or empty, or holds this very run (so it resumes)."""
    rows = read_jsonl(path)
    if not rows:
        return []
    old = next((r for r in rows if r.get("type") == "header"), None)
    return [key for key in identity if old is None or old.get(key) != identity[key]]


def _rewrite(path: os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Replace the records file with ``rows`` atomically (the format of :class:`RecordWriter`)."""
    from pathlib import Path

    from ._fs import atomic_write

    with atomic_write(Path(path), "w", encoding="utf-8") as f:  # fsynced and replaced; a failure leaves no .part
        f.writelines(json.dumps(row, sort_keys=True, allow_nan=True) + "\n" for row in rows)


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
    initial_strategy: Any = None,
    stop_set_size: int = STOP_SET_SIZE,
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
    on resume too, so a rerun with other settings never continues the wrong run (``ValueError``
    naming what differs; :func:`records_differ` tells beforehand). ``rounds`` may differ: a finished
    run rerun with more rounds is extended (its last round, which selected nothing, is redone with
    a selection and the header's ``rounds`` updated), and one rerun with fewer yields only rounds
    0 .. ``rounds``.

    A callable ``oracle`` must answer integer class ids, one per index (integral floats such as
    3.0 are accepted); 0.7, NaN, a negative label or a wrong count raise ``ValueError``
    (:func:`pickwise.oracle.check_answer`).

    Cold start. A ``pool`` with no labels starts with a round 0 that has no model: nothing is
    trained or evaluated (``metrics`` is empty, ``n_labeled`` 0) and the first ``k`` items are chosen
    by ``initial_strategy``, which must be given then and need no model (:func:`model_free`: Random,
    TypiClust, ProbCover — called with ``model=None`` on the raw rows of ``x`` or their ``features=``
    embedding; :func:`cold_start_strategy` picks the usual one); round 1 trains on those ``k`` labels
    and ``strategy`` takes over. Without ``initial_strategy`` an empty pool is an error (a forgotten
    initial set is never silently cold-started). ``initial_strategy`` is unused when the pool has labels
    (to choose the initial labels with a strategy, see :func:`initial_pool`'s ``strategy``).

    Stopping. Every round's model predicts a stop set of ``stop_set_size`` items (seeded, drawn from
    the items unlabelled at the start; 0: none) and the record reports ``stop_kappa`` and
    ``stop_reached`` (:mod:`pickwise.stopping`: stabilising predictions, Bloodgood & Vijay-Shanker
    2009). They only report; the run goes on.
    """
    k = check_positive_int("k", k)
    if rounds is not None:
        rounds = check_positive_int("rounds", rounds, allow_zero=True)
    if n_items(x) != len(pool):
        raise ValueError(f"x has {n_items(x)} items but the pool has {len(pool)}")
    stop_set_size = check_positive_int("stop_set_size", stop_set_size, allow_zero=True)
    cold = None
    if pool.n_labeled == 0:
        if initial_strategy is None:
            raise ValueError("the pool has no labelled items; label an initial set first (Pool.label, initial_pool), "
                             "or pass initial_strategy= (say Random() or TypiClust()) to choose the first k items "
                             "without a model")
        cold = cold_start_strategy(strategy, initial_strategy)
    oracle = as_oracle(oracle, n_classes=pool.n_classes)
    writer = RecordWriter(records) if records is not None else None
    trainer = trainer if trainer is not None else fit_labeled
    header = _run_header(strategy, pool, k, seed, rounds, trainer, config, initial_strategy)
    stop_idx = stop_set(pool.unlabeled, rng=derive_rng(seed, 2**21), size=stop_set_size)

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
            if done and _extends(done, rounds, len(pool) - pool.n_labeled):
                # the run ended at its last round, which selected nothing; more rounds are asked
                # for now: redo that round (same seeds: same model) with a selection
                done = done[:-1]
            if old.get("rounds") != rounds and (not done or _continues(done, rounds)):
                _rewrite(writer.path, [{**old, "rounds": rounds}, *(r.to_dict() for r in done)])
        else:
            writer.write(header)

    for rec in done:
        if rounds is not None and rec.round > rounds:
            return  # a rerun with fewer rounds: the rounds asked for, no more
        if rec.selected:
            pool = pool.label(rec.selected, rec.labels, round=rec.round + 1)
        yield rec
    if done and done[-1].strategy_state is not None and hasattr(strategy, "load_state_dict"):
        strategy.load_state_dict(done[-1].strategy_state)
    if done and not _continues(done, rounds):
        return

    r = done[-1].round + 1 if done else 0
    kappas: list[float | None] = [rec.stop_kappa for rec in done]
    prev_preds = np.asarray(done[-1].stop_predictions) if done and done[-1].stop_predictions is not None else None
    checked = False
    while True:
        t0 = time.perf_counter()
        if pool.n_labeled == 0:  # a cold start: no labels, no model
            model, info, metrics = None, {}, {}
        else:
            model = make_model()
            if not checked:
                check_capabilities(strategy, model)
                checked = True
            info = trainer(model, x, pool, seed=derive_seed(seed, r, 0), round=r) or {}
        fit_s = time.perf_counter() - t0
        if model is not None:
            metrics = dict(evaluate(model)) if evaluate is not None else {}
        preds = stop_predictions(model, x, stop_idx)
        kappas.append(prediction_kappa(prev_preds, preds))
        prev_preds = preds
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
            chooser = strategy if model is not None else cold
            selected = np.asarray(chooser.select(model, x, pool, batch, rng=derive_rng(seed, r, 1)), dtype=np.int64)
            if model is None:
                info = {"initial_strategy": _strategy_name(cold)}
        select_s = time.perf_counter() - t1
        if not final:
            labels = check_answer(oracle(selected), selected, n_classes=pool.n_classes)
        n_scored = int(getattr(strategy, "last_n_scored", pool.n_unlabeled)) if not final and model is not None else (
            0 if final else pool.n_unlabeled)
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
            stop_kappa=kappas[r],
            stop_reached=stop_round(kappas),
            stop_predictions=preds.tolist() if preds is not None else None,
        )
        if writer is not None:
            writer.write(rec.to_dict())
        yield rec
        if final:
            return
        pool = pool.label(selected, labels, round=r + 1)
        r += 1


def _continues(done: list[RoundRecord], rounds: int | None) -> bool:
    """Whether a run recorded up to ``done[-1]`` has rounds left to compute."""
    return bool(done[-1].selected) and (rounds is None or done[-1].round < rounds)


def _extends(done: list[RoundRecord], rounds: int | None, n_unlabeled_at_start: int) -> bool:
    """Whether ``done`` ends with a final round (no selection) that ``rounds`` now goes beyond while
    items are left to label."""
    last = done[-1]
    if last.selected or (rounds is not None and last.round >= rounds):
        return False
    return sum(len(r.selected) for r in done) < n_unlabeled_at_start


def replay_pool(initial: Pool, records: list[RoundRecord]) -> Pool:
    """The pool after the rounds in ``records``, starting from ``initial``."""
    pool = initial
    for rec in records:
        if rec.selected:
            pool = pool.label(rec.selected, rec.labels, round=rec.round + 1)
    return pool


def initial_pool(
    n: int, n_initial: int, y: Any, *, seed: int, n_classes: int | None = None, stratified: bool = False,
    strategy: Any = None, x: Any = None, model: Any = None,
) -> Pool:
    """A pool with ``n_initial`` items labelled from ``y``: random (seeded; optionally one per class
    first), or chosen by ``strategy``; ``n_initial = 0`` gives an empty pool (see :func:`pool_rounds`'s
    cold start).

    ``strategy`` (cold start: e.g. :class:`~pickwise.strategies.TypiClust`, :class:`~pickwise.strategies.ProbCover`):
    the initial items are ``strategy.select(model, x, Pool.empty(n), n_initial, rng=...)`` with the
    generator the random draw uses (``derive_rng(seed, 2**20)``), so they equal calling the strategy
    directly. It needs ``x`` (one row per item); ``model`` (default None, no trained model) only for a
    strategy that needs one (say TypiClust(features="embed") with a pretrained embedder).
    """
    n_initial = check_positive_int("n_initial", n_initial, allow_zero=True)
    if n_initial > n:
        raise ValueError(f"n_initial={n_initial} exceeds the pool size {n}")
    rng = derive_rng(seed, 2**20)
    y = np.asarray(y)
    empty = Pool.empty(n, n_classes=n_classes)
    if n_initial == 0:
        return empty
    if strategy is not None:
        if stratified:
            raise ValueError("give strategy= or stratified=True, not both")
        if x is None:
            raise ValueError(f"initial_pool with strategy={_strategy_name(strategy)!r} needs x (the items' rows)")
        if n_items(x) != n:
            raise ValueError(f"x has {n_items(x)} items but n={n}")
        if model is None and not model_free(strategy):
            raise ValueError(f"strategy {_strategy_name(strategy)!r} needs a trained model to choose initial labels; "
                             "pass model= or use one that needs none: random, typiclust, probcover")
        idx = np.asarray(strategy.select(model, x, empty, n_initial, rng=rng), dtype=np.int64)
        if idx.shape != (n_initial,) or np.unique(idx).size != n_initial:
            raise ValueError(f"strategy {_strategy_name(strategy)!r} returned {idx.size} items "
                             f"({np.unique(idx).size} distinct) for {n_initial} initial labels")
        idx = np.sort(idx)
        return empty.label(idx, y[idx])
    if stratified:
        classes = np.unique(y)
        first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])[: n_initial]
        rest = np.setdiff1d(np.arange(n), first)
        idx = np.concatenate([first, rng.choice(rest, n_initial - len(first), replace=False)])
    else:
        idx = rng.choice(n, n_initial, replace=False)
    idx = np.sort(idx)
    return empty.label(idx, y[idx])
