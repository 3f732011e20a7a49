"""MC dropout against one deterministic pass: TorchClassifier.mc_scores (T draws, BALD) / predict_proba.

    python benchmarks/mc.py                      # 784→512→10 MLP, dropout 0.5 before the head, N = 100k, T = 20
    python benchmarks/mc.py --n 20000 --threads 2

The target (issue 16) is mc_scores ≤ 2× predict_proba. Rows: the default path (head-only, the T
draws of a chunk as one product with the stacked masked heads), the per-draw head-only loop (the
plain reference), and the generic path (the whole network per draw, ``head_only=False``). Every
time is the best of ``--repeat`` runs, interleaved, so a burst of load elsewhere hits all rows
alike; the maximum difference of the BALD scores to the reference is printed beside.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import closing
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# benchmarks/select.py would shadow the standard library's ``select`` module: keep this folder off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="pool rows (default 100,000)")
    ap.add_argument("--draws", type=int, default=20, help="MC draws T (default 20)")
    ap.add_argument("--hidden", type=int, default=512, help="hidden width (default 512)")
    ap.add_argument("--classes", type=int, default=10, help="classes K (default 10)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts (default 3)")
    args = ap.parse_args()

    import torch

    from pickwise.adapters import TorchClassifier, mlp
    from pickwise.scores import bald
    from pickwise.threads import limit_threads

    rng = np.random.default_rng(0)
    x = rng.random((args.n, 784), dtype=np.float32)
    y = rng.integers(args.classes, size=args.n)
    T = args.draws

    def make(head_only: bool | None) -> TorchClassifier:
        net = mlp(784, args.classes, hidden=(args.hidden,), dropout=0.5)
        clf = TorchClassifier(net, n_classes=args.classes, max_steps=20, head_only=head_only, chunk_size=1024)
        return clf.fit(x[:1000], y[:1000], seed=0)

    with limit_threads(args.threads):
        clf, generic = make(None), make(False)
        clf.predict_proba(x[:2048])  # warm-up

        def per_draw() -> np.ndarray:
            out = np.empty(args.n)
            with closing(clf._mc_chunks(x, T, 0, None, batched_head=False)) as chunks:
                for sl, p in chunks:
                    out[sl] = bald(p)
            return out

        rows = {
            "predict_proba (one deterministic pass)": lambda: clf.predict_proba(x),
            "mc_scores, head-only, batched heads (default)": lambda: clf.mc_scores(x, {"b": bald}, T, seed=0)["b"],
            "mc_scores, head-only, per draw (reference)": per_draw,
            "mc_scores, generic (whole network per draw)": lambda: generic.mc_scores(x, {"b": bald}, T, seed=0)["b"],
        }
        best = {name: float("inf") for name in rows}
        results = {}
        for _ in range(args.repeat):
            for name, fn in rows.items():
                t0 = time.perf_counter()
                results[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    ref = results["mc_scores, head-only, per draw (reference)"]
    det = best["predict_proba (one deterministic pass)"]
    print(f"### MC dropout: 784→{args.hidden}→{args.classes} MLP, dropout 0.5 before the head, N = {args.n:,}, "
          f"T = {T}, {args.threads} thread(s)\n")
    print("| path | time (s) | × predict_proba | max |BALD − reference| |")
    print("|---|---:|---:|---:|")
    for name, sec in best.items():
        diff = "" if name.startswith("predict") else f"{np.abs(results[name] - ref).max():.1e}"
        print(f"| {name} | {sec:.3f} | {sec / det:.2f}× | {diff} |")
    print(f"\ntorch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"best of {args.repeat}")


if __name__ == "__main__":
    main()
