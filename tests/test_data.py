"""Tests for pickwise.data: loaders against the shared offline data, generic arrays, checksums and
download (with the fetch function replaced; these tests never touch the network)."""

from __future__ import annotations

import gzip
import importlib
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pickwise.data as data
from pickwise.data import (
    DATASETS,
    Dataset,
    data_root,
    download,
    load,
    load_arrays,
    load_digits,
    load_mnist,
    load_pmlb,
    load_sms_spam,
    make_dataset,
    read_idx,
    sha256_file,
    stratified_split,
    text_features,
    verify,
)

dl_module = importlib.import_module("pickwise.data.download")  # the attribute is the function


@pytest.fixture(scope="module")
def data_dir() -> Path:
    root = Path(os.environ.get("PICKWISE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"offline datasets not found at {root}; set PICKWISE_DATA")
    return root


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------- data_root

def test_data_root_argument_then_env_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PICKWISE_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("PICKWISE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "pickwise"


# ---------------------------------------------------------------- splitting and Dataset

def test_stratified_split_is_deterministic_disjoint_and_stratified():
    y = np.repeat(np.arange(4), [100, 50, 10, 1])
    tr, te = stratified_split(y, test_size=0.2, seed=3)
    tr2, te2 = stratified_split(y, test_size=0.2, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    assert tr.dtype == te.dtype == np.int64
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(len(y)))
    np.testing.assert_array_equal(np.bincount(y[te], minlength=4), [20, 10, 2, 0])  # singleton stays in train
    other, _ = stratified_split(y, test_size=0.2, seed=4)
    assert not np.array_equal(tr, other)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.2", True])
def test_stratified_split_rejects_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(np.arange(10) % 2, test_size=bad)


def test_dataset_validates_labels_and_has_short_repr():
    x = np.zeros((3, 2), np.float32)
    ok = Dataset(x, np.array([0, 1, 1]), x, np.array([0, 0, 1]), n_classes=2, name="toy")
    assert repr(ok) == "Dataset(name='toy', train=(3, 2), test=(3, 2), n_classes=2)"
    with pytest.raises(ValueError, match="int64"):
        Dataset(x, np.array([0.0, 1, 1]), x, np.array([0, 0, 1]), n_classes=2, name="toy")
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Dataset(x, np.array([0, 1, 2]), x, np.array([0, 0, 1]), n_classes=2, name="toy")
    with pytest.raises(ValueError, match="2 items"):
        Dataset(x[:2], np.array([0, 1, 1]), x, np.array([0, 0, 1]), n_classes=2, name="toy")


# ---------------------------------------------------------------- digits

def test_digits_shapes_range_and_determinism():
    ds = load_digits()
    assert ds.x_train.shape[1] == 64 and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() == 1.0
    assert ds.n_classes == 10 and ds.class_names == tuple("0123456789")
    assert len(ds.x_test) == pytest.approx(0.2 * 1797, abs=10)
    again = load("digits", seed=0)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    assert not np.array_equal(load_digits(seed=1).y_train, ds.y_train)


# ---------------------------------------------------------------- IDX sets

@pytest.fixture(scope="module")
def mnist(data_dir) -> Dataset:
    return load_mnist(data_dir)


def test_mnist_shapes_dtypes_and_known_values(mnist, data_dir):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert mnist.n_classes == 10 and mnist.name == "mnist"
    np.testing.assert_array_equal(mnist.y_train[:5], [5, 0, 4, 1, 9])
    np.testing.assert_array_equal(mnist.y_test[:5], [7, 2, 1, 0, 4])
    np.testing.assert_array_equal(np.bincount(mnist.y_train),
                                  [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    assert mnist.x_test.min() == 0.0 and mnist.x_test.max() == 1.0
    raw = load_mnist(data_dir, flatten=False, normalize=False)
    assert raw.x_train.shape == (60000, 1, 28, 28) and raw.x_train.dtype == np.uint8
    assert raw.x_train[0, 0, 10, 11:14].tolist() == [154, 253, 90]
    np.testing.assert_allclose(raw.x_test[:50].reshape(50, -1) / 255.0, mnist.x_test[:50], rtol=1e-6)


def test_read_idx_header_shapes(data_dir):
    labels = read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", magic=0x0801)
    assert labels.shape == (10000,) and labels.dtype == np.uint8


def test_fashion_mnist(data_dir):
    ds = load("fashion_mnist", data_dir, flatten=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.name == "fashion-mnist"
    np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    np.testing.assert_array_equal(ds.y_train[:5], [9, 0, 0, 3, 0])
    assert ds.class_names[9] == "Ankle boot"


def _write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload)
    return path


def test_read_idx_round_trip_and_corruption(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = _write_idx(tmp_path / "ok.gz", 0x0803, (2, 3, 4), pixels.tobytes())
    np.testing.assert_array_equal(read_idx(good), pixels)
    bad_magic = _write_idx(tmp_path / "magic.gz", 0x12345678, (2, 3, 4), pixels.tobytes())
    with pytest.raises(ValueError, match=r"magic.gz.*bad magic number 12345678"):
        read_idx(bad_magic)
    with pytest.raises(ValueError, match=r"0x00000803, expected 0x00000801"):
        read_idx(good, magic=0x0801)
    short = _write_idx(tmp_path / "short.gz", 0x0803, (2, 3, 4), pixels.tobytes()[:-1])
    with pytest.raises(ValueError, match=r"short.gz.*\(2, 3, 4\).*23 data bytes"):
        read_idx(short)
    header_cut = _write_idx(tmp_path / "cut.gz", 0x0803, (2,), b"")
    with pytest.raises(ValueError, match="cut.gz.*truncated"):
        read_idx(header_cut)
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(good.read_bytes()[:-12])
    with pytest.raises(ValueError, match="damaged.gz.*not a readable IDX"):
        read_idx(damaged)


def test_load_mnist_rejects_corrupted_header(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_dir / "mnist" / f, folder / f)
    # a labels file in the images slot: valid IDX, wrong magic
    shutil.copy(data_dir / "mnist" / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*expected 0x00000803"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------- PMLB tables

def test_letter_reencoded_and_standardised(data_dir):
    ds = load_pmlb("letter", data_dir)
    assert ds.n_classes == 26 and ds.class_names == tuple(str(i) for i in range(1, 27))
    assert len(ds.x_train) + len(ds.x_test) == 20000 and ds.x_train.shape[1] == 16
    y = np.r_[ds.y_train, ds.y_test]
    assert y.dtype == np.int64 and y.min() == 0 and y.max() == 25
    counts = np.bincount(y)
    assert counts.min() == 734 and counts.max() == 813
    assert ds.feature_names[0] == "x-box" and len(ds.feature_names) == 16
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1, atol=1e-3)
    # stratified: every class is in the test part at about 20 %
    np.testing.assert_allclose(np.bincount(ds.y_test) / counts, 0.2, atol=0.002)


def test_vehicle_and_split_determinism(data_dir):
    a = load("vehicle", data_dir)
    b = load_pmlb("vehicle", data_dir, seed=0)
    assert a.n_classes == 4 and a.class_names == ("1", "2", "3", "4")
    assert len(a.y_train) + len(a.y_test) == 846 and a.x_test.shape[1] == 18
    counts = np.bincount(np.r_[a.y_train, a.y_test])
    assert counts.min() == 199 and counts.max() == 218
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load_pmlb("vehicle", data_dir, seed=1, test_size=0.5, standardize=False)
    assert abs(len(c.y_test) - 423) <= 4
    assert np.all(c.x_train == np.round(c.x_train))  # raw integer-valued features kept


def test_pmlb_name_and_missing_target(tmp_path):
    with pytest.raises(ValueError, match=r"'\.\./x'"):
        load_pmlb("../x", tmp_path)
    (tmp_path / "toy").mkdir()
    with gzip.open(tmp_path / "toy" / "toy.tsv.gz", "wt") as fh:
        fh.write("a\tb\tclass\n1\t2\t0\n")
    with pytest.raises(ValueError, match="no 'target' column"):
        load_pmlb("toy", tmp_path)


# ---------------------------------------------------------------- SMS spam

def test_sms_spam_counts_and_text_features(data_dir):
    ds = load("sms-spam", data_dir)
    assert len(ds.x_train) + len(ds.x_test) == 5574
    assert int(ds.y_train.sum() + ds.y_test.sum()) == 747
    assert isinstance(ds.x_train, list) and all(isinstance(t, str) for t in ds.x_train[:20])
    assert ds.class_names == ("ham", "spam")
    again = load_sms_spam(data_dir)
    assert again.x_test == ds.x_test
    xtr, xte = text_features(ds.x_train, ds.x_test, max_features=300)
    assert xtr.shape == (len(ds.x_train), 300) and xte.shape == (len(ds.x_test), 300)
    assert xtr.dtype == xte.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(xtr[xtr.any(axis=1)], axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="max_features"):
        text_features(ds.x_train, ds.x_test, max_features=0)


def test_sms_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "sms-spam").mkdir()
    (tmp_path / "sms-spam" / "SMSSpamCollection").write_text("ham\thi\nmaybe\tno\n", encoding="utf-8")
    with pytest.raises(ValueError, match="SMSSpamCollection:2"):
        load_sms_spam(tmp_path)


# ---------------------------------------------------------------- generic arrays

def test_npy_round_trip_with_mmap(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xm, ym = load_arrays(tmp_path / "x.npy", tmp_path / "y.npy")
    assert isinstance(xm, np.memmap) and not xm.flags.writeable
    np.testing.assert_array_equal(xm, x)
    np.testing.assert_array_equal(ym, y)
    xa, none = load_arrays(tmp_path / "x.npy", mmap=False)
    assert none is None and not isinstance(xa, np.memmap)
    ds = make_dataset(xm, ym, name="npy", seed=0)
    assert ds.n_classes == 3 and len(ds.x_train) == 32 and type(ds.x_train) is np.ndarray


def test_csv_round_trip_label_rules(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,label,b\n1,2,3.5\n4,5,6\n", encoding="utf-8")
    x, y = load_arrays(p)
    np.testing.assert_array_equal(x, [[1, 3.5], [4, 6]])
    assert x.dtype == np.float32 and y.dtype == np.int64 and y.tolist() == [2, 5]
    x, y = load_arrays(p, label_column="a")
    assert y.tolist() == [1, 4] and x.shape == (2, 2)
    q = tmp_path / "last.csv"
    q.write_text('f1,f2,kind\n1,2,"cat"\n3,4,dog\n', encoding="utf-8")
    x, y = load_arrays(q)
    assert y.tolist() == ["cat", "dog"] and x.tolist() == [[1, 2], [3, 4]]
    ds = make_dataset(np.repeat(x, 5, axis=0), np.repeat(y, 5), test_size=0.4)
    assert ds.class_names == ("cat", "dog") and np.bincount(ds.y_test).tolist() == [2, 2]
    with pytest.raises(ValueError, match="'nope'.*columns are"):
        load_arrays(q, label_column="nope")


def test_parquet_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"u": [0.5, 1.5, 2.5], "v": [1, 2, 3], "label": [1, 0, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    x, y = load_arrays(tmp_path / "t.parquet")
    np.testing.assert_array_equal(x, [[0.5, 1], [1.5, 2], [2.5, 3]])
    assert x.dtype == np.float32 and y.tolist() == [1, 0, 1]
    frame[["label"]].to_parquet(tmp_path / "y.parquet")
    frame[["u", "v"]].to_csv(tmp_path / "x.csv", index=False)
    x2, y2 = load_arrays(tmp_path / "x.csv", tmp_path / "y.parquet")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_parquet_without_pandas_gives_install_hint(tmp_path, monkeypatch):
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pickwise\[data\]"):
        load_arrays(tmp_path / "t.parquet")


def test_load_arrays_errors(tmp_path):
    with pytest.raises(ValueError, match="'.txt'"):
        load_arrays(tmp_path / "x.txt")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_arrays(tmp_path / "missing.npy")
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    np.save(tmp_path / "y.npy", np.zeros(2))
    with pytest.raises(ValueError, match="2 labels"):
        load_arrays(tmp_path / "x.npy", tmp_path / "y.npy")


# ---------------------------------------------------------------- names and missing files

def test_names_table_and_unknown_name():
    assert {"digits", "mnist", "fashion-mnist", "letter", "splice", "sms-spam"} <= set(DATASETS)
    assert len(DATASETS) == 17
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*'letter'"):
        load("cifar")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load("mnist", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "pickwise.data.download('mnist'" in msg and "PICKWISE_DATA" in msg
    with pytest.raises(FileNotFoundError, match="letter.tsv.gz"):
        load_pmlb("letter", tmp_path)


def test_import_is_light():
    code = "import sys, pickwise.data; assert 'pandas' not in sys.modules and 'pyarrow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- verify and download

def test_verify_shared_files(data_dir):
    assert verify("vehicle", data_dir) == (data_dir / "vehicle" / "vehicle.tsv.gz",)
    assert len(verify("mnist", data_dir)) == 4
    assert len(verify("sms_spam", data_dir)) == 1


def test_verify_detects_corruption_and_missing(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="vehicle.tsv.gz"):
        verify("vehicle", tmp_path)
    (tmp_path / "vehicle").mkdir()
    target = tmp_path / "vehicle" / "vehicle.tsv.gz"
    target.write_bytes(b"\x00" + (data_dir / "vehicle" / "vehicle.tsv.gz").read_bytes()[1:])
    with pytest.raises(ValueError, match=r"expected sha256 dad03273.*got [0-9a-f]{64}"):
        verify("vehicle", tmp_path)


def _copying_fetch(source: Path, calls: list[str]):
    def fetch(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copyfile(source, dest)
    return fetch


def test_download_with_fake_fetch(tmp_path, data_dir, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(dl_module, "_fetch", _copying_fetch(data_dir / "vehicle" / "vehicle.tsv.gz", calls))
    paths = download("vehicle", tmp_path)
    assert paths == (tmp_path / "vehicle" / "vehicle.tsv.gz",)
    assert calls == ["https://github.com/EpistasisLab/pmlb/raw/master/datasets/vehicle/vehicle.tsv.gz"]
    assert sha256_file(paths[0]) == sha256_file(data_dir / "vehicle" / "vehicle.tsv.gz")
    assert sorted(p.name for p in (tmp_path / "vehicle").iterdir()) == ["vehicle.tsv.gz"]  # no temp files
    download("vehicle", tmp_path)
    assert len(calls) == 1  # already present and valid: not fetched again
    download("vehicle", tmp_path, force=True)
    assert len(calls) == 2
    assert load("vehicle", tmp_path).n_classes == 4


def test_download_wrong_checksum_deletes_and_reports_both(tmp_path, data_dir, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(dl_module, "_fetch", _copying_fetch(data_dir / "letter" / "letter.tsv.gz", calls))
    with pytest.raises(ValueError, match=r"expected sha256 dad03273[0-9a-f]+, got f8ffe4f9[0-9a-f]+"):
        download("vehicle", tmp_path)
    assert list((tmp_path / "vehicle").iterdir()) == []
    # a present file with a wrong checksum is not silently replaced
    shutil.copyfile(data_dir / "letter" / "letter.tsv.gz", tmp_path / "vehicle" / "vehicle.tsv.gz")
    with pytest.raises(ValueError, match="force=True"):
        download("vehicle", tmp_path)


def test_download_falls_back_to_mirror(tmp_path, data_dir, monkeypatch):
    calls: list[str] = []

    def fetch(url: str, dest: Path) -> None:
        calls.append(url)
        if "lecun" in url:
            raise OSError("HTTP Error 403: Forbidden")
        shutil.copyfile(data_dir / "mnist" / Path(url).name, dest)

    monkeypatch.setattr(dl_module, "_fetch", fetch)
    paths = download("mnist", tmp_path)
    assert len(paths) == 4 and len(calls) == 8
    assert load_mnist(tmp_path, normalize=False).y_test[:3].tolist() == [7, 2, 1]

    def fail(url: str, dest: Path) -> None:
        raise OSError("offline")

    monkeypatch.setattr(dl_module, "_fetch", fail)
    with pytest.raises(ConnectionError, match="fashion-mnist.s3.*offline"):
        download("fashion-mnist", tmp_path)


def test_download_sms_extracts_and_verifies_member(tmp_path, data_dir, monkeypatch):
    archive = tmp_path / "sms.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(data_dir / "sms-spam" / "SMSSpamCollection", "SMSSpamCollection")
        zf.writestr("readme", "SMS Spam Collection v.1")
    calls: list[str] = []
    monkeypatch.setattr(dl_module, "_fetch", _copying_fetch(archive, calls))
    root = tmp_path / "root"
    (path,) = download("sms-spam", root)
    assert calls[0].startswith("https://archive.ics.uci.edu/")
    assert verify("sms-spam", root) == (path,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["SMSSpamCollection"]


def test_download_unknown_and_digits():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        download("cifar")
    with pytest.raises(ValueError, match="scikit-learn"):
        download("digits")


def test_public_names_exported():
    for name in data.__all__:
        assert hasattr(data, name), name
