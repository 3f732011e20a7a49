"""Names a package exports but imports only on first use (so ``import pickwise`` stays light)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str], names: list[str]) -> tuple[
        Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps a name to the relative module holding it.

    Use as ``__getattr__, __dir__ = lazy_attributes(__name__, {"TorchClassifier": ".torch"}, __all__)``.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            from importlib import import_module

            return getattr(import_module(table[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
