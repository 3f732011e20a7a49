"""Candidate subsampling on a pool of N items whose score history is on disk: one process against 2 Ray actors.

Writes two earlier rounds of scores as Parquet (round 1: every item; round 2: a random 5%; ids = item
indices, as ``pickwise score`` writes them), then draws one round's candidates (alpha = 5% of the
unlabelled items, k = 1000) three ways, timed in one run:

* reference: ``latest_scores`` on the driver (an O(N) array) and ``Subsample.select`` with an inner
  strategy that records the candidates it is asked to score (the single-machine path);
* local: :func:`pickwise.engine.subsample.sharded_candidates` on a LocalEngine (1 shard);
* ray: the same on 2 Ray actors (127.0.0.1 only, no dashboard, no usage statistics, its own temp
  dir), each reading only its own items' history (row groups pruned by id statistics).

Prints wall time (ray: selection only, and start-up + loading separately), the driver's peak RSS
growth and each actor's peak RSS, and checks that all three give the same candidates. Not a test::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed_candidates.py --n 10000000
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/select.py would shadow the standard library's `select` (imported by subprocess, hence Ray)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import resource
import secrets
import shutil
import tempfile
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_history(folder: Path, n: int, seed: int) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rounds = []
    for r, frac in enumerate((1.0, 0.05)):
        out = folder / f"r{r + 1}"
        out.mkdir(parents=True)
        ids = np.arange(n) if frac == 1.0 else np.sort(rng.choice(n, int(frac * n), replace=False))
        step = 1_000_000
        for i, lo in enumerate(range(0, ids.shape[0], step)):
            part = ids[lo : lo + step]
            table = pa.table({"id": part, "score_entropy": rng.gamma(2.0, 0.5, size=part.shape[0])})
            pq.write_table(table, out / f"part-{i:06d}.parquet", row_group_size=65536)
        rounds.append(out)
    return rounds


class Recorder:
    needs = ()
    name = "recorder"

    def __init__(self) -> None:
        self.seen = None

    def scores(self, model, x, indices, *, rng):
        self.seen = np.array(indices)
        return np.zeros(indices.shape[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--labeled", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from pickwise import Pool
    from pickwise.engine import LocalEngine
    from pickwise.engine.score import latest_scores
    from pickwise.engine.subsample import history_loaders, sharded_candidates
    from pickwise.wrappers import Subsample

    tmp = Path(tempfile.mkdtemp(prefix="pwcand-"))
    try:
        t = time.perf_counter()
        rounds = write_history(tmp, args.n, args.seed)
        print(f"history: {args.n:,} items, 2 rounds of Parquet in {time.perf_counter() - t:.1f} s")
        labeled = np.sort(np.random.default_rng(args.seed + 1).choice(args.n, args.labeled, replace=False))

        base = rss_mb()
        t = time.perf_counter()
        loaders = history_loaders(rounds, args.n, 1, exclude=labeled)
        with LocalEngine.from_loaders(loaders) as eng:
            local = sharded_candidates(eng, Subsample(Recorder(), alpha=args.alpha), args.k,
                                       rng=np.random.default_rng(args.seed))
        t_local = time.perf_counter() - t
        print(f"local engine (1 shard): {local.shape[0]:,} candidates in {t_local:.1f} s")

        t = time.perf_counter()
        values = latest_scores(rounds, args.n)
        rec = Recorder()
        sub = Subsample(rec, alpha=args.alpha)
        sub.values = values
        pool = Pool.empty(args.n, n_classes=2).label(labeled, np.zeros(labeled.shape[0], dtype=np.int64))
        sub.select(None, np.zeros((args.n, 1), dtype=np.float32), pool, args.k, rng=np.random.default_rng(args.seed))
        t_ref = time.perf_counter() - t
        ref = rec.seen
        del values, sub, pool
        one_process_peak = peak_mb() - base
        print(f"one process (latest_scores + Subsample.select): {t_ref:.1f} s; peak RSS growth {one_process_peak:,.0f} MB")

        os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                           "RAY_AUTH_TOKEN": secrets.token_hex(32)})
        import ray

        from pickwise.engine import RayEngine

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "ray"))
        loaders = history_loaders(rounds, args.n, 2, exclude=labeled)
        eng = RayEngine.from_loaders(loaders)
        t_start = time.perf_counter() - t
        driver_before = rss_mb()
        t = time.perf_counter()
        on_ray = sharded_candidates(eng, Subsample(Recorder(), alpha=args.alpha), args.k,
                                    rng=np.random.default_rng(args.seed))
        t_ray = time.perf_counter() - t
        actor_peaks = eng.map(_peak)
        driver_growth = rss_mb() - driver_before
        eng.close()
        ray.shutdown()
        print(f"ray (2 actors): {t_ray:.1f} s (+ {t_start:.1f} s start-up and loading the shards); "
              f"driver RSS growth {driver_growth:,.0f} MB (the {on_ray.shape[0]:,} candidates are "
              f"{on_ray.nbytes / 2**20:.0f} MB); actor peaks {', '.join(f'{p:,.0f}' for p in actor_peaks)} MB")
        same = np.array_equal(local, ref) and np.array_equal(on_ray, ref)
        print(f"same candidates (reference, local, ray): {same}")
        print(f"ray / one process: {t_ray / t_ref:.2f}x; local engine / one process: {t_local / t_ref:.2f}x")
        if not same:
            raise SystemExit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _peak(state: dict, _: object) -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
