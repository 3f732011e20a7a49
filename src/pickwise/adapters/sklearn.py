"""SklearnClassifier: any scikit-learn classifier or Pipeline with ``predict_proba`` as a pickwise model.

Inputs are whatever the estimator takes: numeric arrays (validated here: 2-D, finite), lists or
1-D arrays of raw strings (a ``TfidfVectorizer`` pipeline), pandas DataFrames (a
``ColumnTransformer``), scipy sparse matrices, or map-style datasets. Rows are fetched one chunk
at a time.

Capabilities
------------
Every ``SklearnClassifier`` is a :class:`~pickwise.protocols.Classifier` and an
:class:`~pickwise.protocols.Embedder`: ``embed(x)`` is the input of the final estimator (the
output of the pipeline's last transform, densified to float64 chunk by chunk; for a bare
estimator, ``x`` itself, which must then be numeric).

It is a :class:`~pickwise.protocols.GradEmbedder` (``grad_factors``) only when its final
estimator is a linear model with ``predict_proba`` (a ``LinearClassifierMixin``: LogisticRegression,
SGDClassifier(loss="log_loss"), LinearDiscriminantAnalysis, ...) or a ``CalibratedClassifierCV``
over a linear model (LinearSVC, SGDClassifier(loss="hinge")). The constructor then returns a
:class:`SklearnLinearClassifier` (a subclass), decided from the estimator's structure alone, so
``check_capabilities`` is truthful before any fit. Any other model has no ``grad_factors``
attribute at all (``isinstance(model, GradEmbedder)`` is False); touching it raises an
``AttributeError`` that says why and what to use instead (see :meth:`SklearnClassifier.explain_missing`).

Gradient conventions
--------------------
``grad_factors(x)`` returns ``(p, h)``: ``h`` of shape (n, d) = ``embed(x)`` and ``p`` of shape
(n, n_classes); pickwise forms a = p − e_ŷ (ŷ = argmax p) and the embedding g = a ⊗ h, where block
c of g belongs to class c. With W = ``coef_`` (rows in ``classes_`` order), b = ``intercept_``:

* **Softmax heads** (multiclass LogisticRegression / LogisticRegressionCV / LDA): p = softmax(W h + b)
  = ``predict_proba``. For L = −log p_ŷ, ∂L/∂W = (p − e_ŷ) ⊗ h and ∂L/∂b = p − e_ŷ exactly, so g is
  the gradient w.r.t. W, and ``BADGE(bias=True)`` (h with a constant 1 appended) the gradient
  w.r.t. [W | b].
* **Binary logistic heads** (two classes: LogisticRegression, LDA, SGDClassifier(loss="log_loss")):
  scikit-learn keeps one weight vector w = ``coef_[0]`` and p₁ = σ(w·h + b) for ``classes_[1]``.
  The exact gradient of L = −log p_ŷ is ∂L/∂w = s·h with s = p₁ − 1[ŷ = classes_[1]]. Over the
  two class columns a = p − e_ŷ = (−s, s), so g = (−∂L/∂w, +∂L/∂w): the exact gradient w.r.t. the
  equivalent softmax weights W = [−w/2; w/2] (same probabilities), and ∂L/∂w = (g₁ − g₀)/2.
  Hence ⟨g_i, g_j⟩ = 2⟨∂L_i/∂w, ∂L_j/∂w⟩, and every norm and distance is exactly √2 times the
  one of the sigmoid gradients: scale-free selections (BADGE's k-means++ seeding, k-center) pick
  the same items; EGL-type scores are multiplied by √2.
* **Other linear heads** (SGDClassifier multiclass, which is one-vs-rest; loss="modified_huber";
  any other ``LinearClassifierMixin`` with ``predict_proba``): p = softmax of the model's own
  linear scores ``decision_function`` = W h + b (binary: [1 − σ(s), σ(s)]), so g is exactly
  ∂/∂W of the softmax cross-entropy over those scores at ŷ. This p can differ from
  ``predict_proba`` (one-vs-rest normalises sigmoids), ŷ is the same up to ties.
* **Calibrated heads** (``CalibratedClassifierCV`` over a linear model): p = the calibrated
  ``predict_proba`` and h = the calibrator's input. g is the exact gradient, w.r.t. V, of the
  softmax cross-entropy −log softmax(V h + c)_ŷ of a linear softmax layer on h at a point where
  it outputs p (e.g. V = 0, c = log p): the BADGE embedding of a softmax head reproducing the
  calibrated probabilities on the same features. It is not a chain rule through the calibrator
  into the SVM's ``coef_``: isotonic calibration is piecewise constant (zero gradient almost
  everywhere), the default ensemble averages several linear models, and hinge scores have no
  likelihood.
* A labelled set holding one class fits no estimator: p is one-hot and a = 0 (a constant model
  has zero gradient); h is still the fitted transforms' output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from .._validation import check_positive_int
from ..utils import chunks, n_items, take
from ._checks import check_labels, check_n_classes, check_rows, check_seed

__all__ = ["SklearnClassifier", "SklearnLinearClassifier", "final_estimator", "linear_head"]

_NUMERIC = "biuf"


def final_estimator(estimator: Any) -> Any:
    """The last step of a ``Pipeline`` (recursively), else ``estimator`` itself."""
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _transform_steps(estimator: Any) -> list[str]:
    """Names of the real transform steps before the final estimator ('passthrough' / None skipped)."""
    from sklearn.pipeline import Pipeline

    names: list[str] = []
    while isinstance(estimator, Pipeline):
        names += [n for n, step in estimator.steps[:-1] if step is not None and step != "passthrough"]
        estimator = estimator.steps[-1][1]
    return names


def _is_linear(estimator: Any) -> bool:
    """A ``LinearClassifierMixin`` (scores = X coef_ᵀ + intercept_), or an estimator that already
    exposes ``coef_`` and ``decision_function`` (known before any fit, as capabilities must be)."""
    from sklearn.linear_model._base import LinearClassifierMixin

    return isinstance(estimator, LinearClassifierMixin) or (
        hasattr(estimator, "coef_") and hasattr(estimator, "decision_function")
    )


def linear_head(estimator: Any) -> str | None:
    """How :meth:`SklearnLinearClassifier.grad_factors` treats ``estimator``'s final step, from its
    structure alone (no fit): ``"linear"`` (a linear model with ``predict_proba``), ``"calibrated"``
    (``CalibratedClassifierCV`` over a linear model; ``estimator=None`` means LinearSVC), or None
    (no gradient factors: not a linear final model)."""
    from sklearn.calibration import CalibratedClassifierCV

    final = final_estimator(estimator)
    if isinstance(final, CalibratedClassifierCV):
        inner = final.estimator
        return "calibrated" if inner is None or _is_linear(final_estimator(inner)) else None
    if _is_linear(final) and hasattr(final, "predict_proba"):
        return "linear"
    return None


def _logistic(final: Any, n_fitted: int) -> bool:
    """Whether ``predict_proba`` of the fitted linear ``final`` is the softmax (sigmoid) of its scores."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, SGDClassifier

    if isinstance(final, (LogisticRegression, LogisticRegressionCV, LinearDiscriminantAnalysis)):
        return True
    return isinstance(final, SGDClassifier) and final.loss == "log_loss" and n_fitted == 2


def _softmax_scores(scores: np.ndarray) -> np.ndarray:
    """Probabilities of linear scores: (m,) binary → [1 − σ(s), σ(s)]; (m, K) → softmax."""
    from scipy.special import expit

    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        p1 = expit(s)
        return np.stack([1.0 - p1, p1], axis=1)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _is_frame(x: Any) -> bool:
    return hasattr(x, "iloc") and hasattr(x, "columns")


def _is_sparse(x: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(x)


def _numeric_array(rows: Any) -> bool:
    return isinstance(rows, np.ndarray) and rows.dtype.kind in _NUMERIC


def _name(estimator: Any) -> str:
    return type(estimator).__name__


class SklearnClassifier:
    """A scikit-learn estimator or Pipeline, re-fitted from a clone on every ``fit``.

    Parameters
    ----------
    estimator : scikit-learn classifier or Pipeline
        Anything with ``fit`` and ``predict_proba``; it is cloned, never fitted itself. It takes
        whatever inputs it accepts: numeric arrays, raw strings, DataFrames, sparse matrices.
    n_classes : int
        Probabilities always have ``n_classes`` columns; classes missing from the labelled set get 0.
    chunk_size : int
        Rows per ``predict_proba`` / ``embed`` / ``grad_factors`` call (bounds memory).

    ``fit`` sets every ``random_state`` parameter (``random_state`` or ``*__random_state`` in a
    pipeline) to ``seed``. A labelled set holding a single class is not passed to the estimator
    (most refuse it): the model then predicts that class with probability 1 (only the pipeline's
    transforms are fitted, so ``embed`` still works).

    Numeric array inputs are checked (2-D, finite, the training width); other inputs go to the
    estimator unchanged. ``embed(x)`` is the input of the final estimator, densified to float64
    (see the module docstring). When the final estimator is linear (or a ``CalibratedClassifierCV``
    over a linear model) the constructor returns a :class:`SklearnLinearClassifier`, which adds
    ``grad_factors`` for BADGE, BAIT and EGL; the choice is made from the estimator given here.

    Examples
    --------
    BADGE on raw text (a TF-IDF vocabulary fitted on the labelled texts each round):

    >>> import numpy as np
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from pickwise import initial_pool, pool_rounds
    >>> from pickwise.protocols import GradEmbedder
    >>> from pickwise.strategies import BADGE
    >>> def make_model():
    ...     return SklearnClassifier(make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)), n_classes=2)
    >>> isinstance(make_model(), GradEmbedder)
    True
    >>> texts = ["win a free prize now", "see you at lunch", "free cash prize", "lunch at noon?",
    ...          "claim your free reward", "running late, sorry", "prize draw: text WIN", "call me later"]
    >>> labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    >>> pool = initial_pool(len(texts), 4, labels, seed=0, stratified=True)
    >>> [len(r.selected) for r in pool_rounds(make_model, BADGE(), texts, pool, labels, k=2, rounds=2)]
    [2, 2, 0]
    >>> model = make_model().fit(texts[:4], labels[:4], seed=0)
    >>> probs, h = model.grad_factors(texts)  # h: dense TF-IDF rows over the 10-word vocabulary
    >>> probs.shape, h.shape
    ((8, 2), (8, 10))
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> SklearnClassifier:
        if cls is SklearnClassifier:
            estimator = args[0] if args else kwargs.get("estimator")
            if estimator is not None and linear_head(estimator) is not None:
                cls = SklearnLinearClassifier
        return object.__new__(cls)

    def __init__(self, estimator: Any, *, n_classes: int, chunk_size: int = 4096) -> None:
        self.estimator = estimator
        self.n_classes = n_classes
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"SklearnClassifier({self.estimator!r}, n_classes={self.n_classes})"

    def __getattr__(self, name: str) -> Any:
        # only reached for missing attributes; keeps hasattr/isinstance False but explains why
        if name == "grad_factors":
            raise AttributeError(self.explain_missing("GradEmbedder"))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def explain_missing(self, capability: Any) -> str:
        """Why this model lacks ``capability`` (a protocol or its name) and how to provide it;
        an empty string when it has it."""
        cap = getattr(capability, "__name__", capability)
        if cap != "GradEmbedder" or hasattr(type(self), "grad_factors"):
            return ""
        est = self.__dict__.get("estimator")
        final = final_estimator(est)
        steps = _transform_steps(est)
        before = f"after {', '.join(steps)}" if steps else "with no transform before it"
        return (
            f"gradient embeddings (BADGE, BAIT, EGL) need grad_factors, i.e. a final linear model with "
            f"coef_ and predict_proba; SklearnClassifier found {_name(final)} {before}, which is not one. "
            "Use a Pipeline ending in a linear model (e.g. LogisticRegression, SGDClassifier(loss='log_loss'), "
            "CalibratedClassifierCV(LinearSVC())), or precompute features and use a strategy that needs "
            "only embed (CoreSet) or probabilities"
        )

    # ------------------------------------------------------------------ fitting

    def fit(self, x: Any, y: Any, *, seed: int) -> SklearnClassifier:
        """Fit a clone of the estimator on ``x`` (n rows of whatever it accepts) with labels ``y`` of shape (n,)."""
        check_n_classes(self.n_classes)
        check_positive_int("chunk_size", self.chunk_size)
        seed = check_seed(seed)
        n = n_items(x)
        if n == 0:
            raise ValueError("fit needs at least one labelled row; got 0")
        rows = x if isinstance(x, np.ndarray) or _is_frame(x) or _is_sparse(x) else take(x, np.arange(n))
        numeric = _numeric_array(rows)
        if numeric:
            rows = check_rows("x", rows)
            if rows.ndim != 2:
                raise ValueError(f"x must have shape (n, n_features); got shape {rows.shape}")
        labels = check_labels(y, self.n_classes, n)
        est = clone(self.estimator)
        if not hasattr(est, "predict_proba"):
            raise ValueError(f"{self.estimator!r} has no predict_proba; SklearnClassifier needs probabilities")
        seeds = {k: seed for k in est.get_params() if k == "random_state" or k.endswith("__random_state")}
        est.set_params(**seeds)
        transform = self._transform_part(est)
        self.transform_error_: BaseException | None = None
        present = np.unique(labels)
        if present.size == 1:
            self.estimator_, self.classes_ = None, present
            if transform is not None:
                try:  # fit only the transforms, so embed works; a refusal surfaces when embed is called
                    transform.fit(rows, labels)
                except Exception as err:  # noqa: BLE001
                    self.transform_error_ = err
        else:
            self.estimator_ = est.fit(rows, labels)
            self.classes_ = np.asarray(self.estimator_.classes_, dtype=np.int64)
        self.transform_ = transform
        self.numeric_ = numeric
        self.n_features_ = rows.shape[1] if numeric else None
        return self

    @staticmethod
    def _transform_part(est: Any) -> Any:
        """The (unfitted, shared-step) Pipeline of the transforms before the final estimator, or None."""
        if not _transform_steps(est):
            return None
        from sklearn.pipeline import Pipeline

        if isinstance(est.steps[-1][1], Pipeline):  # nested pipelines: flatten the transforms
            steps = []
            while isinstance(est, Pipeline):
                steps += est.steps[:-1]
                est = est.steps[-1][1]
            return Pipeline(steps)
        return est[:-1]

    # ------------------------------------------------------------------ rows and features

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("this SklearnClassifier is not fitted yet; call fit(x, y, seed=...) first")

    def _chunk(self, x: Any, sl: slice) -> Any:
        """Rows ``sl`` of ``x``, checked when the model was fitted on numeric data."""
        if isinstance(x, np.ndarray):
            rows = x[sl]
        elif _is_frame(x):
            rows = x.iloc[sl.start : sl.stop]
        elif _is_sparse(x):
            rows = x[sl.start : sl.stop]
        else:
            rows = take(x, np.arange(sl.start, sl.stop))
        if self.numeric_:
            rows = check_rows("x", rows, offset=sl.start, row_shape=(self.n_features_,))
        return rows

    def _features(self, rows: Any) -> Any:
        """The final estimator's input for ``rows`` (sparse stays sparse, as the pipeline passes it on)."""
        if self.transform_ is None:
            return rows
        if self.transform_error_ is not None:
            raise ValueError(
                "the pipeline's transforms could not be fitted on a labelled set of a single class "
                f"({self.transform_error_}); label a second class first"
            ) from self.transform_error_
        return self.transform_.transform(rows)

    def _dense(self, t: Any, offset: int) -> np.ndarray:
        """Final-estimator input as a dense float64 (m, d) array."""
        if _is_sparse(t):
            t = t.toarray()
        h = np.asarray(t)
        if h.dtype.kind not in _NUMERIC:
            where = f"the output of {', '.join(_transform_steps(self.estimator))}" if self.transform_ is not None \
                else "x itself (a bare estimator has no transform)"
            raise ValueError(
                f"embed returns the input of the final estimator, {where}, which must hold numbers; got "
                f"dtype {h.dtype}; put a featuriser before {_name(final_estimator(self.estimator))} "
                "in a Pipeline (e.g. make_pipeline(TfidfVectorizer(), LogisticRegression()))"
            )
        h = np.asarray(h, dtype=np.float64)
        if h.ndim != 2:
            raise ValueError(f"the final estimator's input must have shape (m, d); got shape {h.shape}")
        return check_rows("the final estimator's input", h, offset=offset)

    # ------------------------------------------------------------------ predictions

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, float64 ndarray of shape (n, n_classes)."""
        self._check_fitted()
        out = np.zeros((n_items(x), self.n_classes))
        for sl in chunks(out.shape[0], self.chunk_size):
            rows = self._chunk(x, sl)
            if self.estimator_ is None:
                out[sl, self.classes_[0]] = 1.0
            else:
                out[sl.start : sl.stop, self.classes_] = self.estimator_.predict_proba(rows)
        return out

    def embed(self, x: Any) -> np.ndarray:
        """Penultimate features: the final estimator's input, float64 ndarray of shape (n, d).

        The output of the pipeline's last transform (sparse rows densified one chunk at a time),
        or ``x`` itself for a bare estimator. Zero rows give shape (0, 0). A chunk holds
        ``chunk_size`` × d float64 values: bound d (``TfidfVectorizer(max_features=...)``) or
        lower ``chunk_size`` for large vocabularies.
        """
        self._check_fitted()
        n = n_items(x)
        out = None
        for sl in chunks(n, self.chunk_size):
            h = self._dense(self._features(self._chunk(x, sl)), sl.start)
            if out is None:
                out = np.empty((n, h.shape[1]))
            out[sl] = h
        return out if out is not None else np.empty((0, 0))


class SklearnLinearClassifier(SklearnClassifier):
    """A :class:`SklearnClassifier` whose final estimator is linear: it also gives ``grad_factors``.

    Built by ``SklearnClassifier(estimator, ...)`` itself when :func:`linear_head` of the estimator
    is not None; see the module docstring for the gradient conventions. After ``fit``, ``head_``
    says which applies: ``"logistic"`` (``predict_proba`` is the softmax / sigmoid of the linear
    scores: the exact gradient of the model's own loss), ``"linear"`` (softmax of the scores, which
    may differ from ``predict_proba``), ``"calibrated"``, or ``"constant"`` (a single class).
    """

    def fit(self, x: Any, y: Any, *, seed: int) -> SklearnLinearClassifier:
        """Fit as :meth:`SklearnClassifier.fit`; also records ``head_``."""
        super().fit(x, y, seed=seed)
        kind = linear_head(self.estimator)
        if self.estimator_ is None:
            self.head_ = "constant"
        elif kind == "linear" and _logistic(final_estimator(self.estimator_), self.classes_.size):
            self.head_ = "logistic"
        else:
            self.head_ = kind
        return self

    def _head_probs(self, t: Any) -> np.ndarray:
        """Probabilities over the fitted classes from the final estimator's input ``t``."""
        final = final_estimator(self.estimator_)
        if self.head_ == "linear":
            return _softmax_scores(final.decision_function(t))
        return np.asarray(final.predict_proba(t), dtype=np.float64)

    def grad_factors(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """(probs of shape (n, n_classes), h of shape (n, d)): (probs − e_ŷ) ⊗ h is the last-layer
        gradient, as the module docstring states per kind of head; ``h`` equals ``embed(x)``."""
        self._check_fitted()
        n = n_items(x)
        probs = np.zeros((n, self.n_classes))
        h = None
        for sl in chunks(n, self.chunk_size):
            t = self._features(self._chunk(x, sl))
            hc = self._dense(t, sl.start)
            if h is None:
                h = np.empty((n, hc.shape[1]))
            h[sl] = hc
            if self.estimator_ is None:
                probs[sl, self.classes_[0]] = 1.0
            else:
                probs[sl.start : sl.stop, self.classes_] = self._head_probs(t)
        return probs, (h if h is not None else np.empty((0, 0)))
