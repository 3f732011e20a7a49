"""BALD top-k on precomputed MC draws, float32: pickwise now against the old path and a BAAL-style
formula, times best of 3 interleaved, one thread, peak memory (tracemalloc) of each call.

    python benchmarks/topk_bald.py            # N ∈ {100k, 1M}, T = 20, K = 10, k = 1000
    python benchmarks/topk_bald.py --quick    # N = 100k only

Draws (T, N, K) float32 = softmax(N(0, 2²) per item + N(0, 1) per draw). Rows:

- ``scores.bald + top_k``: the pure functions on the in-memory array;
- ``MCDropout on Precomputed``: the ``pickwise select --strategy bald --mc-probs`` path (the
  strategy over :class:`pickwise.Precomputed`, chunks of 4096 items, plus ``top_k``).

References, measured in the same run:

- old: a copy of the functions before issue 16 (kept below): float64 copies of every chunk, the
  range and sum checks done twice, ``np.where`` entropy over whole-array temporaries;
- BAAL-style: BALD as BAAL's ``BALD`` heuristic computes it from its documented definition —
  entropy of the mean minus mean entropy, ``np.log`` on the float32 input (eps 1e-10 inside the
  log), whole-array temporaries, no validation, and ``np.argsort`` descending (a full sort). baal
  itself is not installed.

Exactness: the pickwise picks must equal the picks of the plain float64 formula.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

# benchmarks/select.py would shadow the standard library's select module
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

from pickwise import Pool
from pickwise.precomputed import Precomputed
from pickwise.scores import bald
from pickwise.select.topk import top_k
from pickwise.strategies import MCDropout

K_PICK = 1000


# ------------------------------------------------------------------ the old path (before issue 16)


def _old_entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def _old_check_probs(p: np.ndarray, atol: float = 1e-4) -> np.ndarray:
    lo, hi = float(p.min()), float(p.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -atol or hi > 1 + atol:
        raise ValueError("bad draws")
    sums = p.sum(axis=-1, dtype=np.float64)
    if np.max(np.abs(sums - 1)) > atol:
        raise ValueError("rows must sum to 1")
    out = np.asarray(p, dtype=np.float64)
    return np.clip(out, 0.0, 1.0) if lo < 0 or hi > 1 else out


def old_bald(draws: np.ndarray) -> np.ndarray:
    d = _old_check_probs(draws)
    return np.maximum(_old_entropy(d.mean(axis=0)) - _old_entropy(d).mean(axis=0), 0.0)


class OldPrecomputed(Precomputed):
    """Precomputed's MC rows as before: a gathered float64 copy, every check over it."""

    def predict_proba_mc(self, idx, n_draws, *, seed):  # type: ignore[override]
        idx = np.asarray(idx, dtype=np.int64)
        rows = np.asarray(self.mc_probs[:n_draws, idx], dtype=np.float64)
        if not np.all(np.isfinite(rows)) or rows.min() < -1e-4 or rows.max() > 1 + 1e-4:
            raise ValueError("bad draws")
        if (np.abs(rows.sum(axis=-1) - 1) > 1e-4).any():
            raise ValueError("rows must sum to 1")
        return rows


# ----------------------------------------------------------------------------- BAAL-style formula


def baal_style_topk(draws: np.ndarray, k: int) -> np.ndarray:
    """BAAL's BALD (entropy of the mean − mean entropy, np.log on the float input) and a full
    descending argsort, on pickwise's (T, N, K) layout."""
    expected_entropy = -np.mean(np.sum(draws * np.log(draws + 1e-10), axis=-1), axis=0)
    expected_p = np.mean(draws, axis=0)
    entropy_expected_p = -np.sum(expected_p * np.log(expected_p + 1e-10), axis=-1)
    scores = entropy_expected_p - expected_entropy
    return np.argsort(scores)[::-1][:k]


def plain_bald(draws: np.ndarray) -> np.ndarray:
    return old_bald(np.asarray(draws, dtype=np.float64))


# ------------------------------------------------------------------------------------------ run


def make_draws(n: int, t: int = 20, k: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = (2.0 * rng.standard_normal((n, k))).astype(np.float32)
    out = np.empty((t, n, k), dtype=np.float32)
    for i in range(t):
        z = base + rng.standard_normal((n, k), dtype=np.float32)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[i] = z
    return out


def measure(fn, reps: int) -> tuple[list[float], float]:
    """(times of ``reps`` calls, tracemalloc peak in MB of one more call)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return times, peak


def run(n: int) -> None:
    d = make_draws(n)
    t = d.shape[0]
    model, old_model = Precomputed(mc_probs=d), OldPrecomputed(mc_probs=d)
    pool = Pool.empty(n)
    rows = {
        "scores.bald + top_k": {
            "pickwise": lambda: top_k(bald(d), K_PICK, rng=np.random.default_rng(0)),
            "old": lambda: top_k(old_bald(d), K_PICK, rng=np.random.default_rng(0)),
            "BAAL-style": lambda: baal_style_topk(d, K_PICK),
        },
        "MCDropout on Precomputed": {
            "pickwise": lambda: MCDropout(n_draws=t).select(model, model.x, pool, K_PICK, rng=np.random.default_rng(0)),
            "old": lambda: MCDropout(n_draws=t, score=old_bald).select(old_model, old_model.x, pool, K_PICK,
                                                                      rng=np.random.default_rng(0)),
            "BAAL-style": lambda: baal_style_topk(d, K_PICK),
        },
    }
    plain = plain_bald(d)
    ref = top_k(plain, K_PICK, rng=np.random.default_rng(0))
    got = rows["scores.bald + top_k"]["pickwise"]()
    moved = np.flatnonzero(got != ref)
    gap = float(np.max(np.abs(plain[got[moved]] - plain[ref[moved]]))) if moved.shape[0] else 0.0
    same = ("identical" if not moved.shape[0] else
            f"{moved.shape[0]} ranks differ (same set: {set(got) == set(ref)}; largest plain-score gap "
            f"between swapped items {gap:.1e}, below float32 rounding)")
    err = float(np.max(np.abs(bald(d) - plain) / np.maximum(plain, 1e-12)))
    print(f"\nN = {n:,}, T = {t}, K = {d.shape[2]}, float32 ({d.nbytes / 1e6:.0f} MB of draws), k = {K_PICK}; "
          f"picks vs the plain float64 formula: {same}; max relative score error {err:.1e}")
    print(f"{'path':<26} {'pickwise s':>10} {'old s':>8} {'BAAL s':>8} {'old/pw':>7} {'pw/BAAL':>8} "
          f"{'pw MB':>7} {'old MB':>7} {'BAAL MB':>8}")
    for name, fns in rows.items():
        best = {key: float("inf") for key in fns}
        peaks = {}
        for _ in range(3):  # interleaved: one call of each, three times
            for key, fn in fns.items():
                times, _ = measure(fn, 1)
                best[key] = min(best[key], times[0])
        for key, fn in fns.items():
            peaks[key] = measure(fn, 0)[1]
        print(f"{name:<26} {best['pickwise']:>10.3f} {best['old']:>8.3f} {best['BAAL-style']:>8.3f} "
              f"{best['old'] / best['pickwise']:>7.2f} {best['pickwise'] / best['BAAL-style']:>8.2f} "
              f"{peaks['pickwise']:>7.1f} {peaks['old']:>7.1f} {peaks['BAAL-style']:>8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 100k only")
    args = ap.parse_args()
    for n in (100_000,) if args.quick else (100_000, 1_000_000):
        run(n)


if __name__ == "__main__":
    main()
