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
reset_selector). Top level only: ``name``, ``description`` (markdown shown in the report), ``grid``.

Every cell's full configuration (defaults filled in) is hashed into its id, so results of a
changed setting are never mistaken for those of the old one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import make_stream_selector, stream_selector_names, strategy_names

__all__ = ["Cell", "ConfigError", "Grid", "load_grid", "make_stream_selector", "parse_grid", "strategy_names"]

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
STREAM_OPTION_KEYS = ("lam", "bias", "window", "chunk_size", "reset_selector")
#: options passed to the pool strategies (``strategy_options`` table)
STRATEGY_OPTION_KEYS = ("n_draws", "chunk_size")

_LIST_KEYS = ("datasets", "models", "batch_sizes", "strategies", "stream", "orders")
_INT_KEYS = ("initial", "rounds", "budget", "max_train", "max_test", "segment")
_TABLE_KEYS = ("training", "strategy_options", "stream_options")
BLOCK_KEYS = (*_LIST_KEYS, "seeds", *_INT_KEYS, *_TABLE_KEYS)
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

    def to_dict(self) -> dict[str, Any]:
        return {
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
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        order = f"_{self.order}" if self.order else ""
        return f"{self.dataset}_{self.model}_{self.strategy}{order}_k{self.k}_s{self.seed}_{digest}"


@dataclass(frozen=True)
class Grid:
    name: str
    cells: tuple[Cell, ...]
    source: str = ""
    description: str = ""

    def __len__(self) -> int:
        return len(self.cells)


# -- parsing and validation -------------------------------------------------------------------


def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _unknown(where: str, key: str, allowed: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _fail(where, f"unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def _int(where: str, key: str, value: Any, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{key} = {value!r}: must be an integer >= {low}")
    if value < low:
        raise _fail(where, f"{key} = {value!r}: must be >= {low}")
    return value


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


def _seeds(where: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(_int(where, "seeds", value)))
    if isinstance(value, list) and value:
        out = [_int(where, f"seeds[{i}]", v, low=0) for i, v in enumerate(value)]
        if len(set(out)) != len(out):
            raise _fail(where, f"seeds = {value!r}: seeds repeat")
        return out
    raise _fail(where, f"seeds = {value!r}: must be a count >= 1 or a non-empty list of integers >= 0")


def _training(where: str, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(where, f"training = {table!r}: must be a table")
    out = dict(TRAINING_DEFAULTS)
    for key, value in table.items():
        w = f"{where}: training"
        if key not in TRAINING_DEFAULTS:
            raise _unknown(w, key, tuple(TRAINING_DEFAULTS))
        if key in ("hidden", "epochs", "max_steps", "batch_size"):
            out[key] = _int(w, key, value)
        elif key in ("dropout", "stop_at_train_accuracy"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            hi_ok = ok and (0 <= value < 1 if key == "dropout" else 0 < value <= 1)
            if not hi_ok:
                bound = "in [0, 1)" if key == "dropout" else "in (0, 1]"
                raise _fail(w, f"{key} = {value!r}: must be a number {bound}")
            out[key] = float(value)
        elif key == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise _fail(w, f"lr = {value!r}: must be a positive number")
            out[key] = float(value)
    return out


def _options(where: str, name: str, table: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(where, f"{name} = {table!r}: must be a table")
    for key, value in table.items():
        if key not in allowed:
            raise _unknown(f"{where}: {name}", key, allowed)
        if key in ("n_draws", "chunk_size", "window"):
            _int(f"{where}: {name}", key, value)
        elif key in ("bias", "reset_selector") and not isinstance(value, bool):
            raise _fail(f"{where}: {name}", f"{key} = {value!r}: must be true or false")
        elif key == "lam" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise _fail(f"{where}: {name}", f"lam = {value!r}: must be a positive number")
    return dict(sorted(table.items()))


def _merge(top: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in top.items() if k in BLOCK_KEYS}
    for key, value in block.items():
        if key in _TABLE_KEYS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _block_cells(where: str, b: dict[str, Any]) -> list[Cell]:
    from .. import catalog
    from ..data import DATASETS

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

    numeric = [d for d in DATASETS if d != "sms-spam"]
    datasets = _names(where, "datasets", b["datasets"], numeric)
    models = _names(where, "models", b.get("models", ["mlp"]), list(catalog.MODEL_NAMES))
    strategies = _names(where, "strategies", b.get("strategies", []), strategy_names())
    stream = _names(where, "stream", b.get("stream", []), stream_selector_names())
    orders = _names(where, "orders", b.get("orders", ["iid"]), list(ORDERS))
    ks = b["batch_sizes"]
    if not isinstance(ks, list) or not ks:
        raise _fail(where, f"batch_sizes = {ks!r}: must be a non-empty list of integers >= 1")
    ks = [_int(where, f"batch_sizes[{i}]", k) for i, k in enumerate(ks)]
    seeds = _seeds(where, b.get("seeds", 5))
    initial = _int(where, "initial", b.get("initial", 100))
    ints = {key: _int(where, key, b[key])
            for key in ("max_train", "max_test", "segment", "rounds", "budget") if key in b}
    if "max_train" in ints and ints["max_train"] <= initial:
        raise _fail(where, f"max_train = {ints['max_train']} leaves no unlabelled pool after initial = {initial}")
    training = _training(where, b.get("training", {}))
    sopts = _options(where, "strategy_options", b.get("strategy_options", {}), STRATEGY_OPTION_KEYS)
    stopts = _options(where, "stream_options", b.get("stream_options", {}), STREAM_OPTION_KEYS)
    mc = [s for s in strategies if s in catalog.MC_STRATEGIES]
    if mc and training["dropout"] <= 0:
        raise _fail(where, f"strategies {mc} need MC dropout; training.dropout = {training['dropout']!r} must be > 0")

    cells = []
    for k in ks:
        if "budget" in ints:
            if ints["budget"] % k:
                raise _fail(where, f"budget = {ints['budget']} is not a multiple of batch size {k}")
            rounds = ints["budget"] // k
        else:
            rounds = ints["rounds"]
        if "max_train" in ints and initial + rounds * k > ints["max_train"]:
            raise _fail(
                where,
                f"initial + rounds·k = {initial} + {rounds}·{k} = {initial + rounds * k} exceeds max_train = "
                f"{ints['max_train']}",
            )
        for dataset in datasets:
            for model in models:
                common = dict(dataset=dataset, model=model, k=k, initial=initial, rounds=rounds,
                              max_train=ints.get("max_train"), max_test=ints.get("max_test"), training=training)
                for seed in seeds:
                    for s in strategies:
                        cells.append(Cell(kind="pool", strategy=s, seed=seed, options=sopts, **common))
                    for order in orders if stream else []:
                        for s in stream:
                            cells.append(Cell(kind="stream", strategy=s, seed=seed, order=order,
                                              segment=ints.get("segment"), options=stopts, **common))
    return cells


def parse_grid(data: Mapping[str, Any], *, source: str = "grid") -> Grid:
    """Validate a parsed grid (as from ``tomllib``) and expand it into cells (duplicates dropped)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a grid must be a table; got {type(data).__name__}")
    data = dict(data)
    for key in data:
        if key not in TOP_KEYS:
            raise _unknown(source, key, TOP_KEYS)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise _fail(source, f"name = {name!r}: must be a non-empty string")
    blocks = data.get("grid")
    if blocks is None:
        blocks = [{}]
    elif not isinstance(blocks, list) or not blocks or not all(isinstance(b, dict) for b in blocks):
        raise _fail(source, "grid must be one or more [[grid]] tables")
    cells: dict[str, Cell] = {}
    for i, block in enumerate(blocks):
        where = source if data.get("grid") is None else f"{source}: [[grid]] #{i + 1}"
        for key in block:
            if key not in BLOCK_KEYS:
                raise _unknown(where, key, BLOCK_KEYS)
        for cell in _block_cells(where, _merge(data, block)):
            cells.setdefault(cell.id, cell)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, f"description = {description!r}: must be a string")
    return Grid(name=name, cells=tuple(cells.values()), source=source, description=description)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid TOML file (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_grid(data, source=str(path))
