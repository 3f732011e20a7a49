"""A stand-in for annotators: answer a batch written by ``pickwise next`` from a truth CSV, as Label Studio
1.23.2 would export it (full JSON: one object per task, ``annotations[]`` with ``completed_by``,
``was_cancelled``, ``updated_at``, ``unique_id``, ``lead_time`` and ``result[].value.choices``).

    python scripts/ls_answer.py rounds/1/tasks.json truth.csv --out export.json [--skip 3] [--annotators 2]
        [--flip 0.1] [--seed 0]

``--skip N`` cancels the first N tasks of the first annotator (``was_cancelled: true``, empty result);
``--annotators N`` has N users (ids 1..N) answer every task; ``--flip P`` makes annotators 2..N give a
wrong answer with probability P (to exercise agreement statistics). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

_T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_truth(path: str | Path) -> dict[str, str]:
    """``{id: label}`` from a CSV with columns id,label."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"]: row["label"] for row in csv.DictReader(f)}


def answer_tasks(tasks: list[dict[str, Any]], truth: dict[str, str], *, skip: int = 0, annotators: int = 1,
                 flip: float = 0.0, seed: int = 0, choices_name: str = "label", to_name: str | None = None,
                 classes: list[str] | None = None) -> list[dict[str, Any]]:
    """The LS full-JSON export of ``tasks`` answered from ``truth`` (see the module docstring)."""
    rng = random.Random(seed)
    names = sorted(set(truth.values())) if classes is None else classes
    out = []
    ann_id = 0
    for n, task in enumerate(tasks):
        data = task["data"]
        item = data["pw_id"]
        if item not in truth:
            raise ValueError(f"task {n}: pw_id {item!r} is not in the truth file")
        target = to_name or next((k for k in data if not k.startswith("pw_")), "text")
        anns = []
        for user in range(1, annotators + 1):
            ann_id += 1
            t = _T0 + timedelta(days=int(data.get("pw_round", 0)), seconds=7 * ann_id)
            cancelled = user == 1 and n < skip
            label = truth[item]
            if user > 1 and rng.random() < flip:
                label = rng.choice([c for c in names if c != label] or [label])
            result = [] if cancelled else [{"id": f"r{ann_id}", "from_name": choices_name, "to_name": target,
                                            "type": "choices", "value": {"choices": [label]}, "origin": "manual"}]
            anns.append({
                "id": ann_id, "completed_by": user, "result": result, "was_cancelled": cancelled,
                "ground_truth": False, "created_at": _iso(t), "updated_at": _iso(t + timedelta(microseconds=25)),
                "draft_created_at": None, "lead_time": round(rng.uniform(1.0, 9.0), 3), "prediction": {},
                "result_count": len(result), "unique_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ls-answer/{data.get('pw_project')}/"
                                                                   f"{data.get('pw_round')}/{item}/{user}/{seed}")),
                "import_id": None, "last_action": None, "bulk_created": False, "task": n + 1, "project": 1,
                "updated_by": user, "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
            })
        out.append({
            "id": n + 1, "annotations": anns, "drafts": [], "predictions": [n + 1], "data": data, "meta": {},
            "created_at": _iso(_T0), "updated_at": _iso(_T0 + timedelta(seconds=7 * ann_id + 1)), "allow_skip": True,
            "inner_id": n + 1, "total_annotations": sum(not a["was_cancelled"] for a in anns),
            "cancelled_annotations": sum(a["was_cancelled"] for a in anns), "total_predictions": 1,
            "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": 1,
            "updated_by": 1, "comment_authors": [],
        })
    return out


def write_export(tasks_path: str | Path, truth_path: str | Path, out: str | Path, **options: Any) -> Path:
    """Read ``tasks.json`` and the truth CSV, write the export to ``out``; return its path."""
    tasks = json.loads(Path(tasks_path).read_text(encoding="utf-8"))
    export = answer_tasks(tasks, read_truth(truth_path), **options)
    out = Path(out)
    out.write_text(json.dumps(export, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", help="tasks.json written by pickwise next")
    p.add_argument("truth", help="CSV with columns id,label")
    p.add_argument("--out", required=True, help="the export to write (LS full JSON)")
    p.add_argument("--skip", type=int, default=0, help="cancel the first N tasks (annotator 1)")
    p.add_argument("--annotators", type=int, default=1, help="annotators answering every task")
    p.add_argument("--flip", type=float, default=0.0, help="chance that annotators 2..N answer wrongly")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    path = write_export(a.tasks, a.truth, a.out, skip=a.skip, annotators=a.annotators, flip=a.flip, seed=a.seed)
    print(path)


if __name__ == "__main__":
    main()
