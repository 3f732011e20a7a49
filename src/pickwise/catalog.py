"""The one table where names become objects: used by the CLI and the benchmark configs.

Library code never looks names up here; it takes objects. Each entry builds a fresh object from
keyword options, so a config can say ``strategy = "bald"`` and ``n_draws = 10``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ._validation import check_choice

__all__ = [
    "COMMITTEE_STRATEGIES", "MC_STRATEGIES", "MODEL_NAMES", "STRATEGY_TABLE", "STREAM_ALIASES", "TEXT_MODELS",
    "TRAINER_NAMES", "cnn_input_shape", "make_strategy", "make_stream_selector", "make_trainer", "model_factory", "strategy_name",
    "strategy_names", "stream_selector_names", "wrap_subsample",
]


def _strategies() -> dict[str, Callable[..., Any]]:
    from . import strategies as s

    table: dict[str, Callable[..., Any]] = {
        "random": lambda **kw: s.Random(),
        "least_confidence": lambda **kw: s.Uncertainty(score="least_confidence", **_pick(kw, "chunk_size")),
        "margin": lambda **kw: s.Uncertainty(score="margin", **_pick(kw, "chunk_size")),
        "entropy": lambda **kw: s.Uncertainty(score="entropy", **_pick(kw, "chunk_size")),
    }
    for score in ("bald", "variation_ratio", "mean_std", "max_entropy"):
        table[score] = lambda score=score, **kw: s.MCDropout(score=score, **_pick(kw, "n_draws", "chunk_size"))
    table.update(_batch_strategies())
    return table


def _batch_strategies() -> dict[str, Callable[..., Any]]:
    """BADGE, core-set, DBAL, BatchBALD, BAIT, EGL, information density, QBC, stochastic, ALBL."""
    from . import strategies as s

    chunk = ("chunk_size",)
    return {
        "badge": lambda **kw: s.BADGE(**_pick(kw, *chunk)),
        "coreset": lambda **kw: s.CoreSet(**_pick(kw, *chunk)),
        "dbal": lambda **kw: s.DBAL(**_pick(kw, "beta", *chunk)),
        # BatchBALD: the class's own defaults (whole pool, lazy greedy; see pickwise.select.batchbald)
        "batchbald": lambda **kw: s.BatchBALD(
            **_pick(kw, "n_draws", "max_candidates", "max_configs", "n_samples", *chunk),
        ),
        "bait": lambda **kw: s.BAIT(**_pick(kw, "lam", *chunk)),
        "egl": lambda **kw: s.EGL(**_pick(kw, *chunk)),
        "density": lambda **kw: s.InformationDensity(**_pick(kw, "beta", *chunk)),
        "qbc": lambda **kw: s.QBC(score=kw.get("score", "vote_entropy")),
        "qbc_kl": lambda **kw: s.QBC(score="kl_to_consensus"),
        "stochastic_entropy": lambda **kw: s.StochasticBatch(s.Uncertainty(score="entropy"), mode="power"),
        "stochastic_bald": lambda **kw: s.StochasticBatch(
            s.MCDropout(score="bald", **_pick(kw, "n_draws")), mode="power"
        ),
        # arms as a diverse mix: the baseline, an uncertainty score, and two diversity methods
        "albl": lambda **kw: s.ALBL([s.Random(), s.Uncertainty(score="margin"), s.CoreSet(), s.BADGE()]),
        # cold start (few or no labels): typical / covering points of the embedding
        "typiclust": lambda **kw: s.TypiClust(**_pick(kw, *chunk)),
        "probcover": lambda **kw: s.ProbCover(**_pick(kw, "delta", *chunk)),
        # very large batches: HAC clusters once, margin-ranked round robin
        "cluster_margin": lambda **kw: s.ClusterMargin(
            **_pick(kw, "margin_ratio", "epsilon", "n_clusters", "max_cluster_items", *chunk)
        ),
        # target-aware BALD; BatchEPIG's greedy costs O(candidates · configurations · K · draws) per pick,
        # so the catalog caps its candidates and configurations (BatchEPIG's own defaults are larger)
        "epig": lambda **kw: s.EPIG(**_pick(kw, "n_draws", "n_targets", *chunk)),
        "batch_epig": lambda **kw: s.BatchEPIG(
            **_pick(kw, "n_draws", "n_targets", *chunk),
            max_candidates=kw.get("max_candidates", 200),
            max_configs=kw.get("max_configs", 1_000),
            n_samples=kw.get("n_samples", 1_000),
        ),
    }


def _pick(kw: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: kw[n] for n in names if kw.get(n) is not None}


#: strategies that need MC-dropout draws (the model must have dropout)
MC_STRATEGIES = ("bald", "variation_ratio", "mean_std", "max_entropy", "batchbald", "stochastic_bald", "epig", "batch_epig")
#: strategies that need a committee of models (the CLI builds one from the model of choice)
COMMITTEE_STRATEGIES = ("qbc", "qbc_kl")


#: Catalog name → (the class, exported from ``pickwise`` under that name, and the options that
#: tell the names of one class apart). ``make_strategy(name)`` builds the object;
#: ``strategy_name(obj)`` reads the name back. ``inner`` names the wrapped strategy by its own
#: catalog name; ``score`` compares by score name (a score function counts by its ``__name__``).
STRATEGY_TABLE: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType({
    "random": ("Random", {}),
    "least_confidence": ("Uncertainty", {"score": "least_confidence"}),
    "margin": ("Uncertainty", {"score": "margin"}),
    "entropy": ("Uncertainty", {"score": "entropy"}),
    "bald": ("MCDropout", {"score": "bald"}),
    "variation_ratio": ("MCDropout", {"score": "variation_ratio"}),
    "mean_std": ("MCDropout", {"score": "mean_std"}),
    "max_entropy": ("MCDropout", {"score": "max_entropy"}),
    "badge": ("BADGE", {}),
    "coreset": ("CoreSet", {}),
    "dbal": ("DBAL", {}),
    "batchbald": ("BatchBALD", {}),
    "bait": ("BAIT", {}),
    "egl": ("EGL", {}),
    "density": ("InformationDensity", {}),
    "qbc": ("QBC", {"score": "vote_entropy"}),
    "qbc_kl": ("QBC", {"score": "kl_to_consensus"}),
    "stochastic_entropy": ("StochasticBatch", {"inner": "entropy", "mode": "power"}),
    "stochastic_bald": ("StochasticBatch", {"inner": "bald", "mode": "power"}),
    "albl": ("ALBL", {}),
    "typiclust": ("TypiClust", {}),
    "probcover": ("ProbCover", {}),
    "cluster_margin": ("ClusterMargin", {}),
    "epig": ("EPIG", {}),
    "batch_epig": ("BatchEPIG", {}),
})


def strategy_names() -> list[str]:
    """Every catalog strategy name, sorted."""
    return sorted(_strategies())


def make_strategy(name: str, **options: Any) -> Any:
    """A strategy by name; ``options`` are passed on where the strategy takes them.

    ``make_strategy("margin")`` is ``Uncertainty(score="margin")``, ``make_strategy("badge")`` is
    ``BADGE()``; :data:`STRATEGY_TABLE` lists every name with its class.
    """
    factory = check_choice("strategy", name, _strategies())
    return factory(**options)


def strategy_name(strategy: Any) -> str:
    """The catalog name of a strategy object: the inverse of :func:`make_strategy`.

    The name says which kind of strategy it is (class plus the identifying options of
    :data:`STRATEGY_TABLE`); other options (``n_draws``, ``chunk_size``, ...) do not change it, so
    ``strategy_name(BADGE(dtype="float32")) == "badge"``. Raises ``ValueError`` for an object no
    catalog name describes (a custom score function, a wrapper such as ``Subsample``).
    """
    from .strategies._base import score_name as score_key

    cls = type(strategy).__name__
    for name, (table_cls, fixed) in STRATEGY_TABLE.items():
        if table_cls != cls:
            continue
        ok = True
        for key, want in fixed.items():
            have = getattr(strategy, key, None)
            if key == "inner":
                try:
                    ok = strategy_name(have) == want
                except ValueError:
                    ok = False
            elif key == "score":
                ok = score_key(have) == want
            else:
                ok = have == want
            if not ok:
                break
        if ok:
            return name
    raise ValueError(f"no catalog name describes {strategy!r}; the names are {strategy_names()}")


MODEL_NAMES = ("mlp", "cnn", "logreg", "tfidf")
#: models that take raw text (a list of str) rather than numeric features
TEXT_MODELS = ("tfidf",)


def model_factory(
    name: str,
    *,
    n_features: int | None,
    n_classes: int,
    hidden: int = 128,
    dropout: float = 0.2,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-3,
    image_shape: tuple[int, ...] | None = None,
    entropy_weight: float = 0.0,
    committee: int | None = None,
) -> Callable[[], Any]:
    """A zero-argument factory of fresh models (the pool loop calls it every round).

    With ``committee=C`` each model is a :class:`pickwise.committee.Committee` of C independently
    seeded members (for QBC). ``cnn`` takes images: ``image_shape=(C, H, W)`` with H = W >= 4
    (rows of ``n_features = C·H·W`` values, flat or not, are reshaped to it), or, without it, flat
    rows of a square single-channel image (``n_features = s²``, s >= 4); anything else raises
    ``ValueError`` here, before any training. ``tfidf`` takes raw texts (``n_features`` is then unused):
    ``SklearnClassifier(make_pipeline(TfidfVectorizer(sublinear_tf=True),
    LogisticRegression(max_iter=1000)))``.
    """
    check_choice("model", name, MODEL_NAMES)
    if committee is not None:
        from .committee import Committee

        member = model_factory(
            name, n_features=n_features, n_classes=n_classes, hidden=hidden, dropout=dropout, epochs=epochs,
            batch_size=batch_size, lr=lr, image_shape=image_shape, entropy_weight=entropy_weight,
        )
        return lambda: Committee(member, n_members=committee)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        from .adapters.sklearn import SklearnClassifier

        return lambda: SklearnClassifier(LogisticRegression(max_iter=500), n_classes=n_classes)
    if name == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        from .adapters.sklearn import SklearnClassifier

        return lambda: SklearnClassifier(
            make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=1000)), n_classes=n_classes
        )
    if n_features is None:
        raise ValueError(f"model {name!r} needs numeric features (n_features); for raw text use model 'tfidf'")
    shape = cnn_input_shape(n_features, image_shape) if name == "cnn" else None

    from .adapters.nets import mlp, small_cnn
    from .adapters.torch import TorchClassifier

    def make() -> Any:
        if shape is None:
            module = mlp(n_features, n_classes, hidden=(hidden,), dropout=dropout)
        else:
            module = small_cnn(shape[0], n_classes, image_size=shape[1], dropout=max(dropout, 0.0))
        return TorchClassifier(
            module, n_classes=n_classes, epochs=epochs, batch_size=batch_size, lr=lr, entropy_weight=entropy_weight,
            input_shape=shape,
        )

    return make


def cnn_input_shape(n_features: int, image_shape: tuple[int, ...] | None = None) -> tuple[int, int, int]:
    """The (channels, side, side) that model ``cnn`` reshapes each row to; ``ValueError`` (naming
    what it got and what cnn needs) for anything but square images of side >= 4.

    ``image_shape``: (C, H, W) or (H, W) of the data's images; without it, ``n_features`` must be
    the pixels of a square single-channel image (s² values)."""
    need = "square images of side >= 4: (C, H, W) or (H, W) with H = W >= 4, or flat rows of s·s pixels"
    if image_shape is None:
        side = round(n_features**0.5)
        if side * side != n_features or side < 4:
            raise ValueError(f"model 'cnn' needs {need}; got rows of {n_features} features")
        return (1, side, side)
    dims = tuple(int(d) for d in image_shape)
    shape = (1, *dims) if len(dims) == 2 else dims
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 4 or shape[0] < 1:
        raise ValueError(f"model 'cnn' needs {need}; got images of shape {tuple(image_shape)}")
    if shape[0] * shape[1] * shape[2] != n_features:
        raise ValueError(f"image_shape {tuple(image_shape)} does not hold rows of {n_features} features")
    return shape


TRAINER_NAMES = ("plain", "ceal", "joint-entropy")


def make_trainer(name: str, **options: Any) -> Any:
    """``plain`` (labelled items only), ``ceal`` (pseudo-labels) or ``joint-entropy``."""
    from . import training

    check_choice("trainer", name, TRAINER_NAMES)
    if name == "plain":
        return None
    if name == "ceal":
        return training.PseudoLabel(**_pick(options, "delta0", "decay", "max_pseudo"))
    return training.JointEntropy(**_pick(options, "max_unlabeled"))


def wrap_subsample(strategy: Any, alpha: float | int | None, **options: Any) -> Any:
    """``strategy`` wrapped in compute-efficient candidate subsampling when ``alpha`` is given."""
    if alpha is None:
        return strategy
    from .wrappers import Subsample

    if isinstance(alpha, float) and alpha > 1 and alpha.is_integer():
        alpha = int(alpha)
    return Subsample(strategy, alpha=alpha, **_pick(options, "tau", "weighting", "prune_below"))


def _stream_selectors() -> dict[str, Callable[..., Any]]:
    from . import stream as s

    table: dict[str, Callable[..., Any]] = {
        "vessal": lambda **kw: s.VeSSAL(**_pick(kw, "q", "lam", "bias")),
        "vessal_pen": lambda **kw: s.VeSSAL(embedding="pen", **_pick(kw, "q", "lam", "bias")),
        "vessal_paced": lambda **kw: s.PacedVeSSAL(**_pick(kw, "q", "lam", "bias")),
        "vessal_paced_pen": lambda **kw: s.PacedVeSSAL(embedding="pen", **_pick(kw, "q", "lam", "bias")),
        "stream_uniform": lambda **kw: s.StreamUniform(**_pick(kw, "q")),
        "stream_uncertainty": lambda **kw: s.StreamUncertainty(**_pick(kw, "q", "window")),
    }
    for score in ("least_confidence", "margin", "entropy"):
        table[f"stream_{score}"] = lambda score=score, **kw: s.StreamUncertainty(
            score=score, **_pick(kw, "q", "window")
        )
    return table


#: the names the VeSSAL poster uses, as aliases
STREAM_ALIASES = {"pen": "vessal_pen", "unif": "stream_uniform", "conf": "stream_uncertainty"}


def stream_selector_names() -> list[str]:
    """Every stream selector name (without the poster's aliases), sorted."""
    return sorted(_stream_selectors())


def make_stream_selector(name: str, **options: Any) -> Any:
    """A stream selector by name (``vessal``, ``vessal_pen``, ``vessal_paced``, ``vessal_paced_pen``,
    ``stream_uniform``, ``stream_uncertainty``,
    ``stream_least_confidence``/``_margin``/``_entropy``; the poster's ``pen``, ``unif``, ``conf`` too).

    Options passed on where the selector takes them: ``q`` (a fixed query rate), ``lam``, ``bias``,
    ``window``.
    """
    factory = check_choice("stream selector", STREAM_ALIASES.get(name, name), _stream_selectors())
    return factory(**options)
