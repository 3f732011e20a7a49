"""Why does MC-dropout BALD fall below random in the paper-protocol report? (issue 13, item 4)

    PICKWISE_DATA=../shared/data python benchmarks/bald_study.py --out /tmp/bald_study
    python benchmarks/bald_study.py --out /tmp/bald_study --arms grid,gal_dropout --seeds 3   # a subset

Every arm is one model / training / MC setting; inside an arm every strategy (random included) runs
with that same model, the same initial labels (seeded) and the same k, so each strategy is compared
with the random baseline of its own arm, paired by seed. Settings (dataset, pool, k) are those of
benchmarks/paper.toml where BALD lost most (letter and pendigits at k = 100, mnist at k = 100) plus
MNIST at Gal et al.'s acquisition size k = 10. Arms:

- ``grid``: the committed report's model — MLP 64 hidden units, dropout 0.2 before the head (the only
  dropout layer, so head-only MC = whole-network MC), ≤ 200 Adam steps per round (lr 1e-3, batch 64,
  stop at 99 % training accuracy), T = 20.
- ``gal_dropout``: dropout 0.5 (Gal et al. 2017's rate before the dense head), else as ``grid``.
- ``trained``: dropout 0.5 and up to 2000 steps (train to 99 % training accuracy as the papers do).
- ``t100``: as ``trained`` with T = 100 draws.
- ``wide``: as ``trained`` with 256 hidden units (VeSSAL's width).
- ``ensemble``: as ``trained``; BALD over a deterministic ensemble of 5 independently seeded MLPs
  (the mutual information of the committee = QBC's mean KL to the consensus, ``qbc_kl``); random
  runs with the same ensemble as its model.

Strategies per arm: random, bald (top-k), batchbald (arms ``trained``; k = 100 only), entropy. The
ensemble arm: random and qbc_kl. Reported per (setting, arm, strategy): area under the learning
curve (mean test accuracy over the labelled range, trapezoid), final accuracy, the mean ECE of the
round models, and the paired difference to the arm's random (mean over seeds, its standard error
and a two-sided one-sample t-test p over seeds). Records go to ``--out`` (JSON Lines per run:
a rerun resumes); the tables to ``--report`` (default docs/results/bald).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import numpy as np

#: (name, dataset, pool size, initial labels, k, rounds)
SETTINGS = {
    "letter_k100": ("letter", 4000, 100, 100, 8),
    "pendigits_k100": ("pendigits", 4000, 100, 100, 8),
    "mnist_k100": ("mnist", 4000, 100, 100, 8),
    "mnist_k10": ("mnist", 4000, 100, 10, 30),
}
BASE = {"hidden": 64, "dropout": 0.2, "max_steps": 200, "T": 20, "ensemble": 0}
ARMS = {
    "grid": {},
    "gal_dropout": {"dropout": 0.5},
    "trained": {"dropout": 0.5, "max_steps": 2000},
    "t100": {"dropout": 0.5, "max_steps": 2000, "T": 100},
    "wide": {"dropout": 0.5, "max_steps": 2000, "hidden": 256},
    "ensemble": {"dropout": 0.5, "max_steps": 2000, "ensemble": 5},
}


def strategies_for(arm: str, k: int) -> list[str]:
    if arm == "ensemble":
        return ["random", "qbc_kl"]
    out = ["random", "bald", "entropy"]
    if arm == "trained" and k >= 100:
        out.append("batchbald")
    return out


def run_one(setting: str, arm: str, strategy: str, seed: int, out: Path, data_root: str | None) -> list[dict]:
    """One run's rounds (resumed from its records file when present)."""
    import torch

    from pickwise.adapters import TorchClassifier, mlp
    from pickwise.bench.runner import load_data
    from pickwise.catalog import make_strategy
    from pickwise.committee import Committee
    from pickwise.loop import initial_pool, pool_rounds
    from pickwise.metrics import holdout

    torch.set_num_threads(1)
    dataset, n_pool, initial, k, rounds = SETTINGS[setting]
    cfg = {**BASE, **ARMS[arm]}
    data = load_data(dataset, max_train=n_pool, max_test=2000, model="mlp", data_root=data_root)
    n_features = int(np.prod(data.x.shape[1:]))

    def member() -> TorchClassifier:
        return TorchClassifier(mlp(n_features, data.n_classes, hidden=(cfg["hidden"],), dropout=cfg["dropout"]),
                               n_classes=data.n_classes, epochs=100, max_steps=cfg["max_steps"], batch_size=64,
                               lr=1e-3, stop_at_train_accuracy=0.99)

    make = (lambda: Committee(member, n_members=cfg["ensemble"])) if cfg["ensemble"] else member
    opts = {"n_draws": cfg["T"]} if strategy in ("bald", "batchbald") else {}
    strategy_obj = make_strategy(strategy, **opts)
    pool = initial_pool(len(data.x), initial, data.y, seed=seed, n_classes=data.n_classes)
    path = out / f"{setting}__{arm}__{strategy}__{seed}.jsonl"
    rows = []
    for rec in pool_rounds(make, strategy_obj, data.x, pool, data.y, k=k, seed=seed,
                           evaluate=holdout(data.x_test, data.y_test), rounds=rounds, records=path,
                           config={"setting": setting, "arm": arm, **cfg}):
        rows.append({"n": rec.n_labeled, "acc": rec.metrics["accuracy"], "ece": rec.metrics["ece"],
                     "nll": rec.metrics["nll"]})
    return rows


def area(rows: list[dict]) -> float:
    n = np.array([r["n"] for r in rows], float)
    a = np.array([r["acc"] for r in rows], float)
    return float(np.sum((a[1:] + a[:-1]) * np.diff(n)) / 2 / (n[-1] - n[0]))


def summarise(results: dict, seeds: list[int]) -> list[dict]:
    from scipy import stats

    table = []
    for (setting, arm), by_strategy in results.items():
        base = by_strategy.get("random")
        for strategy, by_seed in by_strategy.items():
            common = [s for s in seeds if s in by_seed]
            aucs = np.array([area(by_seed[s]) for s in common])
            row = {"setting": setting, "arm": arm, "strategy": strategy, "seeds": len(common),
                   "auc": aucs.mean(), "final": np.mean([by_seed[s][-1]["acc"] for s in common]),
                   "ece": np.mean([np.mean([r["ece"] for r in by_seed[s]]) for s in common]),
                   "diff": float("nan"), "se": float("nan"), "p": float("nan")}
            if base is not None and strategy != "random":
                paired = [s for s in common if s in base]
                d = np.array([area(by_seed[s]) - area(base[s]) for s in paired])
                if len(d) >= 2:
                    row.update(diff=d.mean(), se=d.std(ddof=1) / np.sqrt(len(d)),
                               p=float(stats.ttest_1samp(d, 0.0).pvalue) if d.std() > 0 else float("nan"))
            table.append(row)
    return table


def write_report(table: list[dict], report: Path, command: str, wall: float) -> None:
    report.mkdir(parents=True, exist_ok=True)
    cols = ["setting", "arm", "strategy", "seeds", "auc", "final", "ece", "diff", "se", "p"]
    with open(report / "bald.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in table:
            w.writerow({c: (f"{r[c]:.4f}" if isinstance(r[c], float) else r[c]) for c in cols})
    lines = [f"`{command}` ({wall / 60:.0f} min on one thread)\n",
             "| setting | arm | strategy | seeds | AUC | final acc | mean ECE | AUC − random (± se) | p |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        diff = "—" if np.isnan(r["diff"]) else f"{r['diff']:+.3f} ± {r['se']:.3f}"
        p = "—" if np.isnan(r["p"]) else f"{r['p']:.3f}"
        lines.append(f"| {r['setting']} | {r['arm']} | {r['strategy']} | {r['seeds']} | {r['auc']:.3f} | "
                     f"{r['final']:.3f} | {r['ece']:.3f} | {diff} | {p} |")
    (report / "bald.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the run records (a rerun resumes)")
    ap.add_argument("--report", default=str(_HERE.parent / "docs" / "results" / "bald"))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data-root", default=os.environ.get("PICKWISE_DATA"))
    args = ap.parse_args()
    for name, known in (("settings", SETTINGS), ("arms", ARMS)):
        bad = [v for v in getattr(args, name).split(",") if v not in known]
        if bad:
            ap.error(f"--{name}: unknown {bad}; known: {', '.join(known)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    results: dict = {}
    jobs = [(s, a, st, seed) for s in args.settings.split(",") for a in args.arms.split(",")
            for st in strategies_for(a, SETTINGS[s][3]) for seed in seeds]
    for i, (setting, arm, strategy, seed) in enumerate(jobs, 1):
        t1 = time.perf_counter()
        rows = run_one(setting, arm, strategy, seed, out, args.data_root)
        results.setdefault((setting, arm), {}).setdefault(strategy, {})[seed] = rows
        print(f"[{i}/{len(jobs)}] {setting} {arm} {strategy} seed {seed}: AUC {area(rows):.3f} "
              f"final {rows[-1]['acc']:.3f} ({time.perf_counter() - t1:.0f} s)", file=sys.stderr, flush=True)
    table = summarise(results, seeds)
    command = "PICKWISE_DATA=../shared/data python benchmarks/bald_study.py " + " ".join(sys.argv[1:])
    write_report(table, Path(args.report), command, time.perf_counter() - t0)
    (out / "summary.json").write_text(json.dumps(table, default=float))


if __name__ == "__main__":
    main()
