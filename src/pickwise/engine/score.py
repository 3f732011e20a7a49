"""Scoring a large pool with a fitted model, in-process or on a Ray Data actor pool, into Parquet.

:func:`score_to_parquet` reads the pool chunk by chunk (a ``.npy`` file, Parquet files with a
feature column, or a folder of image files), runs the model on each chunk and writes one Parquet
file per chunk, ``part-<chunk>.parquet``, in the layout of :mod:`pickwise.engine.parquet`:

* ``id`` — the item's id (the row number for ``.npy`` unless ``ids`` is given; the ``id`` column of
  Parquet input; the relative path, ``"cat/001.png"``, of an image);
* ``probs`` (N × K) and ``embeddings`` (N × d, the penultimate features: the head's input);
* ``mc_probs`` (T·K per item, metadata ``pickwise.mc_probs.shape = "T,K"``) when ``n_draws`` is set;
* ``score_<name>`` — a float per item for every name of ``scores`` (:data:`pickwise.scores.SCORES`
  on ``probs``; :data:`pickwise.scores.MC_SCORES` on the MC draws, which need ``n_draws``);
* ``row`` — the item's row number in the input (int64): its item index whatever the ids, what
  ``rows`` and candidate subsampling (:func:`latest_scores`, :mod:`pickwise.engine.subsample`) speak of.

Gradient factors are not a column of their own: BADGE's factored gradient embedding is
``(p − e_ŷ, h)`` (:func:`pickwise.embeddings.gradient_factor` of ``probs``, and ``embeddings``),
so ``probs`` and ``embeddings`` are the factors. :func:`pickwise.engine.parquet.read_outputs` reads
the folder back (items in input order, since part names sort in chunk order), and
``pickwise select`` / :func:`pickwise.engine.select_sharded` select from it.

Engines
-------
* ``"local"``: the chunks one after another in this process (ray is not imported).
* ``"ray"``: a Ray Data pipeline whose rows are the chunk *numbers*:
  ``ray.data.from_items(chunks).map_batches(_ChunkScorer, compute=ActorPoolStrategy(size=actors),
  num_cpus=..., num_gpus=..., batch_size=1)``. Each actor loads the model once (in ``__init__``) and,
  per chunk, reads that chunk's rows where it lives (the ``.npy`` by memory map, Parquet by the row
  groups that hold the rows, images by opening their files), scores them and writes the chunk's
  part file itself; only (chunk, rows) pairs come back to the driver (a resumed run sends only the
  missing chunks; the pool has at most one actor per chunk). Why chunk numbers rather than
  ``ray.data.read_parquet``: a model's float results may depend on which rows share a forward pass
  (matrix-product blocking, a convolution's strides), and
  Ray Data cuts batches at block boundaries it chooses; with chunks fixed by the row number, every
  forward pass sees the same rows on either engine, so the Ray output equals the local output bit
  for bit, for any number of actors. The part names follow the chunk numbers (input order, however
  the actors interleave), no row passes through the driver, and there is no read task for a busy
  actor pool to starve (DISTRIBUTED.md's 2-core deadlock). The input files (and ``out_dir``) must
  be reachable at the same paths from every node (one machine, or a shared file system).

Faults: Ray Data restarts a dead actor and retries its task (``max_restarts=-1``,
``max_task_retries=-1`` by default in its actor pools); each part file is written under a temporary
name and renamed, so a chunk scored twice leaves one file with the same numbers.

Image folders: every image file under the folder (:data:`pickwise.data.IMAGE_SUFFIXES`, also in
sub-folders; hidden entries skipped), in path order folder by folder (for ``<class>/<file>`` the
order of :func:`pickwise.data.image_folder_files`, whose relative paths ``pickwise select --ids``
uses too, so the ids are the same strings). Each is converted to ``image_mode`` ("auto": greyscale
"L" when every image is greyscale, else "RGB", as :func:`pickwise.data.load_image_folder` decides),
resized (bilinear) when ``image_size`` is given, else all must share the first one's size, and
scaled to float32 in [0, 1], channels first: rows of shape (C, H, W), the ``row_shape`` a
:class:`TorchCheckpoint` of a CNN gets. Ids are strings; the ``row`` column gives each image's item
index (its position in that order), which :func:`latest_scores` and ``rows`` use.

Subsets: ``rows`` scores only those row numbers of the input (sorted ascending; the candidates of
a subsampled round), reading only what holds them; the result equals scoring ``x[rows]`` as an
input of its own with the same ``batch_size`` (chunks are ``batch_size`` consecutive candidates),
with the input's ids of those rows.

Determinism: a chunk's outputs are a function of the model, the chunk's rows and ``seed``; chunks
are ``batch_size`` rows from row 0 (the last one shorter). With the same ``batch_size`` both
engines give the same files. MC dropout (a :class:`~pickwise.adapters.TorchClassifier` with
``consistent_masks=True``, the default) uses the masks of ``predict_proba_mc(x, n_draws, seed=seed)``
on the whole pool, whatever the chunking; with ``consistent_masks=False`` each chunk's per-item
masks are seeded by ``(seed, chunk)``, so they then depend on ``batch_size`` too.

Score history (candidate subsampling, :class:`pickwise.wrappers.Subsample`): write each round's
scores to a folder of its own (``scores/round-003``); :func:`latest_scores` folds the folders of the
earlier rounds into the latest value per item, the ``values`` that ``Subsample`` keeps
(``sub.load_state_dict({"values": ...})``).

A plan, ``score.plan.json``, is written first (inputs, rows and their digest, batch size, outputs,
scores, draws, seed, the source's settings, a :class:`TorchCheckpoint`'s weights digest), and a
manifest, ``score.json``, last (rows, chunks, batch size, seed, draws, scores, columns): a folder
with a plan but no manifest holds an interrupted run. ``resume=True`` (``pickwise score --resume``)
finishes it: with the same plan (else a ValueError names the key that differs) it keeps the part
files already there (each complete: written under a temporary name and renamed), scores the
missing chunks and writes the manifest; the folder then equals an uninterrupted run's, since a
chunk's outputs depend only on the plan. On a finished folder of the same plan ``resume`` does
nothing. A model given as a plain callable is not checked (only a checkpoint's weights are).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IMAGE_MODES", "MANIFEST", "PLAN", "TorchCheckpoint", "latest_scores", "score_rows", "score_to_parquet"]

#: the manifest written last into an output folder
MANIFEST = "score.json"
#: the plan written first into an output folder (what ``resume`` checks)
PLAN = "score.plan.json"
#: the column holding each item's row number in the input (its item index), whatever its id
ROW = "row"
#: what ``outputs`` may name
OUTPUTS = ("probs", "embeddings", "mc_probs")
ENGINES = ("local", "ray")

ModelSource = Callable[[], Any]


# ---------------------------------------------------------------------------------------------- model


def _import_object(spec: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"module must look like 'package.module:factory'; got {spec!r}")
    try:
        obj = importlib.import_module(mod)
    except ImportError as err:
        raise ValueError(f"cannot import {mod!r} (from module {spec!r}): {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{mod!r} has no attribute {attr!r} (from module {spec!r})")
        obj = getattr(obj, part)
    return obj


def _read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` or ``.npz`` state dict (never pickle)."""
    import torch

    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:  # pragma: no cover - safetensors comes with the torch extra
            raise ImportError('safetensors checkpoints need safetensors: pip install safetensors') from err
        return load_file(str(path))
    with np.load(path, allow_pickle=False) as z:
        return {k: torch.from_numpy(np.array(z[k])) for k in z.files}


@dataclass(frozen=True)
class TorchCheckpoint:
    """A fitted :class:`~pickwise.adapters.TorchClassifier` from weights on disk; call it to build one.

    Parameters
    ----------
    weights : str
        A ``state_dict`` as ``.safetensors`` (what ``pickwise`` projects save) or ``.npz`` (arrays
        named by the state-dict keys; read with ``allow_pickle=False``). Never a pickled module.
    module : str or callable
        The architecture: a zero-argument callable returning an ``nn.Module``, or
        ``"package.module:factory"`` called with ``module_kwargs`` (e.g.
        ``"pickwise.adapters.nets:mlp"`` with ``{"n_features": 64, "n_classes": 10, "dropout": 0.2}``).
    row_shape : tuple of int or None
        The shape of one input row (e.g. ``(64,)``); :func:`score_to_parquet` fills it in from the input.
    n_classes : int or None
        Default: the head's ``out_features``.
    options : mapping
        Further :class:`~pickwise.adapters.TorchClassifier` keywords (``input_shape``, ``chunk_size``,
        ``device``, ``consistent_masks``, ``head``, ...).

    Loading: a TorchClassifier whose ``train_fn`` copies the weights in (``load_state_dict(strict=True)``)
    is fitted on one row of zeros, so it is fitted exactly as ``fit`` fits (head, dropout layers, row
    shape) and holds the checkpoint's weights and buffers.
    """

    weights: str
    module: str | Callable[[], Any]
    row_shape: tuple[int, ...] | None = None
    n_classes: int | None = None
    module_kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError when the weights file is missing or of another kind (cheap; no torch)."""
        p = Path(self.weights)
        if p.suffix not in (".safetensors", ".npz"):
            raise ValueError(f"weights must be a .safetensors or .npz state dict; got {self.weights!r}")
        if not p.is_file():
            raise ValueError(f"no weights file at {self.weights!r}")
        if isinstance(self.module, str):
            _import_object(self.module)
        elif not callable(self.module):
            raise ValueError(f"module must be 'package.module:factory' or a callable; got {self.module!r}")  # noqa: TRY004 (bad input is a ValueError here)

    def __call__(self) -> Any:
        """A fitted TorchClassifier holding the checkpoint's weights."""
        from torch import nn

        from ..adapters.torch import TorchClassifier

        if self.row_shape is None:
            raise ValueError("TorchCheckpoint needs row_shape (the shape of one input row)")
        factory = _import_object(self.module) if isinstance(self.module, str) else self.module
        net = factory(**dict(self.module_kwargs)) if isinstance(self.module, str) else factory()
        if not isinstance(net, nn.Module):
            raise ValueError(f"module {self.module!r} returned {type(net).__name__}, not a torch.nn.Module")  # noqa: TRY004 (bad input is a ValueError here)
        state = _read_state_dict(Path(self.weights))
        n_classes = self.n_classes
        if n_classes is None:
            heads = [m for m in net.modules() if isinstance(m, nn.Linear)]
            if not heads:
                raise ValueError(f"module {self.module!r} has no nn.Linear head")
            n_classes = heads[-1].out_features

        def load_weights(module: Any, batches: Any, *, seed: int, device: Any) -> None:
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ValueError(f"weights {self.weights!r} do not fit module {self.module!r}: {err}") from err

        clf = TorchClassifier(net, n_classes=n_classes, train_fn=load_weights, **dict(self.options))
        x = np.zeros((1, *self.row_shape), dtype=np.float32)
        return clf.fit(x, np.zeros(1, dtype=np.int64), seed=0)


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _NpySource:
    """Rows of a 2-D (or more) ``.npy`` file, read by memory map; ids are row numbers unless given."""

    path: str
    n: int
    row_shape: tuple[int, ...]
    ids: np.ndarray | None = None

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.load(self.path, mmap_mode="r", allow_pickle=False)
        rows = np.ascontiguousarray(x[start:stop])
        ids = np.arange(start, stop, dtype=np.int64) if self.ids is None else self.ids[start:stop]
        return ids, rows

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` (sorted row numbers): only their pages of the memory map are read."""
        x = np.load(self.path, mmap_mode="r", allow_pickle=False)
        ids = rows.astype(np.int64) if self.ids is None else self.ids[rows]
        return ids, np.ascontiguousarray(x[rows])


@dataclass(frozen=True)
class _ParquetSource:
    """Rows of Parquet files (in order): ``column`` a list of numbers per row, ids from ``id_column``."""

    files: tuple[str, ...]
    groups: tuple[tuple[int, ...], ...]  # rows per row group, per file
    column: str
    id_column: str | None
    n: int
    row_shape: tuple[int, ...]

    def _decode(self, table: Any, what: str) -> np.ndarray:
        col = table.column(self.column).combine_chunks()
        values = col.flatten().to_numpy(zero_copy_only=False)
        m, width = table.num_rows, int(np.prod(self.row_shape))
        if values.shape[0] != m * width:  # a row of another length (or a missing row) shifts the count
            raise ValueError(f"column {self.column!r} must hold {width} numbers in every row; {what} "
                             f"hold {values.shape[0]} values for {m} rows")
        return values.reshape(m, *self.row_shape)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        from .parquet import read_row_range

        cols = [self.column] + ([self.id_column] if self.id_column else [])
        table = read_row_range(self.files, cols, start, stop, self.groups)
        x = self._decode(table, f"rows {start}..{stop - 1}")
        if self.id_column:
            ids = table.column(self.id_column).to_numpy(zero_copy_only=False)
        else:
            ids = np.arange(start, stop, dtype=np.int64)
        return ids, x

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` (sorted global row numbers), reading only the row groups that hold them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = [self.column] + ([self.id_column] if self.id_column else [])
        where = [(f, g) for f, sizes in enumerate(self.groups) for g in range(len(sizes))]
        starts = np.cumsum([0] + [n for sizes in self.groups for n in sizes])
        group_of = np.searchsorted(starts, rows, side="right") - 1
        parts, opened = [], {}
        for gi in np.unique(group_of).tolist():
            f, g = where[gi]
            if f not in opened:
                opened[f] = pq.ParquetFile(self.files[f])
            local = rows[group_of == gi] - starts[gi]
            parts.append(opened[f].read_row_group(g, columns=cols).take(pa.array(local)))
        table = pa.concat_tables(parts)
        x = self._decode(table, f"the {len(rows)} rows from row {int(rows[0])} on")
        ids = table.column(self.id_column).to_numpy(zero_copy_only=False) if self.id_column else rows.astype(np.int64)
        return ids, x


#: image modes :func:`score_to_parquet` converts to ("auto": L when every image is greyscale, else RGB)
IMAGE_MODES = ("auto", "RGB", "L")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_PILLOW_HINT = "reading image folders needs Pillow: pip install pillow"


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(_PILLOW_HINT) from err
    return Image


@dataclass(frozen=True)
class _ImageSource:
    """The image files of a folder (relative POSIX paths, in order) as float32 (C, H, W) rows in [0, 1];
    ids are the relative paths. ``size`` is (width, height) as Pillow has it: the resize target, or
    (``resize`` False) the size every image must have."""

    root: str
    files: tuple[str, ...]
    mode: str
    size: tuple[int, int]
    resize: bool

    @property
    def n(self) -> int:
        return len(self.files)

    @property
    def row_shape(self) -> tuple[int, ...]:
        return (1 if self.mode == "L" else 3, self.size[1], self.size[0])

    def _pixels(self, i: int) -> np.ndarray:
        Image = _pil()
        name = self.files[i]
        try:
            with Image.open(Path(self.root) / name) as im:
                im.load()
                im = im.convert(self.mode)
        except (OSError, ValueError, SyntaxError) as err:  # Pillow: UnidentifiedImageError, truncated files
            raise ValueError(f"cannot read image {name!r} of {self.root!r}: {err}") from err
        if im.size != self.size:
            if not self.resize:
                raise ValueError(f"images differ in size: {self.files[0]} is {self.size[0]}×{self.size[1]} but "
                                 f"{name} is {im.size[0]}×{im.size[1]} (width×height); pass image_size (--image-size)")
            im = im.resize(self.size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0  # as pickwise.data.load_image_folder scales them
        return a[None] if self.mode == "L" else a.transpose(2, 0, 1)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([self.files[r] for r in rows.tolist()], dtype=object)
        x = np.stack([self._pixels(r) for r in rows.tolist()]) if len(rows) else np.zeros((0, *self.row_shape), np.float32)
        return ids, np.ascontiguousarray(x)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.take(np.arange(start, stop))


def _folder_kind(p: Path) -> tuple[str, list[str]]:
    """``("parquet", [])`` or ``("images", relative paths)`` for a folder (see :func:`score_to_parquet`)."""
    from ..data.loaders import IMAGE_SUFFIXES

    direct = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    parquet = [f.name for f in direct if f.suffix == ".parquet"]
    if parquet:
        images = [f.name for f in direct if f.suffix.lower() in IMAGE_SUFFIXES]
        if images:
            raise ValueError(f"{str(p)!r} holds both .parquet files ({parquet[0]}) and image files ({images[0]}); "
                             "point inputs at a folder of one kind")
        return "parquet", []
    found: list[tuple[str, ...]] = []
    for top, dirs, names in os.walk(p):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden entries are skipped, as image_folder_files does
        rel = Path(top).relative_to(p).parts
        for name in names:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{str(Path(top) / name)!r} in image folder {str(p)!r} is not an image file "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            found.append((*rel, name))
    if not found:
        raise ValueError(f"{str(p)!r} holds neither .parquet files (directly inside) nor image files "
                         f"({', '.join(IMAGE_SUFFIXES)}, also in sub-folders)")
    found.sort()  # folder by folder: the order of pickwise.data.image_folder_files for <class>/<file>
    return "images", ["/".join(parts) for parts in found]


def _image_size(image_size: Any) -> tuple[int, int] | None:
    """``image_size`` as (height, width), or None."""
    if image_size is None:
        return None
    hw = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    try:
        ok = len(hw) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in hw)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"image_size must be a positive int or (height, width); got {image_size!r}")
    return int(hw[0]), int(hw[1])


def _open_images(p: Path, files: list[str], image_mode: str, image_size: tuple[int, int] | None) -> _ImageSource:
    """The folder's images as a source. "auto" reads every file's header here (mode and size, no pixels);
    "RGB"/"L" read only the first one's (its size is the one every image must have without image_size)."""
    Image = _pil()
    modes: list[str] = []
    first: tuple[int, int] | None = None
    for name in files if image_mode == "auto" else files[:1]:
        try:
            with Image.open(p / name) as im:
                mode, size = im.mode, im.size
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image {name!r} of {str(p)!r}: {err}") from err
        if first is None:
            first = size
        elif image_size is None and size != first:
            raise ValueError(f"images differ in size: {files[0]} is {first[0]}×{first[1]} but {name} is "
                             f"{size[0]}×{size[1]} (width×height); pass image_size (--image-size)")
        modes.append(mode)
    mode = image_mode
    if mode == "auto":
        mode = "L" if all(m in _GREY_MODES for m in modes) else "RGB"
    assert first is not None
    size = first if image_size is None else (image_size[1], image_size[0])  # Pillow: (width, height)
    return _ImageSource(str(p.resolve()), tuple(files), mode, size, image_size is not None)


def _list_width(pa: Any, typ: Any, column: str, where: str) -> int | None:
    """The fixed width of a list-of-numbers column (None for a variable-length list)."""
    if pa.types.is_fixed_size_list(typ):
        width = typ.list_size
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
        width = None
    else:
        raise ValueError(f"column {column!r} of {where} must be a list of numbers per row; got {typ}")
    vt = typ.value_type
    if not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
        raise ValueError(f"column {column!r} of {where} must hold numbers; got lists of {vt}")
    return width


def _open_source(inputs: str | Path, *, column: str, id_column: str | None, ids: Any, image_mode: str = "auto",
                 image_size: tuple[int, int] | None = None) -> Any:
    """The input as a source (checked here, on the driver: names, widths, columns, image headers)."""
    p = Path(inputs)
    kind, files = _folder_kind(p) if p.is_dir() else ("file", [])
    if kind == "images":
        if ids is not None:
            raise ValueError(f"ids are for .npy inputs; the ids of image folder {str(p)!r} are its files' paths")
        return _open_images(p, files, image_mode, image_size)
    if p.suffix == ".npy" and not p.is_file():
        raise ValueError(f"no .npy file at {str(p)!r}")
    if p.suffix == ".npy":
        try:
            x = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"cannot read {str(p)!r} as a numeric .npy array: {err}") from err
        if x.ndim < 2 or x.dtype.kind not in "fiu":
            raise ValueError(f"{str(p)!r} must hold numbers of shape (n, features...); got {x.dtype} {x.shape}")
        id_arr = None
        if ids is not None:
            id_arr = np.asarray(ids)
            if id_arr.shape != (x.shape[0],):
                raise ValueError(f"ids must hold one id per row of {str(p)!r} ({x.shape[0]}); got shape {id_arr.shape}")
            if np.unique(id_arr).shape[0] != id_arr.shape[0]:
                raise ValueError("ids must be unique")
        return _NpySource(str(p.resolve()), int(x.shape[0]), tuple(int(d) for d in x.shape[1:]), id_arr)
    if ids is not None:
        raise ValueError(f"ids are for .npy inputs; Parquet input {str(p)!r} has its id column")
    if p.is_file() and p.suffix != ".parquet":
        raise ValueError(f"inputs must be a .npy file, a .parquet file or a folder of them; got {str(p)!r}")
    import pyarrow as pa

    from .parquet import open_parquet, parquet_files

    files = parquet_files(p)
    groups, width, n = [], None, 0
    for f in files:
        pf = open_parquet(f)
        names = pf.schema_arrow.names
        for c in [column] + ([id_column] if id_column else []):
            if c not in names:
                raise ValueError(f"{str(f)!r} has no column {c!r} (it has {', '.join(names)})")
        w = _list_width(pa, pf.schema_arrow.field(column).type, column, repr(str(f)))
        if w is None and pf.metadata.num_rows:  # a variable-length list: its width from the first row
            first = pf.read_row_group(0, columns=[column]).column(0)[0].values
            w = len(first)
        if width is not None and w is not None and w != width:
            raise ValueError(f"column {column!r} of {str(f)!r} holds {w} numbers per row; earlier files hold {width}")
        width = width if w is None else w
        groups.append(tuple(pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)))
        n += pf.metadata.num_rows
    if not width:
        raise ValueError(f"column {column!r} of {str(p)!r} holds no numbers")
    return _ParquetSource(tuple(str(f.resolve()) for f in files), tuple(groups), column, id_column, n, (int(width),))


# ---------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Plan:
    """What each chunk computes and where it goes (checked by :func:`score_to_parquet`)."""

    out_dir: str
    n: int
    batch_size: int
    outputs: tuple[str, ...]
    scores: tuple[str, ...]
    n_draws: int | None
    seed: int
    rows: np.ndarray | None = None  # sorted row numbers of the input to score (None: every row)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.batch_size)

    def chunk_rows(self, chunk: int) -> int:
        """How many items chunk ``chunk`` holds."""
        return min(self.batch_size, self.n - chunk * self.batch_size)

    def part(self, chunk: int) -> Path:
        width = max(6, len(str(self.n_chunks - 1)))
        return Path(self.out_dir) / f"part-{chunk:0{width}d}.parquet"


def _check_model(model: Any, outputs: Sequence[str], n_draws: int | None) -> None:
    """The capabilities the plan needs, checked once per process (actor) before any chunk."""
    need = ["predict_proba"]
    if "embeddings" in outputs:
        need.append("embed")
    if n_draws is not None:
        need.append("predict_proba_mc")
    missing = [m for m in need if not callable(getattr(model, m, None))]
    if missing:
        raise ValueError(f"the model ({type(model).__name__}) has no {missing[0]}() method, which "
                         f"{'embeddings' if missing[0] == 'embed' else 'the outputs asked for'} need")


def score_rows(model: Any, x: Any, *, outputs: Sequence[str] = ("probs", "embeddings"),
               scores: Sequence[str] = (), n_draws: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """A fitted model's outputs on rows ``x``: the arrays of one part file.

    Returns ``probs`` (m, K) and/or ``embeddings`` (m, d) (from one ``grad_factors`` pass when the
    model has it, else ``predict_proba`` and ``embed``), ``mc_probs`` (n_draws, m, K) from
    ``predict_proba_mc(x, n_draws, seed=seed)``, and ``score_<name>`` (m,) for each of ``scores``
    (:data:`pickwise.scores.SCORES` on the probabilities, :data:`pickwise.scores.MC_SCORES` on the
    draws). Probabilities are computed whenever a score or ``probs`` needs them.
    """
    from ..scores import MC_SCORES, SCORES

    out: dict[str, np.ndarray] = {}
    need_probs = "probs" in outputs or any(s in SCORES for s in scores)
    if "embeddings" in outputs and callable(getattr(model, "grad_factors", None)):
        probs, out["embeddings"] = model.grad_factors(x)
        if need_probs:
            out["probs"] = probs
    else:
        if need_probs:
            out["probs"] = model.predict_proba(x)
        if "embeddings" in outputs:
            out["embeddings"] = model.embed(x)
    draws = None
    if n_draws is not None:
        draws = model.predict_proba_mc(x, n_draws, seed=seed)
        if "mc_probs" in outputs:
            out["mc_probs"] = draws
    m = len(x)
    for name in scores:
        if name in SCORES:
            out[f"score_{name}"] = np.asarray(SCORES[name](out["probs"]), dtype=np.float64)
        else:
            out[f"score_{name}"] = np.asarray(MC_SCORES[name](draws, n_items=m), dtype=np.float64)
    if "probs" not in outputs:
        out.pop("probs", None)
    return out


def _score_chunk(model: Any, source: Any, plan: _Plan, chunk: int) -> int:
    """Score chunk ``chunk`` and write its part file (atomically); returns its row count."""
    from .parquet import write_outputs

    start = chunk * plan.batch_size
    stop = min(start + plan.batch_size, plan.n)
    ids, x = source.read(start, stop) if plan.rows is None else source.take(plan.rows[start:stop])
    seed = plan.seed
    if plan.n_draws is not None and getattr(model, "consistent_masks", True) is False:
        from ..utils import derive_seed

        seed = derive_seed(plan.seed, chunk)  # per-item masks: a stream of their own per chunk
    arrays = score_rows(model, x, outputs=plan.outputs, scores=plan.scores, n_draws=plan.n_draws, seed=seed)
    columns = {k: v for k, v in arrays.items() if k.startswith("score_")}
    # the input row of each item: the item index that candidate subsampling and --rows speak of
    columns[ROW] = np.arange(start, stop, dtype=np.int64) if plan.rows is None else plan.rows[start:stop]
    write_outputs(plan.part(chunk), ids, probs=arrays.get("probs"), embeddings=arrays.get("embeddings"),
                  mc_probs=arrays.get("mc_probs"), columns=columns or None)
    return stop - start


class _ChunkScorer:
    """The Ray Data callable class: the model loaded once per actor, then one part file per chunk."""

    def __init__(self, model_source: ModelSource, source: Any, plan: _Plan) -> None:
        self.model = model_source()
        _check_model(self.model, plan.outputs, plan.n_draws)
        self.source, self.plan = source, plan

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks = np.asarray(batch["chunk"], dtype=np.int64)
        rows = [_score_chunk(self.model, self.source, self.plan, int(c)) for c in chunks]
        return {"chunk": chunks, "rows": np.asarray(rows, dtype=np.int64)}


# ---------------------------------------------------------------------------------------------- engines


def _run_local(model_source: ModelSource, source: Any, plan: _Plan, chunks: Sequence[int], progress: bool) -> None:
    from ..progress import progress_bar, progress_bars

    model = model_source()
    _check_model(model, plan.outputs, plan.n_draws)
    with progress_bars(progress):  # this bar only, not one per chunk from the model's own passes
        bar = progress_bar(sum(plan.chunk_rows(c) for c in chunks), "scoring")
    try:
        for c in chunks:
            bar.update(_score_chunk(model, source, plan, c))
    finally:
        bar.close()


@contextlib.contextmanager
def _ray_session(address: str | None, min_cpus: float) -> Iterator[Any]:
    """Ray, initialised as :class:`~pickwise.engine.RayEngine` does (a local instance on 127.0.0.1
    with no dashboard, usage statistics off, a throwaway auth token, its files in a temporary
    folder of its own; or the cluster at ``address``); shut down at the end if started here."""
    from .ray import INSTALL_HINT, _check_reachable, import_ray

    try:
        ray = import_ray(local=address is None)
    except ImportError as err:
        raise ValueError(INSTALL_HINT) from err
    if ray.is_initialized():
        if address is not None:
            raise ValueError(f"Ray is already initialised in this process; cannot also connect to address {address!r}")
        yield ray
        return
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    tmp = None
    if address is not None:
        try:
            _check_reachable(address)
        except ConnectionError as err:
            raise ValueError(str(err)) from err
        opts["address"] = address
    else:
        tmp = tempfile.mkdtemp(prefix="pwscore-")
        # logical CPUs: at least what the pool asks for plus one, so nothing else waits on the pool
        opts.update(num_cpus=max(os.cpu_count() or 1, int(np.ceil(min_cpus)) + 1), _temp_dir=tmp)
    ray.init(**opts)
    try:
        yield ray
    finally:
        ray.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_ray(model_source: ModelSource, source: Any, plan: _Plan, chunks: Sequence[int], *, actors: int,
             num_cpus: float, num_gpus: float, address: str | None, progress: bool) -> None:
    quiet = logging.getLogger("ray.data")
    level = quiet.level
    with _ray_session(address, actors * num_cpus) as ray:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        if not progress:  # Ray Data's INFO lines (plan, timings) would clutter a command's output
            quiet.setLevel(logging.ERROR)
        ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=min(len(chunks), 4 * actors))
        done = ds.map_batches(
            _ChunkScorer, fn_constructor_args=(model_source, source, plan), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(chunks))),  # no idle actor loading the model
            num_cpus=num_cpus, num_gpus=num_gpus,
        )
        rows = dict.fromkeys(chunks, 0)
        try:
            for batch in done.iter_batches(batch_size=None, batch_format="numpy"):
                for c, r in zip(batch["chunk"].tolist(), batch["rows"].tolist()):
                    rows[c] = r
        finally:
            quiet.setLevel(level)
    want = sum(plan.chunk_rows(c) for c in chunks)
    if sum(rows.values()) != want:  # every chunk written once: a lost chunk is a bug, not a fault
        missing = [c for c, r in rows.items() if not r]
        raise RuntimeError(f"Ray returned {sum(rows.values())} of {want} rows; chunks {missing[:5]} missing")


# ---------------------------------------------------------------------------------------------- public


def _check_names(outputs: Sequence[str] | None, scores: Sequence[str], n_draws: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ..scores import MC_SCORES, SCORES

    if isinstance(scores, str):
        raise ValueError(f"scores must be a sequence of names, e.g. ('entropy',); got the string {scores!r}")  # noqa: TRY004 (bad input is a ValueError here)
    scores = tuple(scores)
    for s in scores:
        if s not in SCORES and s not in MC_SCORES:
            raise ValueError(f"unknown score {s!r}; choose from {', '.join([*SCORES, *MC_SCORES])}")
        if s in MC_SCORES and n_draws is None:
            raise ValueError(f"score {s!r} is computed from MC draws; set n_draws")
    if len(set(scores)) != len(scores):
        raise ValueError(f"scores must not repeat a name; got {scores!r}")
    if outputs is None:
        outputs = ("probs", "embeddings") + (("mc_probs",) if n_draws is not None else ())
    if isinstance(outputs, str):
        raise ValueError(f"outputs must be a sequence of names, e.g. ('probs',); got the string {outputs!r}")  # noqa: TRY004 (bad input is a ValueError here)
    outputs = tuple(outputs)
    for o in outputs:
        if o not in OUTPUTS:
            raise ValueError(f"unknown output {o!r}; choose from {', '.join(OUTPUTS)}")
    if "mc_probs" in outputs and n_draws is None:
        raise ValueError("output 'mc_probs' needs n_draws")
    if not outputs and not scores:
        raise ValueError("nothing to write: outputs and scores are both empty")
    return outputs, scores


def _check_number(name: str, value: Any, *, integer: bool, low: float) -> Any:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok or not value >= low or not np.isfinite(value):
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}; got {value!r}")
    return int(value) if integer else float(value)


def _check_rows(rows: Any, n: int, inputs: str | Path) -> np.ndarray:
    """``rows`` as a sorted int64 array of unique row numbers in 0 .. n − 1."""
    if isinstance(rows, (str, bytes)) or np.ndim(rows) != 1:
        raise ValueError(f"rows must be a 1-D sequence of row numbers; got {rows!r:.80}")
    arr = np.asarray(rows)
    if arr.size == 0:
        raise ValueError("rows is empty: give at least one row number")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"rows must be integer row numbers; got {arr.dtype} values such as {arr[:3].tolist()}")
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
        raise ValueError(f"rows must be in 0 .. {n - 1} (the rows of {str(inputs)!r}); got {bad[:5].tolist()}")
    arr = np.sort(arr.astype(np.int64), kind="stable")
    dup = arr[1:][arr[1:] == arr[:-1]]
    if dup.size:
        raise ValueError(f"rows must be unique; repeated: {np.unique(dup)[:5].tolist()}")
    return arr


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _model_record(model_source: ModelSource) -> dict[str, Any] | None:
    """What a resumed run checks of the model: a TorchCheckpoint's weights (by content) and architecture.
    A plain callable cannot be checked (None)."""
    if not isinstance(model_source, TorchCheckpoint):
        return None
    import hashlib

    h = hashlib.sha256()
    with open(model_source.weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    module = model_source.module if isinstance(model_source.module, str) else getattr(model_source.module, "__qualname__", None)
    return json.loads(json.dumps({"weights_sha256": h.hexdigest(), "module": module,
                                  "module_kwargs": dict(model_source.module_kwargs),
                                  "n_classes": model_source.n_classes}, default=str))


def _plan_record(inputs: str | Path, source: Any, plan: _Plan, model_source: ModelSource,
                 column: str, id_column: str | None) -> dict[str, Any]:
    """The plan file's content: what must be the same for a resumed run to continue this one."""
    if isinstance(source, _ImageSource):
        src: dict[str, Any] = {"kind": "images", "mode": source.mode, "size": list(source.size),
                               "resize": source.resize, "files": _digest("\n".join(source.files).encode())}
    elif isinstance(source, _ParquetSource):
        src = {"kind": "parquet", "files": [Path(f).name for f in source.files], "column": column,
               "id_column": id_column}
    else:
        ids = None if source.ids is None else _digest(json.dumps(source.ids.tolist(), default=str).encode())
        src = {"kind": "npy", "ids": ids}
    src["row_shape"] = list(source.row_shape)
    rows = None if plan.rows is None else _digest(plan.rows.astype("<i8").tobytes())
    return {"inputs": str(Path(inputs).resolve()), "input_rows": source.n, "rows": plan.n, "rows_digest": rows,
            "batch_size": plan.batch_size, "outputs": list(plan.outputs), "scores": list(plan.scores),
            "n_draws": plan.n_draws, "seed": plan.seed, "source": src, "model": _model_record(model_source)}


def _differing(saved: Any, now: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first key (dotted) whose value differs between two plan records."""
    if isinstance(saved, dict) and isinstance(now, dict):
        for k in [*saved, *(k for k in now if k not in saved)]:
            d = _differing(saved.get(k), now.get(k), f"{key}.{k}" if key else k)
            if d:
                return d
        return None
    return None if saved == now else (key, saved, now)


def _check_out_dir(out: Path, inputs: str | Path, resume: bool, record: dict[str, Any]) -> str:
    """What to do with ``out``: "new" (score every chunk), "resume" (the missing chunks) or "done"."""
    if Path(inputs).is_dir() and out.resolve() == Path(inputs).resolve():
        raise ValueError(f"out_dir {str(out)!r} is the input folder; write outputs elsewhere")
    if isinstance(record["source"], dict) and record["source"]["kind"] == "images" \
            and out.resolve().is_relative_to(Path(inputs).resolve()):
        raise ValueError(f"out_dir {str(out)!r} is inside the input image folder; write outputs elsewhere")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    if not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    plan_file, finished = out / PLAN, (out / MANIFEST).is_file()
    if not resume:
        if plan_file.is_file() and not finished:
            parts = len(list(out.glob("part-*.parquet")))
            raise ValueError(f"out_dir {str(out)!r} holds an interrupted run ({parts} part files, no {MANIFEST}); "
                             "finish it with resume=True (pickwise score --resume), or write to a new folder")
        raise ValueError(f"out_dir {str(out)!r} exists and is not an empty folder; write each round to a new folder")
    if not plan_file.is_file():
        raise ValueError(f"out_dir {str(out)!r} holds no {PLAN}: not a pickwise score run that can be resumed")
    try:
        saved = json.loads(plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {str(plan_file)!r}: {err}") from err
    diff = _differing(saved, record)
    if diff:
        key, was, now = diff
        raise ValueError(f"out_dir {str(out)!r} holds a run of another plan: {key} is {was!r} there but "
                         f"{now!r} now; resume with the same arguments, or write to a new folder")
    return "done" if finished else "resume"


def score_to_parquet(
    model_source: ModelSource,
    inputs: str | Path,
    out_dir: str | Path,
    *,
    engine: str = "local",
    outputs: Sequence[str] | None = None,
    scores: Sequence[str] = ("entropy", "margin", "least_confidence"),
    n_draws: int | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    column: str = "x",
    id_column: str | None = "id",
    ids: Any = None,
    rows: Any = None,
    image_mode: str = "auto",
    image_size: int | tuple[int, int] | None = None,
    resume: bool = False,
    actors: int = 1,
    num_cpus: float = 1,
    num_gpus: float = 0,
    address: str | None = None,
    progress: bool = False,
) -> Path:
    """Score the rows of ``inputs`` with a fitted model; write Parquet parts to ``out_dir`` (see the module doc).

    Parameters
    ----------
    model_source : callable
        Zero arguments -> a fitted pickwise classifier (``predict_proba``; ``embed`` or
        ``grad_factors`` for embeddings; ``predict_proba_mc`` for draws), e.g. ``lambda: clf`` for a
        :class:`~pickwise.adapters.TorchClassifier` fitted here (on Ray it travels by Ray's
        cloudpickle, once per actor), or a :class:`TorchCheckpoint` (weights on disk; its
        ``row_shape`` is filled in from the input). Called once per process (per actor).
    inputs : path
        A ``.npy`` file of shape (n, features...) (ids: row numbers, or ``ids``); a ``.parquet``
        file, or a folder with ``*.parquet`` directly inside, with a list-of-numbers column ``column``
        and ids in ``id_column`` (None: row numbers); or a folder of image files (``.png``, ``.jpg``,
        ... as :data:`pickwise.data.IMAGE_SUFFIXES`, also in sub-folders such as ``<class>/<file>``;
        hidden entries skipped; any other file is an error): items in path order, folder by folder
        (the order of :func:`pickwise.data.image_folder_files`), ids the relative paths
        (``"cat/001.png"``), rows float32 in [0, 1] of shape (C, H, W). A folder holding both
        ``.parquet`` and image files directly inside, or neither, is an error.
    out_dir : path
        A new or empty folder (not the input folder, nor inside an input image folder); gets
        ``score.plan.json`` first, ``part-*.parquet``, and ``score.json`` last.
    engine : "local" or "ray"
    outputs : sequence of "probs", "embeddings", "mc_probs", or None
        Array columns to write; default probs and embeddings, plus mc_probs when ``n_draws`` is set.
    scores : sequence of str
        Score columns ``score_<name>``: names of :data:`pickwise.scores.SCORES` (on probs) or
        :data:`pickwise.scores.MC_SCORES` (on the draws; need ``n_draws``).
    n_draws, seed : MC-dropout draws per item and their seed (see the module doc for the masks).
    batch_size : rows per chunk: one forward pass sequence and one part file per chunk.
    rows : sequence of int or None
        Score only these row numbers of ``inputs`` (e.g. the candidates of a subsampled round): unique,
        in 0 .. n − 1, scored in **ascending** order whatever the order given; chunks are
        ``batch_size`` consecutive entries of the sorted list; only their rows are read (the
        ``.npy`` pages, Parquet row groups or image files that hold them); the ids written are
        those rows' ids. The outputs equal scoring ``x[sorted(rows)]`` as an input of its own.
    image_mode : "auto", "RGB" or "L"
        Image folders: the pixel mode every image is converted to: 3 or 1 channels. "auto" (as
        :func:`pickwise.data.load_image_folder` and ``pickwise run`` do): "L" when every image is
        greyscale, else "RGB"; it reads every file's header (not its pixels) before scoring.
    image_size : int, (height, width) or None
        Image folders: resize every image to this size (bilinear); None: all must share one size.
    resume : bool
        Finish an interrupted run in ``out_dir`` (part files and ``score.plan.json`` but no
        ``score.json``): the plan must equal this call's (inputs, rows, batch size, outputs, scores,
        draws, seed, the checkpoint's weights; else a ValueError names the key that differs); the
        chunks whose part file exists are kept, the rest scored, then the manifest is written.
        On a finished folder of the same plan it does nothing and returns ``out_dir``; on a new or
        empty one it starts a run.
    actors, num_cpus, num_gpus : Ray only: the actor pool's size and each actor's resources.
        ``num_gpus`` only reserves GPUs (Ray sets each actor's ``CUDA_VISIBLE_DEVICES``); the model runs
        on its own ``device``: give a TorchCheckpoint ``options={"device": "cuda"}`` (``pickwise score
        --num-gpus`` does). Outputs computed on a GPU equal a local run on the same kind of GPU.
    address : Ray only: a cluster to join (host:port, ray://host:port or auto); default a local Ray on 127.0.0.1.
    progress : show progress bars (pickwise's for local, Ray Data's for ray).

    Returns
    -------
    Path
        ``out_dir``; :func:`pickwise.engine.parquet.read_outputs` reads it back in input order.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'local' or 'ray'; got {engine!r}")
    if not callable(model_source):
        raise ValueError(f"model_source must be a zero-argument callable returning a fitted model "  # noqa: TRY004 (bad input is a ValueError here)
                         f"(or a TorchCheckpoint); got {model_source!r}")
    if n_draws is not None:
        n_draws = _check_number("n_draws", n_draws, integer=True, low=1)
    seed = _check_number("seed", seed, integer=True, low=0)
    batch_size = _check_number("batch_size", batch_size, integer=True, low=1)
    actors = _check_number("actors", actors, integer=True, low=1)
    num_cpus = _check_number("num_cpus", num_cpus, integer=False, low=0)
    num_gpus = _check_number("num_gpus", num_gpus, integer=False, low=0)
    if engine == "local" and (address is not None or actors != 1 or num_gpus):
        raise ValueError(f"address, actors and num_gpus are for engine 'ray' (engine is {engine!r})")
    for name, flag in (("progress", progress), ("resume", resume)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False; got {flag!r}")  # noqa: TRY004 (bad input is a ValueError here)
    if image_mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}; got {image_mode!r}")
    size_hw = _image_size(image_size)
    outputs, scores = _check_names(outputs, scores, n_draws)
    if isinstance(model_source, TorchCheckpoint):
        model_source.check()
    source = _open_source(inputs, column=column, id_column=id_column, ids=ids, image_mode=image_mode,
                          image_size=size_hw)
    if source.n == 0:
        raise ValueError(f"{str(inputs)!r} holds no rows")
    row_list = None if rows is None else _check_rows(rows, source.n, inputs)
    if isinstance(model_source, TorchCheckpoint) and model_source.row_shape is None:
        model_source = dataclasses.replace(model_source, row_shape=source.row_shape)
    out = Path(out_dir)
    n = source.n if row_list is None else len(row_list)
    plan = _Plan(str(out.resolve()), n, batch_size, outputs, scores, n_draws, seed, row_list)
    record = _plan_record(inputs, source, plan, model_source, column, id_column)
    state = _check_out_dir(out, inputs, resume, record)
    if state == "done":
        return out
    from .._fs import atomic_write

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if state == "new":
        with atomic_write(out / PLAN) as f:
            f.write(json.dumps(record, indent=1).encode())
    chunks = [c for c in range(plan.n_chunks) if state == "new" or not plan.part(c).is_file()]
    try:
        if not chunks:
            pass  # killed after the last part but before the manifest
        elif engine == "local":
            _run_local(model_source, source, plan, chunks, progress)
        else:
            _run_ray(model_source, source, plan, chunks, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus,
                     address=address, progress=progress)
    except BaseException:
        if state == "new" and not any(out.glob("part-*.parquet")):  # failed before writing a part: leave no trace
            (out / PLAN).unlink(missing_ok=True)
            if created and not any(out.iterdir()):
                out.rmdir()
        raise
    manifest = {"rows": plan.n, "chunks": plan.n_chunks, "batch_size": batch_size, "seed": seed,
                "n_draws": n_draws, "outputs": list(outputs), "scores": list(scores),
                "score_columns": [f"score_{s}" for s in scores], "inputs": str(inputs), "engine": engine,
                "input_rows": source.n, "subset": row_list is not None,
                "resumed_chunks": plan.n_chunks - len(chunks)}
    with atomic_write(out / MANIFEST) as f:
        f.write(json.dumps(manifest, indent=1).encode())
    return out


def item_key(files: Sequence[str | Path], key: str = "auto") -> str:
    """The column of a scored round's files that holds item indices: ``key`` ("id" or "row"), or for
    "auto" "id" where the ids are integers, else "row" (ValueError naming the file when it has neither)."""
    from .parquet import open_parquet

    if key not in ("auto", "id", "row"):
        raise ValueError(f"key must be 'auto', 'id' or 'row'; got {key!r}")
    schema = open_parquet(files[0]).schema_arrow
    if key == "auto":
        integer = "id" in schema.names and str(schema.field("id").type).startswith(("int", "uint"))
        key = "id" if integer or ROW not in schema.names else ROW
    if key not in schema.names:
        raise ValueError(f"{str(files[0])!r} has no column {key!r} (it has {', '.join(schema.names)})")
    if not str(schema.field(key).type).startswith(("int", "uint")):
        hint = " (ids of another kind: rounds written by pickwise score carry a 'row' column)" if key == "id" else ""
        raise ValueError(f"{key}s of {str(files[0])!r} must be integer item indices; got {schema.field(key).type}{hint}")
    return key


def latest_scores(rounds: Sequence[str | Path], n_items: int, *, score: str = "entropy",
                  key: str = "auto") -> np.ndarray:
    """The latest value of ``score_<score>`` per item over earlier rounds' output folders, oldest first.

    ``rounds``: folders written by :func:`score_to_parquet`; ``key`` says which column holds each
    item's index 0 .. ``n_items`` − 1: "id" (integer ids: the row numbers of a ``.npy``, or the item
    indices given as ``ids``), "row" (the input row number, which every run writes whatever the ids:
    image folders, Parquet ids of another kind), or "auto" (the default): "id" where the ids are
    integers, else "row". Returns a float64 array of shape (n_items,),
    NaN where no round scored the item: the ``values`` of :class:`pickwise.wrappers.Subsample`
    (``sub.load_state_dict({"values": latest_scores(...).tolist()})`` with NaN as None, or set
    ``sub.values`` directly), so a later round samples its candidates from this history.
    """
    from .subsample import VALUES, history_loaders

    n_items = _check_number("n_items", n_items, integer=True, low=0)
    if n_items == 0 or (not isinstance(rounds, (str, Path)) and len(rounds) == 0):
        return np.full(n_items, np.nan)  # nothing scored yet
    (whole,) = history_loaders(rounds, n_items, 1, score=score, key=key)  # one shard: every item, in order
    return whole()[VALUES]
