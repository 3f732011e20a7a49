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

* ``.pickwise-bench.lock`` — present while a grid runs: the exclusive lock of the folder, holding the
  PID of the process that runs the grid (see :mod:`pickwise._fs`). A second ``run_grid`` (``pickwise
  bench``) on the same folder is refused at once (:class:`pickwise._fs.BusyError`, naming that PID);
  ``pickwise bench --dry-run`` takes no lock. Inside the locked folder each run's records are locked
  by the process that computes them (a worker, or the parent with ``jobs=1``): ``runs/.<id>.jsonl.lock``
  while the run is going; the parent holds those of ``runs.jsonl`` and ``failures.jsonl``.

Each worker process uses one torch thread (and ``OMP_NUM_THREADS=1``), so ``jobs`` processes use
``jobs`` cores. With ``jobs=1`` the cells run in the calling process, one after the other.

Stopping. Workers end when the parent dies, even by ``kill -9`` (Linux ``PR_SET_PDEATHSIG``, and a
thread that watches the parent's PID elsewhere); they ignore Ctrl-C, which reaches the whole process
group: the parent alone decides. When the parent is interrupted (``KeyboardInterrupt``, or
:class:`Stopped` from :func:`stop_on_signals`, which ``pickwise bench`` uses for SIGINT and SIGTERM)
it terminates the workers, keeps every finished run (``runs.jsonl`` only ever holds whole lines),
removes temporary files and re-raises; ``pickwise bench`` then prints the command to resume with —
the same command: a rerun skips finished runs and continues unfinished ones after their last recorded
round — and exits with 130 (SIGINT) or 143 (SIGTERM). An OS error of the output folder (full, read-only)
stops the grid the same way instead of failing every further run.

Progress. The bar counts ROUNDS (pool rounds and stream windows) of the whole grid: its total is every
round still to record (rounds already recorded by an interrupted session count as done), and it
advances as any worker records one (workers report them on a queue), so its rate and ETA mean something.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
              data_root: str | None, encoder: str | None = None, cache_dir: str | os.PathLike | None = None) -> _Data:
    """The pool (the first ``max_train`` training items) and the test set, cached per process.

    ``dataset``: a built-in name (read under ``data_root``), or a grid's own data file — a
    :class:`~pickwise.bench.config.OwnDataset`, the name carrying its file's ``spec`` (read by
    :func:`~pickwise.bench.config.load_own_dataset`; ``data_root`` is then unused).
    ``encoder``: a sentence encoder's name (:data:`~pickwise.bench.config.ENCODERS`) that turns the
    texts into frozen features, cached on disk under ``cache_dir`` (computed once for all workers).
    """
    spec = getattr(dataset, "spec", None)
    own = tuple(sorted(spec.items())) if spec is not None else None
    key = (str(dataset), own, max_train, max_test, model == "cnn", data_root, encoder)
    if key not in _DATA:
        from ..data import load

        if spec is not None:
            from .config import load_own_dataset

            ds = load_own_dataset(spec)
        else:
            ds = load(dataset, root=data_root)
        if encoder is not None:
            if cache_dir is None:
                raise ValueError(f"dataset {dataset!r} with encoder {encoder!r} needs a cache_dir")
            from ..encoders import SentenceEncoder, encode_dataset

            ds = encode_dataset(SentenceEncoder(encoder, n_threads=1), ds, cache_dir, progress=False)
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
    init = make_strategy(cell.initial_strategy) if cell.initial_strategy else None
    pool = initial_pool(len(data.x), cell.initial, data.y, seed=cell.seed, n_classes=data.n_classes,
                        strategy=init if cell.initial > 0 else None, x=data.x)
    strategy = make_strategy(cell.strategy, **cell.options)
    if cell.initial == 0:  # round 0 has no model (see pickwise.loop.cold_start_strategy)
        from ..loop import cold_start_strategy

        init = cold_start_strategy(strategy, init)
    rows = []
    for rec in pool_rounds(make_model, strategy, data.x, pool, data.y, k=cell.k, seed=cell.seed,
                           evaluate=holdout(data.x_test, data.y_test), rounds=cell.rounds, records=path,
                           config=cell.to_dict(), initial_strategy=init):
        if len(rows) >= resumed:  # the first `resumed` records are replayed from the file
            _round_done(cell.id)
        rows.append({"round": rec.round, "n_labeled": rec.n_labeled, "metrics": rec.metrics,
                     "fit_seconds": rec.fit_seconds, "select_seconds": rec.select_seconds if rec.selected else 0.0,
                     "n_selected": len(rec.selected), "n_scored": rec.n_scored,
                     "stop_kappa": rec.stop_kappa, "stop_reached": rec.stop_reached})
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
    writer = RecordWriter(path)  # first: the lock, then read (and repair) the records
    done = [SegmentRecord.from_dict(r) for r in read_jsonl(path, repair=True)]
    opts = dict(cell.options)
    selector = make_stream_selector(cell.strategy, **opts)
    gen = stream_segments(make_model, selector, data.x, data.y, order=cell.order, segment=segment, initial=init,
                          budget=budget, evaluate=holdout(data.x_test, data.y_test), seed=cell.seed,
                          protocol=opts.get("protocol", "global"),  # absent: what grids ran before the key
                          reset_selector=bool(opts.get("reset_selector", False)),
                          chunk_size=int(opts.get("chunk_size", 1024)), resume=done or None,
                          checkpoint=path.with_suffix(".npz"))
    records = list(done)
    with writer:
        for rec in gen:
            writer.write(rec.to_dict())
            records.append(rec)
            _round_done(cell.id)
    # the selector's state (two D×D float64 matrices for VeSSAL) only serves an unfinished run
    path.with_suffix(".npz").unlink(missing_ok=True)
    rows = [{"round": r.segment, "n_labeled": r.n_labels, "metrics": r.metrics, "fit_seconds": r.fit_seconds,
             "select_seconds": r.embed_seconds + r.select_seconds, "embed_seconds": r.embed_seconds,
             "n_selected": r.queries, "items_seen": r.items_seen, "window": r.window,
             "rate": r.rate, "target_rate": r.target_rate, "stop_kappa": r.stop_kappa, "stop_reached": r.stop_reached} for r in records]
    return rows, len(done), {"n_end": cell.initial + budget, "segment": segment, "budget": budget}


def run_cell(cell: Cell | dict, out: str | os.PathLike, data_root: str | None = None) -> dict[str, Any]:
    """Run (or finish) one cell; returns its run record (what ``runs.jsonl`` holds)."""
    cell = cell if isinstance(cell, Cell) else Cell.from_dict(cell)
    t0 = time.perf_counter()
    runs_dir = Path(out) / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f"{cell.id}.jsonl"
    data = load_data(cell.dataset, max_train=cell.max_train, max_test=cell.max_test, model=cell.model,
                     data_root=data_root, encoder=cell.encoder, cache_dir=Path(out) / "encoder-cache")
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


#: where this process reports each round it records (the grid's counter; a queue in a worker)
_ROUND_SINK: Callable[[str], Any] | None = None


def _round_done(cell_id: str) -> None:
    if _ROUND_SINK is not None:
        _ROUND_SINK(cell_id)


def _init_worker(parent: int | None = None, rounds: Any = None) -> None:
    """One BLAS/OpenMP/torch thread per worker process; die with the parent; report rounds to ``rounds``.

    :func:`pickwise.threads.set_threads` sets the environment (torch, imported later by the first
    torch model, reads ``OMP_NUM_THREADS`` then; workers that only run scikit-learn models never
    import it) and the BLAS pools numpy has already loaded, and faiss's threads where it is loaded.
    """
    global _ROUND_SINK
    import signal

    from ..threads import set_threads

    set_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    if rounds is not None:
        _ROUND_SINK = rounds.put
    if parent is not None:
        _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """End this process when ``parent`` dies, even by ``kill -9``.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; everywhere (and as a second line): a daemon thread
    that checks ``os.getppid()`` every second, since an orphan is adopted by another process.
    """
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread does it
            pass
    if os.getppid() != parent:  # the parent died before we were armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="pickwise-parent-watch", daemon=True).start()


def _fatal(e: BaseException, out: Path) -> bool:
    """An OS error of the output folder (full, read-only, ...): every further run would hit it too."""
    import errno

    if not isinstance(e, OSError):
        return False
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
        return True
    try:
        return e.filename is not None and Path(e.filename).resolve().is_relative_to(out.resolve())
    except (OSError, ValueError, TypeError):
        return False


def _worker(job: tuple[dict, str, str | None]) -> tuple[str, dict | None, str | None]:
    cell, out, data_root = job
    try:
        return cell["id"], run_cell(cell["config"], out, data_root), None
    except Exception as e:  # noqa: BLE001 - reported to the parent, which records the failure
        if _fatal(e, Path(out)):
            raise  # to the parent, which stops the grid
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


LOCK_FILE = ".pickwise-bench.lock"


class Stopped(KeyboardInterrupt):
    """The grid was stopped by a signal (``signum``: SIGINT or SIGTERM); see :func:`stop_on_signals`."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise :class:`Stopped` in the main thread (once: later
    ones are ignored while the grid stops its workers). Elsewhere than the main thread it does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        for sig in sigs:
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    old = {sig: signal.signal(sig, stop) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def expected_rounds(cell: Cell) -> int:
    """How many records a cell writes: rounds 0 .. rounds (pool), windows 0 .. n (stream; with an
    explicit ``segment`` n is estimated from ``max_train`` and corrected when the run ends)."""
    if cell.kind == "stream" and cell.segment and cell.max_train:
        return math.ceil((cell.max_train - cell.initial) / cell.segment) + 1
    return cell.rounds + 1


def recorded_rounds(out: str | os.PathLike, cell: Cell) -> int:
    """Rounds (windows) already in ``runs/<id>.jsonl`` of an unfinished run (complete lines only)."""
    path = Path(out) / RUNS_DIR / f"{cell.id}.jsonl"
    try:
        lines = path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
    return max(lines - 1, 0) if cell.kind == "pool" else lines  # a pool file starts with its header


class _RoundCounter:
    """The grid's bar in rounds: ``tick`` for each round recorded, ``finish`` when a run ends (its true
    count replaces the estimate; a failed run's remaining rounds leave the total)."""

    def __init__(self, cells: list[Cell], out: Path, bar: Any):
        self.bar = bar
        self.expected = {c.id: expected_rounds(c) for c in cells}
        self.done = {c.id: min(recorded_rounds(out, c), self.expected[c.id]) for c in cells}
        self.closed: set[str] = set()
        bar.total = sum(self.expected.values())
        bar.update(sum(self.done.values()))

    def tick(self, cid: str) -> None:
        if cid in self.closed or cid not in self.done:
            return
        self.done[cid] += 1
        if self.done[cid] > self.expected[cid]:
            self.expected[cid] += 1
            self.bar.total += 1
        self.bar.update(1)

    def finish(self, cid: str, n_rounds: int | None) -> None:
        self.closed.add(cid)
        n = self.done[cid] if n_rounds is None else n_rounds
        self.bar.total += n - self.expected[cid]
        self.expected[cid] = n
        step, self.done[cid] = n - self.done[cid], n
        if step:
            self.bar.update(step)
        self.bar.refresh()


def _stop_workers(ex: Any) -> None:
    """Terminate the pool's worker processes (SIGTERM, then SIGKILL) and shut the pool down."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():  # pragma: no cover - SIGTERM is not caught by the workers
            p.kill()
            p.join(timeout=5)
    ex.shutdown(wait=False, cancel_futures=True)


def _sweep_tmp(out: Path) -> None:
    """Remove the temporary files and free lock files that stopped workers left in ``runs/`` (the
    folder is ours: we hold its lock)."""
    from .._fs import lock_holder

    for pattern in ("*.tmp", ".*.part"):
        for p in (out / RUNS_DIR).glob(pattern):
            p.unlink(missing_ok=True)
    for p in (out / RUNS_DIR).glob(".*.lock"):
        if lock_holder(p) is None:
            p.unlink(missing_ok=True)


def run_grid(
    grid: Grid | Iterable[Cell],
    out: str | os.PathLike,
    *,
    jobs: int | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> GridSummary:
    """Run every cell of ``grid`` not yet in ``out/runs.jsonl``; see the module doc.

    Holds the folder's lock (refused with :class:`pickwise._fs.BusyError` while another grid runs
    on ``out``). ``progress``: a bar in rounds on stderr (only when it is a terminal).
    """
    import errno

    from .. import progress as progress_mod
    from .._fs import annotate, exclusive_lock

    t0 = time.perf_counter()
    cells = list(grid.cells if isinstance(grid, Grid) else grid)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise annotate(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(out)),
                       "cannot write results to")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise annotate(e, "cannot create the results folder", out) from None
    with exclusive_lock(out / LOCK_FILE, f"another 'pickwise bench' (PID {{pid}}) is writing to {out}; "
                        "wait for it to finish, or choose another --out"):
        try:
            return _run_locked(cells, out, jobs=jobs, data_root=data_root, progress=progress, t0=t0,
                               name=getattr(grid, "name", "grid"), bar_factory=progress_mod.grid_bar)
        finally:
            _sweep_tmp(out)


def _run_locked(cells: list[Cell], out: Path, *, jobs: int, data_root: str | None, progress: bool, t0: float,
                name: str, bar_factory: Callable[..., Any]) -> GridSummary:
    global _ROUND_SINK

    done = finished_ids(out)
    todo = sorted((c for c in cells if c.id not in done), key=_cost, reverse=True)
    runs, fails = RecordWriter(out / RUNS_FILE), RecordWriter(out / FAILURES_FILE)
    errors: dict[str, str] = {}
    finished = 0
    by_id = {c.id: c for c in todo}
    bar = bar_factory(total=0, desc=name, unit="round", enabled=progress)
    counter = _RoundCounter(todo, out, bar)

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
        counter.finish(cid, len(rec["rounds"]) if rec is not None else None)
        bar.set_postfix_str(f"{finished + len(errors)}/{len(todo)} runs", refresh=False)

    try:
        if jobs == 1 or len(todo) <= 1:
            before = _torch_one_thread()
            _ROUND_SINK = counter.tick
            try:
                for c in todo:
                    try:
                        record(c.id, run_cell(c, out, data_root), None)
                    except Exception as e:  # noqa: BLE001 - recorded; the grid goes on
                        if _fatal(e, out):
                            raise
                        record(c.id, None, traceback.format_exc())
            finally:
                _ROUND_SINK = None
                if before is not None:
                    import torch

                    torch.set_num_threads(before)
        else:
            _run_pool(todo, out, jobs=jobs, data_root=data_root, counter=counter, record=record)
    finally:
        bar.close()
        runs.close()
        fails.close()
    return GridSummary(total=len(cells), skipped=len(cells) - len(todo), finished=finished,
                       failed=tuple(errors), wall_seconds=time.perf_counter() - t0, out=out, errors=errors)


def _run_pool(todo: list[Cell], out: Path, *, jobs: int, data_root: str | None, counter: _RoundCounter,
              record: Callable[[str, dict | None, str | None], None]) -> None:
    """The cells in ``jobs`` spawned worker processes; round reports come back on a queue."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    ctx = get_context("spawn")
    rounds = ctx.SimpleQueue()

    def drain() -> None:
        while not rounds.empty():
            counter.tick(rounds.get())

    ex = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(), rounds))
    try:
        pending = {ex.submit(_worker, ({"id": c.id, "config": c.to_dict()}, str(out), data_root)) for c in todo}
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            drain()  # a worker reports its rounds before it returns: they are all in by now
            for fut in finished:
                record(*fut.result())
    except BaseException:
        _stop_workers(ex)
        raise
    else:
        ex.shutdown(wait=True)
    finally:
        rounds.close()
