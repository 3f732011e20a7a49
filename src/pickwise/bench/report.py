"""``pickwise report``: report.md and report.html with PNG figures and CSV tables from a results folder.

Sections: the runs (and the bench commands with their wall times, from ``sessions.jsonl``); the
records left out (and why) or recovered; the settings each run was trained with; pairwise penalty
matrices (heat maps with numbers, one per group, see :mod:`.analysis`); label amplification
ratios; area under the learning curve with final accuracy (mean ± standard error over seeds);
selection time against batch size; learning curves (mean ± standard error over seeds) per setting.
Every table is also written as CSV; ``report.html`` is the same report in one self-contained file
(figures embedded as base64 PNG, no external assets).

Reading the results never trusts them: every line of ``runs.jsonl`` is checked by
:func:`validate_run` (required keys, types, accuracies finite and in [0, 1], rounds consistent with
the configuration). A line that fails is left out and named, with the reason, in the report and by
:func:`read_runs` (the CLI prints them on stderr). A torn line (a run whose record was cut while
being written) is recovered from the run's own records ``runs/<id>.jsonl`` when they hold the whole
run, else named as skipped.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import analysis as an
from .penalty import PenaltyMatrix
from .runner import FAILURES_FILE, RUNS_DIR, RUNS_FILE

SESSIONS_FILE = "sessions.jsonl"
DPI = 150
LAR_SHOWN = (0.06, 0.1, 0.2, 0.3, 0.4, 0.5)

__all__ = ["LoadedRuns", "Skipped", "check_consistent", "markdown_to_html", "read_runs", "validate_run",
           "write_report"]


# -- reading and validating the records -------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A record left out of the report: ``where`` (file and line, or run id) and ``reason``."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class LoadedRuns:
    """What :func:`read_runs` found: the valid ``records`` (first per id), the ``skipped`` lines
    (invalid, torn and not recovered, or repeating an id), the ids ``recovered`` from
    ``runs/<id>.jsonl``, the ids of ``duplicates`` (also in ``skipped``) and, with a grid, its
    cells ``missing`` from the results (not finished)."""

    records: tuple[dict[str, Any], ...]
    skipped: tuple[Skipped, ...] = ()
    recovered: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _is_int(v: Any) -> bool:
    """An integer (not a bool) small enough for float arithmetic on label counts."""
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 10**15


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: config keys every run record needs, and what each must be
_CONFIG_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("kind", "'pool' or 'stream'", lambda v: v in ("pool", "stream")),
    ("dataset", "a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    ("model", "a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    ("strategy", "a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    ("k", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("seed", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("initial", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("rounds", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
)
#: keys of each round, and what each must be
_ROUND_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("round", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("n_labeled", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("metrics", "a table", lambda v: isinstance(v, dict)),
    ("fit_seconds", "a finite number >= 0", lambda v: _is_num(v) and v >= 0),
    ("select_seconds", "a finite number >= 0", lambda v: _is_num(v) and v >= 0),
)


def validate_run(rec: Any) -> str | None:
    """Why the run record ``rec`` (a line of ``runs.jsonl``) cannot be reported, or None if it can.

    Checks: the keys ``id``, ``config``, ``rounds``, ``n_pool`` and their types; the configuration's
    kind, dataset, model, strategy, k, seed, initial, rounds (and ``order`` for stream runs); each
    round's number, label count, timings and ``metrics.accuracy`` (finite, in [0, 1]); that rounds
    are numbered 0, 1, …, start at the initial labels and never lose labels; pool runs: exactly
    ``rounds + 1`` rounds at initial + r·k; stream runs: at most the budget initial + rounds·k; the
    pool size and ``n_end`` agree with these sizes; top-level kind/algorithm/seed agree with config.
    """
    if not isinstance(rec, dict):
        return f"not a JSON object but {type(rec).__name__}"
    for key, ok, what in (("id", lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
                          ("config", lambda v: isinstance(v, dict), "a table"),
                          ("rounds", lambda v: isinstance(v, list) and bool(v), "a non-empty list"),
                          ("n_pool", lambda v: _is_int(v) and v >= 2, "an integer >= 2")):
        if key not in rec:
            return f"missing key {key!r}"
        if not ok(rec[key]):
            return f"{key} = {_short(rec[key])}: must be {what}"
    cfg = rec["config"]
    for key, what, ok in _CONFIG_FIELDS:
        if key not in cfg:
            return f"config has no {key!r}"
        if not ok(cfg[key]):
            return f"config.{key} = {_short(cfg[key])}: must be {what}"
    order = cfg.get("order")
    if cfg["kind"] == "stream" and not (isinstance(order, str) and order):
        return f"config.order = {_short(order)}: a stream run needs its order (a non-empty string)"
    if cfg["kind"] == "pool" and order is not None:
        return f"config.order = {_short(order)}: a pool run has no order"
    for key in ("training", "options"):
        if key in cfg and not isinstance(cfg[key], dict):
            return f"config.{key} = {_short(cfg[key])}: must be a table"
    for key, cfg_key in (("kind", "kind"), ("algorithm", "strategy"), ("seed", "seed")):
        if key in rec and rec[key] != cfg[cfg_key]:
            return f"{key} = {_short(rec[key])} disagrees with config.{cfg_key} = {_short(cfg[cfg_key])}"
    initial, k, n_rounds = cfg["initial"], cfg["k"], cfg["rounds"]
    budget_end = initial + n_rounds * k
    prev = None
    for i, row in enumerate(rec["rounds"]):
        if not isinstance(row, dict):
            return f"rounds[{i}] = {_short(row)}: must be a table"
        for key, what, ok in _ROUND_FIELDS:
            if key not in row:
                return f"rounds[{i}] has no {key!r}"
            if not ok(row[key]):
                return f"rounds[{i}].{key} = {_short(row[key])}: must be {what}"
        acc = row["metrics"].get("accuracy")
        cold = i == 0 and row["n_labeled"] == 0 and "accuracy" not in row["metrics"]  # no labels: no model
        if not cold and (not _is_num(acc) or not 0 <= acc <= 1):
            return f"rounds[{i}].metrics.accuracy = {_short(acc)}: must be a finite number in [0, 1]"
        if i > 0 and row["n_labeled"] == 0:
            return f"rounds[{i}].n_labeled = 0: only round 0 of a run from no labels has no labels"
        kappa = row.get("stop_kappa")
        if kappa is not None and not (_is_num(kappa) and -1 <= kappa <= 1):
            return f"rounds[{i}].stop_kappa = {_short(kappa)}: must be null or a number in [-1, 1]"
        reached = row.get("stop_reached")
        if reached is not None and not (_is_int(reached) and 0 <= reached <= row["round"]):
            return f"rounds[{i}].stop_reached = {_short(reached)}: must be null or a round in 0 .. {row['round']}"
        if row["round"] != i:
            return f"rounds[{i}].round = {row['round']}: rounds must be numbered 0, 1, 2, …"
        n = row["n_labeled"]
        if i == 0 and n != initial:
            return f"rounds[0].n_labeled = {n}: must equal config.initial = {initial}"
        if prev is not None and n < prev:
            return f"rounds[{i}].n_labeled = {n}: fewer labels than the round before ({prev})"
        if cfg["kind"] == "pool" and n != initial + i * k:
            return f"rounds[{i}].n_labeled = {n}: a pool run has initial + round·k = {initial + i * k} labels"
        if n > budget_end:
            return f"rounds[{i}].n_labeled = {n}: beyond the budget initial + rounds·k = {budget_end}"
        prev = n
    if cfg["kind"] == "pool" and len(rec["rounds"]) != n_rounds + 1:
        return f"{len(rec['rounds'])} rounds recorded; config.rounds = {n_rounds} needs {n_rounds + 1} (round 0 included)"
    if rec["n_pool"] < budget_end:
        return f"n_pool = {rec['n_pool']}: smaller than initial + rounds·k = {budget_end}"
    if "n_end" in rec and rec["n_end"] is not None and rec["n_end"] != budget_end:
        return f"n_end = {_short(rec['n_end'])}: must be initial + rounds·k = {budget_end}"
    return None


def _lines(path: Path) -> list[tuple[int, bool, bytes]]:
    """(line number, ends with a newline, bytes) of each non-blank line."""
    raw = path.read_bytes()
    out = []
    for no, line in enumerate(raw.splitlines(keepends=True), start=1):
        if line.strip():
            out.append((no, line.endswith((b"\n", b"\r")), line.rstrip(b"\r\n")))
    return out


def _jsonl_tolerant(path: Path) -> tuple[list[Any], list[Skipped]]:
    """The parsed lines of ``path`` (any JSON values) and the lines that are not JSON."""
    rows, bad = [], []
    if not path.is_file():
        return rows, bad
    for no, complete, line in _lines(path):
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            bad.append(Skipped(f"{path.name} line {no}", "not valid JSON" + ("" if complete else " (torn last line)")))
    return rows, bad


def _fragment(line: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """The run id and configuration still readable in a torn line of ``runs.jsonl``."""
    text = line.decode("utf-8", errors="replace")
    m = re.search(r'"id":\s*"([^"\\]+)"', text)
    cfg = None
    c = re.search(r'"config":\s*', text)
    if c:
        try:
            value, _ = json.JSONDecoder().raw_decode(text, c.end())
            cfg = value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            cfg = None
    run_id = m.group(1) if m else None
    if run_id is None and cfg is not None:
        run_id = _cell_id(cfg)
    return run_id, cfg


def _cell_id(cfg: Mapping[str, Any]) -> str | None:
    from .config import Cell

    try:
        return Cell.from_dict(cfg).id
    except Exception:  # noqa: BLE001 - any malformed configuration simply has no id
        return None


def _siblings(records: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A valid record on the same data (dataset, model, pool and test sizes): its sizes apply."""
    key = ("dataset", "model", "max_train", "max_test")
    return next((r for r in records if all(r["config"].get(x) == cfg.get(x) for x in key)), None)


def _recover(results: Path, run_id: str, cfg: Mapping[str, Any] | None,
             records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """Rebuild a run record from ``runs/<id>.jsonl``; (record, "") or (None, why not)."""
    path = results / RUNS_DIR / f"{run_id}.jsonl"
    if not path.is_file():
        return None, f"{RUNS_DIR}/{path.name} is not there to recover it from"
    rows, _ = _jsonl_tolerant(path)
    rows = [r for r in rows if isinstance(r, dict)]
    header = next((r for r in rows if r.get("type") == "header"), None)
    if cfg is None and header is not None and isinstance(header.get("config"), dict):
        cfg = header["config"]
    if cfg is None:
        return None, f"neither the torn line nor {RUNS_DIR}/{path.name} holds its configuration (pass --grid)"
    if _cell_id(cfg) not in (None, run_id):
        return None, f"the configuration read does not match the id {run_id}"
    try:
        initial, k, n_rounds = int(cfg["initial"]), int(cfg["k"]), int(cfg["rounds"])
        sib = _siblings(records, cfg)
        if cfg.get("kind") == "pool":
            rounds = [{"round": r["round"], "n_labeled": r["n_labeled"], "metrics": r["metrics"],
                       "fit_seconds": r["fit_seconds"],
                       "select_seconds": r["select_seconds"] if r.get("selected") else 0.0,
                       "n_selected": len(r.get("selected") or []), "n_scored": r.get("n_scored")}
                      for r in rows if r.get("type") == "round"]
            n_pool = header.get("n") if header is not None else (sib["n_pool"] if sib else None)
            complete = len(rounds) == n_rounds + 1
        else:
            segs = [r for r in rows if "segment" in r]
            rounds = [{"round": r["segment"], "n_labeled": r["n_labels"], "metrics": r["metrics"],
                       "fit_seconds": r["fit_seconds"], "select_seconds": r["embed_seconds"] + r["select_seconds"],
                       "embed_seconds": r["embed_seconds"], "n_selected": r["queries"],
                       "items_seen": r["items_seen"], "window": r["window"]} for r in segs]
            seen = segs[-1]["items_seen"] if segs else 0
            if sib is not None:
                n_pool = sib["n_pool"]
                complete = seen == n_pool - initial
            else:  # the default window makes the stream exactly `rounds` windows
                n_pool = initial + seen
                complete = cfg.get("segment") is None and len(segs) == n_rounds + 1
    except (KeyError, TypeError, ValueError) as e:
        return None, f"{RUNS_DIR}/{path.name} is not readable as a run ({type(e).__name__}: {e})"
    if not complete:
        return None, f"{RUNS_DIR}/{path.name} holds an unfinished run ({len(rounds)} rounds recorded)"
    rec = {"id": run_id, "kind": cfg["kind"], "algorithm": cfg["strategy"], "seed": cfg["seed"], "config": dict(cfg),
           "n_pool": n_pool, "n_test": sib.get("n_test") if sib else None,
           "n_classes": sib.get("n_classes") if sib else None, "n_end": initial + n_rounds * k, "rounds": rounds,
           "versions": sib.get("versions", {}) if sib else {}, "records": f"{RUNS_DIR}/{path.name}",
           "recovered": True}
    return rec, ""


def read_runs(results: str | os.PathLike[str], *, grid: Any = None) -> LoadedRuns:
    """Read and check ``results/runs.jsonl`` (see the module doc); never raises on bad content.

    ``grid`` (a :class:`~pickwise.bench.config.Grid`): keep only its runs, and list its cells that
    have no finished run.
    """
    results = Path(results)
    path = results / RUNS_FILE
    wanted = {c.id for c in grid.cells} if grid is not None else None
    records: dict[str, dict[str, Any]] = {}
    skipped: list[Skipped] = []
    torn: list[tuple[str, int, str | None, dict[str, Any] | None]] = []
    duplicates: list[str] = []
    lines = _lines(path) if path.is_file() else []
    for no, complete, line in lines:
        where = f"{RUNS_FILE} line {no}"
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            run_id, cfg = _fragment(line)
            torn.append((where + ("" if complete else " (torn last line)"), no, run_id, cfg))
            continue
        rid = rec.get("id") if isinstance(rec, dict) else None
        if wanted is not None and isinstance(rid, str) and rid not in wanted:
            continue  # another grid's run
        why = validate_run(rec)
        if why is not None:
            skipped.append(Skipped(where + (f" ({rid})" if isinstance(rid, str) else ""), why))
            continue
        if rid in records:
            duplicates.append(rid)
            skipped.append(Skipped(where, f"repeats the run id {rid} of an earlier line (that line is used)"))
            continue
        records[rid] = rec
    recovered = []
    for where, _, run_id, cfg in torn:
        if run_id is not None and run_id in records:
            skipped.append(Skipped(where, f"not valid JSON; run {run_id} is complete on another line"))
            continue
        if run_id is None:
            skipped.append(Skipped(where, "not valid JSON (a torn write?); no run id readable in it"))
            continue
        if wanted is not None and run_id not in wanted:
            continue
        if cfg is None and grid is not None:
            cfg = next(c.to_dict() for c in grid.cells if c.id == run_id)
        rec, why = _recover(results, run_id, cfg, list(records.values()))
        invalid = validate_run(rec) if rec is not None else None
        if rec is None or invalid is not None:
            skipped.append(Skipped(f"{where} ({run_id})", f"not valid JSON (a torn write?); "
                                   f"{why or 'its recovered record is invalid: ' + str(invalid)}"))
            continue
        records[run_id] = rec
        recovered.append(run_id)
    if any(run_id is None for _, _, run_id, _ in torn):
        # a torn line whose id is unreadable: every run with records but no finished line may be it
        for own in sorted((results / RUNS_DIR).glob("*.jsonl")):
            if own.stem in records or (wanted is not None and own.stem not in wanted):
                continue
            rec, why = _recover(results, own.stem, None, list(records.values()))
            invalid = validate_run(rec) if rec is not None else None
            if rec is None or invalid is not None:
                skipped.append(Skipped(f"{RUNS_DIR}/{own.name}", f"no finished record; {why or invalid}"))
            else:
                records[own.stem] = rec
                recovered.append(own.stem)
    missing: list[str] = []
    if grid is not None:
        for c in grid.cells:
            if c.id in records:
                continue
            rec, _ = _recover(results, c.id, c.to_dict(), list(records.values()))
            if rec is not None and validate_run(rec) is None:
                records[c.id] = rec
                recovered.append(c.id)
            else:
                missing.append(c.id)
    return LoadedRuns(tuple(records.values()), tuple(skipped), tuple(recovered), tuple(duplicates), tuple(missing))


def check_consistent(records: Sequence[Mapping[str, Any]]) -> None:
    """Refuse to pool runs of different configurations into one setting (say a changed pool size).

    Within a setting (dataset, model, k) every run must share the pool size and initial labels, and
    the runs of one algorithm must differ in nothing but the seed.
    """
    setting: dict[tuple, tuple[str, dict]] = {}
    algo: dict[tuple, tuple[str, dict]] = {}
    for r in records:
        cfg = r["config"]
        key = (an.dataset_label(cfg), cfg["model"], cfg["k"])  # runs from 0 labels are a setting of their own
        mine = {"n_pool": r.get("n_pool"), "initial": cfg["initial"]}
        first = setting.setdefault(key, (r["id"], mine))
        bad = [k for k in mine if mine[k] != first[1][k]]
        rest = {k: v for k, v in cfg.items() if k != "seed"}
        other = algo.setdefault((*key, cfg["kind"], an.algorithm_label(cfg), cfg.get("order")), (r["id"], rest))
        bad += [k for k in set(rest) | set(other[1]) if rest.get(k) != other[1].get(k)]
        if bad:
            raise ValueError(
                f"runs {first[0] if bad[0] in mine else other[0]} and {r['id']} are in one setting "
                f"{'/'.join(map(str, key))} "
                f"but differ in {', '.join(dict.fromkeys(sorted(bad, key=lambda b: (b not in mine, b))))}; "
                "pass the grid (--grid) to report one grid's runs"
            )


# -- tables ---------------------------------------------------------------------------------------


def _plt():
    from ..plots import _pyplot

    return _pyplot()


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], header: Sequence[str] | None = None) -> None:
    header = list(header or (rows[0].keys() if rows else []))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _md(header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "{:.2f}") -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "—" if math.isnan(v) else fmt.format(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _pm(mean: float, se: float, fmt: str = "{:.3f}") -> str:
    if math.isnan(mean):
        return "—"
    return fmt.format(mean) + ("" if math.isnan(se) else f" ± {fmt.format(se)}")


# -- figures --------------------------------------------------------------------------------------

#: a qualitative palette (Okabe–Ito, then tab10's distinct hues); black and grey are the baselines'
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#BCBD22", "#9467BD",
            "#17BECF", "#F0E442", "#7F0000")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
_LINES = ("-", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))


def _styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One fixed look per algorithm across all figures: baselines black (random, dashed) and grey
    (stream-uniform, dotted); the others a palette colour with its own marker and line style."""
    out = {an.POOL_BASELINE: {"color": "black", "ls": "--", "marker": None, "lw": 1.4},
           an.STREAM_BASELINE: {"color": "0.45", "ls": ":", "marker": None, "lw": 1.6}}
    others = [n for n in sorted(dict.fromkeys(names)) if n not in out]
    for i, n in enumerate(others):
        out[n] = {"color": _PALETTE[i % len(_PALETTE)], "marker": _MARKERS[i % len(_MARKERS)],
                  "ls": _LINES[(i // len(_PALETTE)) % len(_LINES)], "lw": 1.3}
    return out


def _legend_below(ax: Any, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=ncol, fontsize=7, frameon=False)


def plot_penalty(pm: PenaltyMatrix, path: Path, title: str) -> None:
    """The matrix as a heat map with its numbers, the column means as the bottom row."""
    plt = _plt()
    a = len(pm.names)
    mat = np.vstack([pm.matrix, pm.column_means[None, :]])
    fig, ax = plt.subplots(figsize=(1.6 + 0.62 * a, 1.4 + 0.5 * (a + 1)), dpi=DPI)
    vmax = max(float(pm.matrix.max()) if pm.matrix.size else 0.0, 1e-9)
    ax.imshow(mat, cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
    for i in range(a + 1):
        for j in range(a):
            v = mat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * vmax else "black", fontweight="bold" if i == a else "normal")
    ax.axhline(a - 0.5, color="black", lw=1)
    ax.set_xticks(range(a), pm.names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(a + 1), [*pm.names, "column mean"], fontsize=8)
    ax.set_xlabel("beaten (column)", fontsize=8)
    ax.set_ylabel("winner (row)", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _curve_on(runs: Sequence[an.Run], sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean ± se over ``runs`` at ``sizes`` (each run interpolated, one value per label count)."""
    vals = np.array([r.curve.values(sizes) for r in sorted(runs, key=lambda r: r.seed)])
    ok = ~np.isnan(vals).any(axis=0)
    vals = vals[:, ok]
    mean = vals.mean(axis=0)
    se = vals.std(axis=0, ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else np.zeros_like(mean)
    return sizes[ok], mean, se, len(vals)


def plot_setting_curves(runs: Sequence[an.Run], path: Path, title: str,
                        styles: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Pool strategies in one panel, the stream selectors of each order in another (with random from
    the pool dashed as the reference); every curve is the mean ± se over seeds at the checkpoints
    initial + j·k (stream runs interpolated there, so repeated label counts make no vertical drops)."""
    plt = _plt()
    styles = styles or _styles([r.algorithm for r in runs])
    panels = ["pool"] if any(r.kind == "pool" for r in runs) else []
    panels += sorted({r.order for r in runs if r.kind == "stream" and r.order})
    initial, k = runs[0].initial, runs[0].k
    hi = min(r.curve.n_end for r in runs)
    sizes = np.arange(initial, hi + 0.5, k, dtype=float)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), dpi=DPI, sharey=True, squeeze=False)
    random = [r for r in runs if r.kind == "pool" and r.algorithm == an.POOL_BASELINE]
    for ax, panel in zip(axes[0], panels):
        mine = [r for r in runs if (r.kind == "pool" if panel == "pool" else r.order == panel)]
        by: dict[str, list[an.Run]] = defaultdict(list)
        for r in mine:
            by[r.algorithm].append(r)
        for name in an._ordered_names(mine):
            x, mean, se, n = _curve_on(by[name], sizes)
            st = styles[name]
            ax.plot(x, mean, color=st["color"], ls=st["ls"], lw=st["lw"], marker=st["marker"], ms=3.5,
                    label=f"{name} ({n})")
            if n > 1:
                ax.fill_between(x, mean - se, mean + se, color=st["color"], alpha=0.15, lw=0)
        if panel != "pool" and random:
            x, mean, _, n = _curve_on(random, sizes)
            ax.plot(x, mean, color="black", ls="--", lw=1.2, label=f"random, pool ({n})")
        ax.set_title(title + (" — pool" if panel == "pool" else f" — stream, {panel} order"), fontsize=9)
        ax.set_xlabel("labelled items", fontsize=8)
        if len(sizes) <= 12:
            ax.set_xticks(sizes, [f"{s:g}" for s in sizes], rotation=45 if len(sizes) > 10 else 0)
        ax.grid(alpha=0.3)
        _legend_below(ax)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("test accuracy", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_lar(summary: Sequence[Mapping[str, Any]], path: Path,
             styles: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Mean LAR over datasets against n_u / N, one panel per (group, model, k); undefined points are gaps."""
    plt = _plt()
    styles = styles or _styles([r["algorithm"] for r in summary])
    panels = sorted({(r["group"], r["model"], r["k"]) for r in summary})
    ncol = min(2, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.9 * nrow), dpi=DPI, squeeze=False)
    for ax, (g, m, k) in zip(axes.flat, panels):
        rows = [r for r in summary if (r["group"], r["model"], r["k"]) == (g, m, k)]
        for algo in dict.fromkeys(r["algorithm"] for r in rows):
            pts = sorted((r["fraction"], r["lar_mean"]) for r in rows if r["algorithm"] == algo)
            st = styles[algo]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=st["color"], ls=st["ls"], lw=st["lw"],
                    marker=st["marker"] or "o", ms=3, label=algo)
        base = an.POOL_BASELINE if g == "pool" else an.STREAM_BASELINE
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set_title(f"{g}: vs {base}, {m}, k={k}", fontsize=9)
        ax.set_xlabel("n_u / N", fontsize=8)
        ax.set_ylabel("LAR (mean over datasets)", fontsize=8)
        ax.grid(alpha=0.3)
        _legend_below(ax, ncol=3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_selection_time(rows: Sequence[Mapping[str, Any]], path: Path,
                        styles: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Selection seconds per round against k (log-log); pool solid, stream dashed, one colour per algorithm."""
    plt = _plt()
    styles = styles or _styles([r["algorithm"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=DPI)
    by: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not math.isnan(r["select_seconds"]):
            by[(r["algorithm"], r["kind"])][r["k"]].append(r["select_seconds"])
    kinds = sorted({kind for _, kind in by})
    for (algo, kind), ks in sorted(by.items(), key=lambda t: (t[0][1] != "pool", t[0])):
        xs = sorted(ks)
        st = styles[algo]
        ls = "-" if kind == "pool" else (("--", ":", "-.")[kinds.index(kind) % 3])
        ax.plot(xs, [np.mean(ks[x]) for x in xs], marker=st["marker"] or "o", ms=3.5, lw=1.2,
                color=st["color"], ls=ls, label=algo if kind == "pool" else f"{algo} ({kind})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    all_k = sorted({r["k"] for r in rows})
    if all_k and len(all_k) <= 12:
        ax.set_xticks(all_k, [str(k) for k in all_k])
        ax.minorticks_off()
    ax.set_xlabel("batch size k (stream: labels per window)", fontsize=8)
    ax.set_ylabel("selection seconds per round", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# -- HTML -----------------------------------------------------------------------------------------


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", out)
    out = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r'<a href="\2">\1</a>', out)
    return out


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def markdown_to_html(md: str, folder: str | os.PathLike[str], *, title: str = "report") -> str:
    """The markdown this module writes (headings, paragraphs, lists, tables, images, **bold**,
    `code`) as one self-contained HTML page; images ``![alt](file.png)`` are read from ``folder``
    and embedded as base64 (a missing image becomes its alt text)."""
    folder = Path(folder)
    body: list[str] = []
    para: list[str] = []
    lines = md.splitlines()

    def flush() -> None:
        if para:
            body.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        m = re.fullmatch(r"(#{1,6})\s+(.*)", stripped)
        img = re.fullmatch(r"!\[([^\]]*)\]\(([^)\s]+)\)", stripped)
        if not stripped:
            flush()
        elif m:
            flush()
            n = len(m.group(1))
            body.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif img:
            flush()
            src = folder / img.group(2)
            if src.is_file() and src.suffix.lower() == ".png" and "/" not in img.group(2):
                data = base64.b64encode(src.read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(img.group(1))}" src="data:image/png;base64,{data}">'
                            f"</figure>")
            else:
                body.append(f"<p>[{html.escape(img.group(1))}]</p>")
        elif stripped.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+",
                                                                              lines[i + 1].strip()):
            flush()
            head = _cells(stripped)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            body.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{_inline(h)}</th>" for h in head)
                        + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</tbody></table></div>")
            continue
        elif re.match(r"[-*]\s+", stripped):
            flush()
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not re.match(
                        r"\s*[-*]\s+", lines[i]):
                    items[-1] += " " + lines[i].strip()
                    i += 1
            body.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
            continue
        else:
            para.append(stripped)
        i += 1
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;"
             "color:#222}table{border-collapse:collapse;margin:.8em 0;font-size:.85em}th,td{border:1px solid #ccc;"
             "padding:.25em .5em;text-align:right}th:first-child,td:first-child{text-align:left}thead{background:"
             "#f2f2f2}.scroll{overflow-x:auto}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}figure{margin:1em 0}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# -- the report -----------------------------------------------------------------------------------


def _sessions(results: Path) -> tuple[list[dict[str, Any]], list[Skipped]]:
    rows, bad = _jsonl_tolerant(results / SESSIONS_FILE)
    good = []
    for i, s in enumerate(rows):
        if isinstance(s, dict) and isinstance(s.get("command", ""), str):
            good.append(s)
        else:
            bad.append(Skipped(f"{SESSIONS_FILE} entry {i + 1}", f"not a session record: {_short(s)}"))
    return good, bad


def _num(v: Any, fmt: str = "{:.0f}") -> str:
    return fmt.format(v) if _is_num(v) else "?"


def _settings_table(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]], list[str]]:
    """Per setting (dataset, model, k) the values every run was configured with (several joined by
    " / "); and the training keys whose values differ from ``pickwise bench``'s defaults."""
    from .config import TRAINING_DEFAULTS

    keys = list(TRAINING_DEFAULTS)
    by: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        cfg = r["config"]
        t = by[(cfg["dataset"], cfg["model"], cfg["k"])]
        for key in ("initial", "rounds", "max_train", "max_test"):
            t[key].add(json.dumps(cfg.get(key)))
        t["pool N"].add(json.dumps(r.get("n_pool")))
        training = cfg.get("training") or {}
        for key in keys:
            t[key].add(json.dumps(training.get(key, "—")))
        opts = cfg.get("options") or {}
        t[f"{cfg['kind']} options"].add(", ".join(f"{a}={json.dumps(b)}" for a, b in sorted(opts.items())) or "—")
    header = ["dataset", "model", "k", "initial", "rounds", "max_train", "pool N", "max_test", *keys,
              "pool options", "stream options"]
    rows = []
    differ = set()
    for (d, m, k), t in sorted(by.items()):
        row: list[Any] = [d, m, k]
        for key in header[3:]:
            vals = sorted(t.get(key, {"—"}))
            null = "all" if key in ("max_train", "max_test") else "none"
            row.append(" / ".join(v.strip('"') if v != "null" else null for v in vals))
            if key in TRAINING_DEFAULTS and any(v != json.dumps(TRAINING_DEFAULTS[key]) for v in vals):
                differ.add(key)
        rows.append(row)
    return header, rows, [k for k in keys if k in differ]


def write_report(results: str | os.PathLike, out: str | os.PathLike, *, title: str | None = None,
                 command: str | None = None, notes: str | None = None, grid: Any = None,
                 loaded: LoadedRuns | None = None) -> Path:
    """Write ``out/report.md`` and ``out/report.html`` (+ PNG + CSV) from the finished runs in
    ``results``; returns the path of report.md.

    ``grid`` (a :class:`~pickwise.bench.config.Grid`): report only its runs (a results folder may hold
    several grids'). ``command``: the report's own command line, shown under the bench commands;
    ``notes``: markdown placed right after them (e.g. how the results compare with the papers).
    ``loaded``: what :func:`read_runs` returned (read here when None). Records that fail
    :func:`validate_run` are left out and listed in the report; none left is a ``ValueError``.
    """
    results, out = Path(results), Path(out)
    loaded = loaded if loaded is not None else read_runs(results, grid=grid)
    records = list(loaded.records)
    sessions, bad_sessions = _sessions(results)
    if grid is not None:
        sessions = [s for s in sessions if s.get("name") == grid.name]
    if not records:
        why = "; ".join(str(s) for s in loaded.skipped[:3])
        raise ValueError(f"{results} holds no finished runs{' of this grid' if grid is not None else ''} "
                         f"({results / RUNS_FILE} is missing or empty"
                         + (f"; {len(loaded.skipped)} records skipped: {why}" if why else "") + ")")
    check_consistent(records)
    out.mkdir(parents=True, exist_ok=True)
    runs = [an.to_run(r) for r in records]
    styles = _styles([r.algorithm for r in runs])
    md: list[str] = [f"# {title or 'pickwise benchmark report'}", ""]

    if sessions:
        md += ["## How these results were made", ""]
        for s in sessions:
            md.append(f"- `{s.get('command', '?')}` — wall time {_num(s.get('wall_seconds'))} s "
                      f"({s.get('finished', 0)} runs finished, {s.get('skipped', 0)} skipped as already done, "
                      f"{s.get('failed', 0)} failed; {s.get('jobs', '?')} processes; {s.get('started', '')})")
        if command:
            md.append(f"- `{command}`")
        descs = ([grid.description] if grid is not None and getattr(grid, "description", "") else
                 list(dict.fromkeys(s["description"] for s in sessions if isinstance(s.get("description"), str)
                                    and s.get("description"))))
        md += ["", *[d.strip() + "\n" for d in descs]]
    elif command:
        md += [f"Report: `{command}`", ""]
    if notes:
        md += [notes.strip(), ""]
    versions = next((r.get("versions") for r in records if isinstance(r.get("versions"), dict) and r["versions"]), {})
    md += [f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items()) or 'not recorded'}.", ""]

    # what was left out
    if loaded.skipped or loaded.recovered or loaded.duplicates or loaded.missing or bad_sessions:
        md += ["## Records left out or recovered", ""]
        if loaded.skipped:
            md += [f"{len(loaded.skipped)} record(s) of {RUNS_FILE} could not be used and are **not** in any table "
                   f"or figure below ({len(records)} runs are):", ""]
            md += [f"- {s.where}: {s.reason}" for s in loaded.skipped]
            md.append("")
        if loaded.recovered:
            md += [f"{len(loaded.recovered)} run(s) were rebuilt from their own records ({RUNS_DIR}/<id>.jsonl, "
                   f"complete) because their line in {RUNS_FILE} was torn or missing: "
                   + ", ".join(f"`{i}`" for i in loaded.recovered), ""]
        if loaded.missing:
            shown = ", ".join(f"`{i}`" for i in loaded.missing[:20])
            more = f" and {len(loaded.missing) - 20} more" if len(loaded.missing) > 20 else ""
            md += [f"{len(loaded.missing)} of the grid's {len(grid.cells)} runs have no finished record: {shown}{more}.",
                   ""]
        if bad_sessions:
            md += [f"Left out of the command list: {'; '.join(str(s) for s in bad_sessions)}.", ""]

    # the runs
    md += ["## Runs", ""]
    tab = defaultdict(lambda: {"algos": set(), "seeds": set(), "runs": 0, "n_pool": set(), "n_test": set(),
                               "rounds": set()})
    for rec, r in zip(records, runs):
        t = tab[(r.dataset, r.model, r.k)]
        t["algos"].add(r.algorithm if r.kind == "pool" else f"{r.algorithm}/{r.order}")
        t["seeds"].add(r.seed)
        t["runs"] += 1
        t["n_pool"].add(rec.get("n_pool"))
        t["n_test"].add(rec.get("n_test"))
        t["rounds"].add(rec["config"]["rounds"])
    fmt_set = lambda s: ",".join(str(v) for v in sorted(s, key=str) if v is not None) or "?"  # noqa: E731
    md.append(_md(["dataset", "model", "k", "pool N", "test", "rounds", "seeds", "runs", "algorithms"],
                  [[d, m, k, fmt_set(t["n_pool"]), fmt_set(t["n_test"]), fmt_set(t["rounds"]), len(t["seeds"]),
                    t["runs"], len(t["algos"])] for (d, m, k), t in sorted(tab.items())]))
    md.append("")

    # the settings used
    header, rows, differ = _settings_table(records)
    _write_csv(out / "settings.csv", [dict(zip(header, r)) for r in rows], header)
    from .config import TRAINING_DEFAULTS

    md += ["## Settings used", "",
           "What every run of each setting was configured with, read from the run records (several values are "
           "joined by \" / \"; max_train / max_test \"all\": the whole split). Training: the model's hidden "
           "width, dropout, the most epochs and optimiser steps per round, mini-batch size, learning rate, "
           "and the training accuracy that stops an epoch loop early. "
           + ("Differ from `pickwise bench`'s defaults: "
              + ", ".join(f"{k} (default {'none' if TRAINING_DEFAULTS[k] is None else TRAINING_DEFAULTS[k]})"
                          for k in differ) + "."
              if differ else "Every training value is `pickwise bench`'s default."), "",
           _md(header, rows), ""]

    # penalty matrices
    md += ["## Pairwise penalty matrices", "",
           "Cell (row i, column j): in how many settings (dataset, model, k) i beat j, each setting adding "
           "the fraction of its checkpoints (initial + k, + 2k, + 4k, … until random reaches 0.99 of its final "
           "mean accuracy) where the paired two-sided t-test over the first min(n_i, n_j, 5) seeds has p < 0.05 "
           "with mean difference > 0. The checkpoint at the initial labels (round 0, before any selection: every "
           "arm of a seed trains on the same labels there) is left out. Bottom row: column mean over all rows "
           "(diagonal included); lower = beaten less often = better. Stream runs are read at each checkpoint by "
           "linear interpolation of their (labels, accuracy) records.", ""]
    for group in an.groups(runs):
        pm = an.group_penalty(runs, group)
        n_set = len(pm.settings)
        used = [(s, p) for s, p in zip(pm.settings, pm.per_setting) if p.L]
        empty = [s for s, p in zip(pm.settings, pm.per_setting) if not p.L]
        label = {"pool": "pool strategies"}.get(group, f"pool strategies + stream selectors on {group} streams")
        png = f"penalty_{_file_part(group)}.png"
        plot_penalty(pm, out / png, f"{label}\n({len(used)} of {n_set} settings with checkpoints)")
        rows = [{"winner": n, **{m: float(pm.matrix[i, j]) for j, m in enumerate(pm.names)}}
                for i, n in enumerate(pm.names)]
        rows.append({"winner": "column mean", **{m: float(v) for m, v in zip(pm.names, pm.column_means)}})
        _write_csv(out / f"penalty_{_file_part(group)}.csv", rows, ["winner", *pm.names])
        md += [f"### {label}", "", f"![penalty {group}]({png})", "",
               f"{n_set} settings; kept checkpoints per setting: "
               + ("; ".join(f"{'/'.join(map(str, s))}: {list(p.checkpoints)}" for s, p in used) or "none"), ""]
        if empty:
            md += [f"**{len(empty)} of {n_set} settings add nothing** (no checkpoint after the initial labels "
                   "before random — stream-uniform where a setting has no random runs — reaches 0.99 of its final "
                   "mean accuracy, or no baseline runs): " + ", ".join('/'.join(map(str, s)) for s in empty) + ".",
                   ""]
        ref = an.REFERENCE_COLUMN_MEANS.get(group, {})
        n_used = len(used)
        header = ["algorithm", "column mean", f"per setting (÷ {n_used})"]
        body = [[n, float(v), float(v) / n_used if n_used else float("nan")] for n, v in zip(pm.names, pm.column_means)]
        poster = [n for n in an.POSTER_SET if n in pm.names]
        if ref:
            sub = pm.restricted(poster) if len(poster) == len(an.POSTER_SET) else None
            header += ["poster's 7 only", "VeSSAL poster (ref.)"]
            for row in body:
                name = row[0]
                ours = sub is not None and name in poster
                row.append(float(sub.column_means[poster.index(name)]) if ours else float("nan"))
                row.append(ref.get(name, float("nan")))
        md += [_md(header, body), ""]

    # LAR
    lrows = an.lar_rows(runs)
    if lrows:
        summary = an.lar_summary(lrows)
        _write_csv(out / "lar.csv", lrows)
        _write_csv(out / "lar_summary.csv", summary)
    if lrows and summary:  # every point outside the curves (runs shorter than the smallest n_u/N): no figure
        plot_lar(summary, out / "lar.png", styles)
        n_flat = sum(r["status"] == "flat baseline" for r in lrows)
        n_counted = sum(r["status"] in ("ok", "not reached", "flat baseline") for r in lrows)
        md += ["## Label amplification ratio", "",
               "LAR(n_u) = n_u / n_a: n_a = labels the learner's mean curve needs to reach the baseline's mean "
               "accuracy at n_u labels (linear interpolation; label counts include the initial labels). Baseline: "
               "random for the pool group; stream-uniform of the same order for the stream groups. N = pool size. "
               "Each cell: the mean over datasets of the defined values. Not defined, and left out of means and "
               "figure: n_u at or below the initial labels (before any selection); and a **flat baseline** — the "
               "baseline's accuracy at n_u is no higher than the learner's at the initial labels, where the ratio "
               f"would be n_u / n_0 whatever either did ({n_flat} of {n_counted} dataset points here; a cell says "
               "how many of its datasets were flat, e.g. \"1.20 (1 flat)\"). '—': no defined value, or the learner "
               "did not reach the baseline's accuracy on some dataset (LAR < 1 there, see lar.csv) — a mean without "
               "that dataset would flatter it.", "", "![LAR](lar.png)", ""]
        for g in dict.fromkeys(r["group"] for r in summary):
            base = an.POOL_BASELINE if g == "pool" else an.STREAM_BASELINE
            keys = sorted({(r["model"], r["k"]) for r in summary if r["group"] == g})
            for m, k in keys:
                rows = [r for r in summary if (r["group"], r["model"], r["k"]) == (g, m, k)]
                fr = [f for f in LAR_SHOWN if any(abs(r["fraction"] - f) < 1e-9 for r in rows)]
                if not fr:
                    continue
                body = []
                for algo in dict.fromkeys(r["algorithm"] for r in rows):
                    vals = {round(r["fraction"], 2): r for r in rows if r["algorithm"] == algo}
                    cells = []
                    for f in fr:
                        r = vals.get(round(f, 2))
                        if r is None:
                            cells.append("—")
                            continue
                        v = "—" if math.isnan(r["lar_mean"]) else f"{r['lar_mean']:.2f}"
                        cells.append(v + (f" ({r['n_flat']} flat)" if r["n_flat"] else ""))
                    body.append([algo, *cells])
                ref = f" (poster: {an.REFERENCE_LAR[g]})" if g in an.REFERENCE_LAR else ""
                md += [f"**{g}, vs {base}, {m}, k = {k}**{ref}", "",
                       _md(["algorithm", *[f"n_u/N = {f:g}" for f in fr]], body), ""]

    # area under the curve
    arows = an.auc_rows(runs)
    _write_csv(out / "auc.csv", arows)
    md += ["## Area under the learning curve", "",
           "Per setting: AUC = mean test accuracy over the labelled range every run of the setting covers "
           "(\"labels\", trapezoid area / width); final = test accuracy at the range's end. Both are the mean "
           "± standard error over seeds (runs = number of seeds; a single run has no standard error). Also in "
           "auc.csv.", ""]
    for (d, m, k) in dict.fromkeys((r["dataset"], r["model"], r["k"]) for r in arows):
        rows = [r for r in arows if (r["dataset"], r["model"], r["k"]) == (d, m, k)]
        lo, hi = rows[0]["from"], rows[0]["to"]
        md += [f"**{d}, {m}, k = {k}** (labels {lo:g}–{hi:g})", "",
               _md(["algorithm", "kind", "runs", "AUC", "final"],
                   [[r["algorithm"], r["kind"], r["n_runs"], _pm(r["auc_mean"], r["auc_se"]),
                     _pm(r["final_mean"], r["final_se"])] for r in rows]), ""]

    # selection time
    trows = an.selection_time_rows(runs)
    _write_csv(out / "selection_time.csv", trows)
    plot_selection_time(trows, out / "selection_time.png", styles)
    ks = sorted({r["k"] for r in trows})
    agg: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in trows:
        agg[(r["algorithm"], r["kind"])][r["k"]].append(r["select_seconds"])
    md += ["## Selection time against batch size", "",
           "Seconds per round spent choosing (pool: `select`; stream: embedding + decisions over one window), "
           "mean over datasets and seeds (per dataset in selection_time.csv). Training time is not included.", "",
           "![selection time](selection_time.png)", "",
           _md(["algorithm", "kind", *[f"k={k}" for k in ks]],
               [[a, kind, *[float(np.nanmean(v[k])) if k in v and not np.all(np.isnan(v[k])) else float("nan")
                            for k in ks]]
                for (a, kind), v in sorted(agg.items())], fmt="{:.3g}"), ""]

    # stopping rule
    srows = an.stopping_rows(runs)
    if srows:
        from ..stopping import THRESHOLD, WINDOW

        _write_csv(out / "stopping.csv", srows)
        md += ["## Stopping rule", "",
               f"Stabilising predictions (Bloodgood & Vijay-Shanker 2009): every round's model predicts a fixed stop "
               f"set (up to 1000 items unlabelled at the start); the rule fires at the first round where Cohen's kappa "
               f"with the previous round's predictions, averaged over the last {WINDOW} rounds, reaches {THRESHOLD}. "
               f"Per setting: *stop* = labels where it fired (mean ± se over the runs that fired; *fired* = runs "
               f"that fired of all runs), *plateau* = the first checkpoint where the mean accuracy reaches "
               f"{an.PLATEAU_FRACTION:.0%} of its final value, *final* = mean accuracy at the end, *lost* = final "
               f"accuracy minus accuracy at the stop (mean ± se over the runs that fired: what stopping there costs). "
               "A rule that never fires within the run is \"—\". Also in stopping.csv.", ""]
        for (d, m, k) in dict.fromkeys((r["dataset"], r["model"], r["k"]) for r in srows):
            rows = [r for r in srows if (r["dataset"], r["model"], r["k"]) == (d, m, k)]
            md += [f"**{d}, {m}, k = {k}** (labels up to {rows[0]['end']:g})", "",
                   _md(["algorithm", "kind", "fired", "stop", "plateau", "final", "lost"],
                       [[r["algorithm"], r["kind"], f"{r['n_fired']}/{r['n_runs']}",
                         _pm(r["stop_mean"], r["stop_se"], "{:.0f}") if r["n_fired"] else "—",
                         f"{r['plateau']:g}", f"{r['final_mean']:.3f}",
                         _pm(r["loss_mean"], r["loss_se"]) if r["n_fired"] else "—"] for r in rows]), ""]

    # learning curves
    _write_csv(out / "learning_curves.csv", an.mean_curves(runs))
    md += ["## Learning curves", "",
           "Mean ± standard error over seeds (legend: number of runs) at the checkpoints initial + j·k; stream "
           "runs are interpolated there (one value per label count). Random (pool) is the dashed black "
           "reference in every panel; stream-uniform is dotted grey. All recorded points in learning_curves.csv.",
           ""]
    by: dict[tuple[str, str, int], list[an.Run]] = defaultdict(list)
    for r in runs:
        by[r.setting].append(r)
    for (d, m, k), rs in sorted(by.items()):
        png = f"curves_{_file_part(d)}_{_file_part(m)}_k{k}.png"
        plot_setting_curves(rs, out / png, f"{d}, {m}, k={k}", styles)
        md += [f"![{d} {m} k={k}]({png})", ""]

    fails, _ = _jsonl_tolerant(results / FAILURES_FILE)
    done = {r["id"] for r in records}
    wanted = {c.id for c in grid.cells} if grid is not None else None
    open_fails = {f["id"]: f for f in fails if isinstance(f, dict) and isinstance(f.get("id"), str)
                  and f["id"] not in done and (wanted is None or f["id"] in wanted)}
    if open_fails:
        md += ["## Failed runs (not in the results)", ""]
        for i, f in open_fails.items():
            err = f.get("error")
            last = err.strip().splitlines()[-1] if isinstance(err, str) and err.strip() else "no error recorded"
            md.append(f"- `{i}`: {last}")
        md.append("")

    path = out / "report.md"
    text = "\n".join(md)
    path.write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(text, out, title=title or "pickwise benchmark report"),
                                     encoding="utf-8")
    return path


def _file_part(name: str) -> str:
    """A name made safe for a file name (own datasets may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(name)) or "x"
