"""Fetch the official dataset files and check them against pinned SHA-256 checksums.

Only the standard library is used (``urllib``). A file is written to a temporary name in its
destination folder, verified, then moved into place with ``os.replace``, so an interrupted or
corrupted download never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from .sources import SOURCES, FileSpec, data_root, folder_name

__all__ = ["download", "verify", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into the (already created) file ``dest``. Tests replace this function."""
    request = urllib.request.Request(url, headers={"User-Agent": "pickwise (python urllib)"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, _CHUNK)


def _specs(name: str) -> tuple[str, tuple[FileSpec, ...]]:
    canonical = folder_name(name)
    if canonical not in SOURCES:
        if canonical == "digits":
            raise ValueError(
                "'digits' ships inside scikit-learn; nothing to download (use pickwise.data.load_digits())"
            )
        raise ValueError(f"unknown dataset {name!r} to download; choose one of {sorted(SOURCES)}")
    return canonical, SOURCES[canonical]


def _fetch_any(spec: FileSpec, dest: Path) -> None:
    """Try each URL of ``spec`` in turn until one succeeds; raise with every failure otherwise."""
    errors: list[str] = []
    for url in spec.urls:
        try:
            _fetch(url, dest)
            return
        except OSError as exc:  # URLError, HTTPError and socket timeouts are all OSErrors
            errors.append(f"{url}: {exc}")
    raise ConnectionError(f"could not fetch {spec.filename}; tried:\n  " + "\n  ".join(errors))


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"downloaded archive for {dest.name} is unusable: {exc}") from exc


def _download_one(spec: FileSpec, folder: Path) -> Path:
    dest = folder / spec.filename
    temps: list[Path] = []

    def temp(suffix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=suffix, dir=folder)
        os.close(fd)
        temps.append(Path(name))
        return temps[-1]

    try:
        fetched = temp(".part")
        _fetch_any(spec, fetched)
        if spec.member is not None:
            extracted = temp(".extract")
            _extract_member(fetched, spec.member, extracted)
            fetched = extracted
        actual = sha256_file(fetched)
        if actual != spec.sha256:
            raise ValueError(
                f"checksum mismatch for {dest}: expected sha256 {spec.sha256}, got {actual}; "
                "the downloaded file was deleted"
            )
        os.replace(fetched, dest)
    finally:
        for path in temps:
            path.unlink(missing_ok=True)
    return dest


def download(
    name: str, root: str | os.PathLike[str] | None = None, *, force: bool = False
) -> tuple[Path, ...]:
    """Download dataset ``name`` into ``<root>/<name>/`` and verify every file's SHA-256.

    Files already present with the right checksum are kept (unless ``force``). A present file
    with a wrong checksum is an error rather than silently replaced; pass ``force=True`` to
    replace it.

    Parameters
    ----------
    name : str
        A dataset listed in ``pickwise.data.sources.SOURCES`` (``"mnist"``, ``"fashion-mnist"``,
        a PMLB name such as ``"letter"``, or ``"sms-spam"``). ``"digits"`` needs no download.
    root : str or PathLike, optional
        The data folder; see :func:`data_root`.
    force : bool
        Download again even when the local files exist.

    Returns
    -------
    tuple of Path
        The dataset's files, in the order of its spec.

    Raises
    ------
    ValueError
        Unknown name, a checksum mismatch (both hashes are shown), or a present file that does
        not match its checksum while ``force`` is false.
    ConnectionError
        No URL of a file could be fetched.
    """
    canonical, specs = _specs(name)
    folder = data_root(root) / canonical
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for spec in specs:
        dest = folder / spec.filename
        if dest.exists() and not force:
            actual = sha256_file(dest)
            if actual != spec.sha256:
                raise ValueError(
                    f"{dest} exists but its sha256 is {actual}, expected {spec.sha256}; "
                    f"pass force=True to replace it"
                )
            paths.append(dest)
            continue
        paths.append(_download_one(spec, folder))
    return tuple(paths)


def verify(name: str, root: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """Check the local files of dataset ``name`` against their pinned SHA-256 checksums.

    Needs no network. Returns the verified paths; raises ``FileNotFoundError`` naming a missing
    file, or ``ValueError`` showing both hashes of the first file that does not match.
    """
    canonical, specs = _specs(name)
    folder = data_root(root) / canonical
    paths: list[Path] = []
    for spec in specs:
        path = folder / spec.filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found; fetch it with pickwise.data.download({canonical!r}, root) "
                f"or set PICKWISE_DATA to a folder that holds {canonical}/"
            )
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise ValueError(f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {actual}")
        paths.append(path)
    return tuple(paths)
