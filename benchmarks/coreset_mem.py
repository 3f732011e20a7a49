"""Core-set on float32 embeddings: peak memory and time before and after issue 16, one thread.

    python benchmarks/coreset_mem.py            # N ∈ {100k, 200k}, d = 256, k = 100, 1,000 labelled
    python benchmarks/coreset_mem.py --quick    # N = 100k only

Embeddings (N, d) float32 = N(0, 1) + one of 8 cluster offsets, read through
:class:`pickwise.Precomputed` as ``pickwise select --strategy coreset --embeddings`` reads them.
Rows, each measured in the same run (best of 2 interleaved; peak = tracemalloc peak of one more
call, the embeddings themselves excluded):

- before: ``CoreSet(dtype="float64")``, the old default (a float64 copy of the embeddings);
- now: ``CoreSet()`` (dtype "auto": float32 kept, exact float64 distances from widened blocks);
- fast: ``CoreSet(exact=False)`` (float32 kept, products in float32).

The picks of "now" must equal "before" exactly; "fast" is compared and the count of differing
picks printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# benchmarks/select.py would shadow the standard library's select module
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import numpy as np

from pickwise import Pool
from pickwise.precomputed import Precomputed
from pickwise.strategies import CoreSet


def run(n: int, d: int = 256, k: int = 100, n_lab: int = 1000) -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, d), dtype=np.float32)
    emb += (3.0 * rng.standard_normal((8, d))).astype(np.float32)[rng.integers(8, size=n)]
    model = Precomputed(embeddings=emb)
    lab = np.sort(rng.choice(n, size=n_lab, replace=False))
    pool = Pool.empty(n).label(lab, np.zeros(n_lab, dtype=np.int64))
    variants = {"before (float64 copy)": CoreSet(dtype="float64"), "now (auto, exact)": CoreSet(),
                "fast (exact=False)": CoreSet(exact=False)}
    best = {name: float("inf") for name in variants}
    picks = {}
    for _ in range(2):
        for name, s in variants.items():
            t0 = time.perf_counter()
            picks[name] = s.select(model, model.x, pool, k, rng=np.random.default_rng(1))
            best[name] = min(best[name], time.perf_counter() - t0)
    peak = {}
    for name, s in variants.items():
        tracemalloc.start()
        s.select(model, model.x, pool, k, rng=np.random.default_rng(1))
        peak[name] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    ref = picks["before (float64 copy)"]
    print(f"\nN = {n:,}, d = {d}, float32 embeddings ({emb.nbytes / 1e6:.0f} MB), k = {k}, {n_lab} labelled")
    print(f"{'variant':<24} {'time s':>7} {'peak MB':>8} {'peak / before':>13} {'time / before':>13}  picks vs before")
    for name in variants:
        diff = int(np.sum(picks[name] != ref))
        print(f"{name:<24} {best[name]:>7.2f} {peak[name]:>8.1f} {peak[name] / peak['before (float64 copy)']:>13.2f} "
              f"{best[name] / best['before (float64 copy)']:>13.2f}  {'identical' if not diff else f'{diff} differ'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 100k only")
    args = ap.parse_args()
    for n in (100_000,) if args.quick else (100_000, 200_000):
        run(n)


if __name__ == "__main__":
    main()
