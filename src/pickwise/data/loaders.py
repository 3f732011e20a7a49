"""Dataset loaders: scikit-learn digits, IDX (MNIST, Fashion-MNIST), PMLB tables, SMS text,
generic ``.npy`` / ``.csv`` / ``.parquet`` arrays, and your own labelled files (:func:`load_file`:
tables with numeric or text features, ``.npy`` pairs, image folders).

Every loader returns a :class:`Dataset` with integer labels ``0..n_classes-1``. Sets without an
official test split (digits, PMLB, SMS) are split here by :func:`stratified_split`, which depends
only on ``seed``. Files are found under :func:`~pickwise.data.sources.data_root`; nothing here
touches the network (see :func:`pickwise.data.download`).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..utils import n_items, take
from .sources import PMLB_NAMES, SOURCES, data_root, folder_name

__all__ = [
    "DATASETS", "FILE_SUFFIXES", "IMAGE_SUFFIXES", "Dataset", "image_folder_files", "is_data_path", "load", "load_arrays",
    "load_digits", "load_fashion_mnist", "load_file", "load_image_folder", "load_mnist", "load_pmlb",
    "load_sms_spam", "make_dataset", "read_idx", "read_table", "stratified_split", "text_features",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test pair with integer labels.

    Attributes
    ----------
    x_train, x_test : ndarray of shape (n, ...) or list of str
        Features (float32 for the built-in numeric sets) or raw texts (SMS).
    y_train, y_test : ndarray of shape (n,), int64
        Labels in ``0..n_classes-1``.
    n_classes : int
    name : str
    feature_names : tuple of str, optional
    class_names : tuple of str, optional
        ``class_names[k]`` names label ``k`` (for re-encoded sets: the original label value).
    """

    x_train: Any
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    n_classes: int
    name: str
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype != np.int64:
                raise ValueError(f"y_{part} must be a 1-D int64 ndarray; got {type(y).__name__} "
                                 f"{getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}")
            if n_items(x) != len(y):
                raise ValueError(f"x_{part} has {n_items(x)} items but y_{part} has {len(y)}")
            if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"y_{part} must lie in 0..{self.n_classes - 1}; "
                                 f"got values in [{y.min()}, {y.max()}]")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(self.class_names)} entries for {self.n_classes} classes")

    def subset(self, *, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test items (all of a split when None).

        The loaders' splits are shuffled and stratified, so the first rows are a random sample of each.
        """
        from dataclasses import replace

        def first(name: str, m: int | None, x: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
            if m is None:
                return x, y
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
                raise ValueError(f"subset {name} must be a positive integer; got {m!r}")
            m = min(int(m), len(y))
            return (x[:m] if hasattr(x, "shape") or isinstance(x, list) else take(x, np.arange(m))), y[:m]

        xtr, ytr = first("train", train, self.x_train, self.y_train)
        xte, yte = first("test", test, self.x_test, self.y_test)
        return replace(self, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)

    def __repr__(self) -> str:
        def shape(x: Any) -> str:
            return str(tuple(x.shape)) if hasattr(x, "shape") else f"({len(x)} texts)"
        return (f"Dataset(name={self.name!r}, train={shape(self.x_train)}, "
                f"test={shape(self.x_test)}, n_classes={self.n_classes})")


# ---------------------------------------------------------------- splitting and encoding

def stratified_split(
    y: np.ndarray, *, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test split of row indices.

    The test part holds ``round(test_size * n)`` rows, shared among the classes in proportion to
    their sizes (largest remainders get the leftover rows), except that a class with at least two
    rows keeps at least one on each side and a singleton class stays in train. Both index arrays
    come back in a seeded random order, so a prefix is a random subset.

    Returns
    -------
    (train_idx, test_idx) : ndarrays of int64
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (float, int)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1); got {test_size!r}")
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(np.asarray(y), return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse)
    quota = test_size * counts
    n_test = np.floor(quota).astype(np.int64)
    leftover = int(round(test_size * len(inverse))) - int(n_test.sum())
    n_test[np.argsort(-(quota - n_test), kind="stable")[:max(leftover, 0)]] += 1
    n_test = np.minimum(np.maximum(n_test, (counts >= 2).astype(np.int64)), counts - 1)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for k, n_k in enumerate(n_test):
        members = rng.permutation(np.flatnonzero(inverse == k))
        test.append(members[:n_k])
        train.append(members[n_k:])
    empty = np.empty(0, dtype=np.int64)
    train_idx = rng.permutation(np.concatenate(train)) if train else empty
    test_idx = rng.permutation(np.concatenate(test)) if test else empty
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def _label_name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def make_dataset(
    x: Any, y: Any, *, name: str = "arrays", test_size: float = 0.2, seed: int = 0,
    feature_names: Sequence[str] | None = None,
) -> Dataset:
    """Encode labels to ``0..K-1`` (sorted unique values) and split ``x, y`` with
    :func:`stratified_split`. ``x`` is an array (memory-mapped is fine) or a list of texts."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n_items(x):
        raise ValueError(f"y must have shape ({n_items(x)},) to match x; got {y.shape}")
    values, codes = np.unique(y, return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    tr, te = stratified_split(codes, test_size=test_size, seed=seed)
    return Dataset(
        take(x, tr), codes[tr], take(x, te), codes[te], n_classes=len(values), name=name,
        feature_names=tuple(feature_names) if feature_names is not None else None,
        class_names=tuple(_label_name(v) for v in values),
    )


def _require(path: Path, dataset: str) -> Path:
    if not path.is_file():
        hint = (f"download it with pickwise.data.download({dataset!r}, root)" if dataset in SOURCES
                else f"place it at {path}")
        raise FileNotFoundError(
            f"dataset file {path} not found; {hint}, or set PICKWISE_DATA to the folder that "
            f"holds {dataset}/ (the default root is ~/.cache/pickwise)"
        )
    return path


# ---------------------------------------------------------------- digits

def load_digits(*, test_size: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8×8 digits (1797 × 64, 10 classes), pixels scaled to [0, 1] (÷16), float32.

    Ships inside scikit-learn, so no files are needed. Split by :func:`stratified_split`.
    """
    from sklearn.datasets import load_digits as _sk_digits  # heavy-ish import; only when used

    bunch = _sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    ds = make_dataset(x, bunch.target, name="digits", test_size=test_size, seed=seed,
                      feature_names=bunch.feature_names)
    return ds


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: PathLike, *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian ndarray.

    The header is two zero bytes, a type code, the number of dimensions, then each dimension as
    a big-endian uint32. The magic number (first four bytes) is checked against ``magic`` when
    given, and the data length against the dimensions. Raises ``ValueError`` naming the file on
    any inconsistency or a damaged gzip stream.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path} is not a readable IDX file: {exc}") from exc
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found is None or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'}")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: IDX magic number is 0x{found:08x}, expected 0x{magic:08x}")
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes for {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - start != expected:
        raise ValueError(f"{path}: IDX header declares shape {dims} ({expected} data bytes) "
                         f"but the file holds {len(raw) - start} data bytes")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def _load_idx_set(name: str, root: PathLike | None, flatten: bool, normalize: bool,
                  class_names: tuple[str, ...]) -> Dataset:
    folder = data_root(root) / name
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_require(folder / f"{prefix}-images-idx3-ubyte.gz", name), magic=0x0803)
        labels = read_idx(_require(folder / f"{prefix}-labels-idx1-ubyte.gz", name), magic=0x0801)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{folder}: {prefix} images hold {images.shape[0]} items but labels "
                             f"hold {labels.shape[0]}")
        if labels.size and labels.max() >= len(class_names):
            raise ValueError(f"{folder}: {prefix} labels reach {labels.max()}, expected < {len(class_names)}")
        x = images.reshape(len(images), -1) if flatten else images[:, None]
        if normalize:
            x = x.astype(np.float32)
            x /= 255.0
        parts[split] = (x, labels.astype(np.int64))
    return Dataset(*parts["train"], *parts["test"], n_classes=len(class_names), name=name,
                   class_names=class_names)


def load_mnist(root: PathLike | None = None, *, flatten: bool = True, normalize: bool = True) -> Dataset:
    """MNIST from the four official IDX ``.gz`` files in ``<root>/mnist/`` (official split 60000/10000).

    ``flatten`` gives shape (n, 784); ``flatten=False`` keeps the images as images, shape
    (n, 1, 28, 28) (channels first, for a CNN: ``load("mnist", flatten=False)``). ``normalize``
    gives float32 in [0, 1], else the raw uint8 pixels.
    """
    return _load_idx_set("mnist", root, flatten, normalize, tuple(str(d) for d in range(10)))


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_fashion_mnist(root: PathLike | None = None, *, flatten: bool = True,
                       normalize: bool = True) -> Dataset:
    """Fashion-MNIST from ``<root>/fashion-mnist/``; same layout and options as :func:`load_mnist`
    (``flatten=False`` gives images of shape (n, 1, 28, 28)); ``class_names`` are Zalando's."""
    return _load_idx_set("fashion-mnist", root, flatten, normalize, FASHION_CLASSES)


# ---------------------------------------------------------------- PMLB tables

def load_pmlb(name: str, root: PathLike | None = None, *, test_size: float = 0.2, seed: int = 0,
              standardize: bool = True) -> Dataset:
    """A PMLB table ``<root>/<name>/<name>.tsv.gz``: header row, label column ``target``.

    Labels are re-encoded to ``0..K-1`` in sorted order of the original values (kept in
    ``class_names``). Features are float32; with ``standardize`` they are centred and scaled by
    the training part's mean and standard deviation (constant columns are only centred).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"PMLB dataset name must be a plain folder name; got {name!r}")
    path = _require(data_root(root) / name / f"{name}.tsv.gz", name)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split("\t")
            if "target" not in header:
                raise ValueError(f"{path} has no 'target' column; columns are {header}")
            table = np.loadtxt(fh, delimiter="\t", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable gzip table: {exc}") from exc
    if table.shape[1] != len(header):
        raise ValueError(f"{path}: header has {len(header)} columns but rows have {table.shape[1]}")
    t = header.index("target")
    features = [c for i, c in enumerate(header) if i != t]
    ds = make_dataset(np.delete(table, t, axis=1), table[:, t], name=name, test_size=test_size,
                      seed=seed, feature_names=features)
    x_train, x_test = ds.x_train, ds.x_test
    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(x_train.astype(np.float32), ds.y_train, x_test.astype(np.float32), ds.y_test,
                   n_classes=ds.n_classes, name=name, feature_names=ds.feature_names,
                   class_names=ds.class_names)


# ---------------------------------------------------------------- SMS spam (text)

def load_sms_spam(root: PathLike | None = None, *, test_size: float = 0.2, seed: int = 0) -> Dataset:
    """SMS Spam Collection v.1 from ``<root>/sms-spam/SMSSpamCollection`` (``label<TAB>text``).

    ``x_train``/``x_test`` are lists of str; labels are ham=0, spam=1. Use :func:`text_features`
    for numeric features.
    """
    path = _require(data_root(root) / "sms-spam" / "SMSSpamCollection", "sms-spam")
    texts: list[str] = []
    labels: list[int] = []
    codes = {"ham": 0, "spam": 1}
    # split on "\n" only: str.splitlines would also break on control characters inside messages
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line:
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in codes:
            raise ValueError(f"{path}:{lineno}: expected 'ham<TAB>text' or 'spam<TAB>text'; got {line[:40]!r}")
        texts.append(text)
        labels.append(codes[label])
    y = np.asarray(labels, dtype=np.int64)
    tr, te = stratified_split(y, test_size=test_size, seed=seed)
    return Dataset(take(texts, tr), y[tr], take(texts, te), y[te], n_classes=2, name="sms-spam",
                   class_names=("ham", "spam"))


def text_features(train_texts: Sequence[str], test_texts: Sequence[str], *,
                  max_features: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF features fitted on ``train_texts`` only: dense float32 arrays of shape
    (n_train, d) and (n_test, d) with ``d <= max_features``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    max_features = check_positive_int("max_features", max_features)
    vec = TfidfVectorizer(max_features=max_features, dtype=np.float32)
    x_train = vec.fit_transform(list(train_texts)).toarray()
    x_test = vec.transform(list(test_texts)).toarray()
    return x_train, x_test


# ---------------------------------------------------------------- generic arrays

_INSTALL_HINT = "reading .parquet needs pandas and pyarrow: pip install pickwise[data]"


def _read_parquet(path: Path) -> tuple[list[str], Any]:
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:  # pandas present, pyarrow/fastparquet missing
        raise ImportError(_INSTALL_HINT) from exc
    return [str(c) for c in frame.columns], frame


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise ValueError(f"{path} is empty; expected a header row")
    cells = np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, quotechar='"', ndmin=2,
                       encoding="utf-8")
    if cells.size and cells.shape[1] != len(header):
        raise ValueError(f"{path}: header has {len(header)} columns but rows have {cells.shape[1]}")
    return header, cells.reshape(-1, len(header))


def _label_index(path: Path, columns: list[str], label_column: str | None) -> int:
    if label_column is not None:
        if label_column not in columns:
            raise ValueError(f"label_column {label_column!r} not in {path}; columns are {columns}")
        return columns.index(label_column)
    return columns.index("label") if "label" in columns else len(columns) - 1


def _as_labels(values: np.ndarray) -> np.ndarray:
    """Numeric labels become int64 (when integral) or float64; anything else stays as is."""
    try:
        numeric = values.astype(np.float64)
    except (ValueError, TypeError):
        return values
    return numeric.astype(np.int64) if np.all(np.mod(numeric, 1) == 0) else numeric


def _read_table(path: Path, label_column: str | None, with_label: bool,
                dtype: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(features, labels) of a .csv/.parquet table; features None when only labels are wanted."""
    if path.suffix == ".csv":
        columns, cells = _read_csv(path)
        column = lambda i: cells[:, i]  # noqa: E731
        select = lambda idx: cells[:, idx].astype(dtype)  # noqa: E731
    else:
        columns, frame = _read_parquet(path)
        column = lambda i: frame.iloc[:, i].to_numpy()  # noqa: E731
        select = lambda idx: frame.iloc[:, idx].to_numpy(dtype=dtype)  # noqa: E731
    if not with_label:
        return select(list(range(len(columns)))), None
    li = _label_index(path, columns, label_column)
    features = [i for i in range(len(columns)) if i != li]
    return select(features), _as_labels(np.asarray(column(li)))


_SUFFIXES = (".npy", ".csv", ".parquet")


def load_arrays(x_path: PathLike, y_path: PathLike | None = None, *, mmap: bool = True,
                label_column: str | None = None, dtype: Any = np.float32
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Features and labels from ``.npy``, ``.csv`` or ``.parquet`` files.

    - ``.npy``: loaded with ``allow_pickle=False``; memory-mapped read-only when ``mmap`` (the
      stored dtype is kept). Without ``y_path`` the labels are ``None`` (an unlabelled pool).
    - ``.csv`` (header row, comma-separated) and ``.parquet`` (needs ``pickwise[data]``):
      without ``y_path`` the label column is ``label_column``, else a column named ``"label"``,
      else the last column; the other columns are the features, cast to ``dtype``.
    - ``y_path`` may be any of the three; for a table the same column rule picks the labels.

    Labels are returned as stored (integral numbers as int64); use :func:`make_dataset` to
    encode and split them.
    """
    x_path = Path(x_path)
    paths = [x_path] + ([Path(y_path)] if y_path is not None else [])
    for path in paths:
        if path.suffix not in _SUFFIXES:
            raise ValueError(f"unsupported file type {path.suffix!r} for {path}; use one of {_SUFFIXES}")
        if not path.is_file():
            raise FileNotFoundError(f"array file {path} not found")
    y: np.ndarray | None = None
    from ..precomputed import load_npy  # one .npy reader: names garbage / object / truncated files

    if x_path.suffix == ".npy":
        x = load_npy(x_path, mmap=mmap)
    else:
        x, y = _read_table(x_path, label_column, y_path is None, dtype)
    if y_path is not None:
        y_file = Path(y_path)
        if y_file.suffix == ".npy":
            y = np.asarray(load_npy(y_file, mmap=False))
            if y.ndim != 1:
                raise ValueError(f"labels {y_file} must be one label per row (shape (n,)); got shape {y.shape}")
            if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
                bad = int(np.flatnonzero(~np.isfinite(y))[0])
                raise ValueError(f"labels {y_file} hold {y[bad]} at item {bad}; every label must be a class")
        else:
            _, y = _read_table(y_file, label_column, True, dtype)
        if len(y) != len(x):
            raise ValueError(f"{y_file} holds {len(y)} labels but {x_path} holds {len(x)} rows")
    return x, y


# ---------------------------------------------------------------- your own labelled files

#: Suffixes :func:`load_file` reads (besides a folder of images).
FILE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".jsonl", ".npy")
#: Image files :func:`load_image_folder` reads (case-insensitive); other files are an error.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_table(path: PathLike) -> dict[str, list[Any]]:
    """The columns of a ``.csv`` (header row; quoted cells may hold commas and newlines),
    ``.parquet`` (needs ``pickwise[data]``) or ``.jsonl`` (one JSON object per line) file.

    Returns column name → list of cell values in row order (CSV cells are str; a missing CSV cell
    is ``""``, a missing JSON key or a null is ``None``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows or not rows[0]:
            raise ValueError(f"{path} is empty; expected a header row")
        header = rows[0]
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: repeated column names in the header {header}")
        body = [r for r in rows[1:] if r]
        for lineno, r in enumerate(body, start=2):
            if len(r) != len(header):
                raise ValueError(f"{path}: row {lineno} has {len(r)} cells but the header has {len(header)}")
        return {c: [r[i] for r in body] for i, c in enumerate(header)}
    if path.suffix == ".parquet":
        columns, frame = _read_parquet(path)
        return {c: frame.iloc[:, i].tolist() for i, c in enumerate(columns)}
    if path.suffix == ".jsonl":
        records: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object per line; got {type(obj).__name__}")
                records.append(obj)
        names: dict[str, None] = {}
        for obj in records:
            names.update(dict.fromkeys(obj))
        return {c: [obj.get(c) for obj in records] for c in names}
    raise ValueError(f"unsupported table type {path.suffix!r} for {path}; use .csv, .parquet or .jsonl")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and v != v)


def _numeric_column(name: str, values: list[Any]) -> np.ndarray | None:
    """float64 values, or None when some present cell is not a number; missing cells raise."""
    out = np.empty(len(values))
    gaps = []
    for i, v in enumerate(values):
        if _missing(v):
            gaps.append(i)
            continue
        if isinstance(v, (list, dict)):
            return None
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return None
    if gaps:
        raise ValueError(f"column {name!r} has missing values in data rows {gaps[:5]}"
                         f"{' ...' if len(gaps) > 5 else ''}; fill or drop them")
    return out


def image_folder_files(folder: PathLike) -> tuple[list[str], list[str]]:
    """The images of ``<folder>/<class name>/<file>``, in the order :func:`load_image_folder` reads them.

    Returns ``(files, class_names)``: paths relative to ``folder`` (``"cat/001.png"``), classes in
    sorted order and files sorted within each class; ``class_names`` sorted. Hidden entries
    (starting with ``.``) are skipped; any other file that is not an image raises.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} not found")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder} has no class sub-folders; expected <folder>/<class name>/<image file>")
    files: list[str] = []
    for c in classes:
        members = sorted(p for p in (folder / c).iterdir() if not p.name.startswith("."))
        for p in members:
            if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{p} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        if not members:
            raise ValueError(f"class folder {folder / c} holds no images")
        files.extend(f"{c}/{p.name}" for p in members)
    return files, classes


def load_image_folder(folder: PathLike, *, image_size: int | tuple[int, int] | None = None,
                      test_size: float = 0.2, seed: int = 0) -> Dataset:
    """Images laid out as ``<folder>/<class name>/<file>`` as a :class:`Dataset` of images.

    Pixels are float32 in [0, 1], channels first: shape (n, 1, H, W) when every image is
    greyscale, else (n, 3, H, W) (RGB; transparency dropped). All images must share one size
    unless ``image_size`` (an int for a square, or (height, width)) resizes them (bilinear).
    Class names are the sub-folder names in sorted order (label k is ``class_names[k]``).
    Needs Pillow (``pip install pillow``).
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("reading image folders needs Pillow: pip install pillow") from exc
    folder = Path(folder)
    files, classes = image_folder_files(folder)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(f"image_size must be a positive int or (height, width); got {image_size!r}")
    images = []
    for f in files:
        with Image.open(folder / f) as im:
            im.load()
            images.append(im)
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    size = (image_size[1], image_size[0]) if image_size is not None else images[0].size  # PIL: (w, h)
    pixels = []
    for f, im in zip(files, images):
        im = im.convert("L" if grey else "RGB")
        if im.size != size:
            if image_size is None:
                raise ValueError(f"images differ in size: {files[0]} is {size[0]}×{size[1]} but {f} is "
                                 f"{im.size[0]}×{im.size[1]} (width×height); pass image_size (--image-size)")
            im = im.resize(size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        pixels.append(a[None] if grey else a.transpose(2, 0, 1))
    x = np.stack(pixels)
    y = np.array([f.split("/", 1)[0] for f in files])
    return make_dataset(x, y, name=folder.name, test_size=test_size, seed=seed)


def load_file(path: PathLike, *, labels: PathLike | None = None, label_column: str | None = None,
              text_column: str | None = None, test_size: float = 0.2, seed: int = 0,
              image_size: int | tuple[int, int] | None = None) -> Dataset:
    """Your own labelled data as a :class:`Dataset`, split by :func:`stratified_split`.

    - A table (``.csv``, ``.parquet``, ``.jsonl``): the label column is ``label_column``, else a
      column named ``"label"``, else the last column. With ``text_column`` the features are that
      column's raw texts (a list of str; other columns are ignored); else, when exactly one other
      column is not numeric it is taken as the text column; else every other column must be
      numeric and the features are float32 of shape (n, columns).
    - ``.npy``: features of shape (n, ...) (kept as stored; no pickles) with ``labels`` a ``.npy``
      of shape (n,), or a ``.csv``/``.parquet`` table whose label column is picked as above.
    - A folder: images as ``<folder>/<class name>/<file>`` (:func:`load_image_folder`).

    Labels may be strings or numbers. Classes are numbered in **sorted order** of the label values
    (numerically when every label is a number, else as strings): label k is ``class_names[k]``,
    the same order on every run whatever the row order. ``test_size`` of the rows (stratified,
    seeded by ``seed``) form the test part.
    """
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, image_size=image_size, test_size=test_size, seed=seed)
    if path.suffix not in FILE_SUFFIXES:
        raise ValueError(f"unsupported data file {str(path)!r}; use one of {FILE_SUFFIXES} or an image folder "
                         "laid out as <folder>/<class name>/<file>")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found")
    if path.suffix == ".npy":
        if labels is None:
            raise ValueError(f"{path} holds features only; give the labels too (labels= / --labels y.npy)")
        x, y = load_arrays(path, labels, mmap=False, label_column=label_column)
        assert y is not None
        return make_dataset(x, y, name=path.stem, test_size=test_size, seed=seed)
    if labels is not None:
        raise ValueError(f"labels= is for .npy features; {path.name} holds its labels in a column")
    table = read_table(path)
    columns = list(table)
    if label_column is not None and label_column not in table:
        raise ValueError(f"label column {label_column!r} not in {path}; columns are {columns}")
    label = label_column if label_column is not None else ("label" if "label" in table else columns[-1])
    raw_y = table[label]
    gaps = [i for i, v in enumerate(raw_y) if _missing(v)]
    if gaps:
        raise ValueError(f"label column {label!r} of {path} is empty in data rows {gaps[:5]}")
    numeric_y = _numeric_column(label, raw_y)
    y = _as_labels(numeric_y) if numeric_y is not None else np.array([str(v) for v in raw_y])
    features = [c for c in columns if c != label]
    if text_column is None:
        if not features:
            raise ValueError(f"{path} has only the label column {label!r}; no features")
        numeric = {c: _numeric_column(c, table[c]) for c in features}
        text_like = [c for c, v in numeric.items() if v is None]
        if len(text_like) > 1:
            raise ValueError(f"columns {text_like} of {path} are not numeric; name the one text column with "
                             f"text_column (--text-column) or encode them as numbers")
        if not text_like:
            x = np.stack([numeric[c] for c in features], axis=1).astype(np.float32)
            return make_dataset(x, y, name=path.stem, test_size=test_size, seed=seed, feature_names=features)
        text_column = text_like[0]
    if text_column not in table or text_column == label:
        raise ValueError(f"text column {text_column!r} not among the feature columns {features} of {path}")
    texts = table[text_column]
    bad = [i for i, v in enumerate(texts) if not isinstance(v, str)]
    if bad:
        raise ValueError(f"text column {text_column!r} holds a non-text value in data row {bad[0]}: "
                         f"{texts[bad[0]]!r}")
    return make_dataset(list(texts), y, name=path.stem, test_size=test_size, seed=seed,
                        feature_names=(text_column,))


def is_data_path(name: Any) -> bool:
    """Whether ``name`` names a file or folder of your own data rather than a built-in dataset."""
    if isinstance(name, os.PathLike):
        return True
    if not isinstance(name, str):
        return False
    return Path(name).suffix in FILE_SUFFIXES or os.sep in name or "/" in name or Path(name).is_dir()


# ---------------------------------------------------------------- the one name table

def _load_digits_entry(root: PathLike | None = None, **kw: Any) -> Dataset:
    return load_digits(**kw)  # digits ships with scikit-learn; root is irrelevant


_TABLE: MappingProxyType[str, Callable[..., Dataset]] = MappingProxyType({
    "digits": _load_digits_entry,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    **{name: partial(load_pmlb, name) for name in PMLB_NAMES},
    "sms-spam": load_sms_spam,
})

#: Names accepted by :func:`load` (``"fashion_mnist"`` and ``"sms_spam"`` are accepted too).
DATASETS: tuple[str, ...] = tuple(_TABLE)


def load(name: str | os.PathLike[str], root: PathLike | None = None, **kw: Any) -> Dataset:
    """Load a dataset by name; ``kw`` go to its loader (e.g. ``seed=``, ``flatten=``).

    A path (a ``.csv``/``.parquet``/``.jsonl``/``.npy`` file or an image folder) is read by
    :func:`load_file` instead (``root`` is then unused): ``load("my.csv", label_column="y")``.
    ``load("mnist", flatten=False)`` keeps MNIST's images as images, shape (n, 1, 28, 28).
    """
    if is_data_path(name):
        return load_file(name, **kw)
    canonical = folder_name(name) if isinstance(name, str) else name
    if canonical not in _TABLE:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}, or give a path to your own "
                         f"data (a .csv/.parquet/.jsonl/.npy file or an image folder; --data on the command line)")
    return _TABLE[canonical](root, **kw)
