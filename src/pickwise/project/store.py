"""The project store: one SQLite file (``project.sqlite``) holding items, classes, rounds and label events.

Stdlib only (``sqlite3``, ``json``, ``time``, ``uuid``), so the labelling page can use it without numpy.

Every connection (:func:`connect`) runs in WAL mode with ``busy_timeout=10000``, ``foreign_keys=ON``,
``synchronous=NORMAL`` and ``isolation_level=None``: transactions are explicit ``BEGIN IMMEDIATE …
COMMIT``, so the write lock is held before anything is read that a write depends on (two tabs never
lease the same item). All tables are ``STRICT``.

Labels are append-only events (``label``, ``skip``, ``retract``); triggers refuse ``UPDATE`` and
``DELETE`` on ``labels``. An annotator's answer on an item is their latest event on it; a ``retract``
withdraws it (the item is "to do" again), a later ``label`` corrects it, and the history stays.

The schema carries a version in ``meta`` and is brought forward on :func:`migrate` by applying the
functions of :data:`MIGRATIONS` in order (``MIGRATIONS[v]`` takes version ``v`` to ``v + 1``).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version  # re-exported

__all__ = ["DB_NAME", "SCHEMA_VERSION", "MIGRATIONS", "EVENTS", "SOURCES", "MAX_ANNOTATOR", "connect", "migrate",
           "schema_version", "create", "now_iso", "new_uuid", "insert_event", "Store"]

#: the database file inside a project folder
DB_NAME = "project.sqlite"
EVENTS = ("label", "skip", "retract")
SOURCES = ("human", "import", "model")
KINDS = ("image", "text", "tabular")
MAX_ANNOTATOR = 64
_MIN_SQLITE = (3, 37, 0)  # STRICT tables (RETURNING needs 3.35)


def connect(db_path: str | Path) -> sqlite3.Connection:
    """A new connection: WAL, busy_timeout=10000, foreign_keys=ON, synchronous=NORMAL, isolation_level=None
    (explicit ``BEGIN IMMEDIATE … COMMIT``), ``row_factory=sqlite3.Row``. One per request or thread."""
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise RuntimeError(f"pickwise projects need SQLite >= 3.37 (STRICT tables); this Python has "
                           f"{sqlite3.sqlite_version}")
    conn = sqlite3.connect(str(db_path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def now_iso() -> str:
    """The current UTC time as ISO-8601 with microseconds and a trailing ``Z`` (Label Studio's form)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create(db_path: str | Path, *, classes: Sequence[str], project_uuid: str | None = None,
           meta: dict[str, str] | None = None) -> str:
    """Create (or migrate) the database at ``db_path`` and record the classes and the project uuid once.

    Returns the project uuid. Class names must be unique non-empty strings.
    """
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise ValueError(f"a project needs at least 2 classes; got {names!r}")
    bad = [c for c in names if not c.strip() or c != c.strip()]
    if bad:
        raise ValueError(f"class names must be non-empty without surrounding spaces; got {bad[0]!r}")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"class {dup[0]!r} appears more than once in {names!r}")
    conn = connect(db_path)
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT COUNT(*) FROM classes").fetchone()[0]:
                raise ValueError(f"{db_path} already holds a project")
            pid = project_uuid or str(uuid.uuid4())
            conn.executemany("INSERT INTO classes (idx, name) VALUES (?, ?)", list(enumerate(names)))
            rows = {"project_uuid": pid, "created_at": now_iso(), **(meta or {})}
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(rows.items()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return pid


# ---------------------------------------------------------------------------------------------------------
# events


def _check_event(conn: sqlite3.Connection, idx: int, event: str, label: str | None, labels: Sequence[str] | None,
                 annotator: str, source: str, classes: Sequence[str]) -> None:
    if event not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}; got {event!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    if not isinstance(annotator, str) or not 1 <= len(annotator) <= MAX_ANNOTATOR:
        raise ValueError(f"annotator must be a string of 1 to {MAX_ANNOTATOR} characters; got {annotator!r}")
    if event == "label":
        names = [label] if labels is None else list(labels)
        if (labels is None and label is None) or not names:
            raise ValueError("a 'label' event needs a label (a class name)")
        for name in names:
            if name not in classes:
                raise ValueError(f"label {name!r} is not one of the classes {', '.join(map(repr, classes))}")
    elif label is not None or labels is not None:
        raise ValueError(f"a {event!r} event takes no label; got {label if label is not None else labels!r}")
    if not isinstance(idx, int) or isinstance(idx, bool) or \
            conn.execute("SELECT 1 FROM items WHERE idx = ?", (idx,)).fetchone() is None:
        raise ValueError(f"unknown item index {idx!r}")


def insert_event(conn: sqlite3.Connection, *, client_uuid: str, idx: int, event: str, label: str | None = None,
                 labels: Sequence[str] | None = None, annotator: str, source: str = "human",
                 round_id: int | None = None, lead_time_ms: int | None = None, created_at: str | None = None,
                 classes: Sequence[str]) -> bool:
    """Insert one event inside the caller's transaction (see :meth:`Store.add_event`); True if stored.

    ``labels`` (several class names) records a multi-choice answer: ``label`` is then the single name
    when there is exactly one, else NULL (stored, never trained on).
    """
    if not isinstance(client_uuid, str) or not client_uuid:
        raise ValueError(f"client_uuid must be a non-empty string; got {client_uuid!r}")
    _check_event(conn, idx, event, label, labels, annotator, source, classes)
    labels_json = None
    if event == "label" and labels is not None:
        names = list(labels)
        labels_json = json.dumps(names) if len(names) > 1 else None
        label = names[0] if len(names) == 1 else None
    if lead_time_ms is not None:
        lead_time_ms = int(lead_time_ms)
    row = conn.execute(
        "INSERT INTO labels (client_uuid, item_idx, label, labels_json, event, annotator, source, round_id, "
        "created_at, lead_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(client_uuid) DO NOTHING RETURNING id",
        (client_uuid, idx, label, labels_json, event, annotator, source, round_id, created_at or now_iso(),
         lead_time_ms),
    ).fetchone()
    if row is None:
        return False
    if event in ("label", "skip"):
        conn.execute("UPDATE queue SET leased_by = NULL, lease_until = NULL WHERE item_idx = ?", (idx,))
    return True


# "some annotator's latest event on queue row q's item is …": the one subquery the round's states share
_LATEST_IS = """EXISTS (SELECT 1 FROM labels l WHERE l.item_idx = q.item_idx
    AND l.id = (SELECT MAX(l2.id) FROM labels l2 WHERE l2.item_idx = l.item_idx AND l2.annotator = l.annotator)
    AND ({}))"""
_LABELLED = _LATEST_IS.format("l.event = 'label'")
_SKIPPED = _LATEST_IS.format("l.event = 'skip' AND l.round_id = q.round_id")
# an item of round q is "to do" unless some annotator's latest event on it is a label, or a skip in round q
_DONE = _LATEST_IS.format("l.event = 'label' OR (l.event = 'skip' AND l.round_id = q.round_id)")


class Store:
    """The project database at ``db_path``; every method opens a fresh connection and closes it.

    ``clock`` (seconds since the epoch; default :func:`time.time`) times leases, so tests can move time.
    The constructor stores the path only and opens nothing.
    """

    def __init__(self, db_path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.db_path = Path(db_path)
        self.clock = clock

    def __repr__(self) -> str:
        return f"Store({str(self.db_path)!r})"

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection (see :func:`connect`), closed when the block ends."""
        conn = connect(self.db_path)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection inside ``BEGIN IMMEDIATE``: committed if the block ends normally, else rolled back."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def classes(self) -> list[str]:
        """Class names in hotkey order."""
        with self.connection() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM classes ORDER BY idx")]

    def project_uuid(self) -> str:
        """The project's uuid (made at ``init``; written into every Label Studio task as ``pw_project``)."""
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'project_uuid'").fetchone()
        if row is None:
            raise ValueError(f"{self.db_path} holds no project (no project_uuid in meta)")
        return str(row[0])

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A value of the ``meta`` table (``default`` when absent)."""
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def media_root(self) -> Path | None:
        """The folder image ``relpath``s are relative to (None for projects without images)."""
        value = self.meta("media_root")
        return Path(value) if value else None

    @staticmethod
    def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
        return {"idx": int(row["idx"]), "item_id": row["item_id"], "kind": row["kind"], "text": row["text"],
                "relpath": row["relpath"], "data": json.loads(row["data_json"])}

    def item(self, idx: int) -> dict | None:
        """``{"idx", "item_id", "kind", "text", "relpath", "data"}`` of item ``idx``, or None if unknown."""
        with self.connection() as conn:
            row = conn.execute("SELECT * FROM items WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else self._item_dict(row)

    def item_by_id(self, item_id: str) -> dict | None:
        """The item whose external id is ``item_id`` (see :meth:`item`), or None."""
        with self.connection() as conn:
            row = conn.execute("SELECT * FROM items WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None else self._item_dict(row)

    def add_event(self, *, client_uuid: str, idx: int, event: str, label: str | None = None, annotator: str,
                  source: str = "human", round_id: int | None = None, lead_time_ms: int | None = None,
                  created_at: str | None = None, labels: Sequence[str] | None = None) -> bool:
        """Append one event; True if stored, False if ``client_uuid`` was already there (a retry, not an error).

        ``event`` is ``label`` / ``skip`` / ``retract``; ``label`` is a class name, required iff
        ``event == "label"`` (a ValueError names the bad value and the classes); an unknown ``idx``, a
        ``source`` outside human/import/model or an annotator over 64 characters is a ValueError. A
        ``label`` or ``skip`` frees any queue lease on the item.
        """
        with self.transaction() as conn:
            classes = [r[0] for r in conn.execute("SELECT name FROM classes ORDER BY idx")]
            return insert_event(conn, client_uuid=client_uuid, idx=idx, event=event, label=label, labels=labels,
                                annotator=annotator, source=source, round_id=round_id, lead_time_ms=lead_time_ms,
                                created_at=created_at, classes=classes)

    @staticmethod
    def _open_round(conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT id FROM rounds WHERE status = 'open' ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def lease_next(self, *, tab: str, annotator: str, lease_seconds: float = 120.0) -> dict | None:
        """Lease the next item of the open round to ``tab``: the item plus ``{"round_id", "rank", "batch_size"}``.

        In one ``BEGIN IMMEDIATE`` transaction, among the queue rows of the open round still to do
        (no annotator's latest event is a label, nor a skip in this round) whose lease is free, expired
        or this tab's, take this tab's own unexpired lease first, then the lowest rank. None when
        nothing is left (or no round is open). ``annotator`` is checked but leases belong to tabs.
        """
        if not isinstance(tab, str) or not 1 <= len(tab) <= 128:
            raise ValueError(f"tab must be a string of 1 to 128 characters; got {tab!r}")
        if not isinstance(annotator, str) or not 1 <= len(annotator) <= MAX_ANNOTATOR:
            raise ValueError(f"annotator must be a string of 1 to {MAX_ANNOTATOR} characters; got {annotator!r}")
        with self.transaction() as conn:
            rid = self._open_round(conn)
            if rid is None:
                return None
            now = float(self.clock())
            row = conn.execute(
                f"""UPDATE queue SET leased_by = ?, lease_until = ?
                WHERE (round_id, item_idx) = (
                    SELECT q.round_id, q.item_idx FROM queue q
                    WHERE q.round_id = ? AND NOT {_DONE}
                      AND (q.leased_by IS NULL OR q.lease_until <= ? OR q.leased_by = ?)
                    ORDER BY (q.leased_by = ? AND q.lease_until > ?) DESC, q.rank LIMIT 1)
                RETURNING item_idx, rank""",
                (tab, now + float(lease_seconds), rid, now, tab, tab, now),
            ).fetchone()
            if row is None:
                return None
            item = conn.execute("SELECT * FROM items WHERE idx = ?", (row["item_idx"],)).fetchone()
            size = conn.execute("SELECT COUNT(*) FROM queue WHERE round_id = ?", (rid,)).fetchone()[0]
        out = self._item_dict(item)
        out.update(round_id=rid, rank=int(row["rank"]), batch_size=int(size))
        return out

    def lease_item(self, *, idx: int, tab: str, lease_seconds: float = 120.0) -> bool:
        """Lease item ``idx`` of the open round to ``tab`` (after an undo); False if it is not in that queue."""
        with self.transaction() as conn:
            rid = self._open_round(conn)
            if rid is None:
                return False
            cur = conn.execute("UPDATE queue SET leased_by = ?, lease_until = ? WHERE round_id = ? AND item_idx = ?",
                               (tab, float(self.clock()) + float(lease_seconds), rid, idx))
            return cur.rowcount > 0

    def progress(self) -> dict:
        """``{"round_id", "round_status", "batch_size", "labelled", "skipped", "remaining", "total_labelled"}``
        for the open round (else the latest round); ``total_labelled`` counts items with a current label."""
        with self.connection() as conn:
            row = conn.execute("SELECT id, status FROM rounds ORDER BY (status = 'open') DESC, id DESC LIMIT 1") \
                .fetchone()
            total = conn.execute("SELECT COUNT(DISTINCT item_idx) FROM current_labels WHERE event = 'label'") \
                .fetchone()[0]
            if row is None:
                return {"round_id": None, "round_status": None, "batch_size": 0, "labelled": 0, "skipped": 0,
                        "remaining": 0, "total_labelled": int(total)}
            rid = int(row["id"])
            size, labelled, skipped = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM({_LABELLED}), 0), COALESCE(SUM(NOT {_LABELLED} AND {_SKIPPED}), 0) "
                "FROM queue q WHERE q.round_id = ?", (rid,)).fetchone()
        return {"round_id": rid, "round_status": row["status"], "batch_size": int(size), "labelled": int(labelled),
                "skipped": int(skipped), "remaining": int(size - labelled - skipped), "total_labelled": int(total)}


def new_uuid() -> str:
    """A random uuid4 as a string (a ``client_uuid`` for events made in Python)."""
    return str(uuid.uuid4())
