"""The cost model of distributed BADGE selection for pools of 100M and 1B rows (docs/distributed.md).

    python benchmarks/distributed_model.py --c 1.6e-10 --latency 1e-3

Inputs: ``--c``, seconds per (row × feature) of one exact k-means++ round on one worker — measured by
benchmarks/distributed_scale.py as the one-process BADGE time / (k · N · (K + d)); ``--latency``, one
driver↔actor round trip on the cluster (seconds); ``--gemm`` how much cheaper a row × centre distance is
when k-means|| computes many centres at once (a matrix product) than in exact k-means++'s matrix–vector
round (measured ≈ 2 on this machine: benchmarks/distributed.py's k-means|| row).

Exact k-means++ (pickwise.engine.sharded_kmeanspp), k rounds, each: every worker updates D² for its N/W
rows against the new centre, then a sequential fold of the running sum over the W shards (so the picks
equal np.cumsum's, bit for bit), then one call to the owner of the sampled row:
    T_exact ≈ k · (c · (N / W) · (K + d) + (W + 3) · L),  bytes ≈ k · (0.45 kB + W · 0.2 kB)
k-means|| (pickwise.engine.sharded_kmeans_parallel, r rounds, ℓ = 2k): r rounds of D² against ℓ new
centres, one counting pass against all ~r·ℓ candidates, a driver-side weighted k-means++:
    T_par ≈ ((r + 1) · ℓ) · (c / gemm) · (N / W) · (K + d) + 2 (r + 2) · L,  bytes ≈ 2 (r + 1) · ℓ · (K + d) · 4
"""

from __future__ import annotations

import argparse

PAR = "k-means\\|\\|"  # escaped for a Markdown table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--c", type=float, required=True, help="seconds per row × feature per exact round")
    ap.add_argument("--latency", type=float, default=1e-3, help="driver↔actor round trip (s), default 1 ms")
    ap.add_argument("--gemm", type=float, default=2.0, help="k-means|| per-distance advantage (default 2)")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--features", type=int, default=138, help="K + d (default 10 + 128)")
    ap.add_argument("--rounds", type=int, default=2, help="k-means|| rounds r (Spark's default 2)")
    args = ap.parse_args()
    c, L, k, f, r = args.c, args.latency, args.k, args.features, args.rounds
    ell = 2 * k
    print(f"c = {c:.3g} s per row·feature, L = {L * 1e3:g} ms, k = {k}, K + d = {f}, k-means|| r = {r}, ℓ = 2k\n")
    print("| rows | workers | exact: compute / worker (s) | exact: rounds × latency (s) | exact total (s) | exact bytes "
          "| k-means\\|\\| total (s) | k-means\\|\\| bytes | faster |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in (100_000_000, 1_000_000_000):
        for w in (8, 32, 128):
            comp = k * c * (n / w) * f
            lat = k * (w + 3) * L
            par = (r + 1) * ell * (c / args.gemm) * (n / w) * f + 2 * (r + 2) * L
            b_exact = k * (450 + w * 200)
            b_par = 2 * (r + 1) * ell * f * 4
            print(f"| {n:,} | {w} | {comp:,.0f} | {lat:,.1f} | {comp + lat:,.0f} | {b_exact / 1e6:.1f} MB | {par:,.0f} | "
                  f"{b_par / 1e6:.0f} MB | {PAR if par < comp + lat else 'exact'} |")
    print("\nk-means|| (r rounds) takes over when (W + 3)·L > ((r + 1)·2/gemm − 1)·c·(N / W)·(K + d), i.e. at about")
    for n in (100_000_000, 1_000_000_000):
        w = 1
        while (w + 3) * L <= ((r + 1) * 2 / args.gemm - 1) * c * (n / w) * f and w < 100_000:
            w += 1
        print(f"  N = {n:,}: W ≥ {w} workers")


if __name__ == "__main__":
    main()
