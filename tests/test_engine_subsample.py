"""Candidate subsampling over shards (pickwise.engine.subsample) = Subsample.select's own candidates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pickwise import Pool
from pickwise.engine import LocalEngine
from pickwise.engine.parquet import write_outputs
from pickwise.engine.score import latest_scores
from pickwise.engine.subsample import history_loaders, sharded_candidates
from pickwise.protocols import ScoreBased
from pickwise.wrappers import Subsample

ROOT = Path(__file__).resolve().parents[1]


class Recorder(ScoreBased):
    """A score-based inner strategy that records the candidates it is asked to score."""

    needs = ()

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def scores(self, model, x, indices, *, rng):
        self.seen.append(np.array(indices))
        return np.sin(np.asarray(indices, dtype=np.float64))


def history(n: int, seed: int, *, frac_scored: float = 0.7, ties: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n) * 2
    if ties:
        v = np.round(v)
    v[rng.random(n) > frac_scored] = np.nan
    return v


def reference(values, labeled, k, sub_kwargs, seed, bitgen=np.random.PCG64):
    """Subsample.select's candidates (what its inner strategy is asked to score) and the rng after the draw."""
    n = values.shape[0]
    inner = Recorder()
    sub = Subsample(inner, **sub_kwargs)
    sub.values = values.copy()
    pool = Pool.empty(n, n_classes=2).label(labeled, np.zeros(labeled.shape[0], dtype=np.int64))
    sub.select(None, np.zeros((n, 1)), pool, k, rng=np.random.Generator(bitgen(seed)))
    return inner.seen[0], pool


def engine_for(values, pool, n_shards):
    unl = pool.unlabeled
    return LocalEngine.from_arrays({"values": values[unl], "index": unl}, n_shards=n_shards)


@pytest.mark.parametrize("n_shards", [1, 2, 5])
@pytest.mark.parametrize(("sub_kwargs", "k"), [
    ({"alpha": 40}, 5),
    ({"alpha": 0.3, "tau": 0.5}, 10),
    ({"alpha": 25, "weighting": "power"}, 3),
    ({"alpha": 30, "prune_below": 0.0}, 4),
    ({"alpha": 30, "prune_below": 5.0}, 4),   # keeps only the never-scored (NaN) items
    ({"alpha": 150, "prune_below": 5.0}, 90),  # prunes too many: all unlabelled stay eligible
    ({"alpha": 500}, 4),                        # m covers every eligible item: no draw
])
def test_same_candidates_as_subsample(n_shards, sub_kwargs, k):
    n = 300
    values = history(n, 1)
    labeled = np.arange(0, n, 7)
    ref, pool = reference(values, labeled, k, sub_kwargs, seed=4)
    with engine_for(values, pool, n_shards) as eng:
        rng = np.random.default_rng(4)
        got = sharded_candidates(eng, Subsample(Recorder(), **sub_kwargs), k, rng=rng)
    np.testing.assert_array_equal(got, ref)
    # the generator is left as the local draw leaves it (one Gumbel per eligible item when there is a draw)
    expect = np.random.default_rng(4)
    n_elig = pool.unlabeled.shape[0]
    if sub_kwargs.get("prune_below") is not None:
        kept = int((~(values[pool.unlabeled] < sub_kwargs["prune_below"])).sum())
        n_elig = kept if kept >= k else n_elig
    if Subsample(Recorder(), **sub_kwargs).n_candidates(n_elig, k) < n_elig:
        expect.gumbel(size=n_elig)
    else:
        assert got.shape[0] == n_elig
    assert rng.random() == expect.random()


def test_other_bit_generators_draw_on_the_driver():
    values = history(200, 2)
    labeled = np.arange(0, 200, 9)
    ref, pool = reference(values, labeled, 5, {"alpha": 30}, seed=11, bitgen=np.random.MT19937)
    with engine_for(values, pool, 3) as eng:
        got = sharded_candidates(eng, Subsample(Recorder(), alpha=30), 5,
                                 rng=np.random.Generator(np.random.MT19937(11)))
    np.testing.assert_array_equal(got, ref)


def test_never_scored_only_history_is_uniform_and_matches():
    values = np.full(120, np.nan)
    ref, pool = reference(values, np.array([0, 5]), 3, {"alpha": 20}, seed=0)
    with engine_for(values, pool, 4) as eng:
        got = sharded_candidates(eng, Subsample(Recorder(), alpha=20), 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(got, ref)
    assert got.shape == (20,)


def test_equal_weights_give_the_plain_gumbel_top_m():
    values = np.zeros(50)
    eng = LocalEngine.from_arrays({"values": values, "index": np.arange(50)}, n_shards=3)
    sub = Subsample(Recorder(), alpha=10)
    got = sharded_candidates(eng, sub, 2, rng=np.random.default_rng(3))
    # a plain reference: Gumbel-top-10 over log_w = 0 + the same noise
    g = np.random.default_rng(3).gumbel(size=50)
    np.testing.assert_array_equal(got, np.sort(np.argsort(-g, kind="stable")[:10]))


def write_round(folder: Path, ids: np.ndarray, vals: np.ndarray, *, parts: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(ids.shape[0]), parts)):
        write_outputs(folder / f"part-{i:06d}.parquet", ids[chunk].tolist(),
                      columns={"score_entropy": vals[chunk]}, row_group_size=17)
    return folder


def test_history_loaders_read_the_latest_values_per_shard(tmp_path):
    n = 400
    rng = np.random.default_rng(0)
    v1 = rng.normal(size=n)
    r1 = write_round(tmp_path / "r1", np.arange(n), v1)
    ids2 = np.sort(rng.choice(n, 90, replace=False))
    v2 = rng.normal(size=90)
    r2 = write_round(tmp_path / "r2", ids2, v2)
    ids3 = np.sort(rng.choice(n, 40, replace=False))
    v3 = rng.normal(size=40)
    r3 = write_round(tmp_path / "r3", ids3, v3, parts=1)
    labeled = np.sort(rng.choice(n, 30, replace=False))
    expect = v1.copy()  # the plain fold: later rounds overwrite earlier ones
    expect[ids2] = v2
    expect[ids3] = v3
    np.testing.assert_array_equal(latest_scores([r1, r2, r3], n), expect)
    unl = np.setdiff1d(np.arange(n), labeled)
    for shards in (1, 3, 7):
        loaders = history_loaders([r1, r2, r3], n, shards, exclude=labeled)
        assert sum(ld.size for ld in loaders) == unl.shape[0]
        got = [ld() for ld in loaders]
        np.testing.assert_array_equal(np.concatenate([g["index"] for g in got]), unl)
        np.testing.assert_array_equal(np.concatenate([g["values"] for g in got]), expect[unl])


def test_history_loaders_refuse_bad_rounds(tmp_path):
    r = write_round(tmp_path / "r", np.arange(10, 60), np.ones(50), parts=1)
    with pytest.raises(ValueError, match=r"ids outside 0 \.\. 39"):
        history_loaders([r], 40, 2)
    with pytest.raises(ValueError, match="no column 'score_margin'"):
        history_loaders([r], 100, 2, score="margin")
    with pytest.raises(ValueError, match="non-empty list"):
        history_loaders(str(r), 100, 2)
    s = tmp_path / "s"
    s.mkdir()
    write_outputs(s / "part-0.parquet", ["a", "b"], columns={"score_entropy": np.ones(2)})
    with pytest.raises(ValueError, match="must be integer item indices"):
        history_loaders([s], 100, 1)


def test_bad_values_are_named():
    eng = LocalEngine.from_arrays({"values": np.array([0.0, np.inf, 1.0]), "index": np.arange(3)}, n_shards=1)
    with pytest.raises(ValueError, match="finite or NaN.*position 1"):
        sharded_candidates(eng, Subsample(Recorder(), alpha=2), 1, rng=np.random.default_rng(0))
    assert not [k for k in eng.call(0, lambda st, _: list(st)) if k.startswith("_cs_")]  # nothing left behind
    eng = LocalEngine.from_arrays({"other": np.zeros(3)}, n_shards=1)
    with pytest.raises(ValueError, match="no array 'values'"):
        sharded_candidates(eng, Subsample(Recorder(), alpha=2), 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="must be a pickwise.wrappers.Subsample"):
        sharded_candidates(eng, object(), 1, rng=np.random.default_rng(0))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pickwise", "candidates", *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                          timeout=120)


def test_cli_writes_the_subsample_candidates(tmp_path):
    n = 500
    rng = np.random.default_rng(5)
    r1 = write_round(tmp_path / "r1", np.arange(n), rng.normal(size=n))
    ids2 = np.sort(rng.choice(n, 120, replace=False))
    r2 = write_round(tmp_path / "r2", ids2, rng.normal(size=120))
    labeled = np.sort(rng.choice(n, 25, replace=False))
    np.save(tmp_path / "labeled.npy", labeled)
    out = tmp_path / "cand.npy"
    res = run_cli("--history", str(r1), str(r2), "--n-items", str(n), "--labeled", str(tmp_path / "labeled.npy"),
                  "--k", "10", "--alpha", "60", "--tau", "0.7", "--seed", "9", "--shards", "3", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "60 candidates" in res.stdout
    ref, _ = reference(latest_scores([r1, r2], n), labeled, 10, {"alpha": 60, "tau": 0.7}, seed=9)
    np.testing.assert_array_equal(np.load(out), ref)
    # an existing output is never overwritten; bad input is one line naming the value
    again = run_cli("--history", str(r1), "--n-items", str(n), "--k", "10", "--alpha", "60", "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    bad = run_cli("--history", str(r1), "--n-items", str(n), "--k", "10", "--alpha", "-3", "--out", str(tmp_path / "x.npy"))
    assert bad.returncode == 2 and "alpha" in bad.stderr and "-3" in bad.stderr
    bad = run_cli("--history", str(tmp_path / "nope"), "--n-items", str(n), "--k", "10", "--alpha", "6",
                  "--out", str(tmp_path / "x.npy"))
    assert bad.returncode == 2 and "nope" in bad.stderr
    assert not (tmp_path / "x.npy").exists()


def test_a_file_that_is_not_parquet_is_named(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "part-0.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"cannot read Parquet file '.*part-0\.parquet'"):
        history_loaders([bad], 10, 1)
    from pickwise.cli import main

    assert main(["select", "--parquet", str(bad), "--strategy", "margin", "--k", "1", "--out",
                 str(tmp_path / "o.csv")]) == 2
    assert "cannot read Parquet file" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()


class MeanModel:
    """A fitted-model stand-in for scoring: probabilities from each row's mean (any row shape)."""

    def predict_proba(self, x):
        m = np.asarray(x, dtype=np.float64).reshape(len(x), -1).mean(axis=1)
        p = np.stack([m, 1.0 - m, np.full_like(m, 0.3)], axis=1) + 0.05
        return p / p.sum(axis=1, keepdims=True)


def test_history_from_an_image_folder_and_own_ids_goes_by_row(tmp_path):
    """Scored rounds carry each item's input row (column `row`), so an image folder (string ids: "auto"
    takes the rows) and a Parquet pool with ids of its own (key="row") feed candidate subsampling by
    item index, subset rounds included."""
    from PIL import Image

    from pickwise.engine import score_to_parquet
    from pickwise.engine.parquet import read_outputs

    rng = np.random.default_rng(0)
    pool = tmp_path / "imgs"
    for i in range(30):
        (pool / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(4, 4), dtype=np.uint8), mode="L").save(pool / f"c{i % 3}" / f"{i:02d}.png")
    model = MeanModel()
    r1 = score_to_parquet(lambda: model, pool, tmp_path / "r1", outputs=("probs",), scores=("entropy",), batch_size=7)
    cand = np.array([2, 5, 11, 17, 29])
    r2 = score_to_parquet(lambda: MeanModel(), pool, tmp_path / "r2", outputs=("probs",), scores=("margin", "entropy"),
                          batch_size=2, rows=cand)
    got = read_outputs(r2)
    assert got["row"].tolist() == cand.tolist() and got["id"].dtype.kind in "OU"  # paths as ids, rows as indices
    latest = latest_scores([r1, r2], 30)
    full = read_outputs(r1)
    expect = full["score_entropy"].copy()
    expect[cand] = got["score_entropy"]
    np.testing.assert_array_equal(latest, expect)
    labeled = np.array([0, 3])
    loaders = history_loaders([r1, r2], 30, 3, exclude=labeled)
    unl = np.setdiff1d(np.arange(30), labeled)
    np.testing.assert_array_equal(np.concatenate([ld()["values"] for ld in loaders]), latest[unl])
    ref, _ = reference(latest, labeled, 3, {"alpha": 9}, seed=2)
    with LocalEngine.from_loaders(loaders) as eng:
        np.testing.assert_array_equal(sharded_candidates(eng, Subsample(Recorder(), alpha=9), 3,
                                                         rng=np.random.default_rng(2)), ref)
    # a Parquet pool whose integer ids are not row numbers: still by row
    x = rng.random((12, 4))
    src = tmp_path / "pool.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": pa.array(np.arange(100, 112)), "x": pa.array(list(x))}), src)
    r3 = score_to_parquet(lambda: model, src, tmp_path / "r3", outputs=("probs",), scores=("entropy",), batch_size=5)
    np.testing.assert_array_equal(latest_scores([r3], 12, key="row"), read_outputs(r3)["score_entropy"])
    assert [ld.size for ld in history_loaders([r3], 12, 2, key="row")] == [6, 6]
    with pytest.raises(ValueError, match=r"ids outside 0 \.\. 11"):  # "auto": integer ids are the indices
        history_loaders([r3], 12, 2)
    with pytest.raises(ValueError, match="ids of .* must be integer item indices.*'row' column"):
        latest_scores([r1], 30, key="id")
