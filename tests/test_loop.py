import itertools
import json

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise import Pool, Random, Uncertainty, holdout, initial_pool, load_records, pool_rounds, replay_pool


@pytest.fixture
def data():
    x, y = blobs(80, 5, 3, seed=1)
    return x, y


def _run(x, y, strategy, records=None, rounds=4, seed=3):
    pool = initial_pool(len(x), 6, y, seed=seed, n_classes=3)
    return list(
        pool_rounds(
            lambda: FakeModel(5, 3),
            strategy,
            x,
            pool,
            y,
            k=5,
            seed=seed,
            evaluate=holdout(x, y),
            rounds=rounds,
            records=records,
        )
    )


def test_round_records_shape(data):
    x, y = data
    recs = _run(x, y, Uncertainty(score="entropy"))
    assert [r.round for r in recs] == [0, 1, 2, 3, 4]
    assert [r.n_labeled for r in recs] == [6, 11, 16, 21, 26]
    assert all(len(r.selected) == 5 for r in recs[:-1]) and recs[-1].selected == []
    assert set(recs[0].metrics) == {"accuracy", "macro_f1", "nll", "ece"}
    chosen = list(itertools.chain.from_iterable(r.selected for r in recs))
    assert len(set(chosen)) == len(chosen)
    np.testing.assert_array_equal([lab for r in recs for lab in r.labels], y[chosen])
    pool = replay_pool(initial_pool(len(x), 6, y, seed=3, n_classes=3), recs)
    assert pool.n_labeled == 26


@pytest.mark.parametrize("strategy", [Random(), Uncertainty(score="margin")])
def test_same_seed_same_records(data, strategy):
    x, y = data
    a = [r.without_timings() for r in _run(x, y, strategy)]
    b = [r.without_timings() for r in _run(x, y, strategy)]
    assert a == b
    c = [r.without_timings() for r in _run(x, y, strategy, seed=4)]
    assert a != c


def test_resume_after_interruption_equals_uninterrupted(data, tmp_path):
    x, y = data
    full = [r.without_timings() for r in _run(x, y, Random(), records=tmp_path / "full.jsonl")]

    path = tmp_path / "cut.jsonl"
    pool = initial_pool(len(x), 6, y, seed=3, n_classes=3)
    gen = pool_rounds(lambda: FakeModel(5, 3), Random(), x, pool, y, k=5, seed=3, evaluate=holdout(x, y), rounds=4, records=path)
    next(gen), next(gen)  # two rounds, then the process "dies"
    gen.close()
    with open(path, "a") as f:  # a torn half-written line from the kill
        f.write('{"type": "round", "rou')
    resumed = [r.without_timings() for r in _run(x, y, Random(), records=path)]
    assert resumed == full
    header, recs = load_records(path)
    assert header["seed"] == 3 and [r.round for r in recs] == [0, 1, 2, 3, 4]
    # the file holds exactly one line per round plus the header, all valid JSON
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)


def test_resume_refuses_a_different_run(data, tmp_path):
    x, y = data
    _run(x, y, Random(), records=tmp_path / "r.jsonl", rounds=1)
    with pytest.raises(ValueError, match="different run"):
        _run(x, y, Uncertainty(), records=tmp_path / "r.jsonl", rounds=1)


def test_bad_arguments(data):
    x, y = data
    with pytest.raises(ValueError, match="no labelled items"):
        next(pool_rounds(lambda: FakeModel(5, 3), Random(), x, Pool.empty(80), y, k=5))
    with pytest.raises(ValueError, match="k must be >= 1; got 0"):
        next(pool_rounds(lambda: FakeModel(5, 3), Random(), x, initial_pool(80, 5, y, seed=0), y, k=0))
    with pytest.raises(ValueError, match="x has 10 items"):
        next(pool_rounds(lambda: FakeModel(5, 3), Random(), x[:10], initial_pool(80, 5, y, seed=0), y, k=2))


def test_capabilities_checked_before_round_one(data):
    x, y = data

    class ProbaOnly:
        n_classes = 3

        def fit(self, x, y, *, seed):
            return self

    with pytest.raises(TypeError, match="Classifier"):
        next(pool_rounds(ProbaOnly, Uncertainty(), x, initial_pool(80, 5, y, seed=0), y, k=2))


def test_pool_exhaustion_ends_the_loop(data):
    x, y = data
    pool = initial_pool(12, 6, y[:12], seed=0)
    recs = list(pool_rounds(lambda: FakeModel(5, 3), Random(), x[:12], pool, y[:12], k=4))
    assert [r.n_labeled for r in recs] == [6, 10, 12]
    assert recs[-1].selected == []


def test_resume_refuses_other_settings(data, tmp_path):
    x, y = data
    pool = initial_pool(len(x), 6, y, seed=3, n_classes=3)
    list(pool_rounds(lambda: FakeModel(5, 3), Random(), x, pool, y, k=5, rounds=1, records=tmp_path / "r.jsonl", config={"epochs": 10}))
    with pytest.raises(ValueError, match="config"):
        list(pool_rounds(lambda: FakeModel(5, 3), Random(), x, pool, y, k=5, rounds=1, records=tmp_path / "r.jsonl", config={"epochs": 20}))
