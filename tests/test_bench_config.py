"""Grid configs: expansion into cells, defaults, ids, and validation messages naming the bad key/value."""

import pytest

from pickwise.bench import ConfigError, load_grid, parse_grid
from pickwise.bench.config import TRAINING_DEFAULTS, make_stream_selector, strategy_names

BASE = {"datasets": ["digits"], "batch_sizes": [10], "rounds": 2, "strategies": ["random"]}


def grid(**kw):
    return parse_grid({**BASE, **kw}, source="g.toml")


def test_expansion_defaults_and_ids():
    g = parse_grid({
        "name": "x", "seeds": [0, 3], "initial": 20, "datasets": ["digits"], "max_train": 500,
        "strategies": ["random", "margin"], "stream": ["vessal", "stream_uniform"], "orders": ["iid", "pc"],
        "training": {"epochs": 5},
        "grid": [{"batch_sizes": [10, 20], "rounds": 3},
                 {"batch_sizes": [100], "budget": 200, "training": {"hidden": 8}}],
    })
    assert g.name == "x"
    # (2 pool + 2 stream × 2 orders) × 2 seeds × 3 batch sizes
    assert len(g) == 6 * 2 * 3
    cells = {c.id: c for c in g.cells}
    assert len(cells) == len(g)
    big = [c for c in g.cells if c.k == 100]
    assert {c.rounds for c in big} == {2}
    assert all(c.training["hidden"] == 8 and c.training["epochs"] == 5 for c in big)  # tables merge
    small = [c for c in g.cells if c.k != 100]
    assert all(c.training["hidden"] == TRAINING_DEFAULTS["hidden"] for c in small)
    assert {c.order for c in g.cells if c.kind == "stream"} == {"iid", "pc"}
    assert all(c.order is None for c in g.cells if c.kind == "pool")
    c = g.cells[0]
    assert c.id.startswith(f"digits_mlp_{c.strategy}") and f"_k{c.k}_s{c.seed}_" in c.id
    # the id is a function of the whole configuration
    again = parse_grid({**BASE, "training": {"epochs": 5}})
    other = parse_grid({**BASE, "training": {"epochs": 6}})
    assert again.cells[0].id != other.cells[0].id
    assert parse_grid({**BASE, "training": {"epochs": 5}}).cells[0].id == again.cells[0].id
    # seeds as a count
    assert [c.seed for c in grid(seeds=3).cells] == [0, 1, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset": ["digits"]}, r"unknown key 'dataset' \(did you mean 'datasets'\?\)"),
        ({"datasets": ["mnst"]}, r"datasets\[0\] = 'mnst': unknown \(did you mean 'mnist'\?\)"),
        ({"datasets": ["sms-spam"]}, r"datasets\[0\] = 'sms-spam': unknown"),
        ({"strategies": ["random", "margn"]}, r"strategies\[1\] = 'margn'"),
        ({"stream": ["vesal"]}, r"stream\[0\] = 'vesal'.*did you mean 'vessal'"),
        ({"orders": ["iid", "sorted"]}, r"orders\[1\] = 'sorted'"),
        ({"models": ["mlp", "resnet"]}, r"models\[1\] = 'resnet'"),
        ({"batch_sizes": [10, 0]}, r"batch_sizes\[1\] = 0: must be >= 1"),
        ({"batch_sizes": 10}, r"batch_sizes = 10: must be a non-empty list"),
        ({"rounds": 2.5}, r"rounds = 2.5: must be an integer"),
        ({"budget": 30}, r"give rounds or budget, not both"),
        ({"seeds": [0, 0]}, r"seeds = \[0, 0\]: seeds repeat"),
        ({"seeds": -1}, r"seeds = -1"),
        ({"initial": -1}, r"initial = -1: must be >= 0"),
        ({"max_train": 50, "initial": 50}, r"max_train = 50 leaves no unlabelled pool"),
        ({"max_train": 25, "initial": 10}, r"initial \+ rounds·k = 10 \+ 2·10 = 30 exceeds max_train = 25"),
        ({"training": {"epoch": 3}}, r"training: unknown key 'epoch' \(did you mean 'epochs'\?\)"),
        ({"training": {"lr": -1}}, r"lr = -1: must be a positive number"),
        ({"training": {"dropout": 1.5}}, r"dropout = 1.5: must be a number in \[0, 1\)"),
        ({"training": {"dropout": 0.0}, "strategies": ["bald"]}, r"\['bald'\] need MC dropout"),
        ({"strategy_options": {"n_draw": 3}}, r"strategy_options: unknown key 'n_draw'"),
        ({"stream_options": {"lam": 0}}, r"lam = 0: must be a positive number"),
        ({"strategies": [], "stream": []}, r"nothing to run"),
    ],
)
def test_validation_names_the_bad_key_and_value(change, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_grid({**BASE, **change}, source="g.toml")
    assert str(err.value).startswith("g.toml")


def test_block_errors_say_which_block_and_budget_rules():
    with pytest.raises(ConfigError, match=r"\[\[grid\]\] #2: budget = 25 is not a multiple of batch size 10"):
        parse_grid({"datasets": ["digits"], "strategies": ["random"],
                    "grid": [{"batch_sizes": [10], "rounds": 1}, {"batch_sizes": [10], "budget": 25}]})
    with pytest.raises(ConfigError, match="missing key 'rounds'"):
        parse_grid({"datasets": ["digits"], "batch_sizes": [10], "strategies": ["random"]})
    with pytest.raises(ConfigError, match="missing key 'datasets'"):
        parse_grid({"batch_sizes": [10], "rounds": 1, "strategies": ["random"]})
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        parse_grid({**BASE, "colour": 1})
    by_budget = parse_grid({**{k: v for k, v in BASE.items() if k != "rounds"}, "budget": 30})
    assert {c.rounds for c in by_budget.cells} == {3}


def test_load_grid_reads_toml(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('name = "t"\ndatasets = ["digits"]\nbatch_sizes = [5]\nrounds = 1\nstrategies = ["random"]\n')
    assert len(load_grid(p)) == 5
    p.write_text("datasets = [digits")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_grid(p)
    with pytest.raises(FileNotFoundError):
        load_grid(tmp_path / "missing.toml")


def test_the_paper_grid_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    g = load_grid(root / "paper.toml")
    assert len(g) == 225 and g.description
    assert {c.options.get("protocol") for c in g.cells if c.kind == "stream"} == {"official"}
    for name, runs in (("paper_stream.toml", 216), ("paper_rescan.toml", 16)):
        g = load_grid(root / name)
        assert len(g) == runs and g.description, name


def test_name_tables():
    assert {"badge", "coreset", "random", "bald"} <= set(strategy_names())
    assert make_stream_selector("vessal").name == "vessal"
    assert make_stream_selector("vessal_pen", lam=0.1).lam == 0.1
    assert make_stream_selector("stream_uniform").name == "stream_uniform"
    with pytest.raises(ValueError, match="unknown stream selector"):
        make_stream_selector("nope")


def test_importing_the_bench_imports_neither_torch_nor_matplotlib():
    import subprocess
    import sys

    code = "import sys, pickwise.bench; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
