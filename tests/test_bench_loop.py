"""benchmarks/loop.py without the peers: pickwise's side of a round on a tiny synthetic pool, the shared
training, and the report writers. The BAAL and small-text parts run only where those are installed
(benchmarks/.venv-peers), and are skipped in the project's venv."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def _load_loop():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_loop", ROOT / "benchmarks" / "loop.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_loop"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


loop = _load_loop()


def _data(seed: int = 0, n: int = 300, n_test: int = 90, d: int = 12, k: int = 3):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    y = rng.integers(k, size=n + n_test)
    x = (centres[y] + rng.normal(size=(n + n_test, d))).astype(np.float32)
    return loop.Data(x[:n], y[:n].astype(np.int64), x[n:], y[n:].astype(np.int64), k)


SETTING = loop.Setting("synthetic", n_initial=20, k=10, rounds=1, hidden=16, epochs=2, chunk=64, n_draws=4)


@pytest.mark.parametrize("strategy", loop.STRATEGIES)
def test_pickwise_round_picks_k_new_distinct_rows(strategy: str) -> None:
    data = _data()
    rounds = loop.run_pickwise(data, SETTING, strategy, seed=3)
    assert [r["round"] for r in rounds] == [0, 1]
    first, last = rounds
    init = set(loop.initial_indices(data, SETTING, 3).tolist())
    picked = first["selected"]
    assert len(picked) == SETTING.k and len(set(picked)) == SETTING.k
    assert not set(picked) & init and all(0 <= i < len(data.y) for i in picked)
    assert first["n_labeled"] == SETTING.n_initial and last["n_labeled"] == SETTING.n_initial + SETTING.k
    assert last["selected"] == [] and last["select_s"] is None and first["select_s"] >= 0
    assert all(0.0 <= r["acc"] <= 1.0 and r["train_s"] > 0 for r in rounds)


def test_pickwise_round_is_a_function_of_the_seed() -> None:
    data = _data()
    a = loop.run_pickwise(data, SETTING, "entropy", seed=1)
    b = loop.run_pickwise(data, SETTING, "entropy", seed=1)
    assert a[0]["selected"] == b[0]["selected"] and [r["acc"] for r in a] == [r["acc"] for r in b]


def test_initial_set_is_shared_stratified_and_seeded() -> None:
    data = _data()
    a = loop.initial_indices(data, SETTING, 5)
    assert np.array_equal(a, loop.initial_indices(data, SETTING, 5))
    assert not np.array_equal(a, loop.initial_indices(data, SETTING, 6))
    assert len(set(a.tolist())) == SETTING.n_initial and set(data.y[a].tolist()) == {0, 1, 2}


def test_plain_training_makes_the_steps_of_batched_epochs() -> None:
    data = _data()
    net = loop.make_net(12, 3, SETTING, 0)
    steps = loop.train_plain(net, data.x[:150], data.y[:150], SETTING, 0)
    assert steps == SETTING.epochs * -(-150 // SETTING.batch_size)
    assert not net.training  # left in eval mode for scoring


def _row(library: str, strategy: str, round_s: float, peak: float) -> dict:  # type: ignore[type-arg]
    res = {"rounds": [{"train_s": round_s / 2, "select_s": round_s / 2, "acc": 0.5, "n_labeled": 20},
                      {"train_s": round_s / 2, "select_s": None, "acc": 0.75, "n_labeled": 30}],
           "peak_mb": peak, "base_mb": peak - 10}
    return loop.summarise("synthetic", library, strategy, 0, res)


def test_report_has_the_ratio_columns_and_the_csv_every_column(tmp_path: Path) -> None:
    rows = [_row("pickwise", "bald", 1.0, 100.0), _row("baal", "bald", 4.0, 200.0),
            _row("small-text", "bald", 2.0, 400.0), _row("pickwise", "badge", 1.0, 100.0),
            _row("small-text", "badge", 5.0, 100.0)]
    assert rows[0]["round_s_mean"] == pytest.approx(1.0) and rows[0]["acc_final"] == 0.75
    assert rows[0]["acc_mean"] == pytest.approx(0.625) and rows[0]["loop_mb"] == pytest.approx(10.0)
    report = loop.markdown(rows, [], command="python benchmarks/loop.py --quick", settings={"synthetic": SETTING},
                           libraries=loop.LIBRARIES, strategies=("bald", "badge"), threads=1)
    assert "Command: `python benchmarks/loop.py --quick`" in report
    assert "pickwise/BAAL round" in report and "pickwise/small-text round" in report
    bald_line = next(line for line in report.splitlines() if line.startswith("| synthetic | bald | 1.000"))
    cells = [c.strip() for c in bald_line.strip("|").split("|")]
    assert cells[5:7] == ["0.25", "0.50"]  # round time ratios pickwise ÷ BAAL, pickwise ÷ small-text
    assert cells[9:11] == ["0.50", "0.25"]  # peak memory ratios
    badge_line = next(line for line in report.splitlines() if line.startswith("| synthetic | badge | 1.000"))
    assert "| — |" in badge_line  # no BAAL BADGE
    assert "BAAL 2.1 has no BADGE heuristic" in report
    loop.write_outputs(tmp_path, rows, [], report)
    with open(tmp_path / "loop.csv", newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == loop.CSV_COLUMNS and len(read) == len(rows)
    assert (tmp_path / "loop.md").read_text(encoding="utf-8") == report
    assert not (tmp_path / "mc.csv").exists()


def test_bad_cli_lists_name_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        loop.main(["--strategies", "entropy,margin"])
    assert exc.value.code == 2
    assert "'entropy,margin'" in capsys.readouterr().err


def test_smalltext_classifier_follows_smalltext_shapes() -> None:
    pytest.importorskip("small_text")
    from small_text import SklearnDataset

    data = _data()
    clf = loop.smalltext_classifier(SETTING, 12, 3, seed=0)
    clf.fit(SklearnDataset(data.x[:60], data.y[:60]))
    ds = SklearnDataset(data.x[:70], data.y[:70])
    assert clf.predict_proba(ds).shape == (70, 3)
    mc = clf.predict_proba(ds, dropout_sampling=5)
    assert mc.shape == (70, 5, 3) and np.allclose(mc.sum(-1), 1)
    emb, proba = clf.embed(ds, return_proba=True)
    assert emb.shape == (70, SETTING.hidden) and np.allclose(proba, clf.predict_proba(ds))


@pytest.mark.parametrize("runner", ["run_baal", "run_smalltext"])
def test_peer_rounds_pick_k_new_rows(runner: str) -> None:
    pytest.importorskip("baal" if runner == "run_baal" else "small_text")
    data = _data()
    rounds = getattr(loop, runner)(data, SETTING, "entropy", seed=3)
    init = set(loop.initial_indices(data, SETTING, 3).tolist())
    picked = rounds[0]["selected"]
    assert len(set(picked)) == SETTING.k and not set(picked) & init
    assert rounds[1]["n_labeled"] == SETTING.n_initial + SETTING.k
