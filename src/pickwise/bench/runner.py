"""Run a grid: every cell in its own worker process, records written as they happen, reruns resume.

Layout of the output folder ``out``:

* ``runs.jsonl`` — one line per FINISHED run (config, versions, seed, per-round metrics and
  timings), appended (flushed and fsynced) by the parent process as each run finishes. A rerun
  skips every cell whose id is already there.
* ``runs/<id>.jsonl`` — the run's own records, written round by round by ``pool_rounds(records=)``
  (pool cells) or segment by segment (stream cells, with ``runs/<id>.npz`` holding the selector's
  state until the run finishes). A run killed midway continues after its last finished round, with
  the same results.
* ``failures.jsonl`` — cells that raised, with the traceback; they are retried on the next run.
* ``sessions.jsonl`` — one line per ``pickwise bench`` command (its command line and wall time),
  written by the CLI; the report shows them at the top.

Each worker process uses one torch thread (and ``OMP_NUM_THREADS=1``), so ``jobs`` processes use
``jobs`` cores. With ``jobs=1`` the cells run in the calling process, one after the other.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..records import RecordWriter, read_jsonl
from .config import Cell, Grid
from ..catalog import make_strategy, make_stream_selector

RUNS_FILE = "runs.jsonl"
FAILURES_FILE = "failures.jsonl"
RUNS_DIR = "runs"


@dataclass(frozen=True)
class GridSummary:
    total: int
    skipped: int
    finished: int
    failed: tuple[str, ...]
    wall_seconds: float
    out: Path
    errors: dict[str, str] = field(default_factory=dict)


# -- data and models, cached per process ---------------------------------------------------------

_DATA: dict[tuple[Any, ...], Any] = {}


@dataclass(frozen=True)
class _Data:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) if x.ndim > 2 else x


def load_data(dataset: str, *, max_train: int | None, max_test: int | None, model: str,
              data_root: str | None) -> _Data:
    """The pool (the first ``max_train`` training items) and the test set, cached per process."""
    key = (dataset, max_train, max_test, model == "cnn", data_root)
    if key not in _DATA:
        from ..data import load

        ds = load(dataset, root=data_root)
        if not isinstance(ds.x_train, np.ndarray):
            raise ValueError(f"dataset {dataset!r} is not numeric; the bench needs numeric features")
        keep = (lambda a: a) if model == "cnn" else _flat
        # copies, so the full arrays are freed
        x = np.array(keep(ds.x_train[:max_train]))
        x_test = np.array(keep(ds.x_test[:max_test]))
        _DATA[key] = _Data(x, ds.y_train[:max_train].copy(), x_test, ds.y_test[:max_test].copy(), ds.n_classes)
    return _DATA[key]


def _model_factory(cell: Cell, n_features: int, n_classes: int) -> Callable[[], Any]:
    """``catalog.model_factory`` plus the training settings it does not take (max_steps, early stop)."""
    from ..catalog import model_factory

    tr = cell.training
    base = model_factory(cell.model, n_features=n_features, n_classes=n_classes, hidden=tr["hidden"],
                         dropout=tr["dropout"], epochs=tr["epochs"], batch_size=tr["batch_size"], lr=tr["lr"])
    extra = {"max_steps": tr["max_steps"], "stop_at_train_accuracy": tr["stop_at_train_accuracy"]}

    def make() -> Any:
        model = base()
        for name, value in extra.items():
            if hasattr(model, name):  # torch models; scikit-learn models train to convergence
                setattr(model, name, value)
        return model

    return make


def versions() -> dict[str, str]:
    import scipy
    import sklearn

    from .. import __version__

    out = {"pickwise": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
           "scikit-learn": sklearn.__version__, "python": platform.python_version()}
    try:  # without importing torch: a worker running scikit-learn models never needs it
        from importlib.metadata import version

        out["torch"] = version("torch")
    except Exception:  # noqa: BLE001 - not installed
        out["torch"] = "absent"
    return out


# -- one cell ------------------------------------------------------------------------------------


def _pool_run(cell: Cell, data: _Data, path: Path, make_model: Callable[[], Any]) -> tuple[list[dict], int, dict]:
    from ..loop import initial_pool, pool_rounds
    from ..metrics import holdout
    from ..records import load_records

    resumed = len(load_records(path)[1]) if path.exists() else 0
    pool = initial_pool(len(data.x), cell.initial, data.y, seed=cell.seed, n_classes=data.n_classes)
    strategy = make_strategy(cell.strategy, **cell.options)
    rows = []
    for rec in pool_rounds(make_model, strategy, data.x, pool, data.y, k=cell.k, seed=cell.seed,
                           evaluate=holdout(data.x_test, data.y_test), rounds=cell.rounds, records=path,
                           config=cell.to_dict()):
        rows.append({"round": rec.round, "n_labeled": rec.n_labeled, "metrics": rec.metrics,
                     "fit_seconds": rec.fit_seconds, "select_seconds": rec.select_seconds if rec.selected else 0.0,
                     "n_selected": len(rec.selected), "n_scored": rec.n_scored})
    return rows, resumed, {"n_end": cell.initial + cell.rounds * cell.k}


def stream_segment_size(cell: Cell, n_pool: int) -> int:
    """The window: ``cell.segment``, else ⌈(pool − initial)/rounds⌉ so the stream is ``rounds`` windows."""
    return cell.segment or math.ceil((n_pool - cell.initial) / cell.rounds)


def _stream_run(cell: Cell, data: _Data, path: Path, make_model: Callable[[], Any]) -> tuple[list[dict], int, dict]:
    from ..loop import initial_pool
    from ..metrics import holdout
    from ..stream import SegmentRecord, stream_segments

    n = len(data.x)
    init = initial_pool(n, cell.initial, data.y, seed=cell.seed, n_classes=data.n_classes).labeled
    segment = stream_segment_size(cell, n)
    budget = cell.rounds * cell.k
    if budget > n - cell.initial:
        raise ValueError(f"{cell.id}: budget rounds·k = {budget} exceeds the {n - cell.initial} stream items")
    done = [SegmentRecord.from_dict(r) for r in read_jsonl(path, repair=True)]
    opts = dict(cell.options)
    selector = make_stream_selector(cell.strategy, **opts)
    gen = stream_segments(make_model, selector, data.x, data.y, order=cell.order, segment=segment, initial=init,
                          budget=budget, evaluate=holdout(data.x_test, data.y_test), seed=cell.seed,
                          reset_selector=bool(opts.get("reset_selector", False)),
                          chunk_size=int(opts.get("chunk_size", 1024)), resume=done or None,
                          checkpoint=path.with_suffix(".npz"))
    writer = RecordWriter(path)
    records = list(done)
    for rec in gen:
        writer.write(rec.to_dict())
        records.append(rec)
    # the selector's state (two D×D float64 matrices for VeSSAL) only serves an unfinished run
    path.with_suffix(".npz").unlink(missing_ok=True)
    rows = [{"round": r.segment, "n_labeled": r.n_labels, "metrics": r.metrics, "fit_seconds": r.fit_seconds,
             "select_seconds": r.embed_seconds + r.select_seconds, "embed_seconds": r.embed_seconds,
             "n_selected": r.queries, "items_seen": r.items_seen, "window": r.window} for r in records]
    return rows, len(done), {"n_end": cell.initial + budget, "segment": segment, "budget": budget}


def run_cell(cell: Cell | dict, out: str | os.PathLike, data_root: str | None = None) -> dict[str, Any]:
    """Run (or finish) one cell; returns its run record (what ``runs.jsonl`` holds)."""
    cell = cell if isinstance(cell, Cell) else Cell.from_dict(cell)
    t0 = time.perf_counter()
    runs_dir = Path(out) / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{cell.id}.jsonl"
    data = load_data(cell.dataset, max_train=cell.max_train, max_test=cell.max_test, model=cell.model,
                     data_root=data_root)
    if cell.initial + cell.rounds * cell.k > len(data.x):
        raise ValueError(f"{cell.id}: initial + rounds·k = {cell.initial + cell.rounds * cell.k} exceeds the pool "
                         f"of {len(data.x)} items")
    make_model = _model_factory(cell, int(np.prod(data.x.shape[1:])), data.n_classes)
    runner = _pool_run if cell.kind == "pool" else _stream_run
    rows, resumed, extra = runner(cell, data, path, make_model)
    return {
        "id": cell.id,
        "kind": cell.kind,
        "algorithm": cell.algorithm,
        "seed": cell.seed,
        "config": cell.to_dict(),
        "versions": versions(),
        "n_pool": int(len(data.x)),
        "n_test": int(len(data.x_test)),
        "n_classes": int(data.n_classes),
        **extra,
        "rounds": rows,
        "resumed_rounds": resumed,
        "fit_seconds": float(sum(r["fit_seconds"] for r in rows)),
        "select_seconds": float(sum(r["select_seconds"] for r in rows)),
        "wall_seconds": time.perf_counter() - t0,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "records": str(Path(RUNS_DIR) / path.name),
    }


# -- the grid ----------------------------------------------------------------------------------


def _torch_one_thread() -> int | None:
    """Set torch to one thread in this process (importing it); returns the previous count."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def _init_worker() -> None:
    """One BLAS/OpenMP/torch thread per worker process.

    The environment is enough: torch, imported later by the first torch model, reads
    ``OMP_NUM_THREADS`` then, and workers that only run scikit-learn models never import it.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def _worker(job: tuple[dict, str, str | None]) -> tuple[str, dict | None, str | None]:
    cell, out, data_root = job
    try:
        return cell["id"], run_cell(cell["config"], out, data_root), None
    except Exception:  # noqa: BLE001 - reported to the parent, which records the failure
        return cell["id"], None, traceback.format_exc()
    finally:
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


def finished_ids(out: str | os.PathLike) -> set[str]:
    return {r["id"] for r in read_jsonl(Path(out) / RUNS_FILE, repair=True)}


def load_runs(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The finished runs of a results folder (first record per id)."""
    seen: dict[str, dict] = {}
    for r in read_jsonl(Path(out) / RUNS_FILE):
        seen.setdefault(r["id"], r)
    return list(seen.values())


def _cost(cell: Cell) -> float:
    """A rough relative cost, to start the longest runs first."""
    width = 5.0 if cell.dataset in ("mnist", "fashion-mnist") else 1.0
    return (cell.rounds + 1) * width * (1.5 if cell.kind == "stream" else 1.0) + cell.k / 1000


def run_grid(
    grid: Grid | Iterable[Cell],
    out: str | os.PathLike,
    *,
    jobs: int | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> GridSummary:
    """Run every cell of ``grid`` not yet in ``out/runs.jsonl``; see the module doc."""
    t0 = time.perf_counter()
    cells = list(grid.cells if isinstance(grid, Grid) else grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = finished_ids(out)
    todo = sorted((c for c in cells if c.id not in done), key=_cost, reverse=True)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}")
    runs, fails = RecordWriter(out / RUNS_FILE), RecordWriter(out / FAILURES_FILE)
    errors: dict[str, str] = {}
    finished = 0

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=getattr(grid, "name", "grid"), unit="run", disable=not progress)
    by_id = {c.id: c for c in todo}

    def record(cid: str, rec: dict | None, err: str | None) -> None:
        nonlocal finished
        if rec is not None:
            runs.write(rec)
            finished += 1
        else:
            errors[cid] = err or "unknown error"
            fails.write({"id": cid, "config": by_id[cid].to_dict(), "error": errors[cid],
                         "when": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            bar.write(f"FAILED {cid}: {(err or '').strip().splitlines()[-1] if err else ''}")
        bar.update(1)
        bar.set_postfix_str(cid[:48], refresh=False)

    try:
        if jobs == 1 or len(todo) <= 1:
            before = _torch_one_thread()
            try:
                for c in todo:
                    try:
                        record(c.id, run_cell(c, out, data_root), None)
                    except Exception:  # noqa: BLE001 - recorded; the grid goes on
                        record(c.id, None, traceback.format_exc())
            finally:
                if before is not None:
                    import torch

                    torch.set_num_threads(before)
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from multiprocessing import get_context

            ex = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=get_context("spawn"),
                                     initializer=_init_worker)
            try:
                futures = [ex.submit(_worker, ({"id": c.id, "config": c.to_dict()}, str(out), data_root)) for c in todo]
                for fut in as_completed(futures):
                    record(*fut.result())
            except BaseException:
                ex.shutdown(wait=False, cancel_futures=True)
                raise
            ex.shutdown(wait=True)
    finally:
        bar.close()
    return GridSummary(total=len(cells), skipped=len(cells) - len(todo), finished=finished,
                       failed=tuple(errors), wall_seconds=time.perf_counter() - t0, out=out, errors=errors)
