"""Helpers of TorchClassifier: inspecting and instrumenting an ``nn.Module`` (head, dropout masks,
seeded RNG) and reading its inputs (arrays, map-style ``Dataset``s, ``DataLoader``s).

Inputs
------
* numpy / memory-mapped arrays and other row sequences are indexed with :func:`pickwise.utils.take`;
* a map-style ``torch.utils.data.Dataset`` is read item by item; an item that is a tuple or list is
  ``(x, y, ...)`` (``y`` is the label, later fields are ignored), anything else is ``x`` alone;
  tensors and arrays are both accepted;
* a ``DataLoader`` is iterated as it is; its batches are ``x`` or ``(x, y, ...)`` like the items.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..utils import derive_seed, n_items, take

_CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_UNSUPPORTED_DROPOUT = (nn.AlphaDropout, nn.FeatureAlphaDropout)


class MaskSource:
    """Dropout keep-masks scaled by 1/(1-p), seeded by (seed, draw, layer, call[, chunk]).

    ``call`` counts the layer's applications within one forward pass, so a dropout module used
    twice gets two independent masks, as it would in training.
    """

    def __init__(self, seed: int, consistent: bool) -> None:
        self.seed, self.consistent = seed, consistent
        self.t = self.chunk = 0
        self._calls: dict[int, int] = {}
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    def start_draw(self, t: int) -> None:
        self.t = t
        self._calls.clear()

    def __call__(self, layer_index: int, layer: nn.Module, inp: torch.Tensor) -> torch.Tensor:
        call = self._calls.get(layer_index, 0)
        self._calls[layer_index] = call + 1
        key = (self.t, layer_index, call) if self.consistent else (self.t, layer_index, call, self.chunk)
        if key in self._cache:
            return self._cache[key]
        feature_shape = tuple(inp.shape[1:])
        if isinstance(layer, _CHANNEL_DROPOUT):  # one draw per channel, as those layers do
            feature_shape = feature_shape[:1] + (1,) * (len(feature_shape) - 1)
        lead = 1 if self.consistent else inp.shape[0]
        gen = torch.Generator().manual_seed(derive_seed(self.seed, *key))
        keep = torch.rand((lead, *feature_shape), generator=gen) >= layer.p
        scale = 1.0 / (1.0 - layer.p) if layer.p < 1 else 0.0
        mask = (keep.to(torch.float64) * scale).to(device=inp.device, dtype=inp.dtype)
        if self.consistent:  # shared by every chunk
            self._cache[key] = mask
        return mask


@contextmanager
def seeded_global_rng(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Run the block with torch's global RNG seeded by ``seed``, restoring the previous state after.

    For parameter initialisation and training-time dropout, which draw from the global RNG. On CPU
    only the CPU generator is forked and seeded; otherwise every device's generator is.
    """
    if torch.device(device).type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng():
            # inside the fork: every generator is restored when the block ends
            torch.default_generator.manual_seed(seed)
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(seed)
            yield


def find_head(net: nn.Module, name: str | None) -> tuple[str, nn.Linear]:
    """(name, module) of the head: the submodule called ``name``, else the last ``nn.Linear``."""
    if name is not None:
        try:
            mod = net.get_submodule(name)
        except AttributeError:
            raise ValueError(f"head={name!r} is not a submodule of {type(net).__name__}") from None
        if not isinstance(mod, nn.Linear):
            raise ValueError(f"head={name!r} is a {type(mod).__name__}, not an nn.Linear")
        return name, mod
    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no nn.Linear layer to serve as the head")
    return linears[-1]


def dropout_layers(net: nn.Module) -> list[nn.Module]:
    """Dropout modules with p > 0, in registration order."""
    layers = []
    for name, m in net.named_modules():
        if isinstance(m, _UNSUPPORTED_DROPOUT) and m.p > 0:
            raise ValueError(f"{type(m).__name__} ({name!r}) is not supported for MC dropout; use nn.Dropout")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            layers.append(m)
    return layers


def check_head_is_output(net: nn.Module, head: nn.Linear, xb: torch.Tensor) -> None:
    """Raise unless the head's output is the module's output (logits)."""
    seen: dict[str, torch.Tensor] = {}
    handle = head.register_forward_hook(lambda mod, args, out: seen.__setitem__("z", out))
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            out = net(xb)
    finally:
        handle.remove()
        net.train(was_training)
    if "z" not in seen or seen["z"].shape != out.shape or not torch.equal(seen["z"], out):
        raise ValueError(
            f"the head (last nn.Linear) of {type(net).__name__} does not produce the module's output; "
            "the module must end with its linear head (return logits), or pass head='name'"
        )


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy per row, shape (m,)."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def softmax64(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis in float64, so rows sum to one to double precision."""
    return torch.softmax(logits.to(torch.float64), dim=-1)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of ``t``."""
    return t.detach().to("cpu", torch.float64).numpy()


# ---------------------------------------------------------------- inputs


def is_loader(x: Any) -> bool:
    """A ``torch.utils.data.DataLoader``."""
    return isinstance(x, torch.utils.data.DataLoader)


def is_dataset(x: Any) -> bool:
    """A map-style torch ``Dataset`` (items addressed by integer index)."""
    return isinstance(x, torch.utils.data.Dataset) and not isinstance(x, torch.utils.data.IterableDataset)


def split_item(item: Any, what: str = "item") -> tuple[Any, Any]:
    """``(x, y)`` of a dataset item or a loader batch: a tuple/list is ``(x, y, ...)``, else ``(item, None)``."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise ValueError(f"a dataset {what} is an empty {type(item).__name__}; expected x or (x, y)")
        return item[0], (item[1] if len(item) > 1 else None)
    if isinstance(item, dict):
        raise ValueError(f"dataset {what}s must be x or (x, y); got a dict with keys {sorted(item)[:5]}")
    return item, None


def as_numpy(v: Any) -> np.ndarray:
    """A numpy view (or copy) of a tensor, array or nested sequence."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def n_rows(x: Any) -> int:
    """Number of items of an input; a ``DataLoader`` counts the items it yields, not its batches."""
    if is_loader(x):
        return scoring_loader_size(x)
    return n_items(x)


def fetch_rows(x: Any, idx: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """(rows ``idx`` of ``x``, their labels when the items carry them, else None).

    Arrays are fancy-indexed, datasets read item by item (so only these rows are ever loaded).
    """
    if isinstance(x, np.ndarray):
        return x[idx], None
    if not is_dataset(x):
        return take(x, idx), None
    pairs = [split_item(x[int(i)]) for i in idx]
    if not pairs:
        return np.empty((0,)), None
    rows = np.stack([as_numpy(p[0]) for p in pairs])
    if any(p[1] is None for p in pairs):
        return rows, None
    return rows, np.asarray([as_numpy(p[1]) for p in pairs])


_RANDOM_SAMPLERS = (
    torch.utils.data.RandomSampler,
    torch.utils.data.SubsetRandomSampler,
    torch.utils.data.WeightedRandomSampler,
)


def scoring_loader_size(loader: Any) -> int:
    """Items a ``DataLoader`` yields in order, or a ValueError when it cannot be scored item by item."""
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        raise ValueError("scoring needs a DataLoader over a map-style Dataset; got an IterableDataset")
    batch_sampler = loader.batch_sampler
    if batch_sampler is None:
        raise ValueError("scoring needs a DataLoader that yields batches; got one with batch_size=None")
    samplers = (loader.sampler, getattr(batch_sampler, "sampler", None))
    if any(isinstance(s, _RANDOM_SAMPLERS) for s in samplers):
        kind = next(type(s).__name__ for s in samplers if isinstance(s, _RANDOM_SAMPLERS))
        raise ValueError(
            f"scoring needs a DataLoader that yields items in order, but this one shuffles ({kind}); "
            "build it with shuffle=False, or pass the Dataset itself"
        )
    if getattr(batch_sampler, "drop_last", False):
        raise ValueError("scoring needs every item; got a DataLoader with drop_last=True")
    if loader.batch_size is not None:
        return len(loader.sampler)
    return sum(len(b) for b in batch_sampler)


def loader_batches(loader: Any) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(x rows, labels or None) of each batch of ``loader``, as numpy arrays."""
    for batch in loader:
        xb, yb = split_item(batch, "batch")
        yield as_numpy(xb), (None if yb is None else as_numpy(yb))
