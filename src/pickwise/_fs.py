"""File-system helpers shared by the writers: exclusive locks, atomic writes, one-line OS errors.

Locks. :func:`acquire_lock` takes an exclusive ``fcntl.flock`` on a small lock file that holds the
holder's PID, and refuses at once (:class:`BusyError`, a ``ValueError`` naming that PID) when another
process holds it; the kernel drops the lock when its holder dies, even by ``kill -9``, so a stale
lock file never blocks anyone. Who locks what:

* ``pickwise bench --out DIR`` — the parent process holds ``DIR/.pickwise-bench.lock`` for the whole
  grid (``--dry-run`` takes no lock; it only reads);
* a records file (``pickwise run``/``stream`` records, a bench run's ``runs/<id>.jsonl``, the bench's
  ``runs.jsonl``) — whoever writes it through :class:`pickwise.records.RecordWriter` holds
  ``.<name>.lock`` beside it while the writer lives: a bench worker holds the lock of the run it
  computes, the bench parent those of ``runs.jsonl`` and ``failures.jsonl``;
* a labelling project — ``pickwise next`` holds ``<project>/.next.lock``
  (:func:`pickwise.project.rounds.project_lock`).

Lock files are removed on release (except the project's, which stays as before); a process that
opened the old file just before the removal sees that the name now points elsewhere and tries again,
so two processes can never both believe they hold the lock.

Errors. :func:`describe_os_error` turns an ``OSError`` into the one line the CLI prints
(``cannot write /x/runs.jsonl: No space left on device``); :func:`annotate` lets a writer say what it
was doing. :func:`atomic_write` writes a file under a temporary name and replaces the target, and
removes the temporary file whatever goes wrong.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["BusyError", "LockHandle", "acquire_lock", "exclusive_lock", "lock_holder", "annotate",
           "describe_os_error", "atomic_write"]


class BusyError(ValueError):
    """Another process holds the lock; ``pid`` is the holder's PID as its lock file states it."""

    def __init__(self, message: str, pid: str):
        super().__init__(message)
        self.pid = pid


class LockHandle:
    """A held lock (from :func:`acquire_lock`); :meth:`release` gives it back (idempotent)."""

    def __init__(self, path: Path, fd: int, remove: bool):
        self.path, self._fd, self._remove, self._pid = path, fd, remove, os.getpid()

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._fd is not None and self._pid == os.getpid()

    def release(self) -> None:
        """Give the lock back (and remove the lock file unless asked to keep it)."""
        fd, self._fd = self._fd, None
        if fd is None or self._pid != os.getpid():  # a forked child never releases its parent's lock
            return
        import fcntl

        try:
            if self._remove:
                try:  # still holding the lock: nobody can have locked the file under this name
                    if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                        os.unlink(self.path)
                except FileNotFoundError:
                    pass
            else:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> LockHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"


def acquire_lock(path: str | os.PathLike[str], message: str, *, remove: bool = True) -> LockHandle:
    """Take the exclusive lock ``path`` (a lock file holding the PID) or raise :class:`BusyError` at once.

    ``message`` is the refusal; ``{pid}`` in it becomes the holder's PID. ``remove``: delete
    the lock file on release. OS errors (a read-only folder, ...) are annotated "cannot lock".
    """
    import fcntl

    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise annotate(e, "cannot lock", path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise BusyError(message.replace("{pid}", pid), pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the previous holder may have removed the file between our open and our lock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as e:
        LockHandle(path, fd, remove).release()
        raise annotate(e, "cannot write", path) from None
    return LockHandle(path, fd, remove)


@contextmanager
def exclusive_lock(path: str | os.PathLike[str], message: str, *, remove: bool = True) -> Iterator[LockHandle]:
    """:func:`acquire_lock` for the duration of a ``with`` block."""
    handle = acquire_lock(path, message, remove=remove)
    try:
        yield handle
    finally:
        handle.release()


def lock_holder(path: str | os.PathLike[str]) -> str | None:
    """The PID (as text) of the process holding the lock ``path``, or None when it is free (takes nothing)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# -- errors --------------------------------------------------------------------------------------

#: what failed, by errno, when the code that failed did not say (see :func:`annotate`)
_WHAT = {errno.ENOSPC: "cannot write", errno.EDQUOT: "cannot write", errno.EFBIG: "cannot write",
         errno.EROFS: "cannot write", errno.EEXIST: "cannot create", errno.EACCES: "cannot access",
         errno.EPERM: "cannot access", errno.ENOENT: "cannot open", errno.EISDIR: "cannot open",
         errno.ENOTDIR: "cannot open"}


def annotate(e: OSError, what: str, path: str | os.PathLike[str] | None = None) -> OSError:
    """Record on ``e`` what was being done (``"cannot write"``) and to which path, for
    :func:`describe_os_error`; returns ``e`` (same type and errno) to re-raise."""
    if not getattr(e, "pickwise_what", None):
        e.pickwise_what = what  # type: ignore[attr-defined]
    if e.filename is None and path is not None:
        e.filename = str(path)
    return e


def describe_os_error(e: OSError) -> str:
    """One line: ``<what> <path>: <cause>`` (``cannot write /x/runs.jsonl: No space left on device``)."""
    cause = e.strerror or (str(e.args[0]) if e.args else type(e).__name__)
    if e.errno is None and e.strerror is None and e.args:  # raised with a message of its own
        return str(e.args[0])
    what = getattr(e, "pickwise_what", None) or _WHAT.get(e.errno or 0, "cannot use")
    if e.filename is None:
        return f"{what}: {cause}" if getattr(e, "pickwise_what", None) else cause
    if getattr(e, "filename2", None) is not None:
        return f"cannot move {e.filename} to {e.filename2}: {cause}"
    return f"{what} {e.filename}: {cause}"


# -- atomic writes -------------------------------------------------------------------------------


def tmp_path(path: str | os.PathLike[str]) -> Path:
    """The temporary name :func:`atomic_write` uses for ``path`` (same folder, hidden, per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.part")


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and ``os.replace`` it to
    ``path``. On any failure (an exception in the block, a full disk) the temporary file is removed
    and ``path`` is untouched. OS errors are annotated "cannot write <path>"."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        try:
            with open(tmp, mode, **kwargs) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            # ours, not an error of the caller's block; an OSError without an errno keeps its own message
            if e.errno is not None and (e.filename is None or e.filename == str(tmp)):
                e.filename, e.filename2 = str(path), None
                annotate(e, "cannot write")
            raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
