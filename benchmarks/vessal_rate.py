"""VeSSAL's realised query rate per window, the published sampler against PacedVeSSAL and stream-uniform.

A script, not a test (issue 13, item 2):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vessal_rate.py            # docs/results/stream_rate/
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vessal_rate.py --quick    # one dataset, one rate: a smoke run

For each dataset (mnist, fashion-mnist, letter), arrival order (iid; pc = sorted by the first principal
component, the VeSSAL paper's non-i.i.d. stream) and rate q (1 %, 5 %, 20 %), a stream of ``--stream``
training items (a seeded subset, plus ``--initial`` initial labels outside it) is cut into ``--windows``
windows; ``pickwise.stream.stream_segments`` retrains the MLP (hidden 64: D = 640 on the 10-class sets)
after every window and evaluates it on ``--test`` test items. Selectors, all under protocol "official"
(a fresh selector every window):

* ``vessal, budget`` — the published sampler with budget B = round(q·stream), each window its share k_s
  at the adaptive rate (the authors' protocol, which produced the paper's numbers);
* ``vessal, fixed q`` — the published sampler at the fixed rate q (what its estimator realises);
* ``vessal_paced, fixed q`` and ``vessal_paced, budget`` — ``PacedVeSSAL`` in the same two settings;
* ``stream_uniform, fixed q`` — each item with probability q.

Columns: the largest per-window |realised rate − q|; the mean realised rate; the largest in-window drift
max_t |queries among the window's first t items − q·t| / window (front-loading: a budget spent early
shows here even when the window's total is exact); the accuracy after the last window and the mean over
the windows. Everything is single-threaded (OMP/MKL/torch threads pinned to 1).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# Python puts this script's folder first on sys.path; a sibling named like a stdlib module
# (benchmarks/select.py) would then shadow it. Drop that entry before importing numpy.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse  # noqa: E402
import csv  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from pickwise.catalog import model_factory  # noqa: E402
from pickwise.data import load  # noqa: E402
from pickwise.metrics import holdout  # noqa: E402
from pickwise.stream import PacedVeSSAL, StreamUniform, VeSSAL, stream_order, stream_segments  # noqa: E402
from pickwise.utils import derive_rng  # noqa: E402

SELECTORS = {
    # label: (template for a rate q, whether the run takes a budget)
    "vessal, budget": (lambda q: VeSSAL(), True),
    "vessal, fixed q": (lambda q: VeSSAL(q=q), False),
    "vessal_paced, budget": (lambda q: PacedVeSSAL(), True),
    "vessal_paced, fixed q": (lambda q: PacedVeSSAL(q=q), False),
    "stream_uniform, fixed q": (lambda q: StreamUniform(q=q), False),
}
FIELDS = ["dataset", "order", "q", "selector", "seed", "windows", "max_window_dev", "mean_rate", "max_drift",
          "final_accuracy", "mean_accuracy", "labels", "seconds"]


def data_root() -> str:
    return os.environ.get("PICKWISE_DATA") or str(_HERE.parent.parent / "shared" / "data")


def subset(name: str, n_stream: int, initial: int, n_test: int, seed: int):
    """x, y of ``initial + n_stream`` training rows and an evaluator on ``n_test`` test rows (seeded)."""
    ds = load(name, root=data_root())
    flat = lambda a: np.asarray(a, dtype=np.float32).reshape(len(a), -1)  # noqa: E731
    rng = np.random.default_rng(1000 + seed)
    tr = np.sort(rng.choice(len(ds.y_train), size=min(len(ds.y_train), n_stream + initial), replace=False))
    te = np.sort(rng.choice(len(ds.y_test), size=min(len(ds.y_test), n_test), replace=False))
    return flat(ds.x_train)[tr], ds.y_train[tr], holdout(flat(ds.x_test)[te], ds.y_test[te]), ds.n_classes


def one_run(x, y, evaluate, n_classes, *, order, q, label, seed, windows, initial, hidden, epochs):
    make_template, with_budget = SELECTORS[label]
    n = len(y)
    arrival = stream_order(order, x, y, rng=derive_rng(seed, 0))
    init = np.sort(derive_rng(seed, 1).choice(n, size=initial, replace=False))
    stream = arrival[~np.isin(arrival, init)]
    length = stream.size
    segment = -(-length // windows)
    budget = round(q * length) if with_budget else None
    make_model = model_factory("mlp", n_features=x.shape[1], n_classes=n_classes, hidden=hidden, epochs=epochs)
    start = time.perf_counter()
    recs = list(stream_segments(make_model, make_template(q), x, y, order=arrival, segment=segment, initial=init,
                                budget=budget, evaluate=evaluate, seed=seed, protocol="official"))
    seconds = time.perf_counter() - start
    where = np.empty(n, dtype=np.int64)
    where[stream] = np.arange(length)
    rates, drifts, curves = [], [], []
    grid = np.linspace(0.05, 1.0, 20)
    for r in recs[1:]:
        lo = (r.segment - 1) * segment
        hit = np.zeros(r.window)
        hit[where[np.asarray(r.queried, dtype=np.int64)] - lo] = 1
        drifts.append(float(np.max(np.abs(np.cumsum(hit) - q * np.arange(1, r.window + 1)))) / r.window)
        curves.append(np.cumsum(hit)[np.ceil(grid * r.window).astype(int) - 1] / (q * r.window))
        rates.append(r.rate)
    acc = [r.metrics["accuracy"] for r in recs[1:]]
    return {
        "windows": len(rates), "max_window_dev": max(abs(v - q) for v in rates), "mean_rate": float(np.mean(rates)),
        "max_drift": max(drifts), "final_accuracy": acc[-1], "mean_accuracy": float(np.mean(acc)),
        "labels": recs[-1].n_labels, "seconds": seconds, "rates": rates,
        "curve": (grid, np.mean(curves, axis=0)),  # queries among the first f·window, over q·window
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [s for s in SELECTORS if any(r["selector"] == s for r in rows)]
    fig, grid = plt.subplots(2, len(labels), figsize=(3.2 * len(labels), 6.6), squeeze=False)
    axes, lower = grid[0], grid[1]
    qs = sorted({r["q"] for r in rows})
    for ax, label in zip(lower, labels):
        for i, q in enumerate(qs):
            mine = [r for r in rows if r["selector"] == label and r["q"] == q]
            for j, r in enumerate(mine):
                f, c = r["curve"]
                ax.plot(f, c, color=f"C{i}", lw=0.7, alpha=0.6, label=f"q = {q:g}" if j == 0 else None)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel("position in the window (fraction)")
        ax.set_ylim(0, 2.5)
        ax.legend(fontsize=7, loc="upper left")
    lower[0].set_ylabel("queries so far / (q · window)")
    for ax, label in zip(axes, labels):
        mine = [r for r in rows if r["selector"] == label]
        for r in mine:
            jitter = np.exp(np.linspace(-0.12, 0.12, len(r["rates"])))
            ax.scatter(r["q"] * jitter, np.maximum(r["rates"], 1e-4), s=6, alpha=0.5,
                       color="C0" if r["order"] == "iid" else "C1", label=r["order"])
        ax.plot([qs[0] / 1.5, qs[-1] * 1.5], [qs[0] / 1.5, qs[-1] * 1.5], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(3e-3, 1.2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("target q")
        handles, names = ax.get_legend_handles_labels()
        uniq = dict(zip(names, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left")
    axes[0].set_ylabel("realised rate per window")
    fig.suptitle("top: realised query rate of every window against q; bottom: queries within a window against "
                 "the plan q·t (mean over windows; one line per dataset, order and seed); official protocol",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict], seeds: int) -> list[str]:
    """Markdown rows: one per (dataset, order, q, selector), the mean over seeds (max for the deviations)."""
    head = ("| dataset | order | q | selector | max per-window \\|rate − q\\| | same / q | mean rate "
            "| max in-window drift | final acc. | mean acc. | labels |")
    out = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        k = (r["dataset"], r["order"], r["q"], r["selector"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        grp = [r for r in rows if (r["dataset"], r["order"], r["q"], r["selector"]) == k]
        dev = max(r["max_window_dev"] for r in grp)
        drift = max(r["max_drift"] for r in grp)
        def mean(f: str, grp: list[dict] = grp) -> float:
            return float(np.mean([r[f] for r in grp]))

        out.append(f"| {k[0]} | {k[1]} | {k[2]:g} | {k[3]} | {dev:.3f} | {dev / k[2]:.2f} | {mean('mean_rate'):.3f} | "
                   f"{drift:.3f} | "
                   f"{mean('final_accuracy'):.3f} | {mean('mean_accuracy'):.3f} | {mean('labels'):.0f} |")
    return out


def summary(rows: list[dict]) -> list[str]:
    head = ("| selector | q | worst per-window \\|rate − q\\| | same / q | worst in-window drift | mean final acc. "
            "| mean of mean acc. |")
    out = [head, "|---|---|---|---|---|---|---|"]
    for label in SELECTORS:
        for q in sorted({r["q"] for r in rows}):
            grp = [r for r in rows if r["selector"] == label and r["q"] == q]
            if grp:
                dev = max(r["max_window_dev"] for r in grp)
                out.append(f"| {label} | {q:g} | {dev:.3f} | {dev / q:.2f} | "
                           f"{max(r['max_drift'] for r in grp):.3f} | "
                           f"{np.mean([r['final_accuracy'] for r in grp]):.3f} | "
                           f"{np.mean([r['mean_accuracy'] for r in grp]):.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist", "letter"])
    ap.add_argument("--orders", nargs="+", default=["iid", "pc"], choices=("iid", "pc", "class"))
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.05, 0.20])
    ap.add_argument("--selectors", nargs="+", default=list(SELECTORS), choices=list(SELECTORS), metavar="LABEL")
    ap.add_argument("--stream", type=int, default=4000, help="stream items (default: 4000)")
    ap.add_argument("--windows", type=int, default=8, help="windows (default: 8)")
    ap.add_argument("--initial", type=int, default=100, help="initial labels, not in the stream (default: 100)")
    ap.add_argument("--test", type=int, default=2000, help="test items evaluated (default: 2000)")
    ap.add_argument("--hidden", type=int, default=64, help="MLP width: D = classes × hidden (default: 64)")
    ap.add_argument("--epochs", type=int, default=20, help="training epochs per window (default: 20)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N−1 (default: 1)")
    ap.add_argument("--out", default=str(_HERE.parent / "docs" / "results" / "stream_rate"))
    ap.add_argument("--quick", action="store_true", help="mnist, iid, q = 0.2, 2000 items: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.orders, args.rates, args.stream = ["mnist"], ["iid"], [0.2], 2000
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = ("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vessal_rate.py " + shlex.join(sys.argv[1:])).rstrip()
    rows: list[dict] = []
    begin = time.perf_counter()
    for name in args.datasets:
        for seed in range(args.seeds):
            x, y, evaluate, n_classes = subset(name, args.stream, args.initial, args.test, seed)
            for order in args.orders:
                for q in args.rates:
                    for label in args.selectors:
                        res = one_run(x, y, evaluate, n_classes, order=order, q=q, label=label, seed=seed,
                                      windows=args.windows, initial=args.initial, hidden=args.hidden,
                                      epochs=args.epochs)
                        row = {"dataset": name, "order": order, "q": q, "selector": label, "seed": seed} | res
                        rows.append(row)
                        print(f"{name:>13} {order:>3} q={q:<5g} {label:<24} dev {res['max_window_dev']:.3f} "
                              f"mean {res['mean_rate']:.3f} drift {res['max_drift']:.3f} "
                              f"acc {res['final_accuracy']:.3f} ({res['seconds']:.1f} s)", flush=True)
    total = time.perf_counter() - begin
    with open(out / "rate.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS + ["rates"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in FIELDS} | {"rates": " ".join(f"{v:.4f}" for v in r["rates"])})
    plot(rows, out / "rate.png")
    lines = [
        "# VeSSAL rate control: realised query rate per window (issue 13, item 2)",
        "",
        f"Command (single-threaded; {total / 60:.1f} minutes on this machine):",
        "",
        f"    {command}",
        "",
        (f"Settings: {args.stream} stream items (a seeded subset of the training set) in {args.windows} windows, "
        f"{args.initial} initial labels, MLP hidden {args.hidden} ({args.epochs} epochs per window), accuracy on "
        f"{args.test} test items, protocol \"official\" (a fresh selector every window), seeds 0..{args.seeds - 1}. "
        "\"budget\": B = round(q·stream), each window its share at the adaptive rate (the authors' protocol); "
        "\"fixed q\": each window's fresh selector at the rate q. Deviation and drift: the worst over windows "
        "(and seeds); drift = max over the window's first t items of |queries − q·t| / window (front-loading)."),
        "",
        "## Summary over datasets and orders",
        "",
        *summary(rows),
        "",
        "## Every run",
        "",
        *table(rows, args.seeds),
        "",
        "Per-window rates: rate.csv (column rates); plot: rate.png.",
        "",
    ]
    (out / "rate.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out / 'rate.md'}, rate.csv, rate.png in {total:.0f} s")


if __name__ == "__main__":
    main()
