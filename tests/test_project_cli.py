"""The project subcommands: init / next / import / status / export / add with exit codes; errors as one line."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pickwise.project import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "pickwise.project.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run a subcommand in-process exactly as ``cli.main`` does."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _data(tmp_path: Path) -> tuple[Path, Path]:
    rows = [(f"m-{i}", ("WIN cash prize now call " if i % 4 == 0 else "see you at lunch today ") + str(i))
            for i in range(60)]
    texts, truth = tmp_path / "texts.csv", tmp_path / "truth.csv"
    with open(texts, "w", newline="") as f:
        csv.writer(f).writerows([("id", "text"), *rows])
    with open(truth, "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *((i, "spam" if t.startswith("WIN") else "ham") for i, t in rows)])
    return texts, truth


def test_parsers_and_commands_match() -> None:
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command"))
    assert set(cli.COMMANDS) == {"init", "add", "next", "import", "status", "export", "label"}
    args = parser.parse_args(["next", "P", "--k", "7", "--no-progress"])
    assert (args.dir, args.k, args.no_progress, args.strategy) == ("P", 7, True, None)


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts, truth = _data(tmp_path)
    proj = str(tmp_path / "proj")
    (tmp_path / "classes.txt").write_text("ham\nspam\n")
    code, out, _ = call(capsys, "init", proj, "--data", str(texts), "--labels", str(tmp_path / "classes.txt"))
    assert code == 0 and "60 text items" in out and "classes ham, spam" in out
    code, out, _ = call(capsys, "next", proj, "--k", "12", "--no-progress")
    assert code == 0 and "round 1: 12 items" in out and "cold start" in out
    assert "set the Label Studio project's model version to: pickwise-r1-" in out
    tasks = Path(proj) / "rounds" / "1" / "tasks.json"
    assert f"Label Studio tasks:  {tasks}" in out
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ls_answer
    finally:
        sys.path.pop(0)
    export = ls_answer.write_export(tasks, truth, tmp_path / "export.json", skip=1, annotators=2)
    code, out, _ = call(capsys, "import", proj, str(export))
    assert code == 0 and "24 answers read (23 labels, 1 skips" in out and "24 new" in out
    code, out, _ = call(capsys, "import", proj, str(export))
    assert code == 0 and "0 new, 24 already imported" in out
    code, out, _ = call(capsys, "next", proj, "--k", "5", "--strategy", "margin", "--no-progress")
    assert code == 0 and "round 2: 5 items chosen by margin (trained on 12 labels" in out
    code, out, _ = call(capsys, "status", proj, "--json")
    st = json.loads(out)
    assert code == 0 and st["labelled"] == 12 and st["agreement"]["items"] == 11
    code, out, _ = call(capsys, "status", proj)
    assert code == 0 and "agreement on 11 items" in out and "round   2 open" in out
    for fmt, name in (("csv", "l.csv"), ("jsonl", "l.jsonl"), ("label-studio", "l.json")):
        code, out, _ = call(capsys, "export", proj, "--format", fmt, "--out", str(tmp_path / name))
        assert code == 0 and (tmp_path / name).is_file()
    assert len((tmp_path / "l.csv").read_text().splitlines()) == 13
    more = tmp_path / "more.csv"
    more.write_text("id,text\nm-1,see you at lunch today 1\nm-new,brand new message\n")
    code, out, _ = call(capsys, "add", proj, "--data", str(more))
    assert code == 0 and "added 1 items; 1 already in the project" in out


def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    texts, _ = _data(tmp_path)
    r = run("init", str(tmp_path / "p"), "--data", str(tmp_path / "missing.csv"), "--labels", "a,b")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"pickwise init: error: data {str(tmp_path / 'missing.csv')!r} not found"]
    r = run("init", str(tmp_path / "p"), "--data", str(texts), "--labels", "ham,spam")
    assert r.returncode == 0, r.stderr
    r = run("next", str(tmp_path / "p"), "--k", "5", "--strategy", "nonsense", "--no-progress")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "'nonsense'" in r.stderr
    r = run("status", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a pickwise project" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("item,klass\nm-1,ham\n")
    r = run("import", str(tmp_path / "p"), str(bad))
    assert r.returncode == 2 and "header" in r.stderr and "nothing was imported" in r.stderr
