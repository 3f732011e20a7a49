"""``pickwise next --engine`` / ``Project.next(engine=...)``: the round of the plain path, selected over shards.

The Ray variant runs in test_engine_ray.py (one Ray instance per module there).
"""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pickwise.catalog import make_strategy
from pickwise.engine import LocalEngine
from pickwise.engine.model import engine_builder, select_on_engine
from pickwise.pool import Pool
from pickwise.precomputed import select_with_values
from pickwise.project import Project
from pickwise.project.rounds import read_predictions

CLASSES = ("a", "b", "c")


def blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = (rng.normal(size=(n, 5)) + y[:, None] * 1.5).astype(np.float32)
    return x, y


def labelled_project(root: Path, name: str, n_labels: int = 30) -> Project:
    x, y = blobs()
    np.save(root / "x.npy", x)
    p = Project.init(root / name, data=root / "x.npy", labels=",".join(CLASSES), model="mlp", row_ids=True, seed=3)
    for i in range(n_labels):  # the first rows, labelled by hand
        p.label(f"row-{i}", CLASSES[y[i]])
    return p


def queue(p: Project, rid: int) -> list:
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        return conn.execute("SELECT item_idx, rank FROM queue WHERE round_id = ? ORDER BY rank", (rid,)).fetchall()


def test_select_on_engine_equals_select_with_values_for_every_kind():
    """Score-based (margin, BALD, EGL), BADGE and core-set on 1/3/5 local shards: picks, values, scores, rng."""
    from pickwise.adapters import TorchClassifier, mlp

    x, y = blobs(seed=1)
    labels = np.full(len(x), -1)
    labels[:25] = y[:25]
    pool = Pool(labels, np.where(labels >= 0, 0, -1), 3)
    model = TorchClassifier(mlp(5, 3, hidden=(16,), dropout=0.3), n_classes=3, max_steps=60).fit(
        x[:25], y[:25], seed=0)
    for name in ("margin", "bald", "egl", "badge", "coreset", "entropy", "dbal"):
        strategy = make_strategy(name)
        r1 = np.random.default_rng(11)
        plain = select_with_values(strategy, model, x, pool, 20, rng=r1)
        for shards in (1, 3, 5):
            r2 = np.random.default_rng(11)
            got = select_on_engine(lambda a, s=shards: LocalEngine.from_arrays(a, n_shards=s), strategy, model, x,
                                   pool, 20, rng=r2)
            assert np.array_equal(got[0], plain[0]), (name, shards)
            assert np.array_equal(got[1], plain[1], equal_nan=True), (name, shards)
            assert (got[2] is None) == (plain[2] is None) and (got[2] is None or np.array_equal(got[2], plain[2]))
            assert r2.random() == copy.deepcopy(r1).random(), (name, shards)


def test_strategies_without_an_engine_path_are_refused():
    from pickwise.adapters import TorchClassifier, mlp

    x, y = blobs(n=60)
    pool = Pool(np.where(np.arange(60) < 10, y, -1), np.where(np.arange(60) < 10, 0, -1), 3)
    model = TorchClassifier(mlp(5, 3, hidden=(8,)), n_classes=3, max_steps=5).fit(x[:10], y[:10], seed=0)
    for name in ("typiclust", "random"):
        with pytest.raises(ValueError, match=f"strategy '{name}' does not run on an engine; these do: score-based"):
            select_on_engine(lambda a: LocalEngine.from_arrays(a), make_strategy(name), model, x, pool, 5,
                             rng=np.random.default_rng(0))


def test_engine_builder_checks_its_options():
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'; got 'spark'"):
        engine_builder("spark")
    with pytest.raises(ValueError, match="shards must be"):
        engine_builder("local", shards=0)
    with pytest.raises(ValueError, match="address '127.0.0.1:6379' needs engine 'ray'"):
        engine_builder("local", address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="shards 50 exceeds the 4 unlabelled items"):
        engine_builder("local", shards=50)({"x": np.zeros((4, 2))})


@pytest.mark.parametrize("strategy", ["badge", "coreset", "bald"])
def test_project_round_on_the_local_engine_is_the_plain_round(tmp_path, strategy):
    plain = labelled_project(tmp_path, "plain")
    sharded = labelled_project(tmp_path, "sharded")
    a = plain.next(15, strategy=strategy, progress=False)
    b = sharded.next(15, strategy=strategy, progress=False, engine="local", shards=4)
    assert a.strategy == b.strategy == strategy
    assert [c[1:] for c in a.chosen] == [c[1:] for c in b.chosen]
    assert queue(plain, 1) == queue(sharded, 1) and len(queue(plain, 1)) == 15
    assert read_predictions(a.scores_path) == read_predictions(b.scores_path)
    import pyarrow.parquet as pq

    da, db = pq.read_table(a.scores_path).to_pandas(), pq.read_table(b.scores_path).to_pandas()
    assert da.equals(db) and (da["rank"] >= 0).sum() == 15  # NaN scores of unchosen items count as equal


def test_next_cli_engine_options(tmp_path, capsys):
    from pickwise.cli import main

    p = labelled_project(tmp_path, "p")
    assert main(["next", str(p.path), "--k", "10", "--engine", "local", "--shards", "3", "--no-progress"]) == 0
    assert "round 1: 10 items chosen by badge" in capsys.readouterr().out
    assert main(["next", str(p.path), "--k", "5", "--shards", "2", "--no-progress"]) == 2
    assert capsys.readouterr().err == "pickwise next: error: shards and address need engine 'local' or 'ray'\n"
    assert main(["next", str(p.path), "--k", "5", "--engine", "local", "--shards", "0", "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("pickwise next: error: shards must be")
    assert main(["next", str(p.path), "--k", "5", "--strategy", "random", "--engine", "local", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pickwise next: error: strategy 'random' does not run on an engine") and err.count("\n") == 1
    with sqlite3.connect(p.path / "project.sqlite") as conn:  # the refused rounds recorded nothing
        assert conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 1
