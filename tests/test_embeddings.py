import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pickwise.embeddings import (
    GradEmbedding,
    expected_gradient_length,
    grad_embedding,
    gradient_factor,
    inner_products,
    materialize,
    mean_cosine_similarity,
    sq_distances,
    sq_norms,
)


def _random(seed, n=9, k=4, d=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    h = np.maximum(rng.normal(size=(n, d)), 0)
    return p, h


def _close(fast, plain, scale):
    np.testing.assert_allclose(fast, plain, rtol=1e-6, atol=1e-12 * scale)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), m=st.integers(1, 5), k=st.integers(1, 6),
       d=st.integers(1, 7), bias=st.booleans())
def test_factored_quantities_equal_the_materialised_embedding(seed, n, m, k, d, bias):
    p, h = _random(seed, n + m, k, d)
    e = grad_embedding(p, h, bias=bias)
    g = e.materialize()
    assert g.shape == (n + m, k * (d + bias))
    x, c = e.take(np.arange(n)), e.take(np.arange(n, n + m))
    gx, gc = g[:n], g[n:]
    scale = 1.0 + float((g**2).sum(1).max())
    _close(x.sq_norms(), (gx**2).sum(1), scale)
    _close(x.norms(), np.linalg.norm(gx, axis=1), scale)
    _close(x.inner(c), gx @ gc.T, scale)
    _close(x.sq_distances(c), ((gx[:, None, :] - gc[None, :, :]) ** 2).sum(-1), scale)
    _close(sq_distances(x.a, x.h, c.a, c.h), ((gx[:, None, :] - gc[None, :, :]) ** 2).sum(-1), scale)
    _close(inner_products(x.a, x.h, c.a, c.h), gx @ gc.T, scale)
    _close(sq_norms(x.a, x.h), (gx**2).sum(1), scale)


def test_blocks_are_indexed_by_class():
    p, h = _random(1)
    g = materialize(gradient_factor(p), h)
    yhat = p.argmax(1)
    k, d = p.shape[1], h.shape[1]
    for i in range(p.shape[0]):
        for c in range(k):
            expected = (p[i, c] - (c == yhat[i])) * h[i]
            np.testing.assert_allclose(g[i, c * d : (c + 1) * d], expected, rtol=0, atol=1e-15)
    # permuting the classes permutes the blocks (never sorted by probability)
    perm = np.array([2, 0, 3, 1])
    gp = materialize(gradient_factor(p[:, perm]), h).reshape(-1, k, d)
    np.testing.assert_allclose(gp, g.reshape(-1, k, d)[:, perm], atol=1e-15)


def test_zero_when_prediction_is_one_hot():
    p = np.eye(4)[[0, 3, 1, 1]]
    h = np.random.default_rng(0).normal(size=(4, 5))
    e = grad_embedding(p, h, bias=True)
    assert np.all(e.materialize() == 0)
    assert np.all(e.sq_norms() == 0)
    assert np.all(expected_gradient_length(p, h) == 0)


def test_matches_autograd_of_the_last_layer_with_bias():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    h = rng.normal(size=(5, 4))
    w = rng.normal(size=(3, 4))
    b = rng.normal(size=3)
    logits = h @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = grad_embedding(p, h, bias=True).materialize()
    for i in range(5):
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        out = torch.tensor(h[i : i + 1]) @ wt.T + bt
        loss = torch.nn.functional.cross_entropy(out, torch.tensor([int(p[i].argmax())]))
        loss.backward()
        full = torch.cat([wt.grad, bt.grad[:, None]], dim=1).numpy().reshape(-1)  # [W | b] row by row
        np.testing.assert_allclose(g[i], full, rtol=1e-9, atol=1e-12)


def test_dense_embedding_is_factored_with_unit_left_factor():
    x = np.random.default_rng(0).normal(size=(6, 3))
    e = GradEmbedding.dense(x)
    np.testing.assert_array_equal(e.materialize(), x)
    np.testing.assert_allclose(e.sq_distances(e), ((x[:, None] - x[None]) ** 2).sum(-1), atol=1e-12)


def test_expected_gradient_length_equals_plain_sum_over_labels():
    p, h = _random(4)
    for bias in (False, True):
        hb = np.hstack([h, np.ones((len(h), 1))]) if bias else h
        plain = np.array([
            sum(p[i, c] * np.linalg.norm(np.outer(p[i] - np.eye(p.shape[1])[c], hb[i])) for c in range(p.shape[1]))
            for i in range(len(p))
        ])
        np.testing.assert_allclose(expected_gradient_length(p, h, bias=bias), plain, rtol=1e-10)


def test_mean_cosine_similarity_equals_the_full_matrix():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(23, 4))
    x[3] = 0.0  # a zero row is similar to nothing
    nrm = np.linalg.norm(x, axis=1)
    unit = np.divide(x, nrm[:, None], out=np.zeros_like(x), where=nrm[:, None] > 0)
    plain = (unit @ unit.T).mean(axis=1)
    for chunk in (1, 5, 100):
        np.testing.assert_allclose(mean_cosine_similarity(x, chunk_size=chunk), plain, atol=1e-12)
    assert mean_cosine_similarity(x)[3] == 0.0


def test_bad_inputs_are_named():
    p, h = _random(0)
    with pytest.raises(ValueError, match="rows"):
        grad_embedding(p, h[:3])
    with pytest.raises(ValueError, match="shape"):
        grad_embedding(p, h[:, 0])
    with pytest.raises(ValueError, match="nan"):
        grad_embedding(p, np.full_like(h, np.nan))
