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
  chunk and only the rest runs ``n_draws`` times; draw by draw, the numbers equal the generic path's exactly.
* Batched head: when that rest is one ``nn.Dropout`` followed by the linear head (as in
  :func:`~pickwise.adapters.mlp` and :func:`~pickwise.adapters.small_cnn`) and masks are consistent,
  the ``n_draws`` draws of a chunk are ONE matrix product: ``(h ⊙ m_t) Wᵀ = h (W ⊙ m_t)ᵀ``, so the
  features ``h`` meet the stacked masked heads, of shape (n_draws · n_classes, d), at once. The
  masks are the per-draw path's (same generators, same seeds); the logits equal its up to float
  rounding (the sums run in another order). Any other layout runs the draws one by one.

Training
--------
By default ``fit`` runs pickwise's loop: Adam (``lr``, ``weight_decay``) on cross-entropy over
shuffled mini-batches, with early stopping and the joint entropy term as configured. Each part can
be replaced:

* ``loss(logits, y) -> scalar tensor`` replaces cross-entropy (also for the early-stopping loss);
* ``optimizer(params) -> torch.optim.Optimizer`` replaces Adam;
* ``augment(x_batch) -> x_batch`` transforms each labelled training batch (never at scoring);
* a module with Lightning-style ``training_step(batch, batch_idx)`` (returning the loss, or a dict
  with ``"loss"``) and optionally ``configure_optimizers()`` is trained by the same loop, which
  calls them (``optimizer=`` still wins over ``configure_optimizers``; a returned scheduler steps
  once per epoch);
* ``train_fn(module, batches, *, seed, device)`` replaces the loop altogether: the user's own
  training code trains ``module`` (already re-initialised, on ``device``, in train mode) in place.
  ``batches`` is re-iterable (one pass per epoch, with ``len()``) and yields ``(x, y)`` tensor
  batches of ``batch_size`` rows, prepared as at scoring (dtype, uint8 scaling, ``input_shape``)
  and augmented; each pass is shuffled by a generator seeded from ``seed``. ``seed`` is a sub-seed
  for any randomness of the user's own; the return value is ignored. ``epochs``, ``max_steps``,
  ``lr`` and the stopping rules are then the user's business (``n_epochs_`` / ``n_steps_`` count
  the passes and batches drawn).

Whatever trains, it runs inside the seeded fork of torch's global RNG, so ``fit`` is a function of
``seed`` and leaves the global RNG as it found it.

Inputs
------
``fit``, ``predict_proba``, ``embed``, ``grad_factors``, ``predict_proba_mc`` and ``mc_scores``
take numpy arrays (or memory-mapped arrays, or anything :func:`pickwise.utils.take` indexes) of
shape (n, features), (n, C, H, W) or (n, H, W); map-style torch ``Dataset``s whose items are ``x``
or ``(x, y)`` (tensors or arrays; ``y`` is ignored at scoring, and ``fit(dataset)`` with ``y=None``
takes the labels from the items); and ``DataLoader``s, iterated as they are (for scoring they must
not shuffle or drop items; for ``fit`` their batches must be ``(x, y)``, and the loader's own order
and batch size replace pickwise's shuffling). Datasets and loaders are read a chunk at a time, so
memory stays bounded by the chunk (scoring) or the labelled batch (training); arrays given to
``fit`` are converted whole. uint8 inputs are scaled by 1/255. ``input_shape`` reshapes each row
(e.g. flat 784-value rows to (1, 28, 28)); without it, 3-D input to a module containing
``nn.Conv2d`` gets a channel axis: (n, 1, H, W). Rows that do not fit the module (flat rows to a
convolution, an ``input_shape`` of another size) raise a ValueError naming ``input_shape`` and both
shapes before training starts. Functional dropout (``F.dropout`` called inside ``forward``) is
invisible to the MC hooks: use modules.
"""

from __future__ import annotations

import copy
import math
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

from .._validation import _show, check_positive_int
from ..utils import chunks, derive_seed, n_items
from ._checks import check_labels, check_n_classes, check_real, check_rows, check_seed
from ._modules import (
    MaskSource,
    check_head_is_output,
    dropout_layers,
    entropy,
    fetch_rows,
    find_head,
    is_dataset,
    is_loader,
    loader_batches,
    n_rows,
    scoring_loader_size,
    seeded_global_rng,
    softmax64,
    to_numpy,
)

# Sub-seeds of the ``fit`` seed; distinct keys keep the streams independent.
_INIT, _SHUFFLE, _SPLIT, _UNLABELED, _TRAIN_FN = 0, 1, 2, 3, 4

ScoreFn = Callable[[np.ndarray], np.ndarray]
#: ``train_fn(module, batches, *, seed, device) -> None``: trains ``module`` in place (see the module docstring)
TrainFn = Callable[..., Any]
#: ``loss(logits of shape (m, n_classes), y of shape (m,)) -> scalar tensor``
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``optimizer(params) -> torch.optim.Optimizer``, e.g. ``lambda p: torch.optim.SGD(p, lr=0.1)``
OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
#: ``augment(x batch of shape (m, ...)) -> tensor of the same kind``; training batches only
Augment = Callable[[torch.Tensor], torch.Tensor]


class TorchClassifier:
    """A PyTorch classifier, trained by pickwise's loop (Adam + cross-entropy unless told otherwise) or your own.

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
    train_fn : callable or None
        ``train_fn(module, batches, *, seed, device)``: your own training loop instead of pickwise's
        (see the module docstring); cannot be combined with ``loss``, ``optimizer``,
        ``early_stopping`` or ``stop_at_train_accuracy``.
    loss : callable or None
        ``loss(logits, y) -> scalar tensor`` instead of cross-entropy.
    optimizer : callable or None
        ``optimizer(params) -> torch.optim.Optimizer`` instead of Adam(lr, weight_decay).
    augment : callable or None
        Applied to every labelled training batch tensor (after ``input_shape``), never at scoring.
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
        train_fn: TrainFn | None = None,
        loss: LossFn | None = None,
        optimizer: OptimizerFactory | None = None,
        augment: Augment | None = None,
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
        self.train_fn = train_fn
        self.loss = loss
        self.optimizer = optimizer
        self.augment = augment

    def __repr__(self) -> str:
        return f"TorchClassifier({type(self.module).__name__}, n_classes={self.n_classes})"

    # ------------------------------------------------------------------ training

    def fit(self, x: Any, y: Any = None, *, seed: int, unlabeled_x: Any = None) -> TorchClassifier:
        """Train on ``x`` (n rows, a Dataset or a DataLoader) with labels ``y`` of shape (n,); returns ``self``.

        ``y=None`` takes the labels from a Dataset of ``(x, y)`` items or from a DataLoader's
        ``(x, y)`` batches. ``unlabeled_x`` (rows of the same shape, an array or a Dataset) feeds
        the entropy term when ``entropy_weight > 0`` and is ignored otherwise.
        """
        self._check_params()
        seed = check_seed(seed)
        lightning = self.train_fn is None and callable(getattr(self.module, "training_step", None))
        if self.entropy_weight > 0 and is_loader(unlabeled_x):
            raise ValueError("unlabeled_x must be an array or a map-style Dataset; got a DataLoader")
        use_unl = self.entropy_weight > 0 and unlabeled_x is not None and n_items(unlabeled_x) > 0
        if use_unl and self.train_fn is not None:
            raise ValueError(
                "entropy_weight > 0 with unlabeled_x needs pickwise's training loop; train_fn owns its objective"
            )
        if self.early_stopping and is_loader(x):
            raise ValueError("early_stopping holds out rows by index; pass the Dataset instead of a DataLoader")

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

        # everything below may draw from torch's global RNG (a shuffling DataLoader does): keep it seeded
        with seeded_global_rng(derive_seed(seed, _INIT), self.device):
            data = self._labelled(x, y)
            if self.early_stopping and data.n < 2:
                raise ValueError(f"early_stopping needs at least 2 labelled rows to hold some out; got {data.n}")
            self.row_shape_ = data.row_shape
            self._check_input_shape(data.row_shape)
            if self.retrain:
                for m in net.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
            sample = data.sample()
            try:
                check_head_is_output(net, self._head_of(net), sample)
            except RuntimeError as err:  # the module's own (often cryptic) shape error
                raise ValueError(self._shape_error(data.row_shape, tuple(sample.shape), err)) from err
            if self.train_fn is not None:
                batches = _TrainBatches(self, data, torch.Generator().manual_seed(derive_seed(seed, _SHUFFLE)))
                net.train()
                self.train_fn(net, batches, seed=derive_seed(seed, _TRAIN_FN), device=torch.device(self.device))
                self.n_epochs_, self.n_steps_ = batches.n_epochs, batches.n_batches
            else:
                unl = None
                if use_unl:
                    unl = _UnlabeledBatches(
                        self, unlabeled_x, torch.Generator().manual_seed(derive_seed(seed, _UNLABELED))
                    )
                self._train(net, data, seed, unl, lightning)
        net.eval()
        self.module_ = net
        return self

    def _labelled(self, x: Any, y: Any) -> _Labelled:
        """The labelled training data, checked: in memory for arrays, read lazily for datasets and loaders."""
        if is_loader(x):
            if y is not None:
                raise ValueError("fit takes the labels from the DataLoader's (x, y) batches; pass y=None")
            return _LoaderRows(self, x)
        if is_dataset(x):
            return _DatasetRows.checked(self, x, y)
        if y is None:
            raise ValueError(
                f"fit needs labels y for {type(x).__name__} input "
                "(only a Dataset or DataLoader of (x, y) carries its own)"
            )
        n = n_items(x)
        if n == 0:
            raise ValueError("fit needs at least one labelled row; got 0")
        rows = check_rows("x", x if isinstance(x, np.ndarray) else fetch_rows(x, np.arange(n))[0])
        labels = check_labels(y, self.n_classes, n)
        self._check_input_shape(tuple(rows.shape[1:]))
        return _TensorRows(self._tensor(rows), torch.as_tensor(labels, device=self.device), tuple(rows.shape[1:]))

    def _train(self, net: nn.Module, data: _Labelled, seed: int, unl: Any, lightning: bool) -> None:
        """pickwise's loop: mini-batches, optimiser steps, early stopping and the stopping rules."""
        val = None
        if self.early_stopping:
            n = data.n
            n_val = min(n - 1, max(1, int(round(self.val_fraction * n))))
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, _SPLIT)))
            val, data = data.subset(perm[:n_val].to(self.device)), data.subset(perm[n_val:].to(self.device))
        batches = _TrainBatches(self, data, torch.Generator().manual_seed(derive_seed(seed, _SHUFFLE)))
        opt, scheduler = self._optimizer_for(net, lightning)
        loss_fn = self.loss if self.loss is not None else F.cross_entropy
        max_steps = self.max_steps if self.max_steps is not None else float("inf")
        steps, epoch, best_loss, best_state, stale = 0, 0, float("inf"), None, 0
        while epoch < self.epochs and steps < max_steps:
            net.train()
            correct = seen = 0
            for i, (xb, yb) in enumerate(batches):
                if lightning:
                    logits, loss = None, _step_loss(net.training_step((xb, yb), i))
                else:
                    logits = net(xb)
                    loss = loss_fn(logits, yb)
                if steps == 0:
                    _check_loss(loss, "training_step" if lightning else "loss")
                if unl is not None:
                    loss = loss + self.entropy_weight * entropy(net(unl.next())).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                if logits is not None:
                    correct += int((logits.argmax(1) == yb).sum())
                    seen += len(yb)
                if steps >= max_steps:
                    break
            epoch += 1
            if scheduler is not None:
                scheduler.step()
            if val is not None:
                net.eval()
                with torch.no_grad():
                    val_loss = val.loss(net, loss_fn, self.chunk_size)
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

    def _optimizer_for(self, net: nn.Module, lightning: bool) -> tuple[torch.optim.Optimizer, Any]:
        """(optimiser, per-epoch scheduler or None): ``optimizer`` > ``configure_optimizers`` > Adam."""
        if self.optimizer is not None:
            opt, scheduler, source = self.optimizer(net.parameters()), None, "optimizer(params)"
        elif lightning and callable(getattr(net, "configure_optimizers", None)):
            opt, scheduler = _from_configure_optimizers(net.configure_optimizers())
            source = "configure_optimizers()"
        else:
            return torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay), None
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValueError(f"{source} must return a torch.optim.Optimizer; got {_show(opt)}")
        return opt, scheduler

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, x: Any, *, chunk_size: int | None = None) -> np.ndarray:
        """Class probabilities, float64 ndarray of shape (n, n_classes)."""
        net = self._fitted()
        out = np.empty((n_rows(x), self.n_classes))
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
        n = n_rows(x)
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
        out = np.empty((n_draws, n_rows(x), self.n_classes))
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
        n = n_rows(x)
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

    def _mc_chunks(
        self, x: Any, n_draws: int, seed: int, chunk_size: int | None, *, batched_head: bool = True
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield (slice, MC probabilities of shape (n_draws, m, n_classes)) chunk by chunk.

        ``batched_head=False`` runs the draws one by one even where one product would do (the plain
        reference of the batched path).
        """
        net = self._fitted()
        split = self._split_point(net)
        batched = self._dropout_then_head(net, split) if batched_head else None
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
                    if batched is not None and feats.ndim == 2:
                        yield sl, to_numpy(_masked_heads(*batched, feats, masks, n_draws))
                        continue
                    p = torch.empty((n_draws, len(xb), self.n_classes), dtype=torch.float64, device=xb.device)
                    for t in range(n_draws):
                        masks.start_draw(t)
                        p[t] = softmax64(body(feats))
                    yield sl, to_numpy(p)
        finally:
            for handle in handles:
                handle.remove()

    def _dropout_then_head(self, net: nn.Module, split: int | None) -> tuple[nn.Dropout, nn.Linear] | None:
        """(dropout, head) when the part after ``split`` is exactly an ``nn.Dropout`` and then the plain
        linear head, masks are consistent and no hook watches the head: the draws can be one product."""
        if split is None or not self.consistent_masks or len(net) - split != 2:
            return None
        drop, head = net[split], net[split + 1]
        plain_head = type(head) is nn.Linear and head is self._head_of(net)
        hooked = bool(head._forward_hooks or head._forward_pre_hooks)
        if type(drop) is not nn.Dropout or not plain_head or hooked or self._dropouts != [drop]:
            return None
        return drop, head

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
        for name in ("train_fn", "loss", "optimizer", "augment"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{name} must be callable or None; got {_show(value)}")
        if self.train_fn is not None:
            clash = [name for name in ("loss", "optimizer") if getattr(self, name) is not None]
            clash += ["early_stopping"] if self.early_stopping else []
            clash += ["stop_at_train_accuracy"] if self.stop_at_train_accuracy is not None else []
            if clash:
                raise ValueError(
                    f"train_fn runs your own training loop, so {', '.join(clash)} would be ignored; "
                    "leave them unset (or drop train_fn to use pickwise's loop)"
                )
        elif self.stop_at_train_accuracy is not None and callable(getattr(self.module, "training_step", None)):
            raise ValueError(
                "stop_at_train_accuracy needs the logits, which training_step does not return; leave it unset"
            )
        if self.input_shape is not None:
            shape = self.input_shape
            if not isinstance(shape, (tuple, list)) or not shape or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape
            ):
                raise ValueError(
                    f"input_shape must be a tuple of positive ints such as (1, 28, 28); got {_show(shape)}"
                )

    def _fitted(self) -> nn.Module:
        if not hasattr(self, "module_"):
            raise RuntimeError("this TorchClassifier is not fitted yet; call fit(x, y, seed=...) first")
        self.module_.eval()
        return self.module_

    def _head_of(self, net: nn.Module) -> nn.Linear:
        return net.get_submodule(self.head_name_)

    def _check_input_shape(self, row_shape: tuple[int, ...]) -> None:
        """Raise when ``input_shape`` cannot reshape a row of ``row_shape``."""
        if self.input_shape is None:
            return
        want, have = math.prod(self.input_shape), math.prod(row_shape)
        if want != have:
            raise ValueError(
                f"input_shape={tuple(self.input_shape)} ({want} values) does not fit rows of shape "
                f"{tuple(row_shape)} ({have} values); input_shape must hold exactly one row"
            )

    def _shape_error(self, row_shape: tuple[int, ...], batch_shape: tuple[int, ...], err: Exception) -> str:
        """The message for a module that failed on its first batch, naming ``input_shape`` and both shapes."""
        name = type(self.module).__name__
        convs = [m for m in self.module.modules() if isinstance(m, nn.Conv2d)]
        if self.input_shape is None and len(row_shape) == 1 and convs:
            c = convs[0].in_channels
            side = math.isqrt(row_shape[0] // c) if row_shape[0] % c == 0 else 0
            hint = f"({c}, {side}, {side})" if side * side * c == row_shape[0] else f"({c}, height, width)"
            return (
                f"{name} has nn.Conv2d layers, which need rows of shape (channels, height, width), but got flat "
                f"rows of shape {tuple(row_shape)}; pass input_shape={hint} to reshape them (the module said: {err})"
            )
        return (
            f"{name} failed on a batch of shape {batch_shape} (rows of shape {tuple(row_shape)}, "
            f"input_shape={None if self.input_shape is None else tuple(self.input_shape)}); if the module expects "
            f"rows of another shape, pass input_shape=(...) with that shape (the module said: {err})"
        )

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
        """(slice, input tensor) per chunk, in order; a DataLoader's batches are its chunks."""
        size = check_positive_int("chunk_size", self.chunk_size if chunk_size is None else chunk_size)
        if is_loader(x):
            scoring_loader_size(x)  # refuses shuffling / dropping loaders
            start = 0
            for rows, _ in loader_batches(x):
                sl = slice(start, start + len(rows))
                start = sl.stop
                yield sl, self._tensor(check_rows("x", rows, offset=sl.start, row_shape=self.row_shape_))
            return
        for sl in chunks(n_items(x), size):
            rows = x[sl] if isinstance(x, np.ndarray) else fetch_rows(x, np.arange(sl.start, sl.stop))[0]
            yield sl, self._tensor(check_rows("x", rows, offset=sl.start, row_shape=self.row_shape_))


#: columns (draws × classes) of one product of the batched head: each product has the same shape
#: whatever ``n_draws`` is, so draw t's numbers do not depend on how many draws were asked for
_HEAD_COLUMNS = 100


def _masked_heads(drop: nn.Dropout, head: nn.Linear, h: torch.Tensor, masks: MaskSource, n_draws: int) -> torch.Tensor:
    """MC probabilities (n_draws, m, n_classes), float64, of ``head(dropout(h))`` for every draw at once.

    Draw ``t``'s mask is the one the per-draw path applies (``masks`` after ``start_draw(t)``, layer 0,
    first call), of shape (1, d) — consistent masks. ``(h ⊙ m_t) Wᵀ + b = h (W ⊙ m_t)ᵀ + b``: the
    masked heads are stacked, ``ceil(100 / K)`` draws to a product of shape (m, d) × (d, ≥ 100); the
    last group is padded with empty draws, so every product has one shape and a draw's numbers do
    not depend on ``n_draws``.
    """
    k, d = head.weight.shape
    group = -(-_HEAD_COLUMNS // k)  # draws per product: a function of K alone, never of n_draws
    n_groups = -(-n_draws // group)
    m = torch.zeros((n_groups * group, d), dtype=h.dtype, device=h.device)  # padded with empty draws
    for t in range(n_draws):
        masks.start_draw(t)
        m[t] = masks(0, drop, h)[0]
    w = (head.weight.unsqueeze(0) * m.unsqueeze(1)).reshape(n_groups, group * k, d)
    b = None if head.bias is None else head.bias.repeat(group)
    z = torch.cat([F.linear(h, w[g], b) for g in range(n_groups)], dim=1)  # (m, n_groups · group · K)
    z = z.reshape(h.shape[0], n_groups * group, k)[:, :n_draws].transpose(0, 1)
    return softmax64(z).contiguous()


def _batches(n: int, size: int) -> list[slice]:
    """Mini-batch slices of ``range(n)``; a trailing batch of one joins the previous one (batchnorm
    cannot train on a single row)."""
    out = list(chunks(n, size))
    if len(out) > 1 and out[-1].stop - out[-1].start == 1:
        out[-2:] = [slice(out[-2].start, n)]
    return out


def _step_loss(out: Any) -> Any:
    """The loss a Lightning-style ``training_step`` returned (a tensor, or a dict holding ``"loss"``)."""
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError(f"training_step returned a dict without 'loss'; keys {sorted(out)}")
        return out["loss"]
    return out


def _check_loss(loss: Any, source: str) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        what = f"tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else _show(loss)
        raise ValueError(f"{source} must return a scalar tensor that requires grad; got {what}")


def _from_configure_optimizers(conf: Any) -> tuple[Any, Any]:
    """(optimiser, scheduler or None) from what a Lightning-style ``configure_optimizers`` returns:
    an optimiser, a dict with ``"optimizer"`` (and ``"lr_scheduler"``), or ``([optimiser], [scheduler])``."""
    if isinstance(conf, Mapping) and "optimizer" in conf:
        sched = conf.get("lr_scheduler")
        return conf["optimizer"], (sched.get("scheduler") if isinstance(sched, Mapping) else sched)
    if isinstance(conf, (list, tuple)):
        opts, scheds = (conf[0], conf[1]) if len(conf) == 2 and isinstance(conf[0], (list, tuple)) else (conf, ())
        if len(opts) != 1 or len(scheds) > 1:
            raise ValueError(
                f"configure_optimizers must give one optimizer (and at most one scheduler); got {_show(conf)}"
            )
        sched = scheds[0] if scheds else None
        return opts[0], (sched.get("scheduler") if isinstance(sched, Mapping) else sched)
    return conf, None


class _TensorRows:
    """Labelled rows held as tensors (array input to ``fit``): batches are plain indexing."""

    def __init__(self, xt: torch.Tensor, yt: torch.Tensor, row_shape: tuple[int, ...]) -> None:
        self.xt, self.yt, self.row_shape, self.n = xt, yt, row_shape, xt.shape[0]

    def sample(self) -> torch.Tensor:
        """A few prepared rows, for checking the module's output."""
        return self.xt[:4]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.xt[idx], self.yt[idx]

    def subset(self, idx: torch.Tensor) -> _TensorRows:
        return _TensorRows(self.xt[idx], self.yt[idx], self.row_shape)

    def loss(self, net: nn.Module, loss_fn: LossFn, chunk_size: int) -> float:
        return float(loss_fn(net(self.xt), self.yt))


class _DatasetRows:
    """Labelled items of a map-style Dataset at ``positions``, read a batch at a time."""

    def __init__(self, clf: TorchClassifier, ds: Any, positions: np.ndarray, labels: torch.Tensor,
                 row_shape: tuple[int, ...], sample_rows: np.ndarray) -> None:
        self.clf, self.ds, self.positions, self.labels = clf, ds, positions, labels
        self.row_shape, self.sample_rows, self.n = row_shape, sample_rows, len(positions)

    def sample(self) -> torch.Tensor:
        return self.clf._tensor(self.sample_rows)

    @classmethod
    def checked(cls, clf: TorchClassifier, ds: Any, y: Any) -> _DatasetRows:
        """Check every row (finite, one shape) and gather the labels, one chunk of items at a time."""
        n = len(ds)
        if n == 0:
            raise ValueError("fit needs at least one labelled row; got an empty Dataset")
        row_shape, sample, found = None, None, []
        for sl in chunks(n, clf.chunk_size):
            rows, labels = fetch_rows(ds, np.arange(sl.start, sl.stop))
            rows = check_rows("x", rows, offset=sl.start, row_shape=row_shape)
            if row_shape is None:
                row_shape, sample = tuple(rows.shape[1:]), rows[:4]
            if y is None and labels is None:
                raise ValueError(
                    f"fit got y=None but items {sl.start}..{sl.stop - 1} of the {type(ds).__name__} include one "
                    "without a label; pass y, or a Dataset whose items are (x, y)"
                )
            found.append(labels)
        labels = check_labels(np.concatenate(found) if y is None else y, clf.n_classes, n)
        return cls(clf, ds, np.arange(n), torch.as_tensor(labels, device=clf.device), row_shape, sample)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, _ = fetch_rows(self.ds, self.positions[idx.cpu().numpy()])
        return self.clf._tensor(np.asarray(rows)), self.labels[idx]

    def subset(self, idx: torch.Tensor) -> _DatasetRows:
        keep = idx.cpu().numpy()
        return _DatasetRows(self.clf, self.ds, self.positions[keep], self.labels[idx], self.row_shape, self.sample_rows)

    def loss(self, net: nn.Module, loss_fn: LossFn, chunk_size: int) -> float:
        """Mean of ``loss_fn`` over the items, a chunk at a time (weighted by chunk size)."""
        total = 0.0
        for sl in chunks(self.n, chunk_size):
            xb, yb = self.batch(torch.arange(sl.start, sl.stop, device=self.labels.device))
            total += float(loss_fn(net(xb), yb)) * (sl.stop - sl.start)
        return total / self.n


class _LoaderRows:
    """A user's DataLoader of ``(x, y)`` batches, iterated as it is once per epoch; each batch is checked."""

    def __init__(self, clf: TorchClassifier, loader: Any) -> None:
        self.clf, self.loader = clf, loader
        first = next(iter(self.batches()), None)
        if first is None:
            raise ValueError("fit got a DataLoader that yields no batches")
        self.row_shape, self.sample_rows = tuple(first[0].shape[1:]), first[0][:4]

    def sample(self) -> torch.Tensor:
        return self.clf._tensor(self.sample_rows)

    def batches(self, row_shape: tuple[int, ...] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, (rows, labels) in enumerate(loader_batches(self.loader)):
            if labels is None:
                raise ValueError(f"fit with a DataLoader needs batches of (x, y); batch {i} holds no labels")
            rows = check_rows(f"x (batch {i} of the DataLoader)", rows, row_shape=row_shape)
            yield rows, check_labels(labels, self.clf.n_classes, len(rows))

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.clf.device
        for rows, labels in self.batches(self.row_shape):
            yield self.clf._tensor(rows), torch.as_tensor(labels, device=device)


class _TrainBatches:
    """The labelled training batches: re-iterable, one pass per epoch, yielding ``(x, y)`` tensors.

    Array and Dataset data is shuffled by ``generator`` (batches of ``batch_size``; a trailing batch
    of one joins the previous one); a DataLoader keeps its own order and batch size. ``augment``
    applies here, so it touches training batches only. Counts passes and batches for ``n_epochs_``
    / ``n_steps_``.
    """

    def __init__(self, clf: TorchClassifier, data: _Labelled, generator: torch.Generator) -> None:
        self.clf, self.data, self.generator = clf, data, generator
        self.n_epochs = self.n_batches = 0

    def __len__(self) -> int:
        if isinstance(self.data, _LoaderRows):
            return len(self.data.loader)
        return len(_batches(self.data.n, self.clf.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.n_epochs += 1
        augment = self.clf.augment
        for xb, yb in self._epoch():
            if augment is not None:
                xb = augment(xb)
                if not isinstance(xb, torch.Tensor):
                    raise ValueError(f"augment must return a tensor; got {_show(xb)}")
            self.n_batches += 1
            yield xb, yb

    def _epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if isinstance(self.data, _LoaderRows):
            yield from self.data.epoch()
            return
        n = self.data.n
        perm = torch.randperm(n, generator=self.generator).to(self.clf.device)
        for sl in _batches(n, self.clf.batch_size):
            yield self.data.batch(perm[sl])


_Labelled = _TensorRows | _DatasetRows | _LoaderRows


class _UnlabeledBatches:
    """Random mini-batches (with replacement) of unlabelled rows, drawn from their own generator."""

    def __init__(self, clf: TorchClassifier, x: Any, generator: torch.Generator) -> None:
        self.clf, self.x, self.n, self.generator = clf, x, n_items(x), generator
        self.size = min(clf.batch_size, self.n)

    def next(self) -> torch.Tensor:
        idx = torch.randint(self.n, (self.size,), generator=self.generator).numpy()
        rows = fetch_rows(self.x, idx)[0]
        return self.clf._tensor(check_rows("unlabeled_x", rows, row_shape=self.clf.row_shape_))
