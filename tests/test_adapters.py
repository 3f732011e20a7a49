"""TorchClassifier and the reference networks: capabilities, determinism, MC dropout, fast paths."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from fakes import blobs  # noqa: E402
from pickwise.adapters import TorchClassifier, mlp, small_cnn  # noqa: E402
from pickwise.protocols import Classifier, Embedder, GradEmbedder, MCSampler  # noqa: E402

N_FEATURES, K = 5, 3


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def make(dropout: float = 0.3, **kw) -> TorchClassifier:
    kw.setdefault("epochs", 25)
    kw.setdefault("lr", 1e-2)
    return TorchClassifier(mlp(N_FEATURES, K, hidden=(16,), dropout=dropout), n_classes=K, **kw)


@pytest.fixture(scope="module")
def data():
    return blobs(90, N_FEATURES, K, seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    x, y = data
    return make().fit(x, y, seed=0)


# ---- reference score functions over MC draws (T, m, K) -> (m,)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def bald(p: np.ndarray) -> np.ndarray:
    return _entropy(p.mean(0)) - _entropy(p).mean(0)


def max_entropy(p: np.ndarray) -> np.ndarray:
    return _entropy(p.mean(0))


# ---------------------------------------------------------------- capabilities and training


def test_capabilities(fitted):
    for cap in (Classifier, Embedder, GradEmbedder, MCSampler):
        assert isinstance(fitted, cap), cap.__name__
    assert make().n_classes == K


def test_import_pickwise_does_not_import_torch():
    code = (
        "import sys, pickwise, pickwise.adapters, pickwise.adapters.sklearn\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_separable_reaches_high_accuracy(data, fitted):
    x, y = data
    p = fitted.predict_proba(x)
    assert p.shape == (len(x), K) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert (p.argmax(1) == y).mean() >= 0.95
    assert fitted.n_epochs_ == 25 and fitted.n_steps_ == 25 * 2


def test_same_seed_same_model_other_seed_other_model(data, fitted):
    x, y = data
    again = make().fit(x, y, seed=0)
    np.testing.assert_array_equal(again.predict_proba(x), fitted.predict_proba(x))
    other = make().fit(x, y, seed=1)
    assert not np.array_equal(other.predict_proba(x), fitted.predict_proba(x))


def test_fit_and_mc_leave_global_rng_alone(data):
    x, y = data
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    clf = make(entropy_weight=0.5, early_stopping=True)  # building the net uses a forked RNG too
    clf.fit(x, y, seed=3, unlabeled_x=x)
    clf.predict_proba_mc(x, 4, seed=0)
    clf.mc_scores(x, {"bald": bald}, 4, seed=0)
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]


def test_fit_leaves_constructor_module_untouched(data):
    x, y = data
    net = mlp(N_FEATURES, K, hidden=(16,), dropout=0.3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    clf = TorchClassifier(net, n_classes=K, epochs=3).fit(x, y, seed=0)
    assert clf.module_ is not net
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_retrain_false_continues_from_current_weights(data):
    x, y = data
    warm = make(retrain=False, epochs=2)
    warm.fit(x, y, seed=0)
    first = warm.predict_proba(x)
    warm.fit(x, y, seed=0)  # two more epochs on top, so the model moves
    assert not np.array_equal(first, warm.predict_proba(x))
    cold = make(retrain=True, epochs=2).fit(x, y, seed=0)
    cold.fit(x, y, seed=0)
    np.testing.assert_array_equal(cold.predict_proba(x), make(epochs=2).fit(x, y, seed=0).predict_proba(x))


def test_early_stopping_is_deterministic_and_stops(data):
    x, y = data
    a = make(early_stopping=True, patience=2, epochs=300, max_steps=None).fit(x, y, seed=4)
    b = make(early_stopping=True, patience=2, epochs=300, max_steps=None).fit(x, y, seed=4)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert a.n_epochs_ < 300
    assert (a.predict_proba(x).argmax(1) == y).mean() >= 0.9


def test_stop_at_train_accuracy_and_max_steps(data):
    x, y = data
    clf = make(stop_at_train_accuracy=0.9, epochs=200, max_steps=None).fit(x, y, seed=0)
    assert clf.n_epochs_ < 200
    assert make(epochs=200, max_steps=7).fit(x, y, seed=0).n_steps_ == 7


def test_entropy_weight_zero_reproduces_plain_training(data):
    x, y = data
    plain = make().fit(x[:30], y[:30], seed=5)
    joint0 = make(entropy_weight=0.0).fit(x[:30], y[:30], seed=5, unlabeled_x=x[30:])
    np.testing.assert_array_equal(plain.predict_proba(x), joint0.predict_proba(x))


def test_entropy_weight_lowers_entropy_on_unlabelled(data):
    x, y = data
    xl, yl, xu = x[:12], y[:12], x[12:]
    for seed in (0, 1):
        plain = make(dropout=0.0, epochs=100, lr=1e-3).fit(xl, yl, seed=seed)
        joint = make(dropout=0.0, epochs=100, lr=1e-3, entropy_weight=2.0).fit(xl, yl, seed=seed, unlabeled_x=xu)
        assert _entropy(joint.predict_proba(xu)).mean() < 0.85 * _entropy(plain.predict_proba(xu)).mean()


# ---------------------------------------------------------------- embeddings and chunking


def test_grad_factors_match_predict_proba_and_embed(data, fitted):
    x, _ = data
    probs, h = fitted.grad_factors(x)
    assert h.shape == (len(x), 16) and h.dtype == np.float64
    np.testing.assert_array_equal(probs, fitted.predict_proba(x))
    np.testing.assert_array_equal(h, fitted.embed(x))
    head = fitted.module_[-1]
    logits = h @ head.weight.detach().double().numpy().T + head.bias.detach().double().numpy()
    ref = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, ref / ref.sum(1, keepdims=True), atol=1e-5)


def test_chunking_does_not_change_predictions(data, fitted):
    """A chunk's numbers are those of the same rows predicted alone (exact), and chunk sizes agree
    to float rounding (BLAS picks kernels by batch size, so bit-equality across sizes is not promised)."""
    x, _ = data
    for method in (fitted.predict_proba, fitted.embed):
        full, small = method(x), method(x, chunk_size=7)
        np.testing.assert_array_equal(small[14:21], method(x[14:21]))
        np.testing.assert_allclose(small, full, rtol=0, atol=1e-6)


def test_map_style_dataset_input(data, fitted):
    x, _ = data
    as_list = [row for row in x[:10]]
    np.testing.assert_array_equal(fitted.predict_proba(as_list), fitted.predict_proba(x[:10]))


# ---------------------------------------------------------------- MC dropout


def test_mc_shape_and_determinism(data, fitted):
    x, _ = data
    p = fitted.predict_proba_mc(x, 6, seed=11)
    assert p.shape == (6, len(x), K) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p, fitted.predict_proba_mc(x, 6, seed=11))
    assert not np.array_equal(p, fitted.predict_proba_mc(x, 6, seed=12))
    assert not np.array_equal(p[0], p[1])  # draws differ
    np.testing.assert_array_equal(p[:3], fitted.predict_proba_mc(x, 3, seed=11))  # draw t does not depend on T


def test_mc_consistent_masks_do_not_depend_on_chunking(data, fitted):
    x, _ = data
    chunked = fitted.predict_proba_mc(x, 5, seed=2, chunk_size=8)
    # the chunk holding rows 16..23 equals those rows sampled alone: masks are shared across chunks
    np.testing.assert_array_equal(chunked[:, 16:24], fitted.predict_proba_mc(x[16:24], 5, seed=2))
    np.testing.assert_allclose(chunked, fitted.predict_proba_mc(x, 5, seed=2), rtol=0, atol=1e-6)


def test_mc_consistent_vs_independent_masks(data):
    x, y = data
    same = np.repeat(x[:1], 12, axis=0)
    shared = make(consistent_masks=True).fit(x, y, seed=0).predict_proba_mc(same, 4, seed=0)
    np.testing.assert_allclose(shared, np.broadcast_to(shared[:, :1], shared.shape), rtol=0, atol=1e-6)
    own = make(consistent_masks=False).fit(x, y, seed=0).predict_proba_mc(same, 4, seed=0)
    assert np.abs(own - own[:, :1]).max() > 1e-3


def test_mc_scores_equal_scoring_the_full_array(data, fitted):
    x, _ = data
    fns = {"bald": bald, "max_entropy": max_entropy}
    scores = fitted.mc_scores(x, fns, 5, seed=9, chunk_size=16)
    full = fitted.predict_proba_mc(x, 5, seed=9, chunk_size=16)
    for name, fn in fns.items():
        assert scores[name].shape == (len(x),)
        np.testing.assert_array_equal(scores[name], fn(full))


def test_head_only_equals_generic_path(data, fitted):
    x, y = data
    generic = make(head_only=False).fit(x, y, seed=0)
    assert fitted._split_point(fitted.module_) == 3  # Flatten, Linear, ReLU | Dropout, Linear
    assert generic._split_point(generic.module_) is None
    want = generic.predict_proba_mc(x, 4, seed=1, chunk_size=32)
    # the per-draw head-only loop equals the generic path exactly; the default (the draws of a chunk as
    # one product with the stacked masked heads, tests/test_mc_batched.py) up to float rounding
    per_draw = np.concatenate([p for _, p in fitted._mc_chunks(x, 4, 1, 32, batched_head=False)], axis=1)
    np.testing.assert_array_equal(per_draw, want)
    np.testing.assert_allclose(fitted.predict_proba_mc(x, 4, seed=1, chunk_size=32), want, rtol=0, atol=1e-6)


def test_cnn_uint8_channel_axis_dropout2d_and_head_only():
    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    imgs = rng.integers(0, 60, size=(24, 8, 8)).astype(np.uint8)
    imgs[y == 1, 2:6, 2:6] = 250  # a bright square marks class 1
    net = small_cnn(1, 2, image_size=8, dropout=0.5, channels=(4, 4), hidden=8)
    net.insert(3, nn.Dropout2d(0.2))  # channel dropout after the first conv block
    clf = TorchClassifier(net, n_classes=2, epochs=40, lr=1e-2).fit(imgs, y, seed=0)
    p = clf.predict_proba(imgs)
    assert (p.argmax(1) == y).mean() >= 0.9
    np.testing.assert_allclose(p, clf.predict_proba(imgs.astype(np.float64) / 255), atol=1e-6)
    flat = TorchClassifier(net, n_classes=2, epochs=40, lr=1e-2, input_shape=(1, 8, 8)).fit(
        imgs.reshape(24, 64), y, seed=0
    )
    np.testing.assert_array_equal(flat.predict_proba(imgs.reshape(24, 64)), p)
    assert clf._split_point(clf.module_) == 3
    mc = clf.predict_proba_mc(imgs, 3, seed=0, chunk_size=5)
    np.testing.assert_array_equal(mc[:, 5:10], clf.predict_proba_mc(imgs[5:10], 3, seed=0))
    clf.head_only = False
    np.testing.assert_array_equal(mc, clf.predict_proba_mc(imgs, 3, seed=0, chunk_size=5))


def test_mc_keeps_batchnorm_in_eval(data):
    x, y = data
    net = nn.Sequential(nn.Linear(N_FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, K))
    clf = TorchClassifier(net, n_classes=K, epochs=5).fit(x, y, seed=0)
    bn = clf.module_[1]
    stats = bn.running_mean.clone(), bn.running_var.clone()
    p = clf.predict_proba_mc(x, 3, seed=0, chunk_size=1)  # batches of one would fail in train mode
    assert p.shape == (3, len(x), K)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])


def test_no_dropout_warns_and_draws_are_equal(data):
    x, y = data
    clf = make(dropout=0.0, epochs=2).fit(x, y, seed=0)
    with pytest.warns(UserWarning, match="no dropout"):
        p = clf.predict_proba_mc(x[:5], 3, seed=0)
    np.testing.assert_array_equal(p[0], p[2])
    np.testing.assert_array_equal(p[0], clf.predict_proba(x[:5]))


def test_custom_module_with_named_head(data):
    x, y = data

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out = nn.Linear(8, K)  # registered first: the last nn.Linear is not the head
            self.body = nn.Sequential(nn.Linear(N_FEATURES, 8), nn.ReLU())
            self.drop = nn.Dropout(0.2)

        def forward(self, z):
            return self.out(self.drop(self.body(z)))

    with pytest.raises(ValueError, match="head"):
        TorchClassifier(Net(), n_classes=K, epochs=2).fit(x, y, seed=0)
    clf = TorchClassifier(Net(), n_classes=K, epochs=2, head="out").fit(x, y, seed=0)
    assert clf.embed(x).shape == (len(x), 8)
    assert clf._split_point(clf.module_) is None  # not Sequential: generic MC path
    assert clf.predict_proba_mc(x, 2, seed=0).shape == (2, len(x), K)
    with pytest.raises(ValueError, match="head_only=True"):
        TorchClassifier(Net(), n_classes=K, epochs=2, head="out", head_only=True).fit(x, y, seed=0).predict_proba_mc(
            x, 2, seed=0
        )


def test_shared_dropout_module_used_twice(data):
    x, y = data

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.Linear(N_FEATURES, 12), nn.Linear(12, 6), nn.Linear(6, K)
            self.drop = nn.Dropout(0.4)  # applied after both hidden layers, at different widths

        def forward(self, z):
            return self.head(self.drop(torch.relu(self.b(self.drop(torch.relu(self.a(z)))))))

    clf = TorchClassifier(Net(), n_classes=K, epochs=3).fit(x, y, seed=0)
    p = clf.predict_proba_mc(x, 4, seed=0, chunk_size=10)
    np.testing.assert_array_equal(p[:, 20:30], clf.predict_proba_mc(x[20:30], 4, seed=0))


def test_mask_source_rate_scale_and_sharing():
    from pickwise.adapters._modules import MaskSource

    layer, inp = nn.Dropout(0.25), torch.zeros(3, 2000)
    shared, own = MaskSource(0, consistent=True), MaskSource(0, consistent=False)
    m = shared(0, layer, inp)
    assert m.shape == (1, 2000)
    np.testing.assert_allclose(sorted(m.unique().tolist()), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float((m == 0).float().mean()) - 0.25) < 0.03
    assert own(0, layer, inp).shape == (3, 2000)
    shared.start_draw(1)
    assert not torch.equal(shared(0, layer, inp), m)
    channel = MaskSource(0, consistent=True)(0, nn.Dropout2d(0.5), torch.zeros(2, 6, 4, 4))
    assert channel.shape == (1, 6, 1, 1)


# ---------------------------------------------------------------- errors at the boundary


def test_bad_inputs_raise_clear_errors(data, fitted):
    x, y = data
    bad = x.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value nan at index \(4, 2\)"):
        make().fit(bad, y, seed=0)
    bad[4, 2] = np.inf
    with pytest.raises(ValueError, match=r"inf at index \(40, 2\)"):
        fitted.predict_proba(np.concatenate([x[:36], bad]), chunk_size=8)
    with pytest.raises(ValueError, match="label 7 at index 1"):
        make().fit(x[:3], np.array([0, 7, 1]), seed=0)
    with pytest.raises(ValueError, match="label -1"):
        make().fit(x[:3], np.array([0, -1, 1]), seed=0)
    with pytest.raises(ValueError, match="0.5"):
        make().fit(x[:2], np.array([0.0, 0.5]), seed=0)
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        make().fit(x[:3], y[:2], seed=0)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        make().fit(x[:3], y[:3, None], seed=0)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        make().fit(x[0], y[:1], seed=0)
    with pytest.raises(ValueError, match=r"rows of shape \(4,\)"):
        fitted.predict_proba(x[:, :4])
    with pytest.raises(ValueError, match="seed"):
        make().fit(x, y, seed=-1)
    with pytest.raises(ValueError, match="n_draws"):
        fitted.predict_proba_mc(x, 0, seed=0)
    with pytest.raises(ValueError, match="'bad'"):
        fitted.mc_scores(x, {"bad": lambda p: p.mean(0)}, 2, seed=0)
    with pytest.raises(ValueError, match="n_classes=4"):
        TorchClassifier(mlp(N_FEATURES, K), n_classes=4).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        make(batch_size=0).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        TorchClassifier(nn.Sequential(nn.Flatten()), n_classes=K).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="does not produce the module's output"):
        TorchClassifier(nn.Sequential(nn.Linear(N_FEATURES, K), nn.Softmax(-1)), n_classes=K).fit(x, y, seed=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        make().predict_proba(x)


def test_nets_are_deterministic_and_leave_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = mlp(6, 3, seed=1), mlp(6, 3, seed=1), small_cnn(1, 3, image_size=8, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a[1].weight, b[1].weight)
    assert not torch.equal(a[1].weight, mlp(6, 3, seed=2)[1].weight)
    assert c[0].weight.shape == (16, 1, 3, 3)


def test_nets_shapes():
    net = mlp(12, 4, hidden=(8, 6), dropout=0.1)
    assert isinstance(net[-1], nn.Linear) and net[-1].in_features == 6
    assert net(torch.zeros(2, 3, 4)).shape == (2, 4)  # flattens image-like rows
    assert not any(isinstance(m, nn.Dropout) for m in mlp(12, 4, dropout=0.0).modules())
    cnn = small_cnn(3, 5, image_size=10)
    assert cnn(torch.zeros(2, 3, 10, 10)).shape == (2, 5)
    with pytest.raises(ValueError, match="dropout"):
        mlp(4, 2, dropout=1.5)
