"""How many threads torch, BLAS/OpenMP and faiss use: chosen once, deliberately, for a long computation.

    from pickwise.threads import limit_threads

    with limit_threads():              # the default rule (below)
        pickwise.pool_rounds(...)
    with limit_threads(4):             # exactly 4
        ...

Left alone, torch, the BLAS behind numpy and faiss each start one thread per core. On a machine
where other processes already run — a benchmark, a second experiment — those threads fight for the
same cores: a stream simulation on a 2-core machine with one other busy process took 86 s with its
default threads (fits of 7–36 s each) and 13.5 s with one thread (fits of 0.7 s). Small models
gain nothing from more threads anyway: their matrices are too small to split.

The default rule (:func:`choose_threads`):

* **free CPUs** = the CPUs this process may run on (``os.sched_getaffinity``) less the ones other
  processes keep busy: the larger of the 1-minute load average and the number of other runnable
  threads right now (``/proc/loadavg``), both scaled from the whole machine's CPUs to ours; at least 1;
* **small models** (the CLI's ``mlp``, ``logreg`` and ``tfidf``, or fewer than
  :data:`SMALL_PARAMS` parameters) get **one** thread; anything else (``cnn``, text encoders,
  selection from large arrays) gets the free CPUs.

What :func:`limit_threads` sets, and restores when the block ends: torch's intra-op threads
(``torch.set_num_threads``; its inter-op pool is set once per process, the only time torch
allows it), every BLAS/OpenMP pool already loaded (threadpoolctl, when installed), faiss's OpenMP
threads, and the environment variables ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ... which the
libraries imported later inside the block read when they start. A library first imported inside the
block keeps the count after it (nothing to restore it to); torch started that way takes at most
one thread per core.

``pickwise run``, ``demo``, ``stream``, ``select`` and ``next`` apply this rule, or ``--threads N``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["SMALL_MODELS", "SMALL_PARAMS", "choose_threads", "free_cpus", "limit_threads", "set_threads"]

#: models of the CLI small enough that one thread is fastest
SMALL_MODELS = ("mlp", "logreg", "tfidf")
#: below this many parameters a model counts as small
SMALL_PARAMS = 1_000_000
#: environment variables the OpenMP / BLAS runtimes (and numexpr) read when they start
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_INTEROP_DONE = False
#: the count an enclosing limit_threads(n) was GIVEN (not chosen by the rule), which inner defaults keep
_GIVEN: ContextVar[int | None] = ContextVar("pickwise_threads_given", default=None)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _runnable_others() -> int | None:
    """Runnable threads on the machine other than this one, from ``/proc/loadavg`` (None elsewhere)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)


def busy_cpus(cpus: int) -> float:
    """How many of our ``cpus`` other processes keep busy: the larger of the 1-minute load average
    and the runnable threads now, scaled from the machine's CPUs to ours."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        load = 0.0
    now = _runnable_others()
    busy = max(load, float(now or 0))
    return busy * cpus / max(os.cpu_count() or cpus, cpus)


def free_cpus(*, cpus: int | None = None, busy: float | None = None) -> int:
    """CPUs free for this process: ``cpus`` (default :func:`usable_cpus`) less ``busy`` (default
    :func:`busy_cpus`), rounded to the nearest, at least 1."""
    cpus = usable_cpus() if cpus is None else _check_count("cpus", cpus)
    if busy is None:
        busy = busy_cpus(cpus)
    if not isinstance(busy, (int, float)) or isinstance(busy, bool) or not math.isfinite(busy) or busy < 0:
        raise ValueError(f"busy must be a finite number >= 0; got {busy!r}")
    return max(1, cpus - int(busy + 0.5))


def choose_threads(
    *, model: str | None = None, n_params: int | None = None, cpus: int | None = None, busy: float | None = None
) -> int:
    """The default thread count: 1 for a small model (``model`` in :data:`SMALL_MODELS` or ``n_params``
    below :data:`SMALL_PARAMS`), else :func:`free_cpus` (``cpus`` and ``busy`` as there)."""
    if n_params is not None and (isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 0):
        raise ValueError(f"n_params must be an int >= 0; got {n_params!r}")
    if model in SMALL_MODELS or (n_params is not None and n_params < SMALL_PARAMS):
        return 1
    return free_cpus(cpus=cpus, busy=busy)


def _torch_threads(n: int) -> int | None:
    """Set torch's intra-op threads (and its inter-op pool, once per process) when torch is loaded;
    the previous intra-op count, or None without torch."""
    global _INTEROP_DONE
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "set_num_threads"):
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    if not _INTEROP_DONE:
        _INTEROP_DONE = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # inter-op work already ran: torch allows no change any more
            pass
    return before


def _faiss_threads(n: int) -> int | None:
    faiss = sys.modules.get("faiss")
    if faiss is None or not hasattr(faiss, "omp_set_num_threads"):
        return None
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    return before


def set_threads(n: int) -> None:
    """Use ``n`` threads from now on in this process, for good: the environment variables, torch,
    every loaded BLAS/OpenMP pool and faiss (for worker processes; elsewhere use :func:`limit_threads`)."""
    n = _check_count("threads", n)
    for var in ENV_VARS:
        os.environ[var] = str(n)
    _torch_threads(n)
    _faiss_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - without threadpoolctl the environment has to do
        return
    threadpool_limits(limits=n)


@contextmanager
def limit_threads(
    n: int | None = None, *, model: str | None = None, n_params: int | None = None
) -> Iterator[int]:
    """Run the block with ``n`` threads in torch, BLAS/OpenMP and faiss; yields the count used.

    ``n=None`` chooses by :func:`choose_threads` (``model`` / ``n_params`` as there) — unless an
    enclosing block was given a count (``limit_threads(4)``, ``--threads 4``): then that count stays
    and the block changes nothing. So a library entry point can apply the rule for its own model
    while a caller's explicit choice still wins. Everything is restored when the block ends (see the
    module docstring for libraries first loaded inside it).
    """
    if n is None and _GIVEN.get() is not None:
        yield _GIVEN.get()
        return
    given = n is not None
    n = choose_threads(model=model, n_params=n_params) if n is None else _check_count("threads", n)
    token = _GIVEN.set(n) if given else None
    saved_env = {var: os.environ.get(var) for var in ENV_VARS}
    with ExitStack() as stack:
        for var in ENV_VARS:
            os.environ[var] = str(n)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover
            pass
        else:
            stack.enter_context(threadpool_limits(limits=n))
        torch_before = _torch_threads(n)
        faiss_before = _faiss_threads(n)
        try:
            yield n
        finally:
            if token is not None:
                _GIVEN.reset(token)
            for var, value in saved_env.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
            if torch_before is not None:
                sys.modules["torch"].set_num_threads(torch_before)
            if faiss_before is not None:
                sys.modules["faiss"].omp_set_num_threads(faiss_before)
