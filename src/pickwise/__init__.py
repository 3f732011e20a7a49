"""pickwise: decide which data to label, from a pool or a stream, and measure whether it beats random.

Importing pickwise has no side effects and imports neither torch nor matplotlib.
"""

__version__ = "0.1.0"

from .loop import initial_pool, pool_rounds, replay_pool
from .metrics import holdout
from .oracle import SimulatedOracle
from .pool import Pool
from .records import RoundRecord, load_records
from .strategies import MCDropout, Random, Uncertainty

__all__ = [
    "__version__",
    "MCDropout",
    "Pool",
    "Random",
    "RoundRecord",
    "SimulatedOracle",
    "Uncertainty",
    "holdout",
    "initial_pool",
    "load_records",
    "pool_rounds",
    "replay_pool",
]
