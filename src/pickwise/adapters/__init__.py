"""Model adapters: wrap a PyTorch module or a scikit-learn estimator as a pickwise model.

``SklearnClassifier`` is imported eagerly; the torch-backed names (``TorchClassifier``, ``mlp``,
``small_cnn``) are imported on first use, so ``import pickwise.adapters`` does not import torch.
"""

from __future__ import annotations

from typing import Any

from .sklearn import SklearnClassifier

_TORCH_NAMES = {"TorchClassifier": ".torch", "mlp": ".nets", "small_cnn": ".nets"}

__all__ = ["SklearnClassifier", "TorchClassifier", "mlp", "small_cnn"]


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from importlib import import_module

        return getattr(import_module(_TORCH_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
