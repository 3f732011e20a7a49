"""Thread counts: the default rule on a fake machine, limit_threads applied to torch/BLAS/faiss and restored,
and the count every command runs with (--threads N or the rule)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pickwise import threads
from pickwise.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """A fake machine: ``set(cpus, load, runnable_others, host_cpus)``."""

    def set_(cpus: int, load: float, runnable: int = 0, host: int | None = None) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: host or cpus)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(threads, "_runnable_others", lambda: runnable)

    return set_


def test_free_cpus_rule() -> None:
    assert threads.free_cpus(cpus=8, busy=0) == 8
    assert threads.free_cpus(cpus=8, busy=2.6) == 5
    assert threads.free_cpus(cpus=8, busy=2.4) == 6
    assert threads.free_cpus(cpus=2, busy=1.0) == 1
    assert threads.free_cpus(cpus=2, busy=30.0) == 1  # never below one


def test_choose_by_model_size() -> None:
    for model in threads.SMALL_MODELS:
        assert threads.choose_threads(model=model, cpus=8, busy=0) == 1
    assert threads.choose_threads(model="cnn", cpus=8, busy=0) == 8
    assert threads.choose_threads(model="cnn", cpus=8, busy=3) == 5
    assert threads.choose_threads(n_params=10_000, cpus=8, busy=0) == 1
    assert threads.choose_threads(n_params=threads.SMALL_PARAMS, cpus=8, busy=1) == 7
    assert threads.choose_threads(cpus=4, busy=0) == 4  # nothing known about the work: the free CPUs


def test_busy_from_load_and_runnable_threads(machine) -> None:
    machine(cpus=2, load=0.0, runnable=0)
    assert threads.choose_threads(model="cnn") == 2
    machine(cpus=2, load=1.0, runnable=0)  # one process kept a core busy over the last minute
    assert threads.choose_threads(model="cnn") == 1
    machine(cpus=2, load=0.1, runnable=1)  # one started just now: the load average lags, the run queue does not
    assert threads.choose_threads(model="cnn") == 1
    machine(cpus=4, load=8.0, runnable=0, host=32)  # a big host's load spread over its 32 CPUs: 1 of our 4
    assert threads.busy_cpus(4) == pytest.approx(1.0)
    assert threads.choose_threads(model="cnn") == 3


@pytest.mark.parametrize("call, name", [
    (lambda: threads.free_cpus(cpus=0, busy=0), "cpus"),
    (lambda: threads.free_cpus(cpus=2, busy=float("nan")), "busy"),
    (lambda: threads.choose_threads(n_params=-1), "n_params"),
    (lambda: threads.set_threads(0), "threads"),
    (lambda: threads.limit_threads(1.5).__enter__(), "threads"),
])
def test_bad_values_name_themselves(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


def test_limit_threads_applies_and_restores() -> None:
    torch = pytest.importorskip("torch")
    faiss = pytest.importorskip("faiss")
    from threadpoolctl import threadpool_info

    before_torch, before_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    before_env = os.environ.get("OMP_NUM_THREADS")
    n = 3 if before_torch != 3 else 2
    with threads.limit_threads(n) as used:
        assert used == n
        assert torch.get_num_threads() == n
        assert faiss.omp_get_max_threads() == n
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(n)
        assert all(pool["num_threads"] == n for pool in threadpool_info())
    assert torch.get_num_threads() == before_torch
    assert faiss.omp_get_max_threads() == before_faiss
    assert os.environ.get("OMP_NUM_THREADS") == before_env


def test_a_given_count_wins_over_inner_defaults(machine) -> None:
    torch = pytest.importorskip("torch")
    machine(cpus=4, load=0.0)
    with threads.limit_threads(3), threads.limit_threads(model="mlp") as inner:  # an entry point applying the rule
        assert inner == 3 and torch.get_num_threads() == 3
    with threads.limit_threads(model="cnn") as outer:  # chosen by the rule, not given
        assert outer == 4
        with threads.limit_threads(model="mlp") as inner:
            assert inner == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 4


def _record_threads(monkeypatch: pytest.MonkeyPatch, command: str) -> list[int]:
    """Replace ``command`` by one that records torch's thread count (and the environment's) inside it."""
    from pickwise import cli

    torch = pytest.importorskip("torch")
    seen: list[int] = []

    def fake(args) -> int:
        seen.append(torch.get_num_threads())
        assert os.environ["OMP_NUM_THREADS"] == str(seen[-1])
        return 0

    monkeypatch.setitem(cli.COMMANDS, command, fake)
    return seen


@pytest.mark.parametrize("argv, cpus, load, want", [
    (["run", "--threads", "3"], 2, 0.0, 3),  # given: used as it is
    (["run"], 4, 0.0, 1),  # mlp (the default model) is small: one thread
    (["run", "--model", "cnn"], 4, 0.0, 4),  # cnn: the free CPUs
    (["run", "--model", "cnn"], 4, 2.0, 2),
    (["demo", "--threads", "2"], 4, 0.0, 2),
    (["stream", "--dataset", "digits", "--budget", "5"], 2, 0.0, 1),
    (["stream", "--threads", "2", "--budget", "5"], 2, 1.0, 2),
    (["select", "--strategy", "margin", "--k", "1", "--out", "o.csv"], 2, 0.0, 2),  # BLAS-bound selection
    (["select", "--strategy", "margin", "--k", "1", "--out", "o.csv"], 2, 1.0, 1),
    (["select", "--threads", "3", "--strategy", "margin", "--k", "1", "--out", "o.csv"], 2, 0.0, 3),
])
def test_commands_run_with_the_chosen_count(argv, cpus, load, want, machine, monkeypatch) -> None:
    seen = _record_threads(monkeypatch, argv[0])
    machine(cpus=cpus, load=load)
    torch = sys.modules["torch"]
    before = torch.get_num_threads()
    assert main(argv) == 0
    assert seen == [want]
    assert torch.get_num_threads() == before  # restored when the command returns


@pytest.mark.parametrize("command", ["run", "stream", "select"])
def test_threads_below_one_is_an_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, "--threads", "0"] + (["--strategy", "margin", "--k", "1", "--out", "o"] if command == "select" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"pickwise {command}: error: --threads must be >= 1; got 0"


def test_torch_imported_inside_the_command_gets_the_count(tmp_path: Path) -> None:
    """A fresh process: torch is first imported inside the command and starts with the count."""
    pytest.importorskip("torch")
    if threads.usable_cpus() < 2:
        pytest.skip("one CPU: torch's own default is already one thread")
    script = (
        "import sys\n"
        "import pickwise.cli as cli\n"
        "assert 'torch' not in sys.modules\n"
        "def fake(args):\n"
        "    import torch\n"
        "    print('threads', torch.get_num_threads())\n"
        "    return 0\n"
        "cli.COMMANDS['stream'] = fake\n"
        "sys.exit(cli.main(['stream', '--threads', '1', '--budget', '5']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    env["PYTHONPATH"] = str(ROOT / "src")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["threads", "1"]  # torch's own default: one per core


def _project(tmp_path: Path, model: str) -> str:
    from pickwise.project import cli as pcli

    texts = tmp_path / "texts.csv"
    with open(texts, "w", newline="") as f:
        csv.writer(f).writerows([("id", "text"), *((f"m-{i}", f"item number {i}") for i in range(20))])
    proj = str(tmp_path / "proj")
    assert pcli.main(["init", proj, "--data", str(texts), "--labels", "ham,spam", "--model", model]) == 0
    return proj


@pytest.mark.parametrize("extra, model, want", [(["--threads", "3"], "tfidf", 3), ([], "tfidf", 1), ([], "minilm", 4),
                                                (["--threads", "2"], "minilm", 2)])
def test_next_runs_the_round_with_the_count(extra, model, want, tmp_path, machine, monkeypatch, capsys) -> None:
    """``pickwise next``: --threads N, else the rule for the project's model (the round is stopped
    inside ``choose``, where it trains and selects)."""
    from pickwise.project import rounds

    torch = pytest.importorskip("torch")
    proj = _project(tmp_path, model)
    capsys.readouterr()
    machine(cpus=4, load=0.0)
    seen: list[int] = []

    def stop(**kw):
        seen.append(torch.get_num_threads())
        raise ValueError("stopped inside the round")

    monkeypatch.setattr(rounds, "choose", stop)
    assert main(["next", proj, "--k", "2", "--no-progress", *extra]) == 2
    assert "stopped inside the round" in capsys.readouterr().err
    assert seen == [want]
