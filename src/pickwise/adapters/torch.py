"""TorchClassifier: any PyTorch classifier with a linear head, with every capability strategies use.

Capabilities: :class:`~pickwise.protocols.Classifier`, :class:`~pickwise.protocols.Embedder`,
:class:`~pickwise.protocols.GradEmbedder` and :class:`~pickwise.protocols.MCSampler`.

How it works
------------
* The head is the last ``nn.Linear`` submodule in registration order (or the one named by
  ``head=``); it must produce the module's output (logits of shape (n, n_classes)), which ``fit``
  checks. The penultimate activation ``h`` is the head's input, captured by a forward pre-hook, so
  the module needs no particular structure.
* ``fit`` trains a private deep copy (``module_``); the constructor's ``module`` is never touched.
  All randomness comes from ``seed``: parameters are re-initialised (``reset_parameters`` of every
  submodule) and training-time dropout runs inside ``torch.random.fork_rng`` seeded from ``seed``,
  so torch's global RNG is the same after ``fit`` as before; mini-batch order, the early-stopping
  split and the unlabelled batches each have their own ``torch.Generator``.
* MC dropout keeps the whole module in eval mode (batchnorm uses running statistics) and applies
  dropout itself through forward hooks on the dropout modules, with masks from generators seeded
  by ``(seed, draw, layer, application)``. With ``consistent_masks=True`` (the default, what BatchBALD needs) a
  draw's mask has shape (1, features) — per channel for ``Dropout1d/2d/3d`` — and is shared by every
  item, so results do not depend on chunking. With ``consistent_masks=False`` each item gets its own
  mask (seeded also by the chunk number, so results depend on ``chunk_size``).
* Head-only MC: when the module is an ``nn.Sequential`` and every active dropout layer lies in a
  top-level child after the first, the children before the first dropout (the encoder) run once per
  chunk and only the rest runs ``n_draws`` times; the numbers equal the generic path's exactly.

Inputs are numpy arrays (or anything :func:`pickwise.utils.take` indexes) of shape (n, features),
(n, C, H, W) or (n, H, W); uint8 inputs are scaled by 1/255. ``input_shape`` reshapes each row;
without it, 3-D input to a module containing ``nn.Conv2d`` gets a channel axis: (n, 1, H, W).
Functional dropout (``F.dropout`` called inside ``forward``) is invisible to the hooks: use modules.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError("pickwise.adapters.torch needs PyTorch: pip install 'pickwise[torch]'") from err

from .._validation import check_positive_int
from ..utils import chunks, derive_seed, n_items, take
from ._checks import check_labels, check_n_classes, check_real, check_rows, check_seed
from ._modules import (
    MaskSource,
    check_head_is_output,
    dropout_layers,
    entropy,
    find_head,
    seeded_global_rng,
    softmax64,
    to_numpy,
)

# Sub-seeds of the ``fit`` seed; distinct keys keep the streams independent.
_INIT, _SHUFFLE, _SPLIT, _UNLABELED = 0, 1, 2, 3

ScoreFn = Callable[[np.ndarray], np.ndarray]


class TorchClassifier:
    """A PyTorch classifier trained with Adam and cross-entropy.

    Parameters
    ----------
    module : nn.Module
        Maps a batch to logits of shape (m, n_classes) through a final ``nn.Linear`` head.
    n_classes : int
    epochs, max_steps : int, int or None
        Training stops after ``epochs`` passes or ``max_steps`` optimiser steps, whichever first.
    batch_size, lr, weight_decay : mini-batch size and Adam settings.
    early_stopping, val_fraction, patience :
        Hold out ``val_fraction`` of the labelled rows, stop after ``patience`` epochs without a
        lower validation loss and restore the best weights.
    stop_at_train_accuracy : float or None
        Stop once an epoch's running training accuracy reaches it (BADGE trains to 0.99).
    retrain : bool
        Re-initialise from ``seed`` on every ``fit`` (default); otherwise continue from the weights.
    chunk_size : int
        Rows per forward pass at prediction time.
    device, dtype : where and in which floating type the module runs.
    entropy_weight : float
        λ of the joint objective mean CE(labelled) + λ · mean H(p(unlabelled)) (Ranganathan et al.,
        ICIP 2017), used when ``fit`` gets ``unlabeled_x``; 0 is plain training, exactly.
    head : str or None
        Name of the head submodule (as in ``named_modules``) instead of the last ``nn.Linear``.
    head_only : bool or None
        MC dropout through the head part only (see the module docstring); None decides by itself.
    consistent_masks : bool
        One dropout mask per draw shared by all items (default) or one per item.
    input_shape : tuple of int or None
        Shape each input row is reshaped to, e.g. (1, 28, 28).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        n_classes: int,
        epochs: int = 100,
        max_steps: int | None = 1000,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        early_stopping: bool = False,
        val_fraction: float = 0.1,
        patience: int = 5,
        stop_at_train_accuracy: float | None = None,
        retrain: bool = True,
        chunk_size: int = 1024,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        entropy_weight: float = 0.0,
        head: str | None = None,
        head_only: bool | None = None,
        consistent_masks: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.module = module
        self.n_classes = n_classes
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.val_fraction = val_fraction
        self.patience = patience
        self.stop_at_train_accuracy = stop_at_train_accuracy
        self.retrain = retrain
        self.chunk_size = chunk_size
        self.device = device
        self.dtype = dtype
        self.entropy_weight = entropy_weight
        self.head = head
        self.head_only = head_only
        self.consistent_masks = consistent_masks
        self.input_shape = input_shape

    def __repr__(self) -> str:
        return f"TorchClassifier({type(self.module).__name__}, n_classes={self.n_classes})"

    # ------------------------------------------------------------------ training

    def fit(self, x: Any, y: Any, *, seed: int, unlabeled_x: Any = None) -> TorchClassifier:
        """Train on ``x`` (n rows) with labels ``y`` of shape (n,); returns ``self``.

        ``unlabeled_x`` (rows of the same shape) feeds the entropy term when ``entropy_weight > 0``
        and is ignored otherwise.
        """
        self._check_params()
        seed = check_seed(seed)
        n = n_items(x)
        if n == 0:
            raise ValueError("fit needs at least one labelled row; got 0")
        rows = check_rows("x", x if isinstance(x, np.ndarray) else take(x, np.arange(n)))
        labels = check_labels(y, self.n_classes, n)
        if self.early_stopping and n < 2:
            raise ValueError(f"early_stopping needs at least 2 labelled rows to hold some out; got {n}")
        self.row_shape_ = tuple(rows.shape[1:])

        if self.retrain or not hasattr(self, "module_"):
            net = copy.deepcopy(self.module)
            self.head_name_, head = find_head(net, self.head)
            if head.out_features != self.n_classes:
                raise ValueError(
                    f"the head {self.head_name_!r} has {head.out_features} outputs; n_classes={self.n_classes}"
                )
            self._dropouts = dropout_layers(net)
            self._has_conv2d = any(isinstance(m, nn.Conv2d) for m in net.modules())
            net.to(device=self.device, dtype=self.dtype)
        else:
            net = self.module_

        xt, yt = self._tensor(rows), torch.as_tensor(labels, device=self.device)
        with seeded_global_rng(derive_seed(seed, _INIT), self.device):
            if self.retrain:
                for m in net.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
            check_head_is_output(net, self._head_of(net), xt[:4])
            unl = None
            if self.entropy_weight > 0 and unlabeled_x is not None and n_items(unlabeled_x) > 0:
                unl = _UnlabeledBatches(self, unlabeled_x, torch.Generator().manual_seed(derive_seed(seed, _UNLABELED)))
            self._train(net, xt, yt, seed, unl)
        net.eval()
        self.module_ = net
        return self

    def _train(self, net: nn.Module, xt: torch.Tensor, yt: torch.Tensor, seed: int, unl: Any) -> None:
        n = xt.shape[0]
        if self.early_stopping:
            n_val = min(n - 1, max(1, int(round(self.val_fraction * n))))
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, _SPLIT)))
            val, tr = perm[:n_val].to(self.device), perm[n_val:].to(self.device)
            xv, yv, xt, yt = xt[val], yt[val], xt[tr], yt[tr]
            n = xt.shape[0]
        shuffle = torch.Generator().manual_seed(derive_seed(seed, _SHUFFLE))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        max_steps = self.max_steps if self.max_steps is not None else float("inf")
        steps, epoch, best_loss, best_state, stale = 0, 0, float("inf"), None, 0
        while epoch < self.epochs and steps < max_steps:
            net.train()
            perm = torch.randperm(n, generator=shuffle).to(self.device)
            correct = seen = 0
            for sl in _batches(n, self.batch_size):
                idx = perm[sl]
                logits = net(xt[idx])
                loss = F.cross_entropy(logits, yt[idx])
                if unl is not None:
                    loss = loss + self.entropy_weight * entropy(net(unl.next())).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                correct += int((logits.argmax(1) == yt[idx]).sum())
                seen += len(idx)
                if steps >= max_steps:
                    break
            epoch += 1
            if self.early_stopping:
                net.eval()
                with torch.no_grad():
                    val_loss = float(F.cross_entropy(net(xv), yv))
                if val_loss < best_loss:
                    best_loss, stale = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            if self.stop_at_train_accuracy is not None and correct >= self.stop_at_train_accuracy * seen:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.n_epochs_, self.n_steps_ = epoch, steps

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, x: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Class probabilities, float64 ndarray of shape (n, n_classes)."""
        net = self._fitted()
        out = np.empty((n_items(x), self.n_classes))
        with torch.no_grad():
            for sl, xb in self._chunks(x, chunk_size):
                out[sl] = to_numpy(softmax64(net(xb)))
        return out

    def embed(self, x: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Penultimate activations (the head's input), float64 ndarray of shape (n, d)."""
        return self.grad_factors(x, chunk_size=chunk_size)[1]

    def grad_factors(self, x: Any, *, chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(probs of shape (n, n_classes), penultimate h of shape (n, d)) from one forward pass per chunk."""
        net = self._fitted()
        head = self._head_of(net)
        n = n_items(x)
        probs, h = np.empty((n, self.n_classes)), np.empty((n, head.in_features))
        seen: dict[str, torch.Tensor] = {}
        handle = head.register_forward_pre_hook(lambda mod, args: seen.__setitem__("h", args[0]))
        try:
            with torch.no_grad():
                for sl, xb in self._chunks(x, chunk_size):
                    probs[sl] = to_numpy(softmax64(net(xb)))
                    if seen["h"].shape != (len(xb), head.in_features):
                        raise ValueError(
                            f"the head {self.head_name_!r} got input of shape {tuple(seen['h'].shape)}; "
                            f"expected ({len(xb)}, {head.in_features}), one feature row per item"
                        )
                    h[sl] = to_numpy(seen["h"])
        finally:
            handle.remove()
        return probs, h

    # ------------------------------------------------------------------ MC dropout

    def predict_proba_mc(self, x: Any, n_draws: int, *, seed: int, chunk_size: int | None = None) -> np.ndarray:
        """MC-dropout probabilities, float64 ndarray of shape (n_draws, n, n_classes).

        Draw ``t`` uses the same dropout masks for every item when ``consistent_masks`` is set.
        Memory is O(n_draws · n · n_classes) for the result; use :meth:`mc_scores` to avoid it.
        """
        n_draws = check_positive_int("n_draws", n_draws)
        out = np.empty((n_draws, n_items(x), self.n_classes))
        with closing(self._mc_chunks(x, n_draws, check_seed(seed), chunk_size)) as draws:
            for sl, p in draws:
                out[:, sl] = p
        return out

    def mc_scores(
        self, x: Any, score_fns: Mapping[str, ScoreFn], n_draws: int, *, seed: int, chunk_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """Per-item scores from MC draws, reduced chunk by chunk: memory O(chunk · n_draws · K).

        Each ``score_fns[name]`` maps MC probabilities of shape (n_draws, m, n_classes) to scores of
        shape (m,). Returns ``{name: float64 ndarray of shape (n,)}``, equal to applying each
        function to the whole of :meth:`predict_proba_mc` (for item-wise functions).
        """
        if not isinstance(score_fns, Mapping) or not score_fns:
            raise ValueError(f"score_fns must be a non-empty dict of name -> function; got {score_fns!r}")
        for name, fn in score_fns.items():
            if not callable(fn):
                raise ValueError(f"score_fns[{name!r}] is not callable; got {fn!r}")
        n_draws = check_positive_int("n_draws", n_draws)
        n = n_items(x)
        out = {name: np.empty(n) for name in score_fns}
        # closing() removes the dropout hooks at once, even when a score function raises
        with closing(self._mc_chunks(x, n_draws, check_seed(seed), chunk_size)) as draws:
            for sl, p in draws:
                m = sl.stop - sl.start
                for name, fn in score_fns.items():
                    s = np.asarray(fn(p), dtype=np.float64)
                    if s.shape != (m,):
                        raise ValueError(f"score_fns[{name!r}] must map shape {p.shape} to ({m},); got shape {s.shape}")
                    out[name][sl] = s
        return out

    def _mc_chunks(self, x: Any, n_draws: int, seed: int, chunk_size: int | None) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield (slice, MC probabilities of shape (n_draws, m, n_classes)) chunk by chunk."""
        net = self._fitted()
        split = self._split_point(net)
        if not self._dropouts:
            warnings.warn(
                f"{type(self.module).__name__} has no dropout layer with p > 0; all {n_draws} MC draws are equal",
                stacklevel=3,
            )
        masks = MaskSource(seed, self.consistent_masks)
        handles = [
            layer.register_forward_hook(lambda mod, args, out, i=i: out * masks(i, mod, args[0]))
            for i, layer in enumerate(self._dropouts)
        ]
        try:
            with torch.no_grad():
                for c, (sl, xb) in enumerate(self._chunks(x, chunk_size)):
                    masks.chunk = c
                    if not self._dropouts:
                        yield sl, to_numpy(softmax64(net(xb)).expand(n_draws, -1, -1))
                        continue
                    if split is None:
                        body, feats = net, xb
                    else:  # head-only: the encoder runs once, the dropout part n_draws times
                        body, feats = net[split:], net[:split](xb)
                    p = torch.empty((n_draws, len(xb), self.n_classes), dtype=torch.float64, device=xb.device)
                    for t in range(n_draws):
                        masks.start_draw(t)
                        p[t] = softmax64(body(feats))
                    yield sl, to_numpy(p)
        finally:
            for handle in handles:
                handle.remove()

    def _split_point(self, net: nn.Module) -> int | None:
        """Index of the first top-level child holding an active dropout layer, when head-only applies."""
        split = None
        if isinstance(net, nn.Sequential) and self._dropouts:
            ids = {id(m) for m in self._dropouts}
            split = next(i for i, child in enumerate(net) if any(id(m) in ids for m in child.modules()))
            split = split or None  # dropout in the first child: nothing to reuse
        if self.head_only is True and split is None:
            raise ValueError(
                "head_only=True needs an nn.Sequential module whose dropout layers all come after its first "
                f"top-level layer; got {type(self.module).__name__}"
            )
        return split if self.head_only is not False else None

    # ------------------------------------------------------------------ helpers

    def _check_params(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise ValueError(f"module must be a torch.nn.Module; got {type(self.module).__name__}")
        check_n_classes(self.n_classes)
        check_positive_int("epochs", self.epochs)
        if self.max_steps is not None:
            check_positive_int("max_steps", self.max_steps)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("patience", self.patience)
        check_positive_int("chunk_size", self.chunk_size)
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("entropy_weight", self.entropy_weight, low=0.0)
        if self.early_stopping:
            check_real("val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True)
        if self.stop_at_train_accuracy is not None:
            check_real("stop_at_train_accuracy", self.stop_at_train_accuracy, low=0.0, high=1.0, low_open=True)
        if self.head_only not in (None, True, False):
            raise ValueError(f"head_only must be None, True or False; got {self.head_only!r}")

    def _fitted(self) -> nn.Module:
        if not hasattr(self, "module_"):
            raise RuntimeError("this TorchClassifier is not fitted yet; call fit(x, y, seed=...) first")
        self.module_.eval()
        return self.module_

    def _head_of(self, net: nn.Module) -> nn.Linear:
        return net.get_submodule(self.head_name_)

    def _tensor(self, rows: np.ndarray) -> torch.Tensor:
        """Checked rows (m, ...) as a tensor on ``device`` in ``dtype``, uint8 scaled to [0, 1]."""
        t = torch.tensor(rows).to(self.dtype)
        if rows.dtype == np.uint8:
            t = t / 255
        if self.input_shape is not None:
            t = t.reshape(t.shape[0], *self.input_shape)
        elif t.ndim == 3 and self._has_conv2d:
            t = t.unsqueeze(1)
        return t.to(self.device)

    def _chunks(self, x: Any, chunk_size: int | None) -> Iterator[tuple[slice, torch.Tensor]]:
        size = check_positive_int("chunk_size", self.chunk_size if chunk_size is None else chunk_size)
        for sl in chunks(n_items(x), size):
            rows = x[sl] if isinstance(x, np.ndarray) else take(x, np.arange(sl.start, sl.stop))
            yield sl, self._tensor(check_rows("x", rows, offset=sl.start, row_shape=self.row_shape_))


def _batches(n: int, size: int) -> list[slice]:
    """Mini-batch slices of ``range(n)``; a trailing batch of one joins the previous one (batchnorm
    cannot train on a single row)."""
    out = list(chunks(n, size))
    if len(out) > 1 and out[-1].stop - out[-1].start == 1:
        out[-2:] = [slice(out[-2].start, n)]
    return out


class _UnlabeledBatches:
    """Random mini-batches (with replacement) of unlabelled rows, drawn from their own generator."""

    def __init__(self, clf: TorchClassifier, x: Any, generator: torch.Generator) -> None:
        self.clf, self.x, self.n, self.generator = clf, x, n_items(x), generator
        self.size = min(clf.batch_size, self.n)

    def next(self) -> torch.Tensor:
        idx = torch.randint(self.n, (self.size,), generator=self.generator).numpy()
        return self.clf._tensor(check_rows("unlabeled_x", take(self.x, idx), row_shape=self.clf.row_shape_))
