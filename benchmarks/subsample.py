"""Compute-efficient acquisition on MNIST: full-pool MC-dropout entropy vs candidate subsampling.

Runs, for each seed, the same initial labels and batch size with
  full      MCDropout(max_entropy, T draws) scoring the whole pool every round
  sub-A     Subsample(full, alpha=A): score only A candidates drawn by softmax(history / tau)
  random
and prints accuracy per round (mean over seeds), items scored per round and scoring wall time.

    PICKWISE_DATA=../shared/data .venv/bin/python benchmarks/subsample.py            # the committed table
    PICKWISE_DATA=../shared/data .venv/bin/python benchmarks/subsample.py --quick    # a smoke run
"""

from __future__ import annotations

import sys

# benchmarks/select.py would shadow the standard library's `select` module
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("benchmarks")]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--initial", type=int, default=100)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--alphas", default="2000,6000", help="candidate pool sizes")
    ap.add_argument("--tau", type=float, default=0.1, help="softmax temperature over historical entropy values")
    ap.add_argument("--n-draws", type=int, default=64, help="MC-dropout passes (the paper's 64 for entropy)")
    ap.add_argument("--max-train", type=int, default=None, help="pool size (default: all 60,000)")
    ap.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds, args.max_train, args.alphas, args.n_draws = 1, 2, 3000, "300", 8

    import torch

    torch.set_num_threads(2)
    from pickwise import MCDropout, Random, holdout, initial_pool, pool_rounds
    from pickwise.adapters import TorchClassifier, mlp
    from pickwise.data import load
    from pickwise.wrappers import Subsample

    ds = load("mnist")
    x, y = ds.x_train, ds.y_train
    if args.max_train:
        x, y = x[: args.max_train], y[: args.max_train]
    evaluate = holdout(ds.x_test, ds.y_test)
    alphas = [int(a) for a in args.alphas.split(",")]

    def make_model():
        # dropout p = 0.5 before the head, as in the paper's MC-dropout settings; head-only MC
        return TorchClassifier(mlp(784, 10, hidden=(256,), dropout=0.5), n_classes=10, epochs=50, max_steps=500)

    def arms():
        full = MCDropout(score="max_entropy", n_draws=args.n_draws, chunk_size=8192)
        yield "full", full
        for a in alphas:
            yield f"sub-{a}", Subsample(full, alpha=a, tau=args.tau)
        yield "random", Random()

    results: dict[str, list[list]] = {}
    t_all = time.perf_counter()
    for seed in range(args.seeds):
        pool = initial_pool(len(x), args.initial, y, seed=seed, n_classes=10)
        for name, strategy in arms():
            recs = list(
                pool_rounds(make_model, strategy, x, pool, y, k=args.k, seed=seed, evaluate=evaluate, rounds=args.rounds)
            )
            results.setdefault(name, []).append(recs)
            print(
                f"seed {seed} {name:<10} final acc {recs[-1].metrics['accuracy']:.4f}  "
                f"scoring {sum(r.select_seconds for r in recs):.1f} s",
                flush=True,
            )

    names = list(results)
    n_rounds = args.rounds + 1
    print(f"\nMNIST pool {len(x)}, initial {args.initial}, k {args.k}, {args.rounds} rounds, {args.seeds} seeds, "
          f"T = {args.n_draws}, tau = {args.tau}; total wall {time.perf_counter() - t_all:.0f} s\n")
    print("accuracy per round (mean over seeds ± standard error)")
    print("| labels | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for r in range(n_rounds):
        cells = []
        for n in names:
            acc = np.array([runs[r].metrics["accuracy"] for runs in results[n]])
            se = acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0
            cells.append(f"{acc.mean():.4f} ± {se:.4f}")
        print(f"| {results[names[0]][0][r].n_labeled} | " + " | ".join(cells) + " |")
    print("\nitems scored and scoring wall time per selection round (mean over seeds)")
    print("| arm | items scored, round 0 | items scored, later rounds | scoring s, round 0 | scoring s per later round | mean final accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in names:
        runs = results[n]
        first = np.mean([rs[0].n_scored for rs in runs])
        later = np.mean([r.n_scored for rs in runs for r in rs[1:-1]])
        t0 = np.mean([rs[0].select_seconds for rs in runs])
        t1 = np.mean([r.select_seconds for rs in runs for r in rs[1:-1]])
        fin = np.mean([rs[-1].metrics["accuracy"] for rs in runs])
        print(f"| {n} | {first:.0f} | {later:.0f} | {t0:.2f} | {t1:.3f} | {fin:.4f} |")


if __name__ == "__main__":
    main()
