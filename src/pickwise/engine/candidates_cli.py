"""``pickwise candidates``: this round's candidates for compute-efficient subsampling, drawn from the score history.

    pickwise candidates --history ROUND_DIR [ROUND_DIR ...] --n-items N --k K --alpha A --out CAND.npy
                        [--labeled LABELED.npy] [--score entropy] [--tau T] [--weighting temperature|power]
                        [--prune-below V] [--key auto|id|row] [--seed S] [--engine local|ray] [--shards N]
                        [--address HOST:PORT]

Each shard reads its own items' latest ``score_<score>`` from the earlier rounds' Parquet folders
(``pickwise score`` output, oldest first; items 0 .. N−1 by integer id or by input row: ``--key``) and the candidates are those
``Subsample(alpha=, tau=, weighting=, prune_below=).select`` draws with ``np.random.default_rng(seed)``
(:func:`pickwise.engine.subsample.sharded_candidates`). The output is a ``.npy`` of the candidates'
item indices, ascending, for ``pickwise score --rows`` (score only those), then ``pickwise select``
over that round's scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["COMMANDS", "add_parsers", "cmd_candidates"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``candidates`` to ``subparsers``."""
    p = subparsers.add_parser(
        "candidates", help="draw this round's candidates to score from earlier rounds' scores (candidate subsampling)",
        description="Compute-efficient acquisition on a large pool: draw the items to re-score this round from "
                    "the latest scores of earlier rounds (Parquet folders of `pickwise score`), as "
                    "pickwise.wrappers.Subsample draws them, over shards in this process or on Ray.")
    p.add_argument("--history", nargs="+", required=True, metavar="ROUND_DIR",
                   help="earlier rounds' score folders, oldest first (ids: item indices 0 .. N-1)")
    p.add_argument("--n-items", type=int, required=True, help="N, the number of items in the pool")
    p.add_argument("--labeled", default=None, help="item indices already labelled, a .npy of integers")
    p.add_argument("--k", type=int, required=True, help="the round's batch size (at least this many candidates)")
    p.add_argument("--alpha", type=float, required=True,
                   help="candidates: a count (>= 1, a whole number) or a fraction of the unlabelled items (0 < a < 1)")
    p.add_argument("--score", default="entropy", help="the score column to read, score_<name> (default: entropy)")
    p.add_argument("--tau", type=float, default=1.0, help="softmax temperature of candidate sampling (default: 1)")
    p.add_argument("--weighting", default="temperature", choices=("temperature", "power"),
                   help="temperature: softmax(values / tau) (the paper); power: softmax(values ** 1.2) (its code)")
    p.add_argument("--prune-below", type=float, default=None,
                   help="never draw items whose latest value is below this (unless fewer than k would remain)")
    p.add_argument("--key", choices=("auto", "id", "row"), default="auto",
                   help="the column of item indices in the rounds: id (integer ids), row (the input row that "
                        "pickwise score writes, e.g. for an image folder), auto: id where the ids are integers, "
                        "else row (default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    p.add_argument("--out", required=True, help="the .npy to write (item indices, ascending); must not exist")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="shards in this process (default) or one Ray actor per shard")
    p.add_argument("--shards", type=int, default=1, help="shards of the pool (default: 1)")
    p.add_argument("--address", default=None, help="with --engine ray: the cluster to join (host:port, "
                   "ray://host:port or auto); default: Ray on this machine, listening on 127.0.0.1 only")


def cmd_candidates(args: argparse.Namespace) -> int:
    """Run ``pickwise candidates``; prints the number of candidates and the output path; returns 0."""
    import numpy as np

    from .._fs import atomic_write
    from ..precomputed import load_npy
    from ..wrappers import Subsample
    from .subsample import history_loaders, sharded_candidates

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {str(out)!r} exists; write each round's candidates to a new file")
    if out.suffix != ".npy":
        raise ValueError(f"--out must name a .npy file; got {str(out)!r}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.address is not None and args.engine != "ray":
        raise ValueError(f"--address {args.address!r} needs --engine ray")
    alpha: int | float = args.alpha
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"--alpha must be a count >= 1 or a fraction in (0, 1); got {args.alpha:g}")
    if alpha >= 1:
        if alpha != int(alpha):
            raise ValueError(f"--alpha as a count must be a whole number; got {args.alpha:g}")
        alpha = int(alpha)
    if not (np.isfinite(args.tau) and args.tau > 0):
        raise ValueError(f"--tau must be a positive finite number; got {args.tau:g}")
    if args.prune_below is not None and np.isnan(args.prune_below):
        raise ValueError("--prune-below must be a number; got nan")
    sub = Subsample(_Named(), alpha=alpha, tau=args.tau, weighting=args.weighting, prune_below=args.prune_below)
    labeled = load_npy(args.labeled, mmap=False) if args.labeled else np.empty(0, dtype=np.int64)
    if labeled.ndim != 1 or (labeled.size and labeled.dtype.kind not in "iu"):
        raise ValueError(f"--labeled must hold a 1-D array of integer indices; got shape {labeled.shape}, "
                         f"dtype {labeled.dtype}")
    if args.n_items < 1:
        raise ValueError(f"--n-items must be >= 1; got {args.n_items}")
    if args.shards < 1:
        raise ValueError(f"--shards must be >= 1; got {args.shards}")
    loaders = history_loaders(args.history, args.n_items, args.shards, score=args.score, exclude=labeled,
                              key=args.key)
    unlabeled = sum(ld.size for ld in loaders)
    if not 1 <= args.k <= unlabeled:
        raise ValueError(f"--k must be between 1 and the {unlabeled} unlabelled items; got {args.k}")
    if args.engine == "local":
        from .local import LocalEngine

        engine = LocalEngine.from_loaders(loaders)
    else:
        from .ray import RayEngine, open_ray_engine

        engine = open_ray_engine(lambda init: RayEngine.from_loaders(loaders, address=args.address, init_options=init),
                                 args.address, option="--address")
    with engine:
        cand = sharded_candidates(engine, sub, args.k, rng=np.random.default_rng(args.seed))
    with atomic_write(out) as f:
        np.save(f, cand)
    print(f"{cand.shape[0]} candidates of {unlabeled} unlabelled items written to {out}")
    return 0


class _Named:
    """The inner strategy's place in ``Subsample`` (only its parameters are used here)."""

    needs = ()
    name = "scores from the history"

    def scores(self, model, x, indices, *, rng):  # pragma: no cover - never called
        raise NotImplementedError


COMMANDS = {"candidates": cmd_candidates}
