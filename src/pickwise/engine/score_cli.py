"""``pickwise score``: a torch checkpoint's outputs and scores for every item of a pool, as Parquet.

    pickwise score --inputs POOL.npy|POOL.parquet|PARQUET_FOLDER|IMAGE_FOLDER --out DIR
                   --model-checkpoint W.safetensors|W.npz --module package.module:factory
                   [--module-kwargs JSON] [--n-classes K] [--input-shape 1,28,28] [--device cpu|cuda]
                   [--engine local|ray] [--actors N] [--num-cpus C] [--num-gpus G] [--address HOST:PORT]
                   [--draws T] [--seed S] [--scores entropy,margin] [--outputs probs,embeddings]
                   [--batch-size B] [--column x] [--id-column id | --row-ids]
                   [--image-mode auto|RGB|L] [--image-size N|H,W] [--rows ROWS.npy|ROWS.txt]
                   [--resume] [--no-progress]

``--rows``: the row numbers to score (the candidates of a subsampled round), a ``.npy`` of integers
(shape (m,)) or a text file (``.txt``, ``.csv``, ...) with one integer per line (blank lines
skipped; no header). ``--resume`` finishes an interrupted run in ``--out`` (the same arguments).

Wired into ``pickwise`` by :mod:`pickwise.cli` (``add_parsers(sub)`` and :data:`COMMANDS`); runs
:func:`pickwise.engine.score.score_to_parquet` with a :class:`~pickwise.engine.score.TorchCheckpoint`.
Problems are ValueErrors with a one-line message naming the value (the main CLI prints
``pickwise score: error: ...`` and exits with status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "add_parsers", "cmd_score", "read_rows"]


def _names(text: str | None, what: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names and text.strip():
        raise ValueError(f"--{what} must be comma-separated names; got {text!r}")
    return names


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``score`` to ``subparsers``."""
    p = subparsers.add_parser(
        "score", help="score a pool with a torch checkpoint, writing probabilities, embeddings and scores to Parquet",
        description="Run a torch checkpoint over every row (or the --rows) of a .npy file, Parquet files or an "
                    "image folder and write one Parquet file per chunk (id, probs, embeddings, mc_probs, "
                    "score_<name>), in process or on a Ray Data actor pool. The output folder is what "
                    "'pickwise select --parquet DIR' reads; an interrupted run is finished with --resume.")
    p.add_argument("--inputs", required=True, help="a .npy array (n, features...); a .parquet file, or a folder with "
                   "*.parquet directly inside, with a list column of features; or a folder of image files "
                   "(.png, .jpg, ..., also in sub-folders such as <class>/<file>; ids: the relative paths)")
    p.add_argument("--out", required=True, help="a new (or empty) output folder; with --resume, the folder of an "
                   "interrupted run")
    p.add_argument("--model-checkpoint", required=True, help="the weights: a state_dict as .safetensors or .npz "
                   "(never a pickled module)")
    p.add_argument("--module", required=True, help="the architecture, package.module:factory "
                   "(e.g. pickwise.adapters.nets:mlp), called with --module-kwargs")
    p.add_argument("--module-kwargs", default="{}", help='JSON object of keyword arguments for the factory, e.g. '
                   '\'{"n_features": 64, "n_classes": 10, "dropout": 0.2}\'')
    p.add_argument("--n-classes", type=int, default=None, help="default: the head's number of outputs")
    p.add_argument("--input-shape", default=None, help="reshape each row to this shape, e.g. 1,28,28")
    p.add_argument("--device", default=None, help="torch device (default: cuda with --num-gpus, else cpu)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (this process) or ray (a Ray Data actor pool); the same output")
    p.add_argument("--actors", type=int, default=1, help="with --engine ray: actors in the pool (default: 1)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="with --engine ray: CPUs per actor (default: 1)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="with --engine ray: GPUs per actor (default: 0)")
    p.add_argument("--address", default=None, help="with --engine ray: the cluster to join (host:port, "
                   "ray://host:port or auto; default: a local Ray on 127.0.0.1)")
    p.add_argument("--draws", type=int, default=None, help="MC-dropout draws per item (writes mc_probs; needed by "
                   "bald, max_entropy, variation_ratio, mean_std)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MC-dropout masks (default: 0)")
    p.add_argument("--scores", default="entropy,margin,least_confidence",
                   help="score columns, comma-separated (default: entropy,margin,least_confidence; '' for none)")
    p.add_argument("--outputs", default=None, help="array columns, comma-separated, of probs, embeddings, mc_probs "
                   "(default: probs,embeddings, plus mc_probs with --draws)")
    p.add_argument("--batch-size", type=int, default=4096, help="rows per chunk and per part file (default: 4096)")
    p.add_argument("--column", default="x", help="Parquet input: the feature column (default: x)")
    p.add_argument("--id-column", default="id", help="Parquet input: the id column (default: id)")
    p.add_argument("--row-ids", action="store_true", help="Parquet input: ids are row numbers (no id column)")
    p.add_argument("--image-mode", choices=("auto", "RGB", "L"), default="auto",
                   help="image folder: convert every image to RGB (3 channels) or L (1); auto: L when every image "
                   "is greyscale, else RGB, as 'pickwise run' reads image folders (default: auto)")
    p.add_argument("--image-size", default=None, help="image folder: resize every image to N×N, or H,W (default: "
                   "keep; all must share one size)")
    p.add_argument("--rows", metavar="FILE", default=None, help="score only these row numbers of the input: a .npy "
                   "of integers, or a text file with one integer per line; unique, scored in ascending order")
    p.add_argument("--resume", action="store_true", help="finish the interrupted run in --out (part files and "
                   "score.plan.json but no score.json): keep its part files, score the rest; the same arguments "
                   "are required. On a finished folder of the same run: nothing to do")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_score(args: argparse.Namespace) -> int:
    """Run ``pickwise score``; prints the output folder and its row count; returns 0."""
    from .score import TorchCheckpoint, score_to_parquet

    try:
        kwargs = json.loads(args.module_kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--module-kwargs must be a JSON object; got {args.module_kwargs!r} ({err})") from err
    if not isinstance(kwargs, dict):
        raise ValueError(f"--module-kwargs must be a JSON object; got {args.module_kwargs!r}")  # noqa: TRY004 (bad input is a ValueError here)
    options: dict[str, Any] = {}
    if args.input_shape is not None:
        try:
            options["input_shape"] = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError as err:
            raise ValueError(f"--input-shape must be comma-separated ints such as 1,28,28; got {args.input_shape!r}") from err
    device = args.device or ("cuda" if args.num_gpus > 0 else None)
    if device is not None:
        options["device"] = device
    if args.n_classes is not None and args.n_classes < 1:
        raise ValueError(f"--n-classes must be >= 1; got {args.n_classes}")
    ckpt = TorchCheckpoint(args.model_checkpoint, args.module, n_classes=args.n_classes, module_kwargs=kwargs,
                           options=options)
    ray_only = {"--actors": args.actors != 1, "--num-cpus": args.num_cpus != 1.0, "--num-gpus": args.num_gpus != 0,
                "--address": args.address is not None}
    if args.engine == "local" and any(ray_only.values()):
        flag = next(k for k, v in ray_only.items() if v)
        raise ValueError(f"{flag} needs --engine ray")
    out = score_to_parquet(
        ckpt, args.inputs, args.out, engine=args.engine, outputs=_names(args.outputs, "outputs"),
        scores=_names(args.scores, "scores") or (), n_draws=args.draws, seed=args.seed, batch_size=args.batch_size,
        column=args.column, id_column=None if args.row_ids else args.id_column,
        rows=None if args.rows is None else read_rows(args.rows), image_mode=args.image_mode,
        image_size=_image_size(args.image_size), resume=args.resume,
        actors=args.actors, num_cpus=args.num_cpus, num_gpus=args.num_gpus, address=args.address,
        progress=not args.no_progress,
    )
    manifest = json.loads((out / "score.json").read_text(encoding="utf-8"))
    kept = manifest.get("resumed_chunks", 0)
    note = f" ({kept} of them kept from the interrupted run)" if kept else ""
    print(f"scored {manifest['rows']} items into {manifest['chunks']} Parquet files in {out}{note}")
    return 0


def _image_size(text: str | None) -> int | tuple[int, int] | None:
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) not in (1, 2):
        raise ValueError(f"--image-size must be N or H,W (positive ints); got {text!r}")
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def read_rows(path: str) -> Any:
    """The row numbers of ``--rows``: a ``.npy`` of integers (shape (m,)), or a text file with one integer
    per line (blank lines skipped). Range and uniqueness are checked by ``score_to_parquet``."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--rows: no file at {path!r}")
    if p.suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"--rows: cannot read {path!r} as a numeric .npy array: {err}") from err
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"--rows: {path!r} must hold integers of shape (m,); got {arr.dtype} {arr.shape}")
        return arr
    values = []
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                values.append(int(text))
            except ValueError:
                raise ValueError(f"--rows: {path}:{lineno}: expected one integer per line; got {text!r}") from None
    return np.asarray(values, dtype=np.int64)


COMMANDS = {"score": cmd_score}


def main(argv: list[str] | None = None) -> int:
    """Run ``pickwise score`` standalone (``python -m pickwise.engine.score_cli score ...``), as ``pickwise``
    does: a ValueError prints ``pickwise score: error: <message>`` on stderr and returns 2."""
    parser = argparse.ArgumentParser(prog="pickwise")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"pickwise {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
