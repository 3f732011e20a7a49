"""Benchmarks: grid configs, a parallel resumable runner, the pairwise penalty matrix, label
amplification ratios and the report.

    from pickwise.bench import load_grid, run_grid, write_report
    run_grid(load_grid("benchmarks/paper.toml"), "results/", jobs=2)
    write_report("results/", "results/report")

Importing this package imports neither torch nor matplotlib.
"""

from .config import LIMITS, Cell, ConfigError, Grid, OwnDataset, load_grid, load_own_dataset, make_stream_selector, parse_grid
from .curves import Curve, MeanCurve, area_under_curve, mean_curve
from .lar import LAR, label_amplification, labels_to_reach
from .penalty import (
    PenaltyMatrix,
    SettingPenalty,
    checkpoints,
    kept_checkpoints,
    paired_win,
    penalty_matrix,
    setting_penalty,
)
from .report import LoadedRuns, Skipped, read_runs, validate_run, write_report
from .runner import GridSummary, load_runs, run_cell, run_grid

__all__ = [
    "LIMITS", "LoadedRuns", "OwnDataset", "Skipped", "load_own_dataset", "read_runs", "validate_run",
    "Cell", "ConfigError", "Curve", "Grid", "GridSummary", "LAR", "MeanCurve", "PenaltyMatrix", "SettingPenalty",
    "area_under_curve", "checkpoints", "kept_checkpoints", "label_amplification", "labels_to_reach", "load_grid",
    "load_runs", "make_stream_selector", "mean_curve", "paired_win", "parse_grid", "penalty_matrix", "run_cell",
    "run_grid", "setting_penalty", "write_report",
]
