"""Driver↔actor latency of one selection round on a local Ray: the L of docs/distributed.md's model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rpc_latency.py            # about 30 s on 2 cores
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rpc_latency.py --rounds 1000 --workers 2 4 8

A Ray instance started here (every listener on 127.0.0.1, no dashboard, no usage statistics, a throwaway
auth token, its own temporary directory, ``--cpus`` logical CPUs), then for each W in ``--workers``:

1. **raw Ray**, W plain actors of ``--cpus`` / W CPUs each, ``--rounds`` rounds after ``--warmup``,
   the three patterns interleaved round by round (so that load from elsewhere hits all three alike):
   * *call*: one ``actor.f.remote(x)`` and its ``ray.get`` — one round trip, the model's L;
   * *broadcast*: exact k-means++'s round shape — a new centre (``--dim`` float32, 138 = K + d for
     K = 10, d = 128) ``ray.put`` once, ``.remote(ref)`` on all W actors, ``ray.get`` of the W small
     replies (what :meth:`pickwise.engine.RayEngine.map` does);
   * *inline*: the same with the vector passed by value to each actor (no ``ray.put``).
   Median and 90th percentile per pattern.
2. **pickwise**: :func:`pickwise.engine.sharded_kmeanspp` (exact BADGE seeding, ``--k`` picks) on a tiny
   pool (``--n`` rows, K = 10, d = 128, float32) in W shards, on :class:`~pickwise.engine.RayEngine` and
   on :class:`~pickwise.engine.LocalEngine` (the reference: the same arithmetic without RPCs), best of
   ``--repeats`` interleaved runs; the picks must be equal. (Ray − local) / k is the latency of one
   real selection round, pickwise's own overhead included; the model charges it as (W + 3) · L.

On loopback there is no network: these are lower bounds for a cluster, where L adds the network's
round trip (the model's second case assumes 1 ms). Figures go to stdout; nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# benchmarks/select.py would shadow the standard library's `select` (imported by subprocess, hence Ray)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse
import logging
import os
import secrets
import shutil
import tempfile
import time
from typing import Any

import numpy as np


class Echo:
    """A plain actor: receives a centre, answers one float (the work of a round without the rows)."""

    def f(self, v: np.ndarray) -> float:
        return float(v[0])


def quantiles(seconds: list[float]) -> tuple[float, float]:
    """Median and 90th percentile, in milliseconds."""
    ms = np.asarray(seconds) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90))


def raw_rounds(ray: Any, w: int, cpus: float, dim: int, rounds: int, warmup: int, seed: int) -> dict[str, list[float]]:
    """The three raw patterns on W fresh actors, interleaved; seconds per round after the warm-up."""
    actors = [ray.remote(Echo).options(num_cpus=cpus / w).remote() for _ in range(w)]
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {"call": [], "broadcast": [], "inline": [], "submit": []}
    try:
        ray.get([a.f.remote(np.zeros(dim, dtype=np.float32)) for a in actors])  # every actor up
        for t in range(warmup + rounds):
            v = rng.normal(size=dim).astype(np.float32)  # a new centre every round, as in k-means++
            t0 = time.perf_counter()
            ray.get(actors[t % w].f.remote(v))
            t1 = time.perf_counter()
            ref = ray.put(v)
            ray.get([a.f.remote(ref) for a in actors])
            t2 = time.perf_counter()
            refs = [a.f.remote(v) for a in actors]
            t2b = time.perf_counter()
            ray.get(refs)
            t3 = time.perf_counter()
            if t >= warmup:
                times["call"].append(t1 - t0)
                times["broadcast"].append(t2 - t1)
                times["inline"].append(t3 - t2)
                times["submit"].append((t2b - t2) / w)  # the driver's own cost per call submitted
    finally:
        for a in actors:
            ray.kill(a)
    return times


def tiny_pool(n: int, seed: int) -> dict[str, np.ndarray]:
    """Gradient factors a (n, 10) and embeddings h (n, 128), float32: K + d = 138."""
    from pickwise.embeddings import gradient_factor

    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, 10))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    centres = rng.normal(scale=2.0, size=(50, 128))
    h = centres[rng.integers(0, 50, size=n)] + rng.normal(size=(n, 128))
    return {"a": gradient_factor(p).astype(np.float32), "h": h.astype(np.float32)}


def engine_rounds(pool: dict[str, np.ndarray], w: int, cpus: float, k: int, repeats: int,
                  seed: int, sums: str = "sequential") -> tuple[float, float, bool]:
    """Best-of-``repeats`` seconds of sharded_kmeanspp on RayEngine and LocalEngine (interleaved),
    and whether their picks are equal."""
    from pickwise.engine import LocalEngine, RayEngine, sharded_kmeanspp

    local = LocalEngine.from_arrays(pool, n_shards=w)
    best_ray, best_local, same = np.inf, np.inf, True
    with RayEngine.from_arrays(pool, n_shards=w, actor_options={"num_cpus": cpus / w}) as eng:
        sharded_kmeanspp(eng, min(k, 20), rng=np.random.default_rng(seed))  # warm-up: imports in the actors
        for _ in range(repeats):
            t0 = time.perf_counter()
            on_ray = sharded_kmeanspp(eng, k, rng=np.random.default_rng(seed), sums=sums)
            t1 = time.perf_counter()
            on_local = sharded_kmeanspp(local, k, rng=np.random.default_rng(seed))  # exact: the sequential sums
            t2 = time.perf_counter()
            best_ray, best_local = min(best_ray, t1 - t0), min(best_local, t2 - t1)
            same = same and bool(np.array_equal(on_ray, on_local))
    return best_ray, best_local, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4], help="actor counts W (default 2 4)")
    ap.add_argument("--cpus", type=float, default=2, help="Ray's logical CPUs, shared by the W actors (default 2)")
    ap.add_argument("--rounds", type=int, default=500, help="timed raw rounds per W (default 500)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed raw rounds first (default 50)")
    ap.add_argument("--dim", type=int, default=138, help="floats in a broadcast centre (default 138 = 10 + 128)")
    ap.add_argument("--n", type=int, default=4000, help="rows of the pickwise pool (default 4000)")
    ap.add_argument("--k", type=int, default=200, help="k-means++ picks = rounds (default 200)")
    ap.add_argument("--repeats", type=int, default=3, help="pickwise runs per engine, best taken (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in ("workers", "rounds", "dim", "n", "k", "repeats"):
        values = getattr(args, name)
        if min(values if isinstance(values, list) else [values]) < 1:
            ap.error(f"--{name} must be >= 1; got {values}")
    if args.warmup < 0 or args.cpus <= 0:
        ap.error(f"--warmup must be >= 0 and --cpus > 0; got {args.warmup} and {args.cpus}")
    if args.k > args.n:
        ap.error(f"--k {args.k} exceeds --n {args.n}")

    from pickwise.engine.ray import import_ray

    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # else Ray writes ~/.ray/auth_token
    ray = import_ray(local=True)  # loopback only and no usage statistics, set before ray is imported
    tmp = tempfile.mkdtemp(prefix="pwlat-")
    t_start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tmp)
    print(f"Ray {ray.__version__} on {ray.util.get_node_ip_address()}, {args.cpus:g} logical CPUs, "
          f"{os.cpu_count()} cores; started in {time.perf_counter() - t_start:.1f} s")
    pool = tiny_pool(args.n, args.seed)
    try:
        print(f"\nraw Ray, {args.rounds} rounds after {args.warmup} (ms: median / p90)")
        print(f"{'W':>3} {'call (L)':>14} {'broadcast':>14} {'inline':>14} {'submit / call':>14} {'broadcast ÷ L':>14}")
        raw = {}
        for w in args.workers:
            raw[w] = {name: quantiles(ts) for name, ts in raw_rounds(
                ray, w, args.cpus, args.dim, args.rounds, args.warmup, args.seed).items()}
            r = raw[w]
            print(f"{w:3d} " + " ".join(f"{r[p][0]:6.3f} / {r[p][1]:5.3f}" for p in ("call", "broadcast", "inline", "submit"))
                  + f" {r['broadcast'][0] / r['call'][0]:14.2f}")
        print(f"\npickwise sharded_kmeanspp, n = {args.n:,}, k = {args.k}, K + d = 138, best of {args.repeats}")
        print(f"{'W':>3} {'Ray s':>8} {'local s':>8} {'Ray ÷ local':>11} {'same picks':>10} "
              f"{'round (ms)':>10} {'÷ L':>6} {'model (W+3)·L':>14}")
        rounds = {}
        for w in args.workers:
            t_ray, t_local, same = engine_rounds(pool, w, args.cpus, args.k, args.repeats, args.seed)
            rounds[w] = per_round = (t_ray - t_local) / args.k
            L = raw[w]["call"][0] * 1e-3
            print(f"{w:3d} {t_ray:8.3f} {t_local:8.3f} {t_ray / t_local:11.1f} {same!s:>10} "
                  f"{per_round * 1e3:10.2f} {per_round / L:6.1f} {(w + 3) * L * 1e3:11.2f} ms")
        print("\nround = (Ray − local) / k: one exact k-means++ round's latency, pickwise included; "
              "L = the median single call")
        print(f"\nthe same with sums=\"parallel\" (two-level D² sampling: one parallel step and one call per round)")
        print(f"{'W':>3} {'Ray s':>8} {'local s':>8} {'round (ms)':>10} {'÷ L':>6} {'÷ sequential':>12} {'picks = exact':>13}")
        for w in args.workers:
            t_ray, t_local, same = engine_rounds(pool, w, args.cpus, args.k, args.repeats, args.seed, sums="parallel")
            per_round = (t_ray - t_local) / args.k
            L = raw[w]["call"][0] * 1e-3
            print(f"{w:3d} {t_ray:8.3f} {t_local:8.3f} {per_round * 1e3:10.2f} {per_round / L:6.1f} "
                  f"{per_round / rounds[w]:12.2f} {same!s:>13}")
        # the model's latency term is (W + 3) · L per round: the least-squares L over the measured rounds
        units = np.array([w + 3 for w in rounds], dtype=float)
        fit = float((units * np.array(list(rounds.values()))).sum() / (units**2).sum())
        print(f"the model's L fitted to these rounds, round = (W + 3) · L over W = {', '.join(map(str, rounds))}: "
              f"{fit * 1e3:.2f} ms (per W: {', '.join(f'{r / (w + 3) * 1e3:.2f}' for w, r in rounds.items())} ms)\n"
              f"    .venv/bin/python benchmarks/distributed_model.py --latency {fit:.2g} 1e-3")
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
