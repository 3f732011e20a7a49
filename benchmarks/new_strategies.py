"""Selection time of Cluster-Margin, EPIG and BatchEPIG at k = 1000 on a 100k pool (issue 14).

    python benchmarks/new_strategies.py            # N = 100k, d = 64, K = 10, k = 1000, T = 20
    python benchmarks/new_strategies.py --quick    # N = 10k, k = 100: a smoke run (under a minute)

Synthetic pool: 64-d Gaussian-mixture embeddings of 10 classes; the "model" is a fixed linear
softmax head on them (``embed`` returns the embedding), with MC dropout on the 64 features (one
mask per draw for every item, as pickwise's consistent masks). All float64, BLAS on one thread.

What is timed (wall clock, one process):
- Cluster-Margin (k_m = 10·k): the first selection, which clusters the pool once (exact
  average-linkage HAC of a 10,000-item sample, then every other item to its nearest sampled item),
  and a second selection that reuses the clusters (margins + round-robin only).
- EPIG with ``--targets`` target inputs (1000) sampled from the pool: the whole selection (target
  draws, pool draws chunk by chunk, scores, top-k).
- BatchEPIG: k = 1000 greedy steps on 100k items is far out of reach on one CPU, so it runs with
  candidate subsetting (``--candidates`` = 2·k items, in the strategy the ones of highest EPIG;
  here a random subset, which costs the same) and ``--batch-targets`` targets (100), joint
  entropies exact up to 1000 configurations and sampled with 1000 configurations beyond. One
  greedy step is timed at several batch sizes b = |S| and the k = 1000 total is the sum over
  b < k of the linearly interpolated step times (``extrapolated``); a real ``BatchEPIG.select``
  with ``--batch-k`` (10) and ``--batch-candidates`` (500) runs end to end as well.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

# benchmarks/select.py would shadow the standard library's ``select``: keep this folder off the
# path, and use the checkout's src/
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import numpy as np

from pickwise.pool import Pool
from pickwise.select.epig import batch_epig_scores
from pickwise.strategies.cluster_margin import ClusterMargin
from pickwise.strategies.epig import EPIG, BatchEPIG, mc_draws


class LinearDropout:
    """Fixed softmax head on given embeddings, MC dropout on the inputs (same mask for every item)."""

    def __init__(self, d: int, n_classes: int, *, seed: int, dropout: float = 0.3):
        rng = np.random.default_rng(seed)
        self.n_classes, self.dropout = n_classes, dropout
        self.w = rng.normal(size=(d, n_classes)) / np.sqrt(d) * 3.0

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def fit(self, x, y, *, seed: int):
        return self

    def embed(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def predict_proba(self, x) -> np.ndarray:
        return self._softmax(self.embed(x) @ self.w)

    def predict_proba_mc(self, x, n_draws: int, *, seed: int) -> np.ndarray:
        h = self.embed(x)
        keep = np.random.default_rng(seed).random((n_draws, 1, h.shape[1])) >= self.dropout
        return self._softmax((h[None] * keep / (1 - self.dropout)) @ self.w)


def synthetic_pool(n: int, d: int, n_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, d))
    return centres[rng.integers(n_classes, size=n)] + rng.normal(size=(n, d))


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> None:
    n, k = (10_000, 100) if args.quick else (args.n, args.k)
    d, kc = 64, 10
    x = synthetic_pool(n, d, kc, args.seed)
    model = LinearDropout(d, kc, seed=args.seed + 1)
    n_lab = max(1, n // 100)
    pool = Pool.empty(n, n_classes=kc).label(np.arange(n_lab), np.zeros(n_lab, dtype=np.int64))
    rows = []
    if args.only in ("all", "cluster_margin"):
        rows += cluster_margin_rows(model, x, pool, k, args)
    if args.only in ("all", "epig"):
        rows += epig_rows(model, x, pool, k, args)
    if args.only in ("all", "batch_epig"):
        rows += batch_epig_rows(model, x, pool, k, args)

    print(f"N = {n:,} ({n_lab:,} labelled), d = {d}, K = {kc}, k = {k}, float64; wall-clock seconds\n")
    print("| selection | time (s) | note |")
    print("|---|---:|---|")
    for name, t, note in rows:
        print(f"| {name} | {t:.2f} | {note} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the whole run: {rss:.0f} MB")


def cluster_margin_rows(model, x, pool, k, args) -> list:
    """Cluster-Margin: the first call clusters, the second reuses the clusters."""
    rows = []
    cm = ClusterMargin(margin_ratio=10.0)
    unl = pool.unlabeled
    _, t_cluster = timed(cm.cluster, model, x, unl, rng=np.random.default_rng(args.seed))
    cm = ClusterMargin(margin_ratio=10.0)
    sel, t_first = timed(cm.select, model, x, pool, k, rng=np.random.default_rng(args.seed))
    n_clusters = np.unique(cm.clusters_[unl]).shape[0]
    pool2 = pool.label(sel, np.zeros(k, dtype=np.int64))
    _, t_second = timed(cm.select, model, x, pool2, k, rng=np.random.default_rng(args.seed + 1))
    how = (f"exact HAC of all {unl.shape[0]:,} items" if unl.shape[0] <= cm.max_cluster_items else
           f"HAC of {cm.max_cluster_items:,} sampled items, the rest by nearest sampled item")
    rows.append(("Cluster-Margin, first call (clusters once)", t_first,
                 f"clustering alone (timed apart) {t_cluster:.1f} s: {how}; {n_clusters:,} clusters"))
    rows.append(("Cluster-Margin, later call (cached clusters)", t_second, "margins + round-robin"))
    print("... Cluster-Margin done", file=sys.stderr, flush=True)
    return rows


def epig_rows(model, x, pool, k, args) -> list:
    """EPIG: the whole selection."""
    unl = pool.unlabeled
    n_t = min(args.targets, unl.shape[0])
    _, t_epig = timed(EPIG(n_draws=args.draws, n_targets=n_t).select, model, x, pool, k,
                      rng=np.random.default_rng(args.seed))
    print("... EPIG done", file=sys.stderr, flush=True)
    return [(f"EPIG (T = {args.draws}, {n_t:,} targets)", t_epig, "whole selection")]


def batch_epig_rows(model, x, pool, k, args) -> list:
    """BatchEPIG: per-step times on the candidates, then a short end-to-end run."""
    rows = []
    unl = pool.unlabeled
    n_c = min(args.candidates or 2 * k, unl.shape[0])
    n_bt = min(args.batch_targets, unl.shape[0])
    configs = {"max_configs": 1000, "n_samples": 1000}
    seed = 12345
    cand = unl[np.random.default_rng(args.seed).choice(unl.shape[0], size=n_c, replace=False)]
    tgt = unl[np.random.default_rng(args.seed + 1).choice(unl.shape[0], size=n_bt, replace=False)]
    dc = mc_draws(model, x, cand, args.draws, seed=seed, chunk_size=4096)
    dt = mc_draws(model, x, tgt, args.draws, seed=seed, chunk_size=4096)
    bs = sorted({b for b in (0, 1, 2, 10, 100, k // 2, k - 1) if b < k})
    step = {}
    for b in bs:
        _, step[b] = timed(batch_epig_scores, dc, dt, np.arange(b), rng=np.random.default_rng(b), **configs)
    total = sum(np.interp(b, bs, [step[s] for s in bs]) for b in range(k))
    rows.append((f"BatchEPIG greedy, k = {k} (extrapolated)", total,
                 f"{n_c} candidates, {n_bt} targets, T = {args.draws}, exact ≤ 1000 configurations, else 1000 "
                 "sampled; step (s) at b = " + ", ".join(f"{b}: {step[b]:.2f}" for b in bs)))
    bk = min(args.batch_k, k)
    strat = BatchEPIG(n_draws=args.draws, n_targets=n_bt, max_candidates=args.batch_candidates, **configs)
    _, t_batch = timed(strat.select, model, x, pool, bk, rng=np.random.default_rng(args.seed))
    note = f"{n_bt} targets; EPIG pre-filter of the {unl.shape[0]:,} items to {args.batch_candidates} candidates"
    rows.append((f"BatchEPIG.select, k = {bk} (measured)", t_batch, note + " included"))
    print("... BatchEPIG done", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 10k, k = 100")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=20, help="MC draws T (20)")
    ap.add_argument("--targets", type=int, default=1000, help="EPIG's target inputs (1000)")
    ap.add_argument("--candidates", type=int, default=None, help="BatchEPIG's candidates for the step timings (2·k)")
    ap.add_argument("--batch-candidates", type=int, default=500, help="candidates of the end-to-end run (500)")
    ap.add_argument("--only", choices=("all", "cluster_margin", "epig", "batch_epig"), default="all")
    ap.add_argument("--batch-targets", type=int, default=100, help="BatchEPIG's target inputs (100)")
    ap.add_argument("--batch-k", type=int, default=10, help="k of the end-to-end BatchEPIG run (10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        load0 = os.getloadavg()[0]
        run(args)
        print(f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, BLAS threads {args.threads}, "
              f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
