import numpy as np
import pytest

from pickwise.pool import Pool


def test_label_returns_new_pool_with_rounds():
    p0 = Pool.empty(10, n_classes=3)
    p1 = p0.label([2, 5], [0, 2])
    p2 = p1.label(np.array([7]), np.array([1]))
    assert p0.n_labeled == 0 and p1.n_labeled == 2 and p2.n_labeled == 3
    np.testing.assert_array_equal(p2.labeled, [2, 5, 7])
    np.testing.assert_array_equal(p2.labeled_in(0), [2, 5])
    np.testing.assert_array_equal(p2.labeled_in(1), [7])
    assert p2.round == 1
    np.testing.assert_array_equal(p2.unlabeled, [0, 1, 3, 4, 6, 8, 9])
    assert p2.labels[5] == 2


def test_pool_is_immutable():
    p = Pool.empty(4).label([1], [0])
    with pytest.raises(ValueError):
        p.labels[0] = 3


@pytest.mark.parametrize(
    "idx, lab, match",
    [
        ([1, 1], [0, 0], "index 1 appears more than once"),
        ([10], [0], "index 10 is out of range"),
        ([-1], [0], "index -1 is out of range"),
        ([3], [3], "label 3 is outside the classes"),
        ([3], [-2], "label -2 is negative"),
        ([2], [0], "index 2 is already labelled"),
        ([3], [0.5], "0.5"),
        ([3, 4], [0], "equal length"),
    ],
)
def test_bad_labels_are_refused(idx, lab, match):
    p = Pool.empty(10, n_classes=3).label([2], [1])
    with pytest.raises(ValueError, match=match):
        p.label(idx, lab)


def test_float_labels_that_are_integers_are_accepted():
    p = Pool.empty(3, n_classes=2).label([0], np.array([1.0]))
    assert p.labels[0] == 1


def test_empty_pool_size_checked():
    with pytest.raises(ValueError, match="-3"):
        Pool.empty(-3)
