"""The ``pickwise`` command: run, demo, stream, select, bench, report. ``pickwise --help`` lists them.

``python -m pickwise`` is the same command. Sub-CLIs live next to their code and plug in with two
lines: ``add_parsers(sub)`` in :func:`build_parser` and their ``COMMANDS`` in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .utils import n_items
from .bench.cli import COMMANDS as BENCH_COMMANDS
from .bench.cli import add_parsers as add_bench_parsers
from .engine.candidates_cli import COMMANDS as CANDIDATES_COMMANDS
from .engine.candidates_cli import add_parsers as add_candidates_parsers
from .engine.score_cli import COMMANDS as SCORE_COMMANDS
from .engine.score_cli import add_parsers as add_score_parsers
from .project.cli import COMMANDS as PROJECT_COMMANDS
from .project.cli import add_parsers as add_project_parsers
from .catalog import (
    COMMITTEE_STRATEGIES,
    MC_STRATEGIES,
    MODEL_NAMES,
    TEXT_MODELS,
    TRAINER_NAMES,
    make_strategy,
    make_stream_selector,
    make_trainer,
    model_factory,
    strategy_names,
    stream_selector_names,
    wrap_subsample,
)


def _add_data(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data: a built-in dataset, or your own labelled file or image folder")
    g.add_argument("--dataset", default=None,
                   help="built-in dataset name (default: digits, needs no files), or a path as with --data")
    g.add_argument("--data", default=None, metavar="PATH",
                   help="your own labelled data: .csv, .parquet, .jsonl (a label column and numeric or text "
                   "columns), .npy features (with --labels) or an image folder <folder>/<class name>/<file>")
    g.add_argument("--labels", default=None, metavar="PATH", help="labels for .npy features: a .npy of shape (n,)")
    g.add_argument("--label-column", default=None,
                   help="label column of a table (default: 'label' if present, else the last column)")
    g.add_argument("--text-column", default=None,
                   help="text column of a table (default: the one non-numeric column, if exactly one); "
                   "the model then takes raw text (tfidf)")
    g.add_argument("--image-size", type=int, default=None,
                   help="resize images of an image folder to N×N (default: keep; all must share one size)")
    g.add_argument("--test-size", type=float, default=None,
                   help="fraction held out for evaluation, stratified (default: 0.2; mnist and fashion-mnist "
                   "keep their official test sets)")
    g.add_argument("--split-seed", type=int, default=None,
                   help="seed of the train/test split (default: 0, the same for every --seed)")
    g.add_argument("--data-root", default=None, help="folder with the built-in datasets (default: $PICKWISE_DATA)")
    g.add_argument("--max-train", type=int, default=None, help="use only the first N training items as the pool (N >= 1)")


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, choices=MODEL_NAMES,
                   help="model (default: mlp; tfidf for text data, which needs a text model; cnn needs images: "
                   "digits, mnist, fashion-mnist, an image folder or a .npy of shape (n, H, W) / (n, C, H, W))")
    g.add_argument("--hidden", type=int, default=128, help="hidden width of the MLP (default: 128)")
    g.add_argument("--dropout", type=float, default=0.2, help="dropout before the head (default: 0.2)")
    g.add_argument("--epochs", type=int, default=100,
                   help="training epochs per round, at most 1000 steps (default: 100)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")


def _add_pool(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pool loop")
    g.add_argument("--n-draws", type=int, default=20, help="MC-dropout passes for MC strategies, >= 1 (default: 20)")
    g.add_argument("--committee", type=int, default=5, help="committee members for qbc, >= 2 (default: 5)")
    g.add_argument("--initial", type=int, default=20,
                   help="initial labels (default: 20), random unless --initial-strategy; 0: start from no labels "
                   "(round 0 trains nothing and the cold-start strategy picks the first --k items)")
    g.add_argument("--initial-strategy", default=None, metavar="NAME",
                   help="choose the initial labels (or, with --initial 0, round 0's --k items) with this strategy, "
                   "without a trained model: typiclust, probcover or random (default: random; with --initial 0 the "
                   "run's own --strategy when it needs no model)")
    g.add_argument("--k", type=int, default=20,
                   help="batch size: labels per round (default: 20); more than the unlabelled items is an error")
    g.add_argument("--rounds", type=int, default=10,
                   help="selection rounds (default: 10); a rerun with more rounds extends the recorded run")
    g = p.add_argument_group("training variants and compute-efficient acquisition")
    g.add_argument("--trainer", default="plain", choices=TRAINER_NAMES,
                   help="plain; ceal (pseudo-labels below an entropy threshold); joint-entropy (λ · unlabelled entropy)")
    g.add_argument("--entropy-weight", type=float, default=0.0, help="λ of the joint entropy objective (default: 0)")
    g.add_argument("--ceal-delta0", type=float, default=0.005, help="CEAL initial entropy threshold δ0 in nats (default: 0.005, pickwise's choice: see PseudoLabel)")
    g.add_argument("--ceal-decay", type=float, default=0.00033, help="CEAL threshold decay per round (default: 0.00033)")
    g.add_argument("--subsample-alpha", type=float, default=None,
                   help="score only a candidate pool of this many items (>1) or this fraction (<=1) after round 1")
    g.add_argument("--subsample-tau", type=float, default=1.0, help="softmax temperature of candidate sampling")
    g.add_argument("--subsample-weighting", default="temperature", choices=("temperature", "power"),
                   help="softmax(values/tau), or the published code's softmax(values**1.2)")


def _add_common(p: argparse.ArgumentParser) -> None:
    """The options of the pool simulations (run, demo): data, model and the pool loop."""
    _add_data(p)
    _add_model(p)
    _add_pool(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_threads(p)


def _add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N``: torch, BLAS and faiss threads (default: :func:`pickwise.threads.choose_threads`)."""
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch, BLAS and faiss (default: 1 for the small models mlp, logreg and tfidf, "
                   "else the CPUs not busy with other processes)")


#: commands whose parsers take --threads without the pool options (run and demo get it from _add_common)
THREADS_COMMANDS = ("stream", "select")


#: options of the pool loop that 'pickwise stream' refuses (it has no rounds, batches or strategies)
STREAM_REFUSED = (
    "--k", "--rounds", "--strategy", "--strategies", "--n-draws", "--committee", "--trainer", "--entropy-weight",
    "--ceal-delta0", "--ceal-decay", "--subsample-alpha", "--subsample-tau", "--subsample-weighting",
)


#: every numeric option of run, demo, stream and select (by dest) with its meaningful range, as
#: (lowest, highest, whether the lowest is allowed, whether the highest is); None: no bound. The
#: same name has the same range in every command.
_BOUNDS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "image_size": (1, None, True, False), "max_train": (1, None, True, False), "split_seed": (0, None, True, False),
    "test_size": (0, 1, False, False), "hidden": (1, None, True, False), "epochs": (1, None, True, False),
    "dropout": (0, 1, True, False), "lr": (0, None, False, False), "n_draws": (1, None, True, False),
    "committee": (2, None, True, False), "initial": (1, None, True, False), "k": (1, None, True, False),
    "rounds": (0, None, True, False), "entropy_weight": (0, None, True, False), "ceal_delta0": (0, None, True, False),
    "ceal_decay": (0, None, True, False), "subsample_alpha": (0, None, False, False),
    "subsample_tau": (0, None, False, False), "seed": (0, None, True, False), "seeds": (1, None, True, False),
    "jobs": (1, None, True, False), "budget": (1, None, True, False), "q": (0, 1, False, True),
    "segment": (1, None, True, False),
}


def _check_options(args: argparse.Namespace) -> None:
    """Refuse a numeric option outside its meaningful range (:data:`_BOUNDS`), naming it and the value:
    ``--max-train -100`` or ``--lr nan`` is an error, never a silently odd run."""
    import math

    for dest, (lo, hi, lo_ok, hi_ok) in _BOUNDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        flag = f"--{dest.replace('_', '-')}"
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number; got {value}")
        below = lo is not None and (value < lo or (value == lo and not lo_ok))
        above = hi is not None and (value > hi or (value == hi and not hi_ok))
        if below or above:
            if hi is None:
                bound = f">= {lo}" if lo_ok else f"> {lo}"
            else:
                bound = f"in {'[' if lo_ok else '('}{lo}, {hi}{']' if hi_ok else ')'}"
            raise ValueError(f"{flag} must be {bound}; got {value}")


def build_parser() -> argparse.ArgumentParser:
    """The ``pickwise`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pickwise", description="Active learning: choose which data to label, and measure whether it beats random."
    )
    parser.add_argument("--version", action="version", version=f"pickwise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate pool-based active learning with one strategy")
    _add_common(run)
    run.add_argument("--strategy", default="entropy", help=f"one of: {', '.join(strategy_names())}")
    run.add_argument("--seed", type=int, default=0, help="seed for the initial labels, training and selection")
    run.add_argument("--out", default="runs", help="output folder for the JSONL records and the PNG (default: runs); "
                     "a rerun resumes <data>_<model>_<strategy>_k<k>_seed<seed>.jsonl, a rerun with other settings "
                     "writes <that name>_<hash of the settings>.jsonl")

    demo = sub.add_parser("demo", help="compare random with the uncertainty and diversity strategies on digits")
    _add_common(demo)
    demo.add_argument("--strategies", default=None, help="comma-separated names (default: the demo set)")
    demo.add_argument("--seeds", type=int, default=5, help="seeds per strategy (default: 5)")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--jobs", type=int, default=None, help="parallel processes (default: number of cores)")

    st = sub.add_parser("stream", help="simulate streaming (committal) active learning with one selector",
                        description="Items arrive one by one and are queried or passed for good; the model is "
                        "frozen for each window of --segment items and retrained on all labels after it. Pool "
                        "options (--k, --rounds, --strategy, --trainer, --subsample-*, ...) are refused.")
    _add_data(st)
    _add_model(st)
    st.add_argument("--initial", type=int, default=100,
                    help="random labels before the stream starts (default: 100)")
    st.add_argument("--selector", default="vessal", help=f"one of: {', '.join(stream_selector_names())} (default: vessal)")
    st.add_argument("--budget", type=int, default=None,
                    help="labels to take from the stream, at an adaptive rate (no default: give --budget or --q); "
                    "at most the stream's length (training items less --initial): more is an error")
    st.add_argument("--q", type=float, default=None, help="a fixed query rate instead of --budget")
    st.add_argument("--segment", type=int, default=5000, help="items per window; retrain after each (default: 5000)")
    st.add_argument("--order", default="iid", choices=("iid", "pc", "class"),
                    help="arrival order: iid, pc (sorted by first principal component), class (default: iid)")
    st.add_argument("--protocol", default="official", choices=("official", "global", "rescan"),
                    help="official (the VeSSAL authors' code, --single_pass): a fresh selector every window with "
                    "its share of --budget (budget × window / stream length); global: one selector carried across "
                    "the retrains, one budget over the whole stream at the adaptive rate; rescan (the authors' "
                    "default mode): every round scans all unlabelled stream items with a fresh selector and the "
                    "round's share of --budget, the rounds being ⌈stream / --segment⌉ (default: official)")
    st.add_argument("--seed", type=int, default=0, help="seed of the order, initial labels and training (default: 0)")
    st.add_argument("--out", default="runs", help="output folder (default: runs)")
    st.add_argument("--no-progress", action="store_true", help="no progress bar")
    for flag in STREAM_REFUSED:
        st.add_argument(flag, dest=f"refused_{flag[2:].replace('-', '_')}", default=None, help=argparse.SUPPRESS)

    add_bench_parsers(sub)
    add_project_parsers(sub)
    add_score_parsers(sub)
    add_candidates_parsers(sub)

    sel = sub.add_parser("select", help="choose the next batch from outputs of your own model (memory-mapped .npy)")
    sel.add_argument("--probs", help="predicted probabilities, shape (N, K): N items, K classes")
    sel.add_argument("--embeddings", help="penultimate embeddings, shape (N, d)")
    sel.add_argument("--mc-probs", help="MC-dropout probabilities, shape (T, N, K): T draws first, each covering "
                     "every item (bald, batchbald, variation_ratio, ...); with --mc-ids, shape (T, M, K) for M items")
    sel.add_argument("--mc-ids", metavar="FILE", help="the items that --mc-probs covers, one per column, in order: "
                     "ids.npy of integer indices 0 .. N-1, or ids (.npy strings, .txt, .csv) of --ids; strategies "
                     "that need MC draws then choose among these M items only, the others keep --probs/--embeddings")
    sel.add_argument("--member-probs", metavar="FILE.npy", help="committee members' probabilities, shape (M, N, K): "
                     "M members first, each covering every item (qbc: vote entropy; qbc_kl: KL to the consensus)")
    sel.add_argument("--parquet", metavar="SOURCE", help="the outputs as Parquet instead of .npy files: a file or a "
                     "folder of *.parquet with columns id and any of probs, embeddings (fixed-size lists), mc_probs "
                     "(T·K per item; pickwise.engine.parquet, as `pickwise score` writes them)")
    sel.add_argument("--labeled", help="absolute indices already labelled, shape (m,) integers")
    sel.add_argument("--ids", help="your id of every item, in row order: ids.npy, ids.txt (one a line), ids.csv "
                     "(column 'id', else the first), or an image folder (its file names); default: the row index")
    sel.add_argument("--exclude", help="items already sent out (ids, or indices without --ids; same file types): "
                     "treated as taken, never chosen")
    sel.add_argument("--strategy", required=True, help=f"one of: {', '.join(strategy_names())}")
    sel.add_argument("--k", type=int, required=True,
                     help="how many to choose, at least 1 and at most the unlabelled items (more is an error)")
    sel.add_argument("--n-draws", type=int, default=None, help="MC draws to use, the first N (>= 1; default: all given)")
    sel.add_argument("--seed", type=int, default=0, help="seed for tie-breaking and sampling (>= 0)")
    sel.add_argument("--out", required=True, help="CSV to write: rank,index,id,score")
    sel.add_argument("--no-progress", action="store_true", help="no progress bars")
    sel.add_argument("--engine", choices=("local", "ray"), default=None,
                     help="select over the pool in shards, each reading its own rows of the .npy files: 'local' "
                          "(this process) or 'ray' (one Ray actor per shard; pip install \"pickwise[distributed]\"); "
                          "the same picks as without --engine. Strategies: least_confidence, margin, entropy, bald, "
                          "variation_ratio, mean_std, max_entropy, badge, coreset, dbal")
    sel.add_argument("--address", default=None,
                     help="with --engine ray: the Ray cluster to join (host:port, ray://host:port or auto); "
                          "default: start Ray on this machine, listening on 127.0.0.1 only")
    sel.add_argument("--shards", type=int, default=None, help="with --engine: shards of the pool (>= 1; default: 1)")
    sel.add_argument("--two-level", action="store_true",
                     help="with --engine, badge: two-level D² sampling (every shard sums its own D² at once; "
                          "about 2 steps of latency per pick instead of shards + 3); the plain picks except where "
                          "a draw lands within rounding of a row boundary (docs/distributed.md)")
    sel.add_argument("--approximate", action="store_true",
                     help="with --engine, badge or coreset: a few rounds instead of k (badge: k-means||, coreset: "
                          "the two-round composable core-set); NOT the plain picks (pickwise.engine.approx)")
    return parser


def cmd_stream(args: argparse.Namespace) -> int:
    """``pickwise stream``: one streaming simulation; records as JSON Lines (a rerun resumes) and a PNG."""
    import hashlib
    import json

    from .metrics import holdout
    from .plots import learning_curves
    from .records import RecordWriter, read_jsonl
    from .stream import SegmentRecord, stream_segments

    given = [f for f in STREAM_REFUSED if getattr(args, f"refused_{f[2:].replace('-', '_')}") is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: pool options ('pickwise run'); 'pickwise stream' takes --selector, "
                         "--budget or --q, --segment, --order and --initial")
    if args.budget is None and args.q is None:
        raise ValueError("give --budget (labels to take) or --q (a fixed query rate)")
    _check_options(args)
    ds = _load(args)
    model = _model_name(args, ds)
    x_train, x_test = _flat(ds.x_train), _flat(ds.x_test)
    n = n_items(x_train)
    if args.initial >= n:
        raise ValueError(f"--initial {args.initial} leaves no stream: the data hold {n} training items")
    if args.budget is not None and args.budget > n - args.initial:
        raise ValueError(f"--budget {args.budget} exceeds the {n - args.initial} stream items ({n} training items "
                         f"less --initial {args.initial}); a budget can take at most every item once")
    selector = make_stream_selector(args.selector, q=args.q)
    make_model = model_factory(
        model, n_features=_n_features(x_train), n_classes=ds.n_classes, hidden=args.hidden,
        dropout=args.dropout, epochs=args.epochs, lr=args.lr,
        image_shape=_image_shape(args, ds) if model == "cnn" else None,
    )
    config = ({key: getattr(args, key) for key in STREAM_CONFIG_KEYS} | _data_config(args)
              | {"model": model, "protocol": args.protocol})
    tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"stream_{_data_label(args)}_{args.selector}_{args.order}_seed{args.seed}_{args.protocol}_{tag}"
    path = out / f"{stem}.jsonl"
    writer = RecordWriter(path)  # the records' lock first: a second writer is refused before anything is read
    done = [SegmentRecord.from_dict(r) for r in read_jsonl(path, repair=True)]
    segments = stream_segments(
        make_model, selector, x_train, ds.y_train, order=args.order, segment=args.segment, initial=args.initial,
        budget=args.budget, evaluate=holdout(x_test, ds.y_test), seed=args.seed, protocol=args.protocol,
        resume=done or None, progress=not args.no_progress,
    )
    from tqdm import tqdm

    tqdm.write(f"{'segment':>7} {'seen':>7} {'queries':>7} {'labels':>7} {'rate':>6} {'target':>6} {'accuracy':>8} "
               f"{'fit s':>6} {'select s':>8}")
    recs = list(done)
    for rec in done:
        tqdm.write(_segment_row(rec) + "  (resumed)")
    for rec in segments:
        writer.write(rec.to_dict())
        recs.append(rec)
        tqdm.write(_segment_row(rec))
    png = out / f"{stem}.png"
    learning_curves(
        {args.selector: [([r.n_labels for r in recs], [r.metrics["accuracy"] for r in recs])]},
        png, title=f"{_data_label(args)} stream ({args.order}, {args.protocol}), window {args.segment}",
    )
    queried = sum(r.queries for r in recs)
    seen = recs[-1].items_seen if recs else 0
    print(f"queried {queried} of {seen} stream items (rate {queried / max(seen, 1):.4f})")
    print(f"records: {path}\nfigure:  {png}")
    return 0


def _segment_row(r: Any) -> str:
    """One row of ``pickwise stream``'s table: rate is realised (queries / window), target the window's aim."""
    target = "-" if r.target_rate is None else f"{r.target_rate:.3f}"
    return (
        f"{r.segment:>7} {r.items_seen:>7} {r.queries:>7} {r.n_labels:>7} {r.rate:>6.3f} {target:>6} "
        f"{r.metrics.get('accuracy', float('nan')):>8.4f} {r.fit_seconds:>6.2f} {r.select_seconds:>8.3f}"
    )


def cmd_select(args: argparse.Namespace) -> int:
    """Select from precomputed outputs; writes rank, absolute index, id and score (see
    :func:`pickwise.precomputed.select_with_values`)."""
    from .pool import Pool
    from .precomputed import (
        Precomputed,
        check_arrays,
        check_items,
        check_mc_ids,
        load_npy,
        read_ids,
        read_mc_ids,
        resolve_refs,
        select_with_values,
    )
    from .progress import progress_bars
    from .protocols import MCSampler

    _check_options(args)
    _check_engine_options(args)
    if args.parquet is not None:
        arrays, ids = _parquet_outputs(args)
    else:
        arrays = {name: load_npy(getattr(args, name)) for name in ("probs", "embeddings", "mc_probs", "member_probs")}
        ids = read_ids(args.ids) if args.ids else None
    if all(v is None for v in arrays.values()):
        raise ValueError("give the outputs to choose from: --probs, --embeddings, --mc-probs and/or --member-probs")
    given = {k: v for k, v in arrays.items() if v is not None}
    mc_ids = None
    if args.mc_ids is not None:
        if arrays["mc_probs"] is None:
            raise ValueError(f"--mc-ids {args.mc_ids} names the items of --mc-probs; give --mc-probs too")
        if args.engine is not None:
            raise ValueError(f"--mc-ids works without --engine only; got --engine {args.engine}")
        # the draws cover a subset: N comes from the other arrays or --ids, never from --mc-probs
        given = {k: v for k, v in given.items() if k != "mc_probs"}
        if ids is None and not given:
            raise ValueError("--mc-ids needs the size of the pool: give --probs, --embeddings or --ids for every item")
    if ids is not None:
        if not ids:
            raise ValueError(f"--ids {args.ids} holds no ids")
        # the ids fix N: every array needs one row (2-D) or one column of draws or members (3-D) per id
        check_arrays(given)
        check_items(given, len(ids), f"--ids {args.ids} holds {len(ids)} ids")
    if args.mc_ids is not None:
        check_arrays({**given, "mc_probs": arrays["mc_probs"]})
        n_pool = len(ids) if ids is not None else check_items(given)
        mc_ids = check_mc_ids(read_mc_ids(args.mc_ids, ids=ids), arrays["mc_probs"].shape, n_pool,
                              name=f"--mc-ids {args.mc_ids}")
    model = Precomputed(**arrays, n=None if ids is None else len(ids), mc_ids=mc_ids)
    mc = model.mc_probs
    if args.n_draws is not None and mc is not None and args.n_draws > mc.shape[0]:
        raise ValueError(f"--n-draws {args.n_draws} exceeds the {mc.shape[0]} draws in --mc-probs {args.mc_probs} "
                         f"(shape {tuple(mc.shape)}, layout (T, N, K))")
    n_draws = args.n_draws or (mc.shape[0] if mc is not None else None)
    strategy = make_strategy(args.strategy, n_draws=n_draws)
    labeled = load_npy(args.labeled, mmap=False) if args.labeled else np.empty(0, dtype=np.int64)
    if labeled.ndim != 1 or (labeled.size and labeled.dtype.kind not in "iu"):
        raise ValueError(f"--labeled must hold a 1-D array of integer indices; got shape {labeled.shape}, dtype {labeled.dtype}")
    if labeled.size and (labeled.min() < 0 or labeled.max() >= model.n):
        raise ValueError(f"--labeled holds indices outside 0 .. {model.n - 1}: {labeled[(labeled < 0) | (labeled >= model.n)][:5].tolist()}")
    taken = np.unique(labeled.astype(np.int64))
    if args.exclude:
        excluded = resolve_refs(read_ids(args.exclude), n=model.n, ids=ids, what=f"--exclude {args.exclude}")
        taken = np.union1d(taken, excluded)
    n_taken, why = taken.shape[0], "labelled or excluded"
    if model.mc_items is not None and MCSampler in tuple(getattr(strategy, "needs", ())):
        # a strategy over MC draws chooses among the items that have them (--mc-ids)
        taken = np.union1d(taken, np.setdiff1d(np.arange(model.n), model.mc_items))
        why += f", {model.n - model.mc_items.shape[0]} without MC draws (--mc-ids)"
    # labels are unknown here: strategies that choose from outputs do not read them
    pool = Pool.empty(model.n).label(taken, np.zeros(taken.shape[0], dtype=np.int64))
    _check_k(args.k, pool.n_unlabeled, f"{model.n} items, {n_taken} {why}")
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    with progress_bars(not args.no_progress):
        if args.engine is None:
            picks, picked_scores, _ = select_with_values(strategy, model, model.x, pool, args.k, rng=rng)
        else:
            picks, picked_scores = _select_on_engine(args, strategy, model, pool, n_draws, rng)
    wall = time.perf_counter() - t0
    _write_picks(Path(args.out), picks, picked_scores, ids)
    on = "" if args.engine is None else f" on the {args.engine} engine ({args.shards or 1} shards)"
    print(f"chose {len(picks)} of {pool.n_unlabeled} unlabelled items with {args.strategy}{on} in {wall:.2f} s "
          f"-> {args.out}")
    return 0


def _parquet_outputs(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """``select --parquet``: the arrays and ids of a Parquet source (pickwise.engine.parquet's layout)."""
    from .engine.parquet import open_parquet, parquet_files, read_outputs

    given = [f"--{n.replace('_', '-')}" for n in ("probs", "embeddings", "mc_probs", "member_probs", "ids", "mc_ids")
             if getattr(args, n) is not None]
    if given:
        raise ValueError(f"--parquet {args.parquet} holds the outputs and the ids; drop {' and '.join(given)}")
    names = set(open_parquet(parquet_files(args.parquet)[0]).schema_arrow.names)
    if "id" not in names:
        raise ValueError(f"--parquet {args.parquet} has no column 'id' (it has {', '.join(sorted(names))})")
    cols = ["id", *[c for c in ("probs", "embeddings", "mc_probs") if c in names]]
    out = read_outputs(args.parquet, cols)
    ids = [str(i) for i in out.pop("id").tolist()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--parquet {args.parquet} repeats ids (each item needs one row)")
    arrays: dict[str, Any] = {"probs": None, "embeddings": None, "mc_probs": None, "member_probs": None}
    arrays.update(out)
    return arrays, ids


def _check_engine_options(args: argparse.Namespace) -> None:
    """``pickwise select``'s engine options: known strategy, --shards >= 1, --address only with Ray."""
    from .engine import ENGINE_STRATEGIES

    if args.engine is None:
        given = [flag for flag, v in (("--shards", args.shards), ("--address", args.address),
                                      ("--approximate", args.approximate or None),
                                      ("--two-level", args.two_level or None)) if v is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --engine local or --engine ray")
        return
    if args.shards is not None and args.shards < 1:
        raise ValueError(f"--shards must be >= 1; got {args.shards}")
    if args.address is not None and args.engine != "ray":
        raise ValueError(f"--address {args.address!r} needs --engine ray (got --engine {args.engine})")
    if args.strategy not in ENGINE_STRATEGIES:
        raise ValueError(f"--engine {args.engine} runs the strategies {', '.join(ENGINE_STRATEGIES)}; "
                         f"got --strategy {args.strategy!r}")
    if args.approximate and args.strategy not in ("badge", "coreset"):
        raise ValueError(f"--approximate is for --strategy badge (k-means||) or coreset (two-round); "
                         f"--strategy {args.strategy} is exact already")
    if args.two_level and (args.strategy != "badge" or args.approximate):
        raise ValueError(f"--two-level is for exact --strategy badge (k-means++); got --strategy {args.strategy}"
                         + (" with --approximate" if args.approximate else ""))


def _select_on_engine(args: argparse.Namespace, strategy: Any, model: Any, pool: Any, n_draws: int | None,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``select --engine``: the unlabelled rows in ``--shards`` shards, each reading its own rows of
    the .npy files; the picks and values of :func:`~pickwise.precomputed.select_with_values`."""
    import copy

    from .engine import LocalEngine, npy_loaders, run_with_restarts, select_sharded
    from .engine.precomputed import needed_arrays
    from .precomputed import natural_values
    from .protocols import ScoreBased

    need = needed_arrays(args.strategy)
    if args.parquet is not None:
        missing = [name for name in need if getattr(model, name, None) is None]
        if missing:
            raise ValueError(f"--strategy {args.strategy} with --engine needs the column {missing[0]!r} in "
                             f"--parquet {args.parquet}")
    else:
        missing = [f"--{name.replace('_', '-')}" for name in need if getattr(args, name) is None]
        if missing:
            raise ValueError(f"--strategy {args.strategy} with --engine needs {' and '.join(missing)}")
    shards = args.shards or 1
    if shards > model.n:
        raise ValueError(f"--shards {shards} exceeds the {model.n} items of the pool")
    if args.parquet is not None:  # each shard reads only the row groups holding its rows
        from .engine.parquet import parquet_loaders

        loaders = parquet_loaders(args.parquet, need, shards, exclude=pool.labeled, index="index")
    else:
        loaders = npy_loaders({name: getattr(args, name) for name in need}, shards, exclude=pool.labeled,
                              index="index", axis1=("mc_probs",))
    centres = model.embed(pool.labeled) if args.strategy == "coreset" and pool.n_labeled else None

    def build() -> Any:
        if args.engine == "local":
            return LocalEngine.from_loaders(loaders)
        from .engine.ray import RayEngine, open_ray_engine

        return open_ray_engine(lambda init: RayEngine.from_loaders(loaders, address=args.address, init_options=init),
                               args.address, option="--address")

    before = copy.deepcopy(rng)
    def run(eng: Any) -> np.ndarray:
        return select_sharded(eng, args.strategy, args.k, rng=rng, n_draws=n_draws, centres=centres,
                              approximate=args.approximate, sums="parallel" if args.two_level else "sequential")

    picks = pool.unlabeled[run_with_restarts(build, run, rng=rng)]
    if isinstance(strategy, ScoreBased):
        values = np.asarray(strategy.scores(model, model.x, picks, rng=before), dtype=np.float64)
    else:
        values = natural_values(strategy, model, model.x, pool, picks, rng=before)
    return picks, values


def _check_k(k: int, n_unlabeled: int, pool: str) -> None:
    """The one rule of every command: a batch larger than the unlabelled items is an error, not clamped."""
    if n_unlabeled == 0:
        raise ValueError(f"the pool has no unlabelled items to choose from ({pool})")
    if k > n_unlabeled:
        raise ValueError(f"--k {k} exceeds the {n_unlabeled} unlabelled items of the pool ({pool})")


def _write_picks(out: Path, picks: np.ndarray, picked_scores: np.ndarray, ids: list[str] | None = None) -> None:
    import csv

    from ._fs import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w", encoding="utf-8", newline="") as f:  # a failure leaves no .part file
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["rank", "index", "id", "score"])
        for rank, (i, sc) in enumerate(zip(picks.tolist(), picked_scores.tolist())):
            w.writerow([rank, i, i if ids is None else ids[i], "" if np.isnan(sc) else repr(sc)])


_FILE_OPTIONS = ("labels", "label_column", "text_column", "image_size")


def _data_path(args: argparse.Namespace) -> str | None:
    """The user's data file or folder (--data, or --dataset given a path); None for a built-in set."""
    from .data import is_data_path

    if args.data is not None:
        if args.dataset is not None:
            raise ValueError(f"give --data or --dataset, not both (got --data {args.data!r} and --dataset {args.dataset!r})")
        return args.data
    if args.dataset is not None and is_data_path(args.dataset):
        return args.dataset
    return None


def _data_label(args: argparse.Namespace) -> str:
    """The dataset's name in file names: the built-in name, or the data file's stem."""
    path = _data_path(args)
    if path is None:
        return args.dataset or "digits"
    return Path(path).stem or Path(path).resolve().name


def _data_config(args: argparse.Namespace) -> dict[str, Any]:
    """The data settings that go into the records' header, beyond ``dataset`` (only those in use,
    so records of built-in sets written before these options existed still resume)."""
    path = _data_path(args)
    cfg: dict[str, Any] = {"dataset": _data_label(args)}
    if path is not None:
        cfg["data"] = str(Path(path).resolve())
    for key in (*_FILE_OPTIONS, "test_size", "split_seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    return cfg


def _load(args: argparse.Namespace) -> Any:
    from .data import load, load_file

    path = _data_path(args)
    split = {"seed": args.split_seed or 0} | ({"test_size": args.test_size} if args.test_size is not None else {})
    if path is not None:
        ds = load_file(path, labels=args.labels, label_column=args.label_column, text_column=args.text_column,
                       image_size=args.image_size, **split)
    else:
        given = [f"--{k.replace('_', '-')}" for k in _FILE_OPTIONS if getattr(args, k) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to your own data (--data PATH); "
                             f"got the built-in dataset {args.dataset or 'digits'!r}")
        name = args.dataset or "digits"
        if name in ("mnist", "fashion-mnist", "fashion_mnist"):
            if args.test_size is not None or args.split_seed is not None:
                raise ValueError(f"{name} has an official test set; --test-size and --split-seed do not apply")
            split = {}
        elif args.test_size is None and args.split_seed is None:
            split = {}  # the loader's own defaults (0.2, seed 0)
        ds = load(name, root=args.data_root, **split)
    if args.max_train is not None:
        from dataclasses import replace

        from .utils import take

        keep = np.arange(min(args.max_train, len(ds.y_train)))
        ds = replace(ds, x_train=take(ds.x_train, keep), y_train=ds.y_train[keep])
    if len(ds.y_train) == 0:
        raise ValueError(f"{_data_label(args)}: no training items to choose from (the pool is empty)")
    if isinstance(ds.x_train, np.ndarray) and ds.x_train.ndim < 2:
        raise ValueError(f"{_data_label(args)}: features must have shape (n, n_features) or (n, ...) with one row "
                         f"per item; got shape {ds.x_train.shape}")
    return ds


def _flat(x: Any) -> Any:
    return x.reshape(len(x), -1) if isinstance(x, np.ndarray) and x.ndim > 2 else x


def _n_features(x: Any) -> int | None:
    return int(x.shape[1]) if isinstance(x, np.ndarray) else None


def _model_name(args: argparse.Namespace, ds: Any) -> str:
    """--model, defaulting to mlp for numeric data and tfidf for texts; a mismatch is an error."""
    text = not isinstance(ds.x_train, np.ndarray)
    model = args.model or ("tfidf" if text else "mlp")
    if text and model not in TEXT_MODELS:
        raise ValueError(f"the data holds raw text; model {model!r} needs numeric features: use --model "
                         f"{' or '.join(TEXT_MODELS)}")
    if not text and model in TEXT_MODELS:
        raise ValueError(f"model {model!r} takes raw text, but the data is numeric (for a text column of a table "
                         "name it with --text-column)")
    if model == "cnn":
        _image_shape(args, ds)  # refuse non-image data before anything trains
    return model


#: built-in datasets whose flat rows are the pixels of square single-channel images
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "fashion_mnist")


def _image_shape(args: argparse.Namespace, ds: Any) -> tuple[int, ...] | None:
    """The image shape model ``cnn`` reshapes rows to: (C, H, W) or (H, W) of images (an image folder,
    a .npy of shape (n, H, W) or (n, C, H, W)), None for the flat square images of a built-in image
    set; ``ValueError`` naming the data's shape for anything else (tables, PMLB sets, 2-D .npy)."""
    from .catalog import cnn_input_shape

    x = ds.x_train
    shape = tuple(x.shape)
    if len(shape) >= 3:
        cnn_input_shape(int(np.prod(shape[1:])), shape[1:])
        return shape[1:]
    if _data_path(args) is None and (args.dataset or "digits") in IMAGE_DATASETS:
        cnn_input_shape(shape[1])
        return None
    raise ValueError(f"model 'cnn' needs images: an image folder, a .npy of shape (n, H, W) or (n, C, H, W) with "
                     f"H = W >= 4, or one of {', '.join(IMAGE_DATASETS[:3])}; the data {_data_label(args)!r} has "
                     f"shape {shape}, rows of {shape[1]} features (use --model mlp or logreg)")


RUN_CONFIG_KEYS = (
    "dataset", "model", "hidden", "dropout", "epochs", "lr", "n_draws", "initial", "max_train",
    "entropy_weight", "committee",
)


STREAM_CONFIG_KEYS = (
    "dataset", "model", "hidden", "dropout", "epochs", "lr", "initial", "max_train",
    "selector", "budget", "q", "segment", "order", "seed",
)


def _run_stem(args: argparse.Namespace, strategy_name: str, seed: int, model: str | None = None) -> str:
    tag = strategy_name
    if getattr(args, "initial_strategy", None) is not None:
        tag += f"-from-{args.initial_strategy}"
    if args.subsample_alpha is not None:
        tag += f"-sub{args.subsample_alpha:g}"
    if args.trainer != "plain":
        tag += f"-{args.trainer}"
    return f"{_data_label(args)}_{model or args.model or 'mlp'}_{tag}_k{args.k}_seed{seed}"


def _named_classes(ds: Any) -> tuple[str, ...] | None:
    """The class names worth printing: None when they are just 0 .. K-1."""
    names = ds.class_names
    return None if names is None or list(names) == [str(i) for i in range(len(names))] else tuple(names)


def _class_counts(labels: list[int], names: tuple[str, ...], top: int = 5) -> str:
    from collections import Counter

    counts = Counter(labels).most_common()
    text = " ".join(f"{names[c]}×{m}" for c, m in counts[:top])
    return text + (f" (+{len(counts) - top} classes)" if len(counts) > top else "")


class _Records(list):
    """The round records of one run, with the model name the run resolved (``--model`` or the default)
    and the records file they went to."""

    model: str = ""
    path: Path = Path()


def _check_pool(args: argparse.Namespace, n: int) -> str | None:
    """``--initial`` and ``--k`` against a pool of ``n`` items: an error when ``--k`` exceeds the
    unlabelled items (as in ``pickwise select``); a note when ``--rounds`` × ``--k`` does (the run then
    ends early, when the pool is exhausted), returned for the caller to print."""
    if args.initial > n:
        raise ValueError(f"--initial {args.initial} exceeds the pool of {n} items")
    _check_k(args.k, n - args.initial, f"{n} items, {args.initial} initial labels")
    if args.rounds * args.k > n - args.initial:
        full = (n - args.initial) // args.k
        return (f"--rounds {args.rounds} × --k {args.k} = {args.rounds * args.k} exceeds the {n - args.initial} "
                f"unlabelled items: the pool runs out after {full + ((n - args.initial) % args.k > 0)} rounds")
    return None


def _run_path(out: Path, stem: str, identity: dict[str, Any]) -> tuple[Path, Path | None]:
    """The records file of a run: ``<stem>.jsonl``, unless that holds a run with other settings; then
    ``<stem>_<hash of the settings>.jsonl``, so a rerun with other settings writes another file (and a
    rerun with the same settings finds its own). Also returns the base file when it was passed over."""
    import hashlib
    import json

    from .loop import records_differ

    base = out / f"{stem}.jsonl"
    if not records_differ(base, identity):
        return base, None
    tag = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return out / f"{stem}_{tag}.jsonl", base


def run_one(args: argparse.Namespace, strategy_name: str, seed: int, out: Path, *, progress: bool, echo: bool) -> list:
    """One simulated run; records go to ``out`` as JSON Lines (a rerun resumes, a rerun with more
    ``--rounds`` extends the run, one with other settings writes another file: :func:`_run_path`).
    Returns the records (a list with ``model``, the model name used, and ``path``, the records file)."""
    import sys

    from .loop import initial_pool, pool_rounds, run_identity
    from .metrics import holdout

    ds = _load(args)
    model = _model_name(args, ds)
    x_train, x_test = _flat(ds.x_train), _flat(ds.x_test)
    note = _check_pool(args, n_items(x_train))
    if strategy_name in MC_STRATEGIES and args.dropout <= 0:
        raise ValueError(f"strategy {strategy_name!r} needs MC dropout; pass --dropout > 0 (got {args.dropout})")
    if strategy_name in MC_STRATEGIES and model in ("logreg", *TEXT_MODELS):
        raise ValueError(f"strategy {strategy_name!r} needs MC dropout, which model {model!r} has not; "
                         "use a torch model (mlp, cnn)")
    strategy = wrap_subsample(
        make_strategy(strategy_name, n_draws=args.n_draws),
        args.subsample_alpha,
        tau=args.subsample_tau,
        weighting=args.subsample_weighting,
    )
    trainer = make_trainer(args.trainer, delta0=args.ceal_delta0, decay=args.ceal_decay)
    if args.trainer == "joint-entropy" and model in ("logreg", *TEXT_MODELS):
        raise ValueError(f"trainer 'joint-entropy' needs a torch model (mlp or cnn); got model {model!r}")
    make_model = model_factory(
        model,
        n_features=_n_features(x_train),
        n_classes=ds.n_classes,
        hidden=args.hidden,
        dropout=args.dropout,
        epochs=args.epochs,
        lr=args.lr,
        image_shape=_image_shape(args, ds) if model == "cnn" else None,
        entropy_weight=args.entropy_weight,
        committee=args.committee if strategy_name in COMMITTEE_STRATEGIES else None,
    )
    config = {key: getattr(args, key) for key in RUN_CONFIG_KEYS} | _data_config(args) | {"model": model}
    if _data_path(args) is not None and ds.class_names is not None:
        config["class_names"] = list(ds.class_names)  # label k of the records is class_names[k]
    init_name = getattr(args, "initial_strategy", None)
    init_strategy = None
    if init_name is not None:
        from ._validation import check_choice

        init_strategy = make_strategy(check_choice("--initial-strategy", init_name, strategy_names()))
        config["initial_strategy"] = init_name  # only when given: earlier records still resume
    pool = initial_pool(n_items(x_train), args.initial, ds.y_train, seed=seed, n_classes=ds.n_classes,
                        strategy=init_strategy if args.initial > 0 else None, x=x_train)
    if args.initial == 0:  # round 0 has no model: --initial-strategy, else the run's own if model-free, else random
        from .loop import cold_start_strategy

        init_strategy = cold_start_strategy(strategy, init_strategy)
    identity = run_identity(strategy, pool, k=args.k, seed=seed, trainer=trainer, config=config,
                            initial_strategy=init_strategy)
    path, passed_over = _run_path(out, _run_stem(args, strategy_name, seed, model), identity)
    if echo and note:
        print(f"pickwise run: note: {note}", file=sys.stderr)
    if echo and passed_over is not None:
        print(f"pickwise run: note: {passed_over} holds a run with other settings; this run's records go to {path}",
              file=sys.stderr)
    rounds = pool_rounds(
        make_model,
        strategy,
        x_train,
        pool,
        ds.y_train,
        k=args.k,
        seed=seed,
        evaluate=holdout(x_test, ds.y_test),
        rounds=args.rounds,
        records=path,
        trainer=trainer,
        config=config,
        initial_strategy=init_strategy,
    )
    from tqdm import tqdm

    names = _named_classes(ds)
    bar = tqdm(rounds, total=args.rounds + 1, desc=f"{strategy_name} seed {seed}", disable=not progress, unit="round")
    if echo:
        tqdm.write(f"{'round':>5} {'labelled':>8} {'accuracy':>8} {'macro_f1':>8} {'fit s':>7} {'select s':>8} {'scored':>8}"
                   f" {'stop κ':>7}" + ("  new labels by class" if names else ""))
    recs = _Records()
    recs.model = model
    recs.path = path
    for rec in bar:
        recs.append(rec)
        acc = rec.metrics.get("accuracy", float("nan"))
        bar.set_postfix(labelled=rec.n_labeled, acc=f"{acc:.3f}")
        if echo:
            kappa = "—" if rec.stop_kappa is None else f"{rec.stop_kappa:.4f}"
            tqdm.write(
                f"{rec.round:>5} {rec.n_labeled:>8} {_fmt_metric(rec.metrics.get('accuracy'))} "
                f"{_fmt_metric(rec.metrics.get('macro_f1'))} "
                f"{rec.fit_seconds:>7.2f} {rec.select_seconds:>8.3f} {rec.n_scored:>8} {kappa:>7}"
                + (f"  {_class_counts(rec.labels, names)}" if names and rec.labels else "")
                + ("  ← stop (predictions stable)" if rec.stop_reached is not None and rec.stop_reached == rec.round
                   else "")
            )
    if echo:
        _print_stop(recs)
    return recs


def _fmt_metric(value: float | None) -> str:
    """A metric in the per-round table; "—" for a round without a model (round 0 from no labels)."""
    return f"{'—':>8}" if value is None else f"{value:>8.4f}"


def _print_stop(recs: list) -> None:
    """One line on the stabilising-predictions stopping rule after the per-round table."""
    from .stopping import THRESHOLD, WINDOW

    last = recs[-1] if recs else None
    if last is None or not any(r.stop_kappa is not None for r in recs):
        return
    if last.stop_reached is None:
        print(f"stopping rule (mean kappa over {WINDOW} rounds >= {THRESHOLD}): not reached")
        return
    at = next(r for r in recs if r.round == last.stop_reached)
    print(f"stopping rule (mean kappa over {WINDOW} rounds >= {THRESHOLD}): reached at round {at.round}, "
          f"{at.n_labeled} labels")


def _curve(recs: list) -> tuple[list[int], list[float]]:
    kept = [r for r in recs if "accuracy" in r.metrics]  # round 0 from no labels has no model
    return [r.n_labeled for r in kept], [r.metrics["accuracy"] for r in kept]


def cmd_run(args: argparse.Namespace) -> int:
    """``pickwise run``: one pool simulation; the per-round table, JSON Lines records and a PNG."""
    if args.initial < 0:
        raise ValueError(f"--initial must be >= 0; got {args.initial}")
    # run may start from no labels (--initial 0); the shared bounds (_BOUNDS) keep demo's >= 1
    _check_options(argparse.Namespace(**{**vars(args), "initial": None}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = run_one(args, args.strategy, args.seed, out, progress=not args.no_progress, echo=True)
    png = recs.path.with_suffix(".png")
    from .plots import learning_curves

    learning_curves({args.strategy: [_curve(recs)]}, png, title=f"{_data_label(args)} / {recs.model}")
    print(f"records: {png.with_suffix('.jsonl')}\nfigure:  {png}")
    return 0


DEMO_STRATEGIES = ("random", "least_confidence", "margin", "entropy", "bald", "badge", "coreset")


def _demo_job(job: tuple[argparse.Namespace, str, int, str]) -> tuple[str, int, list]:
    from .threads import set_threads

    args, name, seed, out = job
    set_threads(args.threads or 1)  # one thread per worker process unless --threads N says otherwise
    return name, seed, run_one(args, name, seed, Path(out), progress=False, echo=False)


def cmd_demo(args: argparse.Namespace) -> int:
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    _check_options(args)
    names = args.strategies.split(",") if args.strategies else list(DEMO_STRATEGIES)
    for n in names:
        make_strategy(n)  # fail fast on unknown names
    ds = _load(args)  # fail fast on the data, the model and the pool size, before any process starts
    _model_name(args, ds)
    note = _check_pool(args, n_items(_flat(ds.x_train)))
    if note:
        print(f"pickwise demo: note: {note}", file=sys.stderr)
    del ds
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(args, n, s, str(out)) for s in range(args.seeds) for n in names]
    n_jobs = args.jobs or os.cpu_count() or 1  # each worker runs --threads threads (default 1)
    t0 = time.perf_counter()
    results: dict[str, list] = {n: [] for n in names}
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn")) as ex:
        for name, seed, recs in tqdm(
            ex.map(_demo_job, jobs), total=len(jobs), desc="demo runs", disable=args.no_progress, unit="run"
        ):
            results[name].append(recs)
    wall = time.perf_counter() - t0

    from .plots import learning_curves

    png = out / "demo.png"
    learning_curves(
        {n: [_curve(r) for r in runs] for n, runs in results.items()},
        png,
        title=f"{_data_label(args)}: {args.initial} initial + {args.rounds} rounds of {args.k}",
    )
    model = next((runs[0].model for runs in results.values() if runs), args.model)
    print(
        f"\n{_data_label(args)}, {model}, {args.initial} initial labels + {args.rounds} rounds of {args.k}, "
        f"{args.seeds} seeds (mean ± standard error)"
    )
    print(f"{'strategy':<18} {'final labels':>12} {'final accuracy':>16} {'mean acc over curve':>20}")
    base = None
    for n, runs in results.items():
        final = np.array([r[-1].metrics["accuracy"] for r in runs])
        area = np.array([np.mean([x.metrics["accuracy"] for x in r]) for r in runs])
        se = final.std(ddof=1) / np.sqrt(len(final)) if len(final) > 1 else 0.0
        se_a = area.std(ddof=1) / np.sqrt(len(area)) if len(area) > 1 else 0.0
        print(f"{n:<18} {runs[0][-1].n_labeled:>12} {final.mean():>9.4f} ± {se:.4f} {area.mean():>13.4f} ± {se_a:.4f}")
        if n == "random":
            base = final.mean()
    if base is not None:
        best = max(results, key=lambda n: np.mean([r[-1].metrics["accuracy"] for r in results[n]]))
        print(f"best final accuracy: {best}; random: {base:.4f}")
    print(f"wall time {wall:.1f} s with {n_jobs} processes; records in {out}/, figure {png}")
    return 0


COMMANDS = {"run": cmd_run, "demo": cmd_demo, "stream": cmd_stream, "select": cmd_select, **BENCH_COMMANDS, **PROJECT_COMMANDS,
            **SCORE_COMMANDS, **CANDIDATES_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pickwise`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Errors of the user's making come out as one line on stderr, ``pickwise <cmd>: error: ...``, with
    exit status 2: bad values (``ValueError``, including a folder locked by another process) and
    file-system errors (``OSError`` with an errno: ``cannot write /x/runs.jsonl: No space left on
    device``, ``cannot open /x/probs: Is a directory``). Ctrl-C exits with 130. Other exceptions are
    bugs and keep their traceback.
    """
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in THREADS_COMMANDS:
        _add_threads(sub.choices[name])
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        if not hasattr(args, "threads"):
            return COMMANDS[args.command](args)
        # threads chosen once, before any model is built: every command that trains or selects gets them
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1; got {args.threads}")
        from .threads import limit_threads

        model = getattr(args, "model", None)
        with limit_threads(args.threads, model=("mlp" if model is None and "hidden" in args else model)):
            return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"pickwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        from ._fs import describe_os_error

        if e.errno is None and not isinstance(e, FileNotFoundError):
            raise  # an OSError without an errno is not a file-system error we can name
        print(f"pickwise {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pickwise {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
