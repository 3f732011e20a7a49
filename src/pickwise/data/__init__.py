"""Datasets for active-learning experiments.

Loaders return a :class:`Dataset` (train/test arrays, int64 labels ``0..K-1``). Your own labelled
files (CSV, Parquet, JSON Lines, ``.npy`` pairs, image folders) load with :func:`load_file` or
``load(path)``; classes are numbered in sorted order of the label values. Built-in files live under
:func:`data_root`: the ``root`` argument, else ``$PICKWISE_DATA``, else ``~/.cache/pickwise``.
:func:`download` fetches the official files and checks their SHA-256; :func:`verify` re-checks
local files offline. pandas/pyarrow are imported only when a ``.parquet`` file is read.

Note: ``pickwise.data.download`` is the function; the module of the same name is reachable as
``importlib.import_module("pickwise.data.download")``.
"""

from .download import download, sha256_file, verify
from .loaders import (
    DATASETS,
    FILE_SUFFIXES,
    IMAGE_SUFFIXES,
    Dataset,
    image_folder_files,
    is_data_path,
    load,
    load_arrays,
    load_digits,
    load_fashion_mnist,
    load_file,
    load_image_folder,
    load_mnist,
    load_pmlb,
    load_sms_spam,
    make_dataset,
    read_idx,
    read_table,
    stratified_split,
    text_features,
)
from .sources import PMLB_NAMES, SOURCES, data_root

__all__ = [
    "DATASETS", "FILE_SUFFIXES", "IMAGE_SUFFIXES", "Dataset", "PMLB_NAMES", "SOURCES", "data_root", "download",
    "image_folder_files", "is_data_path", "load", "load_arrays", "load_digits", "load_fashion_mnist", "load_file",
    "load_image_folder", "load_mnist", "load_pmlb", "load_sms_spam", "make_dataset", "read_idx", "read_table",
    "sha256_file", "stratified_split", "text_features", "verify",
]
