"""Label Studio (LS) files: the labelling config, the tasks pickwise writes, the answers it reads back.

Pure functions over files and values; no database. Checked against real exports of LS 1.23.2.

**Score is a rank, not the acquisition value (the trap).** LS's "Uncertainty sampling" hands out the
unsolved task whose prediction (of the project's current model version) has the *lowest* ``score``
first: LS reads ``score`` as the model's confidence. pickwise's acquisition values mean "higher = more
informative", so writing them raw would ask the *least* informative item first. So every task gets
``predictions[0].score = pw_rank / batch_size`` (0.0 = ask first), the raw acquisition value goes to
``data.pw_acq`` (sortable in the Data Manager), and tasks are written in acquisition order, which
"Sequential" sampling follows in every edition. Two more LS facts: with more than one project member
LS 1.23.2 picks among those tasks at random, whatever the score; and LS sets the project's model
version only on the first import, so later rounds must set it to :func:`model_version` themselves.

LS does not validate predictions by default (a wrong ``from_name``, ``to_name`` or label is stored
silently and the pre-label never shows), so :func:`tasks_json` checks every prediction against the
parsed XML of the config it belongs to before anything is written.

Reading (:func:`read_labels`) is strict and all-or-nothing: every problem in the file is collected
and raised as one :class:`LabelImportError`; nothing partial is returned. Items are matched by
``data.pw_id`` (pickwise's ``item_id``), never by LS's task id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "LabelConfig",
    "labelling_config",
    "parse_labelling_config",
    "TaskRow",
    "tasks_json",
    "write_tasks",
    "write_tasks_csv",
    "model_version",
    "ExportRow",
    "labelled_tasks_json",
    "validate_prediction",
    "Annotation",
    "LabelImportError",
    "read_labels",
    "PICKWISE_NAMESPACE",
    "LS_MAX_TASKS",
    "LS_MAX_BYTES",
]

# kind -> (object tag, default name and value key)
_KINDS = {"text": ("Text", "text"), "image": ("Image", "image"), "tabular": ("Table", "row")}
_TAG_KIND = {tag: kind for kind, (tag, _) in _KINDS.items()}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_REGION_ID = re.compile(r"[A-Za-z0-9_-]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_SHOWN = 50
_MAX_ANNOTATOR = 64

#: uuid5 namespace of pickwise's idempotency keys (``Annotation.client_uuid``); never change it.
PICKWISE_NAMESPACE = uuid.UUID("29e84fdc-6c5f-531f-aa62-21c34ef4ebaa")
#: LS 1.23.2 refuses an import request with more tasks than this; split larger batches.
LS_MAX_TASKS = 1_000_000
#: LS 1.23.2's default ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (250 MiB) per import request.
LS_MAX_BYTES = 250 * 1024 * 1024

# strings that Label Studio's CSV import (pandas) turns into numbers, booleans or missing values
_CSV_COERCED = {
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "True", "False", "TRUE", "FALSE", "true", "false",
}  # fmt: skip


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listing(problems: Sequence[str], limit: int = _MAX_SHOWN) -> str:
    lines = [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def _fail(what: str, problems: Sequence[str]) -> None:
    if problems:
        raise ValueError(f"{what}: {len(problems)} problem(s):\n{_listing(problems)}")


def _class_problems(classes: Sequence[Any]) -> list[str]:
    if not classes:
        return ["classes must not be empty"]
    problems, seen = [], set()
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c.strip():
            problems.append(f"class {i} must be a non-empty string; got {_show(c)}")
        elif c != c.strip() or _CONTROL.search(c):
            problems.append(f"class {i} {c!r} has leading/trailing spaces or control characters")
        elif c in seen:
            problems.append(f"class {c!r} appears more than once")
        else:
            seen.add(c)
    return problems


def _shown_classes(classes: Sequence[str]) -> str:
    text = ", ".join(repr(c) for c in classes[:20])
    return text + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")


# ---------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class LabelConfig:
    """What pickwise needs of an LS labelling config: one object tag and one single-choice Choices tag.

    ``classes`` are in hotkey order. ``object_name`` and ``value_key`` default by ``kind``:
    ``<Text name="text" value="$text"/>``, ``<Image name="image" value="$image"/>``,
    ``<Table name="row" value="$row"/>`` (tabular: a dict shown as a key/value table).
    """

    kind: str
    classes: tuple[str, ...]
    choices_name: str = "label"
    object_name: str = ""
    value_key: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}; got {_show(self.kind)}")
        if isinstance(self.classes, str):
            raise ValueError(f"classes must be a sequence of names, not the string {_show(self.classes)}")
        object.__setattr__(self, "classes", tuple(self.classes))
        _fail("LabelConfig classes", _class_problems(self.classes))
        default = _KINDS[self.kind][1]
        if not self.object_name:
            object.__setattr__(self, "object_name", default)
        if not self.value_key:
            object.__setattr__(self, "value_key", default)
        for name in ("choices_name", "object_name", "value_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME.match(value):
                raise ValueError(f"{name} must match {_NAME.pattern!r}; got {_show(value)}")
        if self.choices_name == self.object_name:
            raise ValueError(f"choices_name and object_name must differ; both are {self.choices_name!r}")
        if self.value_key.startswith("pw_"):
            raise ValueError(f"value_key {self.value_key!r} is reserved: pw_* keys hold pickwise's fields")

    @property
    def object_tag(self) -> str:
        """The LS object tag for ``kind``: ``Text``, ``Image`` or ``Table``."""
        return _KINDS[self.kind][0]


def labelling_config(config: LabelConfig) -> str:
    """The LS labelling config XML: the object tag, then ``<Choices>`` with one ``<Choice>`` per class.

    The first nine classes get hotkeys ``"1"``..``"9"`` (the same keys as pickwise's own page). Class
    names are XML-escaped; empty, duplicate or control-character names are refused.
    """
    _fail("labelling config", _class_problems(config.classes))
    view = ET.Element("View")
    ET.SubElement(view, config.object_tag, {"name": config.object_name, "value": "$" + config.value_key})
    choices = ET.SubElement(
        view, "Choices", {"name": config.choices_name, "toName": config.object_name, "choice": "single"}
    )
    for i, name in enumerate(config.classes):
        attrs = {"value": name, "hotkey": str(i + 1)} if i < 9 else {"value": name}
        ET.SubElement(choices, "Choice", attrs)
    return ET.tostring(view, encoding="unicode")


def parse_labelling_config(xml: str, *, choices_name: str | None = None) -> LabelConfig:
    """The :class:`LabelConfig` of an LS labelling config XML (the reverse of :func:`labelling_config`).

    Needs exactly one ``<Choices>`` tag (or the one named ``choices_name``) whose ``toName`` names a
    ``Text``, ``Image`` or ``Table`` tag with ``value="$key"``. A ``<Choice alias=...>`` is read as its
    alias, which is what LS writes into results.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"labelling config is not valid XML: {e}") from None
    found = [el for el in root.iter("Choices") if choices_name is None or el.get("name") == choices_name]
    if not found:
        which = f"named {choices_name!r}" if choices_name else "at all"
        names = [el.get("name") for el in root.iter("Choices")]
        raise ValueError(
            f"labelling config has no <Choices> tag {which} (Choices tags: {names}); pickwise needs "
            f'<Choices name="..." toName="..."> with one <Choice value="..."/> per class'
        )
    if len(found) > 1:
        names = [el.get("name") for el in found]
        raise ValueError(f"labelling config has {len(found)} <Choices> tags {names}; pass choices_name=")
    choices = found[0]
    name, to = choices.get("name"), choices.get("toName")
    if not name or not to:
        raise ValueError(f"<Choices> needs both name and toName; got name={name!r}, toName={to!r}")
    targets = [el for el in root.iter() if el.get("name") == to and el is not choices]
    if not targets:
        named = sorted({el.get("name", "") for el in root.iter() if el.get("name") and el is not choices})
        raise ValueError(f"<Choices name={name!r}> has toName={to!r}, but no tag is named {to!r} (named: {named})")
    target = targets[0]
    if target.tag not in _TAG_KIND:
        raise ValueError(f"<{target.tag} name={to!r}> is not supported; pickwise reads {sorted(_TAG_KIND)}")
    value = target.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise ValueError(f'<{target.tag} name={to!r}> needs value="$key"; got value={value!r}')
    classes = []
    for el in choices.iter("Choice"):
        cls = el.get("alias") or el.get("value")
        if cls is None:
            raise ValueError(f"<Choice> without a value in <Choices name={name!r}>: {ET.tostring(el, 'unicode')}")
        classes.append(cls)
    return LabelConfig(
        kind=_TAG_KIND[target.tag], classes=tuple(classes), choices_name=name, object_name=to, value_key=value[1:]
    )


def _region(region_id: str, config: LabelConfig, labels: Sequence[str]) -> dict[str, Any]:
    return {
        "id": region_id,
        "from_name": config.choices_name,
        "to_name": config.object_name,
        "type": "choices",
        "value": {"choices": list(labels)},
    }


def _result_problems(result: Any, config: LabelConfig, where: str) -> list[str]:
    if not isinstance(result, list):
        return [f"{where}: result must be a list; got {_show(result)}"]
    problems = []
    for j, r in enumerate(result):
        at = f"{where} result {j}"
        if not isinstance(r, dict):
            problems.append(f"{at}: must be an object; got {_show(r)}")
            continue
        if not isinstance(r.get("id"), str) or not _REGION_ID.match(r["id"]):
            problems.append(f"{at}: id must match {_REGION_ID.pattern!r}; got {_show(r.get('id'))}")
        if r.get("from_name") != config.choices_name:
            problems.append(
                f"{at}: from_name {_show(r.get('from_name'))} not found in the config "
                f"(its Choices tag is named {config.choices_name!r})"
            )
        if r.get("to_name") != config.object_name:
            problems.append(
                f"{at}: to_name {_show(r.get('to_name'))} is not the Choices tag's toName {config.object_name!r}"
            )
        if r.get("type") != "choices":
            problems.append(f"{at}: type must be 'choices'; got {_show(r.get('type'))}")
        value = r.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or len(choices) != 1:
            problems.append(f"{at}: value must be {{'choices': [one class]}} (single choice); got {_show(value)}")
        elif choices[0] not in config.classes:
            problems.append(f"{at}: label {_show(choices[0])} is not a class ({_shown_classes(config.classes)})")
    return problems


def validate_prediction(prediction: Any, config: LabelConfig, *, where: str = "prediction") -> list[str]:
    """Every problem of one LS prediction against ``config`` (empty list: valid).

    Checks what LS's optional prediction validation checks: ``model_version`` (a string), a finite
    ``score``, and each region's ``id``, ``from_name``, ``to_name``, ``type`` and label.
    """
    if not isinstance(prediction, dict):
        return [f"{where}: must be an object; got {_show(prediction)}"]
    problems = []
    if not isinstance(prediction.get("model_version"), str) or not prediction["model_version"]:
        mv = _show(prediction.get("model_version"))
        problems.append(f"{where}: model_version must be a non-empty string; got {mv}")
    score = prediction.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        problems.append(f"{where}: score must be a finite number; got {_show(score)}")
    problems += _result_problems(prediction.get("result"), config, where)
    return problems


# ----------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskRow:
    """One item of a batch: ``rank`` 0 is asked first; ``acquisition`` is the raw value (NaN allowed).

    ``content`` is the text, the image URL, or a dict (tabular). ``guess`` is the model's argmax class
    (the pre-label) or None. ``extra`` holds metadata carried in ``data``; its keys must not be the
    config's value key or start with ``pw_``.
    """

    item_id: str
    content: Any
    rank: int
    acquisition: float
    guess: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, non-finite floats -> None."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings; got {_show(k)}")
            out[k] = _jsonable(v, where)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist(), where)
    raise ValueError(f"{where}: {_show(value)} ({type(value).__name__}) cannot be written as JSON")


def _check_uuid(project_uuid: Any) -> str:
    try:
        return str(uuid.UUID(str(project_uuid)))
    except ValueError:
        raise ValueError(f"project_uuid must be a UUID; got {_show(project_uuid)}") from None


def _check_round(round_id: Any) -> int:
    if isinstance(round_id, bool) or not isinstance(round_id, int) or round_id < 0:
        raise ValueError(f"round_id must be an integer >= 0; got {_show(round_id)}")
    return int(round_id)


def _ordered_rows(rows: Iterable[TaskRow], config: LabelConfig) -> list[TaskRow]:
    """The rows sorted by rank, after checking each (all problems at once)."""
    rows = list(rows)
    problems: list[str] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, TaskRow):
            problems.append(f"row {i}: expected a TaskRow; got {type(row).__name__}")
            continue
        at = f"row {i} (item_id {_show(row.item_id)})"
        if not isinstance(row.item_id, str) or not row.item_id or _CONTROL.search(row.item_id):
            problems.append(f"{at}: item_id must be a non-empty string without control characters")
        elif row.item_id in seen:
            problems.append(f"{at}: item_id appears more than once in the batch")
        else:
            seen.add(row.item_id)
        if isinstance(row.rank, bool) or not isinstance(row.rank, int) or not 0 <= row.rank < len(rows):
            problems.append(f"{at}: rank must be an integer in [0, {len(rows)}); got {_show(row.rank)}")
        acq = row.acquisition
        if isinstance(acq, (bool, str, bytes)) or not _is_real(acq):
            problems.append(f"{at}: acquisition must be a number; got {_show(acq)}")
        want = dict if config.kind == "tabular" else str
        if not isinstance(row.content, want):
            problems.append(f"{at}: {config.kind} content must be a {want.__name__}; got {_show(row.content)}")
        if not isinstance(row.extra, dict):
            problems.append(f"{at}: extra must be a dict; got {_show(row.extra)}")
        else:
            clash = [k for k in row.extra if k == config.value_key or str(k).startswith("pw_")]
            if clash:
                problems.append(f"{at}: extra keys {clash} are reserved (the value key and pw_*)")
    ranks = sorted(r.rank for r in rows if isinstance(r, TaskRow) and isinstance(r.rank, int))
    if not problems and ranks != list(range(len(rows))):
        problems.append(f"ranks must be 0..{len(rows) - 1}, each once; got {ranks[:20]}")
    _fail("Label Studio tasks", problems)
    return sorted(rows, key=lambda r: r.rank)


def _is_real(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _acq(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def tasks_json(
    rows: Iterable[TaskRow], *, config: LabelConfig, project_uuid: str, round_id: int, model_version: str
) -> list[dict[str, Any]]:
    """LS import tasks for a batch, in acquisition order (by ``rank``).

    ``data`` holds the content under ``config.value_key`` plus ``pw_id``, ``pw_project``,
    ``pw_round``, ``pw_rank``, ``pw_acq`` (null for NaN) and ``extra``. ``predictions[0]`` has
    ``model_version``, ``score = rank / batch_size`` (see the module docstring: a rank, lowest =
    ask first) and the guess as pre-label (an empty result when there is no guess, so the task still
    takes part in score-ordered sampling). Every prediction is validated against the parsed XML of
    ``labelling_config(config)``; a ValueError names each bad task and value.
    """
    project = _check_uuid(project_uuid)
    round_id = _check_round(round_id)
    if not isinstance(model_version, str) or not model_version.strip():
        raise ValueError(f"model_version must be a non-empty string; got {_show(model_version)}")
    ordered = _ordered_rows(rows, config)
    n = len(ordered)
    tasks = []
    for row in ordered:
        data = {
            config.value_key: _jsonable(row.content, f"content of {row.item_id!r}"),
            "pw_id": row.item_id,
            "pw_project": project,
            "pw_round": round_id,
            "pw_rank": row.rank,
            "pw_acq": _acq(row.acquisition),
            **_jsonable(row.extra, f"extra of {row.item_id!r}"),
        }
        result = [] if row.guess is None else [_region("p0", config, [row.guess])]
        prediction = {"model_version": model_version, "score": row.rank / n, "result": result}
        tasks.append({"data": data, "predictions": [prediction]})
    checked = parse_labelling_config(labelling_config(config))
    problems = []
    for i, task in enumerate(tasks):
        for j, pred in enumerate(task["predictions"]):
            where = f"task {i} (pw_id {task['data']['pw_id']!r}) prediction {j}"
            problems += validate_prediction(pred, checked, where=where)
    _fail("Label Studio predictions do not match the labelling config", problems)
    return tasks


def _atomic_write(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically and durably (:func:`pickwise.project.files.write_atomic`)."""
    from .files import write_atomic

    write_atomic(path, payload)


def write_tasks(
    path: str | os.PathLike[str],
    rows: Iterable[TaskRow],
    *,
    config: LabelConfig,
    project_uuid: str,
    round_id: int,
    model_version: str,
) -> None:
    """Write :func:`tasks_json` as one JSON list (UTF-8) to ``path``, atomically.

    Refuses batches above LS's per-request limits (:data:`LS_MAX_TASKS`, :data:`LS_MAX_BYTES`).
    """
    tasks = tasks_json(rows, config=config, project_uuid=project_uuid, round_id=round_id, model_version=model_version)
    if len(tasks) > LS_MAX_TASKS:
        raise ValueError(f"{len(tasks)} tasks exceed Label Studio's {LS_MAX_TASKS} per import; split the batch")
    payload = (json.dumps(tasks, ensure_ascii=False, indent=2, allow_nan=False) + "\n").encode("utf-8")
    if len(payload) > LS_MAX_BYTES:
        raise ValueError(
            f"{len(payload)} bytes exceed Label Studio's default {LS_MAX_BYTES} per import; split the batch"
        )
    _atomic_write(path, payload)


def _csv_cell(value: Any) -> str:
    value = _jsonable(value, "csv cell")
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_tasks_csv(
    path: str | os.PathLike[str],
    rows: Iterable[TaskRow],
    *,
    config: LabelConfig,
    project_uuid: str,
    round_id: int,
) -> None:
    """Write the batch as CSV for LS's CSV import, atomically, in acquisition order.

    Columns: ``pw_id, pw_project, pw_round, pw_rank, pw_acq, guess, <value_key>, <extra keys...>``.
    CSV carries no predictions (so no pre-labels and no score order: prefer :func:`write_tasks`).
    LS's CSV import turns numeric-looking cells into numbers (``0012`` becomes 12), so item ids that
    look like numbers, booleans or missing values are refused, and tabular content (a dict) is too.
    """
    project = _check_uuid(project_uuid)
    round_id = _check_round(round_id)
    if config.kind == "tabular":
        raise ValueError("tabular content (a dict per item) cannot travel in a CSV cell; use write_tasks (JSON)")
    ordered = _ordered_rows(rows, config)
    problems = []
    for row in ordered:
        if row.item_id in _CSV_COERCED or _is_number(row.item_id):
            problems.append(
                f"item_id {row.item_id!r} would be read by Label Studio's CSV import as a number or missing value; "
                f"use write_tasks (JSON) or non-numeric ids such as 't-{row.item_id}'"
            )
        if row.guess is not None and row.guess not in config.classes:
            shown = _shown_classes(config.classes)
            problems.append(f"item_id {row.item_id!r}: guess {row.guess!r} is not a class ({shown})")
        if "guess" in row.extra:
            problems.append(f"item_id {row.item_id!r}: extra key 'guess' clashes with the guess column")
    _fail("Label Studio CSV tasks", problems)
    extra_keys: list[str] = []
    for row in ordered:
        extra_keys += [k for k in row.extra if k not in extra_keys]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["pw_id", "pw_project", "pw_round", "pw_rank", "pw_acq", "guess", config.value_key, *extra_keys])
    for row in ordered:
        acq = _acq(row.acquisition)
        writer.writerow(
            [row.item_id, project, round_id, row.rank, "" if acq is None else repr(acq), row.guess or "", row.content]
            + [_csv_cell(row.extra.get(k)) for k in extra_keys]
        )
    _atomic_write(path, out.getvalue().encode("utf-8"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def model_version(round_id: int, checkpoint_sha256: str) -> str:
    """The LS model version of a round: ``"pickwise-r<round>-<first 6 hex of the checkpoint sha256>"``."""
    round_id = _check_round(round_id)
    sha = checkpoint_sha256.lower() if isinstance(checkpoint_sha256, str) else ""
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"checkpoint_sha256 must be 64 hex digits; got {_show(checkpoint_sha256)}")
    return f"pickwise-r{round_id}-{sha[:6]}"


@dataclass(frozen=True)
class ExportRow:
    """One current label to export: ``item_id``'s answer ``label`` by ``annotator``.

    Rows of one item must share ``content`` and ``extra`` (the first row's ``extra`` is written).
    """

    item_id: str
    content: Any
    label: str
    annotator: str
    lead_time_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def labelled_tasks_json(rows: Sequence[ExportRow], *, config: LabelConfig, project_uuid: str) -> list[dict[str, Any]]:
    """LS import tasks carrying the current labels as ``annotations`` (for ``pickwise export``).

    One task per item (in the order items first appear), one annotation per (item, annotator) with
    result choices ``[label]``, ``ground_truth`` false (LS's import would default it to true) and
    ``lead_time`` in seconds. ``completed_by`` is left out: LS refuses an import whose
    ``completed_by`` is not one of its own user ids or e-mails, and without it assigns the
    importing user. pickwise's annotator names go to ``meta.pw_annotators`` in annotation order.
    """
    project = _check_uuid(project_uuid)
    problems: list[str] = []
    tasks: dict[str, dict[str, Any]] = {}
    contents: dict[str, Any] = {}
    pairs: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, ExportRow):
            problems.append(f"row {i}: expected an ExportRow; got {type(row).__name__}")
            continue
        at, before = f"row {i} (item_id {_show(row.item_id)})", len(problems)
        if not isinstance(row.item_id, str) or not row.item_id:
            problems.append(f"{at}: item_id must be a non-empty string")
        if not isinstance(row.annotator, str) or not row.annotator:
            problems.append(f"{at}: annotator must be a non-empty string; got {_show(row.annotator)}")
        elif (row.item_id, row.annotator) in pairs:
            problems.append(f"{at}: a second label by {row.annotator!r} (export one current label per annotator)")
        pairs.add((row.item_id, row.annotator))
        ms = row.lead_time_ms
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 0):
            problems.append(f"{at}: lead_time_ms must be an integer >= 0 or None; got {_show(ms)}")
        result = [_region("a0", config, [row.label])]
        problems += _result_problems(result, config, at)
        if row.item_id in contents and row.content != contents[row.item_id]:
            problems.append(f"{at}: content differs from the item's first row")
        if row.item_id not in tasks:
            want = dict if config.kind == "tabular" else str
            if not isinstance(row.content, want):
                problems.append(f"{at}: {config.kind} content must be a {want.__name__}; got {_show(row.content)}")
            clash = [k for k in row.extra if k == config.value_key or str(k).startswith("pw_")]
            if clash:
                problems.append(f"{at}: extra keys {clash} are reserved (the value key and pw_*)")
            try:
                data = {config.value_key: _jsonable(row.content, at), "pw_id": row.item_id, "pw_project": project}
                data.update(_jsonable(row.extra, at))
            except ValueError as e:
                problems.append(str(e))
        if len(problems) > before:
            continue
        if row.item_id not in tasks:
            contents[row.item_id] = row.content
            tasks[row.item_id] = {"data": data, "annotations": [], "meta": {"pw_annotators": []}}
        annotation: dict[str, Any] = {"result": result, "was_cancelled": False, "ground_truth": False}
        if ms is not None:
            annotation["lead_time"] = ms / 1000
        tasks[row.item_id]["annotations"].append(annotation)
        tasks[row.item_id]["meta"]["pw_annotators"].append(row.annotator)
    _fail("Label Studio labelled tasks", problems)
    return list(tasks.values())


# ---------------------------------------------------------------------------------------- import


@dataclass(frozen=True)
class Annotation:
    """One answer read from a file: a ``"label"`` or a ``"skip"`` event for ``item_id``.

    ``labels`` holds every choice; ``label`` is the single choice, None for a skip and for a
    multi-choice answer (kept whole in ``labels``). ``created_at`` is ISO-8601 (LS's ``updated_at``),
    ``client_uuid`` the idempotency key, ``where`` the place in the file ("task 3 / annotation 7").
    """

    item_id: str
    event: str
    label: str | None
    labels: tuple[str, ...]
    annotator: str
    created_at: str
    lead_time_ms: int | None
    client_uuid: str
    where: str


class LabelImportError(ValueError):
    """A labels file with problems; ``problems`` lists every one, and nothing was imported."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{len(self.problems)} problem(s); nothing was imported:\n{_listing(self.problems)}")


def _key(*parts: Any) -> str:
    return str(uuid.uuid5(PICKWISE_NAMESPACE, json.dumps([str(p) for p in parts])))


@dataclass
class _Reader:
    classes: tuple[str, ...]
    choices_name: str
    known_ids: Container[str] | None
    project: str | None
    problems: list[str] = field(default_factory=list)

    def item(self, data: Any, where: str) -> str | None:
        """``data.pw_id`` after the project and known-id checks (None and a problem if it fails)."""
        if not isinstance(data, dict):
            self.problems.append(f"{where}: no data object; got {_show(data)}")
            return None
        pid = data.get("pw_id")
        if pid is None or pid == "":
            self.problems.append(f"{where}: no pw_id in the task data (pickwise never matches by Label Studio's id)")
            return None
        if not isinstance(pid, str):
            self.problems.append(f"{where}: pw_id must be a string; got {_show(pid)}")
            return None
        proj = data.get("pw_project")
        if self.project is not None and proj not in (None, "") and _canonical(proj) != self.project:
            self.problems.append(
                f"{where} (pw_id {pid!r}): pw_project {_show(proj)} is another project (this one is {self.project})"
            )
            return None
        if self.known_ids is not None and pid not in self.known_ids:
            self.problems.append(f"{where}: unknown pw_id {pid!r} (not an item of this project)")
            return None
        return pid

    def labels(self, labels: list[Any], where: str) -> tuple[str, ...] | None:
        if not labels or not all(isinstance(x, str) for x in labels):
            self.problems.append(f"{where}: choices must be a non-empty list of class names; got {_show(labels)}")
            return None
        unknown = [x for x in labels if x not in self.classes]
        if unknown:
            self.problems.append(
                f"{where}: unknown label(s) {', '.join(repr(x) for x in unknown)} "
                f"(classes: {_shown_classes(self.classes)})"
            )
            return None
        return tuple(dict.fromkeys(labels))

    def time(self, value: Any, where: str, name: str = "updated_at") -> datetime | None:
        if isinstance(value, str):
            try:
                t = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
            except ValueError:
                pass
            else:
                return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        self.problems.append(f"{where}: {name} must be an ISO-8601 time; got {_show(value)}")
        return None

    def lead_ms(self, value: Any, where: str) -> int | None:
        if value is None or value == "":
            return None
        seconds = value
        if isinstance(value, str):
            try:
                seconds = float(value)
            except ValueError:
                pass
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
            self.problems.append(f"{where}: lead_time must be seconds >= 0 or null; got {_show(value)}")
            return None
        return round(seconds * 1000)


def _canonical(project: Any) -> str:
    try:
        return str(uuid.UUID(str(project)))
    except ValueError:
        return str(project)


def _event(labels: tuple[str, ...] | None) -> tuple[str, str | None, tuple[str, ...]]:
    if not labels:
        return "skip", None, ()
    return "label", labels[0] if len(labels) == 1 else None, labels


def _latest(found: list[tuple[tuple[Any, ...], tuple[Any, ...], Annotation]]) -> list[Annotation]:
    """Per key (item, annotator) the entry with the largest sort key; file order kept."""
    best: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for i, (key, rank, _) in enumerate(found):
        if key not in best or rank > best[key][0]:
            best[key] = (rank, i)
    keep = sorted(i for _, i in best.values())
    return [found[i][2] for i in keep]


def _read_full(doc: list[Any], r: _Reader) -> list[Annotation]:
    found = []
    for pos, task in enumerate(doc):
        if not isinstance(task, dict):
            r.problems.append(f"task #{pos + 1}: must be an object; got {_show(task)}")
            continue
        tid = task.get("id", f"#{pos + 1}")
        anns = task.get("annotations", [])
        if not isinstance(anns, list):
            r.problems.append(f"task {tid}: annotations must be a list; got {_show(anns)}")
            continue
        if not anns:
            continue
        item = r.item(task.get("data"), f"task {tid}")
        for apos, ann in enumerate(anns):
            before = len(r.problems)
            aid = ann.get("id", f"#{apos + 1}") if isinstance(ann, dict) else f"#{apos + 1}"
            where = f"task {tid} / annotation {aid}"
            if not isinstance(ann, dict):
                r.problems.append(f"{where}: must be an object; got {_show(ann)}")
                continue
            who = ann.get("completed_by")
            if isinstance(who, dict):
                who = who.get("id", who.get("email"))
            if who is None or isinstance(who, (bool, dict, list)):
                r.problems.append(f"{where}: completed_by must be a user id; got {_show(ann.get('completed_by'))}")
            updated = r.time(ann.get("updated_at"), where)
            unique_id = ann.get("unique_id")
            if not isinstance(unique_id, str) or not unique_id:
                r.problems.append(f"{where}: no unique_id (export the full JSON of Label Studio >= 1.8)")
            lead = r.lead_ms(ann.get("lead_time"), where)
            result = ann.get("result", [])
            labels: tuple[str, ...] | None = ()
            if not isinstance(result, list):
                r.problems.append(f"{where}: result must be a list; got {_show(result)}")
                labels = None
            elif ann.get("was_cancelled") is not True and result:
                labels = _full_labels(result, where, r)
            if item is None or len(r.problems) > before:
                continue  # the problem is recorded; keep scanning for more
            event, label, all_labels = _event(labels)
            a = Annotation(
                item_id=item, event=event, label=label, labels=all_labels, annotator=f"ls:{who}",
                created_at=ann["updated_at"], lead_time_ms=lead, where=where,
                client_uuid=_key("ls-full", unique_id, ann["updated_at"]),
            )  # fmt: skip
            found.append(((item, str(who)), (updated, aid if isinstance(aid, int) else -1), a))
    return _latest(found)


def _full_labels(result: list[Any], where: str, r: _Reader) -> tuple[str, ...] | None:
    regions = [x for x in result if isinstance(x, dict) and x.get("from_name") == r.choices_name]
    if not regions:
        names = sorted({str(x.get("from_name")) for x in result if isinstance(x, dict)})
        r.problems.append(
            f"{where}: no result from the Choices tag {r.choices_name!r} (results come from {names}); "
            "pass the config's choices_name"
        )
        return None
    labels: list[Any] = []
    for x in regions:
        value = x.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list):
            r.problems.append(f"{where}: value must be {{'choices': [...]}}; got {_show(value)}")
            return None
        labels += choices
    return r.labels(labels, where)


def _flat_labels(value: Any, where: str, r: _Reader, *, from_csv: bool) -> tuple[str, ...] | None:
    """A JSON_MIN value or LS CSV cell: a bare class name, a list of them, or {"choices": [...]}."""
    if from_csv and value not in r.classes and value[:1] in ("[", "{"):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict) and "choices" in value:
        value = value["choices"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        r.problems.append(f"{where}: cannot read {_show(value)} as choices")
        return None
    return r.labels(value, where)


def _read_flat(records: list[tuple[str, dict[str, Any]]], r: _Reader, *, from_csv: bool) -> list[Annotation]:
    """LS JSON_MIN records or LS CSV rows: one per annotation (skips are not exported by LS)."""
    annotated = [(w, rec) for w, rec in records if rec.get("annotation_id") not in (None, "")]
    if annotated and not any(r.choices_name in rec for _, rec in annotated):
        keys = sorted({k for _, rec in annotated for k in rec})
        r.problems.append(f"no {r.choices_name!r} field in any annotated record (fields: {keys}); pass choices_name")
        return []
    for at, rec in records:
        if rec.get("annotation_id") in (None, "") and rec.get(r.choices_name) not in (None, ""):
            where = at or f"task {rec.get('id', '?')}"
            r.problems.append(f"{where}: has a {r.choices_name!r} value but no annotation_id")
    found = []
    for at, rec in annotated:
        before = len(r.problems)
        aid = rec["annotation_id"]
        where = f"task {rec.get('id', '?')} / annotation {aid}"
        where = f"{at} ({where})" if at else where
        item = r.item(rec, where)
        who = rec.get("annotator")
        if who in (None, "") or isinstance(who, (bool, dict, list)):
            r.problems.append(f"{where}: annotator must be a user id; got {_show(who)}")
        updated = r.time(rec.get("updated_at"), where)
        lead = r.lead_ms(rec.get("lead_time"), where)
        value = rec.get(r.choices_name)
        labels = () if value in (None, "", []) else _flat_labels(value, where, r, from_csv=from_csv)
        if item is None or len(r.problems) > before:
            continue
        event, label, all_labels = _event(labels)
        a = Annotation(
            item_id=item, event=event, label=label, labels=all_labels, annotator=f"ls:{who}",
            created_at=rec["updated_at"], lead_time_ms=lead, client_uuid=_key("ls-flat", aid, rec["updated_at"], who),
            where=where,
        )  # fmt: skip
        rank = (updated, int(aid) if str(aid).isdigit() else -1)
        found.append(((item, str(who)), rank, a))
    return _latest(found)


def _read_plain_csv(
    rows: list[tuple[int, list[str]]], header: list[str], raw: bytes, path: Path, r: _Reader
) -> list[Annotation]:
    digest = hashlib.sha256(raw).hexdigest()
    when = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    out, first_row = [], {}
    for n, row in rows:
        where = f"row {n}"
        if len(row) != len(header):
            r.problems.append(f"{where}: {len(row)} cells, the header has {len(header)}")
            continue
        before = len(r.problems)
        item, label = row[0], row[1]
        annotator = row[2] if len(row) > 2 and row[2] else "import"
        if not item:
            r.problems.append(f"{where}: empty id")
        elif r.known_ids is not None and item not in r.known_ids:
            r.problems.append(f"{where}: unknown id {item!r} (not an item of this project)")
        if not label:
            r.problems.append(f"{where} (id {item!r}): empty label")
        labels = r.labels([label], f"{where} (id {item!r})") if label else None
        if len(annotator) > _MAX_ANNOTATOR or _CONTROL.search(annotator):
            r.problems.append(
                f"{where}: annotator must be at most {_MAX_ANNOTATOR} printable characters; got {_show(annotator)}"
            )
        if (item, annotator) in first_row:
            first = first_row[item, annotator]
            r.problems.append(f"{where}: id {item!r} by {annotator!r} already answered in row {first}")
        first_row.setdefault((item, annotator), n)
        if labels is None or len(r.problems) > before:
            continue
        out.append(Annotation(
            item_id=item, event="label", label=labels[0], labels=labels, annotator=annotator, created_at=when,
            lead_time_ms=None, client_uuid=_key("csv", digest, n), where=where,
        ))  # fmt: skip
    return out


def _read_csv(text: str, raw: bytes, path: Path, r: _Reader) -> list[Annotation]:
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        r.problems.append(f"malformed CSV: {e}")
        return []
    header = [h.strip() for h in table[0]]
    rows = [(n, row) for n, row in enumerate(table[1:], start=2) if row]  # row numbers as in a spreadsheet
    if header in (["id", "label"], ["id", "label", "annotator"]):
        return _read_plain_csv(rows, header, raw, path, r)
    if "annotation_id" in header:
        need = ["annotation_id", "annotator", "updated_at", "pw_id", r.choices_name]
        missing = [c for c in need if c not in header]
        if missing:
            r.problems.append(f"Label Studio CSV export without the columns {missing} (header: {header})")
            return []
        records = []
        for n, row in rows:
            if len(row) != len(header):
                r.problems.append(f"row {n}: {len(row)} cells, the header has {len(header)}")
                continue
            records.append((f"row {n}", dict(zip(header, row))))
        return _read_flat(records, r, from_csv=True)
    r.problems.append(
        f"wrong CSV header {','.join(header)!r}: expected exactly 'id,label' (or 'id,label,annotator'), "
        "or a Label Studio CSV export (with annotation_id, annotator, updated_at, pw_id columns)"
    )
    return []


def read_labels(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    choices_name: str = "label",
    known_ids: Container[str] | None = None,
    project_uuid: str | None = None,
) -> list[Annotation]:
    """Every answer in a labels file, or a :class:`LabelImportError` listing every problem.

    Formats (detected): LS full JSON export (a list of tasks with ``annotations``), LS JSON_MIN, LS
    CSV export, and a plain CSV with the header ``id,label`` or ``id,label,annotator``. Cancelled or
    empty annotations become ``"skip"`` events; per (item, annotator) only the latest ``updated_at``
    is kept; items are ``data.pw_id``, checked against ``known_ids`` and (when both are known)
    ``pw_project``. ``annotator`` is ``"ls:<completed_by>"`` for LS files, else the CSV's annotator
    or ``"import"``. Idempotency keys (uuid5 in :data:`PICKWISE_NAMESPACE`): full JSON
    ``(unique_id, updated_at)``; JSON_MIN and LS CSV ``(annotation_id, updated_at, annotator)``, the
    same for both; plain CSV ``(sha256 of the file, row number)``. A plain CSV's ``created_at`` is the
    file's modification time. Reading a file twice gives identical lists.
    """
    problems = _class_problems(list(classes))
    if problems:
        raise ValueError(f"classes: {'; '.join(problems)}")
    project = None if project_uuid is None else _check_uuid(project_uuid)
    r = _Reader(tuple(classes), choices_name, known_ids, project)
    path = Path(path)
    raw = path.read_bytes()
    source = str(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.start + 1]
        raise LabelImportError([f"not UTF-8 text (byte {e.start}: {bad!r})"], source=source) from None
    if not text.strip():
        raise LabelImportError(["the file is empty"], source=source)
    if text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelImportError(
                [f"malformed or truncated JSON at line {e.lineno} column {e.colno} (character {e.pos}): {e.msg}"],
                source=source,
            ) from None
        if not isinstance(doc, list):
            raise LabelImportError(
                [f"the top level must be a JSON list of tasks (a Label Studio export); got a {type(doc).__name__}"],
                source=source,
            )
        if any(isinstance(t, dict) and ("annotations" in t or "data" in t) for t in doc):
            found = _read_full(doc, r)
        else:
            records = []
            for n, rec in enumerate(doc, start=1):
                if isinstance(rec, dict):
                    records.append(("", rec))  # where: "task <id> / annotation <id>"
                else:
                    r.problems.append(f"record {n}: must be an object; got {_show(rec)}")
            found = _read_flat(records, r, from_csv=False)
    else:
        found = _read_csv(text, raw, path, r)
    if r.problems:
        raise LabelImportError(r.problems, source=source)
    return found
