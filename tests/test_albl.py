import itertools
import json
import math

import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise import initial_pool, pool_rounds
from pickwise.pool import Pool
from pickwise.protocols import Classifier, GradEmbedder
from pickwise.strategies import Random, Uncertainty
from pickwise.strategies.albl import ALBL, exp4p_probabilities, exp4p_update, iw_accuracy
from pickwise.strategies.batch import BADGE


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    return FakeModel(5, 3), x, pool


def test_contract(setting):
    check_strategy_contract(lambda: ALBL([Random(), Uncertainty(score="margin"), BADGE()]), *setting)


def test_needs_is_the_union_of_the_arms():
    assert ALBL([Uncertainty(), BADGE(), Random()]).needs == (Classifier, GradEmbedder)


def test_exp4p_probabilities_and_update_by_hand():
    lw = np.log(np.array([1.0, 2.0, 5.0]))
    q = exp4p_probabilities(lw, 0.05)
    np.testing.assert_allclose(q, (1 - 3 * 0.05) * np.array([1, 2, 5]) / 8 + 0.05)
    assert q.sum() == pytest.approx(1.0) and q.min() >= 0.05
    new = exp4p_update(lw, q, 1, 0.6, p_min=0.05, delta=0.1, horizon=4)
    bonus = math.sqrt(math.log(3 / 0.1) / (3 * 4))
    expected = lw + 0.05 / 2 * (np.array([0, 0.6 / q[1], 0]) + bonus / q)
    np.testing.assert_allclose(new, expected)


def test_reward_is_importance_weighted_accuracy_of_the_current_model(setting):
    model, x, pool = setting
    albl = ALBL([Random(), Uncertainty()])
    q = albl.probabilities()
    np.testing.assert_allclose(q, [0.5, 0.5])
    sel = albl.select(model, x, pool, 4, rng=np.random.default_rng(0))
    arm = albl.arms_drawn[-1]
    pred = model.predict_proba(x[sel]).argmax(1)
    labels = pred.copy()
    labels[0] = (labels[0] + 1) % 3  # one wrong out of four
    r = albl.observe_labels(model, x, sel, labels)
    assert r == pytest.approx(3 * (1 / q[arm]) / (2 * 4))
    assert r == pytest.approx(iw_accuracy(np.array([0, 1, 1, 1.0]), np.full(4, 1 / q[arm]), 2))
    assert albl.log_weights[arm] > albl.log_weights[1 - arm]
    # nothing pending any more: a second call is ignored
    assert albl.observe_labels(model, x, sel, labels) is None
    assert albl.rewards == [r]


class Picks:
    """An arm that takes unlabelled items the model gets right (or wrong), in index order."""

    needs = (Classifier,)

    def __init__(self, y, right):
        self.y, self.right = y, right

    def select(self, model, x, pool, k, *, rng):
        unl = pool.unlabeled
        ok = model.predict_proba(x[unl]).argmax(1) == self.y[unl]
        good = unl[ok == self.right]
        rest = unl[ok != self.right]
        return np.concatenate([good, rest])[:k]


@pytest.mark.parametrize(("history", "at_least"), [(True, 0.53), (False, 0.6)])
def test_the_bandit_learns_to_prefer_the_rewarding_arm(history, at_least):
    """A fixed model; one arm queries what it gets right, the other what it gets wrong. EXP4.P moves
    slowly with the authors' settings (step p_min/2), so 40 rounds shift the odds only somewhat."""
    x, y = blobs(400, 5, 3, seed=2)
    model = FakeModel(5, 3, seed=4)
    right = model.predict_proba(x).argmax(1) == y
    assert 100 < right.sum() < 300
    albl = ALBL([Picks(y, False), Picks(y, True)], horizon=40, history=history)
    pool = Pool.empty(400, n_classes=3).label(np.arange(5), y[:5])
    rng = np.random.default_rng(0)
    for _ in range(40):
        sel = albl.select(model, x, pool, 3, rng=rng)
        pool = pool.label(sel, y[sel])
        albl.observe_labels(model, x, sel, y[sel])
    assert albl.probabilities()[1] > at_least


def test_state_dict_round_trip_continues_identically(setting):
    model, x, pool = setting
    y = model.predict_proba(x).argmax(1)
    a = ALBL([Random(), Uncertainty(), BADGE()])
    rng = np.random.default_rng(1)
    for _ in range(3):
        sel = a.select(model, x, pool, 3, rng=rng)
        pool = pool.label(sel, y[sel])
        a.observe_labels(model, x, sel, y[sel])
    sel = a.select(model, x, pool, 3, rng=rng)  # leaves a pending batch
    state = json.loads(json.dumps(a.state_dict()))
    b = ALBL([Random(), Uncertainty(), BADGE()])
    b.load_state_dict(state)
    pool = pool.label(sel, y[sel])
    assert a.observe_labels(model, x, sel, y[sel]) == b.observe_labels(model, x, sel, y[sel])
    np.testing.assert_array_equal(a.select(model, x, pool, 3, rng=np.random.default_rng(5)),
                                  b.select(model, x, pool, 3, rng=np.random.default_rng(5)))
    with pytest.raises(ValueError, match="2 arms"):
        ALBL([Random(), Uncertainty()]).load_state_dict(state)


def test_the_loop_calls_observe_labels_and_resumes(tmp_path):
    x, y = blobs(60, 5, 3, seed=1)

    def run(rounds, records):
        return list(pool_rounds(lambda: FakeModel(5, 3), ALBL([Random(), Uncertainty()]), x,
                                initial_pool(60, 6, y, seed=0, n_classes=3), y, k=4, seed=0, rounds=rounds,
                                records=records))

    full = run(4, None)
    assert [len(r.strategy_state["rewards"]) for r in full] == [0, 1, 2, 3, 4]
    path = tmp_path / "albl.jsonl"
    list(itertools.islice(run(4, path), 2))
    resumed = run(4, path)
    assert [r.without_timings() for r in resumed] == [r.without_timings() for r in full]


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        ALBL([Random()])
    with pytest.raises(ValueError, match="1.5"):
        ALBL([Random(), Uncertainty()], delta=1.5)
    with pytest.raises(ValueError, match="0.6"):
        ALBL([Random(), Uncertainty()], p_min=0.6)
    with pytest.raises(ValueError, match="select"):
        ALBL([Random(), object()])
    with pytest.raises(ValueError, match="horizon"):
        ALBL([Random(), Uncertainty()], horizon=0)
    with pytest.raises(ValueError, match="sometimes"):
        ALBL([Random(), Uncertainty()], history="sometimes")
