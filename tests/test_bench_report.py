"""The report from synthetic results: groups, penalty matrix and LAR tables agree with direct computation."""

import csv

import numpy as np
import pytest

from pickwise.bench import Curve, penalty_matrix, write_report
from pickwise.bench import analysis as an
from pickwise.records import RecordWriter


def record(kind, algo, seed, sizes, acc, *, dataset="d1", k=100, order=None, n_end=None, select=0.01):
    cfg = {"schema": 1, "kind": kind, "dataset": dataset, "model": "mlp", "strategy": algo, "order": order, "k": k,
           "seed": seed, "initial": 100, "rounds": len(sizes) - 1, "segment": None, "max_train": 2000,
           "max_test": 500, "training": {}, "options": {}}
    rows = [{"round": i, "n_labeled": n, "metrics": {"accuracy": a}, "fit_seconds": 0.1,
             "select_seconds": select if i < len(sizes) - 1 or kind == "stream" else 0.0,
             "n_selected": k if i < len(sizes) - 1 else 0} for i, (n, a) in enumerate(zip(sizes, acc))]
    return {"id": f"{dataset}_{algo}_{order}_{k}_{seed}", "kind": kind, "algorithm": algo, "seed": seed, "config": cfg,
            "versions": {"pickwise": "0"}, "n_pool": 2000, "n_test": 500, "n_classes": 3,
            "n_end": n_end or sizes[-1], "rounds": rows}


SIZES = [100, 200, 300, 400, 500, 600, 700, 800, 900]


def synthetic(tmp_path):
    """Two datasets; random, margin (better), stream_uniform and vessal (better) on iid and pc."""
    rng = np.random.default_rng(0)
    w = RecordWriter(tmp_path / "runs.jsonl")
    base = 0.5 + 0.3 * (1 - np.exp(-(np.array(SIZES) - 100) / 250))
    recs = []
    for ds in ("d1", "d2"):
        for seed in range(4):
            noise = rng.normal(scale=0.005, size=len(SIZES))
            noise[0] = 0
            recs.append(record("pool", "random", seed, SIZES, base + noise, dataset=ds))
            recs.append(record("pool", "margin", seed, SIZES, base + noise + np.r_[0, [0.04] * 8], dataset=ds))
            for order in ("iid", "pc"):
                st = [100, 190, 305, 398, 512, 590, 700, 805, 897]  # what a stream records
                drop = 0.05 if order == "pc" else 0.0
                recs.append(record("stream", "stream_uniform", seed, st, np.interp(st, SIZES, base) - drop + noise,
                                   dataset=ds, order=order, n_end=900))
                recs.append(record("stream", "vessal", seed, st, np.interp(st, SIZES, base) + 0.02 + noise,
                                   dataset=ds, order=order, n_end=900))
    for r in recs:
        w.write(r)
    return recs


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_tables_agree_with_direct_computation(tmp_path):
    recs = synthetic(tmp_path / "res")
    runs = [an.to_run(r) for r in recs]
    assert an.groups(runs) == ["iid", "pc"]
    path = write_report(tmp_path / "res", tmp_path / "rep", title="synthetic")
    text = path.read_text()
    for part in ("# synthetic", "## Pairwise penalty matrices", "## Label amplification ratio",
                 "## Area under the learning curve", "## Selection time against batch size", "## Learning curves"):
        assert part in text
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"penalty_iid.png", "penalty_pc.png", "penalty_iid.csv", "lar.csv", "lar_summary.csv", "auc.csv",
            "selection_time.csv", "selection_time.png", "learning_curves.csv", "curves_d1_mlp_k100.png"} <= files
    assert sum((tmp_path / "rep" / f).stat().st_size for f in files) < 1_500_000

    # the iid matrix equals the one computed directly from the curves
    direct_settings = []
    for ds in ("d1", "d2"):
        curves = {}
        for r in sorted(runs, key=lambda r: r.seed):
            if r.dataset == ds and (r.kind == "pool" or r.order == "iid"):
                curves.setdefault(r.algorithm, []).append(r.curve)
        direct_settings.append(((ds, "mlp", 100), 100, 100, curves))
    # the report leaves the checkpoint at the initial labels (round 0, before any selection) out
    direct = penalty_matrix(direct_settings, names=["random", "margin", "stream_uniform", "vessal"],
                            pre_selection=False)
    rows = read_csv(tmp_path / "rep" / "penalty_iid.csv")
    assert [r["winner"] for r in rows] == ["random", "margin", "stream_uniform", "vessal", "column mean"]
    got = np.array([[float(r[n]) for n in direct.names] for r in rows])
    np.testing.assert_allclose(got[:-1], direct.matrix, atol=1e-5)
    np.testing.assert_allclose(got[-1], direct.column_means, atol=1e-5)
    # margin beats random at every kept checkpoint (all after 100) in both settings; it is beaten less often
    i = direct.names.index
    kept = direct.per_setting[0].checkpoints
    assert kept[0] == 200 and direct.matrix[i("margin"), i("random")] == pytest.approx(2)
    assert direct.column_means[i("margin")] < direct.column_means[i("random")]

    # LAR: vessal vs stream-uniform (> 1), margin vs random (> 1), per dataset and summarised
    lar = read_csv(tmp_path / "rep" / "lar.csv")
    v = [float(r["lar"]) for r in lar if r["group"] == "iid" and r["algorithm"] == "vessal" and r["dataset"] == "d1"
         and r["fraction"] == "0.2"]
    assert len(v) == 1 and v[0] > 1
    m = [float(r["lar"]) for r in lar if r["group"] == "pool" and r["algorithm"] == "margin" and r["fraction"] == "0.3"]
    assert len(m) == 2 and all(x > 1 for x in m)
    # n_u/N beyond the baseline's last size (900/2000 = 0.45) has no value
    assert not [r for r in lar if float(r["fraction"]) > 0.45 and r["lar"] not in ("nan", "")]
    summary = read_csv(tmp_path / "rep" / "lar_summary.csv")
    s = [r for r in summary if r["group"] == "pc" and r["algorithm"] == "vessal" and r["fraction"] == "0.2"][0]
    assert s["n_datasets"] == "2" and float(s["lar_mean"]) > 1
    # random on the pc stream group is compared with stream-uniform too (better than a biased stream)
    assert [r for r in summary if r["group"] == "pc" and r["algorithm"] == "random"]


def test_stream_curve_holds_its_last_value_up_to_the_budget_and_duplicate_sizes_collapse():
    rec = record("stream", "vessal", 0, [100, 150, 150, 297], [0.5, 0.6, 0.62, 0.7], order="iid", n_end=300)
    run = an.to_run(rec)
    assert run.curve.n.tolist() == [100, 150, 297]
    assert run.curve.acc.tolist() == [0.5, 0.62, 0.7]  # a window without queries: the later accuracy
    assert run.curve.at(300) == pytest.approx(0.7)
    assert isinstance(run.curve, Curve)


def test_report_without_results_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path, tmp_path / "rep")


def test_runs_of_different_configurations_are_not_mixed(tmp_path):
    from types import SimpleNamespace

    w = RecordWriter(tmp_path / "runs.jsonl")
    old = [record("pool", a, s, SIZES, np.linspace(0.5, 0.8, 9)) for a in ("random", "margin") for s in range(2)]
    new = []
    for a in ("random", "margin"):
        for s in range(2):
            r = record("pool", a, s, SIZES, np.linspace(0.5, 0.8, 9))
            r["id"] += "_bigger_pool"
            r["n_pool"] = 9000
            r["config"]["max_train"] = 9000
            new.append(r)
    for r in old + new:
        w.write(r)
    with pytest.raises(ValueError, match=r"differ in n_pool.*--grid"):
        write_report(tmp_path, tmp_path / "rep")
    grid = SimpleNamespace(name="g", cells=[SimpleNamespace(id=r["id"]) for r in new])
    text = write_report(tmp_path, tmp_path / "rep", grid=grid).read_text()
    assert "| d1 | mlp | 100 | 9000 |" in text
