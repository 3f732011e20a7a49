"""Round records and their JSON Lines files: written as they happen, read back to resume.

A records file holds one header line (``{"type": "header", ...}``: the run's configuration) and
then one line per round (``{"type": "round", ...}``). Each line is flushed and fsynced before the
loop moves on, so a crash or kill loses at most the round in progress; a torn last line is
ignored (and cut off) when the file is read for resuming.
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

    def to_dict(self) -> dict[str, Any]:
        return {"type": "round", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundRecord:
        d = {k: v for k, v in d.items() if k != "type"}
        return cls(**d)

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


class RecordWriter:
    """Appends JSON lines durably (flush + fsync per line)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(_jsonable(obj), sort_keys=True, allow_nan=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


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
