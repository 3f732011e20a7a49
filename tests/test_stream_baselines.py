"""Stream baselines: stream-uniform and uncertainty with the rank-threshold budget manager."""

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise.scores import least_confidence
from pickwise.stream import StreamUncertainty, StreamUniform


def probs(n, seed, k=4, scale=2.0):
    logits = np.random.default_rng(seed).normal(size=(n, k)) * scale
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_uniform_rate():
    z = np.zeros((5000, 0))
    d = StreamUniform(q=0.1).observe_many(z, rng=np.random.default_rng(0))
    assert abs(d.sum() - 500) <= 4 * np.sqrt(5000 * 0.09)
    d = StreamUniform(budget=300, length=5000).observe_many(z, rng=np.random.default_rng(0))
    assert 290 <= d.sum() <= 300
    assert StreamUniform(q=0.1).featurize(None, np.ones((7, 3))).shape == (7, 0)


def test_uncertainty_hits_the_rate_and_prefers_uncertain_items():
    p = probs(4000, 1)
    d = StreamUncertainty(q=0.1).observe_many(p, rng=np.random.default_rng(0))
    # for i.i.d. continuous scores the query probability is exactly q
    assert abs(d.sum() - 400) <= 4 * np.sqrt(4000 * 0.09)
    s = least_confidence(p)
    assert np.quantile(s[d], 0.1) > np.quantile(s, 0.8)


def test_uncertainty_splits_ties_at_random():
    p = np.full((3000, 3), 1 / 3)  # every score equal
    d = StreamUncertainty(q=0.2).observe_many(p, rng=np.random.default_rng(0))
    assert abs(d.sum() - 600) <= 4 * np.sqrt(3000 * 0.16)


def test_uncertainty_threshold_follows_drift_and_budget():
    # the model grows more confident along the stream; a fixed threshold would stop querying
    n = 4000
    p = np.concatenate([probs(n // 4, s, scale=1.0 + 2 * s) for s in range(4)])
    d = StreamUncertainty(budget=400, length=n, window=200).observe_many(p, rng=np.random.default_rng(0))
    per_quarter = d.reshape(4, -1).sum(axis=1)
    assert 380 <= d.sum() <= 400
    assert per_quarter.min() >= 70, per_quarter


def test_uncertainty_window_and_state():
    sel = StreamUncertainty(q=0.3, window=10)
    sel.observe_many(probs(25, 2), rng=np.random.default_rng(0))
    state = sel.state_dict()
    assert state["recent_scores"].shape == (10,)
    with pytest.raises(ValueError, match="window=5"):
        StreamUncertainty(q=0.3, window=5).load_state_dict(state)


def test_uncertainty_scores_and_featurize():
    with pytest.raises(ValueError, match="bald"):
        StreamUncertainty(q=0.1, score="bald")
    with pytest.raises(ValueError, match="nonsense"):
        StreamUncertainty(q=0.1, score="nonsense")
    x, _ = blobs(10, 5, 3)
    model = FakeModel(5, 3)
    np.testing.assert_allclose(StreamUncertainty(q=0.1).featurize(model, x), model.predict_proba(x))
    with pytest.raises(ValueError, match="sum"):
        StreamUncertainty(q=0.1).observe_many(np.ones((2, 3)), rng=np.random.default_rng(0))
