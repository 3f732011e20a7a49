"""Frozen MiniLM sentence embeddings vs TF-IDF as features for active learning on SMS spam.

The train split (4,459 texts) is the pool, the test split (1,115) the evaluation set. For each
feature set (all-MiniLM-L6-v2 embeddings, cached on disk; TF-IDF fitted on the training texts),
each strategy (random, margin, BADGE) and each seed: 20 random initial labels (the same for every
strategy of a seed), batches of k = 20, a logistic-regression head (scikit-learn, C = 10) refitted
every round; macro-F1 on the test split at 100, 200 and 400 labels, mean ± standard error over
seeds. Also measures the encoder's throughput (texts per second) with 1 and 2 torch threads.

    PICKWISE_DATA=../shared/data nice .venv/bin/python benchmarks/encoders.py            # the docs table
    PICKWISE_DATA=../shared/data nice .venv/bin/python benchmarks/encoders.py --quick    # a smoke run

Embeddings are cached under --cache-dir (default runs/encoder-cache, git-ignored): a rerun encodes nothing.
"""

from __future__ import annotations

import sys

# benchmarks/select.py would shadow the standard library's `select` module
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("benchmarks")]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def throughput(texts: list[str], threads: list[int], batch_size: int) -> dict[int, float]:
    """Texts per second of a fresh SentenceEncoder encode (no cache), per torch thread count."""
    from pickwise.encoders import SentenceEncoder

    out = {}
    for n in threads:
        enc = SentenceEncoder(batch_size=batch_size, n_threads=n)
        enc.encode(texts[:8])  # load the model and warm up outside the timing
        t0 = time.perf_counter()
        enc.encode(texts)
        out[n] = len(texts) / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--initial", type=int, default=20)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--budgets", default="100,200,400", help="label counts reported (each initial + r·k)")
    ap.add_argument("--strategies", default="random,margin,badge")
    ap.add_argument("--features", default="minilm,tfidf")
    ap.add_argument("--C", type=float, default=10.0, help="inverse L2 strength of the logistic regression head")
    ap.add_argument("--batch-size", type=int, default=16, help="texts per MiniLM forward pass")
    ap.add_argument("--threads", default="1,2", help="torch thread counts for the throughput figure ('' skips it)")
    ap.add_argument("--n-throughput", type=int, default=512, help="texts timed per thread count")
    ap.add_argument("--cache-dir", default="runs/encoder-cache")
    ap.add_argument("--json", default=None, help="also write every per-seed figure to this JSON file")
    ap.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budgets, args.threads, args.n_throughput = 1, "60", "1", 64

    import torch

    torch.set_num_threads(1)  # a shared machine: one thread for everything but the throughput figure
    from sklearn.linear_model import LogisticRegression

    from pickwise import Random, Uncertainty, holdout, initial_pool, pool_rounds
    from pickwise.adapters import SklearnClassifier, TorchClassifier, mlp
    from pickwise.data import load
    from pickwise.data.loaders import text_features
    from pickwise.encoders import SentenceEncoder, encode_dataset
    from pickwise.protocols import GradEmbedder
    from pickwise.strategies import BADGE

    budgets = sorted(int(b) for b in args.budgets.split(","))
    if any((b - args.initial) % args.k or b < args.initial for b in budgets):
        raise SystemExit(f"every budget must be initial + r·k; got {budgets} with initial={args.initial}, k={args.k}")
    ds = load("sms-spam")
    print(f"sms-spam: pool {len(ds.x_train)} texts, test {len(ds.x_test)}, spam share "
          f"{ds.y_train.mean():.3f}; torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)

    figures: dict = {"settings": vars(args) | {"budgets": budgets}}
    threads = [int(t) for t in args.threads.split(",") if t]
    if threads:
        tp = throughput(ds.x_train[: args.n_throughput], threads, args.batch_size)
        figures["throughput"] = {str(n): v for n, v in tp.items()}
        for n, v in tp.items():
            print(f"MiniLM throughput, {n} thread(s), batch {args.batch_size}: {v:.0f} texts/s", flush=True)
        torch.set_num_threads(1)

    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in args.features.split(","):
        t0 = time.perf_counter()
        if name == "minilm":
            enc = encode_dataset(SentenceEncoder(batch_size=args.batch_size, n_threads=1), ds, args.cache_dir)
            feats[name] = (enc.x_train, enc.x_test)
        elif name == "tfidf":
            feats[name] = text_features(ds.x_train, ds.x_test)
        else:
            raise SystemExit(f"unknown feature set {name!r}; choose minilm or tfidf")
        where = f" (cache: {args.cache_dir})" if name == "minilm" else ""
        print(f"{name}: {feats[name][0].shape[1]} features in {time.perf_counter() - t0:.1f} s{where}", flush=True)

    def make_head(d: int):
        def logreg():
            return SklearnClassifier(LogisticRegression(C=args.C, max_iter=2000), n_classes=2)

        if isinstance(logreg(), GradEmbedder):
            return logreg
        # an older SklearnClassifier without grad_factors: a linear torch head for every strategy
        print("note: SklearnClassifier has no grad_factors here; using TorchClassifier(mlp(d, 2, hidden=()))")
        return lambda: TorchClassifier(mlp(d, 2, hidden=()), n_classes=2, weight_decay=1e-4)

    ceiling = {}
    for fname, (xtr, xte) in feats.items():  # the head trained on every pool label: the curves' ceiling
        full = make_head(xtr.shape[1])().fit(xtr, ds.y_train, seed=0)
        ceiling[fname] = holdout(xte, ds.y_test)(full)["macro_f1"]
        print(f"{fname}: macro-F1 with all {len(xtr)} pool labels {ceiling[fname]:.3f}", flush=True)
    figures["all_labels_macro_f1"] = ceiling

    table = {"random": Random(), "margin": Uncertainty("margin"), "badge": BADGE()}
    strategies = {s: table[s] for s in args.strategies.split(",")}
    rounds = (budgets[-1] - args.initial) // args.k
    results: dict = {}
    for fname, (xtr, xte) in feats.items():
        make_model = make_head(xtr.shape[1])
        evaluate = holdout(xte, ds.y_test)
        for sname, strategy in strategies.items():
            per_seed, secs = [], []
            for seed in range(args.seeds):
                pool = initial_pool(len(xtr), args.initial, ds.y_train, seed=seed)
                t0 = time.perf_counter()
                f1 = {r.n_labeled: r.metrics["macro_f1"] for r in pool_rounds(
                    make_model, strategy, xtr, pool, ds.y_train, k=args.k, seed=seed, rounds=rounds,
                    evaluate=evaluate)}
                secs.append((time.perf_counter() - t0) / (rounds + 1))
                per_seed.append([f1[b] for b in budgets])
            arr = np.asarray(per_seed)
            mean = arr.mean(0)
            se = arr.std(0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else np.zeros(len(budgets))
            results[(fname, sname)] = (mean, se, float(np.mean(secs)))
            figures.setdefault("runs", {})[f"{fname}/{sname}"] = {"macro_f1": arr.tolist(), "s_per_round": secs}
            print(f"  {fname:6s} {sname:7s} " + "  ".join(f"@{b}: {m:.3f}±{s:.3f}" for b, m, s in zip(budgets, mean, se))
                  + f"  ({np.mean(secs):.2f} s/round)", flush=True)

    print("\n| features | strategy | " + " | ".join(f"macro-F1 @ {b}" for b in budgets) + " | s / round |")
    print("|---|---|" + "---:|" * len(budgets) + "---:|")
    for (fname, sname), (mean, se, sec) in results.items():
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, se))
        print(f"| {fname} | {sname} | {cells} | {sec:.2f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
