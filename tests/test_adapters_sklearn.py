"""SklearnClassifier: class-column mapping, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from fakes import blobs
from pickwise.adapters import SklearnClassifier
from pickwise.protocols import Classifier, Embedder, MCSampler


@pytest.fixture(scope="module")
def data():
    return blobs(60, 4, 4, seed=1)


def test_capabilities():
    clf = SklearnClassifier(LogisticRegression(), n_classes=3)
    assert isinstance(clf, Classifier) and clf.n_classes == 3
    assert isinstance(clf, Embedder) and not isinstance(clf, MCSampler)  # a bare estimator embeds x itself


def test_missing_classes_get_zero_columns(data):
    x, y = data
    keep = np.isin(y, [0, 2])
    est = LogisticRegression()
    clf = SklearnClassifier(est, n_classes=4).fit(x[keep], y[keep], seed=0)
    p = clf.predict_proba(x)
    assert p.shape == (len(x), 4) and p.dtype == np.float64
    np.testing.assert_array_equal(p[:, [1, 3]], 0.0)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert (p[keep].argmax(1) == y[keep]).mean() >= 0.95
    assert not hasattr(est, "classes_")  # the given estimator is cloned, never fitted


@settings(max_examples=15, deadline=None)
@given(present=st.sets(st.integers(0, 4), min_size=1, max_size=5), seed=st.integers(0, 2**31 - 1))
def test_columns_follow_class_indices(data, present, seed):
    x, y = data
    present = sorted(present)
    labels = np.array(present * 3)
    rows = x[: len(labels)]
    p = SklearnClassifier(LogisticRegression(), n_classes=5).fit(rows, labels, seed=seed).predict_proba(x)
    assert p.shape == (len(x), 5)
    np.testing.assert_allclose(p.sum(1), 1.0)
    absent = [c for c in range(5) if c not in present]
    np.testing.assert_array_equal(p[:, absent], 0.0)


def test_chunked_and_dataset_input_match(data):
    x, y = data
    clf = SklearnClassifier(LogisticRegression(), n_classes=4, chunk_size=7).fit(x, y, seed=0)
    ref = SklearnClassifier(LogisticRegression(), n_classes=4).fit(x, y, seed=0).predict_proba(x)
    np.testing.assert_allclose(clf.predict_proba(x), ref, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(list(x)), ref, atol=1e-12)


def test_seed_sets_random_state_also_in_pipelines(data):
    x, y = data
    clf = SklearnClassifier(make_pipeline(StandardScaler(), LogisticRegression()), n_classes=4).fit(x, y, seed=42)
    assert clf.estimator_.get_params()["logisticregression__random_state"] == 42
    assert SklearnClassifier(LogisticRegression(), n_classes=4).fit(x, y, seed=7).estimator_.random_state == 7


def test_single_class_predicts_it(data):
    x, _ = data
    clf = SklearnClassifier(LogisticRegression(), n_classes=3).fit(x[:5], np.full(5, 2), seed=0)
    np.testing.assert_array_equal(clf.predict_proba(x[:3]), [[0, 0, 1]] * 3)


def test_errors(data):
    x, y = data
    with pytest.raises(ValueError, match="SVC.*predict_proba"):
        SklearnClassifier(SVC(), n_classes=4).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="label 4 at index 0"):
        SklearnClassifier(LogisticRegression(), n_classes=4).fit(x[:2], np.array([4, 0]), seed=0)
    bad = x.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"inf at index \(3, 1\)"):
        SklearnClassifier(LogisticRegression(), n_classes=4).fit(bad, y, seed=0)
    clf = SklearnClassifier(LogisticRegression(), n_classes=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict_proba(x)
    clf.fit(x, y, seed=0)
    with pytest.raises(ValueError, match=r"rows of shape \(3,\)"):
        clf.predict_proba(x[:, :3])
    with pytest.raises(ValueError, match="n_classes"):
        SklearnClassifier(LogisticRegression(), n_classes=1).fit(x, y, seed=0)
