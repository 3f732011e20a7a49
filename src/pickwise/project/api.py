"""``Project``: a labelling project on disk (see :mod:`pickwise.project`)."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any



from . import store as st
from .aggregate import agreement, aggregate, prediction_agreement
from .config import ProjectConfig, read_config, write_config
from .files import write_atomic
from .items import DB_KIND, AddSummary, data_kind, insert_items, read_items
from .rounds import ProjectBusyError, RoundSummary, project_lock, read_predictions, run_round
from .store import DB_NAME

__all__ = ["Project", "RoundSummary", "ImportSummary", "ProjectBusyError", "parse_labels_option"]



@dataclass(frozen=True)
class ImportSummary:
    """What ``import_labels`` did: answers read, events added, already present (a re-import), and more."""

    path: str
    read: int
    added: int
    already: int
    labels: int
    skips: int
    multi_choice: int
    annotators: list[str] = field(default_factory=list)
    seconds: float = 0.0


def parse_labels_option(labels: str | list[str] | tuple[str, ...] | Path) -> list[str]:
    """Class names from a list, ``"spam,ham"``, or a file with one name per line."""
    if isinstance(labels, (list, tuple)):
        return [str(c) for c in labels]
    text = str(labels)
    p = Path(text)
    if isinstance(labels, Path) or ("," not in text and p.is_file()):
        if not p.is_file():
            raise ValueError(f"labels file {text!r} not found")
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [c.strip() for c in text.split(",")]


class Project:
    """A project folder: ``pickwise.toml``, ``project.sqlite``, ``features/``, ``rounds/<id>/``.

    Create one with :meth:`init`, reopen it with :meth:`open`. Methods name items by their external
    ``item_id`` and classes by name.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.store = st.Store(self.path / DB_NAME)

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r})"

    # ---------------------------------------------------------------- create / open / add

    @classmethod
    def init(cls, dir: str | Path, *, data: str | Path, labels: Any, model: str | None = None,
             strategy: str | None = None, id_column: str | None = None, text_column: str | None = None,
             seed: int = 0, ids_file: str | Path | None = None, row_ids: bool = False,
             aggregation: str = "majority") -> Project:
        """Create a project in ``dir`` (new or empty) from ``data`` with classes ``labels``."""
        path = Path(dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ValueError(f"{str(path)!r} exists and is not an empty folder; choose a new project folder")
        kind = data_kind(data)
        classes = parse_labels_option(labels)
        media_root = str(Path(data).resolve()) if kind == "image" else None
        cfg = ProjectConfig(kind=kind, seed=seed, model=model or "", strategy=strategy or "",
                            aggregation=aggregation, id_column=id_column, text_column=text_column,
                            media_root=media_root)
        batch = read_items(data, id_column=id_column, text_column=text_column, media_root=media_root,
                           ids_file=ids_file, row_ids=row_ids)
        path.mkdir(parents=True, exist_ok=True)
        db = path / DB_NAME
        st.create(db, classes=classes, meta={"config_json": json.dumps(cfg.as_dict()),
                                             "classes_sha256": _classes_hash(classes),
                                             **({"media_root": media_root} if media_root else {})})
        write_config(path, cfg)
        project = cls(path)
        project._insert(batch)
        return project

    @classmethod
    def open(cls, dir: str | Path) -> Project:
        """Open an existing project (migrating its database forward if needed)."""
        path = Path(dir)
        read_config(path)  # a clear error when this is no project
        if not (path / DB_NAME).is_file():
            raise ValueError(f"{path / DB_NAME} not found: {str(path)!r} is not a complete pickwise project")
        conn = st.connect(path / DB_NAME)
        try:
            st.migrate(conn)
        finally:
            conn.close()
        return cls(path)

    @property
    def config(self) -> ProjectConfig:
        return read_config(self.path)

    @property
    def media_root(self) -> Path | None:
        root = self.config.media_root
        return Path(root) if root else None

    def _insert(self, batch: Any) -> AddSummary:
        from .models import append_features

        with self.store.transaction() as conn:
            n_before = int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
            summary, new = insert_items(conn, batch)
            if batch.features is not None and len(new):
                append_features(self.path, batch.features[new], n_before)  # before COMMIT: a crash adds nothing
        return summary

    def add_data(self, path: str | Path, *, id_column: str | None = None, text_column: str | None = None,
                 ids_file: str | Path | None = None, row_ids: bool = False) -> AddSummary:
        """Add the items of ``path`` not yet in the project (same-content ids skipped, changed ones refused)."""
        cfg = self.config
        kind = data_kind(path)
        if kind != cfg.kind:
            raise ValueError(f"{str(path)!r} holds {kind} data; this project holds {cfg.kind} data")
        batch = read_items(path, id_column=id_column or cfg.id_column, text_column=text_column or cfg.text_column,
                           media_root=cfg.media_root, ids_file=ids_file, row_ids=row_ids)
        return self._insert(batch)

    # ---------------------------------------------------------------- reading state

    def _items(self) -> dict[str, list[Any]]:
        with self.store.connection() as conn:
            rows = conn.execute("SELECT idx, item_id, text, relpath, data_json, content_sha1 FROM items ORDER BY idx")\
                .fetchall()
        if rows and rows[-1]["idx"] != len(rows) - 1:
            raise RuntimeError(f"{self.store.db_path}: item indices are not 0..n-1")
        return {"item_ids": [r["item_id"] for r in rows], "texts": [r["text"] for r in rows],
                "relpaths": [r["relpath"] for r in rows], "data": [r["data_json"] for r in rows],
                "sha1": [r["content_sha1"] for r in rows]}

    def _events(self) -> list[tuple[int, int, str, str, str | None]]:
        with self.store.connection() as conn:
            return [tuple(r) for r in conn.execute(
                "SELECT id, item_idx, annotator, event, label FROM labels ORDER BY id")]  # type: ignore[misc]

    def labels_by_idx(self) -> dict[int, str]:
        """``{item index: class}``: the current training label of each item (the project's aggregation rule)."""
        return aggregate(self._events(), self.config.aggregation)

    def _answered_idx(self) -> set[int]:
        with self.store.connection() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT item_idx FROM current_labels WHERE event = 'label'")}

    def labels(self) -> dict[str, str]:
        """``{item_id: class}`` after aggregation (multi-choice answers are not included)."""
        ids = self._items()["item_ids"]
        return {ids[i]: lab for i, lab in sorted(self.labels_by_idx().items())}

    def _idx(self, item_id: str) -> int:
        item = self.store.item_by_id(item_id)
        if item is None:
            raise ValueError(f"unknown item id {item_id!r} in {self.path}")
        return int(item["idx"])

    def label_config(self) -> Any:
        """The Label Studio config of this project (:class:`pickwise.project.labelstudio.LabelConfig`)."""
        from .labelstudio import LabelConfig

        return LabelConfig(DB_KIND[self.config.kind], tuple(self.store.classes()), choices_name="label")

    def _task_fields(self, items: dict[str, list[Any]]) -> Any:
        """``fields(i) -> (content, extra)`` of item ``i`` for Label Studio tasks (config read once, not per item)."""
        kind = self.config.kind
        value_key = self.label_config().value_key

        def fields(i: int) -> tuple[Any, dict[str, Any]]:
            data = json.loads(items["data"][i])
            if kind == "features":
                return data, {}
            extra = {k: v for k, v in data.items() if not k.startswith("pw_") and k != value_key}
            if kind == "text":
                return items["texts"][i], extra
            # image: LS serves it with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = the media root
            return f"/data/local-files/?d={items['relpaths'][i]}", extra

        return fields

    # ---------------------------------------------------------------- answers

    def _open_round_for(self, conn: Any, idx: int) -> int | None:
        row = conn.execute("SELECT q.round_id FROM queue q JOIN rounds r ON r.id = q.round_id "
                           "WHERE r.status = 'open' AND q.item_idx = ?", (idx,)).fetchone()
        return None if row is None else int(row[0])

    def _event(self, item_id: str, event: str, label: str | None, annotator: str, client_uuid: str | None,
               source: str = "human") -> bool:
        idx = self._idx(item_id)
        with self.store.transaction() as conn:
            classes = [r[0] for r in conn.execute("SELECT name FROM classes ORDER BY idx")]
            return st.insert_event(conn, client_uuid=client_uuid or st.new_uuid(), idx=idx, event=event, label=label,
                                   annotator=annotator, source=source, round_id=self._open_round_for(conn, idx),
                                   classes=classes)

    def label(self, item_id: str, label: str, *, annotator: str = "python", client_uuid: str | None = None) -> bool:
        """Record ``annotator``'s answer ``label`` on ``item_id``; a later answer corrects an earlier one.
        False when ``client_uuid`` was already recorded (a retry)."""
        return self._event(item_id, "label", label, annotator, client_uuid)

    def skip(self, item_id: str, *, annotator: str = "python", client_uuid: str | None = None) -> bool:
        """Record that ``annotator`` skipped ``item_id`` (offered again in a later round, not this one)."""
        return self._event(item_id, "skip", None, annotator, client_uuid)

    def retract(self, item_id: str, *, annotator: str = "python", client_uuid: str | None = None) -> bool:
        """Undo ``annotator``'s current answer on ``item_id`` (the history keeps it)."""
        return self._event(item_id, "retract", None, annotator, client_uuid)

    def import_labels(self, path: str | Path) -> ImportSummary:
        """Import a Label Studio export (full JSON, JSON_MIN, CSV) or an ``id,label[,annotator]`` CSV.

        All or nothing: every problem in the file is listed in one ``LabelImportError`` and nothing is
        applied; otherwise all events go in ONE transaction. Idempotent: importing a file again adds nothing.
        """
        from .labelstudio import read_labels

        t0 = time.perf_counter()
        items = self._items()
        index = {item_id: i for i, item_id in enumerate(items["item_ids"])}
        classes = self.store.classes()
        answers = read_labels(path, classes=classes, choices_name="label", known_ids=index,
                              project_uuid=self.store.project_uuid())
        added = 0
        with self.store.transaction() as conn:
            open_round = conn.execute("SELECT id FROM rounds WHERE status = 'open' ORDER BY id DESC LIMIT 1").fetchone()
            queued = set()
            if open_round is not None:
                queued = {r[0] for r in conn.execute("SELECT item_idx FROM queue WHERE round_id = ?", (open_round[0],))}
            for a in answers:
                idx = index[a.item_id]
                multi = a.event == "label" and a.label is None
                added += st.insert_event(
                    conn, client_uuid=a.client_uuid, idx=idx, event=a.event,
                    label=None if multi else a.label, labels=list(a.labels) if multi else None,
                    annotator=a.annotator[: st.MAX_ANNOTATOR], source="import",
                    round_id=open_round[0] if idx in queued else None, lead_time_ms=a.lead_time_ms,
                    created_at=a.created_at, classes=classes)
        return ImportSummary(
            path=str(path), read=len(answers), added=added, already=len(answers) - added,
            labels=sum(a.event == "label" and a.label is not None for a in answers),
            skips=sum(a.event == "skip" for a in answers),
            multi_choice=sum(a.event == "label" and a.label is None for a in answers),
            annotators=sorted({a.annotator for a in answers}), seconds=time.perf_counter() - t0)

    # ---------------------------------------------------------------- rounds

    def next(self, k: int, *, strategy: str | None = None, seed: int | None = None,
             progress: bool = True, engine: str | None = None, shards: int | None = None,
             address: str | None = None) -> RoundSummary:
        """Train on the current labels, choose ``k`` items with the strategy, record the round, write its files.

        ``engine``: "local" or "ray" runs the selection over ``shards`` shards (Ray: one actor each, on
        the cluster at ``address``, else a local one on 127.0.0.1) with the same picks as without it
        (:mod:`pickwise.engine.model`); score-based strategies, badge, coreset and dbal run there.
        Refused (``ProjectBusyError``, naming the PID) while another ``next`` runs on this project.
        """
        from .._validation import check_positive_int
        from ..progress import progress_bars

        k = check_positive_int("k", k)
        if strategy is not None:
            from ..catalog import strategy_names

            if strategy not in strategy_names():
                raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(strategy_names())}")
        build = None
        if engine is not None or shards is not None or address is not None:
            from ..engine.model import engine_builder

            if engine is None:
                raise ValueError("shards and address need engine 'local' or 'ray'")
            build = engine_builder(engine, shards=shards, address=address)
        with project_lock(self.path), progress_bars(progress):
            return run_round(self, k, strategy=strategy, seed=seed, engine=build)

    # ---------------------------------------------------------------- status and export

    def status(self) -> dict[str, Any]:
        """Counts, rounds, annotator agreement and learning progress (see the module docs of aggregate)."""
        items = self._items()
        ids = items["item_ids"]
        events = self._events()
        current = aggregate(events, self.config.aggregation)
        classes = self.store.classes()
        per_class = {c: 0 for c in classes}
        for lab in current.values():
            per_class[lab] += 1
        with self.store.connection() as conn:
            skipped = conn.execute(
                "SELECT COUNT(DISTINCT item_idx) FROM current_labels c WHERE event = 'skip' AND NOT EXISTS "
                "(SELECT 1 FROM current_labels d WHERE d.item_idx = c.item_idx AND d.event = 'label')").fetchone()[0]
            multi = conn.execute("SELECT COUNT(DISTINCT item_idx) FROM current_labels WHERE event = 'label' "
                                 "AND label IS NULL").fetchone()[0]
            rounds = conn.execute("SELECT * FROM rounds ORDER BY id").fetchall()
            done = {r[0]: r[1] for r in conn.execute(
                f"SELECT q.round_id, SUM({st._LABELLED}) FROM queue q GROUP BY q.round_id")}
            sizes = {r[0]: r[1] for r in conn.execute("SELECT round_id, COUNT(*) FROM queue GROUP BY round_id")}
        round_rows = [{"id": r["id"], "strategy": r["strategy"], "n_chosen": sizes.get(r["id"], 0),
                       "labelled": int(done.get(r["id"], 0) or 0), "status": r["status"], "n_train": r["n_train"],
                       "train_sha256": r["train_sha256"], "cold_start": bool(r["cold_start"]),
                       "created_at": r["created_at"]} for r in rounds]
        progress: dict[str, Any] = {"train_sizes": [r["n_train"] for r in round_rows], "stabilising": None}
        scored = [r for r in rounds if r["scores_path"] and not r["cold_start"]]
        if len(scored) >= 2:
            a, b = (read_predictions(self.path / r["scores_path"]) for r in scored[-2:])
            progress["stabilising"] = {"rounds": [scored[-2]["id"], scored[-1]["id"]], **prediction_agreement(a, b)}
        return {"project": str(self.path), "kind": self.config.kind, "items": len(ids), "labelled": len(current),
                "skipped": int(skipped), "multi_choice": int(multi), "per_class": per_class, "rounds": round_rows,
                "agreement": agreement(events, dict(enumerate(ids))), "learning_progress": progress}

    def export(self, path: str | Path, format: str = "csv") -> Path:
        """Write the current labels: ``csv`` (item_id,label), ``jsonl`` (one object per item, with each
        annotator's answer) or ``label-studio`` (tasks with one annotation per annotator)."""
        if format not in ("csv", "jsonl", "label-studio"):
            raise ValueError(f"export format must be csv, jsonl or label-studio; got {format!r}")
        items = self._items()
        ids = items["item_ids"]
        events = self._events()
        current = aggregate(events, self.config.aggregation)
        from .aggregate import current_answers

        answers = current_answers(events)
        out = Path(path)
        if format == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["item_id", "label"])
            for i, lab in sorted(current.items()):
                w.writerow([ids[i], lab])
            payload = buf.getvalue()
        elif format == "jsonl":
            lines = []
            for i, lab in sorted(current.items()):
                by = {a: v[2] for a, v in sorted(answers.get(i, {}).items()) if v[1] == "label"}
                lines.append(json.dumps({"item_id": ids[i], "label": lab, "annotators": by}, ensure_ascii=False))
            payload = "".join(line + "\n" for line in lines)
        else:
            from .labelstudio import ExportRow, labelled_tasks_json

            fields = self._task_fields(items)
            rows = []
            for i in sorted(answers):
                for annotator, (_, event, lab) in sorted(answers[i].items()):
                    if event == "label" and lab is not None:
                        content, extra = fields(i)
                        rows.append(ExportRow(ids[i], content, lab, annotator, extra=extra))
            tasks = labelled_tasks_json(rows, config=self.label_config(), project_uuid=self.store.project_uuid())
            payload = json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"
        write_atomic(out, payload.encode("utf-8"))
        return out


def _classes_hash(classes: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(classes).encode("utf-8")).hexdigest()


