import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise import Uncertainty, initial_pool, pool_rounds
from pickwise.scores import entropy
from pickwise.training import JointEntropy, PseudoLabel


class RecordingModel(FakeModel):
    """FakeModel that remembers what it was trained on."""

    def fit(self, x, y, *, seed, unlabeled_x=None):
        self.trained_on = (np.asarray(x).copy(), np.asarray(y).copy())
        self.unlabeled_seen = None if unlabeled_x is None else np.asarray(unlabeled_x).copy()
        return super().fit(x, y, seed=seed)


@pytest.fixture
def data():
    return blobs(90, 5, 3, seed=4)


def test_pseudo_labels_train_but_never_become_labels(data):
    x, y = data
    models = []

    def make():
        m = RecordingModel(5, 3, seed=2)
        models.append(m)
        return m

    trainer = PseudoLabel(delta0=0.5, decay=0.1)
    pool = initial_pool(90, 9, y, seed=0, n_classes=3)
    recs = list(pool_rounds(make, Uncertainty(), x, pool, y, k=5, rounds=3, seed=0, trainer=trainer))
    assert recs[0].extra["n_pseudo"] > 0
    assert [r.extra["delta"] for r in recs] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    # the model saw more rows than there are labels...
    for rec, m in zip(recs, models):
        assert m.trained_on[0].shape[0] == rec.n_labeled + rec.extra["n_pseudo"]
    # ...but every recorded label is the oracle's true label, and the counts are of true labels only
    for rec in recs:
        np.testing.assert_array_equal(rec.labels, y[rec.selected])
    assert [r.n_labeled for r in recs] == [9, 14, 19, 24]


def test_pseudo_labels_are_the_confident_predictions(data):
    x, y = data
    model = RecordingModel(5, 3, seed=2)
    pool = initial_pool(90, 9, y, seed=0, n_classes=3)
    info = PseudoLabel(delta0=0.3, decay=0.0)(model, x, pool, seed=0, round=0)
    unl = pool.unlabeled
    p = model.predict_proba(x[unl])
    confident = unl[entropy(p) < 0.3]
    assert info["n_pseudo"] == len(confident)
    xt, yt = model.trained_on
    np.testing.assert_array_equal(xt[pool.n_labeled :], x[confident])
    np.testing.assert_array_equal(yt[pool.n_labeled :], p[entropy(p) < 0.3].argmax(1))
    assert PseudoLabel(delta0=0.01, decay=0.02).threshold(3) == 0.0


def test_joint_entropy_hands_unlabelled_rows_to_the_model(data):
    x, y = data

    class WithWeight(RecordingModel):
        entropy_weight = 0.5

    m = WithWeight(5, 3)
    pool = initial_pool(90, 9, y, seed=0, n_classes=3)
    info = JointEntropy(max_unlabeled=20)(m, x, pool, seed=1, round=0)
    assert info["n_unlabeled_in_training"] == 20 and m.unlabeled_seen.shape == (20, 5)
    with pytest.raises(TypeError, match="entropy_weight"):
        JointEntropy()(RecordingModel(5, 3), x, pool, seed=1, round=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="delta0 must be a finite number >= 0; got -1"):
        PseudoLabel(delta0=-1)
    with pytest.raises(ValueError, match="max_unlabeled"):
        JointEntropy(max_unlabeled=0)
