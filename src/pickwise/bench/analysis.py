"""From finished run records to tables: penalty matrices, LAR, areas, selection times.

Groups. Pool strategies see the whole pool, so their runs belong to every comparison. Stream
selectors are compared per arrival order: group ``"iid"`` = the pool strategies + the stream
selectors on i.i.d. streams, group ``"pc"`` = the pool strategies + those on first-principal-component
(non-i.i.d.) streams, and so on. A grid without stream cells has the one group ``"pool"``.

Baselines. The penalty matrix stops its checkpoints by random's curve (stream-uniform's when a
setting has no random runs). LAR is computed against random for pool strategies (group ``"pool"``)
and against stream-uniform of the same order for every algorithm of a stream group (the poster's
"BADGE up to 6.7" is BADGE against stream-uniform on the non-i.i.d. stream).

Round 0. The checkpoint at the initial labels (before any selection) is left out of the penalty
matrices and of LAR: every arm of a seed fits the same initial labels there. A run from no labels
(``initial = 0``) has no model in round 0: its curve starts at the first ``k`` labels.

Names. A run whose initial labels were chosen by a strategy (``initial_strategy``) is the algorithm
``"<initial strategy>→<strategy>"`` (:func:`algorithm_label`); runs from no labels form their own
setting, dataset ``"<dataset> from 0"``, and frozen-encoder features ``"<dataset>+<encoder>"``
(:func:`dataset_label`). Records without these keys keep their plain names.

Stopping. :func:`stopping_rows` compares where the stabilising-predictions rule (``stop_reached`` in
the rounds, :mod:`pickwise.stopping`) would have stopped each run with where the mean accuracy
plateaued; records without the field are not reported there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .curves import Curve, area_under_curve, mean_curve
from .lar import FRACTIONS, label_amplification
from .penalty import PenaltyMatrix, penalty_matrix

POOL_BASELINE = "random"
STREAM_BASELINE = "stream_uniform"

#: the VeSSAL poster's column means (ALGORITHMS.md), by pickwise name, per stream order
REFERENCE_COLUMN_MEANS: dict[str, dict[str, float]] = {
    "iid": {"coreset": 4.05, "least_confidence": 2.53, "badge": 0.21, "random": 1.70,
            "stream_uniform": 1.80, "vessal_pen": 2.02, "vessal": 0.48},
    "pc": {"badge": 0.08, "vessal": 0.66},
}
#: the poster's 7 algorithms, in the poster's order (coreset, conf, BADGE, rand, unif, pen, VeSSAL)
POSTER_SET = ("coreset", "least_confidence", "badge", "random", "stream_uniform", "vessal_pen", "vessal")
REFERENCE_LAR = {"iid": "≈ 1.3 → 2.1 (VeSSAL vs unif)", "pc": "≈ 2.4 → 5.3 (VeSSAL vs unif); BADGE up to 6.7"}


@dataclass(frozen=True, eq=False)
class Run:
    id: str
    kind: str
    algorithm: str
    order: str | None
    dataset: str
    model: str
    k: int
    seed: int
    initial: int
    n_pool: int
    curve: Curve
    select_seconds: float  # mean per round that selected (stream: per window, embedding included)
    fit_seconds: float  # mean per round
    #: labels where the stopping rule fired: None if the records do not report it, NaN if it never fired
    stop_labels: float | None = None

    @property
    def setting(self) -> tuple[str, str, int]:
        return (self.dataset, self.model, self.k)


def algorithm_label(cfg: Mapping[str, Any]) -> str:
    """The algorithm's name in tables: the strategy, or ``"<initial strategy>→<strategy>"``."""
    init = cfg.get("initial_strategy")
    return f"{init}→{cfg['strategy']}" if init else str(cfg["strategy"])


def dataset_label(cfg: Mapping[str, Any]) -> str:
    """The dataset's name in tables: ``"<dataset>[+<encoder>][ from 0]"`` (see the module doc)."""
    name = str(cfg["dataset"])
    if cfg.get("encoder"):
        name += f"+{cfg['encoder']}"
    if cfg.get("initial") == 0:
        name += " from 0"
    return name


def _stop_labels(rows: Sequence[Mapping[str, Any]]) -> float | None:
    if not any("stop_reached" in r for r in rows):
        return None
    reached = rows[-1].get("stop_reached")
    at = [r["n_labeled"] for r in rows if r["round"] == reached] if reached is not None else []
    return float(at[0]) if at else float("nan")


def to_run(rec: Mapping[str, Any]) -> Run:
    cfg = rec["config"]
    rows = [r for r in rec["rounds"] if r["n_labeled"] > 0 or "accuracy" in r["metrics"]]  # no model: no point
    n = np.array([r["n_labeled"] for r in rows], dtype=float)
    acc = np.array([r["metrics"].get("accuracy", np.nan) for r in rows], dtype=float)
    # a stream window that queried nothing repeats a size: keep the latest accuracy for it
    keep = np.r_[np.diff(n) > 0, True]
    sel = [r["select_seconds"] for r in rows if r.get("n_selected", 0) or (cfg["kind"] == "stream" and r["round"] > 0)]
    return Run(
        id=rec["id"], kind=cfg["kind"], algorithm=algorithm_label(cfg), order=cfg.get("order"),
        dataset=dataset_label(cfg),
        model=cfg["model"], k=int(cfg["k"]), seed=int(cfg["seed"]), initial=int(cfg["initial"]),
        n_pool=int(rec.get("n_pool", 0)), curve=Curve(n[keep], acc[keep], rec.get("n_end")),
        select_seconds=float(np.mean(sel)) if sel else float("nan"),
        fit_seconds=float(np.mean([r["fit_seconds"] for r in rows])),
        stop_labels=_stop_labels(rec["rounds"]),
    )


def groups(runs: Sequence[Run]) -> list[str]:
    orders = sorted({r.order for r in runs if r.kind == "stream" and r.order})
    return orders or ["pool"]


def in_group(run: Run, group: str) -> bool:
    return run.kind == "pool" or run.order == group


def _ordered_names(runs: Iterable[Run]) -> list[str]:
    pool = sorted({r.algorithm for r in runs if r.kind == "pool"}, key=lambda a: (a != POOL_BASELINE, a))
    stream = sorted({r.algorithm for r in runs if r.kind == "stream"}, key=lambda a: (a != STREAM_BASELINE, a))
    return pool + stream


def setting_curves(runs: Iterable[Run]) -> dict[tuple[str, str, int], dict[str, list[Curve]]]:
    """{setting: {algorithm: curves in run order (by seed)}}."""
    out: dict[tuple[str, str, int], dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        out[r.setting][r.algorithm].append(r)
    return {s: {a: [r.curve for r in sorted(rs, key=lambda r: r.seed)] for a, rs in d.items()} for s, d in out.items()}


def group_penalty(runs: Sequence[Run], group: str, *, pre_selection: bool = False) -> PenaltyMatrix:
    """The penalty matrix of one group over its settings (the initial-labels checkpoint left out
    unless ``pre_selection``)."""
    mine = [r for r in runs if in_group(r, group)]
    names = _ordered_names(mine)
    initial = {r.setting: r.initial for r in mine}
    settings = []
    for key, curves in sorted(setting_curves(mine).items()):
        ref = POOL_BASELINE if POOL_BASELINE in curves else STREAM_BASELINE
        settings.append((key, key[2], initial[key], curves, ref))
    if not settings:
        return penalty_matrix([], names=names)
    refs = {s[4] for s in settings}
    if len(refs) == 1:
        return penalty_matrix([s[:4] for s in settings], names=names, reference=refs.pop(),
                              pre_selection=pre_selection)
    parts = [penalty_matrix([s[:4]], names=names, reference=s[4], pre_selection=pre_selection) for s in settings]
    return PenaltyMatrix(tuple(names), sum(p.matrix for p in parts), tuple(p.settings[0] for p in parts),
                         tuple(p.per_setting[0] for p in parts))


#: what a LAR point is: a ratio, or why it has none
LAR_STATUS = ("ok", "not reached", "flat baseline", "pre-selection", "no data")


def lar_rows(runs: Sequence[Run], fractions: Sequence[float] = FRACTIONS) -> list[dict[str, Any]]:
    """One row per (group, setting, algorithm, fraction): n_u, target accuracy, n_a, ratio, status.

    ``status`` (:data:`LAR_STATUS`): "ok"; "not reached" (the learner never gets to the target:
    it is worse there, ``lar`` NaN); "flat baseline" (the target is at most the learner's first
    accuracy, so the ratio would be n_u / n_0 whatever happened: ``lar`` NaN, ``lar_if_defined``
    keeps that value); "pre-selection" (n_u at or below the initial labels); "no data" (n_u
    outside the baseline's curve).
    """
    rows = []
    comparisons = [("pool", POOL_BASELINE, [r for r in runs if r.kind == "pool"])]
    comparisons += [(g, STREAM_BASELINE, [r for r in runs if in_group(r, g)]) for g in groups(runs) if g != "pool"]
    for group, baseline, mine in comparisons:
        n_pool = {r.setting: r.n_pool for r in mine}
        initial = {r.setting: r.initial for r in mine}
        for key, curves in sorted(setting_curves(mine).items()):
            if baseline not in curves:
                continue
            for algo in _ordered_names([r for r in mine if r.setting == key]):
                if algo == baseline:
                    continue
                res = label_amplification(curves[algo], curves[baseline], n_pool=n_pool[key], fractions=fractions)
                for i, f in enumerate(res.fractions):
                    if res.n_u[i] <= initial[key]:
                        status = "pre-selection"
                    elif np.isnan(res.target[i]):
                        status = "no data"
                    elif res.flat[i]:
                        status = "flat baseline"
                    elif np.isnan(res.ratio[i]):
                        status = "not reached"
                    else:
                        status = "ok"
                    rows.append({"group": group, "baseline": baseline, "dataset": key[0], "model": key[1], "k": key[2],
                                 "algorithm": algo, "fraction": float(f), "n_u": float(res.n_u[i]),
                                 "target": float(res.target[i]), "n_a": float(res.n_a[i]),
                                 "lar": float(res.ratio[i]) if status == "ok" else float("nan"), "status": status,
                                 "lar_if_defined": float(res.ratio[i])})
    return rows


def lar_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean LAR over datasets per (group, model, k, algorithm, fraction).

    Only datasets with a baseline value there count (``n_datasets``; "pre-selection" and "no data"
    points do not). ``n_flat``: of those, how many had a flat baseline (not defined, left out of the
    mean); ``n_reached``: how many reached the target with a defined ratio. The mean is over the
    ``n_reached`` values and is given only when no dataset is "not reached" (dropping one where the
    learner never got there would flatter it) and at least one is defined.
    """
    acc: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("status", "ok") in ("pre-selection", "no data") or np.isnan(r["target"]):
            continue
        acc[(r["group"], r["model"], r["k"], r["algorithm"], r["fraction"])].append(r)
    out = []
    for (g, m, k, a, f), rs in sorted(acc.items()):
        status = [r.get("status", "ok" if not np.isnan(r["lar"]) else "not reached") for r in rs]
        ok = np.array([r["lar"] for r, st in zip(rs, status) if st == "ok"], dtype=float)
        n_flat = status.count("flat baseline")
        missed = status.count("not reached")
        out.append({"group": g, "model": m, "k": k, "algorithm": a, "fraction": f, "n_datasets": len(rs),
                    "n_reached": len(ok), "n_flat": n_flat, "n_not_reached": missed,
                    "lar_mean": float(ok.mean()) if len(ok) and not missed else float("nan"),
                    "lar_min": float(ok.min()) if len(ok) else float("nan"),
                    "lar_max": float(ok.max()) if len(ok) else float("nan")})
    return out


def auc_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Mean accuracy over the labelled range every run of a setting covers, mean ± se over seeds."""
    by_setting: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        by_setting[r.setting].append(r)
    rows = []
    for key, rs in sorted(by_setting.items()):
        lo = max(r.curve.start for r in rs)
        hi = min(r.curve.n_end for r in rs)
        by_algo: dict[tuple, list[Run]] = defaultdict(list)
        for r in rs:
            by_algo[(r.kind, r.order or "", r.algorithm)].append(r)
        baselines = (POOL_BASELINE, STREAM_BASELINE)
        order_key = lambda t: (t[0][0], t[0][1], t[0][2] not in baselines, t[0][2])  # noqa: E731
        for (kind, order, algo), ar in sorted(by_algo.items(), key=order_key):
            curves = [r.curve for r in sorted(ar, key=lambda r: r.seed)]
            v = np.array([area_under_curve(c, lo, hi) for c in curves])
            se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            final = np.array([c.at(hi) for c in curves])
            final_se = float(final.std(ddof=1) / np.sqrt(len(final))) if len(final) > 1 else float("nan")
            rows.append({"dataset": key[0], "model": key[1], "k": key[2], "algorithm": algo,
                         "kind": kind if kind == "pool" else f"stream-{order}", "from": lo, "to": hi,
                         "n_runs": len(v), "auc_mean": float(v.mean()), "auc_se": se,
                         "final_mean": float(final.mean()), "final_se": final_se})
    return rows


def selection_time_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Mean selection seconds per round (stream: per window, embedding included) by algorithm and k."""
    acc: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        acc[(r.algorithm, r.kind if r.kind == "pool" else f"stream-{r.order}", r.k, r.dataset)].append(r)
    rows = []
    for (a, kind, k, ds), rs in sorted(acc.items()):
        rows.append({"algorithm": a, "kind": kind, "k": k, "dataset": ds, "n_pool": rs[0].n_pool, "n_runs": len(rs),
                     "select_seconds": float(np.nanmean([r.select_seconds for r in rs])),
                     "fit_seconds": float(np.mean([r.fit_seconds for r in rs]))})
    return rows


def mean_curves(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The mean ± se curve of every (setting, algorithm, order) as rows."""
    acc: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        acc[(r.dataset, r.model, r.k, r.algorithm, r.order or "")].append(r)
    rows = []
    for (ds, m, k, a, o), rs in sorted(acc.items()):
        mc = mean_curve([r.curve for r in sorted(rs, key=lambda r: r.seed)])
        for n, mean, se in zip(mc.n, mc.mean, mc.se):
            rows.append({"dataset": ds, "model": m, "k": k, "algorithm": a, "order": o, "n_labeled": float(n),
                         "accuracy_mean": float(mean), "accuracy_se": float(se), "n_runs": mc.n_runs})
    return rows


#: the plateau: the first checkpoint whose mean accuracy reaches this fraction of the final mean accuracy
PLATEAU_FRACTION = 0.99


def plateau_labels(n: Sequence[float], acc: Sequence[float], fraction: float = PLATEAU_FRACTION) -> float:
    """The first label count in ``n`` whose accuracy reaches ``fraction`` × the final accuracy
    (``acc[-1]``); NaN for an empty curve."""
    n, acc = np.asarray(n, dtype=float), np.asarray(acc, dtype=float)
    if n.size == 0:
        return float("nan")
    hit = np.flatnonzero(acc >= fraction * acc[-1])
    return float(n[hit[0]])


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def stopping_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per (setting, kind/order, algorithm) with stopping fields: where the rule stopped against the plateau.

    ``n_fired`` of ``n_runs`` runs reached the rule; ``stop_mean``/``stop_se``: their label counts at
    the first round it fired; ``plateau``: the first checkpoint of the mean curve at
    :data:`PLATEAU_FRACTION` of its final mean accuracy; ``final_mean``: the mean accuracy at the runs'
    end; ``acc_at_stop``: mean accuracy of the fired runs at their stop; ``loss_mean``/``loss_se``:
    each fired run's final accuracy minus its accuracy at its stop (what stopping there costs).
    Runs whose records do not report the rule are left out; settings without any such run give no row.
    """
    acc: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        if r.stop_labels is not None:
            acc[(r.dataset, r.model, r.k, r.kind if r.kind == "pool" else f"stream-{r.order}", r.algorithm)].append(r)
    rows = []
    for (ds, m, k, kind, a), rs in sorted(acc.items(), key=lambda t: (t[0][:4], t[0][4] != POOL_BASELINE, t[0][4])):
        rs = sorted(rs, key=lambda r: r.seed)
        mc = mean_curve([r.curve for r in rs])
        fired = [r for r in rs if not np.isnan(r.stop_labels)]
        stops = np.array([r.stop_labels for r in fired], dtype=float)
        at_stop = np.array([r.curve.at(r.stop_labels) for r in fired], dtype=float)
        loss = np.array([r.curve.at(r.curve.n_end) for r in fired], dtype=float) - at_stop
        stop_mean, stop_se = _mean_se(stops)
        loss_mean, loss_se = _mean_se(loss)
        rows.append({"dataset": ds, "model": m, "k": k, "kind": kind, "algorithm": a, "n_runs": len(rs),
                     "n_fired": len(fired), "stop_mean": stop_mean, "stop_se": stop_se,
                     "plateau": plateau_labels(mc.n, mc.mean), "end": float(mc.n[-1]),
                     "final_mean": float(mc.mean[-1]),
                     "acc_at_stop": float(at_stop.mean()) if at_stop.size else float("nan"),
                     "loss_mean": loss_mean, "loss_se": loss_se})
    return rows
