"""A selector over a partitioned, replayed stream: one coin per (seed, id), one decision per item, restarts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pickwise.engine.parquet import write_outputs
from pickwise.stream import PacedVeSSAL, StreamUniform, VeSSAL
from pickwise.stream.partitioned import id_uniforms, parquet_id_chunks, select_partitions

N, D = 600, 6


def stream(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(10_000)[:N].astype(np.int64)
    x = rng.normal(size=(N, D)) * rng.uniform(0.2, 3.0, size=(N, 1))
    return ids, x


def partitions(ids, x, bounds, chunk):
    """Partitions [bounds[i], bounds[i+1]) read in chunks of ``chunk`` rows."""
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        yield ((ids[a : min(a + chunk, hi)], x[a : min(a + chunk, hi)]) for a in range(lo, hi, chunk))


def run(selector, ids, x, bounds=(0, 200, 450, N), chunk=64, **kw):
    return [q for _, qs in select_partitions(selector, partitions(ids, x, list(bounds), chunk), seed=5, **kw)
            for q in qs.tolist()]


def test_id_uniforms_are_a_function_of_seed_and_id():
    ids = np.arange(20_000)
    u = id_uniforms(3, ids)
    assert np.all((u >= 0) & (u < 1))
    assert np.array_equal(u[::-1], id_uniforms(3, ids[::-1]))  # order does not matter
    assert np.array_equal(u[5000:6000], id_uniforms(3, ids[5000:6000]))  # nor chunking
    assert not np.array_equal(u, id_uniforms(4, ids))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    s = id_uniforms(3, np.array(["a", "b", "a"]))
    assert s[0] == s[2] != s[1]
    with pytest.raises(ValueError, match="ids must be integers or strings"):
        id_uniforms(3, np.array([0.5, 1.5]))


@pytest.mark.parametrize("make", [lambda: VeSSAL(q=0.1), lambda: PacedVeSSAL(q=0.1), lambda: StreamUniform(q=0.1)])
def test_decisions_equal_one_pass_with_the_item_coins(make):
    """Any partitioning and chunking = the plain item-by-item pass with u = id_uniforms(seed, id)."""
    ids, x = stream()
    ref, plain = [], make()
    for i in range(N):
        if plain.observe_uniforms(x[i : i + 1], id_uniforms(5, ids[i : i + 1]))[0]:
            ref.append(int(ids[i]))
    assert len(ref) > 10
    assert run(make(), ids, x) == ref
    assert run(make(), ids, x, bounds=(0, N), chunk=7) == ref


def test_a_replay_after_a_crash_flips_no_coin_twice(tmp_path):
    ids, x = stream(1)
    whole = run(VeSSAL(q=0.2), ids, x)
    state = tmp_path / "state.npz"
    sel = VeSSAL(q=0.2)
    got = []
    gen = select_partitions(sel, partitions(ids, x, [0, 200, 450, N], 64), seed=5, state=state)
    for n, (_, qs) in enumerate(gen):  # crash after the first chunk of partition 2 (partition 1: 64, 64, 64, 8)
        got += qs.tolist()
        if n == 4:
            break
    # restart from a fresh selector and the checkpoint; the reader replays from the start of partition 2
    sel2 = VeSSAL(q=0.2)
    replay = list(select_partitions(sel2, partitions(ids, x, [200, 450, N], 64), seed=5, state=state))
    rest = [q for _, qs in replay for q in qs.tolist()]
    assert got + rest == whole
    assert replay[0][0].shape[0] == 0  # the replayed chunk that was decided before the crash: skipped
    # a second replay of everything adds nothing
    again = list(select_partitions(VeSSAL(q=0.2), partitions(ids, x, [0, N], 64), seed=5, state=state))
    assert all(a.shape[0] == 0 for a, _ in again)
    with pytest.raises(ValueError, match="belongs to another run"):
        list(select_partitions(VeSSAL(q=0.2), partitions(ids, x, [0, N], 64), seed=6, state=state))


def test_parquet_chunks_and_bad_input(tmp_path):
    ids, x = stream(2)
    (tmp_path / "p").mkdir()
    write_outputs(tmp_path / "p" / "a.parquet", ids[:300].tolist(), embeddings=x[:300], row_group_size=50)
    write_outputs(tmp_path / "p" / "b.parquet", ids[300:].tolist(), embeddings=x[300:], row_group_size=50)
    chunks = list(parquet_id_chunks(tmp_path / "p", x_column="embeddings", chunk_size=128))
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), ids)
    assert np.array_equal(np.concatenate([c[1] for c in chunks]), x)
    assert run(VeSSAL(q=0.1), ids, x) == [
        q for _, qs in select_partitions(VeSSAL(q=0.1), [chunks], seed=5) for q in qs.tolist()]
    with pytest.raises(ValueError, match="has no column 'x'"):
        next(parquet_id_chunks(tmp_path / "p"))
    with pytest.raises(ValueError, match="u must hold uniforms in"):
        VeSSAL(q=0.1).observe_uniforms(x[:2], np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="a chunk repeats an id"):
        list(select_partitions(VeSSAL(q=0.1), [[(np.array([1, 1]), x[:2])]], seed=0))
