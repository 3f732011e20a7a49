"""Small reference networks whose last layer is the linear head :class:`TorchClassifier` expects.

Both builders draw their initial weights from ``seed`` inside a forked RNG, so building a network
is deterministic and leaves torch's global RNG alone (``TorchClassifier.fit`` re-initialises from
its own seed anyway unless ``retrain=False``).
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from torch import nn
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError("pickwise.adapters.nets needs PyTorch: pip install 'pickwise[torch]'") from err

from .._validation import check_positive_int
from ._checks import check_n_classes, check_real, check_seed
from ._modules import seeded_global_rng


def mlp(
    n_features: int, n_classes: int, hidden: Sequence[int] = (128,), dropout: float = 0.0, *, seed: int = 0
) -> nn.Sequential:
    """Flatten → [Linear → ReLU → Dropout] per hidden width → Linear head.

    Input of shape (n, n_features) — or any (n, ...) that flattens to n_features; output logits of
    shape (n, n_classes); the penultimate width is ``hidden[-1]`` (``n_features`` without hidden
    layers). Dropout layers are left out when ``dropout == 0``; with ``dropout > 0`` the first one
    follows the first hidden layer, so head-only MC dropout reuses that layer's output for every draw.
    """
    widths = [check_positive_int("n_features", n_features)]
    widths += [check_positive_int("hidden width", h) for h in hidden]
    check_n_classes(n_classes)
    check_real("dropout", dropout, low=0.0, high=1.0)
    with seeded_global_rng(check_seed(seed)):
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], n_classes))
        return nn.Sequential(*layers)


def small_cnn(
    in_channels: int = 1,
    n_classes: int = 10,
    image_size: int = 28,
    dropout: float = 0.25,
    *,
    channels: tuple[int, int] = (16, 32),
    hidden: int = 128,
    seed: int = 0,
) -> nn.Sequential:
    """Two 3×3 conv blocks (Conv → ReLU → MaxPool 2) → Flatten → Linear → ReLU → Dropout → Linear head.

    Input of shape (n, in_channels, image_size, image_size) (TorchClassifier adds the channel axis
    to (n, H, W) input; flat rows need ``TorchClassifier(..., input_shape=(in_channels, image_size,
    image_size))``); output logits of shape (n, n_classes); penultimate width ``hidden``. The
    only dropout sits right before the head, so MC dropout runs the convolutions once per chunk.
    """
    check_positive_int("in_channels", in_channels)
    check_n_classes(n_classes)
    check_real("dropout", dropout, low=0.0, high=1.0)
    check_positive_int("hidden", hidden)
    if check_positive_int("image_size", image_size) < 4:
        raise ValueError(f"image_size must be >= 4 (two 2x2 poolings); got {image_size}")
    c1, c2 = (check_positive_int("channels", c) for c in channels)
    side = image_size // 2 // 2
    with seeded_global_rng(check_seed(seed)):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, n_classes))
        return nn.Sequential(*layers)
