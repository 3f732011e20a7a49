"""The labelling page in a real browser: Playwright for Python driving Debian's chromium (headless).

One uvicorn server per module, started as a subprocess through ``pickwise.project.web.serve`` on a free
127.0.0.1 port with the token in its environment; the database is checked directly with sqlite3.
Under the page's CSP ``page.wait_for_function("<js>")`` fails (no 'unsafe-eval'): the tests synchronise
with ``expect(locator)`` or poll ``page.evaluate()`` from Python.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# On a developer's machine without chromium these tests skip with the reason; under CI (CI=true, where
# `make test` installs Debian's chromium through scripts/install_browser.sh) a missing browser fails.
_IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if not _IN_CI:
    pytest.importorskip("fastapi", reason="the labelling page needs fastapi (pip install 'pickwise[label]')")
    pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright for Python")
if not Path(CHROMIUM).exists():
    if _IN_CI:
        raise RuntimeError(f"CI must run the browser tests, but there is no chromium at {CHROMIUM}")
    pytest.skip(f"the browser tests need chromium at {CHROMIUM}", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402
from test_web_api import CLASSES, TOKEN, XSS, label_rows, make_project, queue_order  # noqa: E402

from pickwise.project import store  # noqa: E402

# every third text tries to run script; all must show as literal text
PAYLOADS = [XSS, "<script>window.pwned=2</script>", '"><svg onload="window.pwned=3">', "<b>bold?</b> &amp; <i>x</i>"]
TEXTS = [PAYLOADS[i // 3 % len(PAYLOADS)] if i % 3 == 0 else f"review {i}: arrived on day {i % 7 + 1}, works"
         for i in range(24)]
K = 10
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
SERVE = "import sys; from pickwise.project.web import serve; serve(sys.argv[1], port=int(sys.argv[2]))"
OUTBOX_KEYS = "Object.keys(localStorage).filter((k) => k.includes('.outbox.')).sort()"

expect.set_options(timeout=10_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``serve(project, port=port)`` in a subprocess with ``PICKWISE_TOKEN`` set; ``kill`` is a SIGKILL."""

    def __init__(self, project: Path, port: int, log: Path) -> None:
        self.project, self.port, self.log = project, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PICKWISE_TOKEN": TOKEN, "OMP_NUM_THREADS": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVE, str(self.project), str(self.port)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not listen on {self.port}: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("web")
    project = make_project(root, TEXTS, k=K)
    port = _free_port()
    server = Server(project, port, root / "server.log")
    server.start()
    try:
        yield {"project": project, "order": queue_order(project), "port": port, "base": f"http://127.0.0.1:{port}", "server": server,
               "log": root / "server.log"}
    finally:
        server.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def _poll(fn: Callable[[], Any], want: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if want(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last value {value!r}"
        time.sleep(0.05)


def _shows(page: Page, idx: int) -> None:
    """Wait until ``page`` shows item ``idx``; its text must appear literally and no script may have run."""
    expect(page.locator("#item")).to_have_attribute("data-idx", str(idx))
    expect(page.locator("#item")).to_have_attribute("data-item-id", f"t-{idx}")
    expect(page.locator("#item .text")).to_have_text(TEXTS[idx])
    assert page.locator("#item img, #item script, #item svg, #item b").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_without_the_token_nothing_is_served(site: dict, browser: Browser) -> None:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{site['base']}/static/index.html")
        expect(page.locator("#banner")).to_contain_text("link")
        expect(page.locator("#item")).not_to_have_attribute("data-idx", "0")
        assert ctx.request.get(f"{site['base']}/api/classes").status == 401
        assert ctx.request.get(f"{site['base']}/?token=wrong-token-000000000000", max_redirects=0).status == 401
        assert ctx.request.post(f"{site['base']}/api/next", data={"annotator": "a", "tab": "t"}).status == 403
        assert ctx.request.get(f"{site['base']}/media/0").status == 401
    finally:
        ctx.close()


def test_media_paths_are_refused(site: dict, browser: Browser) -> None:
    ctx = browser.new_context(extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        base = site["base"]
        assert ctx.request.get(f"{base}/api/classes").status == 200
        for path in ("/media/..%2f..%2fetc%2fpasswd", "/media/..%2F..%2Fproject.sqlite", "/media/0",
                     "/static/..%2f..%2fapp.py"):
            r = ctx.request.get(base + path)
            assert r.status == 404, path
            assert b"root:" not in r.body() and b"SQLite" not in r.body()
    finally:
        ctx.close()


def test_label_skip_undo_reload_two_tabs_and_a_crash(site: dict, browser: Browser) -> None:
    base, project, server, o = site["base"], site["project"], site["server"], site["order"]
    assert len(o) == K and any(TEXTS[i] in PAYLOADS for i in o), "the batch must hold script payloads"
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    try:
        a = ctx.new_page()
        a.goto(f"{base}/?token={TOKEN}")
        assert a.url == f"{base}/static/index.html"  # the redirect dropped the token
        assert TOKEN not in a.url
        a.fill("#annotator", "alice")
        a.locator("#annotator").press("Enter")
        _shows(a, o[0])
        expect(a.locator("#buttons button")).to_have_count(len(CLASSES))
        expect(a.locator("#buttons button").first).to_contain_text("1")
        expect(a.locator("#buttons button").first).to_contain_text(CLASSES[0])
        expect(a.locator("#progress")).to_have_text(f"round 1 · 0 / {K}")

        a.keyboard.press("1")  # label o[0] = neg
        _shows(a, o[1])
        a.keyboard.press("s")  # skip o[1]
        _shows(a, o[2])
        a.keyboard.press("z")  # undo the skip: o[1] again
        _shows(a, o[1])
        expect(a.locator("#history li")).to_have_count(1)
        a.keyboard.press("2")  # label o[1] = pos
        _shows(a, o[2])
        expect(a.locator("#progress")).to_have_text(f"round 1 · 2 / {K}")
        expect(a.locator("#history li").first).to_contain_text(CLASSES[1])

        a.reload()  # the tab keeps its lease: the same item comes back, and its history
        _shows(a, o[2])
        expect(a.locator("#history li")).to_have_count(2)

        b = ctx.new_page()  # a second tab of the same browser: shares localStorage, not the lease
        b.goto(f"{base}/static/index.html")
        _shows(b, o[3])
        expect(b.locator("#annotator")).to_have_value("alice")
        a.keyboard.press("3")  # label o[2] = neutral
        _shows(a, o[4])
        b.keyboard.press("1")  # label o[3] = neg
        _shows(b, o[5])
        _poll(lambda: a.evaluate(OUTBOX_KEYS), lambda keys: keys == [])

        # the server dies between two key presses; the answers wait in the outbox
        server.kill(signal.SIGKILL)
        a.keyboard.press("2")  # label o[4] = pos
        expect(a.locator("#pending")).to_have_text("pending: 1")
        expect(a.locator("#item")).not_to_have_attribute("data-idx", str(o[4]))
        assert len(a.evaluate(OUTBOX_KEYS)) == 1
        b.keyboard.press("s")  # skip o[5]
        expect(b.locator("#pending")).to_have_text("pending: 2")
        expect(a.locator("#pending")).to_have_text("pending: 2")  # the other tab sees it (storage event)
        keys = a.evaluate(OUTBOX_KEYS)
        entries = [a.evaluate("(k) => JSON.parse(localStorage.getItem(k))", k) for k in keys]
        assert len(keys) == len(set(keys)) == 2
        assert {e["body"]["idx"] for e in entries} == {o[4], o[5]}
        assert len({e["tab"] for e in entries}) == 2
        assert len({e["body"]["client_uuid"] for e in entries}) == 2

        server.start()  # same port, same token (PICKWISE_TOKEN)
        _poll(lambda: a.evaluate(OUTBOX_KEYS), lambda keys: keys == [], timeout=20)
        expect(a.locator("#pending")).to_have_text("pending: 0")
        idx_a = int(_poll(lambda: a.locator("#item").get_attribute("data-idx"), lambda v: v is not None))
        idx_b = int(_poll(lambda: b.locator("#item").get_attribute("data-idx"), lambda v: v is not None))
        assert {idx_a, idx_b} == {o[6], o[7]}
        _shows(a, idx_a)
        _shows(b, idx_b)

        conn = sqlite3.connect(project / store.DB_NAME)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            n, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT client_uuid) FROM labels").fetchone()
            assert n == distinct
            counts = dict(conn.execute("SELECT event, COUNT(*) FROM labels GROUP BY event").fetchall())
            assert counts == {"label": 5, "skip": 2, "retract": 1}
        finally:
            conn.close()
        rows = label_rows(project)
        assert [(r["item_idx"], r["event"], r["label"]) for r in rows[:4]] == [
            (o[0], "label", "neg"), (o[1], "skip", None), (o[1], "retract", None), (o[1], "label", "pos")]
        assert {r["annotator"] for r in rows} == {"alice"} and {r["source"] for r in rows} == {"human"}
        assert {r["round_id"] for r in rows} == {1}
        assert all(r["lead_time_ms"] is not None and r["lead_time_ms"] >= 0 for r in rows if r["event"] != "retract")

        # finish the batch in both tabs (o[5] stays skipped in this round)
        a.keyboard.press("1")
        _shows(a, o[8])
        b.keyboard.press("1")
        _shows(b, o[9])
        a.keyboard.press("1")
        expect(a.locator("#done-msg")).to_contain_text("open in other tabs")  # o[9] is still b's
        b.keyboard.press("1")
        for page in (a, b):
            expect(page.locator("#train")).to_be_visible()
            expect(page.locator("#done-msg")).to_contain_text("Batch done")
        expect(b.locator("#progress")).to_have_text(f"round 1 · {K - 1} / {K}")
        events = [r["event"] for r in label_rows(project)]
        assert (events.count("label"), events.count("skip"), events.count("retract")) == (K - 1, 2, 1)

        # train and pick the next batch from the page: Project.next(K) runs in the server
        b.click("#train")
        expect(b.locator("#item")).to_have_attribute("data-state", "item", timeout=60_000)
        expect(b.locator("#progress")).to_have_text(f"round 2 · 0 / {K}")
        new = queue_order(project)
        assert len(new) == K and not set(new) & (set(o) - {o[5]})
        _shows(b, new[0])
    finally:
        ctx.close()


def test_rejected_answers_are_listed_and_a_401_waits_for_the_link(site: dict, browser: Browser) -> None:
    base, project = site["base"], site["project"]
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{base}/?token={TOKEN}")
        idx = int(_poll(lambda: page.locator("#item").get_attribute("data-idx"), lambda v: v is not None))
        pid = ctx.request.get(f"{base}/api/classes").json()["project"]
        # an answer the server must refuse (422: no such class) lands in the visible "rejected" list
        bad = {"tab": "elsewhere", "body": {"client_uuid": "00000000-0000-4000-8000-000000000001", "idx": idx,
                                            "round_id": None, "event": "label", "label": "no-such-class",
                                            "lead_time_ms": 0, "annotator": "bob"}}
        page.evaluate("([k, v]) => localStorage.setItem(k, v)",
                      [f"pickwise.{pid}.outbox.000000000000001.000000.x", json.dumps(bad)])
        expect(page.locator("#rejected-box")).to_be_visible()
        expect(page.locator("#rejected li")).to_contain_text("no-such-class")
        expect(page.locator("#pending")).to_have_text("pending: 0")

        # the cookie is gone (say, another browser profile): the answer stays, the page asks for the link
        ctx.clear_cookies()
        n_before = len(label_rows(project))
        page.keyboard.press("1")
        expect(page.locator("#banner")).to_contain_text("Reopen the link")
        expect(page.locator("#pending")).to_have_text("pending: 1")
        page.wait_for_timeout(1500)  # no retries while stopped: still there, nothing stored
        expect(page.locator("#pending")).to_have_text("pending: 1")
        assert len(label_rows(project)) == n_before
        page.goto(f"{base}/?token={TOKEN}")  # reopening the link sends it
        _poll(lambda: page.evaluate(OUTBOX_KEYS), lambda keys: keys == [])
        rows = label_rows(project)
        assert len(rows) == n_before + 1
        assert (rows[-1]["item_idx"], rows[-1]["event"], rows[-1]["label"]) == (idx, "label", CLASSES[0])
        assert "no-such-class" not in {r["label"] for r in rows}
        # "u" undoes too: a retract of that answer, and the item is shown again
        _poll(lambda: page.locator("#item").get_attribute("data-idx"), lambda v: v is not None and int(v) != idx)
        page.keyboard.press("u")
        _shows(page, idx)
        _poll(lambda: label_rows(project)[-1]["event"], lambda e: e == "retract")
    finally:
        ctx.close()
