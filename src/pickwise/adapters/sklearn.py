"""SklearnClassifier: any scikit-learn classifier with ``predict_proba`` as a pickwise Classifier."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from .._validation import check_positive_int
from ..utils import chunks, n_items, take
from ._checks import check_labels, check_n_classes, check_rows, check_seed


class SklearnClassifier:
    """A scikit-learn estimator re-fitted from a clone on every ``fit``.

    Parameters
    ----------
    estimator : scikit-learn classifier
        Any estimator with ``fit`` and ``predict_proba``; it is cloned, never fitted itself.
    n_classes : int
        Probabilities always have ``n_classes`` columns; classes missing from the labelled set get 0.
    chunk_size : int
        Rows per ``predict_proba`` call (bounds memory on memory-mapped or map-style data).

    ``fit`` sets every ``random_state`` parameter (``random_state`` or ``*__random_state`` in a
    pipeline) to ``seed``. A labelled set holding a single class is not passed to the estimator
    (most refuse it): the model then predicts that class with probability 1.
    """

    def __init__(self, estimator: Any, *, n_classes: int, chunk_size: int = 4096) -> None:
        self.estimator = estimator
        self.n_classes = n_classes
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"SklearnClassifier({self.estimator!r}, n_classes={self.n_classes})"

    def fit(self, x: Any, y: Any, *, seed: int) -> SklearnClassifier:
        """Fit a clone of the estimator on ``x`` of shape (n, n_features) with labels ``y`` of shape (n,)."""
        check_n_classes(self.n_classes)
        check_positive_int("chunk_size", self.chunk_size)
        seed = check_seed(seed)
        n = n_items(x)
        if n == 0:
            raise ValueError("fit needs at least one labelled row; got 0")
        rows = check_rows("x", x if isinstance(x, np.ndarray) else take(x, np.arange(n)))
        if rows.ndim != 2:
            raise ValueError(f"x must have shape (n, n_features); got shape {rows.shape}")
        labels = check_labels(y, self.n_classes, n)
        est = clone(self.estimator)
        if not hasattr(est, "predict_proba"):
            raise ValueError(f"{self.estimator!r} has no predict_proba; SklearnClassifier needs probabilities")
        seeds = {k: seed for k in est.get_params() if k == "random_state" or k.endswith("__random_state")}
        est.set_params(**seeds)
        present = np.unique(labels)
        if present.size == 1:
            self.estimator_, self.classes_ = None, present
        else:
            self.estimator_ = est.fit(rows, labels)
            self.classes_ = np.asarray(self.estimator_.classes_, dtype=np.int64)
        self.n_features_ = rows.shape[1]
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, float64 ndarray of shape (n, n_classes)."""
        if not hasattr(self, "classes_"):
            raise RuntimeError("this SklearnClassifier is not fitted yet; call fit(x, y, seed=...) first")
        out = np.zeros((n_items(x), self.n_classes))
        for sl in chunks(out.shape[0], self.chunk_size):
            rows = x[sl] if isinstance(x, np.ndarray) else take(x, np.arange(sl.start, sl.stop))
            rows = check_rows("x", rows, offset=sl.start, row_shape=(self.n_features_,))
            if self.estimator_ is None:
                out[sl, self.classes_[0]] = 1.0
            else:
                out[sl.start : sl.stop, self.classes_] = self.estimator_.predict_proba(rows)
        return out
