"""The cost model of distributed BADGE selection for pools of 100M and 1B rows (docs/distributed.md).

    .venv/bin/python benchmarks/distributed_model.py                        # L measured here, and 1 ms
    .venv/bin/python benchmarks/distributed_model.py --c 1.84e-10 --latency 0.8e-3 1e-3

Inputs: ``--c``, seconds per (row × feature) of one exact k-means++ round on one worker — measured by
benchmarks/distributed.py (the 10M-row Parquet run) as the one-process BADGE time / (k · N · (K + d)):
254.4 s / (1000 · 10⁷ · 138) = 1.84e-10, the default. ``--latency``, one or more values of L, the
driver↔actor round trip (seconds): the default is the loopback value measured by
benchmarks/rpc_latency.py (one real pickwise round on Ray at W = 2 and 4 actors, fitted as (W + 3) · L:
0.8 ms on this 2-core machine, small arguments inline; 1.1 ms before that; a bare Ray call alone takes 0.7-0.9 ms) and the 1 ms assumed for a cluster.
``--gemm``, how much cheaper a row × centre distance is when k-means|| computes many centres at once (a
matrix product) than in exact k-means++'s matrix–vector round (measured ≈ 2 on this machine:
benchmarks/distributed_engines.py's k-means|| row).

Exact k-means++ (pickwise.engine.sharded_kmeanspp), k rounds, each: every worker updates D² for its N/W
rows against the new centre, then a sequential fold of the running sum over the W shards (so the picks
equal np.cumsum's, bit for bit), then one call to the owner of the sampled row:
    T_exact ≈ k · (c · (N / W) · (K + d) + (W + 3) · L),  bytes ≈ k · (0.45 kB + W · 0.2 kB)
k-means|| (pickwise.engine.sharded_kmeans_parallel, r rounds, ℓ = 2k): r rounds of D² against ℓ new
centres, one counting pass against all ~r·ℓ candidates, a driver-side weighted k-means++:
    T_par ≈ ((r + 1) · ℓ) · (c / gemm) · (N / W) · (K + d) + 2 (r + 2) · L,  bytes ≈ 2 (r + 1) · ℓ · (K + d) · 4
Two-level D² sampling (``sums="parallel"``, ``select --two-level``; the plain picks up to the rounding
of the sums): one parallel step (W calls, each costing the driver s to submit and collect) and one
call per round:
    T_two ≈ k · (c · (N / W) · (K + d) + 2 L + W · s)
One table, the exact totals and the faster method for every L; then, for every L, the smallest W at
which k-means|| is faster (comparing the two totals); then the same for two-level sampling with
``--per-call`` s (default 0.3 ms: benchmarks/rpc_latency.py, the inline round's excess over one call
per actor, (inline − L) / W at W = 4 and 8 on this 2-core machine, 0.27–0.37 ms).
"""

from __future__ import annotations

import argparse

PAR = "k-means\\|\\|"  # escaped for a Markdown table
C_MEASURED = 1.84e-10  # benchmarks/distributed.py, 10M rows: 254.4 s / (1000 · 1e7 · 138)
L_LOOPBACK = 0.8e-3  # benchmarks/rpc_latency.py: a pickwise round on Ray, loopback, W = 2 and 4, = (W + 3) · L
L_CLUSTER = 1e-3  # assumed for a cluster's network
S_PER_CALL = 0.3e-3  # benchmarks/rpc_latency.py: (inline round − L) / W at W = 4, 8 (0.27–0.37 ms)


def exact_time(n: int, w: int, *, c: float, L: float, k: int, f: int) -> tuple[float, float]:
    """Exact k-means++: (compute per worker, rounds × latency), seconds."""
    return k * c * (n / w) * f, k * (w + 3) * L


def par_time(n: int, w: int, *, c: float, L: float, k: int, f: int, r: int, gemm: float) -> float:
    """k-means|| with r rounds and ℓ = 2k, seconds."""
    return (r + 1) * 2 * k * (c / gemm) * (n / w) * f + 2 * (r + 2) * L


def two_level_time(n: int, w: int, *, c: float, L: float, k: int, f: int, s: float) -> tuple[float, float]:
    """Two-level k-means++: (compute per worker, rounds × latency), seconds."""
    return k * c * (n / w) * f, k * (2 * L + w * s)


def takeover(n: int, *, c: float, L: float, k: int, f: int, r: int, gemm: float, limit: int = 1_000_000,
             s: float | None = None) -> int | None:
    """The smallest W at which k-means|| is faster than exact k-means++ (with ``s``: than two-level
    sampling with that per-call cost); None: not below ``limit``."""
    for w in range(1, limit + 1):
        other = exact_time(n, w, c=c, L=L, k=k, f=f) if s is None else two_level_time(n, w, c=c, L=L, k=k, f=f, s=s)
        if par_time(n, w, c=c, L=L, k=k, f=f, r=r, gemm=gemm) < sum(other):
            return w
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--c", type=float, default=C_MEASURED,
                    help=f"seconds per row × feature per exact round (default {C_MEASURED:g}, measured at 10M rows)")
    ap.add_argument("--latency", type=float, nargs="+", default=[L_LOOPBACK, L_CLUSTER],
                    help=f"driver↔actor round trips L to compare (s); default {L_LOOPBACK:g} (measured, loopback) "
                         f"and {L_CLUSTER:g} (assumed, cluster)")
    ap.add_argument("--per-call", type=float, default=S_PER_CALL,
                    help=f"two-level sampling: the driver's cost per call of a parallel step (s; default {S_PER_CALL:g})")
    ap.add_argument("--gemm", type=float, default=2.0, help="k-means|| per-distance advantage (default 2)")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--features", type=int, default=138, help="K + d (default 10 + 128)")
    ap.add_argument("--rounds", type=int, default=2, help="k-means|| rounds r (Spark's default 2)")
    args = ap.parse_args()
    for name in ("c", "gemm", "k", "features", "rounds"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name} must be > 0; got {getattr(args, name)}")
    if min(args.latency) < 0 or args.per_call < 0:
        ap.error(f"--latency and --per-call must be >= 0; got {args.latency} and {args.per_call}")
    c, k, f, r, gemm = args.c, args.k, args.features, args.rounds, args.gemm
    opts = {"c": c, "k": k, "f": f}
    Ls = args.latency
    ms = [f"{L * 1e3:g} ms" for L in Ls]
    print(f"c = {c:.3g} s per row·feature, L = {', '.join(ms)}, k = {k}, K + d = {f}, k-means|| r = {r}, ℓ = 2k, "
          f"gemm = {gemm:g}\n")
    print("| rows | workers | exact: compute / worker (s) | "
          + " | ".join(f"exact: rounds × latency, L = {m} (s) | exact total, L = {m} (s)" for m in ms)
          + " | exact bytes | k-means\\|\\| total (s) | k-means\\|\\| bytes | "
          + " | ".join(f"faster, L = {m}" for m in ms) + " |")
    print("|---:|---:|---:|" + "---:|---:|" * len(Ls) + "---:|---:|---:|" + "---|" * len(Ls))
    for n in (100_000_000, 1_000_000_000):
        for w in (8, 32, 128):
            cells, faster = [], []
            comp = exact_time(n, w, L=0.0, **opts)[0]
            for L in Ls:
                lat = exact_time(n, w, L=L, **opts)[1]
                par = par_time(n, w, L=L, r=r, gemm=gemm, **opts)
                cells.append(f"{lat:,.1f} | {comp + lat:,.0f}")
                faster.append(PAR if par < comp + lat else "exact")
            par = par_time(n, w, L=Ls[0], r=r, gemm=gemm, **opts)  # its 2 (r + 2) L is milliseconds whatever L
            b_exact = k * (450 + w * 200)
            b_par = 2 * (r + 1) * 2 * k * f * 4
            print(f"| {n:,} | {w} | {comp:,.0f} | " + " | ".join(cells) + f" | {b_exact / 1e6:.1f} MB | {par:,.0f} | "
                  f"{b_par / 1e6:.0f} MB | " + " | ".join(faster) + " |")
    print("\nk-means|| takes over from exact k-means++ (the two totals compared) at")
    for n in (100_000_000, 1_000_000_000):
        at = [takeover(n, L=L, r=r, gemm=gemm, **opts) for L in Ls]
        said = [f"W ≥ {w} workers (L = {m})" if w else f"not below 10⁶ workers (L = {m})" for w, m in zip(at, ms)]
        print(f"  N = {n:,}: " + ", ".join(said))
    sc = args.per_call
    print(f"\ntwo-level sampling (sums=\"parallel\"), s = {sc * 1e3:g} ms per call:\n")
    print("| rows | workers | " + " | ".join(f"two-level: rounds × latency, L = {m} (s) | two-level total, L = {m} (s) | "
                                           f"faster, L = {m}" for m in ms) + " |")
    print("|---:|---:|" + "---:|---:|---|" * len(Ls))
    for n in (100_000_000, 1_000_000_000):
        for w in (8, 32, 128):
            cells = []
            for L in Ls:
                comp, lat = two_level_time(n, w, L=L, s=sc, **opts)
                par = par_time(n, w, L=L, r=r, gemm=gemm, **opts)
                cells.append(f"{lat:,.1f} | {comp + lat:,.0f} | {PAR if par < comp + lat else 'two-level'}")
            print(f"| {n:,} | {w} | " + " | ".join(cells) + " |")
    print("\nk-means|| takes over from two-level k-means++ at")
    for n in (100_000_000, 1_000_000_000):
        at = [takeover(n, L=L, r=r, gemm=gemm, s=sc, **opts) for L in Ls]
        said = [f"W ≥ {w} workers (L = {m})" if w else f"not below 10⁶ workers (L = {m})" for w, m in zip(at, ms)]
        print(f"  N = {n:,}: " + ", ".join(said))


if __name__ == "__main__":
    main()
