"""Stream baselines: stream-uniform, and uncertainty with a rank-threshold budget manager.

The third baseline of the VeSSAL poster, "pen" (VeSSAL on penultimate features), is
``VeSSAL(embedding="pen")``.

Budget manager of ``StreamUncertainty`` (pickwise's choice, documented here): the item with score s
is queried iff its randomised rank among the last ``window`` scores, itself included, falls in the
top fraction q_t:

    above = #{past scores > s},  ties = #{past scores == s} + 1 (itself),  n = #past + 1
    query  ⇔  above + u·ties < q_t·n            (u the item's uniform)

For i.i.d. continuous scores the rank of a new item among n is uniform, so above + u is uniform on
[0, n) and the query probability is exactly q_t from the first item on (with no history it is a
coin with probability q_t); ties are split at random instead of all passing or all failing. The
threshold follows the score distribution as the model and the stream drift, and with a budget the
adaptive q_t of ``_base`` corrects any excess or shortfall. (Related to the incremental quantile
filters of Kottke et al. 2015 — (unverified reference).)
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, ClassVar

import numpy as np

from .._validation import check_positive_int, check_probs
from ..protocols import Classifier
from ..scores import SCORES, ScoreFn, get_score
from ._base import StreamSelectorBase

__all__ = ["StreamUniform", "StreamUncertainty"]


class StreamUniform(StreamSelectorBase):
    """Each item queried with probability q_t (fixed q, or the adaptive rate; the poster's "unif").

    ``z`` is ignored except for its shape and finiteness; ``featurize`` returns an (n, 0) array.
    """

    needs: ClassVar[tuple[type, ...]] = ()
    name = "stream_uniform"

    def featurize(self, model: Any, x: Any) -> np.ndarray:
        n = x.shape[0] if hasattr(x, "shape") else len(x)
        return np.zeros((n, 0))

    def _observe_block(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=bool)
        t, nq = self.t, self.n_queried
        for i in range(rows.shape[0]):
            t += 1
            if u[i] < self._rate(t, nq):
                out[i] = True
                nq += 1
        self.t, self.n_queried = t, nq
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        return self._counter_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._require(state, ("t", "n_queried"), "StreamUniform")
        self._load_counters(state)


class StreamUncertainty(StreamSelectorBase):
    """Uncertainty sampling on a stream with a rank-threshold budget manager (see the module doc).

    Parameters
    ----------
    score : str or callable
        A single-model score over probs (n, K), higher = more uncertain: "least_confidence"
        (default, the poster's "conf"), "margin", "entropy", or a function.
    window : int
        How many past scores the threshold looks at.
    q, budget, length
        The target rate (see ``_base``).

    ``z`` is the predicted probabilities, shape (n, K).
    """

    needs: ClassVar[tuple[type, ...]] = (Classifier,)
    _params = ("score", "window", "q", "budget", "length")

    def __init__(
        self,
        *,
        score: str | ScoreFn = "least_confidence",
        window: int = 1000,
        q: float | None = None,
        budget: int | None = None,
        length: int | None = None,
    ):
        super().__init__(q=q, budget=budget, length=length)
        self._score = get_score(score) if isinstance(score, str) else score
        if isinstance(score, str) and score not in SCORES:
            raise ValueError(f"score {score!r} needs MC draws or a committee; choose one of {sorted(SCORES)}")
        self.score = score
        self.window = check_positive_int("window", window)
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    @property
    def name(self) -> str:
        return f"stream_{self.score if isinstance(self.score, str) else getattr(self.score, '__name__', 'score')}"

    def featurize(self, model: Any, x: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(x), dtype=np.float64)

    def _validate(self, z: Any) -> np.ndarray:
        arr = np.asarray(z)
        if arr.ndim != 2:
            raise ValueError(f"z must be probabilities of shape (n, n_classes); got shape {arr.shape}")
        return check_probs("z", arr)

    def _observe_block(self, probs: np.ndarray, u: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._score(probs), dtype=np.float64)
        out = np.zeros(probs.shape[0], dtype=bool)
        recent, ordered = self._recent, self._sorted
        t, nq = self.t, self.n_queried
        for i, s in enumerate(scores.tolist()):
            t += 1
            lo = bisect.bisect_left(ordered, s)
            hi = bisect.bisect_right(ordered, s)
            above, ties, n = len(ordered) - hi, hi - lo + 1, len(ordered) + 1
            if above + u[i] * ties < self._rate(t, nq) * n:
                out[i] = True
                nq += 1
            ordered.insert(hi, s)
            recent.append(s)
            if len(recent) > self.window:
                old = recent.popleft()
                del ordered[bisect.bisect_left(ordered, old)]
        self.t, self.n_queried = t, nq
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        state = self._counter_state()
        state["recent_scores"] = np.asarray(self._recent, dtype=np.float64)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._require(state, ("t", "n_queried", "recent_scores"), "StreamUncertainty")
        recent = np.asarray(state["recent_scores"], dtype=np.float64)
        if recent.ndim != 1 or recent.shape[0] > self.window:
            raise ValueError(f"recent_scores must be 1-D with at most window={self.window} values; got {recent.shape}")
        self._load_counters(state)
        self._recent = deque(recent.tolist())
        self._sorted = sorted(self._recent)
