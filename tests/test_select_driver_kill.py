"""A ``pickwise select`` driver killed mid-selection reruns from the saved Parquet scores to the same picks.

Both engines: ``--engine local`` (the selection runs in the driver) and ``--engine ray --shards 2`` (the
driver starts a local Ray instance: GCS, raylet, two shard actors, agents). The reference is an
undisturbed ``--engine local`` run; each killed driver's rerun must write a byte-identical CSV.

"Mid-selection" is observable: ``pickwise select`` shows the k-means++ progress bar on stderr. The bar
opens inside the selection loop, after every shard has loaded its rows and answered the first round
(the first centre fetched from its shard). The test reads stderr until the bar shows ``n/400`` with
n < 400, then SIGKILLs the driver at once. No fixed sleep: Ray's start-up takes 4–6 s on a 2-core
machine, its 400 rounds about 3 s after the bar opens (the local engine's 0.2 s), so the kill lands well
inside the loop; a driver that finished first would exit 0 and write the CSV, and fail the test loudly.
(Waiting for a count above 0 is not portable: tqdm redraws at most every 0.5 s, longer than the local
selection and not much shorter than Ray's on a fast machine.)

A SIGKILLed driver cannot shut Ray down. Measured with Ray 2.60: the GCS and raylet die with it (Ray
binds them to the driver's life), the shard workers (each in its own process group, same session) exit
a few seconds later, but the dashboard agent and the runtime-env agent were still alive a minute on. So the
driver runs in a session of its own (``start_new_session=True``); after the kill the test kills the
driver's process group and every process left in that session, and asserts none survives. Ray's files
go to a short private directory (``RAY_TMPDIR``, removed at the end); every Ray listener must be on
127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, as tests/conftest.py sets), checked at the kill.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from raytools import tcp_listeners

from pickwise.engine.parquet import write_outputs

ROOT = Path(__file__).resolve().parents[1]
# without ray the Ray test skips, except under CI (CI=true installs the distributed extra), where it must run
NO_RAY = importlib.util.find_spec("ray") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes")
K = 400
BAR = re.compile(rb"k-means\+\+ picks:[^\r\n]*?\|\s*(\d+)/" + str(K).encode())
# 127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net/tcp{,6} write them
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The saved scores and the undisturbed local run's CSV (the reference for every rerun)."""
    tmp = tmp_path_factory.mktemp("kill")
    src = saved_scores(tmp / "scores")
    ref = tmp / "ref.csv"
    subprocess.run(select_cmd(src, ref, "local", 3), check=True, capture_output=True, env=base_env(), timeout=300)
    return src, ref.read_bytes()


def saved_scores(folder: Path, n: int = 60_000) -> Path:
    """Outputs of a (simulated) scoring job, as `pickwise score` leaves them: Parquet parts."""
    rng = np.random.default_rng(0)
    h = (rng.normal(size=(n, 32)) + rng.integers(0, 50, size=(n, 1))).astype(np.float32)
    p = rng.dirichlet(np.ones(5) * 0.3, size=n)
    folder.mkdir()
    for i, lo in enumerate(range(0, n, 20_000)):
        sl = slice(lo, lo + 20_000)
        write_outputs(folder / f"part-{i:06d}.parquet", [f"u{j}" for j in range(lo, min(lo + 20_000, n))],
                      probs=p[sl], embeddings=h[sl])
    return folder


def select_cmd(src: Path, out: Path, engine: str, shards: int) -> list[str]:
    return [sys.executable, "-m", "pickwise", "select", "--parquet", str(src), "--strategy", "badge", "--k", str(K),
            "--seed", "7", "--out", str(out), "--engine", engine, "--shards", str(shards)]


def base_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), **extra}


def ray_env(tmp: Path) -> dict[str, str]:
    """Loopback only, no usage statistics, a throwaway auth token, Ray's files under ``tmp``."""
    return base_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                    RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_TMPDIR=str(tmp))


def session_members(sid: int) -> dict[int, tuple[str, str]]:
    """``{pid: (state, name)}`` of the live processes (zombies excluded) in session ``sid``, from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(d)] = (fields[0], stat[stat.find("(") + 1:stat.rfind(")")])
    return out


def kill_session(sid: int, timeout: float = 20.0) -> dict[int, tuple[str, str]]:
    """SIGKILL the process group ``sid`` and every process left in session ``sid``; what still lives after."""
    deadline = time.monotonic() + timeout
    while True:
        with_pg = True
        try:
            os.killpg(sid, signal.SIGKILL)
        except ProcessLookupError:
            with_pg = False
        left = session_members(sid)
        for pid in left:  # e.g. Ray's shard workers: their own process groups, the same session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if (not left and not with_pg) or time.monotonic() > deadline:
            time.sleep(0.2)
            return session_members(sid)
        time.sleep(0.2)


def kill_mid_selection(cmd: list[str], env: dict[str, str]) -> tuple[dict[int, tuple[str, str]], list[str]]:
    """Start ``cmd`` in a session of its own, SIGKILL it once its k-means++ bar shows picks < K,
    then kill whatever it left in its session. Returns the session's processes and the TCP listeners
    they had just before the kill."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        seen, picks = b"", None
        deadline = time.monotonic() + 120
        while picks is None and time.monotonic() < deadline:
            chunk = proc.stderr.read1(4096)
            if not chunk:  # the driver ended (or failed) before it could be killed mid-selection
                break
            seen += chunk
            counts = [int(n) for n in BAR.findall(seen) if int(n) < K]
            picks = counts[0] if counts else None
        assert picks is not None, f"the driver was not seen mid-selection (exit {proc.poll()}): {seen[-800:]!r}"
        members = session_members(proc.pid)
        ports = tcp_listeners(set(members))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
        left = kill_session(proc.pid)
    assert not left, f"processes of the killed driver's session survived the clean-up: {left}"
    return members, ports


def assert_nothing_written(folder: Path) -> None:
    """No CSV and no half-written temporary (atomic_write's hidden ``.picks.csv.<pid>.part``)."""
    assert not [name for name in os.listdir(folder) if "picks.csv" in name], os.listdir(folder)


def test_killed_driver_reruns_to_the_same_picks(tmp_path, scores):
    src, ref = scores
    out = tmp_path / "picks.csv"
    members, _ = kill_mid_selection(select_cmd(src, out, "local", 3), base_env())
    assert len(members) == 1  # the driver alone: the local engine starts nothing
    assert_nothing_written(tmp_path)
    # the rerun reads the same saved scores and gives the undisturbed run's picks
    subprocess.run(select_cmd(src, out, "local", 3), check=True, capture_output=True, env=base_env(), timeout=300)
    assert out.read_bytes() == ref
    assert len(out.read_text().splitlines()) == K + 1


@pytest.mark.skipif(NO_RAY, reason='the Ray engine needs ray: pip install "pickwise[distributed]"')
def test_killed_ray_driver_reruns_to_the_same_picks(tmp_path, scores):
    src, ref = scores
    out = tmp_path / "picks.csv"
    tmp = Path(tempfile.mkdtemp(prefix="pwkill-"))  # short: Ray's Unix socket paths must stay under 108 bytes
    try:
        members, ports = kill_mid_selection(select_cmd(src, out, "ray", 2), ray_env(tmp))
        names = [name for _, name in members.values()]
        # the kill hit a running Ray instance: its GCS, its raylet and the two shard actors
        shards = [name for name in names if name.startswith("ray::_Shard")]  # "ray::_Shard.run" while in a step
        assert {"gcs_server", "raylet"} <= set(names) and len(shards) == 2, names
        assert ports and set(ports) <= LOOPBACK, f"Ray listened beyond loopback: {sorted(set(ports))}"
        assert_nothing_written(tmp_path)
        assert list((tmp / "ray").glob("session_*")), "Ray's session files were not under RAY_TMPDIR"
        # the killed instance's files stay behind (a SIGKILLed driver cannot remove them); rerun beside them,
        # in the same RAY_TMPDIR, as a user repeating the command would
        rerun = subprocess.Popen(select_cmd(src, out, "ray", 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=ray_env(tmp), start_new_session=True)
        try:
            stdout, stderr = rerun.communicate(timeout=120)
            deadline = time.monotonic() + 10
            while (stragglers := session_members(rerun.pid)) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if rerun.poll() is None:
                rerun.kill()
                rerun.wait(timeout=30)
            left = kill_session(rerun.pid)
        assert rerun.returncode == 0, stderr.decode(errors="replace")[-2000:]
        assert b"on the ray engine (2 shards)" in stdout
        assert out.read_bytes() == ref  # byte for byte the undisturbed local run's CSV
        assert len(out.read_text().splitlines()) == K + 1
        # a driver that ends normally shuts its Ray down: nothing of its session outlives it
        assert not stragglers, f"processes of the rerun's session outlived it: {stragglers}"
        assert not left, f"processes of the rerun's session survived the clean-up: {left}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert not tmp.exists()
