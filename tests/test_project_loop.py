"""Project: init → next → Label Studio export → import → next; bad imports; crashes; the lock; aggregation."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pickwise.project import Project
from pickwise.project import rounds as rounds_mod
from pickwise.project.aggregate import aggregate, agreement, cohen_kappa, current_answers
from pickwise.project.labelstudio import LabelImportError
from pickwise.project.models import load_checkpoint
from pickwise.project.rounds import ProjectBusyError, training_hash

ROOT = Path(__file__).resolve().parents[1]
SMS = Path(os.environ.get("PICKWISE_DATA", ROOT.parent / "shared" / "data")) / "sms-spam" / "SMSSpamCollection"
needs_sms = pytest.mark.skipif(not SMS.is_file(), reason=f"{SMS} not found")


def _script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


ls_answer = _script("ls_answer")
sms_data = _script("sms_project_data")


@pytest.fixture(scope="module")
def sms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not SMS.is_file():
        pytest.skip(f"{SMS} not found")
    return sms_data.write_sms(tmp_path_factory.mktemp("sms"), limit=400, data_root=SMS.parents[1])


def counts(p: Project) -> tuple[int, int, int]:
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("labels", "rounds", "queue"))


@needs_sms
def test_whole_loop_second_round_trains_on_exactly_the_imported_labels(sms: tuple[Path, Path], tmp_path: Path) -> None:
    texts, truth_csv = sms
    truth = ls_answer.read_truth(truth_csv)
    p = Project.init(tmp_path / "p", data=texts, labels="ham,spam")
    r1 = p.next(30, progress=False)
    assert r1.round_id == 1 and r1.cold_start and r1.n_train == 0 and r1.strategy == "random"
    assert len({i for _, i, _, _ in r1.chosen}) == 30
    tasks = json.loads(r1.tasks_path.read_text())
    assert [t["data"]["pw_id"] for t in tasks] == [i for _, i, _, _ in r1.chosen]
    assert [t["data"]["pw_rank"] for t in tasks] == list(range(30))
    assert "<Choices" in r1.config_path.read_text() and r1.csv_path.is_file()

    export = ls_answer.write_export(r1.tasks_path, truth_csv, tmp_path / "export.json", skip=3)
    imp = p.import_labels(export)
    assert (imp.read, imp.added, imp.labels, imp.skips) == (30, 30, 27, 3)
    expected = [(t["data"]["pw_id"], truth[t["data"]["pw_id"]]) for t in tasks[3:]]
    assert p.labels() == dict(expected)

    r2 = p.next(30, progress=False)
    assert r2.n_train == 27 and r2.train_sha256 == training_hash(expected)
    assert r2.train_sha256 == hashlib.sha256("".join(f"{i}\t{l}\n" for i, l in sorted(expected)).encode()).hexdigest()
    assert not r2.cold_start and r2.strategy in ("badge", "margin")
    assert not {i for _, i, _, _ in r2.chosen} & set(dict(expected))  # labelled items are never chosen again
    # the round's records
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        rows = conn.execute("SELECT id, status, n_train, train_sha256, cold_start FROM rounds ORDER BY id").fetchall()
        assert rows == [(1, "closed", 0, training_hash([]), 1), (2, "open", 27, r2.train_sha256, 0)]
        path, sha = conn.execute("SELECT c.path, c.sha256 FROM rounds r JOIN checkpoints c ON c.id = r.checkpoint_id "
                                 "WHERE r.id = 2").fetchone()
        acq = conn.execute("SELECT item_idx, rank FROM acquisitions WHERE round_id = 2 ORDER BY rank").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM queue WHERE round_id = 2").fetchone()[0] == 30
    assert hashlib.sha256((p.path / path).read_bytes()).hexdigest() == sha == r2.checkpoint_sha256
    arrays = load_checkpoint(p.path / path)  # numbers only: np.load(allow_pickle=False)
    assert arrays["coef"].shape[1] == json.loads((p.path / path).with_suffix(".json").read_text())["n_features"]
    assert [r for _, r in acq] == list(range(30))
    import pyarrow.parquet as pq

    scores = pq.read_table(r2.scores_path).to_pydict()
    assert len(scores["item_id"]) == 400 and sum(r >= 0 for r in scores["rank"]) == 30
    assert set(scores["predicted"]) <= {"ham", "spam"} and all(0.5 <= m <= 1 for m in scores["max_prob"])
    # BADGE has no per-item score: each chosen item carries the D² it was picked by (positive, finite)
    picked = [s for s, r in zip(scores["score"], scores["rank"]) if r >= 0]
    assert all(math.isfinite(v) and v > 0 for v in picked)
    assert r2.model_version == f"pickwise-r2-{sha[:6]}"
    # status and export
    st = p.status()
    assert (st["items"], st["labelled"], st["per_class"]) == (400, 27, dict(Counter(l for _, l in expected)))
    assert [(r["id"], r["status"], r["n_chosen"], r["labelled"]) for r in st["rounds"]] == \
        [(1, "closed", 30, 27), (2, "open", 30, 0)]
    assert st["learning_progress"]["train_sizes"] == [0, 27]
    out = p.export(tmp_path / "labels.csv")
    with open(out, newline="") as f:
        assert sorted((r["item_id"], r["label"]) for r in csv.DictReader(f)) == sorted(expected)
    lines = (p.export(tmp_path / "labels.jsonl", format="jsonl")).read_text().splitlines()
    assert len(lines) == 27 and json.loads(lines[0])["annotators"] == {"ls:1": json.loads(lines[0])["label"]}
    ls_tasks = json.loads(p.export(tmp_path / "ls.json", format="label-studio").read_text())
    assert len(ls_tasks) == 27 and ls_tasks[0]["annotations"][0]["result"][0]["value"]["choices"][0] in ("ham", "spam")
    # a third round: the stabilising-predictions signal compares rounds 2 and 3 on the whole pool
    ls_answer.write_export(r2.tasks_path, truth_csv, tmp_path / "export2.json")
    p.import_labels(tmp_path / "export2.json")
    r3 = p.next(10, progress=False)
    assert r3.n_train == 57
    stab = Project.open(p.path).status()["learning_progress"]["stabilising"]
    assert stab["rounds"] == [2, 3] and stab["items"] == 400 and 0 <= stab["agreement"] <= 1


@needs_sms
def test_bad_imports_change_nothing(sms: tuple[Path, Path], tmp_path: Path) -> None:
    texts, truth_csv = sms
    p = Project.init(tmp_path / "p", data=texts, labels=["ham", "spam"])
    r1 = p.next(10, progress=False)
    good = ls_answer.write_export(r1.tasks_path, truth_csv, tmp_path / "good.json")
    doc = json.loads(good.read_text())
    before = counts(p)

    unknown = json.loads(json.dumps(doc))
    unknown[2]["data"]["pw_id"] = "sms-999999"
    (tmp_path / "unknown.json").write_text(json.dumps(unknown))
    with pytest.raises(LabelImportError, match="sms-999999") as e:
        p.import_labels(tmp_path / "unknown.json")
    assert len(e.value.problems) == 1

    bad_label = json.loads(json.dumps(doc))
    bad_label[1]["annotations"][0]["result"][0]["value"]["choices"] = ["eggs"]
    bad_label[4]["annotations"][0]["result"][0]["value"]["choices"] = ["bacon"]
    (tmp_path / "label.json").write_text(json.dumps(bad_label))
    with pytest.raises(LabelImportError) as e:
        p.import_labels(tmp_path / "label.json")
    assert len(e.value.problems) == 2 and "eggs" in str(e.value) and "bacon" in str(e.value)

    (tmp_path / "trunc.json").write_text(good.read_text()[:500])
    with pytest.raises(LabelImportError, match="truncated"):
        p.import_labels(tmp_path / "trunc.json")
    (tmp_path / "header.csv").write_text("item,klass\nsms-1,ham\n")
    with pytest.raises(LabelImportError, match="header"):
        p.import_labels(tmp_path / "header.csv")
    assert counts(p) == before  # nothing applied by any bad file

    first = p.import_labels(good)
    assert first.added == 10
    after = counts(p)
    second = p.import_labels(good)
    assert (second.added, second.already) == (0, 10) and counts(p) == after


@needs_sms
def test_crash_late_in_next_leaves_no_round_and_rerun_records_one(sms: tuple[Path, Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    texts, truth_csv = sms
    p = Project.init(tmp_path / "p", data=texts, labels="ham,spam")
    r1 = p.next(20, progress=False)
    p.import_labels(ls_answer.write_export(r1.tasks_path, truth_csv, tmp_path / "e.json"))
    before = counts(p)
    # 1) the last file write fails: nothing in the database
    from pickwise.project import labelstudio

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(labelstudio, "write_tasks_csv", boom)
    with pytest.raises(OSError, match="simulated"):
        p.next(20, progress=False)
    monkeypatch.undo()
    assert counts(p) == before
    # 2) a failure inside the final transaction, after the checkpoint row was inserted: rolled back whole
    real = rounds_mod.now_iso
    calls = []

    def late() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("crash inside the commit (simulated)")
        return real()

    monkeypatch.setattr(rounds_mod, "now_iso", late)
    with pytest.raises(RuntimeError, match="simulated"):
        p.next(20, progress=False)
    monkeypatch.undo()
    assert counts(p) == before
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
        assert conn.execute("SELECT status FROM rounds").fetchall() == [("open",)]
    r2 = p.next(20, progress=False)
    assert r2.round_id == 2
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        assert conn.execute("SELECT id, status FROM rounds ORDER BY id").fetchall() == [(1, "closed"), (2, "open")]
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM queue WHERE round_id = 2").fetchone()[0] == 20


_KILLED_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pickwise.project import Project, rounds
    def hang(*a, **k):
        Path(sys.argv[2]).write_text("checkpoint written")
        time.sleep(60)
    rounds._commit_round = hang
    Project.open(sys.argv[1]).next(20, progress=False)
""")


@needs_sms
def test_next_killed_after_the_checkpoint_then_rerun(sms: tuple[Path, Path], tmp_path: Path) -> None:
    texts, truth_csv = sms
    p = Project.init(tmp_path / "p", data=texts, labels="ham,spam")
    r1 = p.next(20, progress=False)
    p.import_labels(ls_answer.write_export(r1.tasks_path, truth_csv, tmp_path / "e.json"))
    before = counts(p)
    marker = tmp_path / "marker"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(p.path), str(marker)], env=env)
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the commit"
        assert (p.path / "rounds" / "2" / "checkpoint.npz").is_file()
        with pytest.raises(ProjectBusyError, match=f"PID {child.pid}"):  # concurrent next refused, naming the PID
            p.next(5, progress=False)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert counts(p) == before
    r2 = p.next(20, progress=False)  # the lock died with the child
    assert r2.round_id == 2
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM rounds WHERE id = 2").fetchone()[0] == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _tiny_texts(path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("id", "text")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_label_correction_retract_and_history(tmp_path: Path) -> None:
    data = _tiny_texts(tmp_path / "t.csv", [(f"t-{i}", f"text number {i} {'win cash' if i % 2 else 'see you'}")
                                            for i in range(12)])
    p = Project.init(tmp_path / "p", data=data, labels="ham,spam")
    assert p.label("t-1", "spam", annotator="ann", client_uuid="c1") is True
    assert p.label("t-1", "spam", annotator="ann", client_uuid="c1") is False  # a retry
    p.label("t-1", "ham", annotator="ann")  # a correction supersedes
    assert p.labels() == {"t-1": "ham"}
    p.retract("t-1", annotator="ann")
    assert p.labels() == {}
    p.label("t-2", "ham", annotator="ann")
    p.skip("t-3", annotator="ann")
    with pytest.raises(ValueError, match="unknown item id 'nope'"):
        p.label("nope", "ham")
    with pytest.raises(ValueError, match="'eggs' is not one of the classes"):
        p.label("t-2", "eggs")
    with sqlite3.connect(p.path / "project.sqlite") as conn:
        hist = conn.execute("SELECT event, label FROM labels l JOIN items i ON i.idx = l.item_idx "
                            "WHERE i.item_id = 't-1' ORDER BY l.id").fetchall()
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM labels")
    assert hist == [("label", "spam"), ("label", "ham"), ("retract", None)]
    st = p.status()
    assert (st["labelled"], st["skipped"]) == (1, 1)


def test_add_data_ids_and_content_rules(tmp_path: Path) -> None:
    a = _tiny_texts(tmp_path / "a.csv", [("hello there",), ("buy now",), ("hello there",)], header=("text",))
    p = Project.init(tmp_path / "p", data=a, labels="ham,spam")
    ids = list(p.store.item(i)["item_id"] for i in range(2))
    assert ids == ["sha1:" + hashlib.sha1(b"hello there").hexdigest()[:12],
                   "sha1:" + hashlib.sha1(b"buy now").hexdigest()[:12]]
    assert p.store.item(2) is None  # identical texts are one item
    b = _tiny_texts(tmp_path / "b.csv", [("buy now",), ("new text",)], header=("text",))
    s = p.add_data(b)
    assert (s.added, s.skipped, s.first_idx) == (1, 1, 2)
    # with an id column and metadata; a changed text under a known id is refused, naming it
    c = _tiny_texts(tmp_path / "c.csv", [("x1", "one", "web"), ("x2", "two", "app")], header=("id", "text", "channel"))
    q = Project.init(tmp_path / "q", data=c, labels="a,b")
    assert q.store.item(1)["data"] == {"channel": "app"}
    d = _tiny_texts(tmp_path / "d.csv", [("x1", "one changed", "web")], header=("id", "text", "channel"))
    with pytest.raises(ValueError, match="'x1'"):
        q.add_data(d)
    assert q.status()["items"] == 2
    with pytest.raises(ValueError, match="no text column 'text'"):
        Project.init(tmp_path / "r", data=_tiny_texts(tmp_path / "e.csv", [("1", "a")], header=("id", "body")),
                     labels="a,b")
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        Project.init(tmp_path / "q", data=c, labels="a,b")


def test_features_project_needs_explicit_ids_and_trains_an_mlp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (30, 4)), rng.normal(2, 1, (30, 4))]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match="row_ids=True"):
        Project.init(tmp_path / "p0", data=tmp_path / "x.npy", labels="a,b")
    (tmp_path / "ids.txt").write_text("".join(f"f-{i}\n" for i in range(60)))
    p = Project.init(tmp_path / "p", data=tmp_path / "x.npy", labels="a,b", ids_file=tmp_path / "ids.txt",
                     strategy="margin")
    for i in (0, 1, 2, 40, 41, 42):
        p.label(f"f-{i}", "a" if i < 30 else "b")
    r = p.next(5, progress=False)
    assert r.n_train == 6 and r.strategy == "margin" and r.checkpoint_sha256
    assert (p.path / "rounds" / "1" / "checkpoint.safetensors").is_file()
    from safetensors.numpy import load_file

    assert load_file(str(p.path / "rounds" / "1" / "checkpoint.safetensors"))
    q = Project.init(tmp_path / "q", data=tmp_path / "x.npy", labels="a,b", row_ids=True)
    assert q.store.item(59)["item_id"] == "row-59"


def test_image_project_cnn(tmp_path: Path) -> None:
    from PIL import Image

    media = tmp_path / "imgs"
    (media / "sub").mkdir(parents=True)
    for i in range(12):
        a = np.full((20, 20), 30 if i % 2 else 220, dtype=np.uint8)
        Image.fromarray(a).save(media / ("sub" if i > 5 else ".") / f"im{i}.png")
    p = Project.init(tmp_path / "p", data=media, labels="dark,light", strategy="margin")
    assert p.store.item_by_id("sub/im7.png")["relpath"] == "sub/im7.png"
    for i in (0, 1, 2, 3):
        p.label(f"im{i}.png", "dark" if i % 2 else "light")
    r = p.next(3, progress=False)
    tasks = json.loads(r.tasks_path.read_text())
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=")
    assert np.load(p.path / "features" / "images32.npy").shape == (12, 1, 32, 32)


def test_open_migrates_a_version_1_database(tmp_path: Path) -> None:
    data = _tiny_texts(tmp_path / "t.csv", [("a-1", "x"), ("a-2", "y")])
    Project.init(tmp_path / "p", data=data, labels="a,b")
    db = tmp_path / "p" / "project.sqlite"
    with sqlite3.connect(db) as conn:  # take it back to a version-1 layout
        conn.execute("DROP INDEX labels_item_annotator")
        for col in ("n_train", "train_sha256", "cold_start"):
            conn.execute(f"ALTER TABLE rounds DROP COLUMN {col}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    p = Project.open(tmp_path / "p")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    p.label("a-1", "b")
    assert p.labels() == {"a-1": "b"}
    with pytest.raises(ValueError, match="not a pickwise project"):
        Project.open(tmp_path / "nothing")


# --------------------------------------------------------------------------- aggregation (pure)

def test_aggregation_majority_ties_latest_and_retract() -> None:
    ev = [(1, 0, "a", "label", "x"), (2, 0, "b", "label", "y"), (3, 0, "c", "label", "y"),  # majority y
          (4, 1, "a", "label", "x"), (5, 1, "b", "label", "y"),  # tie: latest (y)
          (6, 2, "a", "label", "x"), (7, 2, "a", "label", "y"), (8, 2, "b", "label", "x"),  # a corrected to y; tie → x
          (9, 3, "a", "label", "x"), (10, 3, "a", "retract", None),  # retracted: nothing
          (11, 4, "a", "label", None)]  # multi-choice: not trained on
    assert aggregate(ev) == {0: "y", 1: "y", 2: "x"}
    assert aggregate(ev, "latest") == {0: "y", 1: "y", 2: "x"}
    assert aggregate(ev[:2], "latest") == {0: "y"} and aggregate(ev[:2]) == {0: "y"}
    assert current_answers(ev)[2] == {"a": (7, "label", "y"), "b": (8, "label", "x")}
    with pytest.raises(ValueError, match="aggregation rule"):
        aggregate(ev, "vote")


def test_agreement_matches_reference_kappas() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    a = rng.choice(["x", "y", "z"], 40)
    b = np.where(rng.random(40) < 0.7, a, rng.choice(["x", "y", "z"], 40))
    ev = [(i + 1, i, "A", "label", a[i]) for i in range(40)] + [(100 + i, i, "B", "label", b[i]) for i in range(40)]
    ag = agreement(ev, {i: f"i{i}" for i in range(40)})
    assert ag["items"] == 40
    assert ag["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b))
    assert ag["raw"] == pytest.approx(np.mean(a == b))
    assert ag["disagreements"] == sorted(f"i{i}" for i in range(40) if a[i] != b[i])
    # Fleiss' kappa on the worked example of Fleiss (1971) style: 3 raters, hand-computed
    ev3 = [(1, 0, "A", "label", "x"), (2, 0, "B", "label", "x"), (3, 0, "C", "label", "x"),
           (4, 1, "A", "label", "x"), (5, 1, "B", "label", "y"), (6, 1, "C", "label", "y")]
    # P_0 = 1, P_1 = 1/3 → P̄ = 2/3; p_x = 4/6, p_y = 2/6 → P_e = 5/9; kappa = (2/3 - 5/9) / (4/9) = 1/4
    assert agreement(ev3)["fleiss_kappa"] == pytest.approx(0.25)
    assert agreement(ev3)["cohen_kappa"] is None  # three annotators
    assert cohen_kappa([], []) is None
