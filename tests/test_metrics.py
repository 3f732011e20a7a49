import numpy as np
import pytest

from pickwise import metrics as M


def test_known_values():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 1, 1])
    assert M.accuracy(y, p) == 0.75
    # class 0: tp 1, pred 2, true 1 -> 2/3; class 1: tp 2, pred 2, true 3 -> 4/5
    assert M.macro_f1(y, p) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert M.nll(y, p) == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))
    # bins of width 1/15: confidences 0.9, 0.8, 0.6, 0.7 each in its own bin
    assert M.ece(y, p) == pytest.approx((0.1 + 0.2 + 0.6 + 0.3) / 4)


def test_perfect_and_calibrated():
    y = np.array([0, 1, 2])
    p = np.eye(3)
    assert M.accuracy(y, p) == 1.0 and M.macro_f1(y, p) == 1.0
    assert M.ece(y, p) == pytest.approx(0.0)


def test_labels_outside_classes():
    with pytest.raises(ValueError, match="label 5"):
        M.accuracy(np.array([5]), np.array([[0.5, 0.5]]))
