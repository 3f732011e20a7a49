"""Model adapters: wrap a PyTorch module or a scikit-learn estimator as a pickwise model.

``SklearnClassifier`` is imported eagerly; the torch-backed names (``TorchClassifier``, ``mlp``,
``small_cnn``) are imported on first use, so ``import pickwise.adapters`` does not import torch.
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .sklearn import SklearnClassifier

_TORCH_NAMES = {"TorchClassifier": ".torch", "mlp": ".nets", "small_cnn": ".nets"}

__all__ = ["SklearnClassifier", "TorchClassifier", "mlp", "small_cnn"]


__getattr__, __dir__ = lazy_attributes(__name__, _TORCH_NAMES, __all__)
