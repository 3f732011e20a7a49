"""A ``pickwise select`` driver killed mid-selection reruns from the saved Parquet scores to the same picks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pickwise.engine.parquet import write_outputs

ROOT = Path(__file__).resolve().parents[1]


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


def select_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pickwise", "select", "--parquet", str(src), "--strategy", "badge", "--k", "400",
            "--seed", "7", "--out", str(out), "--engine", "local", "--shards", "3"]


def test_killed_driver_reruns_to_the_same_picks(tmp_path):
    src = saved_scores(tmp_path / "scores")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    ref = tmp_path / "ref.csv"
    subprocess.run(select_cmd(src, ref), check=True, capture_output=True, env=env, timeout=300)
    out = tmp_path / "picks.csv"
    proc = subprocess.Popen(select_cmd(src, out), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    seen = b""
    deadline = time.monotonic() + 120
    while b"k-means++ picks" not in seen and time.monotonic() < deadline:  # the progress bar: mid-selection
        chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(1)
        if not chunk:
            break
        seen += chunk
    assert b"k-means++ picks" in seen, seen[-500:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and not list(tmp_path.glob("picks.csv*"))  # nothing half-written
    # the rerun reads the same saved scores and gives the undisturbed run's picks
    subprocess.run(select_cmd(src, out), check=True, capture_output=True, env=env, timeout=300)
    assert out.read_text() == ref.read_text()
    assert len(out.read_text().splitlines()) == 401
