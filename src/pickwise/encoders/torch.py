"""Any torch backbone as a frozen encoder, and image folders read through PIL.

    files = images_from_folder("photos/")                 # ids: sorted relative paths
    enc = TorchEncoder(backbone, ImageToTensor(size=224), name="resnet18-imagenet")
    x = embed_cached(enc, files, files.item_ids, "cache/")  # float32 (n, dim)

``preprocess`` maps one item (a ``PIL.Image`` for image folders) to a tensor; the items of a batch
are stacked and run through the module in eval mode under ``torch.no_grad``. Outputs with more than
two axes are flattened per item.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ._common import INSTALL_HINT, check_n_threads, hash_state_dict, inference, stable_repr

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError(f"pickwise.encoders.torch needs PyTorch: {INSTALL_HINT}") from err

__all__ = ["ImageFiles", "ImageToTensor", "TorchEncoder", "images_from_folder"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


class TorchEncoder:
    """A torch ``nn.Module`` backbone plus a per-item preprocessing function, as a frozen encoder.

    Parameters
    ----------
    module : nn.Module
        Maps a stacked batch (m, ...) to features (m, dim) (or (m, ...) flattened to (m, dim)).
        ``encode`` puts it in eval mode and on ``device`` (restoring its training flag afterwards).
    preprocess : callable
        One item → tensor (or array) of the module's per-item input shape.
    batch_size : int
    name : str or None
        Shown in the fingerprint (default: the module's class name). The fingerprint hashes the
        weights and describes ``preprocess`` by its qualified name or repr: give a new ``name`` when
        you change what a same-named preprocessing function does.
    device : str
    n_threads : int or None
        Torch intra-op threads while encoding (restored afterwards); None leaves the current setting.
    """

    def __init__(
        self,
        module: nn.Module,
        preprocess: Callable[[Any], Any],
        *,
        batch_size: int = 64,
        name: str | None = None,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.module = module
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.name = name
        self.device = device
        self.n_threads = n_threads

    def __repr__(self) -> str:
        return f"TorchEncoder({self.name or type(self.module).__name__})"

    def _check(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise ValueError(f"module must be a torch.nn.Module; got {type(self.module).__name__}")
        if not callable(self.preprocess):
            raise ValueError(f"preprocess must be callable; got {self.preprocess!r}")
        check_positive_int("batch_size", self.batch_size)
        check_n_threads(self.n_threads)
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"name must be a str or None; got {self.name!r}")

    @property
    def dim(self) -> int:
        """Width of an embedding; known once ``encode`` has run (the input shape is the preprocess's)."""
        if not hasattr(self, "dim_"):
            raise RuntimeError("TorchEncoder.dim is known after the first encode(items)")
        return self.dim_

    @property
    def fingerprint(self) -> str:
        """Name, a hash of the module's parameters and buffers, and the preprocessing's description."""
        self._check()
        return (
            f"torch|name={self.name or type(self.module).__name__}|weights={hash_state_dict(self.module)}"
            f"|preprocess={stable_repr(self.preprocess)}|float32"
        )

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """Embeddings of ``items`` (n items ``preprocess`` accepts), float32 ndarray of shape (n, dim)."""
        self._check()
        if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
            raise ValueError(f"items must be a sequence; got {type(items).__name__}")
        n = len(items)
        chunks: list[np.ndarray] = []
        was_training = self.module.training
        self.module.to(self.device).eval()
        try:
            with inference(self.n_threads):
                for start in range(0, n, self.batch_size):
                    xs = [self._input(items[i], i) for i in range(start, min(start + self.batch_size, n))]
                    out = self.module(torch.stack(xs).to(self.device))
                    if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != len(xs):
                        raise ValueError(
                            f"module must return a tensor of shape ({len(xs)}, dim); got "
                            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
                        )
                    chunks.append(out.reshape(len(xs), -1).float().cpu().numpy())
        finally:
            self.module.train(was_training)
        if not chunks:
            return np.empty((0, getattr(self, "dim_", 0)), dtype=np.float32)
        self.dim_ = int(chunks[0].shape[1])
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)

    def _input(self, item: Any, i: int) -> torch.Tensor:
        x = self.preprocess(item)
        if not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(np.asarray(x))
            except (TypeError, ValueError) as err:
                raise ValueError(f"preprocess(items[{i}]) must return a tensor or array; got {type(x).__name__}") from err
        return x.float() if not x.is_floating_point() else x


@dataclass(frozen=True)
class ImageToTensor:
    """PIL image → float tensor (C, H, W) in [0, 1], optionally resized and standardised.

    ``size``: an int (square) or (width, height), resized bilinearly; ``mean``/``std``: per-channel
    values subtracted and divided after scaling (e.g. ImageNet's). Its repr is its fingerprint.
    """

    size: int | tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image

        if self.size is not None:
            wh = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
            image = image.resize(wh, Image.BILINEAR)
        arr = np.asarray(image, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr[:, :, None] if arr.ndim == 2 else arr).permute(2, 0, 1).contiguous()
        if self.mean is not None:
            t = t - torch.tensor(self.mean, dtype=t.dtype).view(-1, 1, 1)
        if self.std is not None:
            t = t / torch.tensor(self.std, dtype=t.dtype).view(-1, 1, 1)
        return t


@dataclass(frozen=True)
class ImageFiles(Sequence):
    """Image files under ``root``: ``item_ids`` are their relative POSIX paths, sorted.

    ``files[i]`` opens file ``i`` through PIL, converted to ``mode`` (decoded at once, file closed).
    """

    root: Path
    item_ids: tuple[str, ...]
    mode: str | None = "RGB"

    def __len__(self) -> int:
        return len(self.item_ids)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        from PIL import Image

        with Image.open(self.path(i)) as im:
            im.load()
            return im.convert(self.mode) if self.mode is not None else im.copy()

    def path(self, i: int) -> Path:
        """Absolute path of file ``i``."""
        return self.root / self.item_ids[i]


def images_from_folder(
    folder: str | os.PathLike[str],
    exts: Sequence[str] = IMAGE_EXTS,
    *,
    mode: str | None = "RGB",
) -> ImageFiles:
    """Every file under ``folder`` (recursively) whose extension is in ``exts`` (any case).

    Ids are paths relative to ``folder`` with "/" separators, sorted, so they stay the same on every
    machine and when files are added. Hidden files and folders (names starting with ".") are skipped.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"images_from_folder: {str(folder)!r} is not a directory")
    if isinstance(exts, str) or not exts:
        raise ValueError(f"exts must be a non-empty sequence of extensions like '.png'; got {exts!r}")
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in exts}
    ids = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in wanted and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not ids:
        raise ValueError(f"no files with extensions {sorted(wanted)} under {str(folder)!r}")
    return ImageFiles(root.resolve(), tuple(ids), mode)
