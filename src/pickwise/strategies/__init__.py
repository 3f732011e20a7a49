"""Pool strategies: small frozen dataclasses built from scores and selection algorithms.

Each class is also exported from ``pickwise``; :data:`pickwise.catalog.STRATEGY_TABLE` maps the
command-line names to them (``badge`` → :class:`BADGE`, ``margin`` →
``Uncertainty(score="margin")``, ...). None of these modules imports torch.
"""

from ..committee import QBC, Committee
from .albl import ALBL
from .basic import MCDropout, Random, Uncertainty
from .batch import BADGE, BAIT, DBAL, EGL, BatchBALD, CoreSet, InformationDensity, StochasticBatch
from .cluster_margin import ClusterMargin
from .coldstart import ProbCover, TypiClust
from .epig import EPIG, BatchEPIG

__all__ = [
    "ALBL",
    "BADGE",
    "BAIT",
    "DBAL",
    "EGL",
    "EPIG",
    "QBC",
    "BatchBALD",
    "BatchEPIG",
    "ClusterMargin",
    "Committee",
    "CoreSet",
    "InformationDensity",
    "MCDropout",
    "ProbCover",
    "Random",
    "StochasticBatch",
    "TypiClust",
    "Uncertainty",
]
