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

    report = subparsers.add_parser("report", help="write report.md with figures and CSV tables from bench results")
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
    from ..records import RecordWriter
    from .config import load_grid
    from .runner import finished_ids, run_grid

    grid = load_grid(args.grid)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {args.jobs}")
    out = Path(args.out)
    if args.dry_run:
        done = finished_ids(out) if out.exists() else set()
        todo = [c for c in grid.cells if c.id not in done]
        kinds = Counter((c.kind, c.dataset, c.k) for c in todo)
        print(f"{grid.name}: {len(grid.cells)} runs, {len(grid.cells) - len(todo)} already finished in {out}")
        for (kind, ds, k), n in sorted(kinds.items()):
            print(f"  {kind:<6} {ds:<14} k={k:<6} {n} runs to do")
        return 0
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    summary = run_grid(grid, out, jobs=args.jobs, data_root=args.data_root, progress=not args.no_progress)
    wall = time.perf_counter() - t0
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
    from .report import write_report

    out = Path(args.out) if args.out else Path(args.results) / "report"
    from .config import load_grid

    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else None
    grid = load_grid(args.grid) if args.grid else None
    path = write_report(args.results, out, title=args.title, command=_command_line(args), notes=notes, grid=grid)
    print(f"report: {path}")
    return 0


COMMANDS = {"bench": cmd_bench, "report": cmd_report}
