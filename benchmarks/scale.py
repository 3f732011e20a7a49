"""Pools of millions: wall time and peak memory of every strategy choosing k = 1000 from N items.

    python benchmarks/scale.py             # N ∈ {100k, 1M}, K ∈ {10, 100}; about 20 minutes
    python benchmarks/scale.py --quick     # a smoke run at N ∈ {20k, 50k}; about 2 minutes
    python benchmarks/scale.py --only mc   # MC dropout against one deterministic pass alone (N = 100k)

Inputs (benchmarks/scale_data.py): clustered float32 embeddings h (N, d) and probabilities
softmax(h·W + b) (N, K), cached as .npy files under ``--cache``; MC dropout is head-only dropout on
h, computed chunk by chunk. Two shapes: K = 10, d = 128 and K = 100, d = 512. |L| = 1000 random
items are labelled; the strategies choose from the other N − 1000 through :class:`Precomputed`
(the model behind ``pickwise select``), with the inputs loaded in memory.

Every measurement runs in a fresh subprocess: it loads the inputs, resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``), runs, and reports wall time and extra peak = VmHWM − RSS
before the run — everything the run allocated (numpy, scikit-learn, faiss, torch) and nothing of
the inputs. BLAS, faiss and torch get ``--threads`` threads (default 2, the machine's cores).

References (benchmarks/plain_refs.py, as in benchmarks/select.py), in the same run where they fit:
materialised BADGE (N×K·d float64), core-set with the N×|L| matrix, and BALD from every MC draw
held at once. They run their first ``--ref-picks`` picks and are extrapolated linearly.

Also: faiss for core-set's initial pass to a large labelled set (exact and approximate, with the
error of the approximate ones), k-NN information density with faiss, and head-only MC dropout
with TorchClassifier (784→512→10 MLP, N = 100k: mc_scores with T = 20 against one predict_proba;
the default batched heads, the per-draw loop they replace, and the whole network per draw;
benchmarks/mc.py measures the same alone, in a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# benchmarks/select.py would shadow the standard library's ``select`` module (which subprocess
# needs): keep this folder off the front of the path and look for the helper modules here last
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))
sys.path.append(str(_HERE))

import argparse
import json
import os
import platform
import subprocess
import time

import numpy as np

MB = 1024.0**2
N_LABELED = 1000
#: what a reference (or a float64 state) may take before it is not run: the 4 GB target
LIMIT = 4 * 2**30


# ------------------------------------------------------------------ measuring (in the subprocess)


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _limit_threads(n: int) -> object:
    from threadpoolctl import threadpool_limits

    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    return threadpool_limits(limits=n)


def _pool_inputs(spec: dict):
    from scale_data import load_pool, make_pool

    from pickwise.pool import Pool

    folder = make_pool(Path(spec["cache"]), spec["n_max"], spec["K"], spec["d"], seed=0)
    model, _ = load_pool(folder, mmap=True)
    n = spec["n"]
    # copied into anonymous memory: the inputs are part of the baseline, not of the peak (a memory-
    # mapped input would add the file pages a run touches to its resident set)
    model.probs = np.array(model.probs[:n], copy=True, subok=False)
    model.embeddings = np.array(model.embeddings[:n], copy=True, subok=False)
    model.n = n
    n_lab = spec.get("n_labeled", N_LABELED)
    lab = np.sort(np.random.default_rng(1).choice(n, size=n_lab, replace=False))
    pool = Pool.empty(n).label(lab, np.zeros(n_lab, dtype=np.int64))
    return model, pool


def _search(name: str | None):
    from pickwise.neighbors import FaissFlat, FaissHNSW, FaissIVF

    return {None: None, "flat": FaissFlat(), "ivf": FaissIVF(), "hnsw": FaissHNSW()}[name]


def _strategy(spec: dict):
    from pickwise.strategies import BADGE, DBAL, CoreSet, InformationDensity, MCDropout, Uncertainty

    name, dtype = spec["name"], spec.get("dtype", "float64")
    if name in ("margin", "entropy"):
        return Uncertainty(score=name)
    if name == "bald":
        return MCDropout(score="bald", n_draws=spec.get("T", 20))
    if name == "badge":
        return BADGE(dtype=dtype)
    if name == "coreset":
        return CoreSet(dtype=dtype, neighbors=_search(spec.get("search")))
    if name == "dbal":
        return DBAL(dtype=dtype)
    if name == "density":
        return InformationDensity(dtype=dtype, n_neighbors=spec.get("n_neighbors"), neighbors=_search(spec.get("search")))
    raise ValueError(name)


def run_task(spec: dict) -> dict:
    """Everything before ``start()`` is set-up (inputs, imports); the rest is measured."""
    out: dict = {}
    model, pool = _pool_inputs(spec) if spec["task"] != "torch_mc" else (None, None)
    unl = pool.unlabeled if pool is not None else None
    task, k, seed = spec["task"], spec.get("k", 1000), spec.get("seed", 0)

    if spec.get("search"):
        pass

    if task == "strategy":
        strat = _strategy(spec)
        if spec.get("prune") is False:  # core-set's greedy without the bounds: the cost on any data
            from pickwise.select.kcenter import kcenter_greedy
            from pickwise.strategies._base import gather_embeddings

            def go():
                emb = gather_embeddings(model, model.x, unl, 4096, spec.get("dtype", "float64"))
                lab = gather_embeddings(model, model.x, pool.labeled, 4096, spec.get("dtype", "float64"))
                return unl[kcenter_greedy(emb, k, centres=lab, rng=np.random.default_rng(seed), prune=False)]
        else:
            def go():
                return strat.select(model, model.x, pool, k, rng=np.random.default_rng(seed))
        picks, sec, peak = _measure(go)
        out.update(seconds=sec, peak=peak, picks=np.asarray(picks).tolist())
    elif task == "ref_badge":
        from plain_refs import badge_materialised, extrapolate

        p = np.asarray(model.probs[unl], dtype=np.float64)
        h = np.asarray(model.embeddings[unl], dtype=np.float64)
        (pos, setup, loop, ran), sec, peak = _measure(lambda: badge_materialised(p, h, k, seed, spec["ref_picks"]))
        out.update(seconds=extrapolate(setup, loop, ran, k), measured_seconds=sec, peak=peak, ran=ran,
                   picks=unl[pos].tolist())
    elif task == "ref_coreset":
        from plain_refs import coreset_full, extrapolate

        x = np.asarray(model.embeddings[unl], dtype=np.float64)
        lab = np.asarray(model.embeddings[pool.labeled], dtype=np.float64)
        (pos, setup, loop, ran), sec, peak = _measure(lambda: coreset_full(x, lab, k, spec["ref_picks"]))
        out.update(seconds=extrapolate(setup, loop, ran, k), measured_seconds=sec, peak=peak, ran=ran,
                   picks=unl[pos].tolist())
    elif task == "ref_bald":
        from pickwise.scores import bald
        from pickwise.select.topk import top_k

        def go():  # every draw of the pool at once, as float64, then the score
            rng = np.random.default_rng(seed)
            d = np.asarray(model.predict_proba_mc(unl, spec.get("T", 20), seed=int(rng.integers(2**31 - 1))),
                           dtype=np.float64)
            return unl[top_k(bald(d), k, rng=rng)]

        picks, sec, peak = _measure(go)
        out.update(seconds=sec, peak=peak, picks=picks.tolist())
    elif task == "kcenter_split":
        out.update(_kcenter_split(spec, model, pool))
    elif task == "torch_mc":
        out.update(_torch_mc(spec))
    else:
        raise ValueError(task)
    return out


def _measure(fn):
    base = _status("VmRSS")
    ok = _reset_peak()
    t0 = time.perf_counter()
    res = fn()
    sec = time.perf_counter() - t0
    peak = (_status("VmHWM") - base) / MB if ok else float("nan")
    return res, sec, peak


def _kcenter_split(spec: dict, model, pool) -> dict:
    """Core-set's initial pass to the labelled set with one search, then the greedy loop; the
    covering radius of the result (max over the pool of the exact distance to labelled ∪ picks)."""
    from pickwise.select.kcenter import kcenter_greedy, nearest_centres
    from pickwise.strategies._base import gather_embeddings

    unl = pool.unlabeled
    x = gather_embeddings(model, model.x, unl, 4096, "float32")
    lab = gather_embeddings(model, model.x, pool.labeled, 4096, "float32")
    search = _search(spec.get("search"))
    (_, _), t_init, peak_init = _measure(lambda: nearest_centres(x, lab, neighbors=search))
    picks, t_total, peak = _measure(lambda: kcenter_greedy(x, spec["k"], centres=lab, rng=np.random.default_rng(0),
                                                           neighbors=search))
    centres = np.vstack([lab, x[picks]])
    d2, _ = nearest_centres(x, centres)  # exact, outside the timing
    return {"init_seconds": t_init, "seconds": t_total, "peak": max(peak, peak_init),
            "radius": float(np.sqrt(d2.max())), "picks": unl[picks].tolist()}


def _torch_mc(spec: dict) -> dict:
    import torch
    from contextlib import closing

    from pickwise.adapters import TorchClassifier, mlp
    from pickwise.scores import bald

    torch.set_num_threads(spec["threads"])
    n = spec["n"]
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(10, size=n)
    out = {}
    models = {}
    for label, head_only in (("head-only", None), ("generic", False)):
        clf = TorchClassifier(mlp(784, 10, hidden=(512,), dropout=0.5), n_classes=10, max_steps=20,
                              head_only=head_only, chunk_size=1024)
        clf.fit(x[:1000], y[:1000], seed=0)
        clf.predict_proba(x[:2048])  # warm-up
        models[label] = clf

    def per_draw() -> np.ndarray:  # the plain reference of the batched heads: the draws one by one
        scores = np.empty(n)
        with closing(models["head-only"]._mc_chunks(x, spec["T"], 0, None, batched_head=False)) as chunks:
            for sl, p in chunks:
                scores[sl] = bald(p)
        return scores

    runs = {
        ("head-only", "predict_proba"): lambda: models["head-only"].predict_proba(x),
        ("head-only", "mc_scores"): lambda: models["head-only"].mc_scores(x, {"bald": bald}, spec["T"], seed=0),
        ("head-only, per draw", "mc_scores"): per_draw,
        ("generic", "predict_proba"): lambda: models["generic"].predict_proba(x),
        ("generic", "mc_scores"): lambda: models["generic"].mc_scores(x, {"bald": bald}, spec["T"], seed=0),
    }
    # interleaved, best of ``repeat``: a burst of load elsewhere hits every row alike
    best: dict = {key: (float("inf"), float("nan")) for key in runs}
    for _ in range(spec.get("repeat", 3)):
        for key, fn in runs.items():
            _, sec, peak = _measure(fn)
            if sec < best[key][0]:
                best[key] = (sec, peak)
    for label in ("head-only", "generic"):
        out[label] = {"predict_proba": best[(label, "predict_proba")][0], "mc_scores": best[(label, "mc_scores")][0],
                      "peak": best[(label, "mc_scores")][1]}
    out["head-only, per draw"] = {"predict_proba": best[("head-only", "predict_proba")][0],
                                  "mc_scores": best[("head-only, per draw", "mc_scores")][0],
                                  "peak": best[("head-only, per draw", "mc_scores")][1]}
    return out


def worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    with _limit_threads(spec["threads"]):
        res = run_task(spec)
    print("RESULT " + json.dumps(res), flush=True)


# ------------------------------------------------------------------ orchestration


def measure(spec: dict, log) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        res = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    else:
        res = json.loads(line[len("RESULT "):])
    res["wall"] = time.perf_counter() - t0
    brief = {k: v for k, v in spec.items() if k not in ("cache", "threads", "n_max")}
    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items() if k != "picks"}
    print(f"{brief} -> {shown}", file=log, flush=True)
    return res


def same_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan(args) -> dict:
    if args.quick:
        return {"ns": (20_000, 50_000), "shapes": ((10, 128), (100, 256)), "k": 200, "ref_picks": 30,
                "growth_n": (10_000, 20_000, 50_000), "growth_k": (100, 200, 400), "n_max": 50_000,
                "faiss_n": 20_000, "faiss_labeled": 2_000, "torch_n": 10_000}
    return {"ns": (100_000, 1_000_000), "shapes": ((10, 128), (100, 512)), "k": 1000, "ref_picks": args.ref_picks,
            "growth_n": (10_000, 30_000, 100_000, 300_000, 1_000_000), "growth_k": (100, 300, 1000, 3000),
            "n_max": 1_000_000, "faiss_n": 100_000, "faiss_labeled": 20_000, "torch_n": 100_000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/faiss/torch threads (default 2)")
    ap.add_argument("--ref-picks", type=int, default=50, help="picks the references run before extrapolating")
    ap.add_argument("--cache", default="/tmp/pickwise_scale", help="folder for the generated pools")
    ap.add_argument("--json", default=None, help="write every result (picks included) here")
    ap.add_argument("--plot", default=None, help="log-log PNG (default docs/scale_loglog.png; quick: none)")
    ap.add_argument("--only", choices=("mc",), default=None,
                    help="run one part alone: mc = TorchClassifier MC dropout against one deterministic pass")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    if args.only == "mc":
        cfg = plan(args)
        tmc = measure({"cache": args.cache, "threads": args.threads, "n_max": cfg["n_max"], "seed": 0,
                       "task": "torch_mc", "n": cfg["torch_n"], "T": 20}, sys.stderr)
        print(f"{args.threads} threads, load average at start {os.getloadavg()[0]:.2f}")
        report_mc(cfg, tmc)
        return
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    cfg = plan(args)
    log = sys.stderr
    base = {"cache": args.cache, "threads": args.threads, "n_max": cfg["n_max"], "seed": 0}
    k = cfg["k"]
    results: list[tuple[dict, dict]] = []

    def run(**spec) -> dict:
        spec = {**base, **spec}
        res = measure(spec, log)
        results.append((spec, res))
        return res

    # make the pools once (outside any measurement)
    from scale_data import make_pool

    for K, d in cfg["shapes"]:
        make_pool(Path(args.cache), cfg["n_max"], K, d, seed=0)

    rows = []  # (shape, N, method, seconds, peak MB, note)
    picks: dict = {}
    for K, d in cfg["shapes"]:
        big = d >= 256
        for n in cfg["ns"]:
            sh = dict(K=K, d=d, n=n, k=k)
            small = n == cfg["ns"][0]

            def row(label, res, note="", key=None):
                if "error" in res:
                    rows.append(((K, d), n, label, float("nan"), float("nan"), f"failed: {res['error']}"))
                    return
                rows.append(((K, d), n, label, res["seconds"], res.get("peak", float("nan")), note))
                if key is not None:
                    picks[(K, d, n, key)] = res.get("picks")

            def skipped(label, why):
                rows.append(((K, d), n, label, float("nan"), float("nan"), f"not run: {why}"))

            def compare_last(key_a, key_b, what):
                a, b = picks.get((K, d, n, key_a)), picks.get((K, d, n, key_b))
                if a and b and not rows[-1][5]:
                    shared = len(set(a) & set(b)) / len(a)
                    rows[-1] = (*rows[-1][:5], f"first {same_prefix(a, b)} of {k} picks equal {what}, "
                                               f"{shared:.0%} shared")

            def versus(r, key64, key32, name):
                if "error" in r:
                    return ""
                key, label = (key64, f"{name} (float64)") if picks.get((K, d, n, key64)) else (key32, f"{name} (float32)")
                same = same_prefix(r["picks"], picks.get((K, d, n, key)) or [])
                return f"extrapolated from {r['ran']} picks; same picks as {label}: {same}/{r['ran']}"

            for name in ("margin", "entropy"):
                row(f"uncertainty ({name})", run(task="strategy", name=name, **sh))
            row("BALD, T = 20 (chunked reduction)", run(task="strategy", name="bald", **sh), key="bald")
            need = 20 * n * K * 8
            if need <= LIMIT:
                r = run(task="ref_bald", **sh)
                same = "" if "error" in r else ("same picks" if r["picks"] == picks.get((K, d, n, "bald")) else "DIFFERENT picks")
                row("BALD reference (all T×N×K draws, float64)", r, same)
            else:
                skipped("BALD reference (all T×N×K draws, float64)", f"the draws alone take {need / 2**30:.0f} GB")
            # BADGE: float64 where (a, h) fit the 4 GB target, float32 always
            need = n * (K + d) * 8
            if need <= LIMIT:
                row("BADGE (float64)", run(task="strategy", name="badge", dtype="float64", **sh), key="badge_float64")
            else:
                skipped("BADGE (float64)", f"(a, h) alone take {need / 2**30:.1f} GB, over the 4 GB target")
            row("BADGE (float32)", run(task="strategy", name="badge", dtype="float32", **sh), key="badge_float32")
            compare_last("badge_float64", "badge_float32", "float64's")
            need = (n - N_LABELED) * K * d * 8
            if need <= LIMIT:
                r = run(task="ref_badge", ref_picks=cfg["ref_picks"], **sh)
                row("BADGE reference (materialised N×K·d float64)", r, versus(r, "badge_float64", "badge_float32", "BADGE"))
            else:
                skipped("BADGE reference (materialised N×K·d float64)", f"the N×K·d matrix alone takes {need / 2**30:.0f} GB")
            # core-set: the same rule for the (N, d) embeddings
            need = n * d * 8
            if need <= LIMIT:
                row("core-set (float64)", run(task="strategy", name="coreset", dtype="float64", **sh), key="coreset_float64")
            else:
                skipped("core-set (float64)", f"the embeddings alone take {need / 2**30:.1f} GB, at the 4 GB target")
            row("core-set (float32)", run(task="strategy", name="coreset", dtype="float32", **sh), key="coreset_float32")
            compare_last("coreset_float64", "coreset_float32", "float64's")
            row("core-set (float32, faiss IndexFlatL2 for the labelled set)",
                run(task="strategy", name="coreset", dtype="float32", search="flat", **sh), key="coreset_flat")
            compare_last("coreset_float32", "coreset_flat", "numpy float32's")
            if not small and (big or args.quick):
                row("core-set (float32, no pruning bounds)",
                    run(task="strategy", name="coreset", dtype="float32", prune=False, **sh), key="coreset_noprune",
                    note="one O(N·d) pass per pick: the cost where the bounds never apply")
            need = (n - N_LABELED) * N_LABELED * 8 * 2
            if need <= LIMIT:
                r = run(task="ref_coreset", ref_picks=cfg["ref_picks"], **sh)
                row("core-set reference (N×\\|L\\| matrix, float64)", r,
                    versus(r, "coreset_float64", "coreset_float32", "core-set"))
            else:
                skipped("core-set reference (N×\\|L\\| matrix, float64)",
                        f"the N×\\|L\\| matrix and sklearn's temporaries take about {need / 2**30:.0f} GB")
            dt = "float32" if big else "float64"
            row(f"DBAL ({dt}, β = 10)", run(task="strategy", name="dbal", dtype=dt, **sh))
            row(f"information density ({dt}, whole-pool mean)", run(task="strategy", name="density", dtype=dt, **sh))

    # growth with N and with k (K = 10, d = 128, default float64), for the log-log plot
    growth = {}
    for name in ("margin", "bald", "badge", "coreset", "dbal"):
        for n in cfg["growth_n"]:
            growth[(name, "n", n)] = _reuse(results, name, 10, 128, n, k) or run(task="strategy", name=name, K=10, d=128,
                                                                                  n=n, k=k)
        for kk in cfg["growth_k"]:
            n = cfg["ns"][0]
            growth[(name, "k", kk)] = _reuse(results, name, 10, 128, n, kk) or run(task="strategy", name=name, K=10,
                                                                                   d=128, n=n, k=kk)

    # faiss for core-set's initial pass to a large labelled set, and its approximate modes
    fa = {}
    for search in (None, "flat", "ivf", "hnsw"):
        fa[search] = run(task="kcenter_split", K=10, d=128, n=cfg["faiss_n"], k=k, n_labeled=cfg["faiss_labeled"],
                         search=search)
    # k-NN information density with faiss
    knn = {}
    for search in ("flat", "ivf", "hnsw"):
        knn[search] = run(task="strategy", name="density", n_neighbors=10, search=search, dtype="float32", K=10,
                          d=128, n=cfg["faiss_n"], k=k)
    # head-only MC dropout with TorchClassifier
    tmc = run(task="torch_mc", n=cfg["torch_n"], T=20)

    report(args, cfg, rows, growth, fa, knn, tmc, load0, time.perf_counter() - t_start)
    if args.json:
        Path(args.json).write_text(json.dumps([{"spec": s, "result": r} for s, r in results]))


def report_mc(cfg: dict, tmc: dict) -> None:
    print(f"\n### MC dropout with TorchClassifier: 784→512→10 MLP, dropout 0.5 before the head, N = {cfg['torch_n']:,}, "
          "T = 20\n")
    print("| MC path | predict_proba (s) | mc_scores, T = 20 (s) | ratio | extra peak of mc_scores (MB) |")
    print("|---|---:|---:|---:|---:|")
    if "error" in tmc:
        print(f"| failed: {tmc['error']} | | | | |")
    else:
        for label in ("head-only", "head-only, per draw", "generic"):
            r = tmc[label]
            print(f"| {label} | {_fmt(r['predict_proba'])} | {_fmt(r['mc_scores'])} | "
                  f"{r['mc_scores'] / r['predict_proba']:.2f}× | {_fmt(r['peak'], 0)} |")


def _reuse(results, name, K, d, n, k):
    for s, r in results:
        if (s.get("task") == "strategy" and s.get("name") == name and s["K"] == K and s["d"] == d and s["n"] == n
                and s["k"] == k and s.get("dtype", "float64") == "float64" and not s.get("search")
                and s.get("prune") is None and "error" not in r):
            return r
    return None


def _fmt(x: float, digits: int = 2) -> str:
    return "—" if np.isnan(x) else f"{x:,.{digits}f}"


def report(args, cfg, rows, growth, fa, knn, tmc, load0, wall) -> None:
    from threadpoolctl import threadpool_info

    k = cfg["k"]
    print(f"## Pools of millions: k = {k}, |L| = {N_LABELED}, {args.threads} threads\n")
    print("| K, d | N | method | time (s) | extra peak (MB) | note |")
    print("|---|---:|---|---:|---:|---|")
    for (K, d), n, label, sec, peak, note in rows:
        print(f"| {K}, {d} | {n:,} | {label} | {_fmt(sec)} | {_fmt(peak, 0)} | {note} |")

    print(f"\n### Growth with N (k = {k}) and with k (N = {cfg['ns'][0]:,}); K = 10, d = 128, float64, time in s\n")
    names = ("margin", "bald", "badge", "coreset", "dbal")
    print("| N | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for n in cfg["growth_n"]:
        print(f"| {n:,} | " + " | ".join(_fmt(growth[(m, 'n', n)].get('seconds', float('nan'))) for m in names) + " |")
    print("\n| k | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for kk in cfg["growth_k"]:
        print(f"| {kk:,} | " + " | ".join(_fmt(growth[(m, 'k', kk)].get('seconds', float('nan'))) for m in names) + " |")

    print(f"\n### Core-set from a large labelled set: N = {cfg['faiss_n']:,}, |L| = {cfg['faiss_labeled']:,}, "
          f"d = 128, float32, k = {k}\n")
    print("| search for the labelled set | initial pass (s) | whole selection (s) | extra peak (MB) | "
          "picks shared with exact | covering radius / exact's |")
    print("|---|---:|---:|---:|---:|---:|")
    exact = fa.get(None, {})
    labels = {None: "numpy blocks (exact)", "flat": "faiss IndexFlatL2 (exact)", "ivf": "faiss IVF (nprobe 16)",
              "hnsw": "faiss HNSW (M 32, efSearch 64)"}
    for key, res in fa.items():
        if "error" in res:
            print(f"| {labels[key]} | failed: {res['error']} | | | | |")
            continue
        shared = len(set(res["picks"]) & set(exact.get("picks", []))) / k
        ratio = res["radius"] / exact["radius"] if exact.get("radius") else float("nan")
        print(f"| {labels[key]} | {_fmt(res['init_seconds'])} | {_fmt(res['seconds'])} | {_fmt(res['peak'], 0)} | "
              f"{shared:.3f} | {ratio:.4f} |")

    print(f"\n### k-NN information density (10 neighbours), N = {cfg['faiss_n']:,}, d = 128, float32, k = {k}\n")
    print("| search | time (s) | extra peak (MB) | picks shared with exact (IndexFlatL2) |")
    print("|---|---:|---:|---:|")
    for key, res in knn.items():
        if "error" in res:
            print(f"| {key} | failed: {res['error']} | | |")
            continue
        shared = len(set(res["picks"]) & set(knn["flat"].get("picks", []))) / k
        print(f"| {labels[key]} | {_fmt(res['seconds'])} | {_fmt(res['peak'], 0)} | {shared:.3f} |")

    report_mc(cfg, tmc)

    blas = ", ".join(sorted({f"{i['internal_api']}" for i in threadpool_info()}))
    print(f"\nnumpy {np.__version__}, {blas}, {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; total wall time {wall / 60:.1f} min")

    plot = args.plot if args.plot is not None else (None if args.quick else str(_HERE.parent / "docs" / "scale_loglog.png"))
    if plot:
        _plot(plot, cfg, growth)
        print(f"plot: {plot}")


def _plot(path: str, cfg, growth) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"margin": "margin", "bald": "BALD (T=20)", "badge": "BADGE", "coreset": "core-set", "dbal": "DBAL"}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    for axis, (key, xs, label) in zip(axes, (("n", cfg["growth_n"], f"N (k = {cfg['k']})"),
                                             ("k", cfg["growth_k"], f"k (N = {cfg['ns'][0]:,})"))):
        for m, nice in names.items():
            ys = [growth[(m, key, v)].get("seconds", np.nan) for v in xs]
            axis.loglog(xs, ys, marker="o", ms=3, label=nice)
        ref = np.array(xs, dtype=float)
        axis.loglog(ref, ref / ref[-1] * 100, "k:", lw=0.8, label="slope 1")
        axis.set_xlabel(label)
        axis.set_ylabel("seconds")
        axis.grid(True, which="both", lw=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("pickwise selection time, K = 10, d = 128, float64, 2 threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
