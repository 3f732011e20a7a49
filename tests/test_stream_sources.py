"""Stream sources round-trip arrays, iterables and files in chunks."""

import json

import numpy as np
import pytest

from pickwise.stream import (
    VeSSAL,
    array_chunks,
    csv_chunks,
    iterable_chunks,
    jsonl_chunks,
    open_chunks,
    parquet_chunks,
    select_stream,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(23, 3)), rng.integers(0, 4, size=23)


def collect(chunks, size):
    xs, ys = [], []
    for x, y in chunks:
        assert 1 <= x.shape[0] <= size
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), (None if ys[0] is None else np.concatenate(ys))


def test_arrays_and_iterables(data):
    x, y = data
    gx, gy = collect(array_chunks(x, y, chunk_size=5), 5)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    gx, gy = collect(iterable_chunks(iter(x), chunk_size=4), 4)
    np.testing.assert_array_equal(gx, x)
    assert gy is None
    gx, gy = collect(iterable_chunks(zip(x, y), chunk_size=6, labelled=True), 6)
    np.testing.assert_array_equal(gy, y)
    gx, gy = collect(open_chunks(np.asarray(x), chunk_size=7), 7)
    np.testing.assert_array_equal(gx, x)
    with pytest.raises(ValueError, match="same length"):
        next(array_chunks(x, y[:3]))


def test_jsonl(tmp_path, data):
    x, y = data
    path = tmp_path / "s.jsonl"
    with open(path, "w") as f:
        for xi, yi in zip(x, y):
            f.write(json.dumps({"x": xi.tolist(), "y": int(yi)}) + "\n")
        f.write("\n")
    gx, gy = collect(jsonl_chunks(path, y_key="y", chunk_size=5), 5)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    gx, gy = collect(open_chunks(str(path), chunk_size=50), 50)
    np.testing.assert_array_equal(gx, x)
    assert gy is None
    bare = tmp_path / "bare.ndjson"
    bare.write_text("\n".join(json.dumps(r.tolist()) for r in x))
    np.testing.assert_array_equal(collect(open_chunks(bare, x_key=None, chunk_size=4), 4)[0], x)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"x": [1]}\n{"z": [2]}\n')
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        list(jsonl_chunks(broken))


@pytest.mark.parametrize("engine", ["pandas", "csv"])
def test_csv(tmp_path, data, engine):
    x, y = data
    path = tmp_path / "s.csv"
    lines = ["a,label,b,c"] + [f"{float(r[0])!r},{lab},{float(r[1])!r},{float(r[2])!r}" for r, lab in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    gx, gy = collect(csv_chunks(path, label_column="label", chunk_size=6, engine=engine), 6)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    gx, _ = collect(csv_chunks(path, columns=["c", "a"], chunk_size=100, engine=engine), 100)
    np.testing.assert_array_equal(gx, x[:, [2, 0]])
    with pytest.raises(ValueError, match="'nope'"):
        list(csv_chunks(path, label_column="nope", engine=engine))


def test_parquet(tmp_path, data):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x, y = data
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "y": y}), path, row_group_size=10)
    gx, gy = collect(parquet_chunks(path, label_column="y", chunk_size=4), 4)
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    lists = tmp_path / "l.pq"
    pq.write_table(pa.table({"x": [r.tolist() for r in x]}), lists)
    np.testing.assert_array_equal(collect(open_chunks(lists, chunk_size=9), 9)[0], x)


def test_select_stream_over_a_source(data):
    x, _ = data
    sel = VeSSAL(q=0.5)
    got = np.concatenate(list(select_stream(sel, array_chunks(x, chunk_size=4), rng=np.random.default_rng(0))))
    want = np.flatnonzero(VeSSAL(q=0.5).observe_many(x, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(got, want)
