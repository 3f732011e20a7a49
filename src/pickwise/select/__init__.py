"""Batch selection algorithms over arrays: one file each."""

from .topk import top_k, top_k_reference

__all__ = ["top_k", "top_k_reference"]
