"""Cold start (issue 14): initial labels chosen by a strategy, runs from no labels, grid cells and their ids."""

import json

import numpy as np
import pytest

from pickwise.bench.config import ConfigError, parse_grid
from pickwise.cli import main
from pickwise.loop import cold_start_strategy, initial_pool, model_free, pool_rounds
from pickwise.pool import Pool
from pickwise.records import load_records
from pickwise.strategies import ProbCover, Random, TypiClust, Uncertainty
from pickwise.utils import derive_rng

from fakes import FakeModel, blobs


@pytest.fixture
def data():
    return blobs(120, n_features=4, n_classes=3, seed=3)


@pytest.mark.parametrize("strategy", [TypiClust(), ProbCover(), Random()], ids=repr)
@pytest.mark.parametrize("seed", [0, 7])
def test_initial_picks_equal_the_strategy_called_directly(data, strategy, seed):
    x, y = data
    pool = initial_pool(len(x), 12, y, seed=seed, n_classes=3, strategy=strategy, x=x)
    direct = strategy.select(None, x, Pool.empty(len(x), n_classes=3), 12, rng=derive_rng(seed, 2**20))
    assert pool.labeled.tolist() == sorted(direct.tolist())
    assert pool.labels[pool.labeled].tolist() == y[np.sort(direct)].tolist()


def test_initial_pool_refusals(data):
    x, y = data
    with pytest.raises(ValueError, match="needs x"):
        initial_pool(len(x), 5, y, seed=0, strategy=TypiClust())
    with pytest.raises(ValueError, match="'entropy' needs a trained model"):
        initial_pool(len(x), 5, y, seed=0, strategy=Uncertainty(), x=x)
    with pytest.raises(ValueError, match="not both"):
        initial_pool(len(x), 5, y, seed=0, strategy=TypiClust(), x=x, stratified=True)
    assert initial_pool(len(x), 0, y, seed=0).n_labeled == 0


def test_run_from_no_labels(data):
    x, y = data
    recs = list(pool_rounds(lambda: FakeModel(4, 3), Uncertainty(), x, Pool.empty(len(x), n_classes=3), y, k=6,
                            seed=4, rounds=3, initial_strategy=TypiClust(), evaluate=lambda m: {"accuracy": 0.5}))
    first = TypiClust().select(None, x, Pool.empty(len(x), n_classes=3), 6, rng=derive_rng(4, 0, 1))
    assert recs[0].n_labeled == 0 and recs[0].metrics == {} and recs[0].stop_kappa is None
    assert recs[0].selected == first.tolist()
    assert recs[0].extra == {"initial_strategy": "typiclust"}
    assert [r.n_labeled for r in recs] == [0, 6, 12, 18]
    assert all(r.metrics == {"accuracy": 0.5} for r in recs[1:])


def test_empty_pool_needs_an_initial_strategy(data):
    x, y = data
    with pytest.raises(ValueError, match="no labelled items"):
        next(pool_rounds(lambda: FakeModel(4, 3), Random(), x, Pool.empty(len(x)), y, k=5))
    with pytest.raises(ValueError, match="initial strategy 'entropy' needs a trained model"):
        next(pool_rounds(lambda: FakeModel(4, 3), Random(), x, Pool.empty(len(x)), y, k=5,
                         initial_strategy=Uncertainty()))


def test_cold_start_strategy_defaults():
    assert model_free(TypiClust()) and model_free(Random()) and not model_free(Uncertainty())
    assert cold_start_strategy(TypiClust()) == TypiClust()
    assert isinstance(cold_start_strategy(Uncertainty()), Random)
    assert cold_start_strategy(Uncertainty(), ProbCover()) == ProbCover()


RUN = ["run", "--dataset", "digits", "--max-train", "200", "--epochs", "3", "--k", "10", "--rounds", "2",
       "--no-progress"]


def test_cli_initial_zero(tmp_path, capsys):
    assert main([*RUN, "--initial", "0", "--strategy", "margin", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "stop κ" in out
    header, recs = load_records(tmp_path / "digits_mlp_margin_k10_seed0.jsonl")
    assert header["initial"] == [] and header["initial_strategy"] == "Random()"
    assert [r.n_labeled for r in recs] == [0, 10, 20]
    assert recs[0].metrics == {} and "accuracy" in recs[1].metrics


def test_cli_initial_strategy_matches_the_strategy(tmp_path):
    from pickwise.data import load

    assert main([*RUN, "--initial", "15", "--initial-strategy", "typiclust", "--out", str(tmp_path)]) == 0
    header, _ = load_records(tmp_path / "digits_mlp_entropy-from-typiclust_k10_seed0.jsonl")
    x = load("digits").x_train[:200]
    x = x.reshape(len(x), -1)
    direct = TypiClust().select(None, x, Pool.empty(200), 15, rng=derive_rng(0, 2**20))
    assert header["initial"] == sorted(direct.tolist())
    assert header["config"]["initial_strategy"] == "typiclust"


@pytest.mark.parametrize("extra, message", [
    (["--initial", "0", "--initial-strategy", "margin"], "initial strategy 'margin' needs a trained model"),
    (["--initial", "-1"], "--initial must be >= 0; got -1"),
    (["--initial-strategy", "typiclus"], "--initial-strategy"),
])
def test_cli_refusals(tmp_path, capsys, extra, message):
    assert main([*RUN, *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


GRID = {"datasets": ["digits"], "batch_sizes": [10], "rounds": 2, "seeds": 1, "initial": 20, "strategies": ["random"]}


#: benchmarks/paper.toml as it was when /work/results/paper was recorded (the grid has changed since)
PAPER_V1 = """
name = "paper"
description = "v1"
seeds = 5
initial = 100
models = ["mlp"]
datasets = ["mnist", "fashion-mnist", "letter", "pendigits", "optdigits"]
max_train = 4000
max_test = 2000
strategies = ["random", "least_confidence", "margin", "entropy", "coreset", "badge", "bald"]
stream = ["vessal", "vessal_pen", "stream_uniform"]
orders = ["iid", "pc"]
strategy_options = { n_draws = 20 }

[training]
hidden = 64
dropout = 0.2
epochs = 100
max_steps = 200
batch_size = 64
lr = 1e-3
stop_at_train_accuracy = 0.99

[[grid]]
batch_sizes = [100]
rounds = 8

[[grid]]
batch_sizes = [1000]
datasets = ["mnist", "fashion-mnist", "letter", "pendigits"]
max_train = 10000
rounds = 5
training = { max_steps = 500 }
"""


def test_old_cell_ids_unchanged(tmp_path):
    """Ids recorded by the version before initial_strategy/encoder existed (the first paper grid, small.toml)."""
    from pathlib import Path

    from pickwise.bench.config import load_grid

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    (tmp_path / "paper_v1.toml").write_text(PAPER_V1)
    paper = [c.id for c in load_grid(tmp_path / "paper_v1.toml").cells]
    assert paper[0] == "mnist_mlp_random_k100_s0_8598b3dbb3"
    assert paper[-1] == "pendigits_mlp_stream_uniform_pc_k1000_s4_dd3396c0be"
    small = [c.id for c in load_grid(root / "small.toml").cells]
    assert small[0] == "digits_mlp_random_k20_s0_b3a23b9c15"
    assert small[-1] == "digits_mlp_stream_uniform_iid_k20_s2_69b09bcee3"
    cell = parse_grid(GRID).cells[0]
    assert "initial_strategy" not in cell.to_dict() and "encoder" not in cell.to_dict()


def test_grid_initial_strategy_in_ids_only_when_set():
    plain = parse_grid(GRID).cells[0]
    cold = parse_grid({**GRID, "initial_strategy": "typiclust"}).cells[0]
    zero = parse_grid({**GRID, "initial": 0}).cells[0]
    assert cold.to_dict()["initial_strategy"] == "typiclust" and cold.id != plain.id
    assert cold.id.startswith("digits_mlp_random-from-typiclust_k10_s0_")
    assert zero.initial == 0 and zero.id != plain.id
    assert json.loads(json.dumps(cold.to_dict())) == cold.to_dict()
    from pickwise.bench.config import Cell

    assert Cell.from_dict(cold.to_dict()).id == cold.id


@pytest.mark.parametrize("extra, message", [
    ({"initial_strategy": "margin"}, "initial_strategy = 'margin': needs a trained model"),
    ({"initial_strategy": "typiclus"}, "unknown"),
    ({"initial": 0, "stream": ["vessal"]}, "initial = 0: stream selectors"),
    ({"initial_strategy": "typiclust", "stream": ["vessal"]}, "for pool strategies only"),
    ({"encoder": "bert"}, "encoder = 'bert'"),
    ({"encoder": "all-MiniLM-L6-v2"}, "not all text"),
    ({"initial": -1}, "initial = -1"),
])
def test_grid_refusals(extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_grid({**GRID, **extra})


def test_bench_cell_from_no_labels(tmp_path):
    from pickwise.bench.runner import run_cell

    cell = parse_grid({**GRID, "initial": 0, "strategies": ["typiclust"], "max_train": 150, "max_test": 50,
                       "training": {"epochs": 3, "max_steps": 20}}).cells[0]
    rec = run_cell(cell, tmp_path)
    assert [r["n_labeled"] for r in rec["rounds"]] == [0, 10, 20]
    assert rec["rounds"][0]["metrics"] == {}
    from pickwise.bench.report import validate_run

    assert validate_run(rec) is None
