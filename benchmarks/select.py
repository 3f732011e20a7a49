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

BatchBALD rows (``--batchbald-only`` runs just these; T = 20, K = 10, 9,900 candidates, one thread):

    python benchmarks/select.py --batchbald-only

Inputs: (a) MNIST-MLP draws — a 784-256-10 ReLU MLP with dropout 0.5, trained (seeded) on 1,000
MNIST training images, MC-dropout draws with one mask per draw shared by the whole pool (consistent)
on 9,900 other training images (read from ``PICKWISE_DATA``, else ../shared/data; skipped when absent); (b) synthetic
draws shaped like a trained MLP's, softmax(N(0, 4²) per item + N(0, 1.5²) per draw); (c) pool (b)
with 150 near-copies each of its two highest-BALD items put in, so that the 200 items of highest BALD are all
copies. pickwise's ``batchbald_select`` with its defaults (lazy greedy over the whole pool) is
measured against the plain greedy that scores every candidate at every step with the old settings:
the old CLI's (200 BALD-top candidates, 10,000 sampled configurations) and the old class defaults
(whole pool, 40,000 exact/sampled configurations; only its first ``--bb-old-picks`` picks run, then
the per-pick time of the last one extrapolates). Exactness: the first 4 picks against the plain
exact greedy (K^3 = 1,000 configurations, all enumerated).
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
    ap.add_argument("--batchbald-only", action="store_true", help="only the BatchBALD rows")
    ap.add_argument("--bb-n", type=int, default=9_900, help="BatchBALD candidates (default 9,900)")
    ap.add_argument("--bb-old-picks", type=int, default=6,
                    help="picks the old class-default BatchBALD runs before extrapolating (default 6; 0 skips it)")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads for every implementation (default 1: stable timings on a shared machine)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        threads = ", ".join(f"{i['internal_api']}×{i['num_threads']}" for i in threadpool_info())
        load0 = os.getloadavg()[0]
        if not args.batchbald_only:
            run(args)
        run_batchbald(args)
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


def _bb_synthetic(n: int, seed: int) -> np.ndarray:
    """(20, n, 10) draws like a trained MLP's: a peaked per-item mean plus per-draw disagreement."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=4.0, size=(1, n, 10)) + rng.normal(scale=1.5, size=(20, n, 10))
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def _bb_redundant(n: int, seed: int) -> np.ndarray:
    """:func:`_bb_synthetic` with 150 near-copies each of its two highest-BALD items in front."""
    from pickwise.scores import bald

    d = _bb_synthetic(n, seed)
    rng = np.random.default_rng(seed + 7)
    top = np.argsort(-bald(d))[:2]
    protos = np.log(d[:, top, :])
    for j in range(2):
        z = protos[:, j, None, :] + rng.normal(scale=0.01, size=(20, 150, 10))
        p = np.exp(z - z.max(-1, keepdims=True))
        d[:, 150 * j:150 * (j + 1)] = p / p.sum(-1, keepdims=True)
    return d


def _bb_mnist(n: int, seed: int) -> np.ndarray | None:
    """(20, n, 10) MC-dropout draws of an MLP trained on 1,000 MNIST images; None without MNIST."""
    try:
        from pickwise.data.loaders import load_mnist

        ds = load_mnist(os.environ.get("PICKWISE_DATA") or _HERE.parent.parent / "shared" / "data")
    except (OSError, ValueError):
        return None
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(ds.x_train.shape[0])
    xl, yl = torch.from_numpy(ds.x_train[order[:1000]]), torch.from_numpy(ds.y_train[order[:1000]])
    xp = torch.from_numpy(ds.x_train[order[1000:1000 + n]])
    l1, l2 = torch.nn.Linear(784, 256), torch.nn.Linear(256, 10)
    opt = torch.optim.Adam([*l1.parameters(), *l2.parameters()], lr=1e-3)
    for _ in range(30):
        for b in torch.randperm(1000).split(64):
            h = torch.nn.functional.dropout(torch.relu(l1(xl[b])), 0.5, training=True)
            loss = torch.nn.functional.cross_entropy(l2(h), yl[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = np.empty((20, n, 10))
    with torch.no_grad():
        h = torch.relu(l1(xp))
        for t in range(20):
            mask = (torch.rand(256) >= 0.5).float() * 2.0  # one mask per draw for the whole pool
            out[t] = torch.softmax(l2(h * mask), dim=1).double().numpy()
    return out


def run_batchbald(args: argparse.Namespace) -> None:
    from pickwise.scores import bald
    from pickwise.select.batchbald import (
        MAX_CONFIGS,
        N_SAMPLES,
        _plain_select,
        batchbald_select,
    )

    n = args.bb_n
    inputs = [("MNIST-MLP", _bb_mnist(n, args.seed)), ("synthetic MLP-like", _bb_synthetic(n, args.seed)),
              ("synthetic + 300 near-copies", _bb_redundant(n, args.seed))]
    rows, summary = [], []

    def old_cli(d, k, rng):
        keep = np.sort(np.argsort(-bald(d), kind="stable")[:200])
        return keep[_plain_select(d[:, keep], k, rng=rng, max_configs=40_000, n_samples=10_000)]

    for name, d in inputs:
        if d is None:
            summary.append(f"{name}: skipped (no MNIST found)")
            continue
        exact, _, _ = measured(_plain_select, d, 4, rng=np.random.default_rng(args.seed), max_configs=40_000)
        for k in (100, 1000):
            new, t_new, m_new = measured(batchbald_select, d, k, rng=np.random.default_rng(args.seed))
            same = np.array_equal(new[:4], exact)
            rows.append((f"BatchBALD (pickwise, lazy; defaults {MAX_CONFIGS:,} / {N_SAMPLES:,})", name, k, t_new, m_new,
                         f"first 4 = exact greedy: {'yes' if same else 'NO'}"))
            summary.append(f"BatchBALD {name} k={k}: {t_new:.1f} s, first 4 picks "
                           f"{'equal' if same else 'DIFFER from'} exact greedy {exact.tolist()}")
        # old CLI setting: plain greedy on 200 BALD-top candidates; k = 1000 > 200 candidates is impossible,
        # so its per-pick time after the exact part is extrapolated from k = 100
        (_, t5, _) = measured(old_cli, d, 5, np.random.default_rng(args.seed))
        (o100, t100, m100) = measured(old_cli, d, 100, np.random.default_rng(args.seed))
        same = np.array_equal(o100[:4], exact)
        rows.append(("BatchBALD old CLI (200 BALD-top, 10,000 configs, plain)", name, 100, t100, m100,
                     f"first 4 = exact greedy: {'yes' if same else 'NO'}"))
        rows.append(("BatchBALD old CLI (200 BALD-top, 10,000 configs, plain)", name, 1000,
                     t5 + (t100 - t5) * 995 / 95, float("nan"), "extrapolated from 100 picks (only 200 candidates)"))
        if args.bb_old_picks >= 6 and not name.startswith("synthetic +"):
            ran = args.bb_old_picks
            old = {"rng": np.random.default_rng(args.seed), "max_configs": 40_000, "n_samples": 40_000}
            (_, ta, _) = measured(_plain_select, d, ran - 1, **old)
            old["rng"] = np.random.default_rng(args.seed)
            (_, tb, mb) = measured(_plain_select, d, ran, **old)
            for k in (100, 1000):
                rows.append(("BatchBALD old class defaults (whole pool, 40,000, plain)", name, k,
                             tb + (tb - ta) * (k - ran), mb, f"extrapolated from {ran} picks ({tb - ta:.1f} s per pick)"))
        print(f"... BatchBALD {name} done", file=sys.stderr, flush=True)

    print(f"\nBatchBALD: {n:,} candidates, T = 20, K = 10; times in seconds, memory = tracemalloc peak during the call\n")
    print("| method | input | k | time (s) | extra peak (MB) | note |")
    print("|---|---|---:|---:|---:|---|")
    for name, inp, k, t, m, note in rows:
        print(f"| {name} | {inp} | {k} | {t:.1f} | {m:.1f} | {note} |")
    print()
    for line in summary:
        print("- " + line)


if __name__ == "__main__":
    main()
