"""Faults and concurrency: locks against a second writer, stopping and killing a grid, file-system errors,
and the grid's progress in rounds. Real processes where it matters (kill -9, SIGTERM, a second writer)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pickwise.bench import load_runs, parse_grid, run_grid
from pickwise.cli import main
from pickwise.records import read_jsonl

REPO = Path(__file__).resolve().parents[1]

# scikit-learn models: the worker processes never import torch (fast to start)
GRID = {
    "name": "faults", "seeds": [0, 1], "initial": 10, "datasets": ["digits"], "max_train": 150, "max_test": 100,
    "models": ["logreg"], "batch_sizes": [10], "rounds": 3, "strategies": ["random", "margin"],
    "stream": ["stream_uniform"], "orders": ["iid"],
}

# imported by every Python process started with PYTHONPATH=<folder> (bench workers too): each records line
# then takes PICKWISE_TEST_DELAY seconds longer, so a grid of tiny runs lasts long enough to be stopped
SLOW = """
import os
if os.environ.get("PICKWISE_TEST_DELAY"):
    import time
    import pickwise.records as _records
    _write = _records.RecordWriter.write
    def write(self, obj, _write=_write):
        _write(self, obj)
        time.sleep(float(os.environ["PICKWISE_TEST_DELAY"]))
    _records.RecordWriter.write = write
"""


def grid_toml(path: Path, grid: dict) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in grid.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def outcome(out):
    """Every finished run minus its timings, by id."""
    res = {}
    for r in load_runs(out):
        rounds = [{k: v for k, v in row.items() if "seconds" not in k} for row in r["rounds"]]
        res[r["id"]] = (r["config"], rounds)
    return res


def children(pid: int) -> set[int]:
    """PIDs of the live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.add(int(d.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended (nobody reaped it yet)


def wait_until(cond, timeout: float, what: str, proc=None) -> None:
    deadline = time.time() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first ({proc.returncode}): {proc.stderr.read()}")
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_bench(tmp_path: Path, grid: Path, out: Path, delay: float = 0.25, group: bool = False) -> subprocess.Popen:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SLOW)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), "PICKWISE_TEST_DELAY": str(delay)}
    return subprocess.Popen([sys.executable, "-m", "pickwise", "bench", str(grid), "--out", str(out), "--jobs", "2",
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=group)


def complete_lines(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), f"{path} ends in half a line"
    return [json.loads(line) for line in raw.splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    s = run_grid(parse_grid(GRID), out, jobs=1, progress=False)
    assert s.finished == 6 and not s.failed
    return outcome(out)


# -- 1. one writer at a time ---------------------------------------------------------------------


def test_sigterm_stops_the_grid_cleanly_a_second_bench_is_refused_and_a_rerun_finishes(tmp_path, capsys, reference):
    from pickwise.bench.runner import LOCK_FILE

    grid, out = grid_toml(tmp_path / "g.toml", GRID), tmp_path / "out"
    child = start_bench(tmp_path, grid, out)
    try:
        wait_until(lambda: (out / "runs.jsonl").exists() and (out / "runs.jsonl").read_bytes().count(b"\n") >= 1,
                   60, "the first finished run", child)
        workers = children(child.pid)
        assert len(workers) >= 2  # two workers (and the resource tracker)
        # a second bench on the same folder is refused at once, naming the holder; a dry run needs no lock
        assert main(["bench", str(grid), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pickwise bench: error: another 'pickwise bench'") and f"(PID {child.pid})" in err
        assert err.count("\n") == 1
        assert main(["bench", str(grid), "--out", str(out), "--dry-run"]) == 0
        assert f"PID {child.pid} is running" in capsys.readouterr().out
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "To resume, run the same command again" in stderr
    assert f"pickwise bench {grid} --out {out} --jobs 2 --no-progress" in stderr
    assert "Traceback" not in stderr
    wait_until(lambda: not any(alive(p) for p in workers), 5, "the workers to end")
    kept = complete_lines(out / "runs.jsonl")
    assert 1 <= len(kept) < 6  # stopped mid-grid; whole lines only
    for p in (out / "runs").iterdir():
        assert p.suffix in (".jsonl", ".npz"), p  # no temporary files, no lock files
    assert not (out / LOCK_FILE).exists()
    session = read_jsonl(out / "sessions.jsonl")[-1]
    assert session["stopped"] == "SIGTERM" and session["finished"] == len(kept)

    # the same command again finishes the grid: finished runs skipped, results as an uninterrupted grid
    assert main(["bench", str(grid), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    assert f"{6 - len(kept)} runs finished, {len(kept)} skipped" in capsys.readouterr().out
    assert len(complete_lines(out / "runs.jsonl")) == 6
    assert outcome(out) == reference


def test_ctrl_c_to_the_process_group_stops_the_grid_with_status_130(tmp_path):
    grid, out = grid_toml(tmp_path / "g.toml", GRID), tmp_path / "out"
    child = start_bench(tmp_path, grid, out, group=True)  # its own process group, as in a terminal
    try:
        wait_until(lambda: (out / "runs.jsonl").exists(), 60, "the first finished run", child)
        procs = children(child.pid)
        os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: the parent and every worker get SIGINT
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, stderr
    assert stderr.startswith("pickwise bench: stopped by SIGINT: ") and "Traceback" not in stderr
    wait_until(lambda: not any(alive(p) for p in procs), 5, "the workers to end")
    assert 1 <= len(complete_lines(out / "runs.jsonl")) < 6


def test_kill_9_of_the_bench_parent_ends_its_workers(tmp_path):
    from pickwise._fs import lock_holder
    from pickwise.bench.runner import LOCK_FILE

    grid, out = grid_toml(tmp_path / "g.toml", GRID), tmp_path / "out"
    child = start_bench(tmp_path, grid, out)
    try:
        wait_until(lambda: any(p.stat().st_size for p in (out / "runs").glob("*.jsonl")) if (out / "runs").is_dir()
                   else False, 60, "a worker's first record", child)
        procs = children(child.pid)
        assert len(procs) >= 2
        assert lock_holder(out / LOCK_FILE) == str(child.pid)
    finally:
        child.kill()
        child.wait()
    wait_until(lambda: not any(alive(p) for p in procs), 5, f"the workers and resource tracker {procs} to end")
    assert lock_holder(out / LOCK_FILE) is None  # the lock died with its holder


def test_a_records_file_has_one_writer_process(tmp_path, capsys):
    from pickwise._fs import BusyError
    from pickwise.records import RecordWriter

    out = tmp_path / "runs"
    path = out / "digits_logreg_entropy_k10_seed0.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pickwise.records import RecordWriter; "
         "w = RecordWriter(sys.argv[1]); print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    run = ["run", "--model", "logreg", "--max-train", "150", "--initial", "10", "--k", "10", "--rounds", "2",
           "--out", str(out), "--no-progress"]
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(BusyError, match=f"PID {holder.pid}"):
            RecordWriter(path)
        assert main(run) == 2
        err = capsys.readouterr().err
        assert err == (f"pickwise run: error: {path} is being written by another process (PID {holder.pid}); "
                       "wait for it to finish, or write elsewhere\n")
        assert not path.exists() or path.read_text() == ""  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    assert main(run) == 0  # the lock died with its holder
    assert len(read_jsonl(path)) == 4  # header + rounds 0..2
    assert not list(out.glob(".*.lock"))  # released and removed


def test_writers_in_one_process_share_the_lock_and_release_it(tmp_path):
    from pickwise.records import RecordWriter

    path = tmp_path / "r.jsonl"
    a = RecordWriter(path)
    b = RecordWriter(path)  # same process: shared (a finished generator may still hold the first)
    lock = tmp_path / ".r.jsonl.lock"
    assert lock.read_text().strip() == str(os.getpid())
    a.write({"x": 1})
    a.close()
    assert lock.exists()  # b still holds it
    b.write({"x": 2})
    del b
    assert not lock.exists()
    assert read_jsonl(path) == [{"x": 1}, {"x": 2}]


def test_lock_helper_refuses_a_second_holder_and_survives_the_removal_race(tmp_path):
    from pickwise._fs import BusyError, acquire_lock, lock_holder

    path = tmp_path / "x.lock"
    script = ("import sys, time; from pickwise._fs import acquire_lock; h = acquire_lock(sys.argv[1], 'busy'); "
              "print('ready', flush=True); sys.stdin.readline(); h.release(); print('released', flush=True); "
              "time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        assert lock_holder(path) == str(other.pid)
        with pytest.raises(BusyError, match=f"holder {other.pid}$") as info:
            acquire_lock(path, "holder {pid}")
        assert info.value.pid == str(other.pid)
        fd = os.open(path, os.O_RDWR)  # opened before the holder removes the file
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "released"
        assert not path.exists() and lock_holder(path) is None
        with acquire_lock(path, "holder {pid}") as h:
            assert h.held and path.read_text().strip() == str(os.getpid())
            os.close(fd)
        assert not path.exists()
    finally:
        other.kill()
        other.wait()


# -- 3. file-system errors: one line, exit status 2, nothing half-written --------------------------


RUN = ["--model", "logreg", "--max-train", "150", "--initial", "10", "--no-progress"]


def failing_writes(monkeypatch, under: Path, after: int, code: int = errno.ENOSPC):
    """os.write fails with ``code`` for files under ``under`` from its ``after``-th call on; that call
    first writes half of its bytes (a torn line, unless the writer cuts it back)."""
    real = os.write
    calls = {"n": 0}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if not target.startswith(str(under)):
            return real(fd, data)
        calls["n"] += 1
        if calls["n"] == after:
            return real(fd, bytes(data)[: len(data) // 2])
        if calls["n"] > after:
            raise OSError(code, os.strerror(code))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def no_stray_files(folder: Path) -> None:
    stray = [p for p in folder.rglob("*") if p.name.endswith((".part", ".tmp", ".lock")) or ".tmp" in p.name]
    assert not stray, stray


def test_run_on_a_full_disk_names_the_file_and_leaves_whole_lines(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    args = ["run", *RUN, "--k", "10", "--rounds", "3", "--out", str(out)]
    failing_writes(monkeypatch, out, after=3)  # header and round 0 written, round 1 torn
    assert main(args) == 2
    path = out / "digits_logreg_entropy_k10_seed0.jsonl"
    assert capsys.readouterr().err == f"pickwise run: error: cannot write {path}: No space left on device\n"
    assert [r["type"] for r in complete_lines(path)] == ["header", "round"]
    monkeypatch.undo()
    import gc

    gc.collect()
    no_stray_files(out)
    assert main(args) == 0  # resumes after round 0
    assert [r.get("round") for r in complete_lines(path)] == [None, 0, 1, 2, 3]


def test_stream_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    failing_writes(monkeypatch, out, after=2)
    assert main(["stream", *RUN, "--budget", "20", "--segment", "50", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pickwise stream: error: cannot write {out}/stream_digits_") and err.count("\n") == 1
    assert err.endswith(".jsonl: No space left on device\n")
    (path,) = out.glob("*.jsonl")
    assert len(complete_lines(path)) == 1


def test_bench_on_a_full_disk_stops_the_grid_instead_of_failing_every_run(tmp_path, monkeypatch, capsys):
    grid, out = grid_toml(tmp_path / "g.toml", {**GRID, "seeds": [0]}), tmp_path / "out"
    failing_writes(monkeypatch, out / "runs", after=7)  # one run finished
    assert main(["bench", str(grid), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pickwise bench: error: cannot write {out}/runs/") and err.count("\n") == 1
    assert err.endswith(".jsonl: No space left on device\n")
    assert not (out / "failures.jsonl").exists()  # not recorded as a failure of the run
    runs = complete_lines(out / "runs.jsonl")
    for p in (out / "runs").glob("*.jsonl"):
        complete_lines(p)
    monkeypatch.undo()
    no_stray_files(out)
    assert main(["bench", str(grid), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    assert len(runs) == 1 and len(complete_lines(out / "runs.jsonl")) == 3


def test_bench_in_a_read_only_folder_is_one_line(tmp_path, monkeypatch, capsys):
    grid = grid_toml(tmp_path / "g.toml", GRID)
    real = Path.mkdir

    def mkdir(self, *a, **kw):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(["bench", str(grid), "--out", str(tmp_path / "ro" / "res"), "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"pickwise bench: error: cannot create the results folder {tmp_path}/ro/res: "
                                       "Read-only file system\n")


@pytest.mark.parametrize("cmd", ["run", "stream", "bench"])
def test_out_naming_an_existing_file_is_one_line(tmp_path, capsys, cmd):
    grid = grid_toml(tmp_path / "g.toml", GRID)
    file = tmp_path / "taken"
    file.write_text("mine\n")
    args = {"run": ["run", *RUN, "--out", str(file)], "stream": ["stream", *RUN, "--budget", "10", "--out", str(file)],
            "bench": ["bench", str(grid), "--out", str(file), "--no-progress"]}[cmd]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pickwise {cmd}: error: ") and str(file) in err and err.count("\n") == 1
    assert err.endswith((": File exists\n", ": Not a directory\n"))
    assert file.read_text() == "mine\n"


def test_select_with_folders_for_files_is_one_line(tmp_path, capsys):
    import numpy as np

    probs = tmp_path / "probs.npy"
    np.save(probs, np.full((5, 2), 0.5))
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["select", "--probs", str(folder), "--strategy", "margin", "--k", "2", "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pickwise select: error: ") and str(folder) in err and err.count("\n") == 1
    assert main(["select", "--probs", str(probs), "--strategy", "margin", "--k", "2", "--out", str(folder),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pickwise select: error: ") and str(folder) in err and err.count("\n") == 1


def test_select_leaves_no_part_file_behind(tmp_path, capsys):
    import numpy as np

    probs = tmp_path / "probs.npy"
    np.save(probs, np.full((5, 2), 0.5))
    (tmp_path / "out").mkdir()
    assert main(["select", "--probs", str(probs), "--strategy", "margin", "--k", "2", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "probs.npy"]


def test_os_errors_without_errno_and_other_bugs_keep_their_traceback(monkeypatch):
    from pickwise import cli

    def bug(args):
        raise OSError("a bug, not the file system")

    monkeypatch.setitem(cli.COMMANDS, "run", bug)
    with pytest.raises(OSError, match="a bug"):
        main(["run"])
    monkeypatch.setitem(cli.COMMANDS, "run", lambda args: {}["a bug"])
    with pytest.raises(KeyError):
        main(["run"])


def test_ctrl_c_in_any_command_is_one_line_and_status_130(monkeypatch, capsys):
    from pickwise import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "run", interrupted)
    assert main(["run"]) == 130
    assert capsys.readouterr().err == "pickwise run: interrupted\n"


def test_atomic_write_replaces_or_leaves_nothing(tmp_path, monkeypatch):
    from pickwise._fs import atomic_write, describe_os_error

    target = tmp_path / "t.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half")
        raise RuntimeError("the caller failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"] and target.read_text() == "old\n"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info, atomic_write(target, "w") as f:
        f.write("new\n")
    assert describe_os_error(info.value) == f"cannot write {target}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"] and target.read_text() == "old\n"
    monkeypatch.undo()
    with atomic_write(target, "w") as f:
        f.write("new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"] and target.read_text() == "new\n"


def test_describe_os_error():
    from pickwise._fs import annotate, describe_os_error

    assert describe_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", "/x/p")) == "cannot open /x/p: Is a directory"
    assert describe_os_error(annotate(OSError(errno.EROFS, "Read-only file system"), "cannot write", "/x/r")) == \
        "cannot write /x/r: Read-only file system"
    assert describe_os_error(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == \
        "cannot move /a to /b: Invalid cross-device link"
    assert describe_os_error(FileNotFoundError("no such file: /x")) == "no such file: /x"


# -- 4. progress in rounds --------------------------------------------------------------------------


class FakeBar:
    """Stands for the tqdm bar; notes every update with the number of finished runs at that moment."""

    made: list["FakeBar"] = []

    def __init__(self, total, desc, unit="round", *, enabled=True):
        self.total, self.n, self.updates = total, 0, []
        self.out = None
        FakeBar.made.append(self)

    def update(self, n=1):
        self.n += n
        runs = self.out / "runs.jsonl"
        self.updates.append((n, runs.read_bytes().count(b"\n") if runs.exists() else 0))

    def refresh(self):
        pass

    def set_postfix_str(self, s, refresh=True):
        pass

    def write(self, s):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_grid_bar_counts_rounds_of_every_worker(tmp_path, monkeypatch, jobs):
    from pickwise import progress

    FakeBar.made.clear()

    def bar(*a, **kw):
        b = FakeBar(*a, **kw)
        b.out = tmp_path
        return b

    monkeypatch.setattr(progress, "grid_bar", bar)
    g = parse_grid({**GRID, "seeds": [0], "strategies": ["margin"]})
    run_grid(g, tmp_path, jobs=jobs, progress=True)
    (b,) = FakeBar.made
    n_records = sum(len(r["rounds"]) for r in load_runs(tmp_path))
    assert n_records == 8 and b.total == n_records and b.n == n_records
    steps = [n for n, _ in b.updates if n]
    assert steps == [1] * n_records  # one update per round, as it is recorded (none left for the end)
    if jobs == 1:
        assert [runs for n, runs in b.updates if n][:4] == [0, 0, 0, 0]  # the first run's rounds, before it ends


def test_the_bar_starts_from_the_rounds_an_interrupted_session_recorded(tmp_path):
    from pickwise.bench.runner import _RoundCounter, expected_rounds, recorded_rounds

    g = parse_grid({**GRID, "seeds": [0], "strategies": ["margin"], "stream": ["stream_uniform"]})
    pool, stream = sorted(g.cells, key=lambda c: c.kind)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{pool.id}.jsonl").write_text('{"type": "header"}\n{"type": "round"}\n{"type": "ro')
    (tmp_path / "runs" / f"{stream.id}.jsonl").write_text('{"segment": 0}\n')
    assert recorded_rounds(tmp_path, pool) == 1 and recorded_rounds(tmp_path, stream) == 1
    assert expected_rounds(pool) == expected_rounds(stream) == 4
    bar = FakeBar(0, "x")
    bar.out = tmp_path
    counter = _RoundCounter([pool, stream], tmp_path, bar)
    assert (bar.total, bar.n) == (8, 2)
    counter.tick(pool.id)
    counter.finish(stream.id, None)  # failed after one window: its other rounds leave the total
    assert (bar.total, bar.n) == (5, 3)
    counter.tick(stream.id)  # late reports of a closed run are ignored
    counter.finish(pool.id, 5)  # more rounds than estimated: the total follows
    assert (bar.total, bar.n) == (6, 6)
