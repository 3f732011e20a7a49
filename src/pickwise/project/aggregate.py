"""From label events to one training label per item, and agreement between annotators and rounds.

Pure functions over plain values (no database), so each rule is testable on a few rows.

- :func:`current_answers`: each annotator's latest event on each item (a ``retract`` withdraws it).
- :func:`aggregate`: one class per item from the current single-choice answers: ``majority`` over
  annotators, ties broken by the latest answer among the tied classes; or ``latest`` (the latest answer
  of anyone). Multi-choice answers are kept in the database but never trained on.
- :func:`agreement`: raw agreement and Fleiss' kappa (variable raters per item) over items with ≥2
  annotators, Cohen's kappa when exactly two annotators share items, and the disagreeing items.
- :func:`prediction_agreement`: agreement and Cohen's kappa between two rounds' predictions on the whole
  pool: the "stabilising predictions" stopping signal (Bloodgood & Vijay-Shanker, CoNLL 2009).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

#: one event: (event id, item, annotator, event, label or None for skip/retract/multi-choice)
Event = tuple[int, Any, str, str, "str | None"]


def current_answers(events: Iterable[Event]) -> dict[Any, dict[str, tuple[int, str, str | None]]]:
    """``{item: {annotator: (event id, event, label)}}`` of each annotator's latest event, retracts dropped."""
    latest: dict[tuple[Any, str], tuple[int, str, str | None]] = {}
    for eid, item, annotator, event, label in events:
        key = (item, annotator)
        if key not in latest or eid > latest[key][0]:
            latest[key] = (eid, event, label)
    out: dict[Any, dict[str, tuple[int, str, str | None]]] = defaultdict(dict)
    for (item, annotator), (eid, event, label) in latest.items():
        if event != "retract":
            out[item][annotator] = (eid, event, label)
    return dict(out)


def aggregate(events: Iterable[Event], rule: str = "majority") -> dict[Any, str]:
    """One class per item from the current single-choice answers (see the module docstring)."""
    if rule not in ("majority", "latest"):
        raise ValueError(f"aggregation rule must be 'majority' or 'latest'; got {rule!r}")
    out: dict[Any, str] = {}
    for item, answers in current_answers(events).items():
        votes = [(eid, label) for eid, event, label in answers.values() if event == "label" and label is not None]
        if not votes:
            continue
        if rule == "latest":
            out[item] = max(votes)[1]
            continue
        counts = Counter(label for _, label in votes)
        top = max(counts.values())
        tied = {label for label, c in counts.items() if c == top}
        out[item] = max((eid, label) for eid, label in votes if label in tied)[1]
    return out


def _kappa(p_observed: float, p_expected: float) -> float:
    return 1.0 if p_expected >= 1.0 else (p_observed - p_expected) / (1.0 - p_expected)


def agreement(events: Iterable[Event], item_names: dict[Any, str] | None = None) -> dict[str, Any]:
    """Agreement over items with ≥2 annotators' current single-choice labels.

    ``raw``: mean over items of the fraction of agreeing annotator pairs; ``fleiss_kappa`` (Fleiss 1971,
    with a varying number of raters per item); ``cohen_kappa`` when exactly two annotators label common
    items (else None); ``disagreements``: the items whose labels differ (named by ``item_names``).
    """
    rated: dict[Any, dict[str, str]] = {}
    for item, answers in current_answers(events).items():
        labs = {a: label for a, (_, event, label) in answers.items() if event == "label" and label is not None}
        if len(labs) >= 2:
            rated[item] = labs
    names = item_names or {}
    if not rated:
        return {"items": 0, "raw": None, "fleiss_kappa": None, "cohen_kappa": None, "disagreements": []}
    p_items, totals = [], Counter()
    for labs in rated.values():
        counts = Counter(labs.values())
        m = len(labs)
        p_items.append(sum(c * (c - 1) for c in counts.values()) / (m * (m - 1)))
        totals.update(counts)
    n_ratings = sum(totals.values())
    p_bar = sum(p_items) / len(p_items)
    p_e = sum((c / n_ratings) ** 2 for c in totals.values())
    annotators = sorted({a for labs in rated.values() for a in labs})
    cohen = None
    if len(annotators) == 2:
        a, b = annotators
        pairs = [(labs[a], labs[b]) for labs in rated.values()]
        cohen = cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs])
    dis = sorted(str(names.get(item, item)) for item, labs in rated.items() if len(set(labs.values())) > 1)
    return {"items": len(rated), "raw": p_bar, "fleiss_kappa": _kappa(p_bar, p_e), "cohen_kappa": cohen,
            "annotators": annotators, "disagreements": dis}


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa of two equally long label sequences (None when empty)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs sequences of equal length; got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    return _kappa(p_o, p_e)


def prediction_agreement(prev: dict[str, str], cur: dict[str, str]) -> dict[str, Any]:
    """Agreement and Cohen's kappa of two rounds' predicted classes over the items both predicted."""
    common = sorted(set(prev) & set(cur))
    if not common:
        return {"items": 0, "agreement": None, "kappa": None}
    a = [prev[i] for i in common]
    b = [cur[i] for i in common]
    return {"items": len(common), "agreement": sum(x == y for x, y in zip(a, b)) / len(common),
            "kappa": cohen_kappa(a, b)}
