"""``pickwise report``: report.md with PNG figures and CSV tables from a results folder.

Sections: the runs (and the bench commands with their wall times, from ``sessions.jsonl``);
pairwise penalty matrices (heat maps with numbers, one per group, see :mod:`.analysis`); label
amplification ratios; area under the learning curve; selection time against batch size; learning
curves (mean ± standard error over seeds) per setting. Every table is also written as CSV.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..records import read_jsonl
from . import analysis as an
from .curves import mean_curve
from .penalty import PenaltyMatrix
from .runner import FAILURES_FILE, load_runs

SESSIONS_FILE = "sessions.jsonl"
DPI = 80
LAR_SHOWN = (0.06, 0.1, 0.2, 0.3, 0.4, 0.5)


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
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


# -- figures --------------------------------------------------------------------------------------


def plot_penalty(pm: PenaltyMatrix, path: Path, title: str) -> None:
    plt = _plt()
    a = len(pm.names)
    mat = np.vstack([pm.matrix, pm.column_means[None, :]])
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * a, 1.2 + 0.5 * (a + 1)), dpi=DPI)
    vmax = max(float(pm.matrix.max()), 1e-9)
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
    fig.savefig(path)
    plt.close(fig)


def plot_setting_curves(runs: Sequence[an.Run], path: Path, title: str) -> None:
    plt = _plt()
    panels = ["pool"] if any(r.kind == "pool" for r in runs) else []
    panels += sorted({r.order for r in runs if r.kind == "stream" and r.order})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), dpi=DPI, sharey=True, squeeze=False)
    random = [r.curve for r in runs if r.kind == "pool" and r.algorithm == an.POOL_BASELINE]
    for ax, panel in zip(axes[0], panels):
        mine = [r for r in runs if (r.kind == "pool" if panel == "pool" else r.order == panel)]
        by: dict[str, list] = defaultdict(list)
        for r in sorted(mine, key=lambda r: r.seed):
            by[r.algorithm].append(r.curve)
        for name in an._ordered_names(mine):
            mc = mean_curve(by[name])
            ax.plot(mc.n, mc.mean, lw=1.2, label=f"{name} ({mc.n_runs})")
            if mc.n_runs > 1:
                ax.fill_between(mc.n, mc.mean - mc.se, mc.mean + mc.se, alpha=0.2)
        if panel != "pool" and random:
            mc = mean_curve(random)
            ax.plot(mc.n, mc.mean, "k--", lw=1, label="random (pool)")
        ax.set_title(title + (" — pool" if panel == "pool" else f" — stream {panel}"), fontsize=8)
        ax.set_xlabel("labelled items", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("test accuracy", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_lar(summary: Sequence[Mapping[str, Any]], path: Path) -> None:
    plt = _plt()
    panels = sorted({(r["group"], r["model"], r["k"]) for r in summary})
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.5 * ncol, 2.8 * nrow), dpi=DPI, squeeze=False)
    for ax, (g, m, k) in zip(axes.flat, panels):
        rows = [r for r in summary if (r["group"], r["model"], r["k"]) == (g, m, k)]
        for algo in dict.fromkeys(r["algorithm"] for r in rows):
            pts = sorted((r["fraction"], r["lar_mean"]) for r in rows if r["algorithm"] == algo)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=2, lw=1.2, label=algo)
        base = an.POOL_BASELINE if g == "pool" else an.STREAM_BASELINE
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set_title(f"{g}: vs {base}, k={k}", fontsize=8)
        ax.set_xlabel("n_u / N", fontsize=8)
        ax.set_ylabel("LAR (mean over datasets)", fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_selection_time(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=DPI)
    by: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not math.isnan(r["select_seconds"]):
            by[(r["algorithm"], r["kind"])][r["k"]].append(r["select_seconds"])
    for i, ((algo, kind), ks) in enumerate(sorted(by.items())):
        xs = sorted(ks)
        ax.plot(xs, [np.mean(ks[x]) for x in xs], marker="o", ms=3, lw=1.2, color=plt.cm.tab20(i % 20),
                ls="-" if kind == "pool" else "--", label=algo if kind == "pool" else f"{algo} ({kind})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size k (stream: labels per window)", fontsize=8)
    ax.set_ylabel("selection seconds per round", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, ncol=2)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- the report -----------------------------------------------------------------------------------


def _sessions(results: Path) -> list[dict[str, Any]]:
    return read_jsonl(results / SESSIONS_FILE)


def check_consistent(records: Sequence[Mapping[str, Any]]) -> None:
    """Refuse to pool runs of different configurations into one setting (say a changed pool size).

    Within a setting (dataset, model, k) every run must share the pool size and initial labels, and
    the runs of one algorithm must differ in nothing but the seed.
    """
    setting: dict[tuple, tuple[str, dict]] = {}
    algo: dict[tuple, tuple[str, dict]] = {}
    for r in records:
        cfg = r["config"]
        key = (cfg["dataset"], cfg["model"], cfg["k"])
        mine = {"n_pool": r.get("n_pool"), "initial": cfg["initial"]}
        first = setting.setdefault(key, (r["id"], mine))
        bad = [k for k in mine if mine[k] != first[1][k]]
        rest = {k: v for k, v in cfg.items() if k != "seed"}
        other = algo.setdefault((*key, cfg["kind"], cfg["strategy"], cfg.get("order")), (r["id"], rest))
        bad += [k for k in rest if rest[k] != other[1].get(k)]
        if bad:
            raise ValueError(
                f"runs {first[0] if bad[0] in mine else other[0]} and {r['id']} are in one setting "
                f"{'/'.join(map(str, key))} "
                f"but differ in {', '.join(dict.fromkeys(bad))}; pass the grid (--grid) to report one grid's runs"
            )


def write_report(results: str | os.PathLike, out: str | os.PathLike, *, title: str | None = None,
                 command: str | None = None, notes: str | None = None, grid: Any = None) -> Path:
    """Write ``out/report.md`` (+ PNG + CSV) from the finished runs in ``results``; returns its path.

    ``grid`` (a :class:`~pickwise.bench.config.Grid`): report only its runs (a results folder may hold
    several grids'). ``command``: the report's own command line, shown under the bench commands;
    ``notes``: markdown placed right after them (e.g. how the results compare with the papers).
    """
    results, out = Path(results), Path(out)
    records = load_runs(results)
    sessions = _sessions(results)
    if grid is not None:
        ids = {c.id for c in grid.cells}
        records = [r for r in records if r["id"] in ids]
        sessions = [s for s in sessions if s.get("name") == grid.name]
    if not records:
        raise ValueError(f"{results} holds no finished runs{' of this grid' if grid is not None else ''} "
                         f"({results / 'runs.jsonl'} is missing or empty)")
    check_consistent(records)
    out.mkdir(parents=True, exist_ok=True)
    runs = [an.to_run(r) for r in records]
    md: list[str] = [f"# {title or 'pickwise benchmark report'}", ""]

    if sessions:
        md += ["## How these results were made", ""]
        for s in sessions:
            md.append(f"- `{s.get('command', '?')}` — wall time {s.get('wall_seconds', float('nan')):.0f} s "
                      f"({s.get('finished', 0)} runs finished, {s.get('skipped', 0)} skipped as already done, "
                      f"{s.get('failed', 0)} failed; {s.get('jobs', '?')} processes; {s.get('started', '')})")
        if command:
            md.append(f"- `{command}`")
        descs = ([grid.description] if grid is not None and getattr(grid, "description", "") else
                 list(dict.fromkeys(s["description"] for s in sessions if s.get("description"))))
        md += ["", *[d.strip() + "\n" for d in descs]]
    elif command:
        md += [f"Report: `{command}`", ""]
    if notes:
        md += [notes.strip(), ""]
    versions = records[0].get("versions", {})
    md += [f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}.", ""]

    # the runs
    md += ["## Runs", ""]
    tab = defaultdict(lambda: {"algos": set(), "seeds": set(), "runs": 0, "n_pool": 0, "n_test": 0, "rounds": set()})
    for rec, r in zip(records, runs):
        t = tab[(r.dataset, r.model, r.k)]
        t["algos"].add(r.algorithm if r.kind == "pool" else f"{r.algorithm}/{r.order}")
        t["seeds"].add(r.seed)
        t["runs"] += 1
        t["n_pool"], t["n_test"] = rec.get("n_pool"), rec.get("n_test")
        t["rounds"].add(rec["config"]["rounds"])
    md.append(_md(["dataset", "model", "k", "pool N", "test", "rounds", "seeds", "runs", "algorithms"],
                  [[d, m, k, t["n_pool"], t["n_test"], ",".join(map(str, sorted(t["rounds"]))), len(t["seeds"]),
                    t["runs"], len(t["algos"])] for (d, m, k), t in sorted(tab.items())]))
    md.append("")

    # penalty matrices
    md += ["## Pairwise penalty matrices", "",
           "Cell (row i, column j): in how many settings (dataset, model, k) i beat j, each setting adding "
           "the fraction of its checkpoints (initial, initial + k, + 2k, + 4k, … until random reaches 0.99 of its "
           "final mean accuracy) where the paired two-sided t-test over the first min(n_i, n_j, 5) seeds has "
           "p < 0.05 with mean difference > 0. Bottom row: column mean over all rows (diagonal included); "
           "lower = beaten less often = better. Stream runs are read at each checkpoint by linear interpolation "
           "of their (labels, accuracy) records.", ""]
    for group in an.groups(runs):
        pm = an.group_penalty(runs, group)
        n_set = len(pm.settings)
        label = {"pool": "pool strategies"}.get(group, f"pool strategies + stream selectors on {group} streams")
        png = f"penalty_{group}.png"
        plot_penalty(pm, out / png, f"{label}\n({n_set} settings)")
        rows = [{"winner": n, **{m: float(pm.matrix[i, j]) for j, m in enumerate(pm.names)}}
                for i, n in enumerate(pm.names)]
        rows.append({"winner": "column mean", **{m: float(v) for m, v in zip(pm.names, pm.column_means)}})
        _write_csv(out / f"penalty_{group}.csv", rows, ["winner", *pm.names])
        md += [f"### {label}", "", f"![penalty {group}]({png})", "",
               f"{n_set} settings; kept checkpoints per setting: "
               + "; ".join(f"{'/'.join(map(str, s))}: {list(p.checkpoints)}"
                           for s, p in zip(pm.settings, pm.per_setting)),
               ""]
        ref = an.REFERENCE_COLUMN_MEANS.get(group, {})
        header = ["algorithm", "column mean", "per setting"]
        body = [[n, float(v), float(v) / max(n_set, 1)] for n, v in zip(pm.names, pm.column_means)]
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
        plot_lar(summary, out / "lar.png")
        md += ["## Label amplification ratio", "",
               "LAR(n_u) = n_u / n_a: n_a = labels the learner's mean curve needs to reach the baseline's mean "
               "accuracy at n_u labels (linear interpolation; label counts include the initial labels). Baseline: "
               "random for the pool group; stream-uniform of the same order for the stream groups. Mean over "
               "datasets; '—' where the learner did not reach the baseline's accuracy on some dataset (LAR < 1 "
               "there, see lar.csv) or no data. N = pool size.", "", "![LAR](lar.png)", ""]
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
                    vals = {round(r["fraction"], 2): r["lar_mean"] for r in rows if r["algorithm"] == algo}
                    body.append([algo, *[vals.get(round(f, 2), float("nan")) for f in fr]])
                ref = f" (poster: {an.REFERENCE_LAR[g]})" if g in an.REFERENCE_LAR else ""
                md += [f"**{g}, vs {base}, {m}, k = {k}**{ref}", "",
                       _md(["algorithm", *[f"n_u/N = {f:g}" for f in fr]], body), ""]

    # area under the curve
    arows = an.auc_rows(runs)
    _write_csv(out / "auc.csv", arows)
    md += ["## Area under the learning curve", "",
           "Mean test accuracy over the labelled range that every run of the setting covers (trapezoid area / "
           "width), mean over seeds; ± standard error in auc.csv. Final = mean accuracy at the range's end.", ""]
    algos = list(dict.fromkeys((r["algorithm"], r["kind"]) for r in arows))
    settings = list(dict.fromkeys((r["dataset"], r["model"], r["k"]) for r in arows))
    look = {(r["dataset"], r["model"], r["k"], r["algorithm"], r["kind"]): r for r in arows}
    md += [_md(["algorithm", *[f"{d} k={k}" for d, m, k in settings]],
               [[a if kind == "pool" else f"{a} ({kind[7:]})",
                 *[look[(d, m, k, a, kind)]["auc_mean"] if (d, m, k, a, kind) in look else float("nan")
                   for d, m, k in settings]] for a, kind in algos], fmt="{:.3f}"), ""]

    # selection time
    trows = an.selection_time_rows(runs)
    _write_csv(out / "selection_time.csv", trows)
    plot_selection_time(trows, out / "selection_time.png")
    ks = sorted({r["k"] for r in trows})
    agg: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in trows:
        agg[(r["algorithm"], r["kind"])][r["k"]].append(r["select_seconds"])
    md += ["## Selection time against batch size", "",
           "Seconds per round spent choosing (pool: `select`; stream: embedding + decisions over one window), "
           "mean over datasets and seeds (per dataset in selection_time.csv). Training time is not included.", "",
           "![selection time](selection_time.png)", "",
           _md(["algorithm", "kind", *[f"k={k}" for k in ks]],
               [[a, kind, *[float(np.nanmean(v[k])) if k in v else float("nan") for k in ks]]
                for (a, kind), v in sorted(agg.items())], fmt="{:.3g}"), ""]

    # learning curves
    _write_csv(out / "learning_curves.csv", an.mean_curves(runs))
    md += ["## Learning curves", "", "Mean ± standard error over seeds (legend: number of runs). All points in "
           "learning_curves.csv.", ""]
    by: dict[tuple[str, str, int], list[an.Run]] = defaultdict(list)
    for r in runs:
        by[r.setting].append(r)
    for (d, m, k), rs in sorted(by.items()):
        png = f"curves_{d}_{m}_k{k}.png"
        plot_setting_curves(rs, out / png, f"{d}, {m}, k={k}")
        md += [f"![{d} {m} k={k}]({png})", ""]

    fails = read_jsonl(results / FAILURES_FILE)
    done = {r["id"] for r in load_runs(results)}
    wanted = {c.id for c in grid.cells} if grid is not None else None
    open_fails = {f["id"]: f for f in fails if f["id"] not in done and (wanted is None or f["id"] in wanted)}
    if open_fails:
        md += ["## Failed runs (not in the results)", ""]
        md += [f"- `{i}`: {f['error'].strip().splitlines()[-1]}" for i, f in open_fails.items()]
        md.append("")

    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
