"""The project subcommands (wired into ``pickwise`` by :mod:`pickwise.cli`).

    pickwise init DIR --data FILE_OR_FOLDER --labels spam,ham|FILE [--model tfidf|minilm|mlp|cnn]
                  [--strategy NAME] [--id-column C] [--text-column C] [--ids-file F] [--row-ids] [--seed N]
    pickwise add DIR --data FILE_OR_FOLDER [--id-column C] [--text-column C] [--ids-file F] [--row-ids]
    pickwise next DIR --k 100 [--strategy NAME] [--seed N] [--no-progress] [--threads N]
    pickwise import DIR FILE
    pickwise status DIR [--json]
    pickwise export DIR --format csv|jsonl|label-studio --out FILE
    pickwise label DIR [--host 127.0.0.1] [--port N] [--annotator NAME]

``add_parsers(subparsers)`` adds them; ``COMMANDS[name](args)`` runs one and returns an exit code.
Problems are raised as ValueError with a one-line message naming the value or path (the main CLI
prints it and exits with status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id-column", default=None, help="column holding item ids (default: 'id' when present, "
                   "else 'sha1:<hash of the text>')")
    p.add_argument("--text-column", default=None, help="column holding the text (default: 'text')")
    p.add_argument("--ids-file", default=None, help=".npy data: a file with one id per row (or a CSV with an id "
                   "column)")
    p.add_argument("--row-ids", action="store_true", help=".npy data: use 'row-<n>' ids (positional: only while "
                   "the file is never reordered)")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add init, add, next, import, status, export and label to ``subparsers``."""
    p = subparsers.add_parser("init", help="create a labelling project from your data",
                              description="Create a project folder from a folder of images, a CSV/Parquet/JSONL "
                              "table with a text column, or a .npy feature array.")
    p.add_argument("dir", help="the new project folder")
    p.add_argument("--data", required=True, help="a folder of images, a .csv/.parquet/.jsonl table, or a .npy array")
    p.add_argument("--labels", required=True, help="class names, comma-separated (spam,ham) or a file with one per line")
    p.add_argument("--model", default=None, help="tfidf (text, default) | minilm (text) | mlp (.npy) | cnn (images)")
    p.add_argument("--strategy", default=None, help="acquisition strategy (default: badge)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and selection (default: 0)")
    _data_options(p)

    p = subparsers.add_parser("add", help="add more data to a project (ids already there are skipped)")
    p.add_argument("dir", help="the project folder")
    p.add_argument("--data", required=True, help="a folder of images, a table, or a .npy array")
    _data_options(p)

    p = subparsers.add_parser("next", help="train on the labels so far and choose the next batch to label")
    p.add_argument("dir", help="the project folder")
    p.add_argument("--k", type=int, default=100, help="batch size (default: 100)")
    p.add_argument("--strategy", default=None, help="override the project's strategy for this round")
    p.add_argument("--seed", type=int, default=None, help="override the project's seed for this round")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="select over shards of the pool (the same picks): local, or ray (one actor per shard; "
                        "score-based strategies, badge, coreset and dbal)")
    p.add_argument("--shards", type=int, default=None, help="with --engine: shards of the pool (default: 1)")
    p.add_argument("--address", default=None, help="with --engine ray: the cluster to join (host:port, "
                   "ray://host:port or auto; default: a local Ray on 127.0.0.1)")
    p.add_argument("--threads", type=int, default=None, help="threads for torch, BLAS and faiss (default: 1 for "
                   "the tfidf and mlp models, else the CPUs not busy with other processes)")

    p = subparsers.add_parser("import", help="import answers: a Label Studio export or an id,label CSV")
    p.add_argument("dir", help="the project folder")
    p.add_argument("file", help="Label Studio export (full JSON, JSON_MIN, CSV) or a CSV id,label[,annotator]")

    p = subparsers.add_parser("status", help="counts, rounds, agreement and learning progress")
    p.add_argument("dir", help="the project folder")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = subparsers.add_parser("export", help="write the current labels")
    p.add_argument("dir", help="the project folder")
    p.add_argument("--format", default="csv", choices=("csv", "jsonl", "label-studio"))
    p.add_argument("--out", required=True, help="the file to write")

    p = subparsers.add_parser("label", help="label in the browser (a local page)")
    p.add_argument("dir", help="the project folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: the project's own)")
    p.add_argument("--annotator", default=None, help="your name in the answers")


def _project(path: str) -> Any:
    from .api import Project

    return Project.open(path)


def cmd_init(args: argparse.Namespace) -> int:
    from .api import Project

    p = Project.init(args.dir, data=args.data, labels=args.labels, model=args.model, strategy=args.strategy,
                     id_column=args.id_column, text_column=args.text_column, seed=args.seed,
                     ids_file=args.ids_file, row_ids=args.row_ids)
    cfg = p.config
    n = p.status()["items"]
    print(f"project {p.path}: {n} {cfg.kind} items, classes {', '.join(p.store.classes())}, model {cfg.model}, "
          f"strategy {cfg.strategy}")
    print(f"next: pickwise next {p.path} --k 100")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    s = _project(args.dir).add_data(args.data, id_column=args.id_column, text_column=args.text_column,
                                    ids_file=args.ids_file, row_ids=args.row_ids)
    print(f"added {s.added} items; {s.skipped} already in the project" +
          (f"; {s.dropped_duplicates} duplicate rows dropped" if s.dropped_duplicates else ""))
    for note in s.notes:
        print(f"note: {note}")
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from ..threads import limit_threads

    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1; got {threads}")
    # without --threads the round chooses by the project's model (pickwise.project.rounds.run_round)
    with limit_threads(threads) if threads is not None else nullcontext():
        s = _project(args.dir).next(args.k, strategy=args.strategy, seed=args.seed, progress=not args.no_progress,
                                    engine=args.engine, shards=args.shards, address=args.address)
    print(f"round {s.round_id}: {s.n_chosen} items chosen by {s.strategy} (trained on {s.n_train} labels, "
          f"{s.seconds:.1f} s)")
    for note in s.notes:
        print(f"note: {note}")
    print(s.table())
    print(f"Label Studio tasks:  {s.tasks_path}")
    print(f"labelling config:    {s.config_path}")
    if s.csv_path is not None:
        print(f"batch CSV:           {s.csv_path}")
    print(f"set the Label Studio project's model version to: {s.model_version}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    s = _project(args.dir).import_labels(args.file)
    print(f"{args.file}: {s.read} answers read ({s.labels} labels, {s.skips} skips, {s.multi_choice} multi-choice) "
          f"from {len(s.annotators)} annotators; {s.added} new, {s.already} already imported")
    return 0


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def cmd_status(args: argparse.Namespace) -> int:
    st = _project(args.dir).status()
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    print(f"{st['project']}: {st['items']} {st['kind']} items, {st['labelled']} labelled, {st['skipped']} skipped")
    print("per class: " + ", ".join(f"{c} {n}" for c, n in st["per_class"].items()))
    for r in st["rounds"]:
        print(f"  round {r['id']:>3} {r['status']:<6} {r['strategy']:<10} chosen {r['n_chosen']:>5}  labelled "
              f"{r['labelled']:>5}  trained on {r['n_train']}")
    ag = st["agreement"]
    if ag["items"]:
        print(f"agreement on {ag['items']} items with >=2 annotators: raw {_fmt(ag['raw'])}, Fleiss' kappa "
              f"{_fmt(ag['fleiss_kappa'])}, Cohen's kappa {_fmt(ag['cohen_kappa'])}; "
              f"{len(ag['disagreements'])} disagree: {', '.join(ag['disagreements'][:10])}")
    stab = st["learning_progress"]["stabilising"]
    if stab:
        print(f"predictions of rounds {stab['rounds'][0]} and {stab['rounds'][1]} agree on "
              f"{_fmt(stab['agreement'])} of {stab['items']} items (kappa {_fmt(stab['kappa'])})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path = _project(args.dir).export(args.out, format=args.format)
    print(f"wrote {path}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    _project(args.dir)  # a clear error when DIR is no project
    try:
        from .web import serve
    except ImportError as e:
        raise ValueError(f"the labelling page needs fastapi and uvicorn: pip install 'pickwise[label]' ({e})") from None
    serve(args.dir, host=args.host, port=args.port, annotator=args.annotator)
    return 0


COMMANDS = {"init": cmd_init, "add": cmd_add, "next": cmd_next, "import": cmd_import, "status": cmd_status,
            "export": cmd_export, "label": cmd_label}


def main(argv: list[str] | None = None) -> int:
    """Run one project subcommand standalone (``python -m pickwise.project.cli next DIR``), as ``pickwise``
    does: a ValueError prints ``pickwise <command>: error: <message>`` on stderr and returns 2."""
    parser = argparse.ArgumentParser(prog="pickwise", description="pickwise labelling projects")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as e:
        print(f"pickwise {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
