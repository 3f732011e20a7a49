"""Resuming a stream run: labels from the records, the selector's state from a checkpoint or a replay.

``run`` is the loop's ``_Run`` (stream, windows, seeds, fit and decide); records are
``SegmentRecord``s. See ``loop`` for the guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..pool import Pool
from ..protocols import check_capabilities

__all__ = ["save_checkpoint", "load_checkpoint", "pool_from", "restore", "replay"]


def save_checkpoint(path: Path, fingerprint: str, selector: Any, segment: int) -> None:
    """Write the selector's state after ``segment`` to ``path`` (.npz) atomically."""
    arrays = {f"selector.{k}": np.asarray(v) for k, v in selector.state_dict().items()}
    arrays["segment"] = np.asarray(segment)
    arrays["fingerprint"] = np.asarray(fingerprint)
    from .._fs import atomic_write

    with atomic_write(path) as f:  # a failure leaves the old checkpoint and no temporary file
        np.savez(f, **arrays)


def load_checkpoint(path: Path, fingerprint: str, selector: Any, segment: int) -> bool:
    """Load the state saved after ``segment`` into ``selector``; False if the file holds another segment."""
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as npz:
        if str(npz["fingerprint"]) != fingerprint:
            raise ValueError(f"checkpoint {path} belongs to another run (settings or data differ)")
        if int(npz["segment"]) != segment:
            return False
        selector.load_state_dict({k[len("selector.") :]: npz[k] for k in npz.files if k.startswith("selector.")})
    return True


def pool_from(run: Any, done: list[Any]) -> Pool:
    """The pool after the recorded windows, checking that each record fits this run's stream."""
    pool = run.initial_pool()
    if done[0].n_labels != run.initial.shape[0]:
        raise ValueError(
            f"resume: record 0 has {done[0].n_labels} labels but this run starts with {run.initial.shape[0]}"
        )
    scanned = 0
    for r in done[1:]:
        window = run.items(r.segment, pool.labeled)
        scanned += window.shape[0]
        expected = scanned if run.protocol == "rescan" else (r.segment - 1) * run.segment + window.shape[0]
        if window.shape[0] == 0 or r.window != window.shape[0] or r.items_seen != expected:
            raise ValueError(f"resume: segment {r.segment} does not fit this stream (settings or data differ)")
        q = np.asarray(r.queried, dtype=np.int64)
        if not np.all(np.isin(q, window)):
            raise ValueError(f"resume: segment {r.segment} queried items outside its window")
        if q.size:
            pool = pool.label(q, run.oracle(q), round=r.segment)
    return pool


def restore(run: Any, done: list[Any]) -> tuple[Any, Any, Pool]:
    """The model for the next window, the selector as it was after the last recorded window, the pool."""
    pool = pool_from(run, done)  # validates the records
    last = done[-1].segment
    if last >= run.n_segments:
        return None, None, pool
    if run.protocol == "rescan":
        selector = None  # the loop builds each round's selector for the items it scans
    elif run.fresh_each_window:
        selector = run.fresh(last + 1, pool.n_labeled - run.initial.shape[0])
    else:
        selector = run.selector(0, 0)
        found = run.checkpoint is not None and load_checkpoint(run.checkpoint, run.fingerprint, selector, last)
        if last > 0 and not found:
            replay(run, done, selector)
    model, _ = run.fit(pool, last)
    check_capabilities(run.template, model)
    return model, selector, pool


def replay(run: Any, done: list[Any], selector: Any) -> None:
    """Feed ``selector`` the recorded windows again, with the models and uniforms of the original run."""
    pool = run.initial_pool()
    for r in done[1:]:
        model, _ = run.fit(pool, r.segment - 1)
        queried, _, _ = run.decide(selector, model, r.segment)
        if tuple(int(i) for i in queried) != r.queried:
            raise ValueError(
                f"resume: replaying segment {r.segment} queried {queried.size} items, the record says "
                f"{len(r.queried)} (first ones {queried[:5].tolist()} vs {list(r.queried[:5])}); "
                "the data, model or settings differ from the recorded run"
            )
        if queried.size:
            pool = pool.label(queried, run.oracle(queried), round=r.segment)
