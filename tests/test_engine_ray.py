"""pickwise.engine on Ray: the same picks as the local engine and the single-machine functions.

One Ray instance for the module (4 logical CPUs, started once), then one ``ray.cluster_utils.Cluster``
(head + 2 nodes) for the last test; everything on 127.0.0.1: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
is set before ray is imported (Ray reads it into a constant at import; with it every listener binds
loopback), usage statistics and the dashboard are off, token auth stays on with a throwaway token,
and Ray writes only under its own temporary directory, removed at the end.

Without ray these tests skip; under CI (CI=true, where the set-up installs the distributed extra) a
missing ray fails.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raytools import ray_loopback_env, tcp_listeners

from pickwise.embeddings import GradEmbedding, gradient_factor
from pickwise.engine import (
    LocalEngine,
    npy_loaders,
    sharded_kcenter,
    sharded_kmeanspp,
    sharded_top_k,
)
from pickwise.select import kcenter_greedy, kmeanspp_seeding, top_k

_IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if importlib.util.find_spec("ray") is None:
    if _IN_CI:
        raise RuntimeError('CI must run the Ray tests, but ray is not installed (pip install "pickwise[distributed]")')
    pytest.skip('the Ray engine tests need ray: pip install "pickwise[distributed]"', allow_module_level=True)

@pytest.fixture(scope="module")
def ray_env() -> Iterator[Path]:
    """Ray's variables (restored afterwards) and a short private temp dir (Unix socket paths)."""
    with ray_loopback_env(__name__) as tmp:
        yield tmp


@pytest.fixture
def ray_local(ray_env: Path):
    """The module's single Ray instance (started on first use; the cluster test shuts it down last)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, _temp_dir=str(ray_env / "local"))
    return ray


def data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = gradient_factor(rng.dirichlet(np.ones(4) * 0.5, size=n)).astype(np.float32)
    h = (rng.normal(size=(n, 6)) + rng.integers(0, 3, size=(n, 1)) * 2).astype(np.float32)
    score = np.round(rng.normal(size=n), 1)  # ties
    return a, h, score


def check_same_picks(eng, a, h, score) -> None:
    """Top-k, k-means++ and k-center on ``eng`` equal the single-machine functions."""
    k = 40
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(sharded_top_k(eng, k, rng=r1), top_k(score, k, rng=r2))
    assert np.array_equal(sharded_kmeanspp(eng, k, rng=r1), kmeanspp_seeding(GradEmbedding(a, h), k, rng=r2))
    assert np.array_equal(sharded_kmeanspp(eng, k, rng=r1, sums="parallel"), kmeanspp_seeding(GradEmbedding(a, h), k, rng=r2))
    lab = h[:5] + 0.5
    assert np.array_equal(sharded_kcenter(eng, k, centres=lab, rng=r1, x="h"), kcenter_greedy(h, k, centres=lab, rng=r2))
    assert np.array_equal(sharded_kcenter(eng, k, rng=r1, x="h"), kcenter_greedy(h, k, rng=r2))
    assert r1.random() == r2.random()


@pytest.mark.parametrize("n_shards", [1, 2, 3])
def test_ray_engine_same_picks(ray_local, n_shards):
    from pickwise.engine import RayEngine

    a, h, score = data()
    with RayEngine.from_arrays({"a": a, "h": h, "score": score}, n_shards=n_shards) as eng:
        assert eng.sizes == LocalEngine.from_arrays({"a": a}, n_shards=n_shards).sizes
        check_same_picks(eng, a, h, score)
    assert ray_local.is_initialized()  # an engine that did not start Ray leaves it running


def test_ray_engine_approximate_selection_equals_the_local_engine(ray_local):
    """k-means|| and the two-round core-set: the local engine's picks with the same shards and seed."""
    from pickwise.engine import RayEngine, sharded_kcenter_two_round, sharded_kmeans_parallel

    a, h, _ = data(seed=2)
    local = LocalEngine.from_arrays({"a": a, "h": h}, n_shards=3)
    with RayEngine.from_arrays({"a": a, "h": h}, n_shards=3) as eng:
        assert np.array_equal(sharded_kmeans_parallel(eng, 25, rng=np.random.default_rng(5), rounds=3),
                              sharded_kmeans_parallel(local, 25, rng=np.random.default_rng(5), rounds=3))
        lab = h[:4] + 0.5
        assert np.array_equal(sharded_kcenter_two_round(eng, 25, centres=lab, rng=np.random.default_rng(5), x="h"),
                              sharded_kcenter_two_round(local, 25, centres=lab, rng=np.random.default_rng(5), x="h"))


def test_ray_engine_from_npy_files_and_errors(ray_local, tmp_path):
    from pickwise.engine import RayEngine

    a, h, score = data(seed=1)
    for name, arr in (("a", a), ("h", h), ("score", score)):
        np.save(tmp_path / f"{name}.npy", arr)
    loaders = npy_loaders({n: tmp_path / f"{n}.npy" for n in ("a", "h", "score")}, 3)
    with RayEngine.from_loaders(loaders) as eng:
        assert eng.sizes == (100, 100, 100)
        check_same_picks(eng, a, h, score)
        bad = score.copy()
        with pytest.raises(ValueError, match="'entropy' is not an array"):
            sharded_top_k(eng, 3, rng=np.random.default_rng(0), score="entropy")
        # a shard-side score function; NaN is named by its global position
        bad[[150, 250]] = np.nan
        with pytest.raises(ValueError, match="nan at position 150"):
            sharded_top_k(eng, 3, rng=np.random.default_rng(0), score=lambda s: bad[s["offset"] : s["offset"] + s["n"]])
    with pytest.raises(ValueError, match="already initialised.*'127.0.0.1:1'"):
        RayEngine.from_arrays({"a": a}, n_shards=1, address="127.0.0.1:1")


def test_select_cli_on_ray_same_csv(ray_local, tmp_path, capsys):
    """``pickwise select --engine ray`` (3 actors, each reading its own rows): the CSV of the plain command."""
    from test_select_engine import select, write_outputs

    paths = write_outputs(tmp_path)
    for strategy in ("bald", "badge", "coreset"):  # every strategy: test_select_engine.py, on the local engine
        assert select(paths, tmp_path / "plain.csv", strategy) == 0
        assert select(paths, tmp_path / "ray.csv", strategy, "--engine", "ray", "--shards", "3") == 0, capsys.readouterr()
        assert (tmp_path / "ray.csv").read_text() == (tmp_path / "plain.csv").read_text(), strategy
    assert "on the ray engine (3 shards)" in capsys.readouterr().out
    assert ray_local.is_initialized()


def test_project_next_on_ray_is_the_plain_round(ray_local, tmp_path):
    """``Project.next(engine="ray", shards=2)`` (BADGE, the projects' default): the plain round's picks."""
    from test_project_engine import labelled_project, queue

    plain, sharded = labelled_project(tmp_path, "plain"), labelled_project(tmp_path, "ray")
    a = plain.next(12, progress=False)
    b = sharded.next(12, progress=False, engine="ray", shards=2)
    assert a.strategy == b.strategy == "badge"
    assert a.chosen == b.chosen and queue(plain, 1) == queue(sharded, 1)
    assert ray_local.is_initialized()


def test_candidates_on_ray_from_parquet_history_are_subsamples(ray_local, tmp_path):
    """Candidate subsampling: 3 actors read their own items' history from Parquet rounds and draw
    exactly the candidates Subsample.select draws (pickwise.engine.subsample)."""
    from test_engine_subsample import Recorder, reference, write_round

    from pickwise.engine import RayEngine
    from pickwise.engine.score import latest_scores
    from pickwise.engine.subsample import history_loaders, sharded_candidates
    from pickwise.wrappers import Subsample

    n, rng = 600, np.random.default_rng(2)
    r1 = write_round(tmp_path / "r1", np.arange(n), rng.normal(size=n))
    ids = np.sort(rng.choice(n, 150, replace=False))
    r2 = write_round(tmp_path / "r2", ids, rng.normal(size=150))
    labeled = np.sort(rng.choice(n, 40, replace=False))
    ref, _ = reference(latest_scores([r1, r2], n), labeled, 8, {"alpha": 70, "tau": 0.5}, seed=3)
    with RayEngine.from_loaders(history_loaders([r1, r2], n, 3, exclude=labeled)) as eng:
        got = sharded_candidates(eng, Subsample(Recorder(), alpha=70, tau=0.5), 8, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(got, ref)


def test_select_cli_unreachable_address_is_one_line(ray_env, tmp_path):
    """A fresh process (Ray not started): the address nobody answers at, named in one line, exit 2."""
    import subprocess

    from test_select_engine import write_outputs

    paths = write_outputs(tmp_path)
    cmd = [sys.executable, "-m", "pickwise", "select", "--probs", str(paths["probs"]), "--strategy", "margin",
           "--k", "3", "--engine", "ray", "--address", "127.0.0.1:1", "--out", str(tmp_path / "o.csv")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "CI": ""})
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("pickwise select: error: no Ray cluster answers at address '127.0.0.1:1'")
    assert out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "o.csv").exists()


def test_actor_killed_mid_selection_reruns_to_the_same_picks(ray_local):
    """An actor killed after pick 10 of k-means++: the run restarts on a rebuilt engine, same picks."""
    from pickwise.engine import RayEngine, run_with_restarts

    a, h, _ = data(seed=3)
    built: list[RayEngine] = []

    def build() -> RayEngine:
        built.append(RayEngine.from_arrays({"a": a, "h": h}, n_shards=3))
        return built[-1]

    def kill_once(t: int) -> None:
        if t == 10 and len(built) == 1:
            ray_local.kill(built[0]._actors[1])

    rng = np.random.default_rng(5)
    picks = run_with_restarts(build, lambda eng: sharded_kmeanspp(eng, 40, rng=rng, on_pick=kill_once), rng=rng)
    ref_rng = np.random.default_rng(5)
    assert np.array_equal(picks, kmeanspp_seeding(GradEmbedding(a, h), 40, rng=ref_rng))
    assert len(built) == 2  # the kill was seen and the run started over
    assert rng.random() == ref_rng.random()
    # a shard's own error is not a fault: raised at once, no rebuild
    built.clear()
    with pytest.raises(ValueError, match=r"k=10000 must lie in 1 .. 300"):
        run_with_restarts(build, lambda eng: sharded_kmeanspp(eng, 10_000, rng=rng), rng=rng)
    assert len(built) == 1


def test_restart_mode_recovers_a_killed_actor_mid_selection(ray_local):
    """``restart=True``: a killed actor is restarted, its operations replayed, and the run goes on to the
    same picks; killed once by ``ray.kill`` during k-means++, once by SIGKILL to its process during k-center."""
    import signal

    from pickwise.engine import RayEngine

    a, h, _ = data(seed=4)
    with RayEngine.from_arrays({"a": a, "h": h}, n_shards=3, restart=True) as eng:
        pids = [eng.call(1, lambda s, _: os.getpid())]

        def kill(t: int) -> None:
            if t == 10:
                ray_local.kill(eng._actors[1], no_restart=False)

        rng, ref = np.random.default_rng(6), np.random.default_rng(6)
        assert np.array_equal(sharded_kmeanspp(eng, 40, rng=rng, on_pick=kill),
                              kmeanspp_seeding(GradEmbedding(a, h), 40, rng=ref))
        pids.append(eng.call(1, lambda s, _: os.getpid()))

        def sigkill(t: int) -> None:
            if t == 10:
                os.kill(pids[-1], signal.SIGKILL)

        lab = h[:5] + 0.5
        assert np.array_equal(sharded_kcenter(eng, 30, centres=lab, rng=rng, x="h", on_pick=sigkill),
                              kcenter_greedy(h, 30, centres=lab, rng=ref))
        pids.append(eng.call(1, lambda s, _: os.getpid()))
        assert len(set(pids)) == 3  # a new actor process served the rest, twice
        assert rng.random() == ref.random()


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
    seen, todo = {root}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc to list sockets")
def test_every_ray_listener_is_on_loopback(ray_local):
    from pickwise.engine import RayEngine

    with RayEngine.from_arrays({"a": np.zeros((4, 1))}, n_shards=2):  # with the actors' workers up
        addrs = tcp_listeners(_descendants(os.getpid()))
    assert len(addrs) >= 3, addrs  # GCS, raylet, workers: the check saw them
    assert set(addrs) <= LOOPBACK, addrs


def test_cluster_of_three_nodes_same_picks(ray_env):
    """Head + 2 nodes on 127.0.0.1, joined through ``address=``: shards on every node, the same picks."""
    import ray
    from ray.cluster_utils import Cluster

    from pickwise.engine import RayEngine

    if ray.is_initialized():
        ray.shutdown()  # the single instance gives way (this test runs last)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": str(ray_env / "ray")},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        a, h, score = data(seed=2)
        arrays = {"a": a, "h": h, "score": score}
        # one CPU per actor on nodes of one CPU: one shard per node
        with RayEngine.from_arrays(arrays, n_shards=3, address=cluster.address, actor_options={"num_cpus": 1}) as eng:
            nodes = eng.map(lambda s, _: ray.get_runtime_context().get_node_id())
            assert len(set(nodes)) == 3
            check_same_picks(eng, a, h, score)
        assert not ray.is_initialized()  # the engine connected, so it disconnects
    finally:
        cluster.shutdown()


def test_small_arguments_travel_inline_and_large_ones_through_the_object_store():
    """RayEngine.broadcast returns small plain data as it is (sent with each call) and ray.put's the rest."""
    from pickwise.engine.ray import INLINE_BYTES, _small

    assert _small((3, (np.zeros(138, dtype=np.float32), np.float64(1.5)), 2.0, True))
    assert _small(("PCG64", {"state": {"state": 2**100, "inc": 7}, "has_uint32": 0, "uinteger": 0}))
    assert not _small(np.zeros(INLINE_BYTES // 8 + 1))
    assert not _small([np.zeros(10)] * (INLINE_BYTES // 80 + 1))
    assert not _small((1, lambda s: s))
    assert not _small(np.array([object()], dtype=object))
