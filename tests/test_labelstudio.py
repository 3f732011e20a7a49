"""Label Studio files: config XML, task export, annotation import; checked on real LS 1.23.2 exports."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from pickwise.project import labelstudio as ls
from pickwise.project.labelstudio import (
    ExportRow,
    LabelConfig,
    LabelImportError,
    TaskRow,
    labelled_tasks_json,
    labelling_config,
    model_version,
    parse_labelling_config,
    read_labels,
    tasks_json,
    validate_prediction,
    write_tasks,
    write_tasks_csv,
)

PROJECT = "0b7e3c1a-2f4d-4e8a-9c51-6d2a7f0e9b13"
OTHER_PROJECT = "11111111-2222-4333-8444-555555555555"
CLASSES = ("ham", "spam")
KNOWN = {f"t-{i}" for i in range(100, 106)}


@pytest.fixture(scope="module")
def ls_dir() -> Path:
    data = Path(os.environ.get("PICKWISE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    d = data.parent / "labelstudio"
    if not (d / "export_full.json").is_file():
        pytest.skip(f"Label Studio fixtures not found at {d}; set PICKWISE_DATA to <shared>/data")
    return d


@pytest.fixture(scope="module")
def full(ls_dir: Path) -> list[dict]:
    return json.loads((ls_dir / "export_full.json").read_text())


def _write(tmp_path: Path, doc, name: str = "export.json") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def _errors(path: Path, **kw) -> LabelImportError:
    kw = {"classes": CLASSES, "known_ids": KNOWN, "project_uuid": PROJECT, **kw}
    with pytest.raises(LabelImportError) as info:
        read_labels(path, **kw)
    return info.value


def _by_task(doc: list[dict], task_id: int) -> dict:
    return next(t for t in doc if t["id"] == task_id)


# ----------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("kind", ["text", "image", "tabular"])
def test_config_round_trip_escapes_and_hotkeys(kind: str) -> None:
    classes = ("a<b", "x & y", '"quoted"', "it's", "café", *[f"c{i}" for i in range(6)])  # 11 classes
    config = LabelConfig(kind=kind, classes=classes, choices_name="sentiment")
    xml = labelling_config(config)
    assert parse_labelling_config(xml) == config
    root = ET.fromstring(xml)  # escaping kept the XML well-formed
    choices = root.find("Choices")
    assert choices.get("toName") == config.object_name == {"text": "text", "image": "image", "tabular": "row"}[kind]
    assert root.find(config.object_tag).get("value") == "$" + config.value_key
    got = [(c.get("value"), c.get("hotkey")) for c in choices.iter("Choice")]
    assert got == [(c, str(i + 1) if i < 9 else None) for i, c in enumerate(classes)]


def test_real_config_parses(ls_dir: Path) -> None:
    config = parse_labelling_config((ls_dir / "config.xml").read_text())
    assert config == LabelConfig(kind="text", classes=CLASSES)
    assert (config.choices_name, config.object_name, config.value_key) == ("label", "text", "text")


@pytest.mark.parametrize(
    "classes, needle",
    [((), "empty"), (("a", "a"), "'a' appears more than once"), (("a", ""), "class 1"), (("a", " b"), "' b'"),
     (("a", "b\nc"), "control"), ("ab", "not the string")],
)  # fmt: skip
def test_config_refuses_bad_classes(classes, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        LabelConfig(kind="text", classes=classes)
    assert needle in str(info.value)


def test_config_refuses_bad_names() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        LabelConfig(kind="audio", classes=CLASSES)
    with pytest.raises(ValueError, match="reserved"):
        LabelConfig(kind="text", classes=CLASSES, value_key="pw_id")
    with pytest.raises(ValueError, match="choices_name"):
        LabelConfig(kind="text", classes=CLASSES, choices_name="bad name")


def test_parse_config_errors() -> None:
    with pytest.raises(ValueError, match="no <Choices> tag"):
        parse_labelling_config('<View><Text name="text" value="$text"/></View>')
    with pytest.raises(ValueError, match="toName='txt'.*no tag is named 'txt'"):
        parse_labelling_config(
            '<View><Text name="text" value="$text"/><Choices name="label" toName="txt"><Choice value="a"/>'
            "</Choices></View>"
        )
    with pytest.raises(ValueError, match="not valid XML"):
        parse_labelling_config("<View><Text")
    two = '<View><Text name="t" value="$t"/><Choices name="a" toName="t"><Choice value="x"/></Choices>'
    two += '<Choices name="b" toName="t"><Choice value="y"/></Choices></View>'
    with pytest.raises(ValueError, match="2 <Choices> tags"):
        parse_labelling_config(two)
    assert parse_labelling_config(two, choices_name="b").classes == ("y",)
    with pytest.raises(ValueError, match="appears more than once"):
        parse_labelling_config(two.replace('value="y"', 'value="y"/><Choice value="y"'), choices_name="b")


# ------------------------------------------------------------------------------------------ tasks


def _rows(kind: str, n: int, rng: np.random.Generator) -> list[TaskRow]:
    acq = np.sort(rng.random(n))[::-1]
    rows = []
    for rank in range(n):
        content = {"age": rank, "city": f"c{rank}"} if kind == "tabular" else f"item {rank} <b>&</b>"
        guess = None if rank == 2 else CLASSES[int(rng.integers(2))]
        acquisition = float("nan") if rank == 1 else acq[rank]  # numpy float64 and a NaN
        rows.append(TaskRow(f"t-{rank}", content, rank, acquisition, guess, {"source": "s", "w": np.float32(0.5)}))
    order = rng.permutation(n)
    return [rows[i] for i in order]  # any input order: tasks come out in rank order


@pytest.mark.parametrize("kind", ["text", "image", "tabular"])
def test_tasks_json_predictions_validate_against_own_config(kind: str) -> None:
    config = LabelConfig(kind=kind, classes=CLASSES, choices_name="sentiment")
    rows = _rows(kind, 7, np.random.default_rng(0))
    tasks = tasks_json(rows, config=config, project_uuid=PROJECT, round_id=3, model_version="pickwise-r3-5f1c2e")
    json.dumps(tasks, allow_nan=False)  # NaN became null
    parsed = parse_labelling_config(labelling_config(config))
    by_id = {r.item_id: r for r in rows}
    for rank, task in enumerate(tasks):
        data, (pred,) = task["data"], task["predictions"]
        row = by_id[data["pw_id"]]
        assert data["pw_rank"] == row.rank == rank
        assert pred["score"] == rank / 7 and pred["model_version"] == "pickwise-r3-5f1c2e"
        assert validate_prediction(pred, parsed) == []
        assert data[config.value_key] == row.content
        assert (data["pw_project"], data["pw_round"], data["source"], data["w"]) == (PROJECT, 3, "s", 0.5)
        if math.isnan(row.acquisition):
            assert data["pw_acq"] is None
        else:
            assert data["pw_acq"] == float(row.acquisition)
        expected = [] if row.guess is None else [row.guess]
        assert [c for r in pred["result"] for c in r["value"]["choices"]] == expected
    acqs = [t["data"]["pw_acq"] for t in tasks if t["data"]["pw_acq"] is not None]
    assert acqs == sorted(acqs, reverse=True)  # acquisition order


def test_tasks_json_matches_real_import_file(ls_dir: Path) -> None:
    real = json.loads((ls_dir / "tasks_import.json").read_text())
    config = parse_labelling_config((ls_dir / "config.xml").read_text())
    rows = [
        TaskRow(t["data"]["pw_id"], t["data"]["text"], t["data"]["pw_rank"], t["data"]["pw_acq"],
                t["predictions"][0]["result"][0]["value"]["choices"][0])
        for t in reversed(real)
    ]  # fmt: skip
    version = model_version(1, "5f1c2e" + "ab" * 29)
    assert version == "pickwise-r1-5f1c2e"
    ours = tasks_json(rows, config=config, project_uuid=PROJECT, round_id=1, model_version=version)
    assert [sorted(t) for t in ours] == [sorted(t) for t in real]
    assert [sorted(t["data"]) for t in ours] == [sorted(t["data"]) for t in real]
    assert [sorted(t["predictions"][0]) for t in ours] == [sorted(t["predictions"][0]) for t in real]
    assert ours == real  # the very file that LS 1.23.2 accepted
    for t in real:
        assert validate_prediction(t["predictions"][0], config) == []


def test_validate_prediction_names_each_mismatch(ls_dir: Path) -> None:
    config = parse_labelling_config((ls_dir / "config.xml").read_text())
    good = json.loads((ls_dir / "tasks_import.json").read_text())[0]["predictions"][0]
    for key, bad, needle in [
        ("from_name", "labels", "from_name 'labels' not found"),
        ("to_name", "image", "to_name 'image'"),
        ("type", "labels", "type must be 'choices'"),
        ("id", "p 0", "id must match"),
    ]:
        pred = copy.deepcopy(good)
        pred["result"][0][key] = bad
        (problem,) = validate_prediction(pred, config)
        assert needle in problem
    pred = copy.deepcopy(good)
    pred["result"][0]["value"]["choices"] = ["eggs"]
    pred["score"] = float("nan")
    problems = validate_prediction(pred, config)
    assert len(problems) == 2 and "'eggs' is not a class" in problems[1] and "score" in problems[0]


def test_tasks_json_refuses_bad_rows_naming_each() -> None:
    config = LabelConfig(kind="text", classes=CLASSES)
    rows = [TaskRow("t-0", "a", 0, 1.0, "eggs"), TaskRow("t-1", "b", 1, 0.5, "bacon"), TaskRow("t-2", "c", 2, 0.1, "ham")]
    with pytest.raises(ValueError) as info:
        tasks_json(rows, config=config, project_uuid=PROJECT, round_id=0, model_version="v")
    msg = str(info.value)
    assert "'t-0'" in msg and "'eggs'" in msg and "'t-1'" in msg and "'bacon'" in msg and "'t-2'" not in msg
    bad = [TaskRow("t-0", "a", 0, 1.0, None), TaskRow("t-0", 5, 2, "x", None, {"pw_round": 1})]
    with pytest.raises(ValueError) as info:
        tasks_json(bad, config=config, project_uuid=PROJECT, round_id=0, model_version="v")
    msg = str(info.value)
    for needle in ("more than once", "rank must be an integer in [0, 2)", "acquisition", "content", "reserved"):
        assert needle in msg
    with pytest.raises(ValueError, match="project_uuid"):
        tasks_json([], config=config, project_uuid="nope", round_id=0, model_version="v")
    with pytest.raises(ValueError, match="ranks must be 0..1"):
        tasks_json([TaskRow("a", "x", 1, 1.0), TaskRow("b", "y", 1, 1.0)], config=config, project_uuid=PROJECT,
                   round_id=0, model_version="v")  # fmt: skip


def test_model_version_checks_sha() -> None:
    assert model_version(12, "ABCDEF" + "0" * 58) == "pickwise-r12-abcdef"
    with pytest.raises(ValueError, match="64 hex"):
        model_version(1, "5f1c2e")
    with pytest.raises(ValueError, match="round_id"):
        model_version(-1, "0" * 64)


def test_write_tasks_is_atomic_and_valid_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = LabelConfig(kind="text", classes=CLASSES)
    rows = _rows("text", 5, np.random.default_rng(1))
    kw = dict(config=config, project_uuid=PROJECT, round_id=2, model_version="pickwise-r2-000000")
    path = tmp_path / "out" / "round-2.json"
    write_tasks(path, rows, **kw)
    assert json.loads(path.read_text(encoding="utf-8")) == tasks_json(rows, **kw)
    assert sorted(p.name for p in path.parent.iterdir()) == ["round-2.json"]  # no .tmp left
    before = path.read_bytes()
    with pytest.raises(ValueError):  # a bad batch leaves the old file alone
        write_tasks(path, [TaskRow("t-0", "x", 0, 1.0, "eggs")], **kw)

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(ls.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_tasks(path, [TaskRow("t-9", "x", 0, 1.0, "ham")], **kw)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["round-2.json"]


def test_write_tasks_csv(tmp_path: Path) -> None:
    config = LabelConfig(kind="text", classes=CLASSES)
    rows = [TaskRow("t-1", "second, with comma", 1, float("nan"), None, {"src": "a"}),
            TaskRow("t-0", "first\nline", 0, 1.5, "spam", {"src": "b", "n": 3})]  # fmt: skip
    path = tmp_path / "b.csv"
    write_tasks_csv(path, rows, config=config, project_uuid=PROJECT, round_id=4)
    got = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert list(got[0]) == ["pw_id", "pw_project", "pw_round", "pw_rank", "pw_acq", "guess", "text", "src", "n"]
    assert [r["pw_id"] for r in got] == ["t-0", "t-1"]
    assert got[0] == {"pw_id": "t-0", "pw_project": PROJECT, "pw_round": "4", "pw_rank": "0", "pw_acq": "1.5",
                      "guess": "spam", "text": "first\nline", "src": "b", "n": "3"}  # fmt: skip
    assert (got[1]["pw_acq"], got[1]["guess"], got[1]["n"]) == ("", "", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv"]
    with pytest.raises(ValueError) as info:
        write_tasks_csv(path, [TaskRow("0012", "x", 0, 1.0), TaskRow("NA", "y", 1, 1.0)], config=config,
                        project_uuid=PROJECT, round_id=0)  # fmt: skip
    assert "'0012'" in str(info.value) and "'NA'" in str(info.value)
    with pytest.raises(ValueError, match="tabular"):
        write_tasks_csv(path, [], config=LabelConfig(kind="tabular", classes=CLASSES), project_uuid=PROJECT, round_id=0)


def test_labelled_tasks_json() -> None:
    config = LabelConfig(kind="text", classes=CLASSES)
    rows = [ExportRow("t-1", "hello", "ham", "alice", 1500), ExportRow("t-2", "buy now", "spam", "alice"),
            ExportRow("t-1", "hello", "spam", "bob", None, {"src": "x"})]  # fmt: skip
    tasks = labelled_tasks_json(rows, config=config, project_uuid=PROJECT)
    assert [t["data"]["pw_id"] for t in tasks] == ["t-1", "t-2"]
    assert tasks[0]["data"] == {"text": "hello", "pw_id": "t-1", "pw_project": PROJECT}
    assert tasks[0]["meta"] == {"pw_annotators": ["alice", "bob"]}
    parsed = parse_labelling_config(labelling_config(config))
    got = []
    for t in tasks:
        for a in t["annotations"]:
            assert "completed_by" not in a and a["ground_truth"] is False and a["was_cancelled"] is False
            assert validate_prediction({"model_version": "x", "score": 0.0, "result": a["result"]}, parsed) == []
            got.append((t["data"]["pw_id"], a["result"][0]["value"]["choices"], a.get("lead_time")))
    assert got == [("t-1", ["ham"], 1.5), ("t-1", ["spam"], None), ("t-2", ["spam"], None)]
    with pytest.raises(ValueError) as info:
        labelled_tasks_json(rows + [ExportRow("t-2", "buy now", "eggs", "alice"), ExportRow("t-2", "other", "ham", "bob")],
                            config=config, project_uuid=PROJECT)  # fmt: skip
    msg = str(info.value)
    assert "row 3" in msg and "second label by 'alice'" in msg and "'eggs'" in msg and "row 4" in msg


# ----------------------------------------------------------------------------------------- import


def test_read_real_full_export(ls_dir: Path, full: list[dict]) -> None:
    got = read_labels(ls_dir / "export_full.json", classes=CLASSES, known_ids=KNOWN, project_uuid=PROJECT)
    assert [(a.item_id, a.event, a.label, a.labels) for a in got] == [
        ("t-100", "label", "spam", ("spam",)),
        ("t-101", "label", "ham", ("ham",)),
        ("t-102", "skip", None, ()),  # was_cancelled: kept as a skip event
        ("t-103", "label", "ham", ("ham",)),  # two annotations by user 1: only the latest updated_at
    ]
    assert all(a.annotator == "ls:1" and a.item_id.startswith("t-") for a in got)
    edited = _by_task(full, 4)["annotations"][0]
    assert edited["id"] == 4 and edited["updated_at"] > edited["created_at"]
    assert (got[3].where, got[3].created_at, got[3].lead_time_ms) == ("task 4 / annotation 4", edited["updated_at"], 7500)
    for a, task in zip(got, [_by_task(full, i) for i in (1, 2, 3, 4)]):
        ann = next(x for x in task["annotations"] if f"annotation {x['id']}" in a.where)
        assert a.created_at == ann["updated_at"] and a.lead_time_ms == round(ann["lead_time"] * 1000)
    assert len({a.client_uuid for a in got}) == 4


def test_edited_annotation_gives_latest_label_only(tmp_path: Path, full: list[dict]) -> None:
    doc = copy.deepcopy(full)
    older = _by_task(doc, 4)["annotations"][1]  # annotation 5: created after 4, but 4 was edited later
    older["result"][0]["value"]["choices"] = ["spam"]
    got = read_labels(_write(tmp_path, doc), classes=CLASSES)
    assert [(a.item_id, a.label) for a in got if a.item_id == "t-103"] == [("t-103", "ham")]
    older["updated_at"] = "2026-11-30T16:40:00.000000Z"  # now annotation 5 is the latest
    got2 = read_labels(_write(tmp_path, doc), classes=CLASSES)
    assert [(a.item_id, a.label, a.where) for a in got2 if a.item_id == "t-103"] == [
        ("t-103", "spam", "task 4 / annotation 5")
    ]
    # an edit changes exactly that annotation's key; the others stay
    assert {a.client_uuid for a in got} ^ {a.client_uuid for a in got2} == {
        next(a.client_uuid for a in got if a.item_id == "t-103"),
        next(a.client_uuid for a in got2 if a.item_id == "t-103"),
    }


def test_several_annotators_and_multi_choice_kept(tmp_path: Path, full: list[dict]) -> None:
    doc = copy.deepcopy(full)
    task = _by_task(doc, 1)
    second = copy.deepcopy(task["annotations"][0])
    second.update(id=9, completed_by=2, unique_id="9b9b9b9b-0000-4000-8000-000000000009")
    second["result"][0]["value"]["choices"] = ["ham", "spam"]
    task["annotations"].append(second)
    got = [a for a in read_labels(_write(tmp_path, doc), classes=CLASSES) if a.item_id == "t-100"]
    assert [(a.annotator, a.event, a.label, a.labels) for a in got] == [
        ("ls:1", "label", "spam", ("spam",)),
        ("ls:2", "label", None, ("ham", "spam")),
    ]


@pytest.mark.parametrize("name", ["export_min.json", "export.csv"])
def test_min_and_csv_agree_with_full(ls_dir: Path, name: str) -> None:
    kw = dict(classes=CLASSES, known_ids=KNOWN, project_uuid=PROJECT)
    full = read_labels(ls_dir / "export_full.json", **kw)
    flat = read_labels(ls_dir / name, **kw)

    def view(events):
        return {(a.item_id, a.annotator): (a.label, a.created_at, a.lead_time_ms) for a in events if a.event == "label"}

    assert view(flat) == view(full) and len(flat) == 3  # both lose the skip, as LS exports them
    assert all(a.event == "label" for a in flat)


def test_min_and_csv_share_keys_and_reads_are_stable(ls_dir: Path) -> None:
    kw = dict(classes=CLASSES, known_ids=KNOWN, project_uuid=PROJECT)
    a = read_labels(ls_dir / "export_min.json", **kw)
    b = read_labels(ls_dir / "export.csv", **kw)
    assert [x.client_uuid for x in a] == [x.client_uuid for x in b]
    for name in ("export_full.json", "export_min.json", "export.csv"):
        assert read_labels(ls_dir / name, **kw) == read_labels(ls_dir / name, **kw)


def test_plain_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,label\nt-100,spam\nt-101,ham\n", "labels.csv")
    got = read_labels(path, classes=CLASSES, known_ids=KNOWN)
    assert [(a.item_id, a.label, a.annotator, a.where, a.lead_time_ms) for a in got] == [
        ("t-100", "spam", "import", "row 2", None), ("t-101", "ham", "import", "row 3", None)]  # fmt: skip
    assert read_labels(path, classes=CLASSES) == got
    path2 = _write(tmp_path, "\ufeffid,label,annotator\nt-100,spam,ann\nt-100,ham,bob\nt-101,ham,\n", "l2.csv")
    got2 = read_labels(path2, classes=CLASSES, known_ids=KNOWN)
    assert [(a.item_id, a.label, a.annotator) for a in got2] == [
        ("t-100", "spam", "ann"), ("t-100", "ham", "bob"), ("t-101", "ham", "import")]  # fmt: skip
    assert not {a.client_uuid for a in got} & {a.client_uuid for a in got2}  # other bytes, other keys


# --------------------------------------------------------------------------------- import: errors


def test_unknown_ids_named(tmp_path: Path, ls_dir: Path) -> None:
    err = _errors(ls_dir / "export_full.json", known_ids={"t-100", "t-102"})
    assert len(err.problems) == 2
    assert "task 2: unknown pw_id 't-101'" in str(err) and "task 4: unknown pw_id 't-103'" in str(err)
    err = _errors(_write(tmp_path, "id,label\nt-100,spam\nx-1,ham\nt-101,ham\nx-2,spam\n", "l.csv"))
    assert [p.split(":")[0] for p in err.problems] == ["row 3", "row 5"]


def test_unknown_labels_named_with_classes(tmp_path: Path, full: list[dict]) -> None:
    doc = copy.deepcopy(full)
    _by_task(doc, 1)["annotations"][0]["result"][0]["value"]["choices"] = ["spm"]
    _by_task(doc, 4)["annotations"][1]["result"][0]["value"]["choices"] = ["ham", "eggs"]  # multi, one unknown
    err = _errors(_write(tmp_path, doc))
    assert len(err.problems) == 2
    assert "task 1 / annotation 1: unknown label(s) 'spm' (classes: 'ham', 'spam')" in str(err)
    assert "task 4 / annotation 5: unknown label(s) 'eggs'" in str(err)
    err = _errors(_write(tmp_path, "id,label\nt-100,Spam\nt-101,ham\nt-102,\n", "l.csv"))
    assert "row 2 (id 't-100'): unknown label(s) 'Spam'" in str(err) and "row 4 (id 't-102'): empty label" in str(err)


def test_truncated_and_malformed_json(tmp_path: Path, ls_dir: Path) -> None:
    text = (ls_dir / "export_min.json").read_text()
    err = _errors(_write(tmp_path, text[:200]))
    assert "malformed or truncated JSON at line" in str(err) and "column" in str(err)
    err = _errors(_write(tmp_path, '{"data": {}}'))
    assert "top level must be a JSON list" in str(err)
    err = _errors(_write(tmp_path, "  \n"))
    assert err.problems == ["the file is empty"]
    assert read_labels(_write(tmp_path, "[]"), classes=CLASSES) == []


def test_wrong_csv_header(tmp_path: Path) -> None:
    for header in ("item,label", "id,label,annotator,extra", "label,id"):
        err = _errors(_write(tmp_path, f"{header}\nt-100,spam\n", "l.csv"))
        assert f"wrong CSV header '{header}'" in str(err) and "'id,label'" in str(err)
    err = _errors(_write(tmp_path, "annotation_id,id,label\n1,1,spam\n", "l.csv"))
    assert "without the columns ['annotator', 'updated_at', 'pw_id']" in str(err)


def test_another_projects_tasks_refused(tmp_path: Path, ls_dir: Path, full: list[dict]) -> None:
    doc = copy.deepcopy(full)
    for tid in (2, 3):
        _by_task(doc, tid)["data"]["pw_project"] = OTHER_PROJECT
    err = _errors(_write(tmp_path, doc))
    assert len(err.problems) == 2
    for tid, pid in ((2, "t-101"), (3, "t-102")):
        assert f"task {tid} (pw_id '{pid}'): pw_project '{OTHER_PROJECT}' is another project" in str(err)
    assert read_labels(ls_dir / "export.csv", classes=CLASSES, project_uuid=PROJECT)  # same project passes
    err = _errors(ls_dir / "export.csv", project_uuid=OTHER_PROJECT)
    assert [p.split(" (")[0] for p in err.problems] == ["row 2", "row 3", "row 4", "row 5"]


def test_all_problems_at_once_nothing_partial(tmp_path: Path, full: list[dict]) -> None:
    doc = copy.deepcopy(full)
    del _by_task(doc, 1)["data"]["pw_id"]
    _by_task(doc, 2)["annotations"][0]["result"][0]["value"]["choices"] = ["eggs"]
    _by_task(doc, 3)["data"]["pw_id"] = "x-9"
    _by_task(doc, 4)["annotations"][0]["updated_at"] = "yesterday"
    err = _errors(_write(tmp_path, doc))
    assert [p.split(":")[0] for p in err.problems] == [
        "task 1", "task 2 / annotation 2", "task 3", "task 4 / annotation 4"]  # fmt: skip
    assert "no pw_id" in err.problems[0] and "updated_at" in err.problems[3]


def test_problem_list_is_capped_at_50(tmp_path: Path) -> None:
    rows = "".join(f"t-100,bad{i}\n" for i in range(60))
    err = _errors(_write(tmp_path, "id,label\n" + rows, "l.csv"), known_ids=None)
    assert len(err.problems) == 60 + 59  # 60 unknown labels, 59 repeats of (t-100, import)
    assert "... and 69 more" in str(err) and str(err).count("\n  - ") == 50


def test_flat_formats_multi_choice_unannotated_and_choices_name(tmp_path: Path, ls_dir: Path, full: list[dict]) -> None:
    records = json.loads((ls_dir / "export_min.json").read_text())
    records[0]["label"] = ["ham", "spam"]  # JSON_MIN writes a multi-choice as a list
    records.append({"text": "not yet labelled", "pw_id": "t-104", "pw_project": PROJECT, "id": 5})  # no annotation
    got = read_labels(_write(tmp_path, records), classes=CLASSES, known_ids=KNOWN)
    assert [(a.item_id, a.label, a.labels) for a in got][0] == ("t-100", None, ("ham", "spam"))
    assert [a.item_id for a in got] == ["t-100", "t-101", "t-103"]
    text = (ls_dir / "export.csv").read_text().replace(',"spam",', ',"[""ham"", ""spam""]",', 1)
    got = read_labels(_write(tmp_path, text, "e.csv"), classes=CLASSES)
    assert got[0].labels == ("ham", "spam") and got[0].label is None
    err = _errors(ls_dir / "export_min.json", choices_name="sentiment")
    assert len(err.problems) == 1 and "no 'sentiment' field in any annotated record" in str(err)
    err = _errors(ls_dir / "export.csv", choices_name="sentiment")
    assert "without the columns ['sentiment']" in str(err)
    err = _errors(ls_dir / "export_full.json", choices_name="sentiment")
    assert len(err.problems) == 4 and "no result from the Choices tag 'sentiment' (results come from ['label'])" in str(err)
