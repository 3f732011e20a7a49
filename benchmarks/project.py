"""Time a labelling project at scale: ``next`` on 50,000 synthetic texts with the default model
(TF-IDF → SVD(256) → logistic regression, BADGE), and importing a 10,000-annotation Label Studio export.

    OMP_NUM_THREADS=1 python benchmarks/project.py [--n 50000] [--k 100] [--annotations 10000] [--out DIR]

Texts are 5–30 words sampled from the SMS Spam Collection's vocabulary (seeded); class "spam" when a
text holds one of a few marker words. Prints one line per measurement.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/select.py would shadow the standard library's select module: drop this folder from the path
sys.path[:] = [q for q in sys.path if Path(q or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from pickwise.data.sources import data_root  # noqa: E402
from pickwise.project import Project  # noqa: E402

_MARKERS = {"free", "win", "prize", "claim", "cash", "txt", "urgent"}


def synthetic_texts(n: int, seed: int = 0, root: str | None = None) -> tuple[list[str], list[str]]:
    """``n`` texts of sms words and their rule-based labels (spam when a marker word occurs)."""
    path = data_root(root) / "sms-spam" / "SMSSpamCollection"
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms-spam" / "SMSSpamCollection"
    if root is None and not path.is_file() and shared.is_file():
        path = shared
    words = sorted({w.lower() for line in path.read_text(encoding="utf-8").split("\n") for w in line.split()[1:]})
    rng = np.random.default_rng(seed)
    vocab = np.asarray(words)
    texts, labels = [], []
    for length in rng.integers(5, 31, n):
        ws = vocab[rng.integers(0, len(vocab), length)]
        texts.append(" ".join(ws))
        labels.append("spam" if _MARKERS & set(ws.tolist()) else "ham")
    return texts, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--labelled", type=int, default=500, help="labels before the timed round (default: 500)")
    p.add_argument("--annotations", type=int, default=10_000)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--data-root", default=None, help="folder with the datasets (default: $PICKWISE_DATA)")
    a = p.parse_args()
    work = Path(a.out or tempfile.mkdtemp(prefix="pickwise-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    texts, truth = synthetic_texts(a.n, root=a.data_root)
    ids = [f"s-{i}" for i in range(a.n)]
    data = work / "texts.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("id", "text"), *zip(ids, texts)])

    t = time.perf_counter()
    proj = Project.init(work / "project", data=data, labels="ham,spam")
    print(f"init: {a.n} items in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    r = proj.next(a.k, progress=False)
    print(f"next (cold start, random): {time.perf_counter() - t:.2f} s")
    # label a seeded sample (both classes) through a plain CSV import, then time a real round
    rng = np.random.default_rng(1)
    pick = rng.choice(a.n, a.labelled, replace=False)
    labels_csv = work / "initial.csv"
    with open(labels_csv, "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *((ids[i], truth[i]) for i in pick)])
    proj.import_labels(labels_csv)
    t = time.perf_counter()
    r = proj.next(a.k, progress=False)
    first = time.perf_counter() - t
    print(f"next (default model {proj.config.model}, strategy {r.strategy}, {r.n_train} labels, k={a.k}, "
          f"features computed and cached): {first:.2f} s")
    t = time.perf_counter()
    r = proj.next(a.k, progress=False)
    print(f"next again (features from the cache): {time.perf_counter() - t:.2f} s")

    spec = importlib.util.spec_from_file_location("ls_answer", Path(__file__).resolve().parents[1] / "scripts" /
                                                  "ls_answer.py")
    ls_answer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ls_answer)  # type: ignore[union-attr]
    uuid_ = proj.store.project_uuid()
    chosen = rng.choice(a.n, a.annotations, replace=False)
    tasks = [{"data": {"text": texts[i], "pw_id": ids[i], "pw_project": uuid_, "pw_round": r.round_id}}
             for i in chosen]
    export = work / "export.json"
    export.write_text(json.dumps(ls_answer.answer_tasks(tasks, dict(zip(ids, truth)))), encoding="utf-8")
    t = time.perf_counter()
    s = proj.import_labels(export)
    print(f"import of a {s.read}-annotation LS export: {time.perf_counter() - t:.2f} s ({s.added} events added)")
    t = time.perf_counter()
    s = proj.import_labels(export)
    print(f"re-import of the same file (no change): {time.perf_counter() - t:.2f} s ({s.added} added)")
    t = time.perf_counter()
    st = proj.status()
    print(f"status: {time.perf_counter() - t:.2f} s ({st['labelled']} labelled)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
