"""The labelling page's HTTP API and its security measures, through FastAPI's TestClient (no browser).

The project is made with ``Project.init`` and ``Project.next`` (one open round whose queue holds the items
in acquisition order); ``make_project`` and ``queue_order`` are shared with ``test_web_browser.py``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import socket
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the labelling page needs fastapi (pip install 'pickwise[label]')")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from pickwise.project import store  # noqa: E402
from pickwise.project.items import ItemBatch, insert_items  # noqa: E402
from pickwise.project.web import create_app  # noqa: E402
from pickwise.project.web import app as webapp  # noqa: E402

TOKEN = "test-token-" + "a" * 32
CLASSES = ["neg", "pos", "neutral"]
XSS = '<img src=x onerror="window.pwned=1">'
TEXTS = ["battery died after two days", "works fine", XSS, "meh", "great value", "broke at once",
         "not sure", "love it"]
# a 1x1 transparent PNG
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def _batch(kind: str, ids: list[str], texts: list[str | None], relpaths: list[str | None]) -> ItemBatch:
    content = [(t or r or "").encode("utf-8") for t, r in zip(texts, relpaths)]
    return ItemBatch(kind, ids, texts, relpaths, [{} for _ in ids], [hashlib.sha1(c).hexdigest() for c in content])


def make_project(root: Path, texts: list[str] = TEXTS, *, k: int | None = None, images: bool = False) -> Path:
    """A project made with ``Project.init`` from a CSV of ``texts`` (ids ``t-0``, ``t-1``, ...) and a first
    batch of ``k`` items (default: all) picked with ``Project.next``; returns its folder.

    With ``images`` the database also gets a media root holding ``ok.png``, an ``evil.svg`` and
    ``link.png``, a symlink to a PNG outside the media root, as image items (not queued), added through the
    store's own functions: a real import refuses the last two, so they test the server's own checks.
    """
    from pickwise.project import Project

    data = root / "texts.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows([f"t-{i}", t] for i, t in enumerate(texts))
    project = Project.init(root / "proj", data=data, labels=CLASSES)
    project.next(k or len(texts), progress=False)
    if images:
        media, outside = root / "media", root / "outside"
        media.mkdir()
        outside.mkdir()
        (outside / "secret.png").write_bytes(PNG)
        (media / "ok.png").write_bytes(PNG)
        (media / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>')
        (media / "link.png").symlink_to(outside / "secret.png")
        names = ["ok.png", "evil.svg", "link.png"]
        with project.store.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('media_root', ?)", (str(media),))
            insert_items(conn, _batch("image", names, [None] * 3, names))
    return project.path


def queue_order(project: Path) -> list[int]:
    """The open round's items (their ``idx``) in acquisition order."""
    conn = sqlite3.connect(project / store.DB_NAME)
    try:
        return [r[0] for r in conn.execute(
            "SELECT item_idx FROM queue WHERE round_id = (SELECT MAX(id) FROM rounds WHERE status = 'open') "
            "ORDER BY rank")]
    finally:
        conn.close()


def label_rows(project: Path) -> list[sqlite3.Row]:
    """All label events, oldest first (read directly with sqlite3)."""
    conn = sqlite3.connect(project / store.DB_NAME)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM labels ORDER BY id").fetchall()
    finally:
        conn.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
POST = {**AUTH, "X-Pickwise": "1"}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, images=True)


@pytest.fixture()
def client(project: Path) -> TestClient:
    return TestClient(create_app(project, token=TOKEN), base_url="http://127.0.0.1")


def _label(client: TestClient, idx: int, event: str = "label", label: str | None = "neg", **extra: object):
    body = {"client_uuid": str(uuid.uuid4()), "idx": idx, "round_id": 1, "event": event,
            "label": label if event == "label" else None, "lead_time_ms": 10, "annotator": "ann", **extra}
    return client.post("/api/label", headers=POST, json=body)


# ------------------------------------------------------------------------------------------- auth
def test_token_bearer_and_cookie(client: TestClient, project: Path) -> None:
    assert client.get("/api/classes").status_code == 401
    assert client.get("/api/classes", headers={"Authorization": "Bearer wrong-token-xxxxxxxxxxxx"}).status_code == 401
    assert client.get("/api/progress").status_code == 401
    assert client.get("/media/0").status_code == 401
    r = client.get("/api/classes", headers=AUTH)
    assert r.status_code == 200
    assert [c["name"] for c in r.json()["classes"]] == CLASSES
    assert [c["key"] for c in r.json()["classes"]] == ["1", "2", "3"]

    assert client.get("/", follow_redirects=False).status_code == 401
    assert client.get("/?token=nope", follow_redirects=False).status_code == 401
    r = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/static/index.html"
    assert TOKEN not in r.headers["location"]
    cookie = r.headers["set-cookie"]
    pid = store.Store(project / store.DB_NAME).project_uuid()
    name = webapp.cookie_name(pid)
    assert pid.replace("-", "") in name
    assert cookie.startswith(f"{name}=")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    # the cookie alone authenticates (the browser's case); another project's cookie name does not
    fresh = TestClient(client.app, base_url="http://127.0.0.1")
    assert fresh.get("/api/classes", headers={"Cookie": f"{name}={TOKEN}"}).status_code == 200
    assert fresh.get("/api/classes", headers={"Cookie": f"pickwise_other={TOKEN}"}).status_code == 401
    assert fresh.get("/", headers={"Cookie": f"{name}={TOKEN}"}, follow_redirects=False).status_code == 303
    # the page's own files are public (they hold nothing secret) and so can tell the user to reopen the link
    assert fresh.get("/static/index.html").status_code == 200


def test_docs_routes_are_off(client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path, headers=AUTH).status_code == 404


def test_host_header_is_checked(client: TestClient) -> None:
    assert client.get("/api/classes", headers={**AUTH, "Host": "evil.example"}).status_code == 400
    assert client.get("/api/classes", headers={**AUTH, "Host": "localhost:1234"}).status_code == 200
    assert client.get("/api/classes", headers={**AUTH, "Host": "127.0.0.1:1234"}).status_code == 200


def test_post_needs_the_custom_header(client: TestClient) -> None:
    body = {"annotator": "ann", "tab": "tab-a"}
    assert client.post("/api/next", headers=AUTH, json=body).status_code == 403
    assert client.post("/api/next", headers={**AUTH, "X-Pickwise": "0"}, json=body).status_code == 403
    assert client.post("/api/next", headers=POST, json=body).status_code == 200
    r = client.post("/api/label", headers=AUTH, json={"client_uuid": str(uuid.uuid4()), "idx": 0, "round_id": 1,
                                                      "event": "label", "label": "neg"})
    assert r.status_code == 403


def test_security_headers_on_every_response(client: TestClient) -> None:
    responses = [
        client.get("/api/classes", headers=AUTH),
        client.get("/api/classes"),  # 401
        client.get("/api/classes", headers={**AUTH, "Host": "evil.example"}),  # 400
        client.get(f"/?token={TOKEN}", follow_redirects=False),  # 303
        client.get("/static/index.html"),
        client.get("/static/app.js"),
        client.get("/media/999", headers=AUTH),  # 404
        _label(client, 0, label="nope"),  # 422
    ]
    for r in responses:
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, r
        assert "unsafe" not in csp
        assert r.headers.get("x-content-type-options") == "nosniff"
        assert r.headers.get("referrer-policy") == "no-referrer"
        assert r.headers.get("cache-control") == "no-store"


# ----------------------------------------------------------------------------------------- validation
def test_class_names_and_fields_are_validated(client: TestClient, project: Path) -> None:
    r = _label(client, 0, label="nope")
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    assert _label(client, 0, event="skip", label=None, annotator="x" * 65).status_code == 422
    r = client.post("/api/label", headers=POST, json={"client_uuid": str(uuid.uuid4()), "idx": 0, "round_id": 1,
                                                      "event": "skip", "label": "neg"})
    assert r.status_code == 422  # a skip carries no label
    assert _label(client, 0, client_uuid="not-a-uuid").status_code == 422
    assert _label(client, 10**6).status_code == 422  # unknown item
    assert _label(client, 0, event="delete").status_code == 422
    assert _label(client, 0, sneaky=1).status_code == 422  # unknown fields are refused
    assert client.post("/api/next", headers=POST, json={"annotator": "x" * 65, "tab": "t"}).status_code == 422
    assert client.post("/api/next", headers=POST, json={"annotator": "a", "tab": "../x"}).status_code == 422
    assert label_rows(project) == []


def test_retry_of_the_same_client_uuid_stores_one_event(client: TestClient, project: Path) -> None:
    body = {"client_uuid": str(uuid.uuid4()), "idx": 1, "round_id": 1, "event": "label", "label": "pos",
            "lead_time_ms": 1234, "annotator": "ann"}
    first = client.post("/api/label", headers=POST, json=body)
    again = client.post("/api/label", headers=POST, json=body)
    assert first.status_code == again.status_code == 200
    assert first.json() == {"stored": True} and again.json() == {"stored": False}
    rows = label_rows(project)
    assert [(r["client_uuid"], r["item_idx"], r["label"], r["event"], r["annotator"], r["source"],
             r["lead_time_ms"]) for r in rows] == [(body["client_uuid"], 1, "pos", "label", "ann", "human", 1234)]


# ------------------------------------------------------------------------------------------- the queue
def _next(client: TestClient, tab: str, annotator: str = "ann") -> dict:
    r = client.post("/api/next", headers=POST, json={"annotator": annotator, "tab": tab})
    assert r.status_code == 200, r.text
    return r.json()


def test_two_tabs_get_different_items_and_a_reload_the_same(client: TestClient, project: Path) -> None:
    order = queue_order(project)
    assert sorted(order) == list(range(len(TEXTS)))
    a, b = _next(client, "tab-a"), _next(client, "tab-b")
    assert not a["done"] and not b["done"]
    assert (a["idx"], b["idx"]) == (order[0], order[1])  # acquisition order: rank 0 first, then rank 1
    assert (a["rank"], b["rank"]) == (0, 1)
    assert a["round_id"] == 1 and a["batch_size"] == len(TEXTS) and a["kind"] == "text"
    assert a["item_id"] == f"t-{order[0]}" and a["text"] == TEXTS[order[0]] and a["media"] is None
    assert _next(client, "tab-a")["idx"] == order[0]  # the tab's own lease comes back (a reload)
    assert _label(client, order[0]).status_code == 200
    assert _next(client, "tab-a")["idx"] == order[2]  # order[1] is tab-b's
    assert _next(client, "tab-b")["idx"] == order[1]


def test_skip_undo_and_progress(client: TestClient) -> None:
    first = _next(client, "t")
    assert _label(client, first["idx"], "skip").status_code == 200
    second = _next(client, "t")
    assert second["idx"] != first["idx"]  # a skipped item is not offered again in this round
    assert _label(client, second["idx"], "label", "pos").status_code == 200
    p = client.get("/api/progress", headers=AUTH).json()
    assert (p["round_id"], p["labelled"], p["skipped"], p["batch_size"]) == (1, 1, 1, len(TEXTS))
    # undo: a retract, then the tab takes the item's lease back and is offered it first
    assert _label(client, second["idx"], "retract", None).status_code == 200
    assert client.post("/api/lease", headers=POST, json={"idx": second["idx"], "tab": "t"}).json() == {"leased": True}
    assert _next(client, "other")["idx"] not in (first["idx"], second["idx"])
    assert _next(client, "t")["idx"] == second["idx"]
    assert client.get("/api/progress", headers=AUTH).json()["labelled"] == 0
    assert client.post("/api/lease", headers=POST, json={"idx": len(TEXTS), "tab": "t"}).status_code == 409


def test_done_when_the_batch_is_answered(client: TestClient) -> None:
    for _ in TEXTS:
        item = _next(client, "t")
        assert _label(client, item["idx"], "label", "neutral").status_code == 200
    j = _next(client, "t")
    assert j["done"] is True
    assert (j["progress"]["labelled"], j["progress"]["remaining"]) == (len(TEXTS), 0)


# ------------------------------------------------------------------------------------------- media
def test_media_only_inside_the_root_and_only_raster_images(client: TestClient, project: Path) -> None:
    st = store.Store(project / store.DB_NAME)
    ok, svg, link = (st.item_by_id(n)["idx"] for n in ("ok.png", "evil.svg", "link.png"))
    r = client.get(f"/media/{ok}", headers=AUTH)
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get(f"/media/{svg}", headers=AUTH).status_code == 404
    assert client.get(f"/media/{link}", headers=AUTH).status_code == 404  # a symlink out of the root
    assert client.get("/media/0", headers=AUTH).status_code == 404  # a text item has no media
    assert client.get("/media/99999", headers=AUTH).status_code == 404
    for path in ("/media/..%2f..%2fetc%2fpasswd", "/media/..%2F..%2Fetc%2Fpasswd", "/media/../../etc/passwd",
                 "/media/-1", "/media/1e3", f"/media/{ok}.png", "/media/" + "9" * 40, "/static/../store.py",
                 "/static/..%2f..%2fstore.py"):
        r = client.get(path, headers=AUTH)
        assert r.status_code == 404, path
        assert b"root:" not in r.content and b"Store" not in r.content


# ------------------------------------------------------------------------------------------- next batch
def test_round_next_runs_project_next_with_the_previous_batch_size(client: TestClient, project: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, int]] = []

    class FakeProject:
        def __init__(self, path: Path) -> None:
            self.path = path

        @classmethod
        def open(cls, path: Path) -> FakeProject:
            return cls(Path(path))

        def next(self, k: int) -> dict:
            time.sleep(0.05)
            calls.append((self.path, k))
            return {"round_id": 2}

    monkeypatch.setattr(webapp, "_project_class", lambda: FakeProject)
    assert client.post("/api/round/next", headers=AUTH, json={}).status_code == 403
    r = client.post("/api/round/next", headers=POST, json={})
    assert r.status_code == 202 and r.json()["k"] == len(TEXTS)
    deadline = time.monotonic() + 5
    while (s := client.get("/api/round/status", headers=AUTH).json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert s["state"] == "done" and "round 2" in s["message"]
    assert calls == [(project, len(TEXTS))]
    assert client.post("/api/round/next", headers=POST, json={"k": 0}).status_code == 422

    monkeypatch.setattr(webapp, "_project_class", lambda: None)
    r = client.post("/api/round/next", headers=POST, json={})
    assert r.status_code == 501 and "Project" in r.json()["detail"]


# ------------------------------------------------------------------------------------------- serving
def test_token_file_is_owner_only_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PICKWISE_TOKEN", raising=False)
    first = webapp.token_for(tmp_path)
    assert len(first) >= 40
    assert stat.S_IMODE((tmp_path / webapp.TOKEN_FILE).stat().st_mode) == 0o600
    assert webapp.token_for(tmp_path) == first
    os.chmod(tmp_path / webapp.TOKEN_FILE, 0o644)  # made readable by someone else: put back to 0600
    assert webapp.token_for(tmp_path) == first
    assert stat.S_IMODE((tmp_path / webapp.TOKEN_FILE).stat().st_mode) == 0o600
    monkeypatch.setenv("PICKWISE_TOKEN", "from-the-environment-123")
    assert webapp.token_for(tmp_path) == "from-the-environment-123"
    assert webapp.token_for(tmp_path, "given-explicitly-12345") == "given-explicitly-12345"
    with pytest.raises(ValueError, match="16"):
        webapp.token_for(tmp_path, "short")


def test_port_is_stable_per_project(tmp_path: Path) -> None:
    a = webapp.port_for(tmp_path, "11111111-1111-1111-1111-111111111111")
    assert a == webapp.port_for(tmp_path, "11111111-1111-1111-1111-111111111111")
    assert webapp.PORT_BASE <= a < webapp.PORT_BASE + webapp.PORT_SPAN
    assert a != webapp.port_for(tmp_path, "22222222-2222-2222-2222-222222222222")
    (tmp_path / webapp.PORT_FILE).write_text("23456\n")
    assert webapp.port_for(tmp_path, "11111111-1111-1111-1111-111111111111") == 23456
    (tmp_path / webapp.PORT_FILE).write_text("http\n")
    with pytest.raises(ValueError, match="http"):
        webapp.port_for(tmp_path, "x")


def test_serve_names_a_busy_port(project: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is busy"):
            webapp.serve(project, port=port, token=TOKEN)


def test_create_app_checks_its_arguments(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16"):
        create_app(project, token="short")
    with pytest.raises(ValueError, match="annotator"):
        create_app(project, token=TOKEN, annotator="x" * 65)
    with pytest.raises(FileNotFoundError, match="pickwise init"):
        create_app(tmp_path / "nowhere", token=TOKEN)


class _Stop(Exception):
    pass


def test_serve_prints_the_link_once_and_calls_ready(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    urls: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        raise _Stop  # leave serve() once it is up

    with pytest.raises(_Stop):
        webapp.serve(project, port=0, token=TOKEN, ready=ready)
    out = capsys.readouterr()
    assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:") and urls[0].endswith(f"/?token={TOKEN}")
    assert out.out.count(urls[0]) == 1
    assert "WARNING" not in out.err
    port = int(urls[0].split(":")[2].split("/")[0])
    with socket.socket() as s:  # the port was released
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_allowed_hosts_follow_the_bind_address() -> None:
    assert webapp._hosts_for("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert webapp._hosts_for("localhost") == ["127.0.0.1", "localhost"]
    assert webapp._hosts_for("192.0.2.7") == ["127.0.0.1", "localhost", "192.0.2.7"]
    assert socket.gethostname() in webapp._hosts_for("0.0.0.0")
