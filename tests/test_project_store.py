"""The project store (pickwise.project.store): schema, migrations, append-only events, leases."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
from pathlib import Path

import pytest

from pickwise.project import store as st
from pickwise.project.store import Store


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_store(path: Path, n_items: int = 6, queue: int | None = 4, clock: Clock | None = None) -> Store:
    """A project db with classes a,b,c, ``n_items`` text items and an open round 1 queueing the first ``queue``."""
    db = path / "project.sqlite"
    st.create(db, classes=["a", "b", "c"])
    with st.connect(db) as conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO items (idx, item_id, kind, text, content_sha1) VALUES (?, ?, 'text', ?, '')",
                         [(i, f"t-{i}", f"text {i}") for i in range(n_items)])
        if queue:
            conn.execute("INSERT INTO rounds (id, created_at, strategy, seed, status) VALUES (1, 'now', 'x', 0, 'open')")
            conn.executemany("INSERT INTO queue (round_id, item_idx, rank) VALUES (1, ?, ?)",
                             [(i, i) for i in range(queue)])
        conn.execute("COMMIT")
    return Store(db, clock=clock or Clock())


def test_connection_settings_and_strict_tables(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    with s.connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.isolation_level is None
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall()
        assert {t["name"] for t in tables} >= {"meta", "items", "classes", "checkpoints", "rounds", "acquisitions",
                                                "queue", "labels"}
        assert all("STRICT" in t["sql"] for t in tables)
        assert st.schema_version(conn) == st.SCHEMA_VERSION
    assert s.classes() == ["a", "b", "c"]
    assert len(s.project_uuid()) == 36
    assert s.item(2) == {"idx": 2, "item_id": "t-2", "kind": "text", "text": "text 2", "relpath": None, "data": {}}
    assert s.item(99) is None


def test_migrations_from_version_0_and_1(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = st.connect(db)
    assert st.schema_version(conn) == 0
    assert st.migrate(conn, target=1) == 1
    # a version-1 database with data in it
    conn.execute("INSERT INTO classes VALUES (0, 'a'), (1, 'b')")
    conn.execute("INSERT INTO items (idx, item_id, kind, text, content_sha1) VALUES (0, 'x', 'text', 'hi', '')")
    conn.execute("INSERT INTO labels (client_uuid, item_idx, label, event, annotator, source, created_at) "
                 "VALUES ('u1', 0, 'a', 'label', 'ann', 'human', 'now')")
    cols = {r[1] for r in conn.execute("PRAGMA table_info(rounds)")}
    assert "train_sha256" not in cols
    assert st.migrate(conn) == st.SCHEMA_VERSION == 2
    cols = {r[1] for r in conn.execute("PRAGMA table_info(rounds)")}
    assert {"n_train", "train_sha256", "cold_start"} <= cols
    assert conn.execute("SELECT label FROM labels").fetchall()[0][0] == "a"
    assert st.migrate(conn) == 2  # idempotent
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="newer"):
        st.migrate(conn)
    conn.close()


def test_add_event_idempotent_and_validated(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    assert s.add_event(client_uuid="u1", idx=0, event="label", label="b", annotator="ann") is True
    assert s.add_event(client_uuid="u1", idx=0, event="label", label="b", annotator="ann") is False
    with s.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 1
    with pytest.raises(ValueError, match="'zzz' is not one of the classes 'a', 'b', 'c'"):
        s.add_event(client_uuid="u2", idx=0, event="label", label="zzz", annotator="ann")
    with pytest.raises(ValueError, match="needs a label"):
        s.add_event(client_uuid="u2", idx=0, event="label", annotator="ann")
    with pytest.raises(ValueError, match="takes no label"):
        s.add_event(client_uuid="u2", idx=0, event="skip", label="a", annotator="ann")
    with pytest.raises(ValueError, match="unknown item index 77"):
        s.add_event(client_uuid="u2", idx=77, event="skip", annotator="ann")
    with pytest.raises(ValueError, match="event must be one of"):
        s.add_event(client_uuid="u2", idx=0, event="delete", annotator="ann")
    with pytest.raises(ValueError, match="source must be"):
        s.add_event(client_uuid="u2", idx=0, event="skip", annotator="ann", source="robot")
    with pytest.raises(ValueError, match="annotator"):
        s.add_event(client_uuid="u2", idx=0, event="skip", annotator="x" * 65)
    with s.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 1


def test_labels_are_append_only(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.add_event(client_uuid="u1", idx=0, event="label", label="a", annotator="ann")
    with s.connection() as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE labels SET label = 'b'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM labels")
        with pytest.raises(sqlite3.IntegrityError):  # label set iff event = 'label'
            conn.execute("INSERT INTO labels (client_uuid, item_idx, label, event, annotator, source, created_at) "
                         "VALUES ('u9', 0, NULL, 'label', 'ann', 'human', 'now')")
        with pytest.raises(sqlite3.IntegrityError):  # foreign key
            conn.execute("INSERT INTO labels (client_uuid, item_idx, label, event, annotator, source, created_at) "
                         "VALUES ('u9', 999, 'a', 'label', 'ann', 'human', 'now')")


def test_correction_supersedes_and_history_kept(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.add_event(client_uuid="u1", idx=0, event="label", label="a", annotator="ann")
    s.add_event(client_uuid="u2", idx=0, event="label", label="c", annotator="ann")
    with s.connection() as conn:
        cur = conn.execute("SELECT label FROM current_labels WHERE item_idx = 0").fetchall()
        hist = conn.execute("SELECT label FROM labels WHERE item_idx = 0 ORDER BY id").fetchall()
    assert [r[0] for r in cur] == ["c"]
    assert [r[0] for r in hist] == ["a", "c"]


def test_leases_own_first_expiry_and_no_double_lease(tmp_path: Path) -> None:
    clock = Clock()
    s = make_store(tmp_path, clock=clock)
    a1 = s.lease_next(tab="A", annotator="ann")
    assert (a1["idx"], a1["rank"], a1["round_id"], a1["batch_size"], a1["item_id"]) == (0, 0, 1, 4, "t-0")
    assert s.lease_next(tab="A", annotator="ann")["idx"] == 0  # a reload shows the same item
    assert s.lease_next(tab="B", annotator="bob")["idx"] == 1  # another tab gets another item
    assert s.lease_next(tab="C", annotator="cy")["idx"] == 2
    clock.t += 121  # every lease expired: expired leases are free to anyone
    assert s.lease_next(tab="D", annotator="dee")["idx"] == 0  # lowest rank whose lease expired
    assert s.lease_next(tab="C", annotator="cy")["idx"] == 1  # C's lease expired: lowest free rank
    # labelling frees the lease and makes the item done
    s.add_event(client_uuid="l0", idx=0, event="label", label="a", annotator="dee", round_id=1)
    assert s.lease_next(tab="D", annotator="dee")["idx"] == 2
    s.add_event(client_uuid="s2", idx=2, event="skip", annotator="dee", round_id=1)  # skipped in this round
    assert s.lease_next(tab="D", annotator="dee")["idx"] == 3
    s.add_event(client_uuid="l3", idx=3, event="label", label="b", annotator="dee", round_id=1)
    assert s.lease_next(tab="D", annotator="dee") is None  # 1 is C's, 0 and 3 done, 2 skipped
    # undo: a retract makes the item to do again, and lease_item gives it back to the tab
    s.add_event(client_uuid="r3", idx=3, event="retract", annotator="dee", round_id=1)
    assert s.lease_item(idx=3, tab="D") is True
    assert s.lease_item(idx=5, tab="D") is False  # not in the queue
    assert s.lease_next(tab="D", annotator="dee")["idx"] == 3
    assert s.progress() == {"round_id": 1, "round_status": "open", "batch_size": 4, "labelled": 1, "skipped": 1,
                            "remaining": 2, "total_labelled": 1}


def test_lease_needs_an_open_round(tmp_path: Path) -> None:
    s = make_store(tmp_path, queue=None)
    assert s.lease_next(tab="A", annotator="ann") is None
    assert s.lease_item(idx=0, tab="A") is False
    assert s.progress()["round_id"] is None


def _lease_worker(db: str, tab: str, n: int, out: mp.Queue) -> None:  # pragma: no cover (child process)
    s = Store(db)
    got = []
    for _ in range(n):
        item = s.lease_next(tab=f"{tab}", annotator="w", lease_seconds=3600)
        if item is not None:
            got.append(item["idx"])
            s.add_event(client_uuid=f"{tab}-{item['idx']}", idx=item["idx"], event="skip", annotator=tab,
                        round_id=item["round_id"])
    out.put(got)


def test_two_threads_never_get_the_same_item(tmp_path: Path) -> None:
    s = make_store(tmp_path, n_items=60, queue=60)
    got: dict[str, list[int]] = {"A": [], "B": []}

    def work(tab: str) -> None:
        store = Store(s.db_path)
        for _ in range(40):
            item = store.lease_next(tab=tab, annotator=tab, lease_seconds=3600)
            if item is None:
                return
            got[tab].append(item["idx"])
            store.add_event(client_uuid=f"{tab}-{item['idx']}", idx=item["idx"], event="skip", annotator=tab,
                            round_id=1)

    threads = [threading.Thread(target=work, args=(t,)) for t in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = got["A"] + got["B"]
    assert sorted(both) == list(range(60))  # every item exactly once


def test_two_processes_never_get_the_same_item(tmp_path: Path) -> None:
    s = make_store(tmp_path, n_items=40, queue=40)
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_lease_worker, args=(str(s.db_path), tab, 30, out)) for tab in ("P", "Q")]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    both = results[0] + results[1]
    assert sorted(both) == list(range(40))
