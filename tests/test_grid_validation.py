"""Grids are validated when parsed: sizes capped, values finite and in range, key paths in every
message; own data files run through the bench (issue 12, part C)."""

import gzip
import shutil
import time

import numpy as np
import pytest

from pickwise.bench import (
    ConfigError,
    load_grid,
    load_runs,
    parse_grid,
    run_grid,
    write_report,
)
from pickwise.bench.config import LIMITS, MAX_CELLS, MAX_SEEDS
from pickwise.cli import main

BASE = {"datasets": ["digits"], "batch_sizes": [10], "rounds": 2, "strategies": ["random"]}


def bad(message, **kw):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=message) as err:
        parse_grid({**BASE, **kw}, source="g.toml")
    assert time.perf_counter() - t0 < 2  # refused before anything big is built
    assert str(err.value).startswith("g.toml")
    return str(err.value)


def test_seed_and_cell_counts_are_capped_before_anything_is_built():
    bad(rf"seeds = 1000000000: must be <= {MAX_SEEDS}", seeds=1_000_000_000)
    bad(rf"seeds = a list of 10001 seeds: at most {MAX_SEEDS}", seeds=list(range(10_001)))
    # 10000 seeds × 101 batch sizes × 1 strategy > 1,000,000 runs
    msg = bad(r"1010000 runs .*at most 1000000", seeds=10_000, batch_sizes=list(range(1, 102)))
    assert "10000 seeds" in msg and str(MAX_CELLS) in msg
    assert len(parse_grid({**BASE, "seeds": MAX_SEEDS})) == MAX_SEEDS  # the limit itself is fine


@pytest.mark.parametrize("change, message", [
    ({"batch_sizes": [1e12]}, r"batch_sizes\[0\] = 1000000000000.0: must be an integer"),
    ({"batch_sizes": [10**12]}, r"batch_sizes\[0\] = 1000000000000: must be <= 1e\+07"),
    ({"batch_sizes": [10, 10]}, r"batch_sizes = \[10, 10\]: batch sizes repeat"),
    ({"batch_sizes": [-5]}, r"batch_sizes\[0\] = -5: must be >= 1"),
    ({"rounds": 10**7}, r"rounds = 10000000: must be <= 100000"),
    ({"max_test": 0}, r"max_test = 0: must be >= 1"),
    ({"segment": -1}, r"segment = -1: must be >= 1"),
    ({"initial": True}, r"initial = True: must be an integer"),
    ({"seeds": [0, -3]}, r"seeds\[1\] = -3: must be >= 0"),
    ({"seeds": [0, 2**40]}, r"seeds\[1\] = 1099511627776: must be <= "),
    ({"seeds": 0}, r"seeds = 0: must be a count >= 1"),
    ({"training": {"hidden": 0}}, r"training.hidden = 0: must be >= 1"),
    ({"training": {"max_steps": 2.5}}, r"training.max_steps = 2.5: must be an integer"),
    ({"training": {"lr": float("inf")}}, r"training.lr = inf: must be a finite number"),
    ({"training": {"lr": float("nan")}}, r"training.lr = nan: must be a finite number"),
    ({"training": {"lr": "fast"}}, r"training.lr = 'fast': must be a positive number"),
    ({"training": {"stop_at_train_accuracy": 0}}, r"stop_at_train_accuracy = 0: must be a positive number"),
    ({"stream": ["vessal"], "stream_options": {"lam": float("inf")}}, r"stream_options.lam = inf: must be a finite"),
    ({"stream": ["vessal"], "stream_options": {"lam": -1.0}}, r"stream_options.lam = -1.0: must be a positive"),
    ({"stream": ["vessal"], "stream_options": {"window": 0}}, r"stream_options.window = 0: must be >= 1"),
    ({"stream": ["vessal"], "stream_options": {"reset_selector": "yes"}}, r"reset_selector = 'yes': must be true"),
    ({"strategy_options": {"n_draws": 0}}, r"strategy_options.n_draws = 0: must be >= 1"),
    ({"strategy_options": {"n_draws": 10**6}}, r"strategy_options.n_draws = 1000000: must be <= 10000"),
    ({"strategy_options": {"chunk_size": 1.5}}, r"strategy_options.chunk_size = 1.5: must be an integer"),
    ({"initial": 10**9}, r"initial = 1000000000: must be <= 1e\+08"),
    ({"max_train": 100, "initial": 50, "rounds": 6}, r"initial \+ rounds·k = 50 \+ 6·10 = 110 exceeds max_train = 100"),
])
def test_every_cell_would_fail_so_the_grid_is_refused(change, message):
    bad(message, **change)


def test_messages_name_the_key_path_in_blocks():
    grid = {"datasets": ["digits"], "strategies": ["random"], "rounds": 1,
            "grid": [{"batch_sizes": [10]}, {"batch_sizes": [10, 10**12]}]}
    with pytest.raises(ConfigError, match=r"\[\[grid\]\] #2: grid\[1\]\.batch_sizes\[1\] = 1000000000000: must be <="):
        parse_grid(grid, source="g.toml")
    grid = {"datasets": ["digits"], "strategies": ["random"], "rounds": 1, "batch_sizes": [0],
            "grid": [{"initial": 5}]}
    with pytest.raises(ConfigError, match=r"#1: batch_sizes\[0\] = 0"):  # from the top level: no grid[0].
        parse_grid(grid, source="g.toml")
    grid = {"datasets": ["digits"], "strategies": ["random"], "batch_sizes": [5], "rounds": 1,
            "grid": [{"training": {"lr": float("inf")}}]}
    with pytest.raises(ConfigError, match=r"grid\[0\]\.training\.lr = inf"):
        parse_grid(grid, source="g.toml")


def test_limits_table_is_the_one_place_and_covers_every_option():
    from pickwise.bench.config import (
        STRATEGY_OPTION_KEYS,
        STREAM_OPTION_KEYS,
        TRAINING_DEFAULTS,
    )

    keys = {f"training.{k}" for k in TRAINING_DEFAULTS} | {f"strategy_options.{k}" for k in STRATEGY_OPTION_KEYS}
    keys |= {f"stream_options.{k}" for k in STREAM_OPTION_KEYS}
    assert keys <= set(LIMITS)


def test_dry_run_refuses_a_bad_grid_with_one_line(tmp_path, capsys):
    p = tmp_path / "g.toml"
    p.write_text('datasets = ["digits"]\nstrategies = ["random"]\nrounds = 2\nseeds = 1000000000\n'
                 "[[grid]]\nbatch_sizes = [10]\n[[grid]]\nbatch_sizes = [1e12]\n")
    assert main(["bench", str(p), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pickwise bench: error:") and "seeds = 1000000000" in err[0]
    p.write_text('datasets = ["digits"]\nstrategies = ["random"]\nrounds = 2\n'
                 "[[grid]]\nbatch_sizes = [10]\n[[grid]]\nbatch_sizes = [1e12]\n")
    assert main(["bench", str(p), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "grid[1].batch_sizes[0] = 1000000000000.0: must be an integer" in err


# -- your own data ------------------------------------------------------------------------------------


def write_csv(path, n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    with open(path, "w") as f:
        f.write("a,b,c,kind\n")
        for xi, yi in zip(x, y):
            f.write(",".join(f"{v:.5f}" for v in xi) + f",{'yes' if yi else 'no'}\n")
    return x, y


OWN = """
name = "own"
seeds = [0]
initial = 10
max_train = 100
max_test = 30
batch_sizes = [10]
rounds = 2
strategies = ["random", "margin"]
stream = ["stream_uniform"]
training = {{ hidden = 8, epochs = 2, max_steps = 5 }}
{datasets}
"""


def test_own_csv_runs_through_the_bench_with_readable_stable_ids(tmp_path):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    write_csv(tmp_path / "proj" / "data" / "my table.csv")
    grid_file = tmp_path / "proj" / "grid.toml"
    grid_file.write_text(OWN.format(datasets='[datasets.mine]\npath = "data/my table.csv"\nlabel_column = "kind"\n'))
    g = load_grid(grid_file)  # the path is relative to the grid file's folder, not the current one
    assert len(g) == 3 and all(c.id.startswith("mine_mlp_") for c in g.cells)
    s = run_grid(g, tmp_path / "res", jobs=1, progress=False)
    assert s.finished == 3 and not s.failed, s.errors
    runs = load_runs(tmp_path / "res")
    assert {r["config"]["dataset"] for r in runs} == {"mine"} and all(r["n_pool"] == 100 for r in runs)
    assert all(r["n_classes"] == 2 and r["config"]["data"]["label_column"] == "kind" for r in runs)
    # the report reads them like any other runs
    text = write_report(tmp_path / "res", tmp_path / "rep", grid=g).read_text()
    assert "| mine | mlp | 10 |" in text
    # moving the project keeps the ids (the content is hashed, not the place); editing the data changes them
    shutil.copytree(tmp_path / "proj", tmp_path / "moved")
    assert [c.id for c in load_grid(tmp_path / "moved" / "grid.toml").cells] == [c.id for c in g.cells]
    write_csv(tmp_path / "moved" / "data" / "my table.csv", seed=1)
    assert not {c.id for c in load_grid(tmp_path / "moved" / "grid.toml").cells} & {c.id for c in g.cells}
    # and a run on changed data is refused rather than recorded under the old id
    shutil.copy(tmp_path / "moved" / "data" / "my table.csv", tmp_path / "proj" / "data" / "my table.csv")
    from pickwise.bench import runner

    runner._DATA.clear()  # as in a fresh worker process (the cached copy is the hashed content)
    s = run_grid(g, tmp_path / "res2", jobs=1, progress=False)
    assert len(s.failed) == 3 and "changed since the grid was read" in next(iter(s.errors.values()))


def test_own_files_in_a_list_and_tsv_gz_tables(tmp_path):
    x, y = write_csv(tmp_path / "plain.csv")
    with gzip.open(tmp_path / "pm.tsv.gz", "wt") as f:
        f.write("f1\tf2\tf3\ttarget\n")
        for xi, yi in zip(x, y):
            f.write("\t".join(f"{v:.5f}" for v in xi) + f"\t{yi}\n")
    (tmp_path / "g.toml").write_text(OWN.format(datasets='datasets = ["plain.csv", "pm.tsv.gz", "digits"]'))
    g = load_grid(tmp_path / "g.toml")
    assert sorted({c.dataset for c in g.cells}) == ["digits", "plain", "pm"]
    cells = [c for c in g.cells if c.dataset == "pm" and c.strategy == "random"]
    run_grid(cells, tmp_path / "res", jobs=1, progress=False)
    (r,) = load_runs(tmp_path / "res")
    assert r["n_pool"] == 100 and r["n_classes"] == 2 and r["id"].startswith("pm_mlp_random_k10_s0_")


@pytest.mark.parametrize("datasets, message", [
    ('datasets = ["missing.csv"]', r"datasets\[0\] = 'missing.csv'.*not found \(relative paths start at the grid"),
    ('datasets = ["x.xlsx/"]', r"unsupported file type"),
    ('[datasets.a]\npath = "plain.csv"\nlabel = "y"\n', r"datasets.a: unknown key 'label' \(did you mean"),
    ('[datasets.a]\npath = "plain.csv"\ntest_size = 1.5\n', r"datasets.a.test_size = 1.5: must be a number in \(0, 1\)"),
    ('[datasets.a]\npath = 3\n', r"datasets.a.path = 3: must be the path of a data file"),
    ('datasets = ["plain.csv", "sub/plain.csv"]', r"dataset names repeat \(plain\)"),
    ('datasets = ["mnst"]', r"datasets\[0\] = 'mnst': unknown \(did you mean 'mnist'\?\)"),
])
def test_own_data_errors_name_the_key(tmp_path, datasets, message):
    write_csv(tmp_path / "plain.csv")
    (tmp_path / "sub").mkdir()
    write_csv(tmp_path / "sub" / "plain.csv")
    (tmp_path / "g.toml").write_text(OWN.format(datasets=datasets))
    with pytest.raises(ConfigError, match=message):
        load_grid(tmp_path / "g.toml")
