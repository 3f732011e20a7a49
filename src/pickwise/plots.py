"""Learning-curve figures (matplotlib is imported only here, and only when plotting)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'pickwise[plot]'") from e
    return plt


def learning_curves(
    curves: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    path: str | os.PathLike[str],
    *,
    metric: str = "accuracy",
    title: str = "",
) -> None:
    """Plot mean ± standard error over runs for each name in ``curves``.

    ``curves[name]`` is a list of runs, each a pair (n_labeled, values) with the same n_labeled.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name, runs in curves.items():
        xs = np.asarray(runs[0][0], dtype=float)
        ys = np.array([np.asarray(r[1], dtype=float) for r in runs])
        mean = ys.mean(axis=0)
        ax.plot(xs, mean, marker="o", ms=3, label=f"{name} (n={len(runs)})")
        if len(runs) > 1:
            se = ys.std(axis=0, ddof=1) / np.sqrt(len(runs))
            ax.fill_between(xs, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("labelled items")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
