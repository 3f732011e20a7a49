"""Pool strategies: small frozen dataclasses built from scores and selection algorithms."""

from .basic import MCDropout, Random, Uncertainty

__all__ = ["MCDropout", "Random", "Uncertainty"]
