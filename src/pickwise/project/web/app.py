"""The labelling page's server: a FastAPI app over one project's SQLite store, and ``serve`` (uvicorn).

    from pickwise.project.web import serve
    serve("my-project")            # prints http://127.0.0.1:PORT/?token=... once

This is the only module that imports FastAPI / uvicorn / pydantic; ``pickwise.project.web`` imports it
lazily, so ``import pickwise`` stays light. Facts and the threat model: ``../shared/LABELLING.md``
("The labelling page", "Security on the user's machine").

Routes (every POST needs the header ``X-Pickwise: 1``; every route but ``/`` and ``/static/*`` needs the
token, as ``Authorization: Bearer <token>`` or the cookie that ``/`` sets):

- ``GET /?token=...``: compares the token (``hmac.compare_digest``), sets an ``HttpOnly; SameSite=Strict``
  cookie named after the project, answers 303 to ``/static/index.html`` (the token leaves the address bar).
- ``GET /api/classes``: ``{"project", "classes": [{"name", "key"}], "annotator"}`` in hotkey order.
- ``POST /api/next {annotator, tab}``: leases the next item of the open round to the tab: ``{"done": false,
  "idx", "item_id", "kind", "text", "data", "media", "round_id", "rank", "batch_size"}`` or ``{"done": true,
  "progress"}``.
- ``POST /api/label {client_uuid, idx, round_id, event, label, lead_time_ms, annotator}``: appends one event
  (``label`` | ``skip`` | ``retract``); a retried ``client_uuid`` is a no-op answering 200 (``stored: false``).
  **Items are named by their internal index ``idx``** (pickwise's one index space; the same number as in
  ``/media/{idx}``), not by the external ``item_id``, which is only shown.
- ``POST /api/lease {idx, tab}``: takes an item's lease back for the tab (after an undo); 409 if it is not in
  the open round's queue.
- ``GET /media/{idx}``: the item's image, only ``.png .jpg .jpeg .webp`` inside the media root, else 404.
- ``GET /api/progress``: the store's progress plus the state of a "next batch" job.
- ``POST /api/round/next {k?}``: trains and picks the next batch in a background thread
  (``pickwise.project.Project.open(dir).next(k)``, ``k`` = the previous batch size); 202, then poll
  ``GET /api/round/status``. 501 while the Project API is missing, 409 while a job runs.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import ipaddress
import os
import secrets
import socket
import stat
import sys
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

try:
    from fastapi import FastAPI, HTTPException, Request, Response
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.middleware.trustedhost import TrustedHostMiddleware
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the labelling page needs FastAPI and uvicorn: pip install 'pickwise[label]'"
    ) from exc

from .. import store as _store

__all__ = ["create_app", "serve", "token_for", "port_for", "cookie_name", "MEDIA_SUFFIXES"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
TOKEN_FILE = "label.token"
PORT_FILE = "label.port"
# 20000..29999: below Linux's ephemeral range (32768+), so a stored port is rarely taken by a client socket
PORT_BASE, PORT_SPAN = 20000, 10000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


# ----------------------------------------------------------------------------------------- request bodies
_TAB = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class NextBody(BaseModel):
    """``POST /api/next``: who asks (``annotator``, at most 64 characters) and from which tab."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(default="", max_length=64)
    tab: str = _TAB


class LabelBody(BaseModel):
    """``POST /api/label``: one answer event; ``idx`` is the item's internal index."""

    model_config = ConfigDict(extra="forbid")
    client_uuid: str = Field(min_length=32, max_length=36, pattern=r"^[0-9a-fA-F-]+$")
    idx: int = Field(ge=0, lt=2**62)
    round_id: int | None = Field(default=None, ge=0, lt=2**62)
    event: Literal["label", "skip", "retract"]
    label: str | None = Field(default=None, max_length=256)
    lead_time_ms: int | None = Field(default=None, ge=0, lt=2**62)
    annotator: str = Field(default="", max_length=64)


class LeaseBody(BaseModel):
    """``POST /api/lease``: take the lease of item ``idx`` back for ``tab`` (after an undo)."""

    model_config = ConfigDict(extra="forbid")
    idx: int = Field(ge=0, lt=2**62)
    tab: str = _TAB


class RoundBody(BaseModel):
    """``POST /api/round/next``: the batch size; default the previous round's."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(default=None, ge=1, le=1_000_000)


# ----------------------------------------------------------------------------------------------- helpers
def _open_store(project_dir: Path) -> Any:
    """The project's :class:`~pickwise.project.store.Store` (stores the path; opens nothing)."""
    return _store.Store(_db_path(project_dir))


def _db_path(project_dir: Path) -> Path:
    path = project_dir / _store.DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no project database at {path}: make the project with `pickwise init`")
    return path


def _media_root(project_dir: Path, st: Any) -> Path | None:
    root = st.media_root()
    if root is None:
        return None
    root = Path(root)
    return root if root.is_absolute() else project_dir / root


def cookie_name(project_uuid: str) -> str:
    """The auth cookie's name: cookies ignore ports, so it carries the project id."""
    return "pickwise_" + "".join(c for c in str(project_uuid) if c.isalnum())[:32]


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def _cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -------------------------------------------------------------------------------------------- middleware
class _SecurityHeaders:
    """Outermost: put the CSP and the other headers on every response (even a 400 from the host check)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.names = {name for name, _ in SECURITY_HEADERS}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": kept + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Guard:
    """After the host check: ``X-Pickwise: 1`` on every POST (403), the token everywhere but ``/`` and
    ``/static/`` (401): as a Bearer header or the project's cookie, compared in constant time."""

    def __init__(self, app: Any, *, token: str, cookie: str) -> None:
        self.app, self.token, self.cookie = app, token, cookie

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        path = scope.get("path", "")
        if scope.get("method") not in ("GET", "HEAD"):
            if headers.get(b"x-pickwise") != b"1":
                await _plain(send, 403, "every POST needs the header X-Pickwise: 1")
                return
        public = path in ("/", "/favicon.ico") or path.startswith("/static/")
        if not public and not (
            _same(_bearer(headers), self.token) or _same(_cookie(headers, self.cookie), self.token)
        ):
            await _plain(send, 401, "no valid token: reopen the link that `pickwise label` printed")
            return
        await self.app(scope, receive, send)


async def _plain(send: Callable, status: int, text: str) -> None:
    body = text.encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------------ the app
def create_app(
    project_dir: str | Path,
    *,
    token: str,
    annotator: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    media_root: str | Path | None = None,
) -> FastAPI:
    """The labelling page for the project in ``project_dir``, guarded by ``token``.

    ``annotator`` is the name the page proposes (at most 64 characters; a name typed in the page wins).
    ``allowed_hosts`` are the ``Host`` names accepted (default ``127.0.0.1`` and ``localhost``: DNS
    rebinding is refused with 400). ``media_root`` is where image ``relpath``s live (default: the store's
    media root). Routes are sync (FastAPI runs them in its thread pool); each request opens its own
    SQLite connection through the store and closes it, while one idle connection stays open for the app's
    life so that those closes do not checkpoint the WAL each time. An empty annotator name is stored as
    ``annotator`` or, without one, ``"anonymous"``.
    """
    project_dir = Path(project_dir)
    if not isinstance(token, str) or len(token) < 16:
        raise ValueError(f"token must be a string of at least 16 characters; got {type(token).__name__} "
                         f"of length {len(token) if isinstance(token, str) else '-'}")
    if annotator is not None and (not isinstance(annotator, str) or len(annotator) > 64):
        raise ValueError(f"annotator must be a string of at most 64 characters; got {annotator!r}")
    st = _open_store(project_dir)
    project_uuid = st.project_uuid()
    # Requests open and close their own connections. Without one connection held open for the app's
    # life, each close is the database's last, and SQLite then checkpoints and removes the WAL (an fsync)
    # on every request: measured 15-18 ms per request instead of ~2 ms. This one never runs a query.
    keeper = _store.connect(st.db_path)
    classes = list(st.classes())
    class_set = set(classes)
    root = Path(media_root) if media_root is not None else _media_root(project_dir, st)
    root_resolved = root.resolve() if root is not None else None
    cookie = cookie_name(project_uuid)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="pickwise label")
    weakref.finalize(app, keeper.close)
    job = _RoundJob(project_dir)

    @app.exception_handler(ValueError)
    def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def enter(request: Request) -> Any:
        given = request.query_params.get("token")
        if not (_same(given, token) or _same(request.cookies.get(cookie), token)):
            return PlainTextResponse("no valid token: open the link that `pickwise label` printed", 401)
        response = RedirectResponse("/static/index.html", status_code=303)
        response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/", max_age=30 * 86400)
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/classes")
    def get_classes() -> dict:
        return {
            "project": project_uuid,
            "classes": [{"name": name, "key": str(i + 1) if i < 9 else None} for i, name in enumerate(classes)],
            "annotator": annotator or "",
        }

    @app.post("/api/next")
    def post_next(body: NextBody) -> dict:
        got = st.lease_next(tab=body.tab, annotator=body.annotator or annotator or "anonymous")
        if got is None:
            return {"done": True, "progress": st.progress()}
        return {"done": False, **_public_item(got)}

    @app.post("/api/label")
    def post_label(body: LabelBody) -> dict:
        if body.event == "label":
            if body.label not in class_set:
                raise HTTPException(422, f"unknown class {body.label!r}; the classes are {classes}")
        elif body.label is not None:
            raise HTTPException(422, f"a {body.event!r} event carries no label; got {body.label!r}")
        try:
            client_uuid = str(uuid.UUID(body.client_uuid))
        except ValueError:
            raise HTTPException(422, f"client_uuid must be a UUID; got {body.client_uuid!r}") from None
        stored = st.add_event(
            client_uuid=client_uuid,
            idx=body.idx,
            event=body.event,
            label=body.label,
            annotator=body.annotator or annotator or "anonymous",
            source="human",
            round_id=body.round_id,
            lead_time_ms=body.lead_time_ms,
        )
        return {"stored": bool(stored)}

    @app.post("/api/lease")
    def post_lease(body: LeaseBody) -> dict:
        if not st.lease_item(idx=body.idx, tab=body.tab):
            raise HTTPException(409, f"item {body.idx} is not in the open round's queue")
        return {"leased": True}

    @app.get("/api/progress")
    def get_progress() -> dict:
        return {**st.progress(), "job": job.status()}

    @app.post("/api/round/next", status_code=202)
    def post_round_next(body: RoundBody) -> Any:
        k = body.k
        if k is None:
            k = int(st.progress().get("batch_size") or 0)
            if k < 1:
                raise HTTPException(422, "no previous batch to take the size from; send {\"k\": <batch size>}")
        problem = job.start(k)
        if problem is not None:
            return JSONResponse({"detail": problem[1]}, status_code=problem[0])
        return {"started": True, "k": k}

    @app.get("/api/round/status")
    def get_round_status() -> dict:
        return job.status()

    @app.get("/media/{idx}")
    def media(idx: str) -> FileResponse:
        if not (idx.isascii() and idx.isdigit()) or len(idx) > 18:
            raise HTTPException(404, "no such media")
        item = st.item(int(idx))
        if root is None or item is None or item.get("kind") != "image" or not item.get("relpath"):
            raise HTTPException(404, "no such media")
        path = (root / item["relpath"]).resolve()  # follows symlinks, so an escaping link is caught below
        media_type = MEDIA_SUFFIXES.get(path.suffix.lower())
        if media_type is None or not path.is_relative_to(root_resolved) or not path.is_file():
            raise HTTPException(404, "no such media")
        return FileResponse(path, media_type=media_type)

    app.mount("/static", StaticFiles(directory=STATIC_DIR, html=False), name="static")

    # add_middleware puts each new layer outside the previous: guard (inner), host check, headers (outer)
    app.add_middleware(_Guard, token=token, cookie=cookie)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS))
    app.add_middleware(_SecurityHeaders)
    return app


def _public_item(got: dict) -> dict:
    kind = got.get("kind")
    return {
        "idx": int(got["idx"]),
        "item_id": str(got.get("item_id", got["idx"])),
        "kind": kind,
        "text": got.get("text"),
        "data": got.get("data") or {},
        "media": f"/media/{int(got['idx'])}" if kind == "image" else None,
        "round_id": got.get("round_id"),
        "rank": got.get("rank"),
        "batch_size": got.get("batch_size"),
    }


def _project_class() -> Any:
    """``pickwise.project.Project``, or None while that API is missing (the route then answers 501)."""
    try:
        from pickwise.project import Project
    except ImportError:
        return None
    return Project


class _RoundJob:
    """One background "train and pick the next batch" at a time (the server has one worker process)."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"state": "idle", "message": "", "k": None}

    def status(self) -> dict:
        with self.lock:
            return dict(self.state)

    def start(self, k: int) -> tuple[int, str] | None:
        opener = getattr(_project_class(), "open", None)
        if opener is None:
            return 501, "pickwise.project.Project is not available yet: run `pickwise next` from the shell"
        with self.lock:
            if self.state["state"] == "running":
                return 409, "a next batch is already being picked"
            self.state = {"state": "running", "message": f"training and picking {k} items", "k": k}
        threading.Thread(target=self._run, args=(opener, k), name="pickwise-next", daemon=True).start()
        return None

    def _run(self, opener: Callable, k: int) -> None:
        try:
            project = opener(self.project_dir)
            takes_progress = "progress" in inspect.signature(project.next).parameters
            result = project.next(k, progress=False) if takes_progress else project.next(k)
            state = {"state": "done", "message": _describe(result, k), "k": k}
        except Exception as exc:  # reported to the page, and the traceback to the server's stderr
            traceback.print_exc()
            state = {"state": "error", "message": f"{type(exc).__name__}: {exc}", "k": k}
        with self.lock:
            self.state = state


def _describe(result: Any, k: int) -> str:
    round_id = getattr(result, "round_id", None) or getattr(result, "id", None)
    if isinstance(result, dict):
        round_id = result.get("round_id", round_id)
    return f"round {round_id} is open with {k} items" if round_id is not None else f"the next {k} items are ready"


# --------------------------------------------------------------------------------------------- serving
def token_for(project_dir: str | Path, token: str | None = None) -> str:
    """The page's token: ``token`` if given, else ``$PICKWISE_TOKEN``, else the project's owner-only
    token file ``label.token`` (made with ``secrets.token_urlsafe(32)`` and mode 0600 on first use), so a
    restart keeps open pages' outboxes working."""
    if token is None:
        token = os.environ.get("PICKWISE_TOKEN") or None
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError("the token must have at least 16 characters (PICKWISE_TOKEN or token=)")
        return token
    path = Path(project_dir) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            print(f"pickwise label: {path} was readable by others (mode {mode:o}); set to 0600", file=sys.stderr)
        value = path.read_text(encoding="utf-8").strip()
        if len(value) < 16:
            raise ValueError(f"{path} holds no usable token (under 16 characters); delete it to make a new one")
        return value
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def port_for(project_dir: str | Path, project_uuid: str) -> int:
    """The project's stored port (``label.port``), else a stable one derived from the project id.

    One port per project keeps the page's origin, and so its localStorage outbox, across restarts.
    """
    path = Path(project_dir) / PORT_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ValueError(f"{path} must hold a port number 1..65535; got {text!r}")
        return int(text)
    digest = hashlib.sha256(str(project_uuid).encode("utf-8")).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listener says TCP;
    # without it every response waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once after a crash (TIME_WAIT)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts_for(host: str) -> list[str]:
    hosts = list(LOOPBACK_HOSTS)
    if _is_loopback(host):
        return hosts
    if host in ("0.0.0.0", "::"):
        name = socket.gethostname()
        hosts += [name, socket.getfqdn()]
        try:
            hosts += socket.gethostbyname_ex(name)[2]
        except OSError:
            pass
    else:
        hosts.append(host)
    return list(dict.fromkeys(hosts))


def serve(
    project_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    annotator: str | None = None,
    token: str | None = None,
    ready: Callable[[str], Any] | None = None,
) -> None:
    """Serve the labelling page of ``project_dir`` with uvicorn (one worker) until interrupted.

    Prints ``http://127.0.0.1:PORT/?token=...`` once. ``host`` other than loopback must be asked for
    explicitly and prints a warning (anyone who can reach the port and learns the token can label).
    ``port`` defaults to the project's stable port (see :func:`port_for`); a busy port is an error that
    names it. ``token`` defaults to ``$PICKWISE_TOKEN`` or the project's token file (:func:`token_for`).
    ``ready(url)`` is called once the server accepts connections.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the labelling page needs uvicorn: pip install 'pickwise[label]'") from exc
    project_dir = Path(project_dir)
    if not project_dir.is_dir():
        raise FileNotFoundError(f"no project folder at {project_dir}")
    token = token_for(project_dir, token)
    st = _open_store(project_dir)
    stored_port = port is None and (project_dir / PORT_FILE).exists()
    chosen = port if port is not None else port_for(project_dir, st.project_uuid())
    if not isinstance(chosen, int) or not 0 <= chosen <= 65535:
        raise ValueError(f"port must be an integer 0..65535; got {chosen!r}")
    try:
        sock = _bind(host, chosen)
    except OSError as exc:
        hint = " (the project's port, kept in label.port so that open pages keep their outbox)" if stored_port else ""
        raise OSError(
            f"port {chosen} on {host} is busy{hint}: is `pickwise label` already running for this project? "
            f"Stop it, or pass --port ({exc.strerror})"
        ) from None
    chosen = sock.getsockname()[1]
    if port is None and not stored_port:
        (project_dir / PORT_FILE).write_text(f"{chosen}\n", encoding="utf-8")
    if not _is_loopback(host):
        print(
            f"pickwise label: WARNING: listening on {host}, not only on this machine: anyone who can reach "
            f"port {chosen} and learns the token can read the items and label them (plain HTTP, no TLS)",
            file=sys.stderr,
        )
    app = create_app(project_dir, token=token, annotator=annotator, allowed_hosts=_hosts_for(host))
    url = f"http://127.0.0.1:{chosen}/?token={token}"
    config = uvicorn.Config(app, workers=1, log_level="warning", access_log=False, lifespan="off",
                            server_header=False)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                print(f"pickwise label: open {url}", flush=True)
                if ready is not None:
                    ready(url)

    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
