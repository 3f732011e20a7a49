"""Round records and their JSON Lines files: written as they happen, read back to resume.

A records file holds one header line (``{"type": "header", ...}``: the run's configuration) and
then one line per round (``{"type": "round", ...}``). Each line is flushed and fsynced before the
loop moves on, so a crash or kill loses at most the round in progress; a torn last line is
ignored (and cut off) when the file is read for resuming.

One writer at a time: a :class:`RecordWriter` holds an exclusive lock on its file (``.<name>.lock``
beside it, holding the PID; see :mod:`pickwise._fs`) from its creation until :meth:`RecordWriter.close`
or until it is garbage-collected (``pool_rounds(records=...)``'s writer lives as long as the loop).
Another PROCESS that opens a writer on the same file is refused at once with
:class:`pickwise._fs.BusyError` naming the holder's PID; writers in one process share the lock.
A line is appended with one ``write`` and fsynced; when the write fails (a full disk) the file is cut
back to its previous length, so it never ends in half a line, and the error names the file
(``cannot write <path>: No space left on device``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIMING_FIELDS = ("fit_seconds", "select_seconds")


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round of the pool loop.

    The model was trained on ``n_labeled`` labels, scored ``metrics``, and (unless this is the last
    round) chose ``selected`` — absolute indices whose oracle answers are ``labels``; they are in
    the pool from round ``round + 1`` on.

    Stopping (:mod:`pickwise.stopping`): ``stop_kappa`` is Cohen's kappa between this round's and the
    previous round's predictions on the run's stop set (None without two models); ``stop_reached``
    the first round at which the stabilising-predictions rule fired (None until it has);
    ``stop_predictions`` this round's predicted classes on the stop set (kept so a resumed run goes on
    comparing). Records written before these fields existed read back with None.
    """

    round: int
    n_labeled: int
    metrics: dict[str, float]
    selected: list[int]
    labels: list[int]
    fit_seconds: float
    select_seconds: float
    n_scored: int
    strategy: str = ""
    strategy_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stop_kappa: float | None = None
    stop_reached: int | None = None
    stop_predictions: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "round", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundRecord:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(**d)

    @property
    def trained(self) -> bool:
        """Whether a model was trained this round (False for round 0 of a run from no labels)."""
        return self.n_labeled > 0

    def without_timings(self) -> dict[str, Any]:
        """The record minus wall-clock fields: what must be identical across reruns with one seed."""
        d = asdict(self)
        for name in TIMING_FIELDS:
            d.pop(name)
        return d


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


#: records locks held by this process: lock path -> [handle, number of writers using it]
_HELD: dict[str, list[Any]] = {}


def _hold(path: Path) -> str:
    from ._fs import acquire_lock

    key = str(path.resolve().with_name(f".{path.name}.lock"))
    held = _HELD.get(key)
    if held is not None and held[0].held:
        held[1] += 1
    else:
        handle = acquire_lock(key, f"{path} is being written by another process (PID {{pid}}); wait for it to "
                              "finish, or write elsewhere")
        _HELD[key] = [handle, 1]
    return key


def _unhold(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        held[0].release()


class RecordWriter:
    """Appends JSON lines durably (one write, flush and fsync per line), holding the file's lock.

    The lock (see the module doc) is taken here, so a second process writing the same records is
    refused before it computes anything; :meth:`close` (or ``with``, or garbage collection) gives it
    back. ``lock=False`` writes without it.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True):
        import weakref

        from ._fs import annotate

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise annotate(e, "cannot create the folder", self.path.parent) from None
        self._key = _hold(self.path) if lock else None
        self._finalizer = weakref.finalize(self, _unhold, self._key) if self._key else None

    def close(self) -> None:
        """Give the lock back (the file stays); later writes still append, without the lock."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, obj: dict[str, Any]) -> None:
        """Append ``obj`` as one JSON line, durably; on an OS error the file is left as it was."""
        from ._fs import annotate

        data = (json.dumps(_jsonable(obj), sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise annotate(e, "cannot write", self.path) from None
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as e:
                try:  # no half line: cut back what this write added
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise annotate(e, "cannot write", self.path) from None
        finally:
            os.close(fd)


def read_jsonl(path: str | os.PathLike[str], *, repair: bool = False) -> list[dict[str, Any]]:
    """Read complete JSON lines; a torn final line is dropped (and cut from the file if ``repair``)."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    out: list[dict[str, Any]] = []
    good_end = 0
    pos = 0
    for line in raw.splitlines(keepends=True):
        end = pos + len(line)
        complete = line.endswith(b"\n")
        try:
            obj = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            obj = None
            if complete:
                raise ValueError(f"{path}: line at byte {pos} is not valid JSON") from None
        if obj is not None and complete:
            out.append(obj)
            good_end = end
        elif not complete:
            break
        pos = end
    if repair and good_end < len(raw):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return out


def load_records(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, list[RoundRecord]]:
    """The header (or None) and the round records of a records file."""
    rows = read_jsonl(path)
    header = next((r for r in rows if r.get("type") == "header"), None)
    return header, [RoundRecord.from_dict(r) for r in rows if r.get("type") == "round"]
