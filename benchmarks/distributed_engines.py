"""Local and Ray engines against the single-machine functions: top-k, BADGE (k-means++), core-set (k-center).

A synthetic pool (``--n`` rows; probabilities over ``--classes`` classes, embeddings of ``--dim``
float32), one selection of ``--k`` by each method, timed in one run:

* reference: pickwise.select.top_k / kmeanspp_seeding / kcenter_greedy on the whole arrays;
* local: pickwise.engine.LocalEngine with ``--shards`` shards;
* ray: pickwise.engine.RayEngine with ``--shards`` actors on a Ray instance started here (loopback
  only, no dashboard, no usage statistics, its own temp dir), timed separately for start-up and
  for sending the shards.

Every engine's picks are checked to equal the reference's. Then the opt-in approximations on the
local engine (pickwise.engine.approx): k-means|| for BADGE (``--kmp-rounds`` rounds, ℓ = 2k) and the
two-round composable core-set, each against the exact selection: time, and quality on a seeded
sample of 100,000 rows (k-means cost Σ min D² for BADGE's picks, covering radius from the labelled
set for core-set's), as ratios to the exact picks' values. Not a test; a run of the defaults takes
a few minutes on 2 cores::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed_engines.py            # 1M × 64, k = 1000
    .venv/bin/python benchmarks/distributed_engines.py --n 100000 --k 200 --shards 4
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/select.py would shadow the standard library's `select` (imported by subprocess, hence Ray)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import secrets
import shutil
import tempfile
import time

import numpy as np

from pickwise.embeddings import GradEmbedding, gradient_factor
from pickwise.engine import (
    LocalEngine,
    sharded_kcenter,
    sharded_kcenter_two_round,
    sharded_kmeans_parallel,
    sharded_kmeanspp,
    sharded_top_k,
)
from pickwise.progress import progress_bars
from pickwise.select import kcenter_greedy, kmeanspp_seeding, top_k


def make_pool(n: int, classes: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    """Clustered float32 embeddings h, gradient factors a = p − e_ŷ and the entropy score."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(200, dim)).astype(np.float32)
    h = centres[rng.integers(0, 200, size=n)] + rng.normal(size=(n, dim)).astype(np.float32)
    logits = rng.normal(scale=2.0, size=(n, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    score = -(p * np.log(p)).sum(axis=1)
    return {"a": gradient_factor(p).astype(np.float32), "h": h, "score": score}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_all(eng, pool: dict[str, np.ndarray], k: int, labelled: np.ndarray, seed: int) -> dict[str, tuple]:
    """The three selections on an engine (None = the single-machine functions)."""
    if eng is None:
        return {
            "top-k": timed(lambda: top_k(pool["score"], k, rng=np.random.default_rng(seed))),
            "BADGE": timed(lambda: kmeanspp_seeding(GradEmbedding(pool["a"], pool["h"]), k,
                                                    rng=np.random.default_rng(seed))),
            "core-set": timed(lambda: kcenter_greedy(pool["h"], k, centres=labelled, rng=np.random.default_rng(seed))),
        }
    return {
        "top-k": timed(lambda: sharded_top_k(eng, k, rng=np.random.default_rng(seed))),
        "BADGE": timed(lambda: sharded_kmeanspp(eng, k, rng=np.random.default_rng(seed))),
        "core-set": timed(lambda: sharded_kcenter(eng, k, centres=labelled, rng=np.random.default_rng(seed), x="h")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--labelled", type=int, default=100, help="labelled rows for core-set")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--kmp-rounds", type=int, default=5, help="k-means|| oversampling rounds (default 5)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    pool = make_pool(args.n, args.classes, args.dim, args.seed)
    labelled = pool["h"][: args.labelled] + 0.1
    print(f"pool: n={args.n:,} K={args.classes} d={args.dim} float32, k={args.k}, shards={args.shards}, "
          f"{args.labelled} labelled; made in {time.perf_counter() - t0:.1f} s")
    results: dict[str, dict[str, tuple]] = {}
    setup: dict[str, float] = {}
    with progress_bars(False):
        results["reference"] = run_all(None, pool, args.k, labelled, args.seed)
        eng, setup["local"] = timed(lambda: LocalEngine.from_arrays(pool, n_shards=args.shards))
        results["local"] = run_all(eng, pool, args.k, labelled, args.seed)
        if not args.no_ray:
            from pickwise.engine.ray import import_ray

            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # else Ray writes ~/.ray/auth_token
            tmp = tempfile.mkdtemp(prefix="pwray-")
            ray = import_ray(local=True)
            try:
                _, setup["ray start"] = timed(lambda: ray.init(
                    num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=tmp))
                from pickwise.engine import RayEngine

                eng, setup["ray"] = timed(lambda: RayEngine.from_arrays(pool, n_shards=args.shards))
                with eng:
                    results["ray"] = run_all(eng, pool, args.k, labelled, args.seed)
            finally:
                ray.shutdown()
                shutil.rmtree(tmp, ignore_errors=True)

    ref = results["reference"]
    print("\nset-up: " + ", ".join(f"{name} {sec:.2f} s" for name, sec in setup.items())
          + " (shards: splitting / sending the arrays)")
    print(f"{'method':10} {'reference s':>12} " + " ".join(f"{e + ' s':>10} {'×ref':>6}" for e in results if e != "reference")
          + "  same picks")
    for method in ref:
        row = f"{method:10} {ref[method][1]:12.3f} "
        same = []
        for engine, res in results.items():
            if engine == "reference":
                continue
            picks, sec = res[method]
            row += f"{sec:10.3f} {sec / ref[method][1]:6.2f} "
            same.append(bool(np.array_equal(picks, ref[method][0])))
        print(row + f"  {all(same)}")
    approximations(pool, args, labelled, ref)
    print(f"total {time.perf_counter() - t0:.1f} s")


def approximations(pool: dict[str, np.ndarray], args: argparse.Namespace, labelled: np.ndarray, ref: dict) -> None:
    """k-means|| and the two-round core-set on the local engine against the exact picks."""
    sample = np.random.default_rng(99).choice(args.n, size=min(args.n, 100_000), replace=False)
    a, h = pool["a"][sample].astype(np.float64), pool["h"][sample].astype(np.float64)
    sq = (a**2).sum(1) * (h**2).sum(1)

    def kmeans_cost(picks: np.ndarray) -> float:
        pa, ph = pool["a"][picks].astype(np.float64), pool["h"][picks].astype(np.float64)
        psq = (pa**2).sum(1) * (ph**2).sum(1)
        best = np.full(sample.shape[0], np.inf)
        for lo in range(0, sample.shape[0], 4096):
            sl = slice(lo, lo + 4096)
            d = sq[sl, None] + psq[None, :] - 2 * (a[sl] @ pa.T) * (h[sl] @ ph.T)
            best[sl] = d.min(axis=1)
        return float(np.maximum(best, 0).sum())

    def radius(picks: np.ndarray) -> float:
        c = np.vstack([labelled, pool["h"][picks]]).astype(np.float64)
        cc = (c**2).sum(1)
        best = np.full(sample.shape[0], np.inf)
        hh = (h**2).sum(1)
        for lo in range(0, sample.shape[0], 4096):
            sl = slice(lo, lo + 4096)
            best[sl] = (hh[sl, None] + cc[None, :] - 2 * h[sl] @ c.T).min(axis=1)
        return float(np.sqrt(np.maximum(best, 0).max()))

    eng = LocalEngine.from_arrays(pool, n_shards=args.shards)
    with progress_bars(False):
        kmp, t_kmp = timed(lambda: sharded_kmeans_parallel(eng, args.k, rng=np.random.default_rng(args.seed),
                                                           rounds=args.kmp_rounds))
        two, t_two = timed(lambda: sharded_kcenter_two_round(eng, args.k, centres=labelled,
                                                             rng=np.random.default_rng(args.seed), x="h"))
    print(f"\napproximations on the local engine ({args.shards} shards), quality on {sample.shape[0]:,} sampled rows:")
    print(f"{'method':32} {'s':>8} {'×exact s':>9} {'value':>12} {'÷ exact value':>14}")
    c_exact, c_kmp = kmeans_cost(ref["BADGE"][0]), kmeans_cost(kmp)
    print(f"{'BADGE k-means|| (r = ' + str(args.kmp_rounds) + ')':32} {t_kmp:8.2f} {t_kmp / ref['BADGE'][1]:9.2f} "
          f"{c_kmp:12.4g} {c_kmp / c_exact:14.3f}   (k-means cost; exact {c_exact:.4g})")
    r_exact, r_two = radius(ref["core-set"][0]), radius(two)
    print(f"{'core-set two-round':32} {t_two:8.2f} {t_two / ref['core-set'][1]:9.2f} {r_two:12.4g} "
          f"{r_two / r_exact:14.3f}   (covering radius; exact {r_exact:.4g})")


if __name__ == "__main__":
    main()
