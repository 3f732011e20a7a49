"""Fuzz `pickwise report` with corrupted runs.jsonl files and `pickwise bench --dry-run` with bad grid
values: exit status 0 (every left-out line named on stderr) or 2 (one error line), never a traceback."""

import contextlib
import csv
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_bench_report import SIZES, record

from pickwise.cli import main

FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def base_lines():
    out = []
    for seed in range(3):
        acc = 0.5 + 0.3 * (1 - np.exp(-(np.array(SIZES) - 100) / 250)) + 0.003 * seed
        out.append(record("pool", "random", seed, SIZES, acc))
        out.append(record("pool", "margin", seed, SIZES, acc + np.r_[0, [0.03] * 8]))
    return [json.dumps(r) for r in out]


BASE = base_lines()

junk_value = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                   st.integers(), max_size=2))
PATHS = [("id",), ("config",), ("rounds",), ("n_pool",), ("n_end",), ("kind",), ("algorithm",), ("seed",),
         ("config", "k"), ("config", "initial"), ("config", "rounds"), ("config", "seed"), ("config", "kind"),
         ("config", "order"), ("config", "strategy"), ("config", "dataset"), ("config", "training"),
         ("rounds", 0), ("rounds", 3, "n_labeled"), ("rounds", 2, "metrics", "accuracy"),
         ("rounds", 1, "metrics"), ("rounds", 4, "round"), ("rounds", 5, "fit_seconds"),
         ("rounds", 6, "select_seconds")]

corruption = st.one_of(
    st.tuples(st.just("set"), st.integers(0, len(BASE) - 1), st.sampled_from(PATHS), junk_value),
    st.tuples(st.just("delete"), st.integers(0, len(BASE) - 1), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("tear"), st.integers(0, len(BASE) - 1), st.floats(0.0, 0.999), st.none()),
    st.tuples(st.just("junk"), st.integers(0, len(BASE)), st.one_of(st.text(max_size=20), junk_value.map(json.dumps)),
              st.none()),
)


def corrupt(lines, change):
    kind, i, what, value = change
    lines = list(lines)
    if kind == "junk":
        lines.insert(i, what.replace("\n", " ").replace("\r", " "))
        return lines
    if kind == "tear":
        lines[i] = lines[i][: int(len(lines[i]) * what)]
        return lines
    try:  # an earlier change may have torn the line or removed the path: then this one does nothing
        obj = json.loads(lines[i])
        target = obj
        for key in what[:-1]:
            target = target[key]
        if kind == "delete":
            del target[what[-1]]
        else:
            target[what[-1]] = value
    except (ValueError, KeyError, IndexError, TypeError):
        return lines
    lines[i] = json.dumps(obj, allow_nan=True)
    return lines


def run(argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@FUZZ
@given(st.lists(corruption, min_size=1, max_size=3))
def test_report_on_corrupted_runs_never_crashes_and_names_every_skip(changes):
    lines = BASE
    for c in changes:
        lines = corrupt(lines, c)
    with tempfile.TemporaryDirectory() as d:
        res = Path(d) / "res"
        res.mkdir()
        (res / "runs.jsonl").write_text("\n".join(lines) + ("\n" if changes[-1][0] != "tear" else ""))
        code, _, err = run(["report", str(res), "--out", str(Path(d) / "rep")])
        assert "Traceback" not in err
        assert code in (0, 2), err
        if code == 2:
            last = err.strip().splitlines()[-1]
            assert last.startswith("pickwise report: error: "), err
            return
        n_lines = sum(1 for ln in (res / "runs.jsonl").read_text().splitlines() if ln.strip())
        named = {ln.split(" line ")[1].split(" ")[0].rstrip(":") for ln in err.splitlines()
                 if ln.startswith("pickwise report: skipped runs.jsonl line ")}
        with open(Path(d) / "rep" / "auc.csv") as f:
            auc = list(csv.DictReader(f))
        used = sum(int(r["n_runs"]) for r in auc)
        assert used + len(named) == n_lines, (err, used, n_lines)  # every line is used or named
        for r in auc:
            for key in ("auc_mean", "final_mean"):
                v = float(r[key])
                assert math.isnan(v) or 0 <= v <= 1
        text = (Path(d) / "rep" / "report.md").read_text()
        for no in named:
            assert f"runs.jsonl line {no}" in text


KEYS = ["seeds", "initial", "rounds", "max_train", "max_test", "segment", "batch_sizes", "training.hidden",
        "training.lr", "training.dropout", "training.max_steps", "stream_options.lam", "stream_options.window",
        "strategy_options.n_draws", "datasets", "strategies", "orders"]
toml_value = st.one_of(
    st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.lists(st.integers(-5, 10**13), max_size=3),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=2))


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(KEYS), toml_value, st.booleans())
@example("seeds", 1_000_000_000, False)  # once materialised a billion seeds
@example("stream_options.lam", math.inf, True)  # once passed --dry-run, every cell failing
@example("batch_sizes", [10**12], True)
def test_bench_dry_run_on_bad_grid_values_never_crashes(key, value, in_block):
    grid = {"datasets": ["digits"], "batch_sizes": [10], "rounds": 2, "strategies": ["random"],
            "stream": ["vessal"], "training": {}, "stream_options": {}, "strategy_options": {}}
    target = {} if in_block else grid
    if "." in key:
        table, sub = key.split(".")
        target.setdefault(table, {})[sub] = value
    else:
        target[key] = value
    if in_block:
        grid["grid"] = [target]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "g.toml"
        p.write_text(tomli_w.dumps(grid))
        code, out, err = run(["bench", str(p), "--out", str(Path(d) / "out"), "--dry-run"])
    assert "Traceback" not in err
    assert code in (0, 2), err
    floats = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in floats) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**9):
        assert code == 2, (key, value, out)  # no count, size or setting is infinite, NaN or astronomically large
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pickwise bench: error: "), err
        assert key.split(".")[-1] in lines[0] or "nothing to run" in lines[0], lines[0]
    else:
        assert out.strip()  # the plan was printed
