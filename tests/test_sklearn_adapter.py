"""SklearnClassifier on any estimator: raw text, DataFrames, embed, and exact gradient factors.

References: the gradient of the cross-entropy at ŷ w.r.t. the final layer is taken by complex-step
differentiation of a plain loss function (exact to rounding) whose probabilities are first checked
against scikit-learn's own ``predict_proba``, and by central differences through the fitted
scikit-learn estimator itself with its ``coef_`` perturbed.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from fakes import blobs
from pickwise.adapters import SklearnClassifier
from pickwise.adapters.sklearn import SklearnLinearClassifier, linear_head
from pickwise.embeddings import grad_embedding, materialize, sq_distances
from pickwise.loop import initial_pool, pool_rounds
from pickwise.protocols import Classifier, Embedder, GradEmbedder, MCSampler, check_capabilities
from pickwise.strategies import BADGE, CoreSet

# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def sms():
    from pickwise.data import load

    try:
        ds = load("sms-spam")
    except FileNotFoundError as err:
        pytest.skip(f"sms-spam not available: {err}")
    return ds.x_train[:300], ds.y_train[:300]


@pytest.fixture(scope="module")
def tri():
    return blobs(60, 4, 3, seed=2)


def text_model(**kw) -> SklearnClassifier:
    return SklearnClassifier(make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)), n_classes=2, **kw)


def factors_matrix(probs: np.ndarray, h: np.ndarray, *, bias: bool = False) -> np.ndarray:
    """The materialised (p − e_ŷ) ⊗ h as (n, K, d [+1])."""
    e = grad_embedding(probs, h, bias=bias)
    return materialize(e.a, e.h).reshape(probs.shape[0], probs.shape[1], -1)


def complex_step(loss, w: np.ndarray) -> np.ndarray:
    """∂loss/∂w by complex-step differentiation: exact to rounding for analytic losses."""
    eps = 1e-30
    grad = np.empty(w.shape)
    for idx in np.ndindex(*w.shape):
        wc = w.astype(complex)
        wc[idx] += 1j * eps
        grad[idx] = loss(wc).imag / eps
    return grad


def softmax_ce(z: np.ndarray, c: int):
    """−log softmax(z)_c, also for complex z."""
    return -(z[c] - z.max().real) + np.log(np.sum(np.exp(z - z.max().real)))


# ---------------------------------------------------------------- capabilities


@pytest.mark.parametrize(
    "est",
    [
        LogisticRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
        SGDClassifier(loss="log_loss"),
        LinearDiscriminantAnalysis(),
        CalibratedClassifierCV(LinearSVC()),
        make_pipeline(StandardScaler(), CalibratedClassifierCV(SGDClassifier(loss="hinge"))),
    ],
    ids=repr,
)
def test_linear_final_estimators_are_grad_embedders(est):
    clf = SklearnClassifier(est, n_classes=3)
    assert type(clf) is SklearnLinearClassifier and isinstance(clf, SklearnClassifier)
    for cap in (Classifier, Embedder, GradEmbedder):
        assert isinstance(clf, cap), cap.__name__
    assert not isinstance(clf, MCSampler)
    check_capabilities(BADGE(), clf)
    assert repr(clf).startswith("SklearnClassifier(")


@pytest.mark.parametrize(
    "est",
    [RandomForestClassifier(), make_pipeline(StandardScaler(), RandomForestClassifier()),
     CalibratedClassifierCV(RandomForestClassifier())],
    ids=repr,
)
def test_other_estimators_are_not_grad_embedders(est):
    clf = SklearnClassifier(est, n_classes=3)
    assert type(clf) is SklearnClassifier and linear_head(est) is None
    assert isinstance(clf, Classifier) and isinstance(clf, Embedder)
    assert not isinstance(clf, GradEmbedder) and not hasattr(clf, "grad_factors")
    with pytest.raises(TypeError, match="BADGE needs a model with GradEmbedder"):
        check_capabilities(BADGE(), clf)
    check_capabilities(CoreSet(), clf)


def test_missing_grad_factors_names_what_is_missing_and_how(tri):
    x, y = tri
    rf = SklearnClassifier(RandomForestClassifier(n_estimators=5), n_classes=3).fit(x, y, seed=0)
    with pytest.raises(AttributeError, match="found RandomForestClassifier with no transform before it.*"
                                             "Pipeline ending in a linear model.*precompute features"):
        rf.grad_factors(x)
    pool = initial_pool(len(x), 9, y, seed=0)
    with pytest.raises(AttributeError, match="need grad_factors"):
        BADGE().select(rf, x, pool, 3, rng=np.random.default_rng(0))
    piped = SklearnClassifier(make_pipeline(StandardScaler(), RandomForestClassifier()), n_classes=3)
    assert "RandomForestClassifier after standardscaler" in piped.explain_missing(GradEmbedder)
    assert piped.explain_missing(Embedder) == "" and SklearnClassifier(LogisticRegression(), n_classes=3) \
        .explain_missing("GradEmbedder") == ""
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rf.nope  # noqa: B018
    np.testing.assert_array_equal(rf.embed(x), x)  # CoreSet still works: a bare estimator embeds x itself


# ---------------------------------------------------------------- raw text


def test_text_pipeline_probabilities_embed_and_factors(sms):
    texts, y = sms
    clf = text_model(chunk_size=64).fit(texts[:200], y[:200], seed=0)
    p = clf.predict_proba(texts)
    assert p.shape == (300, 2) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert (p[200:].argmax(1) == y[200:]).mean() >= 0.85
    vec, lr = clf.estimator_[0], clf.estimator_[-1]
    h_ref = vec.transform(texts).toarray()
    h = clf.embed(texts)
    assert h.shape == (300, len(vec.vocabulary_)) and h.dtype == np.float64
    np.testing.assert_array_equal(h, h_ref)
    probs, h2 = clf.grad_factors(texts)
    np.testing.assert_array_equal(probs, p)
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-(h_ref @ lr.coef_[0] + lr.intercept_[0]))), atol=1e-12)
    assert clf.head_ == "logistic"
    for other in (np.array(texts, dtype=object), np.array(texts)):  # 1-D object and str arrays
        np.testing.assert_array_equal(clf.predict_proba(other), p)
        np.testing.assert_array_equal(clf.embed(other), h)


def test_text_chunked_equals_unchunked_exactly(sms):
    texts, y = sms
    small = text_model(chunk_size=7).fit(texts[:150], y[:150], seed=0)
    whole = text_model().fit(texts[:150], y[:150], seed=0)
    np.testing.assert_array_equal(small.predict_proba(texts), whole.predict_proba(texts))
    np.testing.assert_array_equal(small.embed(texts), whole.embed(texts))
    for a, b in zip(small.grad_factors(texts), whole.grad_factors(texts), strict=True):
        np.testing.assert_array_equal(a, b)


class _ReferenceText:
    """The same text pipeline, fitted by scikit-learn directly; factors from its own parts."""

    n_classes = 2

    def fit(self, x, y, *, seed):
        self.pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000, random_state=seed)).fit(x, y)
        assert list(self.pipe.classes_) == [0, 1]
        return self

    def predict_proba(self, x):
        return self.pipe.predict_proba(list(x))

    def embed(self, x):
        return self.pipe[0].transform(list(x)).toarray()

    def grad_factors(self, x):
        return self.predict_proba(x), self.embed(x)


@pytest.mark.parametrize("strategy", [BADGE(chunk_size=50), CoreSet(chunk_size=50)], ids=["badge", "coreset"])
def test_pool_rounds_on_raw_text(sms, strategy):
    texts, y = sms
    pool = initial_pool(len(texts), 12, y, seed=3, stratified=True)
    runs = [list(pool_rounds(make, strategy, texts, pool, y, k=8, rounds=2, seed=5))
            for make in (text_model, _ReferenceText)]
    ours, ref = runs
    assert [r.round for r in ours] == [0, 1, 2]
    for r_ours, r_ref in zip(ours, ref, strict=True):
        assert r_ours.selected == r_ref.selected  # same picks as the plain reference model
    picked = ours[0].selected + ours[1].selected
    assert len(set(picked)) == 16 and not set(picked) & set(pool.labeled.tolist())
    again = [r.selected for r in pool_rounds(text_model, strategy, texts, pool, y, k=8, rounds=2, seed=5)]
    assert again == [r.selected for r in ours]


def test_single_class_text_fits_transforms_only(sms):
    texts, y = sms
    ham = [t for t, label in zip(texts, y) if label == 0][:20]
    clf = text_model().fit(ham, np.zeros(20, dtype=np.int64), seed=0)
    np.testing.assert_array_equal(clf.predict_proba(texts[:5]), [[1.0, 0.0]] * 5)
    probs, h = clf.grad_factors(texts[:5])
    np.testing.assert_array_equal(probs, [[1.0, 0.0]] * 5)
    assert clf.head_ == "constant" and h.shape[0] == 5 and h.shape[1] > 0
    np.testing.assert_array_equal(grad_embedding(probs, h).a, 0.0)  # a constant model has no gradient


# ---------------------------------------------------------------- exact gradients


def _fd_through_sklearn(final, h: np.ndarray, yhat: np.ndarray, col: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of −log predict_proba[ŷ] of the fitted ``final`` w.r.t. its coef_: (n, *coef_.shape)."""
    grad = np.empty((h.shape[0], *final.coef_.shape))
    for idx in np.ndindex(*final.coef_.shape):
        vals = []
        for step in (eps, -eps):
            moved = copy.deepcopy(final)
            moved.coef_ = final.coef_.copy()
            moved.coef_[idx] += step
            vals.append(-np.log(moved.predict_proba(h)[np.arange(len(h)), col[yhat]]))
        grad[(slice(None), *idx)] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def test_multiclass_softmax_gradient_is_exact(tri):
    x, y = tri
    clf = SklearnClassifier(make_pipeline(StandardScaler(), LogisticRegression()), n_classes=3).fit(x, y, seed=0)
    probs, h = clf.grad_factors(x[:12])
    np.testing.assert_array_equal(probs, clf.predict_proba(x[:12]))
    lr = clf.estimator_[-1]
    W, b = lr.coef_, lr.intercept_
    yhat = probs.argmax(1)
    G = factors_matrix(probs, h, bias=True)
    Wb = np.hstack([W, b[:, None]])
    for i in range(12):
        z = Wb @ np.append(h[i], 1.0)
        np.testing.assert_allclose(np.exp(z - z.max()) / np.exp(z - z.max()).sum(), probs[i], rtol=0, atol=1e-14)
        ref = complex_step(lambda m, i=i: softmax_ce(m @ np.append(h[i], 1.0), yhat[i]), Wb)  # w.r.t. [W | b]
        np.testing.assert_allclose(G[i], ref, rtol=0, atol=1e-13)
    fd = _fd_through_sklearn(lr, h, yhat, np.arange(3))
    np.testing.assert_allclose(factors_matrix(probs, h), fd, rtol=0, atol=1e-7)


@pytest.mark.parametrize("est", [LogisticRegression(C=0.5), SGDClassifier(loss="log_loss", alpha=1e-3)], ids=repr)
def test_binary_sigmoid_gradient_convention(est):
    """sklearn's binary head is σ(w·h + b): the factored embedding is (−g, g) with g = ∂L/∂w exactly,
    so inner products are 2× and distances √2× those of the true gradients."""
    x, y = blobs(50, 3, 2, seed=4)
    y = np.where(y == 1, 2, 0)  # classes {0, 2} of n_classes=4: columns follow class indices
    clf = SklearnClassifier(est, n_classes=4).fit(x, y, seed=1)
    assert clf.head_ == "logistic"
    probs, h = clf.grad_factors(x)
    np.testing.assert_array_equal(h, x)
    np.testing.assert_allclose(probs, clf.predict_proba(x), rtol=0, atol=1e-15)
    w, b = clf.estimator_.coef_[0], clf.estimator_.intercept_[0]
    yhat = probs.argmax(1)
    g = np.empty_like(h)
    for i in range(len(x)):
        sign = 1.0 if yhat[i] == 2 else -1.0  # L = −log σ(±(w·h + b))
        g[i] = complex_step(lambda v, i=i, s=sign: np.log(1 + np.exp(-s * (v @ h[i] + b))), w)
    G = factors_matrix(probs, h)
    np.testing.assert_allclose(G[:, 2], g, rtol=0, atol=1e-13)
    np.testing.assert_allclose(G[:, 0], -g, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(G[:, [1, 3]], 0.0)
    np.testing.assert_allclose((G[:, 2] - G[:, 0]) / 2, g, rtol=0, atol=1e-13)
    fd = _fd_through_sklearn(clf.estimator_, h, yhat, np.array([0, 0, 1, 0]))
    np.testing.assert_allclose(g, fd[:, 0], rtol=0, atol=1e-7)
    e = grad_embedding(probs, h)
    d2_true = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(sq_distances(e.a, e.h, e.a, e.h), 2 * d2_true, rtol=1e-10, atol=1e-12)


def test_other_linear_heads_use_softmax_of_their_scores(tri):
    """Multiclass SGDClassifier is one-vs-rest: p = softmax(scores) and (p − e_ŷ) ⊗ h = ∂/∂coef_ of
    the softmax cross-entropy over those scores."""
    x, y = tri
    clf = SklearnClassifier(SGDClassifier(loss="log_loss", alpha=1e-2), n_classes=3).fit(x, y, seed=0)
    assert clf.head_ == "linear"
    probs, h = clf.grad_factors(x[:10])
    sgd = clf.estimator_
    z = h @ sgd.coef_.T + sgd.intercept_
    np.testing.assert_allclose(probs, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=0, atol=1e-14)
    ovr = clf.predict_proba(x[:10])
    assert not np.allclose(probs, ovr)  # normalised sigmoids differ from the softmax ...
    np.testing.assert_array_equal(probs.argmax(1), ovr.argmax(1))  # ... but not in ŷ
    G = factors_matrix(probs, h)
    for i in range(10):
        ref = complex_step(lambda m, i=i: softmax_ce(m @ h[i] + sgd.intercept_, probs[i].argmax()), sgd.coef_)
        np.testing.assert_allclose(G[i], ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("inner", [LinearSVC(), SGDClassifier(loss="hinge")], ids=repr)
def test_calibrated_linear_models(tri, inner):
    x, y = tri
    clf = SklearnClassifier(make_pipeline(StandardScaler(), CalibratedClassifierCV(inner, cv=3)), n_classes=3)
    clf.fit(x, y, seed=0)
    assert clf.head_ == "calibrated"
    probs, h = clf.grad_factors(x[:10])
    np.testing.assert_array_equal(probs, clf.predict_proba(x[:10]))
    np.testing.assert_array_equal(h, clf.estimator_[0].transform(x[:10]))
    G = factors_matrix(probs, h)
    for i in range(10):  # the softmax layer on h that outputs p: V = 0, c = log p
        c = np.log(probs[i])
        ref = complex_step(lambda v, i=i: softmax_ce(v @ h[i] + c, probs[i].argmax()), np.zeros((3, h.shape[1])))
        np.testing.assert_allclose(G[i], ref, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- DataFrames


def test_dataframe_with_column_transformer():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 80
    y = np.arange(n) % 3
    df = pd.DataFrame({
        "size": rng.normal(size=n) + y,
        "weight": rng.normal(size=n) * 3 - y,
        "colour": np.array(["red", "green", "blue"])[(y + (rng.random(n) < 0.2)) % 3],
    })
    ct = ColumnTransformer([("num", StandardScaler(), ["size", "weight"]), ("cat", OneHotEncoder(), ["colour"])])
    est = make_pipeline(ct, LogisticRegression(max_iter=500))
    clf = SklearnClassifier(est, n_classes=3, chunk_size=9).fit(df.iloc[:60], y[:60], seed=0)
    p = clf.predict_proba(df)
    assert p.shape == (n, 3)
    assert (p.argmax(1) == y).mean() >= 0.8
    h = clf.embed(df)
    np.testing.assert_array_equal(h, np.asarray(clf.estimator_[0].transform(df), dtype=np.float64))
    assert h.shape == (n, 5)
    probs, h2 = clf.grad_factors(df)
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_allclose(probs, p, rtol=0, atol=1e-15)
    whole = SklearnClassifier(est, n_classes=3).fit(df.iloc[:60], y[:60], seed=0)
    np.testing.assert_array_equal(whole.predict_proba(df), p)
    np.testing.assert_array_equal(whole.embed(df), h)


# ---------------------------------------------------------------- numeric path


def test_numeric_path_unchanged(tri):
    x, y = tri
    clf = SklearnClassifier(LogisticRegression(), n_classes=3, chunk_size=7).fit(x, y, seed=3)
    ref = LogisticRegression(random_state=3).fit(x, y)
    np.testing.assert_array_equal(clf.predict_proba(x), ref.predict_proba(x))
    np.testing.assert_array_equal(clf.predict_proba(list(x)), ref.predict_proba(x))
    np.testing.assert_array_equal(clf.embed(x.astype(np.float32)), x.astype(np.float32).astype(np.float64))
    probs, h = clf.grad_factors(x)
    np.testing.assert_array_equal(probs, ref.predict_proba(x))
    np.testing.assert_array_equal(h, x)
    assert clf.n_features_ == 4 and clf.numeric_
    bad = x.copy()
    bad[9, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value nan at index \(9, 1\)"):
        clf.embed(bad)
    with pytest.raises(ValueError, match=r"rows of shape \(3,\)"):
        clf.grad_factors(x[:, :3])
    with pytest.raises(ValueError, match="must hold numbers"):
        clf.embed(["a text", "another"])
    with pytest.raises(RuntimeError, match="not fitted"):
        SklearnClassifier(LogisticRegression(), n_classes=3).embed(x)


class _LengthClassifier:
    """A bare estimator that takes raw strings itself (no transform step)."""

    def __init__(self, cut: int = 5) -> None:
        self.cut = cut

    def get_params(self, deep: bool = True) -> dict:
        return {"cut": self.cut}

    def set_params(self, **params):
        self.__dict__.update(params)
        return self

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x):
        long = np.array([len(t) > self.cut for t in x], dtype=np.float64)
        return np.stack([1 - long, long], axis=1)


def test_bare_estimator_on_raw_strings_predicts_and_explains_embed():
    texts = ["short", "a much longer text", "tiny", "another long message"]
    clf = SklearnClassifier(_LengthClassifier(), n_classes=2).fit(texts, np.array([0, 1, 0, 1]), seed=0)
    np.testing.assert_array_equal(clf.predict_proba(texts), [[1, 0], [0, 1], [1, 0], [0, 1]])
    assert not clf.numeric_ and clf.n_features_ is None
    with pytest.raises(ValueError, match=r"x itself .* must hold numbers; got dtype <U.*put a featuriser before "
                                         r"_LengthClassifier in a Pipeline"):
        clf.embed(texts)
    passthrough = SklearnClassifier(make_pipeline("passthrough", OneHotEncoder(), LogisticRegression()), n_classes=2)
    rows = np.array(texts, dtype=object)[:, None]
    passthrough.fit(rows, np.array([0, 1, 0, 1]), seed=0)
    np.testing.assert_array_equal(passthrough.embed(rows), np.eye(4)[[2, 0, 3, 1]])  # one-hot, sorted categories


def test_docstring_example_runs():
    import doctest

    import pickwise.adapters.sklearn as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0
