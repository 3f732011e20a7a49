"""The schema of ``project.sqlite`` and its forward migrations.

``MIGRATIONS[v]`` brings a database from schema version ``v`` to ``v + 1``; :func:`migrate` applies the
pending ones in order, each in its own ``BEGIN IMMEDIATE`` transaction, and records the version in
``meta``. Statements run one by one inside that transaction (``executescript`` would commit it first).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

def _run(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script`` statement by statement inside the caller's transaction (``executescript`` would
    COMMIT it first)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            conn.execute(buf)
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {buf.strip()[:80]!r}")


def _v0_to_v1(conn: sqlite3.Connection) -> None:
    """The first schema: meta, items, classes, checkpoints, rounds, acquisitions, queue, labels."""
    _run(conn, """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE items (
        idx INTEGER PRIMARY KEY,
        item_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('image', 'text', 'tabular')),
        relpath TEXT,
        text TEXT,
        data_json TEXT NOT NULL DEFAULT '{}',
        content_sha1 TEXT NOT NULL
    ) STRICT;
    CREATE TABLE classes (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
        n_labels INTEGER NOT NULL, metrics_json TEXT NOT NULL DEFAULT '{}'
    ) STRICT;
    CREATE TABLE rounds (
        id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, strategy TEXT NOT NULL,
        params_json TEXT NOT NULL DEFAULT '{}', seed INTEGER NOT NULL,
        checkpoint_id INTEGER REFERENCES checkpoints(id), scores_path TEXT,
        status TEXT NOT NULL CHECK (status IN ('open', 'closed'))
    ) STRICT;
    CREATE TABLE acquisitions (
        round_id INTEGER NOT NULL REFERENCES rounds(id), item_idx INTEGER NOT NULL REFERENCES items(idx),
        score REAL, rank INTEGER NOT NULL, selected INTEGER NOT NULL,
        PRIMARY KEY (round_id, item_idx)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE queue (
        round_id INTEGER NOT NULL REFERENCES rounds(id), item_idx INTEGER NOT NULL REFERENCES items(idx),
        rank INTEGER NOT NULL, leased_by TEXT, lease_until REAL,
        PRIMARY KEY (round_id, item_idx)
    ) STRICT;
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        client_uuid TEXT NOT NULL UNIQUE,
        item_idx INTEGER NOT NULL REFERENCES items(idx),
        label TEXT,
        labels_json TEXT,
        event TEXT NOT NULL CHECK (event IN ('label', 'skip', 'retract')),
        annotator TEXT NOT NULL CHECK (length(annotator) BETWEEN 1 AND 64),
        source TEXT NOT NULL CHECK (source IN ('human', 'import', 'model')),
        round_id INTEGER REFERENCES rounds(id),
        created_at TEXT NOT NULL,
        lead_time_ms INTEGER,
        CHECK ((event = 'label') = (label IS NOT NULL OR labels_json IS NOT NULL))
    ) STRICT;
    CREATE INDEX labels_item ON labels (item_idx, id);
    CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
        BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a new event instead of updating one'); END;
    CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
        BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a retract event instead of deleting'); END;
    CREATE VIEW current_labels AS
        SELECT l.* FROM labels l
        JOIN (SELECT item_idx, annotator, MAX(id) AS id FROM labels GROUP BY item_idx, annotator) m ON l.id = m.id;
    """)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """The training set of each round (size and hash) and whether it was a cold start, and an index for
    "each annotator's latest event on an item"."""
    _run(conn, """
    ALTER TABLE rounds ADD COLUMN n_train INTEGER;
    ALTER TABLE rounds ADD COLUMN train_sha256 TEXT;
    ALTER TABLE rounds ADD COLUMN cold_start INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX labels_item_annotator ON labels (item_idx, annotator, id);
    """)


#: ``MIGRATIONS[v]`` brings a database from schema version ``v`` to ``v + 1`` (applied in order on open)
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v0_to_v1, _v1_to_v2]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``meta`` (0 for an empty database)."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the pending migrations up to ``target``, each in its own transaction; return the new version.

    A database written by a newer pickwise (a version above :data:`SCHEMA_VERSION`) is refused.
    """
    for v in range(target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"this project has schema version {current}, newer than this pickwise "
                                   f"understands ({SCHEMA_VERSION}); upgrade pickwise")
            if current >= target:
                conn.execute("COMMIT")
                return current
            MIGRATIONS[current](conn)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(current + 1),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
