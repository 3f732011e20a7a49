"""Shared by the Ray test modules: one loopback-only Ray instance per module, and its listening sockets.

``ray_module_session(module)``: Ray's environment (every listener on 127.0.0.1 — ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
must precede ``import ray`` —, no usage statistics, the process's throwaway auth token from
tests/conftest.py), a short private temp dir, ``ray.init`` with 4 logical CPUs and no dashboard unless
Ray is already up, the test module shipped to workers by value; everything restored and removed after.
Without ray the test skips, except under CI (CI=true installs the distributed extra), where it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HAVE_RAY = importlib.util.find_spec("ray") is not None


def ray_env() -> dict[str, str]:
    """The variables every Ray test process needs (read by Ray once, at import or first init)."""
    return {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every listener on 127.0.0.1; must precede `import ray`
        "RAY_USAGE_STATS_ENABLED": "0",
        # one throwaway token per process (tests/conftest.py): Ray keeps the first token it read
        "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32),
    }


@contextlib.contextmanager
def ray_loopback_env(module: str, *, prefix: str = "pwray-") -> Iterator[Path]:
    """Ray's variables (:func:`ray_env`, restored afterwards), a short private temp dir as ``RAY_TMPDIR``
    (Unix socket paths must fit; removed afterwards), ``module`` shipped to Ray's workers by value; the
    temp dir. Ray is shut down at the end if it is running."""
    if not HAVE_RAY:
        if IN_CI:
            pytest.fail('CI must run the Ray tests, but ray is not installed (pip install "pickwise[distributed]")')
        pytest.skip('the Ray tests need ray: pip install "pickwise[distributed]"')
    if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
        pytest.fail("ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set: it would not bind loopback")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    (tmp / "ray").mkdir()  # Ray's default dir under RAY_TMPDIR (a cluster's address file goes there)
    env = {**ray_env(), "RAY_TMPDIR": str(tmp)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[module])  # workers cannot import a test module
    try:
        yield tmp
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def ray_module_session(module: str, *, prefix: str = "pwray-", num_cpus: int = 4) -> Iterator[object]:
    """The ``ray`` module with a local instance up (see the module docstring); for a module-scoped fixture."""
    with ray_loopback_env(module, prefix=prefix) as tmp:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "local"))
        yield ray


def tcp_listeners(pids: set[int]) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) of the TCP sockets ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:  # the process ended meanwhile
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # state LISTEN
                found.append(cols[1].split(":")[0])
    return found
