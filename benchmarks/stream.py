"""VeSSAL throughput against a direct transcription of the published pseudo-code; rate; sketch accuracy.

A script, not a test:

    .venv/bin/python benchmarks/stream.py            # the figures in docs/performance.md
    .venv/bin/python benchmarks/stream.py --quick    # a smoke run (about a minute)

Synthetic gradient embeddings g = (p − e_ŷ) ⊗ h with K = 10 classes and d = 128 or 512 (D = 1280,
5120): h = relu(latent·W) with a 32-dimensional latent, p = softmax(h·V). Both implementations see the
same items and the same uniforms. The direct one forms A_t·Σ̂⁻¹ (a D×D×D product) for every item, as
the authors' code does, so it is timed on a few items only: its cost per item does not depend on t.
"""

from __future__ import annotations

import os
import sys

# Python puts this script's folder first on sys.path; a sibling named like a stdlib module
# (benchmarks/select.py) would then shadow it for numpy/scipy. Drop that entry before importing.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from pickwise.stream import KroneckerSketch, VeSSAL, grad_features  # noqa: E402
from pickwise.stream.reference import vessal_direct  # noqa: E402

K = 10


def factors(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(32, d)) / np.sqrt(32)
    h = np.maximum(rng.normal(size=(n, 32)) @ w + 0.1 * rng.normal(size=(n, d)), 0.0)
    logits = h @ (rng.normal(size=(d, K)) * 2 / np.sqrt(d))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), h


REPEATS = {"fast": 3, "direct": 2}  # best of n: the machine is shared, the minimum is the least disturbed


def timed(fn, repeats: int = 1):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def fast_run(z: np.ndarray, uniforms_seed: int, chunk: int = 1024, repeats: int = 1, **rate) -> tuple[np.ndarray, float]:
    def go():
        sel = VeSSAL(**rate)
        rng = np.random.default_rng(uniforms_seed)
        return np.concatenate([sel.observe_many(z[a : a + chunk], rng=rng) for a in range(0, len(z), chunk)])

    return timed(go, repeats)


def item_run(z: np.ndarray, uniforms_seed: int, **rate) -> tuple[np.ndarray, float]:
    def go():
        sel = VeSSAL(**rate)
        rng = np.random.default_rng(uniforms_seed)
        return np.array([sel.observe(zi, rng=rng) for zi in z])

    return timed(go, REPEATS["fast"])


def throughput(quick: bool) -> None:
    print(f"## Throughput (adaptive rate, budget = fraction × stream length; best of {REPEATS['fast']} runs, "
          f"direct best of {REPEATS['direct']})\n")
    print("| D | implementation | items timed | budget | s/item | items/s | speed-up vs direct |")
    print("|---|---|---|---|---|---|---|")
    settings = [(128, 8192 if not quick else 2048, 8 if not quick else 3), (512, 2048 if not quick else 512, 2 if not quick else 1)]
    for d, n_fast, n_direct in settings:
        dim = K * d
        probs, h = factors(n_fast, d, seed=d)
        z = grad_features(probs, h)
        rate = {"budget": max(1, n_fast // 10), "length": n_fast}
        # direct transcription on the first items, same uniforms; its decisions must agree
        u = np.random.default_rng(0).random(n_fast)[:n_direct]
        ref, t_direct = timed(lambda: vessal_direct(z[:n_direct], u, **rate), REPEATS["direct"])
        per_direct = t_direct / n_direct
        print(f"| {dim} | direct transcription (O(D³)/item) | {n_direct} | 10% (any: one D×D×D product per item) | {per_direct:.3g} | "
              f"{1 / per_direct:.3g} | 1 |")
        rows = []
        for frac in (0.01, 0.10, 0.30):
            budget = max(1, int(frac * n_fast))
            d_fast, t_fast = fast_run(z, 0, repeats=REPEATS["fast"], budget=budget, length=n_fast)
            rows.append(("observe_many (chunks of 1024)", n_fast, frac, t_fast / n_fast, d_fast.sum()))
            if frac == 0.10:
                assert np.array_equal(d_fast[:n_direct], ref.decisions), "fast and direct decisions differ"
        n_item = n_fast // 4
        d_item, t_item = item_run(z[:n_item], 0, budget=max(1, n_fast // 10), length=n_fast)
        rows.append(("observe (item by item)", n_item, 0.10, t_item / n_item, d_item.sum()))
        for name, n, frac, per, count in rows:
            print(f"| {dim} | {name} | {n} | {frac:.0%} ({count} queried) | {per:.3g} | {1 / per:.4g} | "
                  f"{per_direct / per:,.0f}× |")
    print()


def rate_curve(quick: bool) -> None:
    n, d = (8192, 128) if not quick else (2048, 128)
    probs, h = factors(n, d, seed=1)
    budget = n // 10
    for order in ("iid", "sorted by first feature"):
        z = grad_features(probs, h)
        if order != "iid":
            z = z[np.argsort(h[:, 0], kind="stable")]
        dec, _ = fast_run(z, 3, budget=budget, length=n)
        cum = np.cumsum(dec)
        print(f"## Query rate against the fraction of the stream seen (D = {K * d}, n = {n}, budget = {budget}, "
              f"{order} stream)\n")
        print("| fraction of stream seen | " + " | ".join(f"{f:.1f}" for f in np.arange(1, 11) / 10) + " |")
        print("|---|" + "---|" * 10)
        print("| fraction of budget used | " + " | ".join(
            f"{cum[int(f * n) - 1] / budget:.3f}" for f in np.arange(1, 11) / 10) + " |")
        print()


def leverage(g_chosen: np.ndarray, g: np.ndarray, lam: float) -> np.ndarray:
    """gᵀ(λI + GᵀG)⁻¹g for each row of g, by the kernel identity (no D×D matrix)."""
    kbb = g_chosen @ g_chosen.T
    kb = g_chosen @ g.T
    sol = np.linalg.solve(lam * np.eye(kbb.shape[0]) + kbb, kb)
    return ((g * g).sum(axis=1) - (kb * sol).sum(axis=0)) / lam


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def sketch_accuracy(quick: bool) -> None:
    d, n_h = 512, 128
    n = 2048 if not quick else 512
    probs, h = factors(n, d, seed=7)
    exact = grad_features(probs, h)
    sk = KroneckerSketch(n_h=n_h, seed=0)
    sketched, t_feat = timed(lambda: grad_features(probs, h, sketch=sk))
    print(f"## Sketch accuracy: exact D = {K * d} against KroneckerSketch(n_h={n_h}) → D = {K * n_h}\n")
    m = 400
    ge, gs = exact[:m] @ exact[:m].T, sketched[:m] @ sketched[:m].T
    norm_ratio = np.diag(gs) / np.diag(ge)
    off = ~np.eye(m, dtype=bool)
    rel = (np.abs(gs - ge) / np.sqrt(np.outer(np.diag(ge), np.diag(ge))))[off]
    chosen = np.arange(256)
    rest = np.arange(256, min(n, 256 + 1024))
    le, ls = leverage(exact[chosen], exact[rest], 0.01), leverage(sketched[chosen], sketched[rest], 0.01)
    pe, ps = le / le.mean(), ls / ls.mean()  # sampling probabilities up to the common factor q / trace
    budget = n // 10
    de, te = fast_run(exact, 5, budget=budget, length=n)
    ds, ts = fast_run(sketched, 5, budget=budget, length=n)
    both = np.sum(de & ds)
    print("| measure | value |")
    print("|---|---|")
    print(f"| squared norm ratio sketch/exact: median, 5–95 % | {np.median(norm_ratio):.3f}, "
          f"{np.quantile(norm_ratio, 0.05):.3f}–{np.quantile(norm_ratio, 0.95):.3f} |")
    print(f"| inner-product error / (‖g_i‖‖g_j‖): median, 95 % | {np.median(rel):.3f}, {np.quantile(rel, 0.95):.3f} |")
    print(f"| leverage gᵀ(λI+GᵀG)⁻¹g after 256 chosen: Spearman ρ | {spearman(le, ls):.3f} |")
    print(f"| relative sampling probability: median abs. error | {np.median(np.abs(ps / pe - 1)):.3f} |")
    print(f"| same stream and uniforms, budget {budget}: queried exact / sketch / both | "
          f"{de.sum()} / {ds.sum()} / {both} |")
    print(f"| selector time for {n} items: exact / sketch (+ sketching) | {te:.2f} s / {ts:.2f} s (+{t_feat:.2f} s) |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for both implementations (default 1: stable timings on a shared machine)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"):
        threads = ", ".join(f"{i['internal_api']}×{i['num_threads']}" for i in threadpool_info())
        print(f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, BLAS threads: {threads}, "
              f"load average {os.getloadavg()[0]:.1f}\n")
        throughput(args.quick)
        rate_curve(args.quick)
        sketch_accuracy(args.quick)


if __name__ == "__main__":
    main()
