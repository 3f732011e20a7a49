"""The local engine: shard states kept as a list of dicts of numpy arrays in this process."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import numpy as np

from .base import Loader, new_state, offsets, split_arrays

__all__ = ["LocalEngine"]


class LocalEngine:
    """Shards held in this process; ``map`` runs them one after the other (numpy does the work).

    Build it with :meth:`from_arrays` (split a pool into ``n_shards`` contiguous shards) or
    :meth:`from_loaders` (one callable per shard returning its arrays). With one shard every
    distributed algorithm runs the single-machine computation.
    """

    def __init__(self, shards: Sequence[Mapping[str, Any]]) -> None:
        self._states: list[dict[str, Any]] = []
        start = 0
        for arrays in shards:
            state = new_state(arrays, start)
            self._states.append(state)
            start += state["n"]
        if not self._states:
            raise ValueError("a LocalEngine needs at least one shard; got none")

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], *, n_shards: int = 1) -> LocalEngine:
        """Split equal-length ``arrays`` (name -> rows-first array) into ``n_shards`` shards."""
        return cls(split_arrays(arrays, n_shards))

    @classmethod
    def from_loaders(cls, loaders: Sequence[Loader]) -> LocalEngine:
        """One shard per loader, in order; each loader returns that shard's arrays."""
        return cls([load() for load in loaders])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Rows per shard, in pool order."""
        return tuple(s["n"] for s in self._states)

    @property
    def offsets(self) -> np.ndarray:
        """First global row of each shard."""
        return offsets(self.sizes)

    def broadcast(self, value: Any) -> Any:
        """In one process a value is already everywhere: returned as it is."""
        return value

    def map(self, fn: Callable[[dict, Any], Any], arg: Any = None) -> list[Any]:
        """``[fn(state_s, arg) for each shard s]``."""
        return [fn(s, arg) for s in self._states]

    def call(self, shard: int, fn: Callable[[dict, Any], Any], arg: Any = None) -> Any:
        """``fn(state_shard, arg)``."""
        return fn(self._states[shard], arg)

    def scan(
        self,
        fn: Callable[[dict, Any], tuple[Any, Any]],
        init: Any,
        *,
        prepare: Callable[[dict, Any], Any] | None = None,
        arg: Any = None,
    ) -> tuple[Any, list[Any]]:
        """``prepare(state_s, arg)`` on every shard, then ``carry, r_s = fn(state_s, carry)`` in order."""
        if prepare is not None:
            self.map(prepare, arg)
        carry, results = init, []
        for s in self._states:
            carry, r = fn(s, carry)
            results.append(r)
        return carry, results

    def close(self) -> None:
        """Drop the shard states."""
        self._states = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
