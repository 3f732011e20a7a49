"""``load_file`` / ``--data x.npy --labels y.npy``: garbage files and NaN labels are named, never guessed."""

import numpy as np
import pytest

from pickwise.cli import main
from pickwise.data import load_file


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((40, 3)))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    (tmp_path / "garbage.npy").write_bytes(rng.bytes(300))
    (tmp_path / "text.npy").write_text("1,2,3\n")
    np.save(tmp_path / "y_nan.npy", np.r_[np.zeros(39), np.nan])
    np.save(tmp_path / "y_2d.npy", np.zeros((40, 2)))
    return tmp_path


@pytest.mark.parametrize("x, y, message", [
    ("garbage.npy", "y.npy", "not a .npy file"),
    ("text.npy", "y.npy", "not a .npy file"),
    ("x.npy", "garbage.npy", "not a .npy file"),
    ("x.npy", "y_nan.npy", "nan at item 39"),
    ("x.npy", "y_2d.npy", "shape (40, 2)"),
])
def test_bad_npy_files_are_named(arrays, x, y, message, capsys):
    with pytest.raises(ValueError, match="npy|item|shape") as e:
        load_file(arrays / x, labels=arrays / y)
    assert message in str(e.value)
    code = main(["run", "--data", str(arrays / x), "--labels", str(arrays / y), "--rounds", "1", "--k", "5",
                 "--out", str(arrays / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_good_npy_files_load(arrays):
    ds = load_file(arrays / "x.npy", labels=arrays / "y.npy")
    assert len(ds.y_train) + len(ds.y_test) == 40
