"""Stream embeddings: class-indexed gradient blocks, penultimate features, the Kronecker sketch."""

import numpy as np
import pytest

from pickwise.stream import KroneckerSketch, grad_features, pen_features, stream_features
from pickwise.stream.features import _gaussian


def test_blocks_are_indexed_by_class():
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.5, 0.0]])
    h = np.array([[1.0, 2.0], [3.0, -1.0]])
    g = grad_features(probs, h)
    assert g.shape == (2, 6)
    for i in range(2):
        yhat = int(np.argmax(probs[i]))  # first on ties
        for c in range(3):
            np.testing.assert_allclose(g[i, 2 * c : 2 * c + 2], (probs[i, c] - (c == yhat)) * h[i])


def test_different_predicted_classes_do_not_collide():
    # sorting the probabilities first (the published code's bug) would make these identical
    h = np.array([[1.0, 0.5], [1.0, 0.5]])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    g = grad_features(probs, h)
    assert not np.allclose(g[0], g[1])
    sorted_probs = -np.sort(-probs, axis=1)
    assert np.allclose(grad_features(sorted_probs, h)[0], grad_features(sorted_probs, h)[1])


def test_bias_block_and_modes():
    probs = np.array([[0.6, 0.4]])
    h = np.array([[2.0, 3.0]])
    g = grad_features(probs, h, bias=True)
    np.testing.assert_allclose(g, [[-0.4 * 2, -0.4 * 3, -0.4, 0.4 * 2, 0.4 * 3, 0.4]])
    np.testing.assert_array_equal(stream_features(probs, h, mode="pen"), h)
    np.testing.assert_array_equal(stream_features(probs, h), grad_features(probs, h))
    with pytest.raises(ValueError, match="sorted"):
        stream_features(probs, h, mode="sorted")
    with pytest.raises(ValueError, match="rows"):
        grad_features(probs, np.ones((2, 2)))
    with pytest.raises(ValueError, match="nan"):
        pen_features(np.array([[np.nan, 1.0]]))


def test_sketch_equals_the_kronecker_projection_of_the_full_embedding():
    rng = np.random.default_rng(0)
    a, h = rng.normal(size=(4, 3)), rng.normal(size=(4, 7))
    sk = KroneckerSketch(n_h=5, n_a=2, seed=1)
    ra, rh = _gaussian(1, 2, 3, 2), _gaussian(1, 1, 7, 5)
    full = np.stack([np.kron(a[i], h[i]) for i in range(4)])  # class-major a ⊗ h
    np.testing.assert_allclose(sk(a, h), full @ np.kron(ra, rh), rtol=1e-12)
    exact_a = KroneckerSketch(n_h=5, seed=1)
    np.testing.assert_allclose(exact_a(a, h), full @ np.kron(np.eye(3), rh), rtol=1e-12)
    np.testing.assert_array_equal(sk(a, h), KroneckerSketch(n_h=5, n_a=2, seed=1)(a, h))  # same seed, same sketch


def test_sketch_preserves_inner_products():
    rng = np.random.default_rng(1)
    n, k, d = 60, 10, 400
    probs = rng.dirichlet(np.ones(k) * 0.3, size=n)
    h = np.maximum(rng.normal(size=(n, d)), 0.0)
    exact = grad_features(probs, h)
    gram = exact @ exact.T
    errors, ratios = [], []
    for seed in range(8):
        z = grad_features(probs, h, sketch=KroneckerSketch(n_h=256, seed=seed))
        assert z.shape == (n, k * 256)
        approx = z @ z.T
        ratios.append(np.diag(approx) / np.diag(gram))
        off = ~np.eye(n, dtype=bool)
        scale = np.sqrt(np.outer(np.diag(gram), np.diag(gram)))[off]
        errors.append(np.abs(approx - gram)[off] / scale)
    ratios, errors = np.concatenate(ratios), np.concatenate(errors)
    assert abs(ratios.mean() - 1) < 0.01  # unbiased norms
    assert np.quantile(np.abs(ratios - 1), 0.95) < 0.2  # ~ 2·sqrt(2/256)
    assert np.quantile(errors, 0.95) < 0.15  # inner products relative to the norms


def test_pen_sketch_and_validation():
    h = np.random.default_rng(2).normal(size=(5, 30))
    sk = KroneckerSketch(n_h=8, seed=4)
    np.testing.assert_allclose(pen_features(h, sketch=sk), h @ _gaussian(4, 1, 30, 8))
    with pytest.raises(ValueError, match="n_h"):
        KroneckerSketch(n_h=0)
