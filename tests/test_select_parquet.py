"""Model outputs as Parquet (pickwise.engine.parquet) and ``pickwise select --parquet``: the picks of the .npy path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_select_engine import write_outputs

from pickwise.cli import main
from pickwise.engine import LocalEngine
from pickwise.engine.parquet import parquet_loaders, read_outputs, write_outputs as write_parquet

IDS = [f"item-{i:03d}" for i in range(90)]


def as_parquet(paths: dict[str, Path], folder: Path, split: int = 50) -> Path:
    """The .npy outputs of test_select_engine as two Parquet files (rows 0..split-1, split..89), small row groups;
    the exclude list rewritten as ids."""
    rows = [int(v) for v in paths["exclude"].read_text().split()]
    paths["exclude"].write_text("".join(f"{IDS[r]}\n" for r in rows))
    probs, emb, mc = (np.load(paths[n]) for n in ("probs", "embeddings", "mc"))
    folder.mkdir()
    for name, sl in (("part-0.parquet", slice(0, split)), ("part-1.parquet", slice(split, None))):
        write_parquet(folder / name, IDS[sl], probs=probs[sl], embeddings=emb[sl], mc_probs=mc[:, sl],
                      columns={"score_margin": np.zeros(len(IDS[sl]))}, row_group_size=16)
    return folder


def npy_select(paths, tmp_path, out, strategy, *extra):
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in IDS))
    return main(["select", "--probs", str(paths["probs"]), "--embeddings", str(paths["embeddings"]), "--mc-probs",
                 str(paths["mc"]), "--ids", str(tmp_path / "ids.txt"), "--labeled", str(paths["labeled"]),
                 "--exclude", str(paths["exclude"]), "--strategy", strategy, "--k", "12", "--seed", "3", "--out",
                 str(out), "--no-progress", *extra])


def parquet_select(source, paths, out, strategy, *extra):
    return main(["select", "--parquet", str(source), "--labeled", str(paths["labeled"]), "--exclude",
                 str(paths["exclude"]), "--strategy", strategy, "--k", "12", "--seed", "3", "--out", str(out),
                 "--no-progress", *extra])


def test_write_then_read_round_trips(tmp_path):
    paths = write_outputs(tmp_path)
    src = as_parquet(paths, tmp_path / "pq")
    out = read_outputs(src)
    assert [str(i) for i in out["id"]] == IDS
    assert np.array_equal(out["probs"], np.load(paths["probs"]))
    assert np.array_equal(out["embeddings"], np.load(paths["embeddings"])) and out["embeddings"].dtype == np.float32
    assert np.array_equal(out["mc_probs"], np.load(paths["mc"]))  # (T, N, K), draws first
    assert out["score_margin"].shape == (90,)
    # shard loaders read their own rows (across the file boundary and row groups), minus the excluded ones
    drop = [3, 40, 49, 50, 88]
    parts = [load() for load in parquet_loaders(src, ["probs", "mc_probs"], 4, exclude=drop, index="index")]
    kept = np.setdiff1d(np.arange(90), drop)
    assert np.array_equal(np.concatenate([p["index"] for p in parts]), kept)
    assert np.array_equal(np.concatenate([p["probs"] for p in parts]), np.load(paths["probs"])[kept])
    assert np.array_equal(np.concatenate([p["mc_probs"] for p in parts]), np.moveaxis(np.load(paths["mc"]), 1, 0)[kept])
    eng = LocalEngine.from_loaders(parquet_loaders(src, ["embeddings"], 3))
    assert eng.sizes == (30, 30, 30)


@pytest.mark.parametrize("strategy", ["margin", "bald", "badge", "coreset"])
def test_select_parquet_writes_the_npy_csv(tmp_path, strategy):
    paths = write_outputs(tmp_path)
    src = as_parquet(paths, tmp_path / "pq")
    assert npy_select(paths, tmp_path, tmp_path / "npy.csv", strategy) == 0
    assert parquet_select(src, paths, tmp_path / "pq.csv", strategy) == 0
    assert (tmp_path / "pq.csv").read_text() == (tmp_path / "npy.csv").read_text()
    assert parquet_select(src, paths, tmp_path / "eng.csv", strategy, "--engine", "local", "--shards", "3") == 0
    assert (tmp_path / "eng.csv").read_text() == (tmp_path / "npy.csv").read_text()
    assert "item-" in (tmp_path / "pq.csv").read_text()


def test_parquet_errors_are_one_line(tmp_path, capsys):
    paths = write_outputs(tmp_path)
    src = as_parquet(paths, tmp_path / "pq")
    assert parquet_select(src, paths, tmp_path / "o.csv", "margin", "--probs", str(paths["probs"])) == 2
    assert "--parquet" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    (tmp_path / "empty").mkdir()
    assert parquet_select(tmp_path / "empty", paths, tmp_path / "o.csv", "margin") == 2
    assert "no .parquet files directly inside" in capsys.readouterr().err
    only = tmp_path / "only.parquet"
    write_parquet(only, IDS, embeddings=np.load(paths["embeddings"]))
    assert parquet_select(only, paths, tmp_path / "o.csv", "badge", "--engine", "local") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the column 'probs'" in err
    with pytest.raises(ValueError, match="ids must be unique"):
        write_parquet(tmp_path / "dup.parquet", ["a", "a"], probs=np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"mc_probs must have shape \(T, N, K\) with N = 2 ids"):
        write_parquet(tmp_path / "bad.parquet", ["a", "b"], mc_probs=np.full((2, 3, 2), 0.5))
