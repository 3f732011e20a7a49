"""Local and Ray engines against the single-machine functions: top-k, BADGE (k-means++), core-set (k-center).

A synthetic pool (``--n`` rows; probabilities over ``--classes`` classes, embeddings of ``--dim``
float32), one selection of ``--k`` by each method, timed in one run:

* reference: pickwise.select.top_k / kmeanspp_seeding / kcenter_greedy on the whole arrays;
* local: pickwise.engine.LocalEngine with ``--shards`` shards;
* ray: pickwise.engine.RayEngine with ``--shards`` actors on a Ray instance started here (loopback
  only, no dashboard, no usage statistics, its own temp dir), timed separately for start-up and
  for sending the shards.

Every engine's picks are checked to equal the reference's. Not a test; a run of the defaults takes
about 2 minutes on 2 cores::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed.py            # 1M × 64, k = 1000
    .venv/bin/python benchmarks/distributed.py --n 100000 --k 200 --shards 4
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
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
