"""A pool on disk as Parquet, selected on Ray against one process: time, memory, bytes moved per round.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed.py --n 10000000 --dir /tmp/pw-pool-10m
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distributed.py --n 2000000 --dir /tmp/pw-pool-2m

The pool (``--n`` rows, K = ``--classes``, d = ``--dim``, float32, clustered embeddings h, gradient factors
a = p − e_ŷ, entropy scores) is generated chunk by chunk into Parquet part files under ``--dir`` (reused
when its manifest matches). Two measurements, each in a fresh process:

* **one process** (the reference): reads the whole pool into memory, then ``top_k``, ``kmeanspp_seeding``
  (BADGE) and ``kcenter_greedy`` (core-set, from ``--labelled`` labelled rows) choose ``--k``;
* **Ray**: a local Ray with ``--shards`` actors, each reading only its own row groups
  (:func:`pickwise.engine.parquet.parquet_loaders`); the driver never holds the pool. The same three
  selections through :mod:`pickwise.engine`, with an engine wrapper that counts the bytes pickled
  between driver and actors (arguments, broadcasts once, results).

Reported: wall time of each selection and its ratio, the picks' equality, peak memory (the reference
process; the Ray driver; each actor's VmHWM) and bytes moved per selection round. A cost model for
larger pools, from these per-round costs, is in docs/distributed.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "src"))

import argparse
import json
import os
import pickle
import resource
import secrets
import shutil
import subprocess
import tempfile
import time

import numpy as np

CHUNK = 500_000


def make_pool(folder: Path, n: int, classes: int, dim: int, seed: int) -> None:
    """Parquet parts of CHUNK rows: id, a (K), h (d), score; skipped when the manifest matches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pickwise.embeddings import gradient_factor

    spec = {"n": n, "classes": classes, "dim": dim, "seed": seed, "chunk": CHUNK}
    manifest = folder / "pool.json"
    if manifest.exists() and json.loads(manifest.read_text()) == spec:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    centres = np.random.default_rng(seed).normal(scale=2.0, size=(200, dim)).astype(np.float32)
    for c, lo in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - lo)
        rng = np.random.default_rng([seed, c])
        h = centres[rng.integers(0, 200, size=m)] + rng.normal(size=(m, dim)).astype(np.float32)
        logits = rng.normal(scale=2.0, size=(m, classes))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        table = pa.table({
            "id": pa.array(np.arange(lo, lo + m, dtype=np.int64)),
            "a": pa.FixedSizeListArray.from_arrays(pa.array(gradient_factor(p).astype(np.float32).ravel()), classes),
            "h": pa.FixedSizeListArray.from_arrays(pa.array(h.ravel()), dim),
            "score": pa.array(-(p * np.log(p)).sum(axis=1)),
        })
        pq.write_table(table, folder / f"part-{c:05d}.parquet", row_group_size=100_000)
    manifest.write_text(json.dumps(spec))


def read_rows(folder: Path, column: str, rows: np.ndarray) -> np.ndarray:
    """Rows of a list column, reading only the row groups that hold them (never the whole column)."""
    import pyarrow.parquet as pq

    from pickwise.engine.parquet import parquet_files

    want = np.sort(np.asarray(rows, dtype=np.int64))
    out, offset = {}, 0
    for f in parquet_files(folder):
        pf = pq.ParquetFile(f)
        for g in range(pf.num_row_groups):
            m = pf.metadata.row_group(g).num_rows
            inside = want[(want >= offset) & (want < offset + m)]
            if inside.shape[0]:
                col = pf.read_row_group(g, columns=[column]).column(0).combine_chunks()
                block = col.flatten().to_numpy().reshape(m, -1)
                out.update({int(r): block[r - offset] for r in inside})
            offset += m
    return np.stack([out[int(r)] for r in rows])


def _reset_peak() -> None:
    """Reset this process's peak RSS (a child starts with its parent's ru_maxrss, so read VmHWM instead)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vmhwm(state: dict, _: object) -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CountingEngine:
    """Wraps an engine; counts the pickled bytes of every argument and result crossing to the shards."""

    def __init__(self, engine):
        self.engine, self.sent, self.received, self.calls = engine, 0, 0, 0
        self._handles: dict[int, int] = {}

    def _arg(self, arg, copies: int) -> None:
        if id(arg) in self._handles:  # a broadcast: stored once, counted at broadcast()
            return
        self.sent += copies * len(pickle.dumps(arg, protocol=5))

    def _res(self, res):
        self.received += len(pickle.dumps(res, protocol=5))
        return res

    @property
    def sizes(self):
        return self.engine.sizes

    @property
    def offsets(self):
        return self.engine.offsets

    @property
    def fault_types(self):
        return getattr(self.engine, "fault_types", ())

    def broadcast(self, value):
        handle = self.engine.broadcast(value)
        self.sent += len(pickle.dumps(value, protocol=5))
        self._handles[id(handle)] = 1
        return handle

    def map(self, fn, arg=None):
        self.calls += 1
        self._arg(arg, len(self.engine.sizes))
        return self._res(self.engine.map(fn, arg))

    def call(self, shard, fn, arg=None):
        self.calls += 1
        self._arg(arg, 1)
        return self._res(self.engine.call(shard, fn, arg))

    def scan(self, fn, init, *, prepare=None, arg=None):
        self.calls += 1
        self._arg(arg, len(self.engine.sizes))
        self.sent += len(self.engine.sizes) * len(pickle.dumps(init, protocol=5))
        return self._res(self.engine.scan(fn, init, prepare=prepare, arg=arg))

    def close(self):
        self.engine.close()


def worker(args: argparse.Namespace) -> None:
    from pickwise.engine import sharded_kcenter, sharded_kmeanspp, sharded_top_k
    from pickwise.engine.parquet import parquet_loaders, read_outputs
    from pickwise.progress import progress_bars

    _reset_peak()
    out: dict = {"rss0": _peak_mb()}
    labelled_rows = np.arange(args.labelled) * 997 % args.n
    folder = Path(args.dir)
    seed = args.seed
    with progress_bars(False):
        if args.worker == "reference":
            from pickwise.embeddings import GradEmbedding
            from pickwise.select import kcenter_greedy, kmeanspp_seeding, top_k

            t = time.perf_counter()
            pool = read_outputs(folder, ["a", "h", "score"])
            out["load_s"] = time.perf_counter() - t
            lab = pool["h"][labelled_rows] + 0.1
            runs = {
                "top-k": lambda: top_k(pool["score"], args.k, rng=np.random.default_rng(seed)),
                "BADGE": lambda: kmeanspp_seeding(GradEmbedding(pool["a"], pool["h"]), args.k,
                                                  rng=np.random.default_rng(seed)),
                "core-set": lambda: kcenter_greedy(pool["h"], args.k, centres=lab, rng=np.random.default_rng(seed)),
            }
            for name, fn in runs.items():
                t = time.perf_counter()
                picks = fn()
                out[name] = {"s": time.perf_counter() - t}
                np.save(Path(args.picks) / f"ref_{name}.npy", picks)
            out["peak_mb"] = _peak_mb()
        else:
            from pickwise.engine import RayEngine
            from pickwise.engine.ray import import_ray

            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
            tmp = tempfile.mkdtemp(prefix="pwray-")
            ray = import_ray(local=True)
            try:
                t = time.perf_counter()
                ray.init(num_cpus=max(2, args.shards), include_dashboard=False, log_to_driver=False, _temp_dir=tmp)
                out["ray_start_s"] = time.perf_counter() - t
                lab_arrays = read_rows(folder, "h", labelled_rows) + 0.1 if args.labelled else None
                out["rss_after_labelled"] = _peak_mb()
                t = time.perf_counter()
                eng = RayEngine.from_loaders(parquet_loaders(folder, ["a", "h", "score"], args.shards))
                out["load_s"] = time.perf_counter() - t
                counting = CountingEngine(eng)
                runs = {
                    "top-k": lambda e: sharded_top_k(e, args.k, rng=np.random.default_rng(seed)),
                    "BADGE": lambda e: sharded_kmeanspp(e, args.k, rng=np.random.default_rng(seed)),
                    "core-set": lambda e: sharded_kcenter(e, args.k, centres=lab_arrays,
                                                          rng=np.random.default_rng(seed), x="h"),
                }
                for name, fn in runs.items():
                    counting.sent = counting.received = counting.calls = 0
                    t = time.perf_counter()
                    picks = fn(counting)
                    out[name] = {"s": time.perf_counter() - t, "sent": counting.sent,
                                 "received": counting.received, "calls": counting.calls}
                    np.save(Path(args.picks) / f"ray_{name}.npy", picks)
                out["worker_peak_mb"] = eng.map(_vmhwm)
                eng.close()
                out["peak_mb"] = _peak_mb()
            finally:
                ray.shutdown()
                shutil.rmtree(tmp, ignore_errors=True)
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--labelled", type=int, default=100)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default="/tmp/pw-pool")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--picks", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    t0 = time.perf_counter()
    make_pool(Path(args.dir), args.n, args.classes, args.dim, args.seed)
    gen = time.perf_counter() - t0
    picks = Path(tempfile.mkdtemp(prefix="pw-picks-"))
    res = {}
    for which in ("reference", "ray"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", which, "--picks", str(picks)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
        res[which] = json.loads(line[7:])
    ref, ray = res["reference"], res["ray"]
    print(f"pool: {args.n:,} rows, K = {args.classes}, d = {args.dim}, float32, Parquet in {args.dir} "
          f"(generated in {gen:.0f} s); k = {args.k}; {args.shards} Ray actors; {os.cpu_count()} CPUs\n")
    print("| selection | one process (s) | Ray (s) | Ray ÷ one | same picks | rounds (calls) | bytes sent / round | "
          "bytes received / round |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for name in ("top-k", "BADGE", "core-set"):
        same = np.array_equal(np.load(picks / f"ref_{name}.npy"), np.load(picks / f"ray_{name}.npy"))
        r = ray[name]
        print(f"| {name} | {ref[name]['s']:.1f} | {r['s']:.1f} | {r['s'] / ref[name]['s']:.2f} | {same} | "
              f"{r['calls']} | {r['sent'] / r['calls']:,.0f} | {r['received'] / r['calls']:,.0f} |")
    print(f"\nmemory (a fresh Python process starts at {ref['rss0']:,.0f} MB): one process peak {ref['peak_mb']:,.0f} MB (loading the pool {ref['load_s']:.1f} s); Ray driver "
          f"peak {ray['peak_mb']:,.0f} MB (of which {ray['rss_after_labelled']:,.0f} MB after reading the labelled "
          f"rows' h); actors' peaks {', '.join(f'{m:,.0f}' for m in ray['worker_peak_mb'])} MB (each read its "
          f"row groups in {ray['load_s']:.1f} s); Ray start {ray['ray_start_s']:.1f} s; total "
          f"{time.perf_counter() - t0:.0f} s")
    shutil.rmtree(picks, ignore_errors=True)


if __name__ == "__main__":
    main()
