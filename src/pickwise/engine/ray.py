"""The Ray engine: one actor per shard, holding the shard's arrays and state between steps.

Ray is optional (``pip install "pickwise[distributed]"``) and imported only when a
:class:`RayEngine` is built. With no ``address`` and no running Ray, the engine starts a local
instance on this machine with every listener on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
unless already set, which must happen before ``ray`` is imported), no dashboard and no usage
statistics, and shuts it down on :meth:`RayEngine.close`. With ``address`` it connects to that
cluster (checked first: an address nobody answers at is a ``ConnectionError`` naming it).

Functions and arguments travel by Ray's own serialisation (cloudpickle); the functions that the
selection algorithms send are module-level functions of :mod:`pickwise.engine.selection`, so the
workers import pickwise rather than receive code.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from .base import Loader, NpyLoader, new_state, offsets, split_arrays

__all__ = ["RayEngine", "import_ray", "open_ray_engine"]

INSTALL_HINT = 'the Ray engine needs ray: pip install "pickwise[distributed]"'


def import_ray(*, local: bool = False) -> Any:
    """The ``ray`` module, or an ImportError with the install hint.

    ``local=True`` (a Ray instance about to be started here) first sets
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, ``RAY_USAGE_STATS_ENABLED=0`` and a throwaway
    ``RAY_AUTH_TOKEN`` (nothing written to ``~/.ray``) unless they are set:
    Ray reads the first into a module constant at import, and with it every listener binds 127.0.0.1.
    """
    if local and "ray" not in sys.modules:
        import secrets

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # token auth stays on, with a throwaway token: without it Ray writes ~/.ray/auth_token
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    try:
        import ray
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a TCP connection."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"address must look like 'host:port', 'ray://host:port' or 'auto'; got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at address {address!r}: {err}") from err


class _Shard:
    """The actor body: a shard's state and the three ways to run a function on it."""

    def __init__(self, source: Any, offset: int) -> None:
        arrays = source() if callable(source) else source
        self.state = new_state(arrays, offset)

    def size(self) -> int:
        return int(self.state["n"])

    def run(self, fn: Callable[[dict, Any], Any], arg: Any) -> Any:
        return fn(self.state, arg)

    def step(self, fn: Callable[[dict, Any], tuple[Any, Any]], carry: Any) -> tuple[Any, Any]:
        return fn(self.state, carry)

    # --- restart mode: every operation is numbered; a restarted actor (fresh state, applied = 0)
    # refuses the next one until the driver has replayed the operations it lost

    applied = 0

    def run_nth(self, fn: Callable[[dict, Any], Any], arg: Any, nth: int) -> Any:
        if nth != self.applied:
            return _Lost(self.applied)
        out = fn(self.state, arg)
        self.applied += 1
        return out

    def replay(self, log: Sequence[tuple[Callable[[dict, Any], Any], Any]]) -> int:
        import ray

        if self.applied:  # a replay that follows a partial replay: start from the loaded shard again
            return -1
        for fn, arg in log:
            fn(self.state, ray.get(arg) if isinstance(arg, ray.ObjectRef) else arg)
            self.applied += 1
        return self.applied


#: arguments below this many bytes travel inline with each call instead of through ray.put
INLINE_BYTES = 16_384


def _small(value: Any) -> bool:
    """Whether ``value`` is plain data (arrays, numbers, strings, None, tuples / lists / dicts of them)
    of under :data:`INLINE_BYTES` bytes; anything else (functions, objects) goes through the object store."""
    stack, total, budget = [value], 0, INLINE_BYTES
    while stack:
        v = stack.pop()
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                return False
            total += v.nbytes
        elif v is None or isinstance(v, (bool, int, float, complex, np.generic)):
            total += 16
        elif isinstance(v, (str, bytes)):
            total += len(v)
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
            total += 8 * len(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        else:
            return False
        if total >= budget:
            return False
    return True


@dataclass(frozen=True)
class _Lost:
    """An operation refused by a restarted actor that has applied ``applied`` operations."""

    applied: int


class RayEngine:
    """One Ray actor per shard (see the module docstring).

    Build it with :meth:`from_arrays` (the driver splits the arrays and sends each shard once) or
    :meth:`from_loaders` (each actor runs its loader, e.g. reading its own ``.npy`` or Parquet
    files, so the pool never passes through the driver).

    ``restart=True``: a shard actor that dies (killed, its process or node lost) is restarted by Ray,
    rebuilds its shard from its source, and gets every operation it had applied replayed, in order,
    before it runs the next one; a selection running meanwhile carries on and returns the picks
    of an undisturbed run. The driver keeps the log of operations (functions and their small or
    broadcast arguments) for the engine's life, and ``scan`` then runs its fold one round trip per
    shard (the fold must be a function of the state after ``prepare`` and the carry, as every
    fold in :mod:`pickwise.engine.selection` is). Without it (the default), a lost actor is a
    ``RayActorError``: see :func:`pickwise.engine.run_with_restarts`.
    """

    def __init__(
        self,
        sources: Sequence[Mapping[str, Any] | Loader],
        *,
        sizes: Sequence[int] | None = None,
        address: str | None = None,
        actor_options: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        restart: bool = False,
    ) -> None:
        if not isinstance(restart, bool):
            raise ValueError(f"restart must be True or False; got {restart!r}")  # noqa: TRY004 (bad input is a ValueError here)
        if not sources:
            raise ValueError("a RayEngine needs at least one shard; got none")
        self._ray = ray = import_ray(local=address is None)
        self._started = False
        if not ray.is_initialized():
            import logging

            opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                    "logging_level": logging.WARNING}
            opts.update(init_options or {})
            if address is not None:
                _check_reachable(address)
                opts["address"] = address
            ray.init(**opts)
            self._started = True
        elif address is not None:
            raise ValueError(f"Ray is already initialised in this process; cannot also connect to address {address!r}")
        options: dict[str, Any] = {"scheduling_strategy": "SPREAD"}
        self._restart = restart
        if restart:  # Ray restarts a dead actor (its loader runs again) and retries its tasks there
            options.update(max_restarts=-1, max_task_retries=-1)
        options.update(actor_options or {})
        actor = ray.remote(_Shard).options(**options)
        self._actors: list[Any] = []
        try:
            if sizes is None:  # loaders: each actor learns its size first, then its offset
                probe = [actor.remote(src, 0) for src in sources]
                sizes = ray.get([a.size.remote() for a in probe])
                for a in probe:
                    ray.kill(a)
            self._sizes = tuple(int(s) for s in sizes)
            self._log: list[list[tuple[Any, Any]]] = [[] for _ in self._sizes]
            for src, off in zip(sources, offsets(self._sizes)):
                self._actors.append(actor.remote(src, int(off)))
            ray.get([a.size.remote() for a in self._actors])  # fail here if a shard cannot be built
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], *, n_shards: int, **options: Any) -> RayEngine:
        """Split equal-length ``arrays`` into ``n_shards`` shards, one actor each (options: see the class)."""
        parts = split_arrays(arrays, n_shards)
        sizes = [next(iter(p.values())).shape[0] for p in parts]
        return cls([{k: np.ascontiguousarray(v) for k, v in p.items()} for p in parts], sizes=sizes, **options)

    @classmethod
    def from_loaders(cls, loaders: Sequence[Loader], **options: Any) -> RayEngine:
        """One actor per loader, in pool order; each runs its loader where it lives.

        Loaders other than :class:`~pickwise.engine.NpyLoader` run twice (once to learn the shard
        sizes, once to build the shard), so they should read files rather than compute.
        """
        loaders = list(loaders)
        if all(isinstance(ld, NpyLoader) for ld in loaders):  # sizes known without reading a row
            options.setdefault("sizes", [ld.size for ld in loaders])
        return cls(loaders, **options)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Rows per shard, in pool order."""
        return self._sizes

    @property
    def fault_types(self) -> tuple[type[BaseException], ...]:
        """The errors that mean a shard was lost: ``RayActorError`` (its actor or node died, also
        when killed in the middle of a step) and ``ObjectLostError`` (a broadcast value lost with its node).

        :func:`pickwise.engine.run_with_restarts` reruns a selection on a rebuilt engine after one.
        """
        return (self._ray.exceptions.RayActorError, self._ray.exceptions.ObjectLostError)

    @property
    def offsets(self) -> np.ndarray:
        """First global row of each shard."""
        return offsets(self._sizes)

    def broadcast(self, value: Any) -> Any:
        """``ray.put(value)``: stored once, resolved to the value in every actor. A small value (a
        centre, a few numbers: under :data:`INLINE_BYTES`) is returned as it is and travels inline
        with each call, which saves the object store's round trip (about 1.3 ms of a k-means++ round
        on loopback, ``benchmarks/rpc_latency.py``)."""
        return value if _small(value) else self._ray.put(value)

    def map(self, fn: Callable[[dict, Any], Any], arg: Any = None) -> list[Any]:
        """``[fn(state_s, arg) for each shard s]``, all shards at once."""
        if len(self._actors) > 1 and not isinstance(arg, self._ray.ObjectRef) and arg is not None and not _small(arg):
            arg = self._ray.put(arg)
        if self._restart:
            return self._logged(range(len(self._actors)), fn, arg)
        return self._ray.get([a.run.remote(fn, arg) for a in self._actors])

    def call(self, shard: int, fn: Callable[[dict, Any], Any], arg: Any = None) -> Any:
        """``fn(state_shard, arg)`` on that shard's actor."""
        if self._restart:
            return self._logged([shard], fn, arg)[0]
        return self._ray.get(self._actors[shard].run.remote(fn, arg))

    def _logged(self, shards: Sequence[int], fn: Callable[[dict, Any], Any], arg: Any) -> list[Any]:
        """Restart mode: run ``fn`` on ``shards``; a shard whose actor restarted meanwhile first gets
        every earlier operation replayed (the same functions with the same arguments, in order, so
        its state is again what it was), then runs ``fn``. Each operation is logged per shard."""
        ray = self._ray
        out = ray.get([self._actors[s].run_nth.remote(fn, arg, len(self._log[s])) for s in shards])
        for i, s in enumerate(shards):
            while isinstance(out[i], _Lost):
                if ray.get(self._actors[s].replay.remote(self._log[s])) == len(self._log[s]):
                    out[i] = ray.get(self._actors[s].run_nth.remote(fn, arg, len(self._log[s])))
                else:  # restarted again during the replay: wait for the fresh actor and replay anew
                    out[i] = _Lost(-1)
                    self._kill_for_restart(s)
            self._log[s].append((fn, arg))
        return out

    def _kill_for_restart(self, s: int) -> None:
        """An actor left half-replayed: kill it so that Ray restarts it from its loader."""
        self._ray.kill(self._actors[s], no_restart=False)

    def scan(
        self,
        fn: Callable[[dict, Any], tuple[Any, Any]],
        init: Any,
        *,
        prepare: Callable[[dict, Any], Any] | None = None,
        arg: Any = None,
    ) -> tuple[Any, list[Any]]:
        """``prepare`` on every actor at once, then the fold, chained by object references.

        Everything is submitted before anything is awaited: each actor runs its ``prepare`` as
        soon as it can, and shard s's fold step starts when shard s − 1's carry exists, without a
        round trip through the driver.
        """
        ray = self._ray
        if self._restart:  # one step at a time, each recoverable (see _logged)
            if prepare is not None:
                self.map(prepare, arg)
            carry, results = init, []
            for s in range(len(self._actors)):
                carry, r = self.call(s, fn, carry)
                results.append(r)
            return carry, results
        prepared = []
        if prepare is not None:
            if len(self._actors) > 1 and arg is not None and not isinstance(arg, ray.ObjectRef) and not _small(arg):
                arg = ray.put(arg)
            # an actor runs its tasks in submission order: each fold step follows its own prepare
            prepared = [a.run.remote(prepare, arg) for a in self._actors]
        carry, refs = init, []
        for a in self._actors:
            carry, r = a.step.options(num_returns=2).remote(fn, carry)
            refs.append(r)
        out = ray.get([*prepared, carry, *refs])[len(prepared):]
        return out[0], out[1:]

    def close(self) -> None:
        """Kill the actors; shut Ray down if this engine started it."""
        ray = self._ray
        for a in getattr(self, "_actors", []):
            with contextlib.suppress(ray.exceptions.RayError, ValueError):  # already gone with its node
                ray.kill(a)
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_ray_engine(make: Callable[[Mapping[str, Any]], RayEngine], address: str | None, *,
                    option: str = "address") -> RayEngine:
    """``make(init_options)`` with Ray's own warnings quiet (token auth on, ...), for commands and helpers.

    A missing ray package becomes ``ValueError`` with the install hint, an unreachable ``address`` a
    one-line ``ValueError`` naming it (as ``option``, e.g. "--address" for the CLI).
    """
    import logging

    try:
        return make({"logging_level": logging.ERROR})
    except ImportError as err:
        raise ValueError(INSTALL_HINT) from err
    except ConnectionError as err:  # an OSError without an errno: one line, not a traceback
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(msg if repr(address) in msg else f"{option} {address}: {msg}") from err
