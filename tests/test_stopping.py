"""The stabilising-predictions stopping rule (issue 14): kappa, the rule, the loops' records, the report."""

import numpy as np
import pytest

from pickwise.bench import analysis as an
from pickwise.bench import write_report
from pickwise.bench.report import validate_run
from pickwise.loop import initial_pool, pool_rounds
from pickwise.records import RecordWriter, RoundRecord
from pickwise.stopping import prediction_kappa, stop_predictions, stop_round, stop_set
from pickwise.strategies import Random
from pickwise.stream import SegmentRecord, stream_segments
from pickwise.stream.baselines import StreamUniform
from pickwise.utils import derive_rng

from fakes import FakeModel, blobs
from test_bench_report import SIZES, record


def plain_kappa(a, b):
    """Cohen (1960) from the confusion matrix: (p_o − p_e) / (1 − p_e)."""
    classes = sorted(set(a) | set(b))
    m = np.zeros((len(classes), len(classes)))
    for x, y in zip(a, b):
        m[classes.index(x), classes.index(y)] += 1
    m /= m.sum()
    p_o = np.trace(m)
    p_e = float(m.sum(axis=1) @ m.sum(axis=0))
    return 1.0 if p_e == 1 else (p_o - p_e) / (1 - p_e)


@pytest.mark.parametrize("seed", range(6))
def test_kappa_against_a_plain_computation(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    a = rng.integers(0, c, n)
    b = np.where(rng.random(n) < 0.7, a, rng.integers(0, c, n))
    assert prediction_kappa(a, b) == pytest.approx(plain_kappa(a.tolist(), b.tolist()), abs=1e-12)


def test_kappa_edges():
    assert prediction_kappa([2, 2, 2], [2, 2, 2]) == 1.0
    assert prediction_kappa(None, [1]) is None and prediction_kappa([1], None) is None
    assert prediction_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equal length; got 2 and 3"):
        prediction_kappa([0, 1], [0, 1, 1])


@pytest.mark.parametrize("kappas, expected", [
    ([None, 0.5, 0.99, 0.995, 0.999], 4),  # mean(0.99, 0.995, 0.999) = 0.9947
    ([None, 1, 1, 0.9, 1, 1, 1], 6),  # every window with 0.9 stays below
    ([None, 1, 1, None, 1, 1], None),  # a missing kappa breaks the window
    ([None, 0.98, 0.99, 1.0], None),  # mean 0.98999…: just below
    ([None, 1, 1], None),  # too short
    ([], None),
])
def test_stop_round_on_constructed_sequences(kappas, expected):
    assert stop_round(kappas) == expected


def test_stop_round_window_and_threshold():
    assert stop_round([None, 0.9, 0.9], threshold=0.9, window=1) == 1
    assert stop_round([None, 0.5, 1.0, 0.75], threshold=0.75) == 3  # the mean exactly at the threshold fires
    with pytest.raises(ValueError, match="window must be >= 1; got 0"):
        stop_round([1.0], window=0)


def test_stop_set_is_seeded_and_sorted():
    a = stop_set(np.arange(10, 5000), rng=derive_rng(3, 7))
    assert len(a) == 1000 and np.all(np.diff(a) > 0) and a.min() >= 10
    assert a.tolist() == stop_set(np.arange(10, 5000), rng=derive_rng(3, 7)).tolist()
    assert stop_set([5, 1, 3], rng=derive_rng(0)).tolist() == [1, 3, 5]


class Fixed(FakeModel):
    """Predicts the sign pattern of its features, whatever it was trained on: stable predictions."""

    def predict_proba(self, x):
        x = np.asarray(x, dtype=float)
        s = np.stack([x[:, 0], x[:, 1], -x[:, 0]], axis=1)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_pool_records_report_kappa_and_stop(tmp_path):
    x, y = blobs(150, n_features=4, n_classes=3, seed=1)
    pool = initial_pool(150, 10, y, seed=0)
    recs = list(pool_rounds(lambda: FakeModel(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=5,
                            stop_set_size=50))
    stop = stop_set(pool.unlabeled, rng=derive_rng(2, 2**21), size=50)
    kappas = [None]
    for prev, cur in zip(recs, recs[1:]):
        kappas.append(prediction_kappa(prev.stop_predictions, cur.stop_predictions))
    assert [r.stop_kappa for r in recs] == kappas
    assert [r.stop_reached for r in recs] == [stop_round(kappas[: i + 1]) for i in range(len(recs))]
    assert all(len(r.stop_predictions) == len(stop) == 50 for r in recs)
    # a model whose predictions never change fires at round 3 (window 3) and says so from then on
    fixed = list(pool_rounds(lambda: Fixed(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=5))
    assert [r.stop_kappa for r in fixed] == [None, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert [r.stop_reached for r in fixed] == [None, None, None, 3, 3, 3]
    assert fixed[0].stop_predictions == stop_predictions(Fixed(4, 3), x, stop_set(
        pool.unlabeled, rng=derive_rng(2, 2**21))).tolist()
    # no stop set: nothing reported
    none = list(pool_rounds(lambda: FakeModel(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=2, stop_set_size=0))
    assert all(r.stop_kappa is None and r.stop_predictions is None for r in none)


def test_resumed_run_reports_the_same(tmp_path):
    x, y = blobs(150, n_features=4, n_classes=3, seed=1)
    pool = initial_pool(150, 10, y, seed=0)
    whole = list(pool_rounds(lambda: FakeModel(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=5))
    path = tmp_path / "r.jsonl"
    list(pool_rounds(lambda: FakeModel(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=2, records=path))
    resumed = list(pool_rounds(lambda: FakeModel(4, 3), Random(), x, pool, y, k=5, seed=2, rounds=5, records=path))
    assert [r.without_timings() for r in resumed] == [r.without_timings() for r in whole]


def test_old_records_without_the_fields_load():
    d = RoundRecord(round=0, n_labeled=5, metrics={}, selected=[1], labels=[0], fit_seconds=0.0,
                    select_seconds=0.0, n_scored=3).to_dict()
    for key in ("stop_kappa", "stop_reached", "stop_predictions"):
        d.pop(key)
    rec = RoundRecord.from_dict(d)
    assert rec.stop_kappa is None and rec.stop_reached is None and rec.stop_predictions is None
    seg = SegmentRecord(0, 0, 0, 0, 5, 0.0, {}, 0.0, 0.0, 0.0, ()).to_dict()
    seg.pop("stop_kappa")
    seg.pop("stop_reached")
    assert SegmentRecord.from_dict(seg).stop_kappa is None


def test_stream_records_report_kappa():
    x, y = blobs(200, n_features=4, n_classes=3, seed=2)
    recs = list(stream_segments(lambda: Fixed(4, 3), StreamUniform(), x, y, segment=40, initial=10, budget=20,
                                seed=1))
    assert [r.stop_kappa for r in recs] == [None] + [1.0] * (len(recs) - 1)
    assert [r.stop_reached for r in recs] == [None, None, None] + [3] * (len(recs) - 3)
    assert [SegmentRecord.from_dict(r.to_dict()) for r in recs] == recs


def _with_stop(rec, reached_round):
    for r in rec["rounds"]:
        r["stop_kappa"] = None if r["round"] == 0 else 0.995
        r["stop_reached"] = reached_round if reached_round is not None and r["round"] >= reached_round else None
    return rec


def test_report_stopping_section(tmp_path):
    base = 0.5 + 0.3 * (1 - np.exp(-(np.array(SIZES) - 100) / 250))
    old = tmp_path / "old"
    w = RecordWriter(old / "runs.jsonl")
    recs = [record("pool", a, s, SIZES, base + 0.01 * s) for a in ("random", "margin") for s in range(3)]
    for r in recs:
        w.write(r)
    w.close()
    assert all(validate_run(r) is None for r in recs)
    assert an.stopping_rows([an.to_run(r) for r in recs]) == []
    text = write_report(old, tmp_path / "old_report").read_text()
    assert "## Stopping rule" not in text

    new = tmp_path / "new"
    w = RecordWriter(new / "runs.jsonl")
    recs = [_with_stop(record("pool", "random", s, SIZES, base + 0.01 * s), 3) for s in range(3)]
    recs += [_with_stop(record("pool", "margin", s, SIZES, base), 4 if s else None) for s in range(3)]
    for r in recs:
        w.write(r)
    w.close()
    assert all(validate_run(r) is None for r in recs)
    rows = {r["algorithm"]: r for r in an.stopping_rows([an.to_run(r) for r in recs])}
    assert rows["random"]["n_fired"] == 3 and rows["random"]["stop_mean"] == SIZES[3]
    assert rows["margin"]["n_fired"] == 2 and rows["margin"]["stop_mean"] == SIZES[4]
    # the plateau from a plain scan of the mean curve, the loss from each run's own curve
    mean = np.mean([base + 0.01 * s for s in range(3)], axis=0)
    assert rows["random"]["plateau"] == SIZES[int(np.argmax(mean >= 0.99 * mean[-1]))]
    assert rows["random"]["loss_mean"] == pytest.approx(float(base[-1] - base[3]))
    text = write_report(new, tmp_path / "new_report").read_text()
    assert "## Stopping rule" in text and "| margin | pool | 2/3 |" in text


def test_validate_run_checks_stop_fields():
    rec = _with_stop(record("pool", "random", 0, SIZES, np.linspace(0.5, 0.8, len(SIZES))), 3)
    rec["rounds"][2]["stop_kappa"] = 1.5
    assert "stop_kappa = 1.5" in validate_run(rec)
    rec = _with_stop(record("pool", "random", 0, SIZES, np.linspace(0.5, 0.8, len(SIZES))), 3)
    rec["rounds"][4]["stop_reached"] = 7
    assert "stop_reached = 7" in validate_run(rec)
