"""The stream loop: items arrive in an order, the model is frozen within a segment, retrained between.

``stream_segments`` is a generator of ``SegmentRecord``. Record 0 is the model trained on the
initial labels (no stream item seen); record s ≥ 1 covers the s-th window of ``segment`` stream
items: the selector decides on each item, for good, with the model trained after window s − 1;
the queried items are labelled; the model is retrained from scratch on ALL labels (initial and
every window so far) and evaluated. A shortfall is never filled from outside the window.

Protocols (``protocol``), named for what they do:

* ``"official"`` (the default; the VeSSAL authors' code in its ``--single_pass`` mode): a fresh
  selector for every window — state (VeSSAL's Σ̂⁻¹ and A_t) and counters reset — with its own budget
  k_s. With ``budget`` B the windows share it in proportion to their length,
  k_s = ⌊B·e_s/L⌋ − ⌊B·b_s/L⌋ (window s holds stream positions b_s .. e_s of L; equal windows get
  B/#windows each), and within the window the rate is adaptive, (k_s − queried)/(items left in the
  window), which starts at k_s / window — the authors' ``ideal_rate`` per round. Without ``budget``
  each window's fresh selector runs at its own fixed rate q.
* ``"rescan"`` (the default mode of the authors' run.py, as their README runs it: without
  ``--single_pass``): round s scans EVERY stream item still unlabelled, in arrival order (sorted by
  the first principal component for "pc"), with a fresh selector and the round's budget k_s (the
  shares of "official"), so the rate is k_s / (unlabelled items), about k / N; items passed over come
  back in the next round. ``segment`` only sets the number of rounds, ⌈stream / segment⌉. Unlike the
  authors' code (``fill_random``), a shortfall is not filled with random items: the record shows it.
  Not a single pass over a stream: use it to compare with the paper's numbers.
* ``"global"`` (pickwise's reading of the single-stream algorithm): one selector carried across
  the retrains (A_t over all items seen, Σ̂⁻¹ over every label chosen) spending one budget over
  the whole stream at the adaptive rate (B − queried)/(stream items left). ``reset_selector``
  restarts it every window with the remaining budget over the remaining stream.

Every record holds the realised rate (``rate`` = queries / window) and the target rate of its window
(``target_rate``: the selector's rate for the window's first item — k_s / window under "official",
(B − queried)/(stream left) under "global" with a budget, q with a fixed rate) and the ``protocol``.

Reproducibility. Every random choice derives from ``seed`` (``pickwise.utils.derive_rng``):
the i.i.d. order (key 0), the initial labels (key 1), the fit seed after window s ≥ 1 (key 2, s), the
selector's uniforms in window s (key 3, s), the stop set (key 4: up to 1000 stream items, predicted by
every segment's model for the stopping rule of :mod:`pickwise.stopping`). The model of record 0 is fitted with the seed that
``pool_rounds`` gives its round 0 (``derive_seed(seed, 0, 0)``), so on the same initial labels a pool run
and a stream run of one seed start from the same model. The selector passed in is a template: the loop works on
``selector.clone(...)`` and never mutates it.

Resume. ``resume`` takes the records already produced (a list, or a JSON Lines path as written by
``save_segments``). The labels are rebuilt from them; the selector's state at the end of the last
recorded window is taken from ``checkpoint`` (an ``.npz`` the loop rewrites atomically after every
window) when it matches that window, else replayed: the models of the recorded windows are refit
(deterministically, from the same seeds) and the selector is fed the same items and uniforms, and the
replayed queries must equal the recorded ones (``ValueError`` otherwise: data or settings differ).
Either way the later records equal those of an uninterrupted run (timings aside). Under "official"
(and with ``reset_selector``) the next window's selector is fresh: no checkpoint and no replay. Records
of another protocol are refused (records written before ``protocol`` existed count as "global").
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..pool import Pool
from ..protocols import check_capabilities
from ..utils import chunks, derive_rng, derive_seed, n_items, take
from ._base import rate_at
from ._resume import restore, save_checkpoint
from .order import stream_order

__all__ = ["SegmentRecord", "stream_segments", "save_segments", "load_segments", "PROTOCOLS"]

#: the stream protocols of ``stream_segments`` (see the module doc)
PROTOCOLS = ("official", "global", "rescan")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class SegmentRecord:
    """What happened in one stream segment (segment 0: the initial training, no stream item).

    Attributes
    ----------
    segment : int
    items_seen : int
        Stream items seen so far, this window included.
    window : int
        Items in this window.
    queries : int
        Items queried in this window.
    n_labels : int
        Labels after this window, the initial ones included.
    rate : float
        Realised query rate in this window, queries / window (0.0 for segment 0).
    metrics : dict
        ``evaluate(model)`` for the model trained after this window ({} without ``evaluate``).
    fit_seconds, embed_seconds, select_seconds : float
        Training after the window; computing z for the window; the selector's decisions.
    queried : tuple of int
        Absolute indices queried in this window, in arrival order.
    stop_kappa : float or None
        Cohen's kappa between the predictions of this segment's model and the previous one's on the
        run's stop set (:mod:`pickwise.stopping`; None for segment 0, or a model without predictions).
    stop_reached : int or None
        The first segment at which the stabilising-predictions rule fired (None until it has).
        Records written before these two fields existed read back with None.
    target_rate : float or None
        The rate the selector aimed at for this window: its rate for the window's first item
        (None for segment 0, and for records written before the field existed).
    protocol : str or None
        "official", "global" or "rescan" (see the module doc); None in records written before it
        existed (those were "global"). Under "rescan" ``window`` is the number of items the round
        scanned and ``items_seen`` the total scanned so far.
    """

    segment: int
    items_seen: int
    window: int
    queries: int
    n_labels: int
    rate: float
    metrics: dict
    fit_seconds: float
    embed_seconds: float
    select_seconds: float
    queried: tuple[int, ...]
    stop_kappa: float | None = None
    stop_reached: int | None = None
    target_rate: float | None = None
    protocol: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps`` works on it)."""
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SegmentRecord:
        optional = ("stop_kappa", "stop_reached", "target_rate", "protocol")
        names = [f.name for f in fields(cls) if f.name not in optional or f.name in d]
        missing = [k for k in names if k not in d]
        if missing:
            raise ValueError(f"a segment record needs {missing}; got keys {sorted(d)}")
        kw = {k: d[k] for k in names}
        kw["queried"] = tuple(int(i) for i in kw["queried"])
        kw["metrics"] = dict(kw["metrics"])
        for k in ("segment", "items_seen", "window", "queries", "n_labels"):
            kw[k] = int(kw[k])
        for k in ("rate", "fit_seconds", "embed_seconds", "select_seconds"):
            kw[k] = float(kw[k])
        if kw.get("target_rate") is not None:
            kw["target_rate"] = float(kw["target_rate"])
        return cls(**kw)

    def outcome(self) -> dict[str, Any]:
        """``to_dict()`` without the timings: what must be equal between reruns."""
        d = self.to_dict()
        for k in ("fit_seconds", "embed_seconds", "select_seconds"):
            d.pop(k)
        return d


def save_segments(records: Iterable[SegmentRecord], path: str | os.PathLike, *, append: bool = False) -> None:
    """Write records as JSON Lines (one ``to_dict()`` per line)."""
    from ..records import RecordWriter

    path = Path(path)
    with RecordWriter(path) as w:  # holds the records' lock: a second writer process is refused
        if not append and path.exists():
            os.truncate(path, 0)
        for r in records:
            w.write(r.to_dict())


def load_segments(path: str | os.PathLike) -> list[SegmentRecord]:
    """Read records written by ``save_segments``; a truncated last line (a crash mid-write) is dropped."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(SegmentRecord.from_dict(json.loads(line)))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not a JSON record") from None
    return out


# -- the loop ---------------------------------------------------------------------------------------


def _oracle(y_oracle: Any, n: int) -> Callable[[np.ndarray], np.ndarray]:
    """Labels by absolute index, checked (:func:`pickwise.oracle.check_answer`): a label of 0.7 is an
    error, never truncated to 0."""
    from ..oracle import check_answer

    if callable(y_oracle):
        return lambda idx: check_answer(y_oracle(idx), idx)
    y = np.asarray(y_oracle)
    if y.shape != (n,):
        raise ValueError(f"y_oracle must be a callable or labels of shape ({n},); got shape {y.shape}")
    check_answer(y, np.arange(n))
    return lambda idx: y[idx].astype(np.int64)


def _initial(initial: Any, n: int, seed: int) -> np.ndarray:
    if isinstance(initial, (int, np.integer)) and not isinstance(initial, bool):
        k = check_positive_int("initial", initial)
        if k >= n:
            raise ValueError(f"initial={k} leaves no stream: the data has {n} items")
        return np.sort(derive_rng(seed, 1).choice(n, size=k, replace=False)).astype(np.int64)
    idx = np.asarray(initial)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError(f"initial must be a count >= 1 or a non-empty 1-D array of indices; got {initial!r:.80}")
    if idx.min() < 0 or idx.max() >= n or np.unique(idx).size != idx.size:
        raise ValueError(f"initial indices must be distinct and in 0 .. {n - 1}")
    return np.sort(idx).astype(np.int64)


def fit_seed(seed: int, s: int) -> int:
    """The fit seed after window ``s``; window 0 uses the pool loop's round-0 seed (same first model)."""
    return derive_seed(seed, 0, 0) if s == 0 else derive_seed(seed, 2, s)


@dataclass
class _Run:
    """Everything fixed for one run; the generator below walks its segments."""

    make_model: Callable[[], Any]
    template: Any
    x: Any
    oracle: Callable[[np.ndarray], np.ndarray]
    stream: np.ndarray
    initial: np.ndarray
    segment: int
    budget: int | None
    evaluate: Callable[[Any], Mapping[str, Any]] | None
    seed: int
    reset_selector: bool
    protocol: str
    chunk_size: int
    checkpoint: Path | None
    progress: bool
    fingerprint: str

    @property
    def n_segments(self) -> int:
        return math.ceil(self.stream.shape[0] / self.segment)

    def window(self, s: int) -> np.ndarray:
        return self.stream[(s - 1) * self.segment : s * self.segment]

    @property
    def fresh_each_window(self) -> bool:
        """Whether every window starts with a fresh selector (no state carried, no checkpoint)."""
        return self.protocol in ("official", "rescan") or self.reset_selector

    def window_budget(self, s: int) -> int:
        """k_s, window ``s``'s share of the budget under "official": ⌊B·e_s/L⌋ − ⌊B·b_s/L⌋."""
        assert self.budget is not None
        length = self.stream.shape[0]
        start, stop = (s - 1) * self.segment, min(s * self.segment, length)
        return self.budget * stop // length - self.budget * start // length

    def selector(self, seen: int, used: int) -> Any:
        """A fresh "global" selector for the stream from position ``seen`` with ``used`` stream queries made."""
        if self.budget is None:
            return self.template.clone()
        return self.template.clone(q=None, budget=self.budget - used, length=self.stream.shape[0] - seen)

    def items(self, s: int, labeled: np.ndarray) -> np.ndarray:
        """The stream items decided on in round ``s``: its window, or under "rescan" every stream item
        not in ``labeled``, in arrival order."""
        if self.protocol == "rescan":
            return self.stream[~np.isin(self.stream, labeled)]
        return self.window(s)

    def fresh(self, s: int, used: int, n_scan: int | None = None) -> Any:
        """The selector that starts window ``s`` afresh, ``used`` stream queries made before it
        (``n_scan``: the items round ``s`` scans under "rescan")."""
        if self.protocol == "global":
            return self.selector((s - 1) * self.segment, used)
        if self.budget is None:
            return self.template.clone()
        length = self.window(s).shape[0] if n_scan is None else n_scan
        return self.template.clone(q=None, budget=min(self.window_budget(s), length), length=length)

    def fit(self, pool: Pool, s: int) -> tuple[Any, float]:
        model = self.make_model()
        lab = pool.labeled
        start = time.perf_counter()
        fitted = model.fit(take(self.x, lab), pool.labels[lab], seed=fit_seed(self.seed, s))
        return (model if fitted is None else fitted), time.perf_counter() - start

    def decide(self, selector: Any, model: Any, s: int, window: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
        window = self.window(s) if window is None else window
        rng = derive_rng(self.seed, 3, s)
        parts, embed_s, select_s = [], 0.0, 0.0
        for sl in chunks(window.shape[0], self.chunk_size):
            t0 = time.perf_counter()
            z = selector.featurize(model, take(self.x, window[sl]))
            t1 = time.perf_counter()
            parts.append(np.asarray(selector.observe_many(z, rng=rng), dtype=bool))
            embed_s += t1 - t0
            select_s += time.perf_counter() - t1
        return window[np.concatenate(parts)] if parts else window[:0], embed_s, select_s

    def metrics(self, model: Any) -> dict:
        return {} if self.evaluate is None else _jsonable(dict(self.evaluate(model)))

    def check_protocol(self, done: list[SegmentRecord]) -> None:
        """Refuse records of another protocol (records without the field were "global")."""
        for r in done:
            theirs = r.protocol or "global"
            if theirs != self.protocol:
                raise ValueError(
                    f"resume: segment {r.segment} was recorded under protocol={theirs!r}, this run has "
                    f"protocol={self.protocol!r}; records of two protocols cannot be mixed"
                )

    def initial_pool(self) -> Pool:
        return Pool.empty(n_items(self.x)).label(self.initial, self.oracle(self.initial), round=0)


def target_rate(selector: Any) -> float | None:
    """The selector's rate for its next item (None for a selector without ``q``/``budget``/``length``)."""
    try:
        q, budget, length, t, nq = (selector.q, selector.budget, selector.length, selector.t, selector.n_queried)
    except AttributeError:
        return None
    if q is None and (budget is None or length is None):
        return None
    return float(rate_at(q, budget, length, t + 1, nq))


def _resume_records(resume: Any) -> list[SegmentRecord]:
    if resume is None:
        return []
    records = load_segments(resume) if isinstance(resume, (str, os.PathLike)) else list(resume)
    for i, r in enumerate(records):
        if not isinstance(r, SegmentRecord):
            r = SegmentRecord.from_dict(r)
            records[i] = r
        if r.segment != i:
            raise ValueError(f"resume records must be segments 0, 1, 2, ... in order; record {i} is segment {r.segment}")
    return records


def stream_segments(
    make_model: Callable[[], Any],
    selector: Any,
    x: Any,
    y_oracle: Any,
    *,
    order: str | np.ndarray = "iid",
    segment: int,
    initial: int | np.ndarray = 100,
    budget: int | None = None,
    evaluate: Callable[[Any], Mapping[str, Any]] | None = None,
    seed: int = 0,
    protocol: str = "official",
    reset_selector: bool = False,
    chunk_size: int = 1024,
    resume: Iterable[SegmentRecord] | str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
) -> Iterator[SegmentRecord]:
    """Simulate a stream over ``x`` and yield one ``SegmentRecord`` per segment (see the module doc).

    Parameters
    ----------
    make_model : callable
        Builds an untrained classifier (``fit(x, y, *, seed)``, ``predict_proba``, plus what the
        selector ``needs``: ``grad_factors`` for VeSSAL, ``embed`` for "pen").
    selector : a pickwise stream selector (``VeSSAL``, ``StreamUniform``, ``StreamUncertainty``)
        A template, cloned by the loop; it needs ``clone``, ``featurize`` and ``needs``.
    x : array-like indexable by integer arrays
    y_oracle : labels of shape (n,) or a callable indices → labels
    order : "iid", "pc" (first principal component), "class", or a permutation of range(n)
    segment : int
        Window size w: the model is frozen for w stream items, then retrained on all labels.
    initial : int or array of indices
        Initial labels (a seeded random sample of that many, or these indices); they are not
        part of the stream.
    budget : int, optional
        Total labels to take from the stream. Under "official" each window gets its share k_s
        (proportional to its length) at the adaptive rate within the window; under "global" the
        selector runs at the adaptive rate (budget − queried)/(stream items left). Without it the
        selector's own rate applies.
    evaluate : callable model → dict, optional
    seed : int
    protocol : {"official", "global", "rescan"}
        "official" (default; the VeSSAL authors' code with ``--single_pass``): a fresh selector and
        budget k_s every window. "global": one selector carried across the retrains and one budget
        over the stream (pickwise's carried-state variant). "rescan" (the authors' default mode):
        every round scans all unlabelled stream items with a fresh selector and budget k_s. See the
        module doc.
    reset_selector : bool
        Only with "global": a fresh selector every window (state reset), with the remaining budget
        over the remaining stream when ``budget`` is given. False: one selector sees the whole
        stream, A_t over all items seen. No effect under "official" (always fresh).
    chunk_size : int
        Items embedded and decided at a time within a window.
    resume : list of SegmentRecord or path to JSON Lines, optional
    checkpoint : path, optional
        ``.npz`` holding the selector's state after the latest window (rewritten atomically).
    progress : bool
        Show a progress bar over segments (stderr).
    """
    segment = check_positive_int("segment", segment)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    seed = check_positive_int("seed", seed, allow_zero=True)
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if budget is not None:
        budget = check_positive_int("budget", budget, allow_zero=True)
    for attr in ("clone", "featurize", "observe_many", "state_dict", "load_state_dict"):
        if not hasattr(selector, attr):
            raise TypeError(f"{type(selector).__name__} lacks {attr}(); use a pickwise stream selector")
    if budget is None and getattr(selector, "q", None) is None and getattr(selector, "budget", None) is None:
        raise ValueError(f"{selector!r} has no rate: give it q (or budget and length), or pass budget= here")
    if protocol in ("official", "rescan") and budget is None and getattr(selector, "q", None) is None:
        raise ValueError(
            f"protocol={protocol!r} restarts {selector!r} every window, and its budget/length span one stream: "
            "pass budget= here (shared out over the windows) or give the selector a fixed rate q"
        )
    n = n_items(x)
    oracle = _oracle(y_oracle, n)
    init = _initial(initial, n, seed)
    arrival = stream_order(order, x, oracle, rng=derive_rng(seed, 0))
    stream = arrival[~np.isin(arrival, init)]
    order_name = order if isinstance(order, str) else "explicit"
    identity = [n, stream.shape[0], segment, seed, order_name, budget, reset_selector, _describe(selector)]
    if protocol != "global":  # "global" keeps the fingerprint of the checkpoints written before protocols existed
        identity.append(protocol)
    fingerprint = json.dumps(identity)
    run = _Run(make_model, selector, x, oracle, stream, init, segment, budget, evaluate, seed, bool(reset_selector),
               protocol, chunk_size, None if checkpoint is None else Path(checkpoint), bool(progress), fingerprint)
    records = _resume_records(resume)
    return _segments(run, records)


def _segments(run: _Run, done: list[SegmentRecord]) -> Iterator[SegmentRecord]:
    from ..stopping import prediction_kappa, stop_predictions, stop_round, stop_set

    run.check_protocol(done)
    pool = run.initial_pool()
    stop_idx = stop_set(run.stream, rng=derive_rng(run.seed, 4))
    kappas: list[float | None] = [r.stop_kappa for r in done]
    bar = None
    if run.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.n_segments + 1, initial=len(done), desc="segments", unit="seg")
    try:
        if not done:
            model, fit_s = run.fit(pool, 0)
            check_capabilities(run.template, model)
            preds = stop_predictions(model, run.x, stop_idx)
            kappas = [None]
            rec = SegmentRecord(0, 0, 0, 0, pool.n_labeled, 0.0, run.metrics(model), fit_s, 0.0, 0.0, (), None, None,
                                None, run.protocol)
            done = [rec]
            if bar is not None:
                bar.update(1)
            yield rec
            selector = None if run.protocol == "rescan" else run.fresh(1, 0)
        else:
            model, selector, pool = restore(run, done)
            preds = stop_predictions(model, run.x, stop_idx)
        scanned = sum(r.window for r in done[1:])
        for s in range(len(done), run.n_segments + 1):
            seen = (s - 1) * run.segment
            used = pool.n_labeled - run.initial.shape[0]
            items = run.items(s, pool.labeled)
            if run.protocol == "rescan":
                if items.shape[0] == 0:
                    break  # every stream item is labelled
                selector = run.fresh(s, used, items.shape[0])
            elif run.fresh_each_window and s > 1:
                selector = run.fresh(s, used)
            target = target_rate(selector)
            queried, embed_s, select_s = run.decide(selector, model, s, items)
            if run.checkpoint is not None and not run.fresh_each_window:
                save_checkpoint(run.checkpoint, run.fingerprint, selector, s)
            if queried.size:
                pool = pool.label(queried, run.oracle(queried), round=s)
            model, fit_s = run.fit(pool, s)
            window = items.shape[0]
            scanned += window
            prev, preds = preds, stop_predictions(model, run.x, stop_idx)
            kappas.append(prediction_kappa(prev, preds))
            rec = SegmentRecord(
                s, scanned if run.protocol == "rescan" else seen + window, window, int(queried.size), pool.n_labeled,
                queried.size / window,
                run.metrics(model), fit_s, embed_s, select_s, tuple(int(i) for i in queried),
                kappas[s], stop_round(kappas), target, run.protocol,
            )
            if bar is not None:
                bar.update(1)
            yield rec
    finally:
        if bar is not None:
            bar.close()


def _describe(selector: Any) -> str:
    """A stable description of a selector's configuration (callables by name, not address)."""
    params = selector.get_params() if hasattr(selector, "get_params") else {}
    shown = {k: (getattr(v, "__qualname__", None) or repr(v)) if callable(v) else repr(v) for k, v in params.items()}
    return f"{type(selector).__name__}{sorted(shown.items())}"
