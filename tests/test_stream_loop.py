"""The stream loop: determinism, windows, budget, orders, records, resume."""

import json

import numpy as np
import pytest
from fakes import CentroidModel, FakeModel, blobs

from pickwise.stream import (
    SegmentRecord,
    StreamUncertainty,
    StreamUniform,
    VeSSAL,
    first_pc_scores,
    load_segments,
    save_segments,
    stream_order,
    stream_segments,
)
from pickwise.utils import derive_rng

N, SEG = 150, 40


@pytest.fixture
def data():
    return blobs(N, 5, 3, seed=1)


def accuracy(x, y):
    return lambda m: {"accuracy": float(np.mean(m.predict_proba(x).argmax(axis=1) == y))}


def run(data, selector, **kw):
    x, y = data
    kw.setdefault("segment", SEG)
    kw.setdefault("initial", 10)
    kw.setdefault("evaluate", accuracy(x, y))
    return list(stream_segments(CentroidModel, selector, x, y, **kw))


def outcomes(records):
    return [r.outcome() for r in records]


def test_records_and_windows(data):
    x, y = data
    initial = np.arange(0, N, 15)
    sel = VeSSAL(q=0.2)
    recs = run(data, sel, initial=initial, order="iid", seed=3)
    assert sel.t == 0  # the template is never used itself
    stream = stream_order("iid", x, y, rng=derive_rng(3, 0))
    stream = stream[~np.isin(stream, initial)]
    assert [r.segment for r in recs] == list(range(len(recs)))
    assert len(recs) == 1 + int(np.ceil(stream.size / SEG))
    r0 = recs[0]
    assert (r0.items_seen, r0.window, r0.queries, r0.n_labels, r0.queried) == (0, 0, 0, initial.size, ())
    labels = initial.size
    for r in recs[1:]:
        window = stream[(r.segment - 1) * SEG : r.segment * SEG]
        assert r.window == window.size and r.items_seen == min(r.segment * SEG, stream.size)
        assert set(r.queried) <= set(window.tolist())  # never outside the current window
        assert list(r.queried) == [i for i in window if i in set(r.queried)]  # arrival order
        labels += r.queries
        assert r.n_labels == labels and r.rate == pytest.approx(r.queries / r.window)
        assert set(r.metrics) == {"accuracy"} and r.fit_seconds >= 0 and r.select_seconds >= 0
    json.dumps([r.to_dict() for r in recs])


@pytest.mark.parametrize("make", [lambda: VeSSAL(q=0.2), lambda: VeSSAL(embedding="pen", q=0.2),
                                  lambda: StreamUniform(q=0.2), lambda: StreamUncertainty(q=0.2)])
def test_deterministic(data, make):
    a = run(data, make(), seed=5, order="pc")
    b = run(data, make(), seed=5, order="pc")
    assert outcomes(a) == outcomes(b)
    c = run(data, make(), seed=6, order="pc")
    assert outcomes(a) != outcomes(c)


def test_fake_model_loop_is_deterministic(data):
    x, y = data
    recs = [list(stream_segments(lambda: FakeModel(5, 3), VeSSAL(q=0.3), x, y, segment=25, initial=5, seed=1))
            for _ in range(2)]
    assert outcomes(recs[0]) == outcomes(recs[1])


@pytest.mark.parametrize("reset", [False, True])
def test_budget(data, reset):
    recs = run(data, VeSSAL(q=0.9), budget=30, seed=2, reset_selector=reset)
    total = sum(r.queries for r in recs)
    assert 25 <= total <= 30
    assert recs[-1].n_labels == 10 + total


def test_orders(data):
    x, y = data
    pc = stream_order("pc", x, y, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(pc, np.argsort(first_pc_scores(x), kind="stable"))
    by_class = stream_order("class", x, y, rng=np.random.default_rng(0))
    assert np.all(np.diff(y[by_class]) >= 0)
    recs = run(data, StreamUniform(q=0.5), order="class", segment=20, seed=0)
    assert set(y[list(recs[1].queried)]) == {0}  # the first window holds class 0 only
    explicit = np.arange(N)[::-1].copy()
    recs = run(data, StreamUniform(q=1.0), order=explicit, initial=np.array([0]), segment=N)
    assert recs[1].queried == tuple(range(N - 1, 0, -1))
    with pytest.raises(ValueError, match="order"):
        run(data, StreamUniform(q=0.5), order="sorted")


@pytest.mark.parametrize("reset", [False, True])
def test_resume_equals_uninterrupted(data, tmp_path, reset):
    whole = run(data, VeSSAL(q=0.25), seed=4, order="pc", protocol="global", reset_selector=reset)
    for cut in (1, 2, len(whole) - 1, len(whole)):
        CentroidModel.fits = 0
        rest = run(data, VeSSAL(q=0.25), seed=4, order="pc", protocol="global", reset_selector=reset,
                   resume=whole[:cut])
        assert outcomes(whole[:cut] + rest) == outcomes(whole)
        if cut < len(whole):  # replay refits every recorded window's model (none for a fresh-per-window selector)
            assert CentroidModel.fits == (1 if reset else cut) + len(rest)
    path = tmp_path / "rec.jsonl"
    save_segments(whole[:2], path)
    rest = run(data, VeSSAL(q=0.25), seed=4, order="pc", protocol="global", reset_selector=reset, resume=path)
    assert outcomes(whole[:2] + rest) == outcomes(whole)


def test_resume_from_checkpoint_skips_the_replay(data, tmp_path):
    """The carried-state ("global") protocol: the selector's state comes back from the checkpoint."""
    ck = tmp_path / "sel.npz"
    whole = run(data, VeSSAL(q=0.25), seed=4, budget=20, protocol="global")
    first = []
    for rec in stream_segments(CentroidModel, VeSSAL(q=0.25), *data, segment=SEG, initial=10, seed=4, budget=20,
                               protocol="global", evaluate=accuracy(*data), checkpoint=ck):
        first.append(rec)
        if rec.segment == 2:
            break  # "crash" after the second window
    CentroidModel.fits = 0
    rest = run(data, VeSSAL(q=0.25), seed=4, budget=20, protocol="global", resume=first, checkpoint=ck)
    assert CentroidModel.fits == 1 + len(rest)  # only the model for window 3, then one fit per window
    assert outcomes(first + rest) == outcomes(whole)
    with pytest.raises(ValueError, match="another run"):
        run(data, VeSSAL(q=0.25), seed=4, budget=25, protocol="global", resume=first, checkpoint=ck)


def test_resume_detects_a_different_run(data):
    recs = run(data, VeSSAL(q=0.3), seed=4, order="iid")
    with pytest.raises(ValueError, match="resume"):
        run(data, VeSSAL(q=0.3), seed=4, order="pc", resume=recs[:3])
    with pytest.raises(ValueError, match="segments 0, 1, 2"):
        run(data, VeSSAL(q=0.3), seed=4, resume=recs[1:3])


def test_record_serialisation(tmp_path):
    rec = SegmentRecord(2, 80, 40, 3, 13, 0.075, {"accuracy": np.float64(0.5)}, 0.1, 0.2, 0.3, (5, 9, 1))
    d = rec.to_dict()
    assert d["metrics"]["accuracy"] == 0.5 and d["queried"] == [5, 9, 1]
    assert SegmentRecord.from_dict(json.loads(json.dumps(d))) == SegmentRecord.from_dict(d)
    assert SegmentRecord.from_dict(d).queried == (5, 9, 1)
    path = tmp_path / "r.jsonl"
    save_segments([rec, rec], path)
    with open(path, "a") as f:
        f.write('{"segment": 3, "items_')  # a crash mid-write
    assert len(load_segments(path)) == 2
    with pytest.raises(ValueError, match="queried"):
        SegmentRecord.from_dict({k: v for k, v in d.items() if k != "queried"})


def test_validation(data):
    x, y = data
    with pytest.raises(ValueError, match="segment"):
        stream_segments(CentroidModel, VeSSAL(q=0.1), x, y, segment=0)
    with pytest.raises(ValueError, match="no rate"):
        stream_segments(CentroidModel, VeSSAL(), x, y, segment=10)
    with pytest.raises(ValueError, match="initial=150"):
        stream_segments(CentroidModel, VeSSAL(q=0.1), x, y, segment=10, initial=N)
    with pytest.raises(ValueError, match="-2"):
        stream_segments(CentroidModel, VeSSAL(q=0.1), x, y, segment=10, budget=-2)
    with pytest.raises(ValueError, match="shape"):
        stream_segments(CentroidModel, VeSSAL(q=0.1), x, y[:5], segment=10)

    class ProbsOnly:
        n_classes = 3

        def fit(self, x, y, *, seed):
            return self

        def predict_proba(self, x):
            return np.full((len(x), 3), 1 / 3)

    with pytest.raises(TypeError, match="GradEmbedder"):
        list(stream_segments(ProbsOnly, VeSSAL(q=0.1), x, y, segment=10))
    recs = list(stream_segments(ProbsOnly, StreamUncertainty(q=0.1), x, y, segment=50, initial=5, budget=10))
    assert sum(r.queries for r in recs) <= 10


def test_selectors_satisfy_the_protocol_and_progress_runs(data, capsys):
    from pickwise.protocols import StreamSelector

    for sel in (VeSSAL(q=0.1), StreamUniform(q=0.1), StreamUncertainty(q=0.1)):
        assert isinstance(sel, StreamSelector)
    recs = run(data, StreamUniform(q=0.1), progress=True, segment=70)
    assert len(recs) == 1 + int(np.ceil((N - 10) / 70))
    assert "segments" in capsys.readouterr().err
