"""One round of ``Project.next``: train on the current labels, score the pool, choose a batch, record it.

Crash safety: every file of round ``r`` goes to ``rounds/<r>/`` under a temporary name, is fsynced and
``os.replace``'d; the database rows (the round, its checkpoint, acquisitions and queue, and closing the
previous round) are committed in ONE transaction at the very end (:func:`_commit_round`). A crash before
that commit leaves no round in the database; the files it left are overwritten by the rerun, which
records exactly one round. An exclusive ``fcntl`` lock on ``.next.lock`` (holding the PID) keeps two
``next`` from running at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import BusyError, acquire_lock
from .files import commit_file, sha256_file, tmp_name, write_atomic
from .store import now_iso

LOCK_NAME = ".next.lock"


class ProjectBusyError(BusyError):
    """Another ``next`` holds the project's lock (the message names its PID)."""


@contextmanager
def project_lock(project_dir: Path):  # type: ignore[no-untyped-def]
    """Hold the exclusive ``next`` lock of ``project_dir`` (refused at once, naming the holder's PID).

    The shared lock of :func:`pickwise._fs.acquire_lock`; the lock file ``.next.lock`` stays in the project.
    """
    try:
        handle = acquire_lock(project_dir / LOCK_NAME, f"another 'pickwise next' is running on {project_dir} "
                              "(PID {pid}); wait for it to finish", remove=False)
    except BusyError as e:
        raise ProjectBusyError(str(e), e.pid) from None
    try:
        yield
    finally:
        handle.release()


def training_hash(pairs: list[tuple[str, str]]) -> str:
    """sha256 of the sorted (item_id, label) pairs, one ``id<TAB>label`` line each."""
    h = hashlib.sha256()
    for item_id, label in sorted(pairs):
        h.update(f"{item_id}\t{label}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class RoundSummary:
    """What one ``next`` did; ``chosen`` lists (rank, item_id, acquisition score, model's guess)."""

    round_id: int
    strategy: str
    seed: int
    cold_start: bool
    n_train: int
    train_sha256: str
    checkpoint_sha256: str | None
    model_version: str
    chosen: list[tuple[int, str, float, str | None]]
    tasks_path: Path
    config_path: Path
    csv_path: Path | None
    scores_path: Path
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def n_chosen(self) -> int:
        return len(self.chosen)

    def table(self, limit: int = 20) -> str:
        """The batch as a text table (first ``limit`` rows)."""
        lines = [f"{'rank':>4}  {'score':>9}  {'guess':<12}  item_id"]
        for rank, item_id, score, guess in self.chosen[:limit]:
            s = "nan" if not np.isfinite(score) else f"{score:.4g}"
            lines.append(f"{rank:>4}  {s:>9}  {str(guess or '-'):<12}  {item_id}")
        if len(self.chosen) > limit:
            lines.append(f"... and {len(self.chosen) - limit} more")
        return "\n".join(lines)


def write_scores(path: Path, item_ids: list[str], score: np.ndarray, predicted: list[str | None],
                 max_prob: np.ndarray, rank: np.ndarray) -> None:
    """``scores.parquet`` (item_id, score, predicted, max_prob, rank) under a temporary name, then replaced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"item_id": pa.array(item_ids, pa.string()), "score": pa.array(score, pa.float64()),
                      "predicted": pa.array(predicted, pa.string()), "max_prob": pa.array(max_prob, pa.float64()),
                      "rank": pa.array(rank, pa.int64())})
    tmp = tmp_name(path)
    pq.write_table(table, tmp)
    commit_file(tmp, path)


def read_predictions(path: Path) -> dict[str, str]:
    """``{item_id: predicted class}`` of a round's ``scores.parquet`` (items without a prediction left out)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["item_id", "predicted"]).to_pydict()
    return {i: p for i, p in zip(t["item_id"], t["predicted"]) if p is not None}


def _commit_round(conn: sqlite3.Connection, *, round_id: int, strategy: str, params: dict[str, Any], seed: int,
                  checkpoint: tuple[str, str, int] | None, scores_path: str, chosen_idx: np.ndarray,
                  chosen_scores: np.ndarray, n_train: int, train_sha256: str, cold_start: bool) -> None:
    """The round's rows in ONE transaction: close the open round, add checkpoint, round, acquisitions, queue."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM rounds WHERE id = ?", (round_id,)).fetchone():
            raise RuntimeError(f"round {round_id} was recorded meanwhile; rerun next")
        conn.execute("UPDATE rounds SET status = 'closed' WHERE status = 'open'")
        ck_id = None
        if checkpoint is not None:
            ck_id = conn.execute(
                "INSERT INTO checkpoints (created_at, path, sha256, n_labels, metrics_json) VALUES (?, ?, ?, ?, '{}') "
                "RETURNING id", (now_iso(), checkpoint[0], checkpoint[1], checkpoint[2])).fetchone()[0]
        conn.execute(
            "INSERT INTO rounds (id, created_at, strategy, params_json, seed, checkpoint_id, scores_path, status, "
            "n_train, train_sha256, cold_start) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            (round_id, now_iso(), strategy, json.dumps(params, sort_keys=True), seed, ck_id, scores_path, n_train,
             train_sha256, int(cold_start)))
        rows = [(round_id, int(i), None if not np.isfinite(s) else float(s), r, 1)
                for r, (i, s) in enumerate(zip(chosen_idx.tolist(), chosen_scores.tolist()))]
        conn.executemany("INSERT INTO acquisitions (round_id, item_idx, score, rank, selected) VALUES (?, ?, ?, ?, ?)",
                         rows)
        conn.executemany("INSERT INTO queue (round_id, item_idx, rank) VALUES (?, ?, ?)",
                         [(r[0], r[1], r[3]) for r in rows])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def choose(*, x: Any, labels: np.ndarray, candidates: np.ndarray, n_classes: int, k: int, strategy_name: str,
           model_name: str, round_seed: tuple[int, int], default_strategy: bool,
           engine: Any = None) -> dict[str, Any]:
    """Train (unless a cold start) and select ``k`` of ``candidates``; the model's outputs over every item.

    ``labels``: class index per item, -1 where there is no training label. ``engine``: a ``build(arrays)``
    of :func:`pickwise.engine.model.engine_builder` to select over shards (the same picks). Returns chosen indices,
    their scores, per-item scores / predictions / max probabilities, the fitted model (or None), the
    strategy name used and notes.
    """
    from ..catalog import make_strategy
    from ..pool import Pool
    from ..precomputed import select_with_values
    from ..protocols import check_capabilities
    from ..utils import derive_rng, derive_seed, take
    from .models import make_model

    seed, rid = round_seed
    n = labels.shape[0]
    lab = np.flatnonzero(labels >= 0)
    notes: list[str] = []
    score = np.full(n, np.nan)
    if np.unique(labels[lab]).size < 2:
        rng = derive_rng(seed, rid, 1)
        chosen = np.sort(rng.choice(candidates, size=k, replace=False)) if k else candidates[:0]
        chosen = rng.permutation(chosen)
        notes.append(f"cold start: {lab.size} labels over {np.unique(labels[lab]).size} classes (a model needs 2 "
                     "classes); the batch is a seeded random sample")
        return {"chosen": chosen, "chosen_scores": np.full(chosen.shape[0], np.nan), "score": score,
                "predicted": np.full(n, -1), "max_prob": np.full(n, np.nan), "model": None, "strategy": "random",
                "notes": notes}
    model = make_model(model_name, n_classes=n_classes, x=x)
    strategy = make_strategy(strategy_name)
    try:
        check_capabilities(strategy, model)
    except TypeError as e:
        if not default_strategy:
            raise ValueError(f"strategy {strategy_name!r} cannot run with model {model_name!r}: {e}") from None
        notes.append(f"strategy {strategy_name!r} needs what model {model_name!r} lacks ({e}); used 'margin'")
        strategy_name, strategy = "margin", make_strategy("margin")
    model.fit(take(x, lab), labels[lab], seed=derive_seed(seed, rid, 0))
    # the pool the strategy sees: training labels, plus every non-candidate marked so it is never chosen
    pool_labels = labels.copy()
    blocked = np.setdiff1d(np.flatnonzero(pool_labels < 0), candidates)
    pool_labels[blocked] = 0
    at = np.where(pool_labels >= 0, 0, -1)
    pool = Pool(pool_labels, at, n_classes)
    # one pass: score-based strategies record the scores they chose by; BADGE, core-set, ... the value each
    # chosen item was picked by (D², radius; NaN where a strategy has none)
    if engine is None:
        chosen, chosen_values, pool_scores = select_with_values(strategy, model, x, pool, k, rng=derive_rng(seed, rid, 1))
    else:
        from ..engine.model import select_on_engine

        chosen, chosen_values, pool_scores = select_on_engine(engine, strategy, model, x, pool, k,
                                                              rng=derive_rng(seed, rid, 1))
    if pool_scores is not None:
        score[pool.unlabeled] = pool_scores
    score[chosen] = chosen_values
    probs = model.predict_proba(x)
    return {"chosen": chosen, "chosen_scores": score[chosen], "score": score, "predicted": probs.argmax(1),
            "max_prob": probs.max(1), "model": model, "strategy": strategy_name, "notes": notes}


def run_round(project: Any, k: int, *, strategy: str | None, seed: int | None, engine: Any = None) -> RoundSummary:
    """The body of ``Project.next`` (the caller holds the lock and the progress context); ``engine``: see
    :func:`choose`."""
    from ..threads import limit_threads
    from . import labelstudio as ls
    from .models import model_inputs, save_checkpoint

    t0 = time.perf_counter()
    cfg = project.config
    seed = cfg.seed if seed is None else int(seed)
    classes = project.store.classes()
    items = project._items()
    n = len(items["item_ids"])
    if n == 0:
        raise ValueError(f"{project.path} holds no items; add data first")
    current = project.labels_by_idx()
    labels = np.full(n, -1, dtype=np.int64)
    cls_idx = {c: i for i, c in enumerate(classes)}
    for idx, label in current.items():
        labels[idx] = cls_idx[label]
    answered = project._answered_idx()  # items with any current answer (multi-choice included)
    candidates = np.setdiff1d(np.arange(n), np.fromiter(answered, dtype=np.int64, count=len(answered)))
    if candidates.size == 0:
        raise ValueError(f"every item of {project.path} has an answer; nothing is left to choose")
    k = min(int(k), int(candidates.size))
    with project.store.connection() as conn:
        rid = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM rounds").fetchone()[0])
    pairs = [(items["item_ids"][i], lab) for i, lab in current.items()]
    train_sha = training_hash(pairs)
    name = strategy or cfg.strategy
    cold = np.unique(labels[labels >= 0]).size < 2
    # threads by the project's model (1 for tfidf and mlp), unless the caller gave a count (--threads)
    with limit_threads(model=cfg.model):
        x = None if cold else model_inputs(project.path, cfg.model, item_ids=items["item_ids"], texts=items["texts"],
                                           relpaths=items["relpaths"], sha1s=items["sha1"], seed=cfg.seed,
                                           media_root=project.media_root)
        out = choose(x=x, labels=labels, candidates=candidates, n_classes=len(classes), k=k, strategy_name=name,
                     model_name=cfg.model, round_seed=(seed, rid), default_strategy=strategy is None,
                     engine=engine)
    folder = project.path / "rounds" / str(rid)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = out["chosen"]
    checkpoint = None
    if out["model"] is not None:
        path, sha = save_checkpoint(out["model"], folder / "checkpoint")
        checkpoint = (path.relative_to(project.path).as_posix(), sha, len(pairs))
        version_sha = sha
    else:  # no model in a cold start: the version names the batch instead
        version_sha = hashlib.sha256("\n".join(items["item_ids"][i] for i in chosen).encode()).hexdigest()
    rank = np.full(n, -1, dtype=np.int64)
    rank[chosen] = np.arange(chosen.shape[0])
    predicted = [classes[p] if p >= 0 else None for p in out["predicted"].tolist()]
    scores_path = folder / "scores.parquet"
    write_scores(scores_path, items["item_ids"], out["score"], predicted, out["max_prob"], rank)
    version = ls.model_version(rid, version_sha)
    fields = project._task_fields(items)
    rows = []
    for r, i in enumerate(chosen.tolist()):
        content, extra = fields(i)
        rows.append(ls.TaskRow(items["item_ids"][i], content, r, float(out["score"][i]), predicted[i], extra))
    lcfg = project.label_config()
    uuid_ = project.store.project_uuid()
    tasks_path, config_path, csv_path = folder / "tasks.json", folder / "config.xml", folder / "batch.csv"
    ls.write_tasks(tasks_path, rows, config=lcfg, project_uuid=uuid_, round_id=rid, model_version=version)
    write_atomic(config_path, ls.labelling_config(lcfg).encode("utf-8"))
    notes = list(out["notes"])
    try:
        ls.write_tasks_csv(csv_path, rows, config=lcfg, project_uuid=uuid_, round_id=rid)
    except ValueError as e:  # e.g. numeric-looking ids that LS's CSV import would mangle
        csv_path = None
        notes.append(f"no batch.csv: {e}")
    params = {"k": k, "model": cfg.model, "aggregation": cfg.aggregation, "n_items": n,
              "n_candidates": int(candidates.size), "notes": notes}
    with project.store.connection() as conn:
        _commit_round(conn, round_id=rid, strategy=out["strategy"], params=params, seed=seed, checkpoint=checkpoint,
                      scores_path=scores_path.relative_to(project.path).as_posix(), chosen_idx=chosen,
                      chosen_scores=out["chosen_scores"], n_train=len(pairs), train_sha256=train_sha, cold_start=cold)
    return RoundSummary(
        round_id=rid, strategy=out["strategy"], seed=seed, cold_start=bool(cold), n_train=len(pairs),
        train_sha256=train_sha, checkpoint_sha256=None if checkpoint is None else checkpoint[1],
        model_version=version,
        chosen=[(r, items["item_ids"][i], float(out["score"][i]), predicted[i]) for r, i in enumerate(chosen.tolist())],
        tasks_path=tasks_path, config_path=config_path, csv_path=csv_path, scores_path=scores_path,
        seconds=time.perf_counter() - t0, notes=notes)


def checkpoint_ok(project_dir: Path, rel: str, sha: str) -> bool:
    """Whether the checkpoint file at ``rel`` still has the recorded sha256."""
    p = project_dir / rel
    return p.is_file() and sha256_file(p) == sha
