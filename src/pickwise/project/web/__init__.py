"""The built-in labelling page: ``create_app`` (a FastAPI app) and ``serve`` (uvicorn, one worker).

FastAPI and uvicorn are imported only when one of these is called (``pip install 'pickwise[label]'``).
The routes, the security measures and the page are described in :mod:`pickwise.project.web.app`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["create_app", "serve"]


def create_app(project_dir: str | Path, *, token: str, annotator: str | None = None, **kwargs: Any) -> Any:
    """The labelling page of ``project_dir`` as a FastAPI app guarded by ``token``
    (see :func:`pickwise.project.web.app.create_app`)."""
    from .app import create_app as _create_app

    return _create_app(project_dir, token=token, annotator=annotator, **kwargs)


def serve(
    project_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    annotator: str | None = None,
    token: str | None = None,
    ready: Callable[[str], Any] | None = None,
) -> None:
    """Serve the labelling page with uvicorn until interrupted; prints ``http://127.0.0.1:PORT/?token=...``
    once (see :func:`pickwise.project.web.app.serve`)."""
    from .app import serve as _serve

    _serve(project_dir, host=host, port=port, annotator=annotator, token=token, ready=ready)
