"""Crash-safe file writes and hashes for the project folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so a rename inside it survives a crash (a no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover (e.g. Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` under a temporary name, fsync it, ``os.replace`` it into place, fsync the folder."""
    from .._fs import atomic_write  # removes its temporary file on any failure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(data)
    fsync_dir(path.parent)
    return path


def commit_file(tmp: str | Path, path: str | Path) -> Path:
    """fsync ``tmp`` (already written by the caller) and ``os.replace`` it to ``path``."""
    tmp, path = Path(tmp), Path(path)
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def tmp_name(path: str | Path) -> Path:
    """The temporary name :func:`commit_file` expects for ``path`` (same folder, hidden, per process).

    Keeps the suffix, so writers that choose the format from it (Parquet, ``np.save``) still work.
    """
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
