"""Inspecting and instrumenting an ``nn.Module`` for TorchClassifier: head, dropout masks, seeded RNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..utils import derive_seed

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
