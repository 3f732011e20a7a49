"""Frozen pretrained encoders and an on-disk embedding cache: bring your own model.

    from pickwise.encoders import SentenceEncoder, embed_cached, text_ids

    enc = SentenceEncoder()                                   # all-MiniLM-L6-v2, bundled, offline
    x = embed_cached(enc, texts, text_ids(texts), "cache/")   # float32 (n, 384), computed once

A small head trained on the features then runs the usual loop in seconds per round::

    make_model = lambda: SklearnClassifier(LogisticRegression(C=10, max_iter=1000), n_classes=2)
    rounds = pool_rounds(make_model, Uncertainty("margin"), x, pool, oracle=y, k=20)

Every encoder has ``fingerprint`` (a stable str naming the model, a hash of its weights or files,
pooling, normalisation, max_length), ``dim`` and ``encode(items) -> float32 (n, dim)``, run under
``torch.no_grad`` with ``n_threads`` torch threads when given. Needs the "encoders" extra:
``pip install 'pickwise[encoders]'``. Importing this package imports neither torch nor Hugging
Face; the torch-backed names load on first use.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._lazy import lazy_attributes
from .cache import cache_path, embed_cached
from .text import SentenceEncoder, encode_dataset, text_ids


@runtime_checkable
class Encoder(Protocol):
    """What :func:`embed_cached` needs of an encoder (``dim`` is informative)."""

    @property
    def fingerprint(self) -> str:
        """A stable description of everything that determines the embeddings."""

    @property
    def dim(self) -> int:
        """Width of an embedding."""

    def encode(self, items: Any) -> np.ndarray:
        """float32 ndarray of shape (len(items), dim)."""


_LAZY = {
    "HFEncoder": ".hf",
    "mean_pool": ".hf",
    "TorchEncoder": ".torch",
    "ImageFiles": ".torch",
    "ImageToTensor": ".torch",
    "images_from_folder": ".torch",
}

__all__ = [
    "Encoder",
    "HFEncoder",
    "ImageFiles",
    "ImageToTensor",
    "SentenceEncoder",
    "TorchEncoder",
    "cache_path",
    "embed_cached",
    "encode_dataset",
    "images_from_folder",
    "mean_pool",
    "text_ids",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
