"""Progress bars for long scoring and selection: off unless a caller turns them on.

    from pickwise.progress import progress_bars

    with progress_bars():
        picks = BADGE().select(model, x, pool, 1000, rng=rng)   # bars on stderr

Inside the ``with`` block every chunked scoring pass (one bar per pass, in items) and every greedy
selection loop (k-means++ seeding, k-center, in picks) shows a ``tqdm`` bar; outside it nothing is
printed. Why a context and not a ``progress=`` field on each strategy: a bar is presentation, not
behaviour — it must not change a strategy's value (its equality, its ``repr`` in run records, a
config hash), and wrappers (``StochasticBatch``, ``ALBL``, ``Subsample``) would each have to forward
it to their inner strategies. The switch is a :class:`contextvars.ContextVar`, so it is local to the
thread (and asyncio task) that sets it and is restored when the block ends; it is not a callback
registry: nothing can be hooked in, the only effect is the bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["progress_bars", "progress_enabled", "progress_bar"]

_ENABLED: ContextVar[bool] = ContextVar("pickwise_progress_bars", default=False)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[None]:
    """Show progress bars for the work done inside the block (``enabled=False`` hides them)."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be True or False; got {enabled!r}")
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def progress_enabled() -> bool:
    """Whether the caller asked for progress bars (see :func:`progress_bars`)."""
    return _ENABLED.get()


class _Silent:
    """The bar when bars are off: every call does nothing (cheaper than a disabled tqdm)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "item") -> Any:
    """A context-managed bar with ``update(n)``: a tqdm bar on stderr when enabled, else a no-op."""
    if not _ENABLED.get():
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=0.5, file=sys.stderr, dynamic_ncols=True)
