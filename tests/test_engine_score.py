"""pickwise.engine.score: scoring a pool into Parquet, in-process and on a Ray Data actor pool.

The plain reference is the fitted model's own methods on the whole array (``predict_proba``,
``embed``, ``predict_proba_mc``) and :mod:`pickwise.scores` on their results; the local engine must
equal it exactly, and the Ray engine must equal the local engine exactly (same ids, same floats),
also after an actor is killed in the middle of a chunk.

Ray: one instance for the module (4 logical CPUs), on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
set before ray is imported), usage statistics off, a throwaway auth token, its files in a temporary
folder removed at the end. Without ray the Ray tests skip; under CI (CI=true) a missing ray fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raytools import ray_module_session

torch = pytest.importorskip("torch")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from pickwise.adapters.nets import mlp
from pickwise.adapters.torch import TorchClassifier
from pickwise.engine.parquet import read_outputs
from pickwise.engine.score import (
    TorchCheckpoint,
    latest_scores,
    score_rows,
    score_to_parquet,
)
from pickwise.scores import bald, entropy, least_confidence, margin, max_entropy

N, D, K, T = 700, 8, 3, 4


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, TorchClassifier]:
    """Rows and an MLP with dropout fitted on them (a few steps: the weights only need to be fixed)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    clf = TorchClassifier(mlp(D, K, hidden=(16,), dropout=0.3), n_classes=K, max_steps=15, chunk_size=256)
    return x, clf.fit(x, y, seed=1)


@pytest.fixture
def npy(tmp_path: Path, data) -> Path:
    p = tmp_path / "x.npy"
    np.save(p, data[0])
    return p


def reference(clf: TorchClassifier, x: np.ndarray) -> dict[str, np.ndarray]:
    """The plain whole-array results every engine must reproduce."""
    probs = clf.predict_proba(x)
    draws = clf.predict_proba_mc(x, T, seed=5)
    return {"probs": probs, "embeddings": clf.embed(x), "mc_probs": draws,
            "score_entropy": entropy(probs), "score_margin": margin(probs),
            "score_least_confidence": least_confidence(probs), "score_bald": bald(draws),
            "score_max_entropy": max_entropy(draws)}


ALL_SCORES = ("entropy", "margin", "least_confidence", "bald", "max_entropy")


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k, v in a.items():
        assert v.dtype == b[k].dtype, k
        assert np.array_equal(v, b[k]), k


# ------------------------------------------------------------------------------------------ local


@pytest.mark.parametrize("batch_size", [64, 250, 4096])
def test_local_equals_the_whole_array_reference(tmp_path, npy, data, batch_size):
    x, clf = data
    out = score_to_parquet(lambda: clf, npy, tmp_path / "out", batch_size=batch_size, n_draws=T, seed=5,
                           scores=ALL_SCORES)
    got = read_outputs(out)
    ref = reference(clf, x)
    assert np.array_equal(got.pop("id"), np.arange(N))
    assert np.array_equal(got.pop("row"), np.arange(N))  # each item's input row
    assert_same(got, ref)
    parts = sorted(p.name for p in out.glob("*.parquet"))
    assert len(parts) == -(-N // batch_size) and parts[0] == "part-000000.parquet"
    manifest = json.loads((out / "score.json").read_text())
    assert manifest["rows"] == N and manifest["batch_size"] == batch_size and manifest["n_draws"] == T


def test_layout_schema_and_selected_columns(tmp_path, npy, data):
    x, clf = data
    out = score_to_parquet(lambda: clf, npy, tmp_path / "out", batch_size=300, n_draws=T, outputs=("mc_probs",),
                           scores=("margin",))
    schema = pq.read_schema(out / "part-000001.parquet")
    assert schema.names == ["id", "mc_probs", "score_margin", "row"]
    assert schema.field("row").type == pa.int64()
    assert pa.types.is_fixed_size_list(schema.field("mc_probs").type)
    assert schema.field("mc_probs").type.list_size == T * K
    assert schema.metadata[b"pickwise.mc_probs.shape"] == f"{T},{K}".encode()
    got = read_outputs(out)
    assert np.array_equal(got["mc_probs"], clf.predict_proba_mc(x, T, seed=0))
    assert np.array_equal(got["score_margin"], margin(clf.predict_proba(x)))
    # no draws: probs and embeddings only, FixedSizeList columns of widths K and d
    out2 = score_to_parquet(lambda: clf, npy, tmp_path / "out2", scores=())
    schema = pq.read_schema(out2 / "part-000000.parquet")
    assert schema.names == ["id", "probs", "embeddings", "row"]
    assert (schema.field("probs").type.list_size, schema.field("embeddings").type.list_size) == (K, 16)


def write_parquet_pool(folder: Path, x: np.ndarray, *, fixed: bool = True) -> list[str]:
    """Two files with uneven row groups, string ids, the features as a list column ``x``."""
    folder.mkdir()
    ids = [f"item-{i:04d}" for i in range(len(x))]
    cut = 333
    for j, (lo, hi) in enumerate([(0, cut), (cut, len(x))]):
        flat = pa.array(x[lo:hi].reshape(-1))
        col = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]) if fixed else pa.array(list(x[lo:hi]))
        pq.write_table(pa.table({"id": ids[lo:hi], "x": col}), folder / f"{j}.parquet", row_group_size=100)
    return ids


@pytest.mark.parametrize("fixed", [True, False])
def test_parquet_input_equals_npy_input(tmp_path, npy, data, fixed):
    x, clf = data
    ids = write_parquet_pool(tmp_path / "pool", x, fixed=fixed)
    a = read_outputs(score_to_parquet(lambda: clf, tmp_path / "pool", tmp_path / "a", batch_size=128))
    b = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "b", batch_size=128))
    assert a.pop("id").tolist() == ids
    b.pop("id")
    assert_same(a, b)


def test_ids_for_npy_and_score_history(tmp_path, data):
    """Two rounds over parts of the pool; latest_scores keeps each item's latest value."""
    x, clf = data
    first, second = np.arange(0, 500), np.arange(300, N)
    np.save(tmp_path / "r1.npy", x[first])
    np.save(tmp_path / "r2.npy", x[second])
    r1 = score_to_parquet(lambda: clf, tmp_path / "r1.npy", tmp_path / "round-1", ids=first, scores=("entropy",))
    r2 = score_to_parquet(lambda: clf, tmp_path / "r2.npy", tmp_path / "round-2", ids=second, scores=("entropy",))
    values = latest_scores([r1, r2], N + 10, score="entropy")
    want = np.full(N + 10, np.nan)
    want[first] = entropy(clf.predict_proba(x[first]))
    want[second] = entropy(clf.predict_proba(x[second]))
    assert np.array_equal(values, want, equal_nan=True)
    with pytest.raises(ValueError, match="outside 0 .. 99"):
        latest_scores([r2], 100)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_torch_checkpoint_equals_the_fitted_model(tmp_path, npy, data, suffix):
    _, clf = data
    state = {k: v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}
    weights = tmp_path / f"w{suffix}"
    if suffix == ".npz":
        np.savez(weights, **{k: v.numpy() for k, v in state.items()})
    else:
        from safetensors.torch import save_file

        save_file(state, str(weights))
    ckpt = TorchCheckpoint(str(weights), "pickwise.adapters.nets:mlp",
                           module_kwargs={"n_features": D, "n_classes": K, "hidden": [16], "dropout": 0.3},
                           options={"chunk_size": 256})
    a = read_outputs(score_to_parquet(ckpt, npy, tmp_path / "a", n_draws=T, scores=("bald",)))
    b = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "b", n_draws=T, scores=("bald",)))
    assert_same(a, b)
    bad = TorchCheckpoint(str(weights), "pickwise.adapters.nets:mlp",
                          module_kwargs={"n_features": D, "n_classes": K, "hidden": [32]})
    with pytest.raises(ValueError, match="do not fit module"):
        score_to_parquet(bad, npy, tmp_path / "c")


def test_score_rows_is_the_chunk_function(data):
    x, clf = data
    got = score_rows(clf, x[:50], outputs=("probs",), scores=("entropy",))
    assert sorted(got) == ["probs", "score_entropy"]
    assert np.array_equal(got["score_entropy"], entropy(clf.predict_proba(x[:50])))


class NoEmbed:
    """A classifier without embed(): probabilities only."""

    n_classes = K

    def predict_proba(self, x):
        return np.full((len(x), K), 1.0 / K)


def test_bad_inputs_name_the_value(tmp_path, npy, data):
    x, clf = data
    src = lambda: clf
    with pytest.raises(ValueError, match="unknown score 'entropyy'"):
        score_to_parquet(src, npy, tmp_path / "o", scores=("entropyy",))
    with pytest.raises(ValueError, match="score 'bald' .* set n_draws"):
        score_to_parquet(src, npy, tmp_path / "o", scores=("bald",))
    with pytest.raises(ValueError, match="unknown output 'logits'"):
        score_to_parquet(src, npy, tmp_path / "o", outputs=("logits",))
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'; got 'spark'"):
        score_to_parquet(src, npy, tmp_path / "o", engine="spark")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got 0"):
        score_to_parquet(src, npy, tmp_path / "o", batch_size=0)
    with pytest.raises(ValueError, match="no .npy file at '.*missing.npy'"):
        score_to_parquet(src, tmp_path / "missing.npy", tmp_path / "o")
    with pytest.raises(ValueError, match="ids must hold one id per row"):
        score_to_parquet(src, npy, tmp_path / "o", ids=np.arange(3))
    with pytest.raises(ValueError, match="no embed"):
        score_to_parquet(NoEmbed, npy, tmp_path / "o")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "part-000000.parquet").write_bytes(b"old")
    with pytest.raises(ValueError, match="full' exists and is not an empty folder"):
        score_to_parquet(src, npy, tmp_path / "full")
    write_parquet_pool(tmp_path / "pool", x)
    with pytest.raises(ValueError, match="has no column 'feats'"):
        score_to_parquet(src, tmp_path / "pool", tmp_path / "o", column="feats")
    with pytest.raises(ValueError, match="has no column 'key'"):
        score_to_parquet(src, tmp_path / "pool", tmp_path / "o", id_column="key")
    with pytest.raises(ValueError, match="is the input folder"):
        score_to_parquet(src, tmp_path / "pool", tmp_path / "pool")
    # a third file of another width
    flat = pa.array(np.zeros(10 * (D + 1), dtype=np.float32))
    pq.write_table(pa.table({"id": [f"z{i}" for i in range(10)], "x": pa.FixedSizeListArray.from_arrays(flat, D + 1)}),
                   tmp_path / "pool" / "2.parquet")
    with pytest.raises(ValueError, match=f"holds {D + 1} numbers per row; earlier files hold {D}"):
        score_to_parquet(src, tmp_path / "pool", tmp_path / "o")
    # a variable-length list whose rows differ in length
    (tmp_path / "ragged").mkdir()
    pq.write_table(pa.table({"id": [1, 2], "x": pa.array([[1.0, 2.0], [1.0]])}), tmp_path / "ragged" / "a.parquet")
    with pytest.raises(ValueError, match="column 'x' must hold 2 numbers in every row"):
        score_to_parquet(src, tmp_path / "ragged", tmp_path / "o")
    assert not (tmp_path / "o").exists()  # a failed run that wrote nothing leaves no folder


def test_local_engine_does_not_import_ray(tmp_path, npy):
    code = (
        "import sys, numpy as np\n"
        "from pickwise.engine.score import score_to_parquet\n"
        "class M:\n"
        "    def predict_proba(self, x): return np.full((len(x), 2), 0.5)\n"
        f"score_to_parquet(M, {str(npy)!r}, {str(tmp_path / 'o')!r}, outputs=('probs',))\n"
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def save_weights(tmp_path: Path, clf: TorchClassifier) -> Path:
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}, str(weights))
    return weights


def test_cli_score_then_select(tmp_path, npy, data, capsys):
    """``pickwise score`` writes what ``pickwise select --parquet`` reads; bad values: one line, status 2."""
    from pickwise.cli import main as pickwise_main
    from pickwise.engine.score_cli import main

    x, clf = data
    weights = save_weights(tmp_path, clf)
    module = ["--module", "pickwise.adapters.nets:mlp", "--module-kwargs",
              json.dumps({"n_features": D, "n_classes": K, "hidden": [16], "dropout": 0.3})]
    base = ["score", "--inputs", str(npy), "--model-checkpoint", str(weights), *module, "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "s"), "--draws", str(T), "--scores", "entropy,bald",
                 "--batch-size", "200"]) == 0
    assert f"scored {N} items into 4 Parquet files" in capsys.readouterr().out
    got = read_outputs(tmp_path / "s")
    assert np.array_equal(got["score_bald"], bald(clf.predict_proba_mc(x, T, seed=0)))
    assert np.array_equal(got["probs"], clf.predict_proba(x))
    picks = tmp_path / "picks.csv"
    assert pickwise_main(["select", "--parquet", str(tmp_path / "s"), "--strategy", "entropy", "--k", "5",
                          "--out", str(picks), "--no-progress"]) == 0
    capsys.readouterr()
    chosen = [int(line.split(",")[1]) for line in picks.read_text().splitlines()[1:]]
    assert chosen == np.argsort(-entropy(clf.predict_proba(x)), kind="stable")[:5].tolist()
    for extra, msg in ((["--scores", "nope"], "unknown score 'nope'"),
                       (["--actors", "2"], "--actors needs --engine ray"),
                       (["--module-kwargs", "[1]"], "--module-kwargs must be a JSON object; got '[1]'"),
                       (["--batch-size", "-3"], "batch_size must be an int >= 1; got -3")):
        assert main([*base, "--out", str(tmp_path / "bad"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pickwise score: error: ") and msg in err, err
    assert main(["score", "--inputs", str(npy), "--out", str(tmp_path / "bad"), "--model-checkpoint",
                 str(tmp_path / "missing.safetensors"), *module]) == 2
    assert "no weights file at" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ Ray

@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    """One Ray instance for the module's Ray tests (4 logical CPUs: the pool never starves the rest)."""
    with ray_module_session(__name__, prefix="pwsc-") as ray:
        yield ray


def test_ray_equals_local_npy_and_parquet(ray_local, tmp_path, npy, data):
    x, clf = data
    write_parquet_pool(tmp_path / "pool", x)
    kw = {"batch_size": 96, "n_draws": T, "seed": 5, "scores": ALL_SCORES}
    for name, inputs in (("npy", npy), ("pq", tmp_path / "pool")):
        local = read_outputs(score_to_parquet(lambda: clf, inputs, tmp_path / f"{name}-local", **kw))
        on_ray = score_to_parquet(lambda: clf, inputs, tmp_path / f"{name}-ray", engine="ray", actors=2, **kw)
        assert sorted(p.name for p in on_ray.iterdir()) == sorted(p.name for p in (tmp_path / f"{name}-local").iterdir())
        assert_same(read_outputs(on_ray), local)
    assert ray_local.is_initialized()  # a run that did not start Ray leaves it running


class DiesOnce:
    """The fitted model, whose first scoring call in any process (the first time only: a marker file
    created exclusively) kills its process, as a lost node would: no exception, no clean-up."""

    def __init__(self, clf: TorchClassifier, marker: str) -> None:
        self.clf, self.marker = clf, marker

    def __getattr__(self, name: str):
        return getattr(self.clf, name)

    def grad_factors(self, x):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.clf.grad_factors(x)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


def test_ray_actor_killed_mid_scoring_is_retried(ray_local, tmp_path, npy, data):
    _, clf = data
    marker = str(tmp_path / "died")
    kw = {"batch_size": 128, "n_draws": T, "scores": ("entropy", "bald")}
    out = score_to_parquet(lambda: DiesOnce(clf, marker), npy, tmp_path / "ray", engine="ray", actors=2, **kw)
    assert Path(marker).read_text() != str(os.getpid())  # an actor died, not this process
    local = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "local", **kw))
    assert_same(read_outputs(out), local)
