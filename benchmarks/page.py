"""Labels per second that the labelling page's server sustains, driven by a scripted HTTP client.

    python benchmarks/page.py                    # 2000 queued text items, 10 s, one client
    python benchmarks/page.py --items 20000 --seconds 5

A project is made with ``Project.init`` (a CSV of short texts) and ``Project.next(items)`` (cold start:
the whole pool is one batch), then ``pickwise.project.web.serve`` runs as a subprocess on 127.0.0.1 (one
uvicorn worker, as ``pickwise label`` runs it). The client is ``httpx`` with one keep-alive connection
doing exactly what the page does per answer, sequentially: ``POST /api/next`` (lease the next item, one
``BEGIN IMMEDIATE`` transaction), then ``POST /api/label`` (append the event, a second transaction).
Each label is therefore two round trips and two SQLite commits (WAL, ``synchronous=NORMAL``). The figure
is labels stored ÷ wall seconds; the per-request latency percentiles follow. Afterwards the database is
checked: integrity ok and one event per label sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/select.py would shadow the standard library's ``select``: keep this folder off the path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse  # noqa: E402
import csv  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

SERVE = "import sys; from pickwise.project.web import serve; serve(sys.argv[1], port=int(sys.argv[2]))"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen on port {port}") from None
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000, help="items in the batch (default: 2000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to label (default: 10)")
    args = ap.parse_args()

    import httpx

    from pickwise.project import Project

    token = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with open(root / "texts.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "text"])
            w.writerows([f"t-{i}", f"review {i}: arrived on day {i % 7 + 1}, works"] for i in range(args.items))
        project = Project.init(root / "proj", data=root / "texts.csv", labels=["neg", "pos", "neutral"])
        project.next(args.items, progress=False)
        classes = project.store.classes()

        port = _free_port()
        env = {**os.environ, "PICKWISE_TOKEN": token, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-c", SERVE, str(root / "proj"), str(port)], env=env,
                                stdout=subprocess.DEVNULL)
        try:
            _wait_for(port, proc)
            headers = {"Authorization": f"Bearer {token}", "X-Pickwise": "1"}
            lat_next: list[float] = []
            lat_label: list[float] = []
            sent = 0
            # TCP_NODELAY as browsers do: otherwise Nagle's algorithm holds a POST's body back until the
            # server's delayed ACK (~40 ms per request on Linux), and that would be all this measured
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30,
                              transport=transport) as client:
                client.get("/api/classes").raise_for_status()  # warm the connection
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    a = time.perf_counter()
                    item = client.post("/api/next", json={"annotator": "bench", "tab": "bench"}).json()
                    b = time.perf_counter()
                    if item["done"]:
                        break
                    r = client.post("/api/label", json={
                        "client_uuid": str(uuid.uuid4()), "idx": item["idx"], "round_id": item["round_id"],
                        "event": "label", "label": classes[item["idx"] % len(classes)], "lead_time_ms": 1,
                        "annotator": "bench"})
                    c = time.perf_counter()
                    r.raise_for_status()
                    lat_next.append(b - a)
                    lat_label.append(c - b)
                    sent += 1
                wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        conn = sqlite3.connect(root / "proj" / "project.sqlite")
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            stored = conn.execute("SELECT COUNT(*) FROM labels WHERE event = 'label'").fetchone()[0]
        finally:
            conn.close()

    def pct(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return 1000 * s[min(len(s) - 1, int(q * len(s)))]

    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; batch of {args.items} items; one sequential client\n")
    print(f"labels per second: {sent / wall:.1f}  ({sent} labels in {wall:.1f} s; stored {stored}, integrity {ok})")
    print("| request | p50 (ms) | p90 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    for name, xs in (("POST /api/next", lat_next), ("POST /api/label", lat_label)):
        print(f"| {name} | {pct(xs, 0.5):.2f} | {pct(xs, 0.9):.2f} | {pct(xs, 0.99):.2f} |")
    if stored != sent or ok != "ok":
        raise SystemExit(f"database check failed: {stored} stored for {sent} sent, integrity {ok}")


if __name__ == "__main__":
    main()
