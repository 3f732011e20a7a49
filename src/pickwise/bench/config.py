"""Grid configurations: a TOML file of datasets × models × strategies × batch sizes × seeds → cells.

A grid file holds settings at the top level and, optionally, ``[[grid]]`` blocks; each block is a
product of its lists, and a block's keys override the top level's (tables such as ``training`` are
merged key by key). Without blocks the top level is the one block. Example::

    name = "small"
    seeds = 3                    # 0, 1, 2   (or a list: [0, 5, 7])
    initial = 100                # random initial labels (the same indices for every strategy)
    datasets = ["digits"]
    models = ["mlp"]
    max_train = 1000             # the pool: the first 1000 training items (all when absent)
    max_test = 2000              # evaluate on the first 2000 test items (all when absent)
    strategy_options = { n_draws = 10 }
    [training]                   # the model's training settings (see TRAINING_DEFAULTS)
    epochs = 50
    max_steps = 300

    [[grid]]
    batch_sizes = [100]
    rounds = 10                  # or budget = 1000: labels after the initial ones, a multiple of k
    strategies = ["random", "margin", "badge"]
    stream = ["vessal", "stream_uniform"]
    orders = ["iid", "pc"]

Pool cells run ``pool_rounds``: ``rounds`` rounds of ``k`` labels. Stream cells run
``stream_segments`` on the same pool and initial labels: the other items arrive in ``order`` in
windows of ``segment`` items (default ⌈(pool − initial)/rounds⌉, so the stream is ``rounds``
windows) with a label budget of ``rounds·k`` spent at the adaptive rate, about ``k`` per window.

Keys (top level or in a block): ``datasets`` and ``batch_sizes`` (required), ``rounds`` or
``budget`` (required), ``strategies`` and/or ``stream``, ``models`` (default ["mlp"]), ``seeds``
(default 5), ``initial`` (default 100), ``orders`` (default ["iid"]; "iid", "pc", "class"),
``max_train``, ``max_test``, ``segment``, and the tables ``training`` (see TRAINING_DEFAULTS),
``strategy_options`` (n_draws, chunk_size) and ``stream_options`` (lam, bias, window, chunk_size,
reset_selector, protocol). ``stream_options.protocol``: "official" (a fresh selector and budget share
k every window, as the VeSSAL authors' code) or "global" (one selector and one budget over the stream);
absent means "global" — what grids ran before the key existed — and leaves the cell ids unchanged.
Top level only: ``name``, ``description`` (markdown shown in the report), ``grid``.

Cold start: ``initial = 0`` starts pool cells from no labels (round 0 trains nothing; its ``k`` items
are chosen by the cold-start strategy, :func:`pickwise.loop.cold_start_strategy`), and
``initial_strategy = "typiclust"`` (a strategy that needs no model: random, typiclust, probcover)
chooses the ``initial`` labels — or round 0's ``k`` with ``initial = 0`` — instead of random draws.
``encoder = "all-MiniLM-L6-v2"`` turns a text dataset (sms-spam) into frozen sentence-encoder
features (cached under ``<out>/encoder-cache``). Both go into a cell's configuration, and so its id,
only when set: the ids of grids without them are unchanged.

Every cell's full configuration (defaults filled in) is hashed into its id, so results of a
changed setting are never mistaken for those of the old one.

Your own data. ``datasets`` may name files instead of built-in sets, or define them in a table::

    datasets = ["mnist", "data/my_table.csv"]        # a file: its name in ids and tables is its stem

    [datasets.mine]                                  # or: a named file with reading options
    path = "data/mine.tsv.gz"
    label_column = "y"                               # default: "label", else ("target" in .tsv) the last column
    test_size = 0.2                                  # the stratified test part (default 0.2)
    split_seed = 0                                   # the seed of that split (default 0)

Files are what :func:`pickwise.data.load_file` reads (``.csv``, ``.parquet``, ``.jsonl``, ``.npy``
with ``labels = "y.npy"``) plus tab-separated ``.tsv`` / ``.tsv.gz`` tables; features must be
numeric. A relative ``path`` is resolved against the folder of the grid file (:func:`load_grid`;
the current folder for :func:`parse_grid` without ``base``). The file must exist when the grid is
parsed; its content's SHA-1 (not its location) goes into the cell ids, so moving the data keeps
the results and editing it starts new runs. A ``[datasets.NAME]`` table at the top level defines
names that ``[[grid]]`` blocks may list in their ``datasets`` (without blocks: all of them run).

Validation happens here, before anything runs: every value is checked against :data:`LIMITS`
(integers where integers are needed, finite numbers in range, upper bounds such as at most
:data:`MAX_SEEDS` seeds and :data:`MAX_CELLS` cells), sizes against each other (``initial`` and
``rounds·k`` against ``max_train``), and every message names the key path and the value, e.g.
``grid[1].batch_sizes[0] = 1000000000000: must be <= 1e+07``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..catalog import make_stream_selector, strategy_names, stream_selector_names

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LIMITS", "MAX_CELLS", "MAX_SEEDS", "Cell", "ConfigError", "Grid", "OwnDataset", "Spec", "load_grid",
           "load_own_dataset", "make_stream_selector", "parse_grid", "strategy_names"]

SCHEMA = 1


class ConfigError(ValueError):
    """A grid file that cannot be run; the message names the file, the key and the bad value."""


#: training settings of the model (``training`` table) and their defaults
TRAINING_DEFAULTS: dict[str, Any] = {
    "hidden": 128,  # width of the MLP's hidden layer
    "dropout": 0.2,  # dropout before the head (MC strategies need > 0)
    "epochs": 100,  # passes over the labelled set per round (at most)
    "max_steps": 1000,  # optimiser steps per round (at most)
    "batch_size": 64,  # mini-batch size of the optimiser (not the active-learning batch)
    "lr": 1e-3,  # Adam learning rate
    "stop_at_train_accuracy": None,  # stop once an epoch reaches this training accuracy (BADGE: 0.99)
}

#: options of the stream selectors and the stream loop (``stream_options`` table)
STREAM_OPTION_KEYS = ("lam", "bias", "window", "chunk_size", "reset_selector", "protocol")
#: options passed to the pool strategies (``strategy_options`` table)
STRATEGY_OPTION_KEYS = ("n_draws", "chunk_size")

_LIST_KEYS = ("datasets", "models", "batch_sizes", "strategies", "stream", "orders")
_INT_KEYS = ("initial", "rounds", "budget", "max_train", "max_test", "segment")
_TABLE_KEYS = ("training", "strategy_options", "stream_options")
#: keys holding one name (absent: not used, and not in the cell ids)
_NAME_KEYS = ("initial_strategy", "encoder")
BLOCK_KEYS = (*_LIST_KEYS, "seeds", *_INT_KEYS, *_TABLE_KEYS, *_NAME_KEYS)
#: text encoders a grid may name (``encoder = ...``): the frozen sentence encoder bundled with the encoders extra
ENCODERS = ("all-MiniLM-L6-v2",)
TOP_KEYS = ("name", "description", "grid", *BLOCK_KEYS)
ORDERS = ("iid", "pc", "class")


# -- cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One run: a strategy (pool) or stream selector with its order (stream), on one setting and seed."""

    kind: str  # "pool" or "stream"
    dataset: str
    model: str
    strategy: str
    k: int
    seed: int
    initial: int
    rounds: int
    order: str | None = None
    segment: int | None = None
    max_train: int | None = None
    max_test: int | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] | None = None  # your own data file (see the module doc); None: a built-in set
    initial_strategy: str | None = None  # who chooses the initial labels (round 0's k with initial = 0); None: random
    encoder: str | None = None  # texts become frozen-encoder features (ENCODERS); None: the data as it is

    def __post_init__(self) -> None:
        if self.data is not None and not isinstance(self.dataset, OwnDataset):
            # the name carries the file to the runner (``load_data`` receives only ``cell.dataset``)
            object.__setattr__(self, "dataset", OwnDataset(self.dataset, self.data))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (``data`` only for your own data: built-in ids stay)."""
        out = {
            "schema": SCHEMA,
            "kind": self.kind,
            "dataset": self.dataset,
            "model": self.model,
            "strategy": self.strategy,
            "order": self.order,
            "k": self.k,
            "seed": self.seed,
            "initial": self.initial,
            "rounds": self.rounds,
            "segment": self.segment,
            "max_train": self.max_train,
            "max_test": self.max_test,
            "training": dict(sorted(self.training.items())),
            "options": dict(sorted(self.options.items())),
        }
        out["dataset"] = str(self.dataset)
        if self.data is not None:
            out["data"] = dict(sorted(self.data.items()))
        for key in _NAME_KEYS:  # only when set: the ids of grids without them stay as they were
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        kw = {k: d[k] for k in d if k != "schema"}
        return cls(**kw)

    @property
    def algorithm(self) -> str:
        """The name in figures and tables: the strategy, or the selector for stream cells."""
        return self.strategy

    @property
    def id(self) -> str:
        """``<dataset>_<model>_<strategy>[_<order>]_k<k>_s<seed>_<hash of the configuration>``.

        Your own data is hashed by content (its ``sha1``), not by where the file lies.
        """
        d = self.to_dict()
        if "data" in d:
            d["data"] = {k: v for k, v in d["data"].items() if k not in ("path", "labels")}
        digest = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]
        order = f"_{self.order}" if self.order else ""
        init = f"-from-{self.initial_strategy}" if self.initial_strategy else ""
        return f"{self.dataset}_{self.model}_{self.strategy}{init}{order}_k{self.k}_s{self.seed}_{digest}"


@dataclass(frozen=True)
class Grid:
    name: str
    cells: tuple[Cell, ...]
    source: str = ""
    description: str = ""

    def __len__(self) -> int:
        return len(self.cells)


# -- your own data ------------------------------------------------------------------------------


class OwnDataset(str):
    """A dataset name (what ids, tables and figures show) that carries its file: ``spec``.

    ``spec`` holds ``path`` (absolute), ``sha1`` (of the file's content) and the reading options
    (``label_column``, ``labels``, ``test_size``, ``split_seed``); :func:`load_own_dataset` reads it.
    """

    spec: Mapping[str, Any]

    def __new__(cls, name: str, spec: Mapping[str, Any]) -> OwnDataset:
        obj = super().__new__(cls, name)
        obj.spec = MappingProxyType(dict(spec))
        return obj

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, Any]]]:  # copy and pickle rebuild it whole
        return OwnDataset, (str(self), dict(self.spec))


#: suffixes of own data files: what ``pickwise.data.load_file`` reads, plus tab-separated tables
OWN_SUFFIXES = (".csv", ".parquet", ".jsonl", ".npy", ".tsv", ".tsv.gz")
#: reading options of a ``[datasets.NAME]`` table (``path`` is required)
DATA_KEYS = ("path", "label_column", "labels", "test_size", "split_seed")


def _own_suffix(path: str) -> str | None:
    low = path.lower()
    return next((suf for suf in sorted(OWN_SUFFIXES, key=len, reverse=True) if low.endswith(suf)), None)


def _looks_like_path(name: str) -> bool:
    return _own_suffix(name) is not None or "/" in name or "\\" in name


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _own_spec(where: str, key: str, table: Any, base: Path) -> dict[str, Any]:
    """Validate one own-data entry (a path string or a table) into a spec with an absolute path."""
    pkey = key if isinstance(table, str) else f"{key}.path"  # the key path of the file name, for messages
    if isinstance(table, str):
        table = {"path": table}
    if not isinstance(table, dict):
        raise _fail(where, f"{key} = {table!r}: must be a file path or a table with path = ...")
    for k in table:
        if k not in DATA_KEYS:
            raise _unknown(f"{where}: {key}", k, DATA_KEYS)
    raw = table.get("path")
    if not isinstance(raw, str) or not raw:
        raise _fail(where, f"{pkey} = {raw!r}: must be the path of a data file")
    suffix = _own_suffix(raw)
    if suffix is None:
        raise _fail(where, f"{pkey} = {raw!r}: unsupported file type; use one of {', '.join(OWN_SUFFIXES)}")
    path = (base / raw).resolve()
    if not path.is_file():
        raise _fail(where, f"{pkey} = {raw!r}: file {path} not found (relative paths start at the grid "
                           f"file's folder)")
    spec: dict[str, Any] = {"path": str(path), "sha1": _sha1(path)}
    for k in ("label_column", "labels"):
        if k in table:
            if not isinstance(table[k], str) or not table[k]:
                raise _fail(where, f"{key}.{k} = {table[k]!r}: must be a non-empty string")
            spec[k] = table[k]
    if "labels" in spec:
        if suffix != ".npy":
            raise _fail(where, f"{key}.labels = {spec['labels']!r}: labels = ... is for .npy features only")
        lab = (base / spec["labels"]).resolve()
        if not lab.is_file():
            raise _fail(where, f"{key}.labels = {spec['labels']!r}: file {lab} not found")
        spec["labels"], spec["labels_sha1"] = str(lab), _sha1(lab)
    elif suffix == ".npy":
        raise _fail(where, f"{pkey} = {raw!r}: .npy features need labels = \"labels.npy\" in a [datasets.NAME] table")
    spec["test_size"] = _check(where, f"{key}.test_size", table.get("test_size", 0.2), LIMITS["data.test_size"])
    spec["split_seed"] = _check(where, f"{key}.split_seed", table.get("split_seed", 0), LIMITS["data.split_seed"])
    return spec


def _own_name(raw: str) -> str:
    name = Path(raw).name
    suffix = _own_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _read_tsv(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import gzip

    import numpy as np

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split("\t")
            table = np.loadtxt(fh, delimiter="\t", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a readable numeric tab-separated table: {e}") from None
    if table.shape[1] != len(header):
        raise ValueError(f"{path}: the header has {len(header)} columns but the rows have {table.shape[1]}")
    if label_column is not None and label_column not in header:
        raise ValueError(f"label column {label_column!r} not in {path}; columns are {header}")
    label = label_column or next((c for c in ("label", "target") if c in header), header[-1])
    t = header.index(label)
    return np.delete(table, t, axis=1), table[:, t], [c for c in header if c != label]


def load_own_dataset(spec: Mapping[str, Any]) -> Any:
    """Read an own-data ``spec`` (see :class:`OwnDataset`) as a :class:`pickwise.data.Dataset`.

    Refuses a file whose content changed since the grid was parsed (its SHA-1 differs): its runs
    would carry the id of other data.
    """
    from ..data import load_file, make_dataset

    path = Path(spec["path"])
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found")
    if _sha1(path) != spec["sha1"]:
        raise ValueError(f"data file {path} changed since the grid was read (SHA-1 {spec['sha1'][:10]}…); "
                         "read the grid again to run on the new content")
    if str(path).lower().endswith((".tsv", ".tsv.gz")):
        x, y, names = _read_tsv(path, spec.get("label_column"))
        return make_dataset(x.astype("float32"), y, name=path.name, test_size=spec["test_size"],
                            seed=spec["split_seed"], feature_names=names)
    return load_file(path, labels=spec.get("labels"), label_column=spec.get("label_column"),
                     test_size=spec["test_size"], seed=spec["split_seed"])


# -- value checks: one table --------------------------------------------------------------------


class Spec(NamedTuple):
    """What a value must be: ``kind`` "int", "float", "bool" or "choice" (one of ``choices``); bounds
    ``low``/``high`` (None: none); ``open_low``/``open_high``: the bound itself is excluded."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()


#: at most this many seeds per block (a count or a list)
MAX_SEEDS = 10_000
#: at most this many cells (runs) in a grid
MAX_CELLS = 1_000_000

#: every checked value, by key (``training.X``, ``strategy_options.X``, ``stream_options.X``,
#: ``data.X`` for [datasets.NAME] tables; ``batch_sizes`` and ``seeds`` for each list element)
LIMITS: Mapping[str, Spec] = MappingProxyType({
    "batch_sizes": Spec("int", 1, 10_000_000),
    "seeds": Spec("int", 0, 2**32 - 1),  # an element of a seeds list
    "seed_count": Spec("int", 1, MAX_SEEDS),
    "initial": Spec("int", 0, 100_000_000),  # 0: start from no labels (pool cells only)
    "rounds": Spec("int", 1, 100_000),
    "budget": Spec("int", 1, 1_000_000_000),
    "max_train": Spec("int", 2, 1_000_000_000),
    "max_test": Spec("int", 1, 1_000_000_000),
    "segment": Spec("int", 1, 1_000_000_000),
    "training.hidden": Spec("int", 1, 100_000),
    "training.epochs": Spec("int", 1, 1_000_000),
    "training.max_steps": Spec("int", 1, 100_000_000),
    "training.batch_size": Spec("int", 1, 10_000_000),
    "training.dropout": Spec("float", 0.0, 1.0, open_high=True),
    "training.lr": Spec("float", 0.0, 10.0, open_low=True),
    "training.stop_at_train_accuracy": Spec("float", 0.0, 1.0, open_low=True),
    "strategy_options.n_draws": Spec("int", 1, 10_000),
    "strategy_options.chunk_size": Spec("int", 1, 100_000_000),
    "stream_options.chunk_size": Spec("int", 1, 100_000_000),
    "stream_options.window": Spec("int", 1, 1_000_000_000),
    "stream_options.lam": Spec("float", 0.0, 1e6, open_low=True),
    "stream_options.bias": Spec("bool"),
    "stream_options.reset_selector": Spec("bool"),
    "stream_options.protocol": Spec("choice", choices=("official", "global", "rescan")),
    "data.test_size": Spec("float", 0.0, 1.0, open_low=True, open_high=True),
    "data.split_seed": Spec("int", 0, 2**32 - 1),
})


def _bounds(spec: Spec) -> str:
    lo = "" if spec.low is None else f"{'(' if spec.open_low else '['}{spec.low:g}"
    hi = "" if spec.high is None else f"{spec.high:g}{')' if spec.open_high else ']'}"
    return f"in {lo}, {hi}" if lo and hi else ""


def _check(where: str, path: str, value: Any, spec: Spec) -> Any:
    """``value`` if it fits ``spec``, else a :class:`ConfigError` naming ``path`` and the value."""
    head = f"{path} = {value!r}"
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise _fail(where, f"{head}: must be one of {', '.join(repr(c) for c in spec.choices)}")
        return value
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise _fail(where, f"{head}: must be true or false")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, f"{head}: must be an integer >= {spec.low:g}" + (
                f" (at most {spec.high:g})" if spec.high is not None else ""))
        if spec.low is not None and value < spec.low:
            raise _fail(where, f"{head}: must be >= {spec.low:g}")
        if spec.high is not None and value > spec.high:
            raise _fail(where, f"{head}: must be <= {spec.high:g}")
        return value
    # float
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and not math.isfinite(value):
        raise _fail(where, f"{head}: must be a finite number {_bounds(spec)}")
    lo_ok = spec.low is None or (value > spec.low if spec.open_low else value >= spec.low) if ok else False
    hi_ok = spec.high is None or (value < spec.high if spec.open_high else value <= spec.high) if ok else False
    if not (ok and lo_ok and hi_ok):
        if spec.low == 0 and spec.open_low and (not ok or not lo_ok):
            raise _fail(where, f"{head}: must be a positive number ({_bounds(spec)})")
        raise _fail(where, f"{head}: must be a number {_bounds(spec)}")
    return float(value)


# -- parsing and validation -------------------------------------------------------------------


def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _unknown(where: str, key: str, allowed: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _fail(where, f"unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def _names(where: str, key: str, value: Any, choices: list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"{key} = {value!r}: must be a list of names")
    if len(set(value)) != len(value):
        raise _fail(where, f"{key} = {value!r}: names repeat")
    for i, v in enumerate(value):
        if v not in choices:
            close = difflib.get_close_matches(v, list(choices), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(where, f"{key}[{i}] = {v!r}: unknown{hint}; choose from {', '.join(sorted(choices))}")
    return value


def _seeds(where: str, key: str, value: Any) -> list[int]:
    """The seeds: a count n (0 … n−1) or a list; the count is checked before any list is built."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _fail(where, f"{key} = {value!r}: must be a count >= 1 or a non-empty list of integers >= 0")
        return list(range(_check(where, key, value, LIMITS["seed_count"])))
    if isinstance(value, list) and value:
        if len(value) > MAX_SEEDS:
            raise _fail(where, f"{key} = a list of {len(value)} seeds: at most {MAX_SEEDS} seeds")
        out = [_check(where, f"{key}[{i}]", v, LIMITS["seeds"]) for i, v in enumerate(value)]
        if len(set(out)) != len(out):
            raise _fail(where, f"{key} = {value!r}: seeds repeat")
        return out
    raise _fail(where, f"{key} = {value!r}: must be a count >= 1 or a non-empty list of integers >= 0")


def _table(where: str, key: str, name: str, table: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A ``training`` / ``*_options`` table, each value checked against ``LIMITS[name.key]``."""
    if not isinstance(table, dict):
        raise _fail(where, f"{key} = {table!r}: must be a table")
    out = {}
    for k, value in table.items():
        if k not in allowed:
            raise _unknown(f"{where}: {key}", k, allowed)
        if name == "training" and k == "stop_at_train_accuracy" and value is None:  # pragma: no cover - TOML has no null
            out[k] = None
            continue
        out[k] = _check(where, f"{key}.{k}", value, LIMITS[f"{name}.{k}"])
    return out


def _merge(top: dict[str, Any], block: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The block's settings over the top level's (tables merged key by key), and the key path each
    came from, for messages: ``batch_sizes`` (top level) or ``grid[1].batch_sizes`` (``prefix``)."""
    out = {k: v for k, v in top.items() if k in BLOCK_KEYS}
    origin = {k: k for k in out}
    for key, value in block.items():
        origin[key] = f"{prefix}{key}"
        if key in _TABLE_KEYS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out, origin


def _path(origin: dict[str, str], key: str) -> str:
    return origin.get(key, key)


class _Own(NamedTuple):
    name: str
    spec: dict[str, Any]


def _datasets(where: str, key: str, value: Any, defined: Mapping[str, dict[str, Any]], base: Path,
              text: bool = False) -> list[Any]:
    """Built-in names (str) and own data (:class:`_Own`) of a ``datasets`` value."""
    from ..data import DATASETS

    numeric = [d for d in DATASETS if d != "sms-spam" or text]  # texts only with an encoder
    if isinstance(value, dict):
        if not value:
            raise _fail(where, f"{key} = {{}}: define at least one [datasets.NAME] table")
        return [_Own(_check_name(where, key, n), defined[n] if n in defined else _own_spec(where, f"{key}.{n}", t, base))
                for n, t in value.items()]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"{key} = {value!r}: must be a non-empty list of dataset names or file paths")
    out: list[Any] = []
    for i, v in enumerate(value):
        if v in defined:
            out.append(_Own(v, defined[v]))
        elif _looks_like_path(v) and v not in numeric:
            out.append(_Own(_check_name(where, f"{key}[{i}]", _own_name(v)), _own_spec(where, f"{key}[{i}]", v, base)))
        elif v in numeric:
            out.append(v)
        else:
            choices = numeric + list(defined)
            close = difflib.get_close_matches(v, choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(where, f"{key}[{i}] = {v!r}: unknown{hint}; choose from {', '.join(sorted(choices))}, or give "
                               f"a file ({', '.join(OWN_SUFFIXES)})")
    names = [o.name if isinstance(o, _Own) else o for o in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(where, f"{key} = {value!r}: dataset names repeat ({', '.join(dup)}); give own files distinct "
                           "names with [datasets.NAME] tables")
    return out


def _check_name(where: str, key: str, name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise _fail(where, f"{key}: dataset name {name!r} must be letters, digits, '_', '.', '-' (it goes into ids "
                           "and file names)")
    return name


def _block_cells(where: str, b: dict[str, Any], origin: dict[str, str], defined: Mapping[str, dict[str, Any]],
                 base: Path, budget_left: int) -> list[Cell]:
    from .. import catalog

    for key in b:
        if key not in BLOCK_KEYS:
            raise _unknown(where, key, BLOCK_KEYS)
    for key in ("datasets", "batch_sizes"):
        if key not in b:
            raise _fail(where, f"missing key {key!r}")
    if "rounds" in b and "budget" in b:
        raise _fail(where, f"give rounds or budget, not both (rounds = {b['rounds']!r}, budget = {b['budget']!r})")
    if "rounds" not in b and "budget" not in b:
        raise _fail(where, "missing key 'rounds' (or 'budget': labels to acquire after the initial ones)")
    if not b.get("strategies") and not b.get("stream"):
        raise _fail(where, "nothing to run: give 'strategies' (pool) and/or 'stream' (stream selectors)")

    p = lambda key: _path(origin, key)  # noqa: E731 - the key path for messages
    models = _names(where, p("models"), b.get("models", ["mlp"]), list(catalog.MODEL_NAMES))
    strategies = _names(where, p("strategies"), b.get("strategies", []), strategy_names())
    stream = _names(where, p("stream"), b.get("stream", []), stream_selector_names())
    orders = _names(where, p("orders"), b.get("orders", ["iid"]), list(ORDERS))
    ks = b["batch_sizes"]
    if not isinstance(ks, list) or not ks:
        raise _fail(where, f"{p('batch_sizes')} = {ks!r}: must be a non-empty list of integers >= 1")
    if len(ks) > 1000:
        raise _fail(where, f"{p('batch_sizes')}: {len(ks)} batch sizes; at most 1000")
    ks = [_check(where, f"{p('batch_sizes')}[{i}]", k, LIMITS["batch_sizes"]) for i, k in enumerate(ks)]
    if len(set(ks)) != len(ks):
        raise _fail(where, f"{p('batch_sizes')} = {ks!r}: batch sizes repeat")
    seeds = _seeds(where, p("seeds"), b.get("seeds", 5))
    initial = _check(where, p("initial"), b.get("initial", 100), LIMITS["initial"])
    if initial == 0 and stream:
        raise _fail(where, f"{p('initial')} = 0: stream selectors {stream} need initial labels (>= 1); "
                           "start from zero labels with pool strategies only")
    init_strategy = b.get("initial_strategy")
    if init_strategy is not None:
        init_strategy = _names(where, p("initial_strategy"), [init_strategy] if isinstance(init_strategy, str)
                               else init_strategy, strategy_names())
        if len(init_strategy) != 1:
            raise _fail(where, f"{p('initial_strategy')} = {b['initial_strategy']!r}: must be one strategy name")
        init_strategy = init_strategy[0]
        from ..loop import model_free

        if not model_free(catalog.make_strategy(init_strategy)):
            raise _fail(where, f"{p('initial_strategy')} = {init_strategy!r}: needs a trained model; the initial "
                               "labels are chosen without one (random, typiclust, probcover)")
        if stream:
            raise _fail(where, f"{p('initial_strategy')} = {init_strategy!r}: for pool strategies only; this block "
                               f"also runs stream selectors {stream}")
    encoder = b.get("encoder")
    if encoder is not None and encoder not in ENCODERS:
        raise _fail(where, f"{p('encoder')} = {encoder!r}: must be one of {', '.join(ENCODERS)}")
    ints = {key: _check(where, p(key), b[key], LIMITS[key])
            for key in ("max_train", "max_test", "segment", "rounds", "budget") if key in b}
    if "max_train" in ints and ints["max_train"] <= initial:
        raise _fail(where, f"{p('max_train')} = {ints['max_train']} leaves no unlabelled pool after initial = {initial}")
    training = dict(TRAINING_DEFAULTS)
    training.update(_table(where, p("training"), "training", b.get("training", {}), tuple(TRAINING_DEFAULTS)))
    sopts = dict(sorted(_table(where, p("strategy_options"), "strategy_options", b.get("strategy_options", {}),
                               STRATEGY_OPTION_KEYS).items()))
    stopts = dict(sorted(_table(where, p("stream_options"), "stream_options", b.get("stream_options", {}),
                                STREAM_OPTION_KEYS).items()))
    mc = [s for s in strategies if s in catalog.MC_STRATEGIES]
    if mc and training["dropout"] <= 0:
        raise _fail(where, f"strategies {mc} need MC dropout; training.dropout = {training['dropout']!r} must be > 0")
    datasets = _datasets(where, p("datasets"), b["datasets"], defined, base, text=encoder is not None)
    if encoder is not None and any(d != "sms-spam" for d in datasets):
        raise _fail(where, f"{p('encoder')} = {encoder!r}: encodes texts; datasets {datasets} are not all text "
                           "(sms-spam)")

    per_seed = len(strategies) + (len(orders) * len(stream) if stream else 0)
    n_cells = len(ks) * len(datasets) * len(models) * len(seeds) * per_seed
    if n_cells > budget_left:
        raise _fail(where, f"{n_cells} runs ({len(datasets)} datasets × {len(models)} models × {len(ks)} batch sizes "
                           f"× {len(seeds)} seeds × {per_seed} algorithms); a grid may hold at most {MAX_CELLS}")

    cells = []
    for k in ks:
        if "budget" in ints:
            if ints["budget"] % k:
                raise _fail(where, f"budget = {ints['budget']} is not a multiple of batch size {k}")
            rounds = ints["budget"] // k
        else:
            rounds = ints["rounds"]
        n_end = initial + rounds * k
        if "max_train" in ints and n_end > ints["max_train"]:
            raise _fail(
                where,
                f"initial + rounds·k = {initial} + {rounds}·{k} = {n_end} exceeds max_train = "
                f"{ints['max_train']}",
            )
        if n_end > LIMITS["max_train"].high:
            raise _fail(where, f"initial + rounds·k = {initial} + {rounds}·{k} = {n_end}: more labels than any pool "
                               f"(at most {LIMITS['max_train'].high:g})")
        for dataset in datasets:
            own = dataset.spec if isinstance(dataset, _Own) else None
            name = dataset.name if isinstance(dataset, _Own) else dataset
            for model in models:
                common = dict(dataset=name, model=model, k=k, initial=initial, rounds=rounds,
                              max_train=ints.get("max_train"), max_test=ints.get("max_test"), training=training,
                              data=own, encoder=encoder)
                for seed in seeds:
                    for s in strategies:
                        cells.append(Cell(kind="pool", strategy=s, seed=seed, options=sopts,
                                          initial_strategy=init_strategy, **common))
                    for order in orders if stream else []:
                        for s in stream:
                            cells.append(Cell(kind="stream", strategy=s, seed=seed, order=order,
                                              segment=ints.get("segment"), options=stopts, **common))
    return cells


def parse_grid(data: Mapping[str, Any], *, source: str = "grid", base: str | os.PathLike[str] | None = None) -> Grid:
    """Validate a parsed grid (as from ``tomllib``) and expand it into cells (duplicates dropped).

    ``base``: the folder that relative own-data paths start from (default: the current folder).
    Raises :class:`ConfigError` naming the key path and the value of the first problem.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a grid must be a table; got {type(data).__name__}")
    data = dict(data)
    base = Path(base) if base is not None else Path.cwd()
    for key in data:
        if key not in TOP_KEYS:
            raise _unknown(source, key, TOP_KEYS)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise _fail(source, f"name = {name!r}: must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, f"description = {description!r}: must be a string")
    blocks = data.get("grid")
    if blocks is None:
        blocks = [{}]
    elif not isinstance(blocks, list) or not blocks or not all(isinstance(b, dict) for b in blocks):
        raise _fail(source, "grid must be one or more [[grid]] tables")
    defined: dict[str, dict[str, Any]] = {}
    if isinstance(data.get("datasets"), dict):  # [datasets.NAME] tables: names the blocks may list
        for n, t in data["datasets"].items():
            defined[_check_name(source, "datasets", n)] = _own_spec(source, f"datasets.{n}", t, base)
    cells: dict[str, Cell] = {}
    for i, block in enumerate(blocks):
        where = source if data.get("grid") is None else f"{source}: [[grid]] #{i + 1}"
        for key in block:
            if key not in BLOCK_KEYS:
                raise _unknown(where, key, BLOCK_KEYS)
        merged, origin = _merge(data, block, "" if data.get("grid") is None else f"grid[{i}].")
        if isinstance(merged.get("datasets"), dict) and "datasets" not in block:
            merged["datasets"] = list(defined)  # the top level's tables: every defined name
        for cell in _block_cells(where, merged, origin, defined, base, MAX_CELLS - len(cells)):
            cells.setdefault(cell.id, cell)
    return Grid(name=name, cells=tuple(cells.values()), source=source, description=description)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid TOML file (see the module doc); own data paths start at its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_grid(data, source=str(path), base=path.resolve().parent)
