"""TorchClassifier with your own training (train_fn, Lightning-style modules, loss, optimizer,
augment), torch Datasets and DataLoaders as inputs, and input_shape checks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

from fakes import blobs  # noqa: E402
from pickwise import holdout, initial_pool, pool_rounds  # noqa: E402
from pickwise.adapters import TorchClassifier, mlp, small_cnn  # noqa: E402
from pickwise.strategies import MCDropout  # noqa: E402

N_FEATURES, K = 5, 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return blobs(90, N_FEATURES, K, seed=0)


def make(**kw) -> TorchClassifier:
    kw.setdefault("epochs", 10)
    kw.setdefault("lr", 1e-2)
    return TorchClassifier(mlp(N_FEATURES, K, hidden=(16,), dropout=0.3), n_classes=K, **kw)


def squares(n: int = 24, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, side, side); class 1 has a bright square."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    imgs = rng.integers(0, 60, size=(n, side, side)).astype(np.uint8)
    imgs[y == 1, 2:6, 2:6] = 250
    return imgs, y


def tiny_cnn(side: int = 8) -> nn.Sequential:
    return small_cnn(1, 2, image_size=side, dropout=0.3, channels=(4, 4), hidden=8)


def global_rng_state() -> tuple[torch.Tensor, tuple]:
    return torch.get_rng_state(), np.random.get_state()


def assert_global_rng(before: tuple[torch.Tensor, tuple]) -> None:
    assert torch.equal(before[0], torch.get_rng_state()), "torch's global RNG moved"
    after = np.random.get_state()
    assert before[1][0] == after[0] and np.array_equal(before[1][1], after[1]) and before[1][2:] == after[2:]


# ---------------------------------------------------------------- a user's model and training function


class UserCNN(nn.Module):
    """A user-defined CNN (not nn.Sequential): conv features, dropout, a linear head."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(12 * 4 * 4, 32)
        self.out = nn.Linear(32, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.out(self.drop(F.relu(self.fc(x.flatten(1)))))


def sgd_train(module: nn.Module, batches, *, seed: int, device: torch.device, epochs: int = 30) -> None:
    """The user's own loop: SGD with momentum, label-smoothed cross-entropy, input noise."""
    opt = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for xb, yb in batches:
            xb = xb + 0.05 * torch.randn_like(xb)  # draws from the (seeded, forked) global RNG
            loss = F.cross_entropy(module(xb), yb, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="module")
def mnist():
    from pickwise.data import load

    try:
        ds = load("mnist", flatten=False, normalize=False)
    except FileNotFoundError as err:
        pytest.skip(f"MNIST files missing: {err}")
    return ds.x_train[:600], ds.y_train[:600], ds.x_test[:300], ds.y_test[:300]


def test_user_cnn_with_own_training_runs_bald_rounds_on_mnist(mnist):
    x, y, x_test, y_test = mnist
    assert x.shape == (600, 1, 28, 28) and x.dtype == np.uint8
    pool = initial_pool(len(x), 20, y, seed=0, n_classes=10, stratified=True)
    net = UserCNN()  # built once (its init draws from the global RNG); every fit re-initialises a copy from seed

    def run() -> list:
        make_model = lambda: TorchClassifier(net, n_classes=10, batch_size=16, train_fn=sgd_train)  # noqa: E731
        strategy = MCDropout(score="bald", n_draws=8)
        return list(pool_rounds(make_model, strategy, x, pool, y, k=10, seed=0, rounds=2,
                                evaluate=holdout(x_test, y_test)))

    before = global_rng_state()
    records = run()
    assert_global_rng(before)
    assert [r.round for r in records] == [0, 1, 2]
    assert [r.n_labeled for r in records] == [20, 30, 40]
    picked = np.concatenate([r.selected for r in records[:2]])
    assert len(set(picked.tolist())) == 20 and not set(picked.tolist()) & set(pool.labeled.tolist())
    assert records[-1].metrics["accuracy"] > 0.4  # 40 labels; chance is 0.1
    again = run()
    assert [r.selected for r in again] == [r.selected for r in records]
    assert [r.metrics for r in again] == [r.metrics for r in records]


# ---------------------------------------------------------------- train_fn


def test_train_fn_is_seeded_leaves_global_rng_and_sees_prepared_batches(data):
    x, y = data
    seen: dict = {}

    def train(module, batches, *, seed, device):
        seen.update(seed=seed, device=device, n_batches=len(batches), training=module.training)
        for _ in range(2):
            for xb, yb in batches:
                seen.setdefault("shapes", set()).add((tuple(xb.shape), xb.dtype, yb.dtype))
        sgd_train(module, batches, seed=seed, device=device, epochs=10)

    before = global_rng_state()
    a = make(train_fn=train).fit(x, y, seed=7)
    assert_global_rng(before)
    assert seen["device"] == torch.device("cpu") and seen["training"] and seen["n_batches"] == 2
    assert {s[0] for s in seen["shapes"]} == {(64, N_FEATURES), (26, N_FEATURES)}
    assert {s[1:] for s in seen["shapes"]} == {(torch.float32, torch.int64)}
    assert a.n_epochs_ == 12 and a.n_steps_ == 24  # passes and batches drawn by the user's loop
    first_seed = seen["seed"]
    b = make(train_fn=train).fit(x, y, seed=7)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    np.testing.assert_array_equal(a.predict_proba_mc(x, 3, seed=0), b.predict_proba_mc(x, 3, seed=0))
    c = make(train_fn=train).fit(x, y, seed=8)
    assert seen["seed"] != first_seed
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))
    assert (a.predict_proba(x).argmax(1) == y).mean() >= 0.9


def test_train_fn_trains_the_private_copy(data):
    x, y = data
    net = mlp(N_FEATURES, K, hidden=(16,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trained = []
    clf = TorchClassifier(net, n_classes=K, train_fn=lambda m, b, **kw: trained.append(m)).fit(x, y, seed=0)
    assert trained == [clf.module_] and clf.module_ is not net
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_train_fn_refuses_options_it_would_ignore(data):
    x, y = data
    fn = lambda m, b, **kw: None  # noqa: E731
    for kw, word in ((dict(loss=F.cross_entropy), "loss"), (dict(optimizer=torch.optim.SGD), "optimizer"),
                     (dict(early_stopping=True), "early_stopping"), (dict(stop_at_train_accuracy=0.9), "stop_at")):
        with pytest.raises(ValueError, match=word):
            make(train_fn=fn, **kw).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="entropy_weight"):
        make(train_fn=fn, entropy_weight=1.0).fit(x, y, seed=0, unlabeled_x=x)
    for name in ("train_fn", "loss", "optimizer", "augment"):
        with pytest.raises(ValueError, match=f"{name} must be callable or None; got 3"):
            make(**{name: 3}).fit(x, y, seed=0)


# ---------------------------------------------------------------- loss, optimizer, augment in pickwise's loop


def test_explicit_defaults_equal_the_default_loop(data):
    """loss=cross-entropy, optimizer=Adam(lr) and an identity augment reproduce the default exactly."""
    x, y = data
    ref = make(early_stopping=True, patience=2).fit(x, y, seed=3)
    same = make(
        early_stopping=True,
        patience=2,
        loss=F.cross_entropy,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
        augment=lambda xb: xb,
    ).fit(x, y, seed=3)
    np.testing.assert_array_equal(ref.predict_proba(x), same.predict_proba(x))
    assert (ref.n_epochs_, ref.n_steps_) == (same.n_epochs_, same.n_steps_)


def test_custom_loss_and_optimizer_are_used(data):
    x, y = data
    made, calls = [], []

    def sgd(params):
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
        made.append(opt)
        return opt

    def loss(logits, target):
        calls.append(logits.shape)
        return F.cross_entropy(logits, target, label_smoothing=0.2)

    clf = make(optimizer=sgd, loss=loss).fit(x, y, seed=0)
    assert len(made) == 1 and type(made[0]) is torch.optim.SGD
    assert {id(p) for g in made[0].param_groups for p in g["params"]} == {id(p) for p in clf.module_.parameters()}
    assert made[0].state  # it stepped: momentum buffers exist
    assert len(calls) == clf.n_steps_ == 20
    assert (clf.predict_proba(x).argmax(1) == y).mean() >= 0.9
    assert not np.array_equal(clf.predict_proba(x), make().fit(x, y, seed=0).predict_proba(x))
    with pytest.raises(ValueError, match="scalar tensor"):
        make(loss=lambda z, t: F.cross_entropy(z, t, reduction="none")).fit(x, y, seed=0)
    with pytest.raises(ValueError, match="Optimizer"):
        make(optimizer=lambda p: "adam").fit(x, y, seed=0)


def test_entropy_weight_still_works_with_a_custom_loss(data):
    x, y = data
    loss = lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1)  # noqa: E731
    plain = make(loss=loss).fit(x[:30], y[:30], seed=5)
    zero = make(loss=loss, entropy_weight=0.0).fit(x[:30], y[:30], seed=5, unlabeled_x=x[30:])
    np.testing.assert_array_equal(plain.predict_proba(x), zero.predict_proba(x))
    unlabelled = TensorDataset(torch.tensor(x[30:]))  # a Dataset of x-only items works as unlabeled_x
    joint = make(loss=loss, entropy_weight=1.0).fit(x[:30], y[:30], seed=5, unlabeled_x=unlabelled)
    assert not np.array_equal(plain.predict_proba(x), joint.predict_proba(x))


def test_augment_touches_training_batches_only(data):
    x, y = data
    calls = []

    def augment(xb):
        calls.append(tuple(xb.shape))
        return xb + 0.1 * torch.randn_like(xb)

    before = global_rng_state()
    clf = make(augment=augment).fit(x, y, seed=0)
    assert_global_rng(before)
    assert len(calls) == clf.n_steps_ == 20
    calls.clear()
    clf.predict_proba(x)
    clf.embed(x)
    clf.grad_factors(x)
    clf.predict_proba_mc(x, 2, seed=0)
    clf.mc_scores(x, {"m": lambda p: p.mean((0, 2))}, 2, seed=0)
    assert calls == []
    again = make(augment=augment).fit(x, y, seed=0)
    np.testing.assert_array_equal(clf.predict_proba(x), again.predict_proba(x))
    assert not np.array_equal(clf.predict_proba(x), make().fit(x, y, seed=0).predict_proba(x))
    calls.clear()
    make(augment=augment, train_fn=sgd_train).fit(x, y, seed=0)
    assert len(calls) == 30 * 2  # the batches the user's loop drew
    with pytest.raises(ValueError, match="augment must return a tensor"):
        make(augment=lambda xb: xb.numpy()).fit(x, y, seed=0)


# ---------------------------------------------------------------- Lightning-style modules


class LitSequential(nn.Sequential):
    """nn.Sequential plus Lightning-style training_step / configure_optimizers."""

    lr = 1e-2
    scheduler = False

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        self.steps = getattr(self, "steps", 0) + 1
        return {"loss": F.cross_entropy(self(xb), yb)}

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        if not self.scheduler:
            return opt
        self.sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.sched}}


def test_lightning_style_module_equals_the_same_loop_by_hand(data):
    x, y = data
    plain = make(early_stopping=True, patience=2).fit(x, y, seed=1)
    lit = TorchClassifier(LitSequential(*mlp(N_FEATURES, K, hidden=(16,), dropout=0.3)), n_classes=K, epochs=10,
                          lr=1e-2, early_stopping=True, patience=2).fit(x, y, seed=1)
    np.testing.assert_array_equal(plain.predict_proba(x), lit.predict_proba(x))
    assert lit.module_.steps == lit.n_steps_ == plain.n_steps_


def test_lightning_style_scheduler_and_optimizer_override(data):
    x, y = data
    net = LitSequential(*mlp(N_FEATURES, K, hidden=(16,), dropout=0.3))
    net.scheduler = True
    clf = TorchClassifier(net, n_classes=K, epochs=4).fit(x, y, seed=0)
    assert clf.module_.sched.last_epoch == 4 and clf.module_.sched.get_last_lr() == [1e-2 / 16]
    made = []
    TorchClassifier(net, n_classes=K, epochs=1, optimizer=lambda p: made.append(torch.optim.SGD(p, lr=0.1)) or made[-1]
                    ).fit(x, y, seed=0)
    assert len(made) == 1
    with pytest.raises(ValueError, match="stop_at_train_accuracy"):
        TorchClassifier(net, n_classes=K, stop_at_train_accuracy=0.9).fit(x, y, seed=0)


# ---------------------------------------------------------------- Datasets and DataLoaders


class ImageLabelDataset(Dataset):
    """(image, label) pairs: uint8 numpy image (H, W), int label; counts item reads."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, with_labels: bool = True) -> None:
        self.images, self.labels, self.with_labels, self.reads = images, labels, with_labels, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        self.reads += 1
        return (self.images[i], int(self.labels[i])) if self.with_labels else torch.from_numpy(self.images[i])


def test_dataset_of_image_label_pairs_equals_arrays():
    imgs, y = squares()
    ds = ImageLabelDataset(imgs, y)
    ref = TorchClassifier(tiny_cnn(), n_classes=2, epochs=15, batch_size=8, lr=1e-2).fit(imgs, y, seed=0)
    clf = TorchClassifier(tiny_cnn(), n_classes=2, epochs=15, batch_size=8, lr=1e-2).fit(ds, seed=0)  # y from the items
    np.testing.assert_array_equal(ref.predict_proba(imgs), clf.predict_proba(imgs))
    assert (clf.predict_proba(imgs).argmax(1) == y).mean() >= 0.9
    ds.reads = 0
    np.testing.assert_array_equal(clf.predict_proba(ds, chunk_size=5), ref.predict_proba(imgs, chunk_size=5))
    assert ds.reads == len(imgs)  # each item read once
    np.testing.assert_array_equal(clf.embed(ds), ref.embed(imgs))
    for got, want in zip(clf.grad_factors(ds), ref.grad_factors(imgs)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(clf.predict_proba_mc(ds, 3, seed=1, chunk_size=7),
                                  ref.predict_proba_mc(imgs, 3, seed=1, chunk_size=7))
    unlabelled = ImageLabelDataset(imgs, y, with_labels=False)  # items are x only
    np.testing.assert_array_equal(clf.predict_proba(unlabelled), ref.predict_proba(imgs))
    flipped = 1 - y  # explicit y wins over the items' labels
    np.testing.assert_array_equal(
        TorchClassifier(tiny_cnn(), n_classes=2, epochs=3).fit(ds, flipped, seed=0).predict_proba(imgs),
        TorchClassifier(tiny_cnn(), n_classes=2, epochs=3).fit(imgs, flipped, seed=0).predict_proba(imgs),
    )
    with pytest.raises(ValueError, match=r"y=None but items 0\.\.23 of the ImageLabelDataset include one without"):
        TorchClassifier(tiny_cnn(), n_classes=2).fit(unlabelled, seed=0)
    with pytest.raises(ValueError, match="needs labels y"):
        TorchClassifier(tiny_cnn(), n_classes=2).fit(imgs, seed=0)


def test_dataset_training_reads_bounded_batches():
    imgs, y = squares(40)
    ds = ImageLabelDataset(imgs, y)
    sizes = []
    net = tiny_cnn()
    net[0].register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    clf = TorchClassifier(net, n_classes=2, epochs=2, batch_size=8, chunk_size=16, early_stopping=True).fit(ds, seed=0)
    assert max(sizes) <= 16  # head check (4), batches (8), validation loss in chunks
    sizes.clear()
    clf.predict_proba(ds, chunk_size=6)
    assert sizes == [6] * 6 + [4]
    bad = imgs.astype(np.float64)
    bad[13, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"nan at index \(13, 2, 3\)"):
        TorchClassifier(tiny_cnn(), n_classes=2, chunk_size=5).fit(ImageLabelDataset(bad, y), seed=0)
    with pytest.raises(ValueError, match="label 5 at index 2"):
        TorchClassifier(tiny_cnn(), n_classes=2).fit(ImageLabelDataset(imgs, np.array([0, 1, 5] + [0] * 37)), seed=0)


def test_dataloaders_for_scoring_and_training(data):
    x, y = data
    tds = TensorDataset(torch.tensor(x), torch.tensor(y))
    clf = make().fit(x, y, seed=0)
    ordered = DataLoader(tds, batch_size=16)
    np.testing.assert_array_equal(clf.predict_proba(ordered), clf.predict_proba(x, chunk_size=16))
    np.testing.assert_array_equal(clf.embed(ordered), clf.embed(x, chunk_size=16))
    np.testing.assert_array_equal(
        clf.predict_proba_mc(ordered, 3, seed=2), clf.predict_proba_mc(x, 3, seed=2, chunk_size=16)
    )
    np.testing.assert_array_equal(
        clf.mc_scores(ordered, {"m": lambda p: p.max(-1).mean(0)}, 3, seed=2)["m"],
        clf.mc_scores(x, {"m": lambda p: p.max(-1).mean(0)}, 3, seed=2, chunk_size=16)["m"],
    )
    with pytest.raises(ValueError, match="shuffle=False"):
        clf.predict_proba(DataLoader(tds, batch_size=16, shuffle=True))
    with pytest.raises(ValueError, match="drop_last"):
        clf.embed(DataLoader(tds, batch_size=16, drop_last=True))

    shuffled = DataLoader(tds, batch_size=16, shuffle=True)  # no generator: draws from the seeded global RNG
    before = global_rng_state()
    a = make().fit(shuffled, seed=4)
    assert_global_rng(before)
    assert a.n_steps_ == 10 * len(shuffled)
    np.testing.assert_array_equal(a.predict_proba(x), make().fit(shuffled, seed=4).predict_proba(x))
    assert (a.predict_proba(x).argmax(1) == y).mean() >= 0.9
    b = make(train_fn=sgd_train).fit(shuffled, seed=4)
    assert b.n_steps_ == 30 * len(shuffled)
    with pytest.raises(ValueError, match="y=None"):
        make().fit(shuffled, y, seed=0)
    with pytest.raises(ValueError, match="early_stopping"):
        make(early_stopping=True).fit(shuffled, seed=0)
    with pytest.raises(ValueError, match="no labels"):
        make().fit(DataLoader(TensorDataset(torch.tensor(x)), batch_size=16), seed=0)


# ---------------------------------------------------------------- input_shape


def test_input_shape_reshapes_flat_rows_and_explains_mismatches():
    imgs, y = squares()
    flat = imgs.reshape(len(imgs), -1)
    images = TorchClassifier(tiny_cnn(), n_classes=2, epochs=5).fit(imgs, y, seed=0)
    shaped = TorchClassifier(tiny_cnn(), n_classes=2, epochs=5, input_shape=(1, 8, 8)).fit(flat, y, seed=0)
    np.testing.assert_array_equal(shaped.predict_proba(flat), images.predict_proba(imgs))
    ds = TensorDataset(torch.from_numpy(flat), torch.from_numpy(y))
    np.testing.assert_array_equal(
        TorchClassifier(tiny_cnn(), n_classes=2, epochs=5, input_shape=(1, 8, 8)).fit(ds, seed=0).predict_proba(flat),
        images.predict_proba(imgs),
    )
    with pytest.raises(ValueError, match=r"flat rows of shape \(64,\); pass input_shape=\(1, 8, 8\)") as err:
        TorchClassifier(tiny_cnn(), n_classes=2).fit(flat, y, seed=0)
    assert "(channels, height, width)" in str(err.value) and isinstance(err.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match=r"input_shape=\(1, 8, 7\) \(56 values\) does not fit rows of shape \(64,\)"):
        TorchClassifier(tiny_cnn(), n_classes=2, input_shape=(1, 8, 7)).fit(flat, y, seed=0)
    shapes = r"batch of shape \(4, 8, 8, 1\) \(rows of shape \(64,\), input_shape=\(8, 8, 1\)\)"
    with pytest.raises(ValueError, match=shapes):
        TorchClassifier(tiny_cnn(), n_classes=2, input_shape=(8, 8, 1)).fit(flat, y, seed=0)
    with pytest.raises(ValueError, match="input_shape must be a tuple"):
        TorchClassifier(tiny_cnn(), n_classes=2, input_shape=(1, 0, 8)).fit(flat, y, seed=0)
    with pytest.raises(ValueError, match=r"rows of shape \(63,\)"):
        shaped.predict_proba(flat[:, :63])
