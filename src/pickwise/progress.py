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

:func:`grid_bar` is the bar of ``pickwise bench`` (:func:`pickwise.bench.run_grid`): one bar for a
whole grid, counted in rounds, shown only when asked for AND stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["progress_bars", "progress_enabled", "progress_bar", "grid_bar"]

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


def grid_bar(total: int, desc: str, unit: str = "round", *, enabled: bool = True) -> Any:
    """The grid's bar: tqdm on stderr when ``enabled`` and stderr is a terminal, else disabled.

    The runner uses ``update(n)``, ``total`` (it grows or shrinks as runs end), ``refresh()``,
    ``set_postfix_str(text, refresh=False)``, ``write(text)`` and ``close()``.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.05)
