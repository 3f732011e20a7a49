"""`pickwise report` never trusts its input: bad records are named and left out, torn lines are
recovered from the run's own records, round 0 and flat baselines are out of the penalty matrix and
LAR, and the report shows what was used (issue 12, part C)."""

import csv
import json
import shutil

import numpy as np
import pytest
from test_bench_report import SIZES, record, synthetic

from pickwise.bench import analysis as an
from pickwise.bench import (
    label_amplification,
    mean_curve,
    parse_grid,
    run_grid,
    write_report,
)
from pickwise.bench.curves import Curve
from pickwise.bench.report import read_runs, validate_run
from pickwise.cli import main
from pickwise.records import RecordWriter

# the runner's tiny grid: real MLPs with 8 hidden units and 5 Adam steps per round
TINY = {
    "name": "tiny", "seeds": [0, 1], "initial": 10, "datasets": ["digits"], "max_train": 150, "max_test": 100,
    "batch_sizes": [10], "rounds": 3, "strategies": ["random", "margin"], "stream": ["stream_uniform"],
    "orders": ["iid"], "training": {"hidden": 8, "epochs": 2, "max_steps": 5, "dropout": 0.1},
}


@pytest.fixture(scope="module")
def real_results(tmp_path_factory):
    """A finished tiny grid (6 runs: 2 pool strategies + 1 stream selector, 2 seeds)."""
    out = tmp_path_factory.mktemp("res")
    grid = parse_grid(TINY)
    s = run_grid(grid, out, jobs=1, progress=False)
    assert s.finished == 6
    return out, grid


def copy_results(src, dst):
    shutil.copytree(src, dst)
    return dst


def lines(path):
    return path.read_text().splitlines(keepends=True)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def report(capsys, *args):
    code = main(["report", *map(str, args)])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return code, cap.out, cap.err


# -- 1. validation and recovery ----------------------------------------------------------------------


def test_a_torn_last_line_is_recovered_from_the_runs_own_records(real_results, tmp_path, capsys):
    src, _ = real_results
    code, _, err = report(capsys, src, "--out", tmp_path / "ref")
    assert code == 0 and not err
    res = copy_results(src, tmp_path / "res")
    runs_file = res / "runs.jsonl"
    ls = lines(runs_file)
    last = json.loads(ls[-1])
    runs_file.write_text("".join(ls[:-1]) + ls[-1][: len(ls[-1]) // 2])  # the last record cut mid-write
    code, _, err = report(capsys, res, "--out", tmp_path / "rep")
    assert code == 0
    assert f"recovered {last['id']}" in err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Records left out or recovered" in text and last["id"] in text
    # the same tables as with the intact file: nothing was lost
    for name in ("auc.csv", "learning_curves.csv", "lar.csv"):
        assert read_csv(tmp_path / "rep" / name) == read_csv(tmp_path / "ref" / name)


def test_a_torn_line_of_an_unfinished_run_is_named_as_skipped(real_results, tmp_path, capsys):
    src, _ = real_results
    res = copy_results(src, tmp_path / "res")
    ls = lines(res / "runs.jsonl")
    last = json.loads(ls[-1])
    (res / "runs.jsonl").write_text("".join(ls[:-1]) + ls[-1][:100])  # cut inside its config: no id readable
    per_run = res / last["records"]
    per_run.write_text("".join(lines(per_run)[:-1]))  # its own records lack the last round
    code, _, err = report(capsys, res, "--out", tmp_path / "rep")
    assert code == 0
    assert "skipped runs.jsonl line 6 (torn last line): not valid JSON (a torn write?); no run id" in err
    assert f"skipped runs/{last['id']}.jsonl: no finished record; runs/{last['id']}.jsonl holds an unfinished run" in err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "unfinished run" in text and "5 runs are" in text
    assert sum(int(r["n_runs"]) for r in read_csv(tmp_path / "rep" / "auc.csv")) == 5


@pytest.mark.parametrize("corrupt, reason", [
    (lambda r: r["rounds"][2]["metrics"].update(accuracy=7.5), "rounds[2].metrics.accuracy = 7.5"),
    (lambda r: r["rounds"][1]["metrics"].update(accuracy=float("nan")), "rounds[1].metrics.accuracy = nan"),
    (lambda r: r.pop("config"), "missing key 'config'"),
    (lambda r: r["config"].pop("k"), "config has no 'k'"),
    (lambda r: r["config"].update(seed="0"), "config.seed = '0'"),
    (lambda r: r["rounds"].pop(), "rounds recorded; config.rounds = 8 needs 9"),
    (lambda r: r["rounds"][3].update(n_labeled=350), "rounds[3].n_labeled = 350: a pool run has"),
    (lambda r: r["rounds"][3].update(round=7), "rounds[3].round = 7"),
    (lambda r: r.update(n_pool=500), "n_pool = 500: smaller than"),
    (lambda r: r.update(algorithm="badge"), "algorithm = 'badge' disagrees with config.strategy"),
])
def test_bad_records_are_left_out_and_named(tmp_path, corrupt, reason):
    recs = synthetic(tmp_path / "res")
    bad = json.loads(json.dumps(recs[6]))  # d1, random, seed 1
    assert bad["id"] == "d1_random_None_100_1"
    corrupt(bad)
    assert reason in validate_run(bad)
    lines_ = lines(tmp_path / "res" / "runs.jsonl")
    lines_[6] = json.dumps(bad, allow_nan=True) + "\n"
    (tmp_path / "res" / "runs.jsonl").write_text("".join(lines_))
    loaded = read_runs(tmp_path / "res")
    assert len(loaded.records) == len(recs) - 1 and "d1_random_None_100_1" not in {r["id"] for r in loaded.records}
    assert [str(s) for s in loaded.skipped] == [f"runs.jsonl line 7 (d1_random_None_100_1): {validate_run(bad)}"]


def test_the_cli_names_bad_records_on_stderr_and_in_the_report_and_keeps_them_out(tmp_path, capsys):
    recs = synthetic(tmp_path / "res")
    lines_ = lines(tmp_path / "res" / "runs.jsonl")
    for i, change in ((6, lambda r: r["rounds"][2]["metrics"].update(accuracy=7.5)),
                      (12, lambda r: r["rounds"][1]["metrics"].update(accuracy=float("nan"))),
                      (18, lambda r: r.pop("config"))):
        bad = json.loads(lines_[i])
        change(bad)
        lines_[i] = json.dumps(bad, allow_nan=True) + "\n"
    (tmp_path / "res" / "runs.jsonl").write_text("".join(lines_))
    code, _, err = report(capsys, tmp_path / "res", "--out", tmp_path / "rep")
    assert code == 0
    reasons = ["rounds[2].metrics.accuracy = 7.5: must be a finite number in [0, 1]",
               "rounds[1].metrics.accuracy = nan: must be a finite number in [0, 1]", "missing key 'config'"]
    for no, reason in zip((7, 13, 19), reasons):
        assert f"pickwise report: skipped runs.jsonl line {no} (" in err and reason in err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "3 record(s) of runs.jsonl could not be used" in text and all(r in text for r in reasons)
    auc = {(r["dataset"], r["algorithm"], r["kind"]): r for r in read_csv(tmp_path / "rep" / "auc.csv")}
    assert sum(int(r["n_runs"]) for r in auc.values()) == len(recs) - 3
    assert auc[("d1", "random", "pool")]["n_runs"] == "1"  # lines 7, 13, 19: d1's random, seeds 1, 2, 3
    assert all(0 <= float(r["auc_mean"]) <= 1 and 0 <= float(r["final_mean"]) <= 1 for r in auc.values())


def test_junk_lines_and_nothing_valid(tmp_path, capsys):
    recs = synthetic(tmp_path / "res")
    with open(tmp_path / "res" / "runs.jsonl", "a") as f:
        f.write("[1, 2, 3]\n")
        f.write("garbage {{\n")
        f.write(json.dumps(recs[0]) + "\n")  # a repeat
    loaded = read_runs(tmp_path / "res")
    assert len(loaded.records) == len(recs) and loaded.duplicates == (recs[0]["id"],)
    assert [s.reason for s in loaded.skipped] == [
        "not a JSON object but list", f"repeats the run id {recs[0]['id']} of an earlier line (that line is used)",
        "not valid JSON (a torn write?); no run id readable in it"]
    # nothing valid: exit 2 with the reasons, no traceback
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "runs.jsonl").write_text('{"id": "x"}\n{"config": 1}\n')
    code, _, err = report(capsys, tmp_path / "bad")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("pickwise report: error:") and "missing key 'config'" in last
    code, _, err = report(capsys, tmp_path / "nowhere")
    assert code == 2 and "not found" in err


# -- 3. round 0 out of the penalty matrix -------------------------------------------------------------


def test_the_pre_selection_checkpoint_is_not_in_the_penalty_matrix(tmp_path):
    # the synthetic vessal runs are 0.02 better than everything at 100 labels (before any selection)
    recs = synthetic(tmp_path / "res")
    text = write_report(tmp_path / "res", tmp_path / "rep").read_text()
    assert "The checkpoint at the initial labels (round 0" in text and "is left out" in text
    assert "d1/mlp/100: [200, 300, 500]" in text
    runs = [an.to_run(r) for r in recs]
    pm = an.group_penalty(runs, "iid")
    assert all(100 not in p.checkpoints for p in pm.per_setting)
    i = pm.names.index
    assert pm.matrix[i("vessal"), i("margin")] == 0  # counted 0.5 when round 0 was a checkpoint
    old = an.group_penalty(runs, "iid", pre_selection=True)
    assert old.matrix[i("vessal"), i("margin")] == pytest.approx(0.5)


# -- 4. flat baselines make LAR undefined ----------------------------------------------------------


def curve(acc, sizes=(100, 200, 300, 400, 500)):
    return Curve(np.array(sizes, float), np.array(acc, float))


def test_lar_is_not_defined_where_the_baseline_is_flat():
    base = [curve([0.5, 0.5, 0.5, 0.6, 0.7])]  # no rise above 0.5 before 300 labels
    act = [curve([0.5, 0.6, 0.7, 0.8, 0.9])]
    res = label_amplification(act, base, n_pool=1000, fractions=[0.2, 0.3, 0.45])
    # 200, 300: target 0.5 = the learner's first accuracy → n_u / 100, a ramp: not defined
    assert res.ratio[:2].tolist() == [2.0, 3.0] and res.flat.tolist() == [True, True, False]
    assert res.defined.tolist() == [False, False, True]
    assert res.ratio[2] == pytest.approx(450 / (100 + 100 * 0.15 / 0.1))
    assert mean_curve(act).n[0] == 100


def test_flat_points_are_counted_and_left_out_of_the_means(tmp_path):
    w = RecordWriter(tmp_path / "res" / "runs.jsonl")
    sizes = SIZES
    for ds, flat_until in (("d1", 500), ("d2", 100)):
        for seed in range(3):
            e = 0.002 * seed
            base = [0.5 if n <= flat_until else 0.5 + (n - flat_until) / 2000 for n in sizes]
            w.write(record("pool", "random", seed, sizes, np.array(base) + e, dataset=ds))
            w.write(record("pool", "margin", seed, sizes, np.array([0.5 + (n - 100) / 2500 for n in sizes]) + e,
                           dataset=ds))
    text = write_report(tmp_path / "res", tmp_path / "rep").read_text()
    lar = read_csv(tmp_path / "rep" / "lar.csv")
    flat = [r for r in lar if r["status"] == "flat baseline"]
    # d1's random stays at 0.5 up to 500 labels: every n_u = f·2000 in (100, 500] is flat
    assert {r["dataset"] for r in flat} == {"d1"}
    assert {float(r["n_u"]) for r in flat} == {120.0, 160.0, 200.0, 240.0, 280.0, 320.0, 360.0, 400.0, 440.0, 480.0}
    assert all(r["lar"] == "nan" for r in flat)
    summary = {float(r["fraction"]): r for r in read_csv(tmp_path / "rep" / "lar_summary.csv")}
    s = summary[0.2]
    d2 = [float(r["lar"]) for r in lar if r["dataset"] == "d2" and r["fraction"] == "0.2"]
    assert s["n_flat"] == "1" and s["n_reached"] == "1" and float(s["lar_mean"]) == pytest.approx(d2[0])
    assert f"{len(flat)} of {len([r for r in lar if r['status'] != 'no data' and r['status'] != 'pre-selection'])}"\
           " dataset points here" in text
    assert f"{float(s['lar_mean']):.2f} (1 flat)" in text
    # n_u = 0.06·2000 = 120 > 100; a fraction at or below the initial labels would be "pre-selection"
    rows = an.lar_rows([an.to_run(r) for r in read_runs(tmp_path / "res").records], fractions=[0.05, 0.1])
    assert {r["status"] for r in rows if r["fraction"] == 0.05} == {"pre-selection"}


# -- 5. settings with no checkpoint are named -----------------------------------------------------


def test_settings_left_empty_by_the_stopping_rule_are_named(tmp_path):
    w = RecordWriter(tmp_path / "runs.jsonl")
    for ds, acc in (("d1", [0.5 + n / 2000 for n in SIZES]), ("flat", [0.9] * 9)):
        for seed in range(3):
            for algo, d in (("random", 0.0), ("margin", 0.01)):
                a = np.array(acc) + d * (np.arange(9) > 0) + 0.001 * seed
                w.write(record("pool", algo, seed, SIZES, a, dataset=ds))
    text = write_report(tmp_path, tmp_path / "rep").read_text()
    assert "**1 of 2 settings add nothing**" in text and "flat/mlp/100." in text
    assert "per setting (÷ 1)" in text


# -- 6. the AUC table and the settings actually used ----------------------------------------------------


def test_auc_table_has_final_accuracy_and_standard_errors_and_settings_are_shown(real_results, tmp_path):
    src, grid = real_results
    text = write_report(src, tmp_path / "rep", grid=grid).read_text()
    rows = read_csv(tmp_path / "rep" / "auc.csv")
    assert "| algorithm | kind | runs | AUC | final |" in text
    for r in rows:
        auc = f"{float(r['auc_mean']):.3f} ± {float(r['auc_se']):.3f}"
        final = f"{float(r['final_mean']):.3f} ± {float(r['final_se']):.3f}"
        assert f"| {r['algorithm']} | {r['kind']} | {r['n_runs']} | {auc} | {final} |" in text
    # the run records' training settings, and which differ from `pickwise bench`'s defaults
    assert "## Settings used" in text
    assert "| digits | mlp | 10 | 10 | 3 | 150 | 150 | 100 | 8 | 0.1 | 2 | 5 | 64 | 0.001 | none |" in text
    assert "hidden (default 128)" in text and "max_steps (default 1000)" in text and "lr (default" not in text


# -- 7. figures and the HTML report ----------------------------------------------------------------------


def test_figures_are_sharp_and_the_html_report_is_self_contained(real_results, tmp_path):
    from PIL import Image

    src, grid = real_results
    write_report(src, tmp_path / "rep", grid=grid)
    pngs = sorted((tmp_path / "rep").glob("*.png"))
    assert pngs
    for p in pngs:
        with Image.open(p) as im:
            assert im.info["dpi"][0] >= 149.9, p.name
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in page and "<h2>Area under the learning curve</h2>" in page
    assert 'src="http' not in page and "href=" not in page and 'src="curves' not in page
    # stream curves are drawn at the checkpoints initial + j·k only: one value per label count
    from pickwise.bench.report import _curve_on

    runs = [an.to_run(r) for r in read_runs(src).records if r["kind"] == "stream"]
    x, mean, _, n = _curve_on(runs, np.arange(10, 41, 10, dtype=float))
    assert x.tolist() == [10, 20, 30, 40] and n == 2 and np.all(np.diff(x) > 0)
    assert np.allclose(mean, [np.mean([r.curve.at(s) for r in runs]) for s in x])


def test_styles_baselines_are_black_and_grey_and_no_two_algorithms_look_alike():
    from pickwise.bench.report import _styles

    names = [f"a{i}" for i in range(15)] + ["random", "stream_uniform"]
    st = _styles(names)
    assert st["random"]["color"] == "black" and st["random"]["ls"] == "--"
    assert st["stream_uniform"]["color"] == "0.45"
    looks = {(s["color"], s["marker"], str(s["ls"])) for n, s in st.items()}
    assert len(looks) == len(names)
