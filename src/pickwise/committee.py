"""Query by committee (Seung, Opper & Sompolinsky, COLT 1992; Settles' survey §3.2).

:class:`Committee` trains C members from a factory, each with its own derived seed and
(optionally) its own bootstrap resample, and exposes every member's probabilities.
:class:`QBC` ranks the pool by disagreement among them: vote entropy or the mean KL divergence
of each member from the consensus (:mod:`pickwise.scores`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ._validation import check_choice, check_mc_layout, check_positive_int, n_rows
from .pool import Pool
from .scores import COMMITTEE_SCORES, ScoreFn
from .strategies._base import DEFAULT_CHUNK, map_chunks, score_name, select_top_scores
from .utils import derive_rng, derive_seed, n_items, take

__all__ = ["CommitteeModel", "Committee", "QBC"]


@runtime_checkable
class CommitteeModel(Protocol):
    """A model made of several members that each predict class probabilities."""

    def predict_proba_members(self, x: Any) -> np.ndarray:
        """ndarray of shape (n_members, n, n_classes)."""


class Committee:
    """C members built by ``factory()`` and trained independently; a Classifier and a CommitteeModel.

    ``fit(x, y, seed=s)`` builds fresh members (one extra ``factory()`` call at construction
    answers ``n_classes`` before the first fit) and trains member c with seed
    ``derive_seed(s, c)``; with ``bootstrap=True`` on a resample of the labelled rows drawn with
    replacement from ``derive_rng(s, c, 1)``. ``predict_proba`` is the members' mean.

    Parameters
    ----------
    factory : callable returning an unfitted Classifier
    n_members : int
        C ≥ 2.
    bootstrap : bool
        Query by bagging (Abe & Mamitsuka, ICML 1998) when True.
    """

    def __init__(self, factory: Callable[[], Any], n_members: int = 5, *, bootstrap: bool = False):
        if not callable(factory):
            raise ValueError(f"factory must be callable; got {factory!r}")
        n_members = check_positive_int("n_members", n_members)
        if n_members < 2:
            raise ValueError(f"n_members must be >= 2 for a committee; got {n_members}")
        if not isinstance(bootstrap, (bool, np.bool_)):
            raise ValueError(f"bootstrap must be True or False; got {bootstrap!r}")
        self.factory = factory
        self.n_members = n_members
        self.bootstrap = bool(bootstrap)
        self._probe = factory()  # answers n_classes before the first fit
        self.members: list[Any] = []

    @property
    def n_classes(self) -> int:
        return int((self.members[0] if self.members else self._probe).n_classes)

    def fit(self, x: Any, y: np.ndarray, *, seed: int) -> Committee:
        y = np.asarray(y)
        n = n_items(x)
        members = []
        for c in range(self.n_members):
            member = self.factory()
            if self.bootstrap:
                rows = derive_rng(seed, c, 1).integers(n, size=n)
                member.fit(take(x, rows), y[rows], seed=derive_seed(seed, c))
            else:
                member.fit(x, y, seed=derive_seed(seed, c))
            members.append(member)
        self.members = members
        return self

    def predict_proba_members(self, x: Any) -> np.ndarray:
        if not self.members:
            raise ValueError("the committee is not fitted yet; call fit first")
        return np.stack([np.asarray(m.predict_proba(x), dtype=np.float64) for m in self.members])

    def predict_proba(self, x: Any) -> np.ndarray:
        return self.predict_proba_members(x).mean(axis=0)

    def __repr__(self) -> str:
        return f"Committee(n_members={self.n_members}, bootstrap={self.bootstrap})"


@dataclass(frozen=True, kw_only=True)
class QBC:
    """Top-k by committee disagreement (Seung, Opper & Sompolinsky, "Query by Committee", COLT 1992;
    KL-to-consensus: McCallum & Nigam, ICML 1998).

    ``score``: "vote_entropy", "kl_to_consensus" or a function over members' probabilities
    (n_members, n, K). Needs a model with ``predict_proba_members`` (e.g. :class:`Committee`).
    """

    score: str | ScoreFn = "vote_entropy"
    chunk_size: int = DEFAULT_CHUNK
    needs: ClassVar[tuple[type, ...]] = (CommitteeModel,)

    def __post_init__(self) -> None:
        if isinstance(self.score, str):
            check_choice("score", self.score, COMMITTEE_SCORES)
        elif not callable(self.score):
            raise ValueError(f"score must be a name or a function; got {self.score!r}")
        check_positive_int("chunk_size", self.chunk_size)

    def scores(self, model: Any, x: Any, indices: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Disagreement of shape (len(indices),); deterministic (``rng`` is accepted for a uniform interface)."""
        fn = COMMITTEE_SCORES[self.score] if isinstance(self.score, str) else self.score

        def one(xc: Any) -> np.ndarray:
            members = np.asarray(model.predict_proba_members(xc))
            check_mc_layout("predict_proba_members output", members.shape, n_items=n_rows(xc),
                            axes="n_members, n, n_classes")
            return fn(members)

        return map_chunks(one, x, indices, self.chunk_size)

    def select(self, model: Any, x: Any, pool: Pool, k: int, *, rng: np.random.Generator) -> np.ndarray:
        return select_top_scores(self, model, x, pool, k, rng=rng)

    @property
    def name(self) -> str:
        return f"qbc_{score_name(self.score)}"
