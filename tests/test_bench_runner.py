"""The grid runner: records, resume after a kill (mid-run, pool and stream), skipping, failures, CLI."""

import argparse
import json

import pytest

from pickwise.bench import load_runs, parse_grid, run_grid
from pickwise.bench import runner as R
from pickwise.bench.cli import COMMANDS, add_parsers
from pickwise.cli import main
from pickwise.records import read_jsonl

# a tiny grid that still uses the real models: an MLP with 8 hidden units and 5 Adam steps per round
TINY = {
    "name": "tiny", "seeds": [0, 1], "initial": 10, "datasets": ["digits"], "max_train": 150, "max_test": 100,
    "batch_sizes": [10], "rounds": 3, "strategies": ["random", "margin"], "stream": ["vessal", "stream_uniform"],
    "orders": ["iid"], "training": {"hidden": 8, "epochs": 2, "max_steps": 5, "dropout": 0.1},
}


def outcome(out):
    """Every finished run minus its timings, by id."""
    res = {}
    for r in load_runs(out):
        rounds = [{k: v for k, v in row.items() if "seconds" not in k} for row in r["rounds"]]
        res[r["id"]] = (r["config"], rounds)
    return res


class Kill(BaseException):
    """Stands for a SIGKILL / Ctrl-C: not an Exception, so the runner does not record it as a failure."""


def killing_factory(monkeypatch, kind, at_fit):
    """Patch the model factory so the first cell of ``kind`` dies in its ``at_fit``-th fit, once."""
    real = R._model_factory
    state = {"fired": False}

    def factory(cell, n_features, n_classes):
        make = real(cell, n_features, n_classes)
        fits = {"n": 0}

        def wrapped():
            model = make()
            fit = model.fit

            def dying_fit(*a, **kw):
                fits["n"] += 1
                if cell.kind == kind and fits["n"] == at_fit and not state["fired"]:
                    state["fired"] = True
                    raise Kill()
                return fit(*a, **kw)

            model.fit = dying_fit
            return model

        return wrapped

    monkeypatch.setattr(R, "_model_factory", factory)


def test_killed_grid_resumes_mid_run_skips_finished_runs_and_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    g = parse_grid({**TINY, "seeds": [0]})
    ref = tmp_path / "ref"
    s = run_grid(g, ref, jobs=1, progress=False)
    assert s.finished == len(g) == 4 and not s.failed

    out = tmp_path / "out"
    # session 1 dies in the 3rd fit of the first stream cell (two segments recorded)
    killing_factory(monkeypatch, "stream", 3)
    with pytest.raises(Kill):
        run_grid(g, out, jobs=1, progress=False)
    first = set(outcome(out))
    partial = [p for p in (out / "runs").glob("*.jsonl") if p.stem not in first]
    assert len(partial) == 1 and len(read_jsonl(partial[0])) == 2  # segments 0 and 1

    # session 2 dies in the 3rd fit of the first pool cell (header + 2 rounds recorded)
    monkeypatch.undo()
    killing_factory(monkeypatch, "pool", 3)
    called = []
    real_run_cell = R.run_cell
    monkeypatch.setattr(R, "run_cell", lambda cell, *a, **kw: called.append(cell.id) or real_run_cell(cell, *a, **kw))
    with pytest.raises(Kill):
        run_grid(g, out, jobs=1, progress=False)
    assert not set(called) & first  # finished runs are not run again
    second = set(outcome(out))
    assert first < second

    # session 3 finishes; runs.jsonl grows by exactly the missing runs
    monkeypatch.undo()
    called.clear()
    monkeypatch.setattr(R, "run_cell", lambda cell, *a, **kw: called.append(cell.id) or real_run_cell(cell, *a, **kw))
    s = run_grid(g, out, jobs=1, progress=False)
    assert set(called) == {c.id for c in g.cells} - second
    assert s.skipped == len(second) and s.finished == len(g) - len(second)
    assert outcome(out) == outcome(ref)
    resumed = {r["id"]: r["resumed_rounds"] for r in load_runs(out)}
    assert sorted(v for v in resumed.values() if v) == [2, 2]  # one stream and one pool run resumed mid-run
    assert len(read_jsonl(out / "runs.jsonl")) == len(g)
    assert not list((out / "runs").glob("*.npz"))  # selector checkpoints go once their run is done

    # a fourth session has nothing to do
    s = run_grid(g, out, jobs=1, progress=False)
    assert s.skipped == len(g) and s.finished == 0


def test_run_records_hold_config_versions_metrics_and_times(tmp_path):
    g = parse_grid({**TINY, "seeds": [0], "strategies": ["random"], "stream": ["stream_uniform"]})
    run_grid(g, tmp_path, jobs=1, progress=False)
    runs = {r["kind"]: r for r in load_runs(tmp_path)}
    for kind, r in runs.items():
        assert r["config"]["kind"] == kind and r["seed"] == 0
        assert set(r["versions"]) >= {"pickwise", "numpy", "torch"}
        assert [row["round"] for row in r["rounds"]] == [0, 1, 2, 3]
        assert r["rounds"][0]["n_labeled"] == 10 and r["n_end"] == 40
        assert all(0 <= row["metrics"]["accuracy"] <= 1 and row["fit_seconds"] > 0 for row in r["rounds"])
        assert "select_seconds" in r["rounds"][1] and r["wall_seconds"] > 0
    assert [row["n_labeled"] for row in runs["pool"]["rounds"]] == [10, 20, 30, 40]
    st = runs["stream"]
    assert st["segment"] == 47 and st["budget"] == 30  # ⌈(150 − 10)/3⌉ items per window, 3·10 labels
    assert st["rounds"][-1]["n_labeled"] == 40 and st["rounds"][-1]["items_seen"] == 140
    # pool and stream cells of a seed start from the same initial labels
    pool_init = json.loads((tmp_path / runs["pool"]["records"]).read_text().splitlines()[0])["initial"]
    assert len(pool_init) == 10


def test_failures_are_recorded_and_retried_and_a_torn_line_is_repaired(tmp_path, monkeypatch):
    g = parse_grid({**TINY, "seeds": [0], "stream": []})
    real = R.make_strategy

    def broken(name, **kw):
        if name == "margin":
            raise ValueError("margin is broken today")
        return real(name, **kw)

    monkeypatch.setattr(R, "make_strategy", broken)
    s = run_grid(g, tmp_path, jobs=1, progress=False)
    assert s.finished == 1 and len(s.failed) == 1 and "margin is broken today" in s.errors[s.failed[0]]
    fails = read_jsonl(tmp_path / "failures.jsonl")
    assert fails[0]["id"] == s.failed[0] and fails[0]["config"]["strategy"] == "margin"
    monkeypatch.undo()
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"id": "torn')  # the parent was killed while writing a line
    s = run_grid(g, tmp_path, jobs=1, progress=False)
    assert s.finished == 1 and s.skipped == 1 and not s.failed
    assert len(load_runs(tmp_path)) == 2


def test_parallel_processes_give_the_same_results(tmp_path):
    # scikit-learn models: the worker processes never import torch (fast to start)
    g = parse_grid({**TINY, "seeds": [0], "stream": ["stream_uniform"], "strategies": ["margin"], "models": ["logreg"]})
    run_grid(g, tmp_path / "one", jobs=1, progress=False)
    s = run_grid(g, tmp_path / "two", jobs=2, progress=False)
    assert s.finished == 2 and not s.failed
    assert outcome(tmp_path / "one") == outcome(tmp_path / "two")


def test_cli_bench_and_report(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(
        'name = "cli"\nseeds = [0, 1]\ninitial = 10\ndatasets = ["digits"]\nmax_train = 100\nmax_test = 100\n'
        'models = ["logreg"]\nbatch_sizes = [10]\nrounds = 2\nstrategies = ["random", "entropy"]\n'
        'stream = ["stream_uniform"]\n'
    )
    parser = argparse.ArgumentParser(prog="pickwise")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "res"
    args = parser.parse_args(["bench", str(grid), "--out", str(out), "--dry-run"])
    assert COMMANDS["bench"](args) == 0
    assert "6 runs, 0 already finished" in capsys.readouterr().out
    args = parser.parse_args(["bench", str(grid), "--out", str(out), "--jobs", "1", "--no-progress"])
    assert COMMANDS["bench"](args) == 0
    session = read_jsonl(out / "sessions.jsonl")[0]
    assert "bench" in session["command"] and session["finished"] == 6 and session["wall_seconds"] > 0
    args = parser.parse_args(["report", str(out), "--out", str(tmp_path / "rep")])
    assert COMMANDS["report"](args) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Pairwise penalty matrices" in text and "wall time" in text
    # errors: a bad grid gives exit code 2 and a message naming the key
    grid.write_text('datasets = ["digits"]\nbatch_sizes = [10]\nrounds = 2\nstrategy = ["random"]\n')
    assert main(["bench", str(grid), "--out", str(out)]) == 2
    assert "unknown key 'strategy'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2


def test_pool_and_stream_arms_of_a_seed_start_from_the_same_round0_model(tmp_path):
    """Round 0 (the initial labels, before any selection) is one model per seed, whatever the arm."""
    g = parse_grid({**TINY, "seeds": [0, 1], "strategies": ["random", "margin"], "stream": ["stream_uniform", "vessal"]})
    run_grid(g, tmp_path, jobs=1, progress=False)
    first = {}
    for r in load_runs(tmp_path):
        first.setdefault(r["seed"], set()).add(r["rounds"][0]["metrics"]["accuracy"])
    assert sorted(first) == [0, 1]
    assert all(len(accs) == 1 for accs in first.values()), first
