"""Batch selection algorithms over arrays: one file each."""

from .epig import batch_epig_scores, batch_epig_select, epig_scores
from .bait import BaitTrace, bait_greedy, bait_select, fisher_rows, mean_fisher
from .batchbald import batchbald_scores, batchbald_select, conditional_entropies
from .kcenter import kcenter_greedy, min_sq_distances, nearest_centres
from .kmeanspp import kmeanspp_seeding, sample_d2
from .stochastic import STOCHASTIC_MODES, stochastic_batch, stochastic_log_weights
from .topk import top_k, top_k_reference
from .wkmeans import nearest_distinct, weighted_kmeans_select

__all__ = [
    "STOCHASTIC_MODES",
    "BaitTrace",
    "bait_greedy",
    "bait_select",
    "batch_epig_scores",
    "batch_epig_select",
    "batchbald_scores",
    "batchbald_select",
    "conditional_entropies",
    "epig_scores",
    "fisher_rows",
    "kcenter_greedy",
    "kmeanspp_seeding",
    "mean_fisher",
    "min_sq_distances",
    "nearest_centres",
    "nearest_distinct",
    "sample_d2",
    "stochastic_batch",
    "stochastic_log_weights",
    "top_k",
    "top_k_reference",
    "weighted_kmeans_select",
]
