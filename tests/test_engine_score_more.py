"""pickwise.engine.score: image folders as input, scoring a subset of rows, resuming an interrupted run.

Plain references: images read one by one with Pillow in path order (convert, optional bilinear
resize, /255, channels first) and scored by the fitted model's own methods on the whole array;
a subset ``rows`` scored as the input ``x[sorted(rows)]`` of its own (exactly), and the full run's
rows (to 1e-6: a forward pass may round differently with other rows beside it); a resumed run
equals an uninterrupted one exactly and scores only the chunks that were missing.

Ray (one test): the module-scoped instance pattern of tests/test_engine_score.py (4 logical CPUs,
127.0.0.1 only, usage statistics off, a throwaway auth token, files in a temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raytools import ray_module_session

torch = pytest.importorskip("torch")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
Image = pytest.importorskip("PIL.Image")

from pickwise.adapters.nets import mlp, small_cnn
from pickwise.adapters.torch import TorchClassifier
from pickwise.data import image_folder_files
from pickwise.engine.parquet import read_outputs
from pickwise.engine.score import MANIFEST, PLAN, TorchCheckpoint, score_to_parquet
from pickwise.scores import bald, entropy, margin

N, D, K, T = 700, 8, 3, 4
SIDE = 8


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k, v in a.items():
        assert v.dtype == b[k].dtype, k
        assert np.array_equal(v, b[k]), k


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, TorchClassifier]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    clf = TorchClassifier(mlp(D, K, hidden=(16,), dropout=0.3), n_classes=K, max_steps=10, chunk_size=256)
    return x, clf.fit(x, y, seed=1)


@pytest.fixture
def npy(tmp_path: Path, data) -> Path:
    p = tmp_path / "x.npy"
    np.save(p, data[0])
    return p


# ------------------------------------------------------------------------------------------ image folders


def write_images(root: Path, *, seed: int = 0, grey: bool = False) -> list[str]:
    """Images in class sub-folders, one deeper, one at the top, in three formats, plus hidden entries
    that must be skipped; returns the relative paths in the expected (folder by folder) order."""
    rng = np.random.default_rng(seed)
    names = ["a/0.png", "a/1.bmp", "a/deep/2.png", "a-b/3.png", "a-b/4.jpg", "b/5.png", "b/6.png",
             "b/7.PNG", "z.png"] + [f"c/{i:02d}.png" for i in range(8, 21)]
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(SIDE, SIDE) if grey else (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="L" if grey else "RGB").save(p, format="JPEG" if name.endswith(".jpg") else None)
    (root / ".DS_Store").write_bytes(b"junk")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.txt").write_text("skipped")
    # folder by folder: "a" < "a-b" as folder names although "a/..." > "a-b/..." as strings
    return sorted(names, key=lambda s: tuple(s.split("/")))


def plain_images(root: Path, files: list[str], mode: str, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    rows = []
    for f in files:
        with Image.open(root / f) as im:
            im = im.convert(mode)
        if size_hw is not None:
            im = im.resize((size_hw[1], size_hw[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        rows.append(a[None] if mode == "L" else a.transpose(2, 0, 1))
    # C order: np.stack keeps the transposed layout, and a convolution's floats depend on the strides
    return np.ascontiguousarray(np.stack(rows))


def chunked(f, x: np.ndarray, batch_size: int, axis: int = 0) -> np.ndarray:
    """``f`` on ``batch_size`` rows at a time, as the scorer's forward passes see them (a convolution's
    floats may depend on the rows beside it in a pass)."""
    return np.concatenate([f(x[i:i + batch_size]) for i in range(0, len(x), batch_size)], axis=axis)


def cnn_clf(x: np.ndarray, channels: int, side: int = SIDE) -> TorchClassifier:
    net = small_cnn(channels, K, side, dropout=0.3, channels=(4, 4), hidden=8)
    clf = TorchClassifier(net, n_classes=K, max_steps=3, chunk_size=64)
    return clf.fit(x, np.arange(len(x)) % K, seed=0)


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory) -> tuple[Path, list[str], np.ndarray, TorchClassifier]:
    root = tmp_path_factory.mktemp("imgs") / "pool"
    files = write_images(root)
    x = plain_images(root, files, "RGB")
    return root, files, x, cnn_clf(x, 3)


def test_image_folder_equals_the_plain_reference(tmp_path, rgb_folder):
    root, files, x, clf = rgb_folder
    out = score_to_parquet(lambda: clf, root, tmp_path / "out", batch_size=7, n_draws=T, seed=3,
                           scores=("entropy", "bald"))
    got = read_outputs(out)
    assert got.pop("id").tolist() == files
    assert np.array_equal(got.pop("row"), np.arange(len(files)))  # the item index of each path
    probs = chunked(clf.predict_proba, x, 7)
    draws = chunked(lambda v: clf.predict_proba_mc(v, T, seed=3), x, 7, axis=1)
    assert_same(got, {"probs": probs, "embeddings": chunked(clf.embed, x, 7), "mc_probs": draws,
                      "score_entropy": entropy(probs), "score_bald": bald(draws)})
    assert json.loads((out / MANIFEST).read_text())["rows"] == len(files)
    # a <class>/<file> layout: the ids are image_folder_files' paths (what `pickwise select --ids` uses)
    classes = tmp_path / "classes"
    for f in files:
        if f.count("/") == 1:
            (classes / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / f, classes / f)
    ids = read_outputs(score_to_parquet(lambda: clf, classes, tmp_path / "c", outputs=("probs",)))["id"]
    assert ids.tolist() == image_folder_files(classes)[0]


def test_image_modes_sizes_and_checkpoint(tmp_path, rgb_folder):
    root, files, _x, clf = rgb_folder
    grey = tmp_path / "grey"
    gfiles = write_images(grey, seed=1, grey=True)
    # auto: greyscale when every image is (as load_image_folder decides); RGB on demand; L of RGB images
    xg = plain_images(grey, gfiles, "L")
    clf1 = cnn_clf(xg, 1)
    got = read_outputs(score_to_parquet(lambda: clf1, grey, tmp_path / "g", outputs=("probs",), scores=()))
    assert np.array_equal(got["probs"], clf1.predict_proba(xg))
    got = read_outputs(score_to_parquet(lambda: clf1, root, tmp_path / "l", outputs=("probs",), scores=(),
                                        image_mode="L"))
    assert np.array_equal(got["probs"], clf1.predict_proba(plain_images(root, files, "L")))
    got = read_outputs(score_to_parquet(lambda: clf, grey, tmp_path / "rgb", outputs=("probs",), scores=(),
                                        image_mode="RGB", batch_size=5))
    assert np.array_equal(got["probs"], chunked(clf.predict_proba, plain_images(grey, gfiles, "RGB"), 5))
    # resized (bilinear) to (height, width) = (12, 12); then a CNN checkpoint gets row_shape (3, 12, 12)
    x12 = plain_images(root, files, "RGB", (12, 12))
    clf12 = cnn_clf(x12, 3, 12)
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in clf12.module_.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    ckpt = TorchCheckpoint(str(tmp_path / "w.safetensors"), "pickwise.adapters.nets:small_cnn",
                           module_kwargs={"in_channels": 3, "n_classes": K, "image_size": 12, "dropout": 0.3,
                                          "channels": [4, 4], "hidden": 8}, options={"chunk_size": 64})
    got = read_outputs(score_to_parquet(ckpt, root, tmp_path / "r", image_size=12, scores=("margin",)))
    assert np.array_equal(got["probs"], clf12.predict_proba(x12))
    assert np.array_equal(got["embeddings"], clf12.embed(x12))
    assert np.array_equal(got["score_margin"], margin(clf12.predict_proba(x12)))


def test_image_folder_errors_name_the_file(tmp_path, rgb_folder):
    _, _, _, clf = rgb_folder
    src = lambda: clf
    pool = tmp_path / "pool"
    write_images(pool)
    Image.fromarray(np.zeros((SIDE + 1, SIDE, 3), np.uint8)).save(pool / "c" / "15.png")  # 8 wide, 9 high
    for mode in ("auto", "RGB"):  # auto: found by the header scan; RGB: by the chunk that reads the file
        with pytest.raises(ValueError, match=r"images differ in size: a/0.png is 8×8 but c/15.png is 8×9 .*image_size"):
            score_to_parquet(src, pool, tmp_path / f"o-{mode}", image_mode=mode)
    (pool / "c" / "15.png").unlink()
    (pool / "b" / "6.png").write_bytes(b"not an image")
    for mode in ("auto", "RGB"):
        with pytest.raises(ValueError, match=r"cannot read image 'b/6.png'"):
            score_to_parquet(src, pool, tmp_path / f"p-{mode}", image_mode=mode)
    (pool / "b" / "6.png").unlink()
    (pool / "b" / "labels.csv").write_text("x")
    with pytest.raises(ValueError, match=r"labels.csv' in image folder .* is not an image file"):
        score_to_parquet(src, pool, tmp_path / "o")
    (pool / "b" / "labels.csv").unlink()
    with pytest.raises(ValueError, match="inside the input image folder"):
        score_to_parquet(src, pool, pool / "scores")
    with pytest.raises(ValueError, match="image_mode must be one of auto, RGB, L; got 'CMYK'"):
        score_to_parquet(src, pool, tmp_path / "o", image_mode="CMYK")
    with pytest.raises(ValueError, match=r"image_size must be a positive int or \(height, width\); got \(0, 4\)"):
        score_to_parquet(src, pool, tmp_path / "o", image_size=(0, 4))
    with pytest.raises(ValueError, match="ids are for .npy inputs"):
        score_to_parquet(src, pool, tmp_path / "o", ids=np.arange(3))
    pq.write_table(pa.table({"id": [1], "x": [[1.0]]}), pool / "t.parquet")
    (pool / "top.png").write_bytes((pool / "z.png").read_bytes())
    with pytest.raises(ValueError, match=r"holds both .parquet files \(t.parquet\) and image files \(top.png\)"):
        score_to_parquet(src, pool, tmp_path / "o")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden.png").write_bytes(b"")
    with pytest.raises(ValueError, match="holds neither .parquet files .* nor image files"):
        score_to_parquet(src, tmp_path / "empty", tmp_path / "o")
    assert not (tmp_path / "o").exists() and not any(p.name.startswith("o-") for p in tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ subsets


def pick_rows(n: int, m: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(n, size=m, replace=False)  # unsorted on purpose


def test_rows_equal_their_own_input_and_the_full_run(tmp_path, npy, data):
    x, clf = data
    rows = pick_rows(N, 230, 0)
    kw = {"batch_size": 64, "n_draws": T, "seed": 2, "scores": ("entropy", "margin", "bald")}
    sub = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "sub", rows=rows, **kw))
    r = np.sort(rows)
    np.save(tmp_path / "xr.npy", x[r])
    own = read_outputs(score_to_parquet(lambda: clf, tmp_path / "xr.npy", tmp_path / "own", **kw))
    full = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "full", **kw))
    assert np.array_equal(sub.pop("id"), r) and np.array_equal(own.pop("id"), np.arange(len(r)))
    assert np.array_equal(sub.pop("row"), r) and np.array_equal(own.pop("row"), np.arange(len(r)))
    assert_same(sub, own)
    for k, v in sub.items():
        ref = full[k][:, r] if k == "mc_probs" else full[k][r]
        assert np.allclose(v, ref, rtol=1e-6, atol=1e-7), k
    manifest = json.loads((tmp_path / "sub" / MANIFEST).read_text())
    assert (manifest["rows"], manifest["input_rows"], manifest["subset"], manifest["chunks"]) == (230, N, True, 4)
    # ids given for the .npy: the ids of those rows
    ids = np.array([f"i{j}" for j in range(N)])
    got = read_outputs(score_to_parquet(lambda: clf, npy, tmp_path / "ids", rows=rows, ids=ids, outputs=("probs",)))
    assert got["id"].tolist() == ids[r].tolist()


def test_rows_of_parquet_read_only_their_row_groups(tmp_path, npy, data, monkeypatch):
    x, clf = data
    (tmp_path / "pool").mkdir()
    ids = [f"item-{i:04d}" for i in range(N)]
    for j, (lo, hi) in enumerate([(0, 333), (333, N)]):  # row groups of 100: starts 0..300, 333..633
        col = pa.FixedSizeListArray.from_arrays(pa.array(x[lo:hi].reshape(-1)), D)
        pq.write_table(pa.table({"id": ids[lo:hi], "x": col}), tmp_path / "pool" / f"{j}.parquet", row_group_size=100)
    rows = np.array([650, 5, 99, 332, 333, 420, 699, 10])
    read: list[tuple[int, int]] = []
    real = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        read.append((self.metadata.num_rows, i))  # (333 rows: file 0, 367: file 1; row group)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    got = read_outputs(score_to_parquet(lambda: clf, tmp_path / "pool", tmp_path / "out", rows=rows, batch_size=3))
    monkeypatch.undo()
    r = np.sort(rows)
    assert got["id"].tolist() == [ids[i] for i in r]
    # chunks [5, 10, 99], [332, 333, 420], [650, 699]: file 0 group 0; file 0 group 3 (300..332) and file 1
    # group 0 (333..432); file 1 group 3 (633..699); each read once, no other group
    assert read == [(333, 0), (333, 3), (367, 0), (367, 3)]
    np.save(tmp_path / "xr.npy", x[r])
    own = read_outputs(score_to_parquet(lambda: clf, tmp_path / "xr.npy", tmp_path / "own", batch_size=3))
    got.pop("id"), own.pop("id")
    assert np.array_equal(got.pop("row"), r) and np.array_equal(own.pop("row"), np.arange(len(r)))
    assert_same(got, own)


def test_rows_of_an_image_folder_open_only_their_files(tmp_path, rgb_folder, monkeypatch):
    root, files, x, clf = rgb_folder
    rows = [20, 3, 0, 11]
    opened: list[str] = []
    real = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(Path(fp).relative_to(root).as_posix()) or real(fp, *a, **k))
    got = read_outputs(score_to_parquet(lambda: clf, root, tmp_path / "o", rows=rows, batch_size=3,
                                        image_mode="RGB", outputs=("probs",), scores=()))
    monkeypatch.undo()
    r = sorted(rows)
    assert got["id"].tolist() == [files[i] for i in r]
    assert opened == [files[0]] + [files[i] for i in r]  # the first header (its size), then the rows' files
    assert np.array_equal(got["probs"], chunked(clf.predict_proba, x[r], 3))


def test_bad_rows_name_the_values(tmp_path, npy, data):
    _, clf = data
    src = lambda: clf
    for rows, msg in (([3, 7, 3, 9, 7], r"rows must be unique; repeated: \[3, 7\]"),
                      ([0, N, -1], rf"rows must be in 0 .. {N - 1} .*; got \[{N}, -1\]"),
                      ([1.0, 2.0], "rows must be integer row numbers; got float64"),
                      ([], "rows is empty"),
                      ([[1, 2]], "rows must be a 1-D sequence"),
                      ("12", "rows must be a 1-D sequence")):
        with pytest.raises(ValueError, match=msg):
            score_to_parquet(src, npy, tmp_path / "o", rows=rows)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ resume


class Counting:
    """The fitted model; counts scoring passes (one grad_factors call per chunk) and raises on pass
    ``fail_at`` (1-based) as an interrupted run would stop."""

    def __init__(self, clf: TorchClassifier, fail_at: int | None = None) -> None:
        self.clf, self.fail_at, self.calls = clf, fail_at, 0

    def __getattr__(self, name: str):
        return getattr(self.clf, name)

    def grad_factors(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        return self.clf.grad_factors(x)


def test_resume_scores_only_the_missing_chunks(tmp_path, npy, data):
    _x, clf = data
    kw = {"batch_size": 100, "n_draws": T, "seed": 4, "scores": ("entropy", "bald")}
    out = tmp_path / "out"
    failing = Counting(clf, fail_at=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        score_to_parquet(lambda: failing, npy, out, **kw)
    assert sorted(p.name for p in out.glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    assert (out / PLAN).is_file() and not (out / MANIFEST).exists()
    with pytest.raises(ValueError, match=r"holds an interrupted run \(2 part files.*resume=True \(pickwise score --resume\)"):
        score_to_parquet(lambda: clf, npy, out, **kw)
    with pytest.raises(ValueError, match="batch_size is 100 there but 50 now"):
        score_to_parquet(lambda: clf, npy, out, resume=True, **{**kw, "batch_size": 50})
    with pytest.raises(ValueError, match="n_draws is 4 there but 2 now"):
        score_to_parquet(lambda: clf, npy, out, resume=True, **{**kw, "n_draws": 2})
    with pytest.raises(ValueError, match="rows is 700 there but 3 now"):
        score_to_parquet(lambda: clf, npy, out, resume=True, rows=[1, 2, 3], **kw)
    again = Counting(clf)
    assert score_to_parquet(lambda: again, npy, out, resume=True, **kw) == out
    assert again.calls == 5  # chunks 2..6 of 7
    assert json.loads((out / MANIFEST).read_text())["resumed_chunks"] == 2
    whole = score_to_parquet(lambda: clf, npy, tmp_path / "whole", **kw)
    assert_same(read_outputs(out), read_outputs(whole))
    # resuming a finished run of the same plan does nothing; of another plan it refuses
    idle = Counting(clf)
    assert score_to_parquet(lambda: idle, npy, out, resume=True, **kw) == out and idle.calls == 0
    with pytest.raises(ValueError, match="seed is 4 there but 5 now"):
        score_to_parquet(lambda: clf, npy, out, resume=True, **{**kw, "seed": 5})
    # stopped after the last part but before the manifest: resume only writes the manifest
    (out / MANIFEST).unlink()
    score_to_parquet(lambda: idle, npy, out, resume=True, **kw)
    assert idle.calls == 0 and json.loads((out / MANIFEST).read_text())["resumed_chunks"] == 7
    # no plan file: not a run that can be resumed; a new folder: resume starts a run
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "part-000000.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="holds no score.plan.json"):
        score_to_parquet(lambda: clf, npy, tmp_path / "other", resume=True, **kw)
    fresh = score_to_parquet(lambda: clf, npy, tmp_path / "fresh", resume=True, **kw)
    assert_same(read_outputs(fresh), read_outputs(whole))


def test_resume_a_subset_after_a_failure_before_any_part(tmp_path, npy, data):
    """A run that fails before its first part leaves no trace; a subset run resumes with its rows' digest."""
    _, clf = data
    rows = pick_rows(N, 300, 1)
    with pytest.raises(RuntimeError, match="interrupted"):
        score_to_parquet(lambda: Counting(clf, fail_at=1), npy, tmp_path / "gone", rows=rows)
    assert not (tmp_path / "gone").exists()
    out = tmp_path / "sub"
    with pytest.raises(RuntimeError, match="interrupted"):
        score_to_parquet(lambda: Counting(clf, fail_at=2), npy, out, rows=rows, batch_size=128)
    other = rows.copy()
    other[0] = next(i for i in range(N) if i not in set(rows.tolist()))
    with pytest.raises(ValueError, match="rows_digest is '[0-9a-f]+' there but '[0-9a-f]+' now"):
        score_to_parquet(lambda: clf, npy, out, rows=other, batch_size=128, resume=True)
    again = Counting(clf)
    score_to_parquet(lambda: again, npy, out, rows=rows[::-1], batch_size=128, resume=True)  # order given: no matter
    assert again.calls == 2
    ref = score_to_parquet(lambda: clf, npy, tmp_path / "ref", rows=rows, batch_size=128)
    assert_same(read_outputs(out), read_outputs(ref))


# ------------------------------------------------------------------------------------------ CLI

SLOW_MODULE = '''
import os, time
from pickwise.adapters.nets import mlp

def slow_mlp(**kwargs):
    """mlp, whose forward passes sleep when PW_SLOW is set (so a test can kill the run midway)."""
    net = mlp(**kwargs)
    delay = float(os.environ.get("PW_SLOW", "0"))
    if delay:
        net.register_forward_hook(lambda *a: time.sleep(delay))
    return net
'''


def test_cli_rows_images_and_resume_after_sigkill(tmp_path, npy, data, rgb_folder, capsys):
    from pickwise.engine.score_cli import main

    _x, clf = data
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}, str(weights))
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "pw_slow_mod.py").write_text(SLOW_MODULE)
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        module = ["--module", "pw_slow_mod:slow_mlp", "--module-kwargs",
                  json.dumps({"n_features": D, "n_classes": K, "hidden": [16], "dropout": 0.3})]
        base = ["score", "--inputs", str(npy), "--model-checkpoint", str(weights), *module, "--no-progress",
                "--batch-size", "50", "--scores", "entropy"]
        env = {**os.environ, "PW_SLOW": "0.15", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), os.environ.get("PYTHONPATH", "")])}
        out = tmp_path / "killed"
        proc = subprocess.Popen([sys.executable, "-m", "pickwise.engine.score_cli", *base, "--out", str(out)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120  # a loaded machine may take long to import torch
        while len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        done = len(list(out.glob("part-*.parquet")))
        assert 3 <= done < 14 and not (out / MANIFEST).exists()
        assert main([*base, "--out", str(out)]) == 2
        assert "--resume" in capsys.readouterr().err
        assert main([*base, "--out", str(out), "--resume"]) == 0
        assert f"scored {N} items into 14 Parquet files in {out} ({done} of them kept" in capsys.readouterr().out
        assert main([*base, "--out", str(tmp_path / "whole")]) == 0
        capsys.readouterr()
        assert_same(read_outputs(out), read_outputs(tmp_path / "whole"))
        # --rows as text (one integer per line) and as .npy: the same as rows= in Python
        rows = pick_rows(N, 120, 3)
        (tmp_path / "rows.txt").write_text("\n".join(map(str, rows)) + "\n\n")
        np.save(tmp_path / "rows.npy", rows)
        assert main([*base, "--out", str(tmp_path / "rt"), "--rows", str(tmp_path / "rows.txt")]) == 0
        assert main([*base, "--out", str(tmp_path / "rn"), "--rows", str(tmp_path / "rows.npy")]) == 0
        capsys.readouterr()
        ref = score_to_parquet(lambda: clf, npy, tmp_path / "ref", rows=rows, batch_size=50, scores=("entropy",))
        assert_same(read_outputs(tmp_path / "rt"), read_outputs(ref))
        assert_same(read_outputs(tmp_path / "rn"), read_outputs(ref))
        (tmp_path / "bad.txt").write_text("1\n2\nthree\n")
        for extra, msg in ((["--rows", str(tmp_path / "bad.txt")], "bad.txt:3: expected one integer per line; got 'three'"),
                           (["--rows", str(tmp_path / "nope.npy")], "--rows: no file at"),
                           (["--image-size", "4,x"], "--image-size must be N or H,W"),
                           (["--rows", str(tmp_path / "rows.txt"), "--out", str(tmp_path / "rt"), "--resume",
                             "--batch-size", "60"], "batch_size is 50 there but 60 now")):
            assert main([*base, "--out", str(tmp_path / "bad"), *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith("pickwise score: error: ") and msg in err, err
    finally:
        sys.path.remove(str(tmp_path / "mods"))
        sys.modules.pop("pw_slow_mod", None)
    # an image folder through the CLI: --image-mode, --image-size H,W
    root, files, _, _ = rgb_folder
    x6 = plain_images(root, files, "L", (6, 6))
    clf6 = TorchClassifier(mlp(36, K, hidden=(8,)), n_classes=K, max_steps=2).fit(x6.reshape(len(x6), -1),
                                                                                np.arange(len(x6)) % K, seed=0)
    w6 = tmp_path / "w6.npz"
    np.savez(w6, **{k: v.detach().numpy() for k, v in clf6.module_.state_dict().items()})
    assert main(["score", "--inputs", str(root), "--out", str(tmp_path / "img"), "--model-checkpoint", str(w6),
                 "--module", "pickwise.adapters.nets:mlp", "--module-kwargs",
                 json.dumps({"n_features": 36, "n_classes": K, "hidden": [8]}), "--image-mode", "L",
                 "--image-size", "6,6", "--no-progress", "--scores", ""]) == 0
    got = read_outputs(tmp_path / "img")
    assert got["id"].tolist() == files
    assert np.array_equal(got["probs"], clf6.predict_proba(x6.reshape(len(x6), -1)))


# ------------------------------------------------------------------------------------------ Ray

@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    """One Ray instance for the module's Ray test (4 logical CPUs), as tests/test_engine_score.py starts it."""
    with ray_module_session(__name__, prefix="pwsm-") as ray:
        yield ray


def test_ray_image_folder_rows_and_resume_equal_local(ray_local, tmp_path, rgb_folder):
    """Image folder on 2 actors = local, bit for bit; a Ray run resuming a local one's folder, with rows."""
    root, _, _, clf = rgb_folder
    kw = {"batch_size": 4, "n_draws": T, "seed": 1, "scores": ("entropy", "bald")}
    local = score_to_parquet(lambda: clf, root, tmp_path / "local", **kw)
    on_ray = score_to_parquet(lambda: clf, root, tmp_path / "ray", engine="ray", actors=2, **kw)
    assert sorted(p.name for p in on_ray.iterdir()) == sorted(p.name for p in local.iterdir())
    assert_same(read_outputs(on_ray), read_outputs(local))
    rows = [0, 2, 3, 5, 8, 13, 21, 1, 7]
    sub = score_to_parquet(lambda: clf, root, tmp_path / "sub", rows=rows, **kw)
    part = tmp_path / "part"
    shutil.copytree(sub, part)
    (part / MANIFEST).unlink()
    (part / "part-000001.parquet").unlink()
    score_to_parquet(lambda: clf, root, part, rows=rows, engine="ray", actors=2, resume=True, **kw)
    assert json.loads((part / MANIFEST).read_text())["resumed_chunks"] == 2
    assert_same(read_outputs(part), read_outputs(sub))
