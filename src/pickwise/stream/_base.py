"""What every pickwise stream selector shares: the query rate, counters, input checks, cloning.

The rate in effect for the t-th item (1-based), with ``n_queried`` queries made before it:

* fixed ``q`` (the stream length unknown): ``q``; with a ``budget`` too, ``0`` once the budget
  is spent (a hard cap);
* adaptive (``q`` is None, ``budget`` and ``length`` given, the authors' code):
  ``q_t = (budget − n_queried) / (length − t + 1)``, the remaining budget over the items not yet
  decided, this one included. It is 0 once the budget is spent, so a selector never exceeds it.

Every selector draws exactly one uniform from ``rng`` per item, in arrival order, whether or not it
needs it; ``observe_many`` draws them with one ``rng.random(n)``, which numpy's Generator makes
identical to ``n`` calls of ``rng.random()``. That is what lets the vectorised and the item-by-item
paths, and a resumed stream, take the same decisions under the same generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import _show, check_finite, check_positive_int


def check_rate(q: Any, budget: Any, length: Any) -> tuple[float | None, int | None, int | None]:
    """Validate a rate configuration; returns ``(q, budget, length)`` as float/int/None."""
    if q is not None:
        if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)):
            raise ValueError(f"q must be a number in (0, 1]; got {_show(q)}")
        q = float(q)
        if not (0.0 < q <= 1.0):  # also refuses NaN
            raise ValueError(f"q must be in (0, 1]; got {q!r}")
    if budget is not None:
        budget = check_positive_int("budget", budget, allow_zero=True)
    if length is not None:
        length = check_positive_int("length", length)
    if q is None and budget is not None and length is None:
        raise ValueError(
            f"budget={budget} without length: the adaptive rate (budget − queried)/(items left) needs the "
            "stream length; give length, or a fixed rate q (the budget then caps the count)"
        )
    if q is None and length is not None and budget is None:
        raise ValueError(f"length={length} without budget or q: give a fixed rate q, or a budget for the adaptive rate")
    return q, budget, length


def rate_at(q: float | None, budget: int | None, length: int | None, t: int, n_queried: int) -> float:
    """The query rate for the ``t``-th item (1-based) after ``n_queried`` queries (see the module doc)."""
    if budget is not None and n_queried >= budget:
        return 0.0
    if q is not None:
        return q
    return (budget - n_queried) / (length - t + 1)  # type: ignore[operator]


class StreamSelectorBase:
    """Rate, counters and checks; subclasses implement ``_observe_block`` and their state.

    Constructors store their keyword arguments (listed in ``_params``) and validate them; the
    per-stream state is allocated lazily on the first item.
    """

    _params: tuple[str, ...] = ("q", "budget", "length")

    def __init__(self, *, q: float | None = None, budget: int | None = None, length: int | None = None):
        self.q, self.budget, self.length = check_rate(q, budget, length)
        self.t = 0  # items seen
        self.n_queried = 0

    # -- configuration -------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._params}

    def clone(self, **changes: Any) -> StreamSelectorBase:
        """A fresh selector (no items seen) with the same configuration except ``changes``."""
        params = self.get_params()
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter {sorted(unknown)[0]!r}")
        params.update(changes)
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- rate ----------------------------------------------------------------------------------
    def _rate(self, t: int, n_queried: int) -> float:
        return rate_at(self.q, self.budget, self.length, t, n_queried)

    def _check_room(self, n: int) -> None:
        if self.q is None and self.budget is None:
            raise ValueError(
                f"{type(self).__name__} has no rate: give q, or budget and length "
                "(stream_segments sets them from its own budget)"
            )
        if self.length is not None and self.t + n > self.length:
            raise ValueError(
                f"the stream is longer than length={self.length}: {self.t} items seen, {n} more offered"
            )

    # -- inputs --------------------------------------------------------------------------------
    @staticmethod
    def _as_rows(z: Any, width: int | None, what: str = "(n, dim)") -> np.ndarray:
        arr = np.asarray(z)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"z must be numeric; got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"z must have shape {what}; got shape {arr.shape}")
        if width is not None and arr.shape[1] != width:
            raise ValueError(f"z must have {width} columns (the dimension seen first); got shape {arr.shape}")
        check_finite("z", arr)
        return np.ascontiguousarray(arr, dtype=np.float64)

    @staticmethod
    def _as_item(z: Any) -> np.ndarray:
        arr = np.asarray(z)
        if arr.ndim != 1:
            raise ValueError(f"observe takes one item, z of shape (dim,); got shape {arr.shape} (use observe_many)")
        return arr

    # -- the protocol --------------------------------------------------------------------------
    def observe(self, z: Any, *, rng: np.random.Generator) -> bool:
        """Decide, for good, whether to query one item with features ``z`` of shape (dim,)."""
        z = self._as_item(z)
        return bool(self.observe_many(z[None, :], rng=rng)[0])

    def observe_many(self, z: Any, *, rng: np.random.Generator) -> np.ndarray:
        """Decisions (bool array of shape (n,)) for ``n`` items arriving in order; z of shape (n, dim)."""
        rows = self._validate(z)
        self._check_room(rows.shape[0])
        u = rng.random(rows.shape[0])
        return self._observe_block(rows, u)

    def observe_uniforms(self, z: Any, u: Any) -> np.ndarray:
        """Decisions for ``n`` items with their coin flips given: ``u`` of shape (n,), values in [0, 1).

        ``observe_many(z, rng=rng)`` is ``observe_uniforms(z, rng.random(n))``; passing the uniforms
        lets a caller tie each item's coin to the item itself (``pickwise.stream.partitioned.id_uniforms``),
        so a replayed item gets the same flip whatever the partitioning or the restarts.
        """
        rows = self._validate(z)
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (rows.shape[0],):
            raise ValueError(f"u must have shape ({rows.shape[0]},), one uniform per item; got shape {u.shape}")
        if not np.all((u >= 0.0) & (u < 1.0)):
            bad = u[~((u >= 0.0) & (u < 1.0))][0]
            raise ValueError(f"u must hold uniforms in [0, 1); got {bad!r}")
        self._check_room(rows.shape[0])
        return self._observe_block(rows, u)

    def _validate(self, z: Any) -> np.ndarray:
        return self._as_rows(z, None)

    def _observe_block(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------------
    def _counter_state(self) -> dict[str, np.ndarray]:
        return {"t": np.asarray(self.t, dtype=np.int64), "n_queried": np.asarray(self.n_queried, dtype=np.int64)}

    def _load_counters(self, state: dict[str, Any]) -> None:
        t = int(np.asarray(state["t"]))
        nq = int(np.asarray(state["n_queried"]))
        if t < 0 or not 0 <= nq <= t:
            raise ValueError(f"inconsistent counters in the state: t={t}, n_queried={nq}")
        self.t, self.n_queried = t, nq

    @staticmethod
    def _require(state: dict[str, Any], keys: tuple[str, ...], owner: str) -> None:
        missing = [k for k in keys if k not in state]
        if missing:
            raise ValueError(f"state for {owner} lacks {missing}; was it saved by another selector?")


def finite_float(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
    return v
