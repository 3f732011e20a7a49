"""The pool: which absolute indices of the dataset are labelled, with what, and in which round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_indices, check_int_values, check_positive_int

UNLABELED = -1


@dataclass(frozen=True, eq=False)
class Pool:
    """An immutable record of labels over a dataset of ``n`` items.

    Every index is an absolute row index into the full dataset. ``labels[i]`` is the class of item
    ``i`` or ``-1`` while unlabelled; ``labeled_at[i]`` is the round in which it was labelled
    (0 for the initial set) or ``-1``. ``label`` returns a new pool; nothing is ever mutated.

    Parameters
    ----------
    labels : ndarray of shape (n,), int64
    labeled_at : ndarray of shape (n,), int64
    n_classes : int or None
        When given, labels outside ``0 .. n_classes - 1`` are refused.

    Every check raises ``ValueError`` naming the offending value: labels and rounds must be whole
    numbers (2.0 is read as 2; 1.5, NaN, bool and str are refused), labels ≥ −1, rounds ≥ 0 for
    labelled items.
    """

    labels: np.ndarray
    labeled_at: np.ndarray
    n_classes: int | None = None
    _labeled: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        labels = check_int_values("labels", self.labels)
        labeled_at = check_int_values("labeled_at", self.labeled_at)
        if labels.ndim != 1 or labels.shape != labeled_at.shape:
            raise ValueError(
                f"labels and labeled_at must be 1-D of equal length; got {labels.shape} and {labeled_at.shape}"
            )
        if self.n_classes is not None:
            object.__setattr__(self, "n_classes", check_positive_int("n_classes", self.n_classes))
        if labels.size and labels.min() < UNLABELED:
            raise ValueError(f"label {int(labels.min())} is negative; labels are class ids 0 .. n_classes-1 "
                             f"or {UNLABELED} for unlabelled")
        if self.n_classes is not None and labels.size and labels.max() >= self.n_classes:
            raise ValueError(f"label {int(labels.max())} is outside the classes 0 .. {self.n_classes - 1}")
        if labeled_at.size and labeled_at.min() < UNLABELED:
            raise ValueError(f"labeled_at {int(labeled_at.min())} is negative; rounds are >= 0 ({UNLABELED} for "
                             "unlabelled)")
        if np.any((labels == UNLABELED) != (labeled_at == UNLABELED)):
            bad = int(np.flatnonzero((labels == UNLABELED) != (labeled_at == UNLABELED))[0])
            raise ValueError(f"labels and labeled_at disagree on which items are labelled (item {bad}: label "
                             f"{int(labels[bad])}, labeled_at {int(labeled_at[bad])})")
        labels.setflags(write=False)
        labeled_at.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "labeled_at", labeled_at)
        labeled = np.flatnonzero(labels != UNLABELED)
        labeled.setflags(write=False)
        object.__setattr__(self, "_labeled", labeled)

    @classmethod
    def empty(cls, n: int, *, n_classes: int | None = None) -> Pool:
        """A pool of ``n`` items, none labelled."""
        n = check_positive_int("n", n)
        if n_classes is not None:
            check_positive_int("n_classes", n_classes)
        full = np.full(n, UNLABELED, dtype=np.int64)
        return cls(full, full.copy(), n_classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n(self) -> int:
        return len(self)

    @property
    def labeled(self) -> np.ndarray:
        """Sorted absolute indices of labelled items."""
        return self._labeled

    @property
    def unlabeled(self) -> np.ndarray:
        """Sorted absolute indices of unlabelled items."""
        return np.flatnonzero(self.labels == UNLABELED)

    @property
    def n_labeled(self) -> int:
        return int(self._labeled.shape[0])

    @property
    def n_unlabeled(self) -> int:
        return len(self) - self.n_labeled

    @property
    def round(self) -> int:
        """The latest round in which something was labelled (-1 for an empty pool)."""
        return int(self.labeled_at.max()) if self.n_labeled else -1

    def is_labeled(self, indices: Any) -> np.ndarray:
        """Whether each of ``indices`` (integers in 0 .. n − 1) is labelled; bool array of their shape."""
        return self.labels[check_indices("indices", indices, len(self))] != UNLABELED

    def label(self, indices: Any, labels: Any, *, round: int | None = None) -> Pool:
        """Return a new pool with ``indices`` labelled as ``labels`` in ``round``.

        ``round`` defaults to one past the latest round (0 for the first call). Refuses duplicate,
        out-of-range or already labelled indices, and labels outside the classes.
        """
        try:
            idx = np.asarray(indices)
            lab = np.asarray(labels)
        except (ValueError, TypeError) as err:
            raise ValueError(f"indices and labels must be 1-D arrays; could not read them: {err}") from None
        if idx.ndim != 1 or lab.ndim != 1 or idx.shape != lab.shape:
            raise ValueError(
                f"indices and labels must be 1-D of equal length; got shapes {idx.shape} and {lab.shape}"
            )
        if idx.size and idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers; got dtype {idx.dtype}")
        if lab.size and lab.dtype.kind not in "iu":
            if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
                lab = lab.astype(np.int64)
            else:
                bad = lab[0] if lab.dtype.kind != "f" else lab[~(np.isfinite(lab) & (lab == np.round(lab)))][0]
                raise ValueError(f"labels must be integer class ids; got {bad!r}")
        idx = idx.astype(np.int64)
        lab = lab.astype(np.int64)
        n = len(self)
        out = (idx < 0) | (idx >= n)
        if out.any():
            raise ValueError(f"index {int(idx[out][0])} is out of range for a pool of {n} items")
        uniq, counts = np.unique(idx, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"index {int(uniq[counts > 1][0])} appears more than once")
        already = self.labels[idx] != UNLABELED
        if already.any():
            raise ValueError(f"index {int(idx[already][0])} is already labelled")
        if lab.size and lab.min() < 0:
            raise ValueError(f"label {int(lab.min())} is negative; labels are class ids 0 .. n_classes-1")
        if self.n_classes is not None and lab.size and lab.max() >= self.n_classes:
            raise ValueError(f"label {int(lab.max())} is outside the classes 0 .. {self.n_classes - 1}")
        if round is None:
            round = self.round + 1
        else:
            round = check_positive_int("round", round, allow_zero=True)
        labels_new = self.labels.copy()
        at_new = self.labeled_at.copy()
        labels_new[idx] = lab
        at_new[idx] = round
        return Pool(labels_new, at_new, self.n_classes)

    def labeled_in(self, round: int) -> np.ndarray:
        """Absolute indices labelled in ``round`` (an integer >= 0)."""
        return np.flatnonzero(self.labeled_at == check_positive_int("round", round, allow_zero=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pool):
            return NotImplemented
        return (
            self.n_classes == other.n_classes
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.labeled_at, other.labeled_at)
        )

    def __repr__(self) -> str:
        return f"Pool(n={len(self)}, n_labeled={self.n_labeled}, round={self.round})"
