"""pickwise: decide which data to label, from a pool or a stream, and measure whether it beats random.

Every pool strategy is importable from here under the class name of its catalog entry
(``pickwise.BADGE`` is ``--strategy badge``, ``pickwise.CoreSet`` is ``coreset``; score-based
names such as ``margin`` are ``Uncertainty(score="margin")``; the whole table is
:data:`pickwise.catalog.STRATEGY_TABLE`).

Importing pickwise has no side effects and imports neither torch nor matplotlib: the model
adapters (``TorchClassifier``, ``SklearnClassifier``) and :func:`load` are imported on first use.
"""

from __future__ import annotations

from ._lazy import lazy_attributes

__version__ = "0.1.0"

from .loop import initial_pool, pool_rounds, replay_pool
from .metrics import holdout
from .oracle import SimulatedOracle
from .pool import Pool
from .records import RoundRecord, load_records
from .strategies import (
    ALBL,
    BADGE,
    BAIT,
    DBAL,
    EGL,
    QBC,
    EPIG,
    BatchBALD,
    BatchEPIG,
    ClusterMargin,
    Committee,
    CoreSet,
    InformationDensity,
    MCDropout,
    ProbCover,
    Random,
    StochasticBatch,
    TypiClust,
    Uncertainty,
)
from .threads import limit_threads
from .wrappers import Subsample

# name -> module; imported on first attribute access (they pull in scikit-learn or torch)
_LAZY = {
    "SklearnClassifier": ".adapters",
    "TorchClassifier": ".adapters",
    "load": ".data",
}

__all__ = [
    "__version__",
    "ALBL",
    "BADGE",
    "BAIT",
    "BatchBALD",
    "BatchEPIG",
    "ClusterMargin",
    "Committee",
    "CoreSet",
    "DBAL",
    "EGL",
    "EPIG",
    "InformationDensity",
    "MCDropout",
    "Pool",
    "ProbCover",
    "QBC",
    "Random",
    "RoundRecord",
    "SimulatedOracle",
    "SklearnClassifier",
    "StochasticBatch",
    "Subsample",
    "TorchClassifier",
    "TypiClust",
    "Uncertainty",
    "holdout",
    "initial_pool",
    "limit_threads",
    "load",
    "load_records",
    "pool_rounds",
    "replay_pool",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
