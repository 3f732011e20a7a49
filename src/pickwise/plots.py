"""Learning-curve figures (matplotlib is imported only here, and only when plotting)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

#: figures are saved at this resolution (dots per inch)
DPI = 150
#: a qualitative palette (Okabe–Ito) and markers: curves differ in colour and marker; black is the reference
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#BCBD22", "#9467BD",
           "#17BECF")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


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
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=DPI)
    xs_all: set[float] = set()
    for i, (name, runs) in enumerate(curves.items()):
        xs = np.asarray(runs[0][0], dtype=float)
        xs_all.update(xs.tolist())
        ys = np.array([np.asarray(r[1], dtype=float) for r in runs])
        mean = ys.mean(axis=0)
        if name == "random":  # the reference: dashed black
            style = {"color": "black", "ls": "--", "marker": None}
        else:
            style = {"color": PALETTE[i % len(PALETTE)], "ls": "-", "marker": MARKERS[i % len(MARKERS)]}
        ax.plot(xs, mean, ms=3.5, lw=1.3, label=f"{name} (n={len(runs)})", **style)
        if len(runs) > 1:
            se = ys.std(axis=0, ddof=1) / np.sqrt(len(runs))
            ax.fill_between(xs, mean - se, mean + se, color=style["color"], alpha=0.15, lw=0)
    if 0 < len(xs_all) <= 12:  # a tick on every checkpoint where they fit
        ticks = sorted(xs_all)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel("labelled items")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)  # outside the data
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
