"""Selection time of TypiClust and ProbCover (pickwise.strategies.coldstart) on a synthetic pool.

    python benchmarks/coldstart.py                 # n = 100,000, d = 64, k = 1000, zero labels
    python benchmarks/coldstart.py --quick         # n = 10,000, k = 100 (a smoke run, seconds)
    python benchmarks/coldstart.py --data gaussian # one isotropic Gaussian: no band pruning at all

Data: ``blobs`` (default) is a mixture standing in for a self-supervised embedding: ``--classes``
classes, each a mixture of 10 Gaussian blobs (unit variance, centres N(0, 2²) per coordinate),
float64. ``gaussian`` is N(0, I): the worst case for ProbCover's δ-ball graph, whose pairs are
pruned by a band along the first principal axis (useless when every axis has the same spread).

Printed per phase (wall seconds, this process; set OMP_NUM_THREADS to pin the BLAS threads):
- TypiClust: k-means into |L| + k clusters, then the picks (typicality within the clusters).
- ProbCover: the purity heuristic's δ (k-means with K = classes, then each point's nearest point
  of another cluster: O(n²·d)), the δ-ball graph (O(n²·d) at worst, O(edges) memory), the greedy.
Each is also run through ``select`` once end to end. Not a timed test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# keep this folder off the path (its select.py would shadow the standard library's select module)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import numpy as np

from pickwise.pool import Pool
from pickwise.strategies.coldstart import (
    ProbCover,
    TypiClust,
    _ball_graph,
    _rows_of,
    kmeans_labels,
    probcover_greedy,
    purity_delta,
    typiclust_pick,
)


def synthetic(n: int, d: int, classes: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(size=(n, d))
    centres = rng.normal(scale=2.0, size=(classes * 10, d))
    return centres[rng.integers(0, classes * 10, size=n)] + rng.normal(size=(n, d))


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"  {label:<44s} {time.perf_counter() - t:8.2f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--data", choices=("blobs", "gaussian"), default="blobs")
    ap.add_argument("--delta", type=float, default=None, help="ProbCover's δ (default: the purity heuristic)")
    ap.add_argument("--quick", action="store_true", help="n = 10,000, k = 100")
    ap.add_argument("--skip-select", action="store_true", help="phases only, no end-to-end select runs")
    args = ap.parse_args()
    if args.quick:
        args.n, args.k = 10_000, 100
    x = synthetic(args.n, args.d, args.classes, args.data)
    pool = Pool.empty(args.n, n_classes=args.classes)
    print(f"pool {args.n} x {args.d} ({args.data}, {args.classes} classes), k = {args.k}, zero labels; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    print("TypiClust (phases)")
    rng = np.random.default_rng(0)
    clusters = timed(f"k-means into {args.k} clusters", lambda: kmeans_labels(x, args.k, rng=rng))
    sizes = np.bincount(clusters)
    picks = timed("picks (typicality in the clusters)", lambda: typiclust_pick(x, clusters, np.zeros(args.n, bool), args.k))
    print(f"  cluster sizes: min {sizes.min()}, median {int(np.median(sizes))}, max {sizes.max()}; {len(set(picks))} picks")

    print("ProbCover (phases)")
    rng = np.random.default_rng(0)
    if args.delta is None:
        pseudo = timed(f"k-means, K = {args.classes}", lambda: kmeans_labels(x, args.classes, rng=rng, mode="full"))
        delta = timed("purity δ (nearest point of another cluster)", lambda: purity_delta(x, pseudo, chunk_size=512))
    else:
        delta = args.delta
    prio = rng.permutation(args.n)
    order, indptr, indices = timed(f"δ-ball graph, δ = {delta:.4g}", lambda: _ball_graph(x, delta, chunk_size=1024,
                                                                                   max_edges=400_000_000))
    print(f"  edges: {indices.shape[0]:,} ({indices.shape[0] / args.n:.1f} per point, "
          f"{(indices.nbytes + indptr.nbytes) / 2**20:.0f} MiB)")
    nodes = timed("greedy", lambda: probcover_greedy(indptr, indices, np.ones(args.n, bool), np.zeros(args.n, bool),
                                                     args.k, priority=prio[order]))
    covered = np.zeros(args.n, bool)
    covered[_rows_of(indptr, indices, nodes)] = True
    print(f"  coverage after {args.k} picks: {covered.mean():.3f}")

    if not args.skip_select:
        print("end to end (select, features=x)")
        timed("TypiClust.select", lambda: TypiClust(features="x").select(None, x, pool, args.k, rng=np.random.default_rng(0)))
        timed(f"ProbCover(delta={delta:.4g}).select", lambda: ProbCover(features="x", delta=delta, max_edges=400_000_000)
              .select(None, x, pool, args.k, rng=np.random.default_rng(0)))


if __name__ == "__main__":
    main()
