"""Batched masked heads for head-only MC dropout: the same draws as the per-draw loop (its plain reference)."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from pickwise.adapters import TorchClassifier, mlp, small_cnn
from pickwise.adapters import torch as torch_adapter
from pickwise.scores import bald


def _fit(module: nn.Module, n_features: int, *, n: int = 60, dtype=torch.float32, **kw) -> tuple[TorchClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    y = np.arange(n) % 3
    clf = TorchClassifier(module, n_classes=3, max_steps=5, dtype=dtype, **kw).fit(x, y, seed=1)
    return clf, x


def _draws(clf: TorchClassifier, x: np.ndarray, n_draws: int, *, batched: bool, seed: int = 7,
           chunk_size: int | None = None) -> np.ndarray:
    out = np.empty((n_draws, len(x), clf.n_classes))
    with closing(clf._mc_chunks(x, n_draws, seed, chunk_size, batched_head=batched)) as chunks:
        for sl, p in chunks:
            out[:, sl] = p
    return out


def _count_batched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = torch_adapter._masked_heads

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(torch_adapter, "_masked_heads", counting)
    return calls


def test_exact_on_dyadic_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """With weights, inputs and the mask scale (p = 0.5: ×2) all small dyadic numbers, every sum is
    exact in float64 whatever its order: the batched draws must then equal the loop's bit for bit."""
    clf, _ = _fit(mlp(4, 3, hidden=(6,), dropout=0.5, seed=0), 4, dtype=torch.float64)
    gen = np.random.default_rng(3)
    with torch.no_grad():
        for prm in clf.module_.parameters():
            prm.copy_(torch.as_tensor(gen.integers(-8, 9, size=tuple(prm.shape)) / 8.0))
    x = gen.integers(-4, 5, size=(23, 4)).astype(np.float64) / 4
    calls = _count_batched(monkeypatch)
    fast = _draws(clf, x, 9, batched=True, chunk_size=10)
    assert len(calls) == 3  # the batched path ran, once per chunk
    plain = _draws(clf, x, 9, batched=False, chunk_size=10)
    assert np.array_equal(fast, plain)
    assert np.array_equal(fast, clf.predict_proba_mc(x, 9, seed=7, chunk_size=10))
    # the draws differ from one another (the masks are used), and another seed gives other draws
    assert not np.array_equal(fast[0], fast[1])
    assert not np.array_equal(fast, _draws(clf, x, 9, batched=True, seed=8, chunk_size=10))


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_mlp_equals_the_loop_and_the_generic_path(p: float, monkeypatch: pytest.MonkeyPatch) -> None:
    clf, x = _fit(mlp(5, 3, hidden=(16,), dropout=p, seed=0), 5)
    calls = _count_batched(monkeypatch)
    fast = clf.predict_proba_mc(x, 12, seed=3, chunk_size=25)
    assert calls  # mlp's dropout sits right before its head: batched by default
    plain = _draws(clf, x, 12, batched=False, seed=3, chunk_size=25)
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-6)
    clf.head_only = False  # the whole network per draw, the dropout through its hook
    generic = clf.predict_proba_mc(x, 12, seed=3, chunk_size=25)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=1e-6)
    # chunking does not change the draws (consistent masks)
    np.testing.assert_allclose(fast, _draws(clf, x, 12, batched=True, seed=3, chunk_size=7), rtol=0, atol=1e-6)


def test_mlp_with_dropout_after_every_hidden_layer_runs_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two dropout layers: the part after the first one is not 'dropout → head', so the loop runs."""
    clf, x = _fit(mlp(5, 3, hidden=(16, 8), dropout=0.5, seed=0), 5)
    assert len(clf._dropouts) == 2
    calls = _count_batched(monkeypatch)
    clf.predict_proba_mc(x, 4, seed=0)
    assert not calls


def test_single_hidden_mlp_in_float32_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    clf, x = _fit(mlp(5, 3, hidden=(16,), dropout=0.4, seed=0), 5)
    calls = _count_batched(monkeypatch)
    s_fast = clf.mc_scores(x, {"bald": bald}, 20, seed=11)["bald"]
    assert calls
    s_plain = bald(_draws(clf, x, 20, batched=False, seed=11))
    np.testing.assert_allclose(s_fast, s_plain, rtol=0, atol=1e-6)


def test_cnn_equals_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    net = small_cnn(1, 3, image_size=8, dropout=0.5, channels=(2, 3), hidden=6, seed=0)
    clf, x = _fit(net, 64, n=30, input_shape=(1, 8, 8))
    calls = _count_batched(monkeypatch)
    fast = clf.predict_proba_mc(x, 6, seed=2)
    assert calls
    np.testing.assert_allclose(fast, _draws(clf, x, 6, batched=False, seed=2), rtol=0, atol=1e-6)


class _Biasless(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_sequential_without_bias_is_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3, bias=False))
    clf, x = _fit(net, 5)
    calls = _count_batched(monkeypatch)
    fast = clf.predict_proba_mc(x, 5, seed=0)
    assert calls
    np.testing.assert_allclose(fast, _draws(clf, x, 5, batched=False, seed=0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["per-item masks", "relu after dropout", "not sequential", "head_only False",
                                  "hooked head"])
def test_other_layouts_run_the_loop(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kw: dict = {}
    if case == "relu after dropout":
        net: nn.Module = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
    elif case == "not sequential":
        net = _Biasless()
    else:
        net = mlp(5, 3, hidden=(8,), dropout=0.5, seed=0)
        kw = {"per-item masks": {"consistent_masks": False}, "head_only False": {"head_only": False}}.get(case, {})
    clf, x = _fit(net, 5, **kw)
    if case == "hooked head":
        clf.module_[-1].register_forward_hook(lambda mod, args, out: out)
    calls = _count_batched(monkeypatch)
    out = clf.predict_proba_mc(x, 4, seed=0)
    assert not calls
    assert np.array_equal(out, _draws(clf, x, 4, batched=False, seed=0))


def test_a_draw_does_not_depend_on_how_many_were_asked_for() -> None:
    """The products have one shape whatever n_draws is (groups of ceil(100 / K) draws, the last padded):
    draw t is the same number with 3, 20, 40 or 41 draws — across group boundaries too (K = 3: 34 a group)."""
    clf, x = _fit(mlp(5, 3, hidden=(16,), dropout=0.3, seed=0), 5)
    many = clf.predict_proba_mc(x, 41, seed=5)
    for t in (3, 20, 34, 35, 40):
        assert np.array_equal(clf.predict_proba_mc(x, t, seed=5), many[:t])
