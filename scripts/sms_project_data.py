"""Write the bundled SMS Spam Collection as a pickwise project's data: texts.csv (id,text) and truth.csv (id,label).

    python scripts/sms_project_data.py --out /tmp/sms [--limit 400] [--data-root ../shared/data]

Ids are "sms-<line number in SMSSpamCollection>" (1-based): stable, whatever subset is written.
truth.csv holds the true labels (ham/spam) for simulations (scripts/ls_answer.py); never give it to init.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def write_sms(out: str | Path, *, limit: int | None = None, data_root: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``texts.csv`` and ``truth.csv`` into ``out`` (the first ``limit`` messages); return both paths."""
    from pickwise.data.sources import data_root as _root

    path = Path(_root(data_root)) / "sms-spam" / "SMSSpamCollection"
    if not path.is_file():
        raise ValueError(f"{path} not found; set PICKWISE_DATA or pass --data-root")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        line = line.rstrip("\r")
        if not line:
            continue
        label, _, text = line.partition("\t")
        rows.append((f"sms-{lineno}", text, label))
        if limit is not None and len(rows) >= limit:
            break
    texts, truth = out / "texts.csv", out / "truth.csv"
    with open(texts, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((i, t) for i, t, _ in rows)
    with open(truth, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((i, lab) for i, _, lab in rows)
    return texts, truth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--limit", type=int, default=None, help="only the first N messages")
    p.add_argument("--data-root", default=None, help="folder with the datasets (default: $PICKWISE_DATA)")
    a = p.parse_args()
    texts, truth = write_sms(a.out, limit=a.limit, data_root=a.data_root)
    print(f"{texts}\n{truth}")


if __name__ == "__main__":
    main()
