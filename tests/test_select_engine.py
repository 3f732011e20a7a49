"""``pickwise select --engine local``: the same CSV as ``pickwise select`` without an engine.

Every engine strategy, with 1 and 3 shards, with labelled and excluded items (the shards hold the
other rows only), compared byte for byte with the single-machine command's output; and the
command's errors (one line, exit 2). The Ray engine's CLI tests are in test_engine_ray.py (they
share its Ray instance).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pickwise.cli import main
from pickwise.engine import ENGINE_STRATEGIES

N, K, D, T = 90, 4, 5, 6


def write_outputs(folder: Path, seed: int = 0) -> dict[str, Path]:
    """probs (rounded: tied scores), embeddings, MC draws, labelled indices and an exclude list."""
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(size=(N, K)), 0)  # many equal rows: ties for top-k
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    emb = (rng.normal(size=(N, D)) + rng.integers(0, 3, size=(N, 1)) * 2).astype(np.float32)
    mc = rng.dirichlet(np.ones(K), size=(T, N))
    paths = {name: folder / f"{name}.npy" for name in ("probs", "embeddings", "mc", "labeled")}
    np.save(paths["probs"], probs)
    np.save(paths["embeddings"], emb)
    np.save(paths["mc"], mc)
    np.save(paths["labeled"], np.array([3, 40, 41, 88]))
    paths["exclude"] = folder / "exclude.txt"
    paths["exclude"].write_text("0\n1\n29\n30\n31\n60\n")  # one whole shard boundary region taken
    return paths


def select(paths: dict[str, Path], out: Path, strategy: str, *extra: str) -> int:
    return main([
        "select", "--probs", str(paths["probs"]), "--embeddings", str(paths["embeddings"]),
        "--mc-probs", str(paths["mc"]), "--labeled", str(paths["labeled"]), "--exclude", str(paths["exclude"]),
        "--strategy", strategy, "--k", "12", "--seed", "3", "--out", str(out), "--no-progress", *extra,
    ])


@pytest.mark.parametrize("strategy", ENGINE_STRATEGIES)
def test_local_engine_writes_the_same_picks(tmp_path, strategy, capsys):
    paths = write_outputs(tmp_path)
    assert select(paths, tmp_path / "plain.csv", strategy) == 0
    plain = (tmp_path / "plain.csv").read_text()
    chosen = [int(line.split(",")[1]) for line in plain.splitlines()[1:]]
    assert len(chosen) == 12 and not set(chosen) & {0, 1, 3, 29, 30, 31, 40, 41, 60, 88}
    for shards in ("1", "3", "7"):
        out = tmp_path / f"engine{shards}.csv"
        assert select(paths, out, strategy, "--engine", "local", "--shards", shards) == 0, capsys.readouterr().err
        assert out.read_text() == plain, (strategy, shards)
    assert "on the local engine (7 shards)" in capsys.readouterr().out


def test_engine_without_labelled_items_and_with_a_whole_shard_excluded(tmp_path):
    paths = write_outputs(tmp_path, seed=1)
    np.save(paths["labeled"], np.array([], dtype=np.int64))
    paths["exclude"].write_text("".join(f"{i}\n" for i in range(30)))  # shard 0 of 3 is empty
    for strategy in ("coreset", "badge", "margin"):
        assert select(paths, tmp_path / "plain.csv", strategy) == 0
        assert select(paths, tmp_path / "eng.csv", strategy, "--engine", "local", "--shards", "3") == 0
        assert (tmp_path / "eng.csv").read_text() == (tmp_path / "plain.csv").read_text(), strategy


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "random", "--engine", "local"],
         ("--engine local runs the strategies least_confidence, margin, entropy, bald, variation_ratio, mean_std, "
          "max_entropy, badge, coreset, dbal; got --strategy 'random'")),
        (["--strategy", "margin", "--engine", "local", "--shards", "0"], "--shards must be >= 1; got 0"),
        (["--strategy", "margin", "--engine", "local", "--shards", "91"], "--shards 91 exceeds the 90 items"),
        (["--strategy", "margin", "--shards", "2"], "--shards needs --engine local or --engine ray"),
        (["--strategy", "margin", "--engine", "local", "--address", "127.0.0.1:1"],
         "--address '127.0.0.1:1' needs --engine ray"),
        (["--strategy", "margin", "--approximate"], "--approximate needs --engine local or --engine ray"),
        (["--strategy", "margin", "--engine", "local", "--approximate"],
         "--approximate is for --strategy badge (k-means||) or coreset (two-round); --strategy margin is exact"),
    ],
)
def test_engine_option_errors_are_one_line(tmp_path, capsys, extra, message):
    paths = write_outputs(tmp_path)
    code = main(["select", "--probs", str(paths["probs"]), "--k", "3", "--out", str(tmp_path / "o.csv"),
                 "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("pickwise select: error: "), err
    assert message in err
    assert not (tmp_path / "o.csv").exists()


def test_engine_needs_the_strategy_arrays(tmp_path, capsys):
    paths = write_outputs(tmp_path)
    code = main(["select", "--probs", str(paths["probs"]), "--strategy", "badge", "--k", "3", "--engine", "local",
                 "--out", str(tmp_path / "o.csv"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err == "pickwise select: error: --strategy badge with --engine needs --embeddings\n"


def test_bad_probabilities_are_named_by_item_on_the_engine(tmp_path, capsys):
    paths = write_outputs(tmp_path)
    p = np.load(paths["probs"])
    p[70] = [0.5, 0.5, 0.5, -0.5]
    np.save(paths["probs"], p)
    assert select(paths, tmp_path / "plain.csv", "margin") == 2
    plain = capsys.readouterr().err
    assert select(paths, tmp_path / "eng.csv", "margin", "--engine", "local", "--shards", "3") == 2
    assert capsys.readouterr().err == plain and "70" in plain, plain


def test_ray_missing_is_the_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    paths = write_outputs(tmp_path)
    assert select(paths, tmp_path / "o.csv", "margin", "--engine", "ray") == 2
    assert capsys.readouterr().err == (
        'pickwise select: error: the Ray engine needs ray: pip install "pickwise[distributed]"\n'
    )


@pytest.mark.parametrize("strategy", ["badge", "coreset"])
def test_approximate_selection_from_the_cli(tmp_path, strategy):
    """--approximate: k distinct unlabelled, unexcluded picks, the same for the same seed and shards."""
    paths = write_outputs(tmp_path)
    for out in ("a.csv", "b.csv"):
        assert select(paths, tmp_path / out, strategy, "--engine", "local", "--shards", "3", "--approximate") == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    rows = (tmp_path / "a.csv").read_text().splitlines()[1:]
    picked = [int(r.split(",")[1]) for r in rows]
    excluded = {int(v) for v in paths["exclude"].read_text().split()}
    assert len(set(picked)) == len(picked) > 0
    assert not set(picked) & (set(np.load(paths["labeled"]).tolist()) | excluded)


def test_two_level_badge_from_the_cli(tmp_path, capsys):
    """--two-level (two-level D² sampling): the plain CSV on this pool; refused outside exact badge."""
    paths = write_outputs(tmp_path)
    assert select(paths, tmp_path / "plain.csv", "badge") == 0
    assert select(paths, tmp_path / "two.csv", "badge", "--engine", "local", "--shards", "3", "--two-level") == 0
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "plain.csv").read_text()
    capsys.readouterr()
    assert select(paths, tmp_path / "x.csv", "coreset", "--engine", "local", "--two-level") == 2
    assert "--two-level is for exact --strategy badge" in capsys.readouterr().err
    assert select(paths, tmp_path / "x.csv", "badge", "--engine", "local", "--two-level", "--approximate") == 2
    assert "with --approximate" in capsys.readouterr().err
    assert select(paths, tmp_path / "x.csv", "badge", "--two-level") == 2
    assert "--two-level needs --engine" in capsys.readouterr().err
