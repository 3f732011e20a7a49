"""Issue 12, part B: no silent wrong answers from run / stream / select / demo.

MC draws and committee members in their (T, N, K) / (M, N, K) layout, reruns that extend or go to
another file, refused option values, checked oracle answers, ``--member-probs``, true causes for
files that are not .npy, cnn only on images, and ``python -m pickwise --help``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise import (
    Random,
    Uncertainty,
    holdout,
    initial_pool,
    load_records,
    pool_rounds,
)
from pickwise.catalog import make_strategy
from pickwise.cli import main
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed, load_npy
from pickwise.stream import StreamUniform, stream_segments

N, K, T, M = 50, 3, 6, 4


@pytest.fixture
def files(tmp_path):
    x, _ = blobs(N, 5, K, seed=3)
    m = FakeModel(5, K, seed=1)
    mc = m.predict_proba_mc(x, T, seed=2)
    members = np.stack([FakeModel(5, K, seed=s).predict_proba(x) for s in range(10, 10 + M)])
    np.save(tmp_path / "probs.npy", m.predict_proba(x))
    np.save(tmp_path / "mc.npy", mc)
    np.save(tmp_path / "mc_ntk.npy", mc.transpose(1, 0, 2))  # items first: the wrong layout
    np.save(tmp_path / "members.npy", members)
    np.save(tmp_path / "members_nmk.npy", members.transpose(1, 0, 2))
    (tmp_path / "ids.txt").write_text("".join(f"item{i}\n" for i in range(N)))
    return tmp_path


def _select(d, *args):
    return main(["select", *args, "--out", str(d / "picks.csv"), "--no-progress"])


def _picks(d):
    with open(d / "picks.csv") as f:
        return [int(r["index"]) for r in csv.DictReader(f)]


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


# -- 1. MC draws in the (T, N, K) layout ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["bald", "batchbald"])
def test_select_refuses_mc_draws_with_items_first(files, capsys, strategy):
    d = files
    # against --probs: the message names the shape received and the one expected
    assert _select(d, "--mc-probs", str(d / "mc_ntk.npy"), "--probs", str(d / "probs.npy"),
                   "--strategy", strategy, "--k", "3") == 2
    err = _err(capsys)
    assert "(50, 6, 3)" in err and "(T, N, K)" in err and f"expected shape ({T}, {N}, {K})" in err
    # against --ids
    assert _select(d, "--mc-probs", str(d / "mc_ntk.npy"), "--ids", str(d / "ids.txt"),
                   "--strategy", strategy, "--k", "3") == 2
    err = _err(capsys)
    assert "(50, 6, 3)" in err and "50 ids" in err and "(T, N, K)" in err
    # alone: more draws than items is the swapped layout
    assert _select(d, "--mc-probs", str(d / "mc_ntk.npy"), "--strategy", strategy, "--k", "3") == 2
    err = _err(capsys)
    assert "(50, 6, 3)" in err and "more draws than items" in err and "(T, N, K)" in err
    assert not (d / "picks.csv").exists()


def test_select_takes_mc_draws_in_their_layout(files):
    d = files
    assert _select(d, "--mc-probs", str(d / "mc.npy"), "--ids", str(d / "ids.txt"), "--strategy", "bald",
                   "--k", "4") == 0
    pre = Precomputed(mc_probs=np.load(d / "mc.npy"))
    expected = make_strategy("bald", n_draws=T).select(pre, pre.x, Pool.empty(N), 4, rng=np.random.default_rng(0))
    assert _picks(d) == expected.tolist()


def test_precomputed_checks_the_draws_against_the_items(files):
    d = files
    probs, mc = np.load(d / "probs.npy"), np.load(d / "mc.npy")
    with pytest.raises(ValueError, match=r"\(50, 6, 3\).*expected shape \(6, 50, 3\).*transpose"):
        Precomputed(probs=probs, mc_probs=mc.transpose(1, 0, 2))
    with pytest.raises(ValueError, match=r"more draws than items"):
        Precomputed(mc_probs=mc.transpose(1, 0, 2))
    # draws for only some items: the counts differ, and every item needs its draws
    with pytest.raises(ValueError, match=r"6 draws of 40 items, but probs has 50 rows.*draws for every item"):
        Precomputed(probs=probs, mc_probs=mc[:, :40])
    with pytest.raises(ValueError, match=r"n=60"):
        Precomputed(mc_probs=mc, n=60)
    assert Precomputed(mc_probs=mc.transpose(1, 0, 2), n=T).n == T  # n confirms a pool smaller than T
    assert Precomputed(mc_probs=mc).n == N
    with pytest.raises(ValueError, match=r"n_draws must be an integer >= 1; got 0"):
        Precomputed(mc_probs=mc).predict_proba_mc([0, 1], 0, seed=0)


def test_precomputed_names_the_item_of_a_bad_row(files):
    probs = np.load(files / "probs.npy")
    bad = probs.copy()
    bad[17] = [0.5, 0.2, 0.2]
    model = Precomputed(probs=bad)
    with pytest.raises(ValueError, match=r"item 17 sums to 0\.9|item 17 sums to 0\.8999"):
        model.predict_proba(np.arange(10, 20))
    bad[17] = [1.3, -0.3, 0.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]; got 1\.3 at item 17, column 0"):
        Precomputed(probs=bad).predict_proba([17])
    mc = np.load(files / "mc.npy").copy()
    mc[2, 31, 1] = np.nan
    with pytest.raises(ValueError, match=r"nan at draw 2, item 31, column 1"):
        Precomputed(mc_probs=mc).predict_proba_mc(np.arange(25, 35), T, seed=0)


# -- 2. reruns: more rounds extend, other settings go to another file -------------------------------


def _rounds(x, y, rounds, records, *, k=5):
    pool = initial_pool(len(x), 6, y, seed=3, n_classes=3)
    return list(pool_rounds(lambda: FakeModel(5, 3), Uncertainty(score="margin"), x, pool, y, k=k, seed=3,
                            evaluate=holdout(x, y), rounds=rounds, records=records))


def test_more_rounds_extend_a_finished_run(tmp_path):
    x, y = blobs(80, 5, 3, seed=1)
    full = [r.without_timings() for r in _rounds(x, y, 4, tmp_path / "full.jsonl")]
    path = tmp_path / "run.jsonl"
    assert [r.round for r in _rounds(x, y, 2, path)] == [0, 1, 2]
    extended = [r.without_timings() for r in _rounds(x, y, 4, path)]
    assert extended == full  # the same records as a run of 4 rounds from the start
    header, recs = load_records(path)
    assert header["rounds"] == 4 and [r.round for r in recs] == [0, 1, 2, 3, 4]
    assert len(path.read_text().splitlines()) == 6  # the header and one line per round, nothing stale
    # fewer rounds: the rounds asked for, from the records, no more
    assert [r.without_timings() for r in _rounds(x, y, 2, path)] == full[:3]
    assert load_records(path)[0]["rounds"] == 4
    # an exhausted pool is not extended
    small = tmp_path / "small.jsonl"
    recs = _rounds(x[:16], y[:16], 5, small)
    assert recs[-1].n_labeled == 16 and _rounds(x[:16], y[:16], 9, small)[-1].round == recs[-1].round


@pytest.mark.slow
def test_cli_run_extends_with_more_rounds_and_puts_other_settings_in_another_file(tmp_path, capsys):
    base = ["run", "--dataset", "digits", "--max-train", "120", "--initial", "10", "--k", "5", "--epochs", "2",
            "--hidden", "16", "--out", str(tmp_path), "--no-progress"]
    assert main([*base, "--rounds", "1"]) == 0
    path = tmp_path / "digits_mlp_entropy_k5_seed0.jsonl"
    assert [json.loads(line).get("n_labeled") for line in path.read_text().splitlines()] == [None, 10, 15]
    assert main([*base, "--rounds", "3"]) == 0
    assert [json.loads(line).get("n_labeled") for line in path.read_text().splitlines()] == [None, 10, 15, 20, 25]
    uninterrupted = tmp_path / "again"
    assert main([*base[:-3], "--out", str(uninterrupted), "--no-progress", "--rounds", "3"]) == 0
    strip = ("fit_seconds", "select_seconds")
    rows = [{k: v for k, v in json.loads(line).items() if k not in strip} for line in path.read_text().splitlines()]
    again = [{k: v for k, v in json.loads(line).items() if k not in strip}
             for line in (uninterrupted / path.name).read_text().splitlines()]
    assert rows == again
    capsys.readouterr()
    before = path.read_text()
    # other training settings: another file, as the README says; the first run's file is untouched
    assert main([*base, "--rounds", "1", "--epochs", "3"]) == 0
    assert "other settings" in capsys.readouterr().err
    others = sorted(p.name for p in tmp_path.glob("digits_mlp_entropy_k5_seed0_*.jsonl"))
    assert len(others) == 1 and path.read_text() == before
    header = json.loads((tmp_path / others[0]).read_text().splitlines()[0])
    assert header["config"]["epochs"] == 3
    # rerunning either resumes its own file
    assert main([*base, "--rounds", "1", "--epochs", "3"]) == 0
    assert main([*base, "--rounds", "3"]) == 0 and path.read_text() == before


# -- 3. option values, oracle answers, k and budget -----------------------------------------------

RUN = ["run", "--dataset", "digits", "--max-train", "100", "--epochs", "1", "--rounds", "1", "--no-progress"]
STREAM = ["stream", "--dataset", "digits", "--max-train", "100", "--epochs", "1", "--segment", "40", "--no-progress"]


@pytest.mark.parametrize("argv, flag, value", [
    (RUN, "--max-train", "-100"), (RUN, "--max-train", "0"), (RUN, "--initial", "-1"), (RUN, "--k", "0"),
    (RUN, "--k", "-5"), (RUN, "--rounds", "-1"), (RUN, "--epochs", "0"), (RUN, "--hidden", "-3"),
    (RUN, "--n-draws", "0"), (RUN, "--committee", "1"), (RUN, "--seed", "-1"), (RUN, "--image-size", "0"),
    (RUN, "--split-seed", "-2"), (RUN, "--lr", "0"), (RUN, "--lr", "nan"), (RUN, "--dropout", "1.0"),
    (RUN, "--dropout", "-0.1"), (RUN, "--test-size", "0"), (RUN, "--test-size", "1.5"),
    (RUN, "--subsample-alpha", "-1.0"), (RUN, "--subsample-tau", "0"), (RUN, "--entropy-weight", "-1.0"),
    (STREAM, "--budget", "0"), (STREAM, "--budget", "-4"), (STREAM, "--segment", "0"), (STREAM, "--initial", "-1"),
    (STREAM, "--epochs", "-1"), (STREAM, "--q", "0"), (STREAM, "--q", "inf"), (STREAM, "--max-train", "-100"),
    (["demo", "--dataset", "digits", "--no-progress"], "--seeds", "0"),
    (["demo", "--dataset", "digits", "--no-progress"], "--jobs", "0"),
    (["demo", "--dataset", "digits", "--no-progress"], "--k", "-1"),
])
def test_meaningless_numbers_are_refused(tmp_path, capsys, argv, flag, value):
    extra = ["--budget", "10"] if argv is STREAM and flag not in ("--budget", "--q") else []
    assert main([*argv, *extra, flag, value, "--out", str(tmp_path)]) == 2
    err = _err(capsys)
    assert err.startswith(f"pickwise {argv[0]}: error: {flag} must be") and err.endswith(value), err
    assert not list(tmp_path.iterdir())


def test_select_refuses_zero_draws_and_bad_k(files, capsys):
    d = files
    assert _select(d, "--mc-probs", str(d / "mc.npy"), "--strategy", "bald", "--k", "3", "--n-draws", "0") == 2
    assert "--n-draws must be >= 1; got 0" in _err(capsys)
    assert _select(d, "--mc-probs", str(d / "mc.npy"), "--strategy", "bald", "--k", "3", "--n-draws", "7") == 2
    assert "--n-draws 7 exceeds the 6 draws" in _err(capsys)
    assert _select(d, "--probs", str(d / "probs.npy"), "--strategy", "margin", "--k", "0") == 2
    assert "--k must be >= 1; got 0" in _err(capsys)
    assert _select(d, "--probs", str(d / "probs.npy"), "--strategy", "margin", "--k", "51") == 2
    assert "--k 51 exceeds the 50 unlabelled items" in _err(capsys)


@pytest.mark.parametrize("argv, message", [
    (RUN + ["--initial", "20", "--k", "100000"], "--k 100000 exceeds the 80 unlabelled items of the pool (100 items, 20 initial labels)"),
    (RUN + ["--initial", "120"], "--initial 120 exceeds the pool of 100 items"),
    (STREAM + ["--initial", "20", "--budget", "5000"], "--budget 5000 exceeds the 80 stream items (100 training items less --initial 20)"),
    (["demo", "--dataset", "digits", "--max-train", "100", "--k", "500", "--no-progress"], "--k 500 exceeds the 80 unlabelled items"),
])
def test_k_and_budget_beyond_the_pool_are_errors_in_every_command(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in _err(capsys)


def test_rounds_beyond_the_pool_are_noted(tmp_path, capsys):
    argv = RUN[:-3] + ["--initial", "90", "--k", "4", "--rounds", "5", "--hidden", "8", "--out", str(tmp_path),
                       "--no-progress"]
    assert main(argv) == 0
    assert "--rounds 5 × --k 4 = 20 exceeds the 10 unlabelled items: the pool runs out after 3 rounds" in \
        capsys.readouterr().err


def test_callable_oracle_answers_are_checked(tmp_path):
    x, y = blobs(40, 5, 3, seed=2)
    pool = initial_pool(40, 6, y, seed=0, n_classes=3)

    def run(oracle):
        return list(pool_rounds(lambda: FakeModel(5, 3), Random(), x, pool, oracle, k=3, rounds=2))

    with pytest.raises(ValueError, match=r"label 0\.7 for item \d+ is not an integer class id"):
        run(lambda idx: np.full(len(idx), 0.7))
    with pytest.raises(ValueError, match=r"label nan"):
        run(lambda idx: np.full(len(idx), np.nan))
    with pytest.raises(ValueError, match=r"label -1 for item \d+ is negative"):
        run(lambda idx: np.full(len(idx), -1))
    with pytest.raises(ValueError, match=r"label 3 for item \d+ is outside the classes 0 \.\. 2"):
        run(lambda idx: np.full(len(idx), 3))
    with pytest.raises(ValueError, match=r"shape \(2,\) for 3 items"):
        run(lambda idx: y[idx][:2])
    with pytest.raises(ValueError, match=r"dtype <U"):
        run(lambda idx: np.array(["cat"] * len(idx)))
    # integral floats are labels: the same run as the integer oracle
    as_float = [r.without_timings() for r in run(lambda idx: y[idx].astype(np.float64))]
    assert as_float == [r.without_timings() for r in run(y)]
    from pickwise.oracle import check_answer

    np.testing.assert_array_equal(check_answer([3.0, 1.0], [5, 6]), [3, 1])


def test_stream_oracle_answers_are_checked():
    x, y = blobs(60, 5, 3, seed=2)

    def run(oracle):
        return list(stream_segments(lambda: FakeModel(5, 3), StreamUniform(q=0.5), x, oracle, segment=20,
                                    initial=6, seed=0))

    with pytest.raises(ValueError, match=r"label 0\.7 for item"):
        run(lambda idx: np.full(len(idx), 0.7))
    with pytest.raises(ValueError, match=r"label 1\.5 for item 4 "):
        run(np.where(np.arange(60) == 4, 1.5, y))
    assert [r.outcome() for r in run(lambda idx: y[idx] * 1.0)] == [r.outcome() for r in run(y)]


# -- 4. --member-probs for query by committee ------------------------------------------------------


@pytest.mark.parametrize("strategy", ["qbc", "qbc_kl"])
def test_select_qbc_from_member_probabilities(files, strategy):
    d = files
    lab = np.array([0, 5, 9])
    np.save(d / "labeled.npy", lab)
    assert _select(d, "--member-probs", str(d / "members.npy"), "--labeled", str(d / "labeled.npy"),
                   "--strategy", strategy, "--k", "6") == 0
    model = Precomputed(member_probs=np.load(d / "members.npy"))
    pool = Pool.empty(N).label(lab, np.zeros(3, dtype=np.int64))
    expected = make_strategy(strategy).select(model, model.x, pool, 6, rng=np.random.default_rng(0))
    assert _picks(d) == expected.tolist()
    with open(d / "picks.csv") as f:
        scores = [float(r["score"]) for r in csv.DictReader(f)]
    assert scores == sorted(scores, reverse=True)


def test_select_checks_the_member_layout(files, capsys):
    d = files
    assert _select(d, "--member-probs", str(d / "members_nmk.npy"), "--probs", str(d / "probs.npy"),
                   "--strategy", "qbc", "--k", "3") == 2
    err = _err(capsys)
    assert "(50, 4, 3)" in err and "(M, N, K)" in err and "expected shape (4, 50, 3)" in err
    np.save(d / "members2d.npy", np.load(d / "probs.npy"))
    assert _select(d, "--member-probs", str(d / "members2d.npy"), "--strategy", "qbc", "--k", "3") == 2
    assert "member_probs must have 3 dimensions" in _err(capsys)
    assert _select(d, "--probs", str(d / "probs.npy"), "--strategy", "qbc", "--k", "3") == 2
    assert "--member-probs" in _err(capsys)


# -- 5. files that are not .npy --------------------------------------------------------------------


def test_not_a_npy_file_is_named_as_such(tmp_path, capsys):
    (tmp_path / "random.npy").write_bytes(np.random.default_rng(0).bytes(300))
    (tmp_path / "text.npy").write_text("0.1,0.9\n0.5,0.5\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    for name in ("random.npy", "text.npy"):
        with pytest.raises(ValueError, match=rf"^not a \.npy file: .*{name}"):
            load_npy(tmp_path / name)
        assert main(["select", "--probs", str(tmp_path / name), "--strategy", "margin", "--k", "1",
                     "--out", str(tmp_path / "o.csv")]) == 2
        err = _err(capsys)
        assert f"not a .npy file: {tmp_path / name}" in err and "pickled" not in err
    with pytest.raises(ValueError, match="object array"):
        load_npy(tmp_path / "objects.npy", mmap=False)
    assert main(["select", "--probs", str(tmp_path / "objects.npy"), "--strategy", "margin", "--k", "1",
                 "--out", str(tmp_path / "o.csv")]) == 2
    assert "holds an object array" in _err(capsys)
    (tmp_path / "ids.npy").write_text("a\nb\n")
    np.save(tmp_path / "probs.npy", np.full((2, 2), 0.5))
    assert main(["select", "--probs", str(tmp_path / "probs.npy"), "--ids", str(tmp_path / "ids.npy"),
                 "--strategy", "margin", "--k", "1", "--out", str(tmp_path / "o.csv")]) == 2
    assert "not a .npy file" in _err(capsys)


# -- 6. cnn needs images ---------------------------------------------------------------------------


def test_cnn_refuses_tabular_data_up_front(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [[*rng.normal(size=16).round(3), i % 2] for i in range(60)]
    with open(tmp_path / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([[*(f"f{j}" for j in range(16)), "label"], *rows])
    assert main(["run", "--data", str(tmp_path / "table.csv"), "--model", "cnn", "--out", str(tmp_path / "runs"),
                 "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "needs images" in captured.err and "(48, 16)" in captured.err and captured.out == ""
    assert main(["stream", "--data", str(tmp_path / "table.csv"), "--model", "cnn", "--budget", "5",
                 "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert "needs images" in _err(capsys)
    np.save(tmp_path / "x.npy", rng.random((60, 3, 6, 5)))
    np.save(tmp_path / "y.npy", np.arange(60) % 2)
    assert main(["run", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--model", "cnn",
                 "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert "(3, 6, 5)" in _err(capsys)


@pytest.mark.slow
def test_cnn_trains_on_images(tmp_path):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((60, 3, 6, 6)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(60) % 2)
    for data in (["--dataset", "digits", "--max-train", "80"],
                 ["--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]):
        assert main(["run", *data, "--model", "cnn", "--strategy", "bald", "--n-draws", "3", "--initial", "10",
                     "--k", "5", "--rounds", "1", "--epochs", "1", "--out", str(tmp_path / "runs"),
                     "--no-progress"]) == 0


# -- 7. python -m pickwise -------------------------------------------------------------------------


def test_python_m_pickwise_help():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "pickwise", "--help"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pickwise") and "select" in done.stdout and done.stderr == ""
    done = subprocess.run([sys.executable, "-m", "pickwise", "select", "--probs", "missing.npy", "--strategy",
                           "margin", "--k", "1", "--out", "o.csv"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert done.returncode == 2 and done.stderr.startswith("pickwise select: error:") and "missing.npy" in done.stderr
