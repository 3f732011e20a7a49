"""The ``bench`` and ``report`` subcommands (wired into ``pickwise`` by :mod:`pickwise.cli`).

    pickwise bench grid.toml --out results/ [--jobs N] [--data-root DIR] [--dry-run]
    pickwise report results/ --out report/ [--grid grid.toml] [--notes notes.md] [--title TEXT]

``add_parsers(subparsers)`` adds both; ``COMMANDS[name](args)`` runs one and returns an exit code.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a grid of simulations (datasets × models × strategies × ...)",
                                  description="Run every cell of a grid TOML file in parallel processes; records "
                                  "are written as runs finish and a rerun skips finished runs.")
    bench.add_argument("grid", help="grid file (TOML; see pickwise.bench.config)")
    bench.add_argument("--out", default="results", help="results folder (default: results)")
    bench.add_argument("--jobs", type=int, default=None, help="parallel processes (default: number of cores)")
    bench.add_argument("--data-root", default=None, help="folder with the datasets (default: $PICKWISE_DATA)")
    bench.add_argument("--dry-run", action="store_true", help="validate the grid and list what would run")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = subparsers.add_parser("report", help="write report.md and report.html with figures and CSV tables "
                                   "from bench results (records that fail the checks are named and left out)")
    report.add_argument("results", help="results folder written by 'pickwise bench'")
    report.add_argument("--out", default=None, help="report folder (default: RESULTS/report)")
    report.add_argument("--title", default=None, help="report title")
    report.add_argument("--notes", default=None, help="a markdown file to include after the header")
    report.add_argument("--grid", default=None, help="report only the runs of this grid file")


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (``pickwise.cli.main`` keeps its argv), else rebuilt from ``args``."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = [args.command, str(getattr(args, "grid", None) or getattr(args, "results", ""))]
    env = f"PICKWISE_DATA={shlex.quote(os.environ['PICKWISE_DATA'])} " if os.environ.get("PICKWISE_DATA") else ""
    return env + shlex.join(["pickwise", *argv])


def cmd_bench(args: argparse.Namespace) -> int:
    """``pickwise bench``: run a grid (see :mod:`pickwise.bench.runner`: the folder's lock, resuming).

    SIGINT / SIGTERM stop the grid cleanly (workers stopped, finished runs kept) and print the
    command to resume with; the exit status is then 130 / 143.
    """
    from .._fs import lock_holder
    from ..records import RecordWriter
    from .config import load_grid
    from .runner import LOCK_FILE, Stopped, finished_ids, run_grid, stop_on_signals

    grid = load_grid(args.grid)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {args.jobs}")
    out = Path(args.out)
    if args.dry_run:  # reads only: no lock
        done = finished_ids(out) if out.is_dir() else set()
        todo = [c for c in grid.cells if c.id not in done]
        kinds = Counter((c.kind, c.dataset, c.k) for c in todo)
        print(f"{grid.name}: {len(grid.cells)} runs, {len(grid.cells) - len(todo)} already finished in {out}")
        for (kind, ds, k), n in sorted(kinds.items()):
            print(f"  {kind:<6} {ds:<14} k={k:<6} {n} runs to do")
        holder = lock_holder(out / LOCK_FILE)
        if holder is not None:
            print(f"  (a 'pickwise bench' with PID {holder} is running on {out} now)")
        return 0
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    before = len(finished_ids(out) & {c.id for c in grid.cells}) if out.is_dir() else 0
    stopped: Stopped | None = None
    try:
        with stop_on_signals():
            summary = run_grid(grid, out, jobs=args.jobs, data_root=args.data_root, progress=not args.no_progress)
    except Stopped as e:
        stopped = e
    wall = time.perf_counter() - t0
    if stopped is not None:
        finished_now = len(finished_ids(out) & {c.id for c in grid.cells})
        RecordWriter(out / "sessions.jsonl").write({
            "command": _command_line(args), "grid": str(args.grid), "name": grid.name,
            "description": grid.description, "started": started, "wall_seconds": wall,
            "jobs": args.jobs or os.cpu_count(), "total": len(grid.cells), "finished": finished_now - before,
            "skipped": before, "failed": 0, "stopped": str(stopped)})
        print(f"pickwise bench: stopped by {stopped}: {finished_now} of {len(grid.cells)} runs finished, kept in "
              f"{out}/runs.jsonl. To resume, run the same command again (it skips finished runs and continues "
              f"unfinished ones after their last recorded round):\n  {_command_line(args)}", file=sys.stderr)
        return 128 + stopped.signum
    RecordWriter(out / "sessions.jsonl").write({
        "command": _command_line(args), "grid": str(args.grid), "name": grid.name, "description": grid.description,
        "started": started, "wall_seconds": wall, "jobs": args.jobs or os.cpu_count(), "total": summary.total,
        "finished": summary.finished, "skipped": summary.skipped, "failed": len(summary.failed)})
    print(f"{grid.name}: {summary.finished} runs finished, {summary.skipped} skipped (already done), "
          f"{len(summary.failed)} failed in {wall:.0f} s; results in {out}/")
    for cid in summary.failed:
        print(f"  failed: {cid} (traceback in {out}/failures.jsonl)", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Check the records, name on stderr what is left out (and why), write report.md and report.html."""
    from .config import load_grid
    from .report import read_runs, write_report

    results = Path(args.results)
    if not results.is_dir():
        raise FileNotFoundError(f"results folder {results} not found")
    out = Path(args.out) if args.out else results / "report"
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else None
    grid = load_grid(args.grid) if args.grid else None
    loaded = read_runs(results, grid=grid)
    for s in loaded.skipped:
        print(f"pickwise report: skipped {s.where}: {s.reason}", file=sys.stderr)
    for rid in loaded.recovered:
        print(f"pickwise report: recovered {rid} from its own records (runs/{rid}.jsonl)", file=sys.stderr)
    if loaded.missing:
        print(f"pickwise report: {len(loaded.missing)} of the grid's {len(grid.cells)} runs have no finished record",
              file=sys.stderr)
    path = write_report(results, out, title=args.title, command=_command_line(args), notes=notes, grid=grid,
                        loaded=loaded)
    print(f"report: {path} and {path.with_suffix('.html').name}")
    return 0


COMMANDS = {"bench": cmd_bench, "report": cmd_report}
