"""Speed and memory of BADGE's k-means++ seeding and core-set k-center against plain references.

    python benchmarks/select.py            # N ∈ {10k, 100k}, K = 10, d = 256, k ∈ {100, 1000}
    python benchmarks/select.py --quick    # small sizes, a smoke run (about a minute)

Synthetic inputs: probabilities = softmax of N(0, 3²) logits, penultimate h = ReLU(N(0, 1)), all
float64. Peak memory is the tracemalloc peak of allocations made during the call (inputs excluded).

References, measured in the same run:
- BADGE, materialised: the published 2020 code's shape — build the N×(K·d) float64 gradient
  embedding, then for each new centre recompute the distances of every row to it with
  ``sklearn.metrics.pairwise_distances`` (our only changes: the published per-row Python loop that
  keeps the minimum is vectorised with np.minimum, and sampling uses the same rule as pickwise so
  the picks can be compared).
- core-set, full matrix: the published code's furthest-first — ``pairwise_distances`` of the pool
  to the whole labelled set at once (an N×|L| matrix), then one distance pass per pick.
When a reference would take too long (large N), it runs only the first ``--ref-picks`` picks and
its time is extrapolated linearly: set-up + loop time × (k − 1)/(picks − 1). Such rows say so.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named select.py: keep its folder off the path so that it does not shadow the
# standard library's ``select`` module, and use the checkout's src/
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402

import numpy as np  # noqa: E402

# the shared references module, found after the standard library (this folder goes last)
sys.path.append(str(_HERE))

from plain_refs import (  # noqa: E402  (the plain references, shared with benchmarks/scale.py)
    MB,
    badge_fast,
    badge_materialised,
    coreset_fast,
    coreset_full,
    extrapolate,
    measured,
    synthetic,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: N ∈ {5k, 20k}, k ∈ {50, 200}")
    ap.add_argument("--ref-picks", type=int, default=None,
                    help="picks the references run at the largest N before extrapolating (default 100; quick: all)")
    ap.add_argument("--n-labeled", type=int, default=1000, help="|L| for core-set (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads for every implementation (default 1: stable timings on a shared machine)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        threads = ", ".join(f"{i['internal_api']}×{i['num_threads']}" for i in threadpool_info())
        load0 = os.getloadavg()[0]
        run(args)
        print(f"\nnumpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, BLAS threads: {threads}, "
              f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


def run(args: argparse.Namespace) -> None:
    kc, d = 10, 256
    ns, ks = ((5_000, 20_000), (50, 200)) if args.quick else ((10_000, 100_000), (100, 1000))
    n_lab = min(args.n_labeled, 500) if args.quick else args.n_labeled

    rows = []
    summary = []
    for n in ns:
        p, h = synthetic(n, kc, d, args.seed)
        lab = np.maximum(np.random.default_rng(args.seed + 1).normal(size=(n_lab, d)), 0.0)
        big = n >= 100_000
        ref_picks = args.ref_picks if args.ref_picks is not None else (100 if big else 10**9)
        budget = 2 * n * (kc + d) * 8 / MB
        for k in ks:
            fast, t_fast, m_fast = measured(badge_fast, p, h, k, args.seed)
            (ref, setup, loop, ran), _, m_ref = measured(badge_materialised, p, h, k, args.seed, ref_picks)
            t_ref = extrapolate(setup, loop, ran, k)
            note = f"extrapolated from {ran} picks" if ran < k else ""
            same = np.array_equal(fast[:ran], ref)
            rows.append(("BADGE (pickwise, factored)", n, k, t_fast, m_fast, f"extra peak budget {budget:.0f} MB"))
            rows.append(("BADGE (materialised reference)", n, k, t_ref, m_ref,
                         ", ".join(s for s in (note, f"same picks: {'yes' if same else 'NO'}") if s)))
            summary.append(f"BADGE N={n:,} k={k}: {t_ref / t_fast:.1f}x faster, extra peak {m_fast:.0f} MB "
                           f"vs {m_ref:.0f} MB (budget {budget:.0f} MB: {'ok' if m_fast < budget else 'EXCEEDED'})")

            cfast, tc_fast, mc_fast = measured(coreset_fast, h, lab, k, args.seed)
            (cref, csetup, cloop, cran), _, mc_ref = measured(coreset_full, h, lab, k, ref_picks)
            tc_ref = extrapolate(csetup, cloop, cran, k)
            cnote = f"extrapolated from {cran} picks" if cran < k else ""
            csame = np.array_equal(cfast[:cran], cref)
            rows.append(("core-set (pickwise, chunked)", n, k, tc_fast, mc_fast, f"\\|L\\| = {n_lab}"))
            rows.append(("core-set (N×\\|L\\| reference)", n, k, tc_ref, mc_ref,
                         ", ".join(s for s in (cnote, f"same picks: {'yes' if csame else 'NO'}") if s)))
            summary.append(f"core-set N={n:,} k={k}: {tc_ref / tc_fast:.1f}x, extra peak {mc_fast:.0f} MB "
                           f"vs {mc_ref:.0f} MB (N×|L| float64 = {n * n_lab * 8 / MB:.0f} MB)")
            print(f"... N={n} k={k} done", file=sys.stderr, flush=True)
        del p, h

    print(f"K = {kc}, d = {d}, float64; times in seconds, memory = tracemalloc peak during the call\n")
    print("| method | N | k | time (s) | extra peak (MB) | note |")
    print("|---|---:|---:|---:|---:|---|")
    for name, n, k, t, m, note in rows:
        print(f"| {name} | {n:,} | {k} | {t:.2f} | {m:.1f} | {note} |")
    print()
    for line in summary:
        print("- " + line)


if __name__ == "__main__":
    main()
