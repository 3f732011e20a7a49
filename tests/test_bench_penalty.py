"""The pairwise penalty matrix, LAR and curve helpers against hand-computed values."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from pickwise.bench import (
    Curve,
    area_under_curve,
    checkpoints,
    kept_checkpoints,
    label_amplification,
    labels_to_reach,
    mean_curve,
    paired_win,
    penalty_matrix,
    setting_penalty,
)

SIZES = [100, 200, 300, 500, 900]  # initial 100, k = 100, 8 rounds: exactly the checkpoints


def curve(acc, sizes=SIZES, n_end=None):
    return Curve(np.array(sizes, float), np.array(acc, float), n_end)


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_double():
    assert checkpoints(100, 100, 1000) == [100, 200, 300, 500, 900]
    assert checkpoints(100, 1000, 2100) == [100, 1100, 2100]  # the last size itself is a checkpoint
    assert checkpoints(20, 50, 1000) == [20, 70, 120, 220, 420, 820]  # "100" generalised to the initial size
    assert checkpoints(100, 100, 99) == []
    with pytest.raises(ValueError, match="batch size"):
        checkpoints(100, 0, 1000)


def test_stopping_rule_excludes_the_checkpoint_where_random_exceeds_99_percent_of_its_final():
    # random's mean: 0.5 0.6 0.7 0.795 0.8 (final 0.8, 0.99 × 0.8 = 0.792): 500 exceeds → stop before it
    ref = [curve([0.45, 0.55, 0.65, 0.79, 0.79]), curve([0.55, 0.65, 0.75, 0.80, 0.81])]
    assert kept_checkpoints(ref, 100, 100) == [100, 200, 300]
    # exactly 0.99 × final does not exceed it: kept
    ref = [curve([0.5, 0.6, 0.7, 0.792, 0.8])]
    assert kept_checkpoints(ref, 100, 100) == [100, 200, 300, 500]
    # the final size always exceeds 0.99 × final (positive accuracy): never kept
    ref = [curve([0.1, 0.2, 0.3, 0.4, 0.9])]
    assert kept_checkpoints(ref, 100, 100) == [100, 200, 300, 500]
    # already at 100: nothing kept
    assert kept_checkpoints([curve([0.9, 0.9, 0.9, 0.9, 0.9])], 100, 100) == []
    # beyond random's largest size (the shortest random run): not kept
    short = curve([0.1, 0.2, 0.3], sizes=[100, 200, 300])
    assert kept_checkpoints([short, curve([0.1, 0.2, 0.3, 0.4, 0.9])], 100, 100) == [100, 200]


# -- the t-test rule ------------------------------------------------------------------------------


def test_paired_win_matches_scipy_and_handles_degenerate_differences():
    z = np.array([0.05, 0.06, 0.07])  # t = 0.06 / (0.01/√3) = 10.39, df 2, p ≈ 0.009
    assert stats.ttest_1samp(z, 0).pvalue < 0.05
    assert paired_win(z) == 1 and paired_win(-z) == -1
    z = np.array([0.01, -0.01, 0.02])  # p ≈ 0.42
    assert stats.ttest_1samp(z, 0).pvalue > 0.05
    assert paired_win(z) == 0
    # p just above / below 0.05 with n = 2: t = mean/(sd/√2); p < 0.05 needs t > 12.71
    assert paired_win(np.array([0.10, 0.11])) == 1  # t = 21.0
    assert paired_win(np.array([0.01, 0.03])) == 0  # t = 2.0
    # degenerate: all zero → no win; all equal and non-zero → a win by the sign (documented choice)
    assert paired_win(np.zeros(4)) == 0
    assert paired_win(np.full(3, 0.02)) == 1
    assert paired_win(np.full(3, -0.02)) == -1
    # equal up to rounding in acc_i − acc_j: still the degenerate rule, no scipy warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_win(np.array([0.85 - 0.80, 0.90 - 0.85, 0.15 - 0.10])) == 1
    assert paired_win(np.array([0.3])) == 0  # n ≤ 1: skipped
    assert paired_win(np.array([])) == 0


# -- one setting, by hand ---------------------------------------------------------------------------


def hand_setting():
    """random, A, B with 3 seeds; kept checkpoints 100, 200, 300, 500 (L = 4)."""
    rnd = [curve([0.50, 0.60, 0.70, 0.78, 0.80]), curve([0.52, 0.62, 0.71, 0.79, 0.81]),
           curve([0.48, 0.61, 0.69, 0.77, 0.79])]
    # A − random: 100: 0 (same initial model); 200: +.05 +.06 +.07 (win); 300: +.01 −.01 +.02 (no);
    # 500: +.10 +.11 +.12 (win)
    a = [curve([0.50, 0.65, 0.71, 0.88, 0.9]), curve([0.52, 0.68, 0.70, 0.90, 0.9]),
         curve([0.48, 0.68, 0.71, 0.89, 0.9])]
    # B = random − 0.03 everywhere after 100 (all differences equal: a degenerate win for random)
    b = [curve([r.acc[0], *(r.acc[1:] - 0.03)]) for r in rnd]
    return {"random": rnd, "A": a, "B": b}


def test_setting_penalty_by_hand():
    sp = setting_penalty(hand_setting(), k=100)
    assert sp.checkpoints == (100, 200, 300, 500)  # random's mean at 900 is its final: excluded
    names = sp.names
    m = dict(((names[i], names[j]), sp.matrix[i, j]) for i in range(3) for j in range(3))
    # random beats B at 200, 300, 500 (equal non-zero differences) → 3/4
    assert m[("random", "B")] == pytest.approx(3 / 4)
    # A beats random at 200 and 500 → 2/4
    assert m[("A", "random")] == pytest.approx(2 / 4)
    # A − B = (A − random) + 0.03: 200 win, 300 (.04 .02 .05: t = 4.16, p = .053) no, 500 win
    assert 0.05 < stats.ttest_1samp([0.04, 0.02, 0.05], 0).pvalue < 0.06
    assert m[("A", "B")] == pytest.approx(2 / 4)
    assert m[("random", "A")] == 0 and m[("B", "A")] == 0 and m[("B", "random")] == 0
    assert np.all(np.diag(sp.matrix) == 0)


def test_column_mean_includes_the_zero_diagonal_and_settings_sum():
    s = hand_setting()
    pm = penalty_matrix([(("d1", "mlp", 100), 100, 100, s), (("d2", "mlp", 100), 100, 100, s)])
    assert pm.names == ("random", "A", "B")
    one = setting_penalty(s, k=100).matrix
    np.testing.assert_allclose(pm.matrix, 2 * one)
    # column B: random 3/4 + A 2/4 + diagonal 0, twice, over 3 rows
    assert pm.column_means[2] == pytest.approx(2 * (0.75 + 0.5) / 3)
    assert pm.column_means[0] == pytest.approx(2 * 0.5 / 3)
    assert pm.column_means[1] == 0
    sub = pm.restricted(["random", "B"])
    assert sub.column_means.tolist() == pytest.approx([0.0, 2 * 0.75 / 2])


def test_ties_never_count():
    rnd = [curve([0.5, 0.6, 0.7, 0.75, 0.8])] * 3
    sp = setting_penalty({"random": rnd, "same": list(rnd)}, k=100)
    assert sp.L == 4 and not sp.matrix.any()


def test_too_few_seeds_and_unequal_seed_counts():
    s = hand_setting()
    # one run: n = min(1, 3, 5) = 1 ≤ 1 → skipped both ways
    only = {"random": s["random"], "solo": [curve([0.5, 0.99, 0.99, 0.99, 0.99])]}
    assert not setting_penalty(only, k=100).matrix.any()
    # unequal counts: the first min(n_i, n_j, 5) runs in run order. C has 4 runs; its first 3 beat
    # random at every checkpoint after 100 by a constant 0.1 (degenerate win); its 4th run alone would
    # lose badly — it must be ignored against random's 3 runs.
    c = [curve([r.acc[0], *(r.acc[1:] + 0.1)]) for r in s["random"]] + [curve([0.5, 0.1, 0.1, 0.1, 0.1])]
    sp = setting_penalty({"random": s["random"], "C": c}, k=100)
    assert sp.matrix[1, 0] == pytest.approx(3 / 4)
    # and with 6 vs 7 runs only the first 5 are used: the 6th/7th runs would make it insignificant
    rnd = [curve([0.5, 0.6 + e, 0.7 + e, 0.75 + e, 0.8]) for e in (0, .01, -.01, .02, -.02, 0, 0)]
    d = [curve([0.5, *(r.acc[1:4] + 0.05), 0.8]) for r in rnd[:5]] + [curve([0.5, 0.1, 0.1, 0.1, 0.8])]
    sp = setting_penalty({"random": rnd, "D": d}, k=100)
    assert sp.matrix[1, 0] == pytest.approx(3 / 4)


def test_algorithm_missing_from_a_setting_or_no_reference():
    s = hand_setting()
    pm = penalty_matrix([(("d1", "mlp", 100), 100, None, s)], names=["random", "A", "B", "absent"])
    assert not pm.matrix[3].any() and not pm.matrix[:, 3].any()
    assert pm.column_means.shape == (4,)
    no_ref = setting_penalty({"A": s["A"], "B": s["B"]}, k=100)
    assert no_ref.L == 0 and not no_ref.matrix.any()


def test_stream_runs_are_read_by_interpolation():
    # a stream run recorded at 100, 196, 310, 480, 897 (n_end 900: held after 897)
    st = curve([0.5, 0.596, 0.71, 0.68, 0.9], sizes=[100, 196, 310, 480, 897], n_end=900)
    assert st.at(200) == pytest.approx(0.596 + 4 * (0.71 - 0.596) / 114)
    assert st.at(500) == pytest.approx(0.68 + 20 * (0.9 - 0.68) / 417)
    assert st.at(900) == pytest.approx(0.9)
    assert math.isnan(st.at(901)) and math.isnan(st.at(99))


# -- LAR ----------------------------------------------------------------------------------------------


def test_labels_to_reach_interpolates_the_first_crossing():
    mc = mean_curve([curve([0.5, 0.7, 0.8, 0.75, 0.9])])
    assert labels_to_reach(mc, 0.6) == pytest.approx(150)
    assert labels_to_reach(mc, 0.5) == 100
    assert labels_to_reach(mc, 0.4) == 100  # already there at the first size
    assert labels_to_reach(mc, 0.78) == pytest.approx(280)
    assert labels_to_reach(mc, 0.85) == pytest.approx(500 + 400 * (0.85 - 0.75) / 0.15)
    assert math.isnan(labels_to_reach(mc, 0.95))


def test_label_amplification_by_hand():
    sizes = [100, 200, 300, 400, 500]
    base = [curve([0.5, 0.6, 0.7, 0.8, 0.9], sizes)]  # accuracy = 0.4 + n/1000
    act = [curve([0.5, 0.8, 0.85, 0.9, 0.95], sizes)]
    res = label_amplification(act, base, n_pool=1000, fractions=[0.06, 0.1, 0.2, 0.3, 0.45, 0.5, 0.6])
    # n_u = 60: below the baseline's data → NaN; 100: target .5 → n_a = 100 → 1
    assert math.isnan(res.ratio[0]) and res.ratio[1] == pytest.approx(1.0)
    # n_u = 200: target .6 → 100 + 100·(.1/.3) = 133.3
    assert res.n_a[2] == pytest.approx(100 + 100 / 3)
    assert res.ratio[2] == pytest.approx(200 / (100 + 100 / 3))
    # 300: target .7 → 166.7; 450: target .85 → 300; 500: target .9 → 400
    assert res.ratio[3] == pytest.approx(300 / (100 + 200 / 3))
    assert res.ratio[4] == pytest.approx(450 / 300)
    assert res.ratio[5] == pytest.approx(500 / 400)
    assert math.isnan(res.ratio[6])  # 600 > the baseline's last size
    # not reached: NaN
    worse = label_amplification([curve([0.5, 0.55, 0.6, 0.65, 0.7], sizes)], base, n_pool=1000, fractions=[0.5])
    assert math.isnan(worse.ratio[0]) and worse.target[0] == pytest.approx(0.9)


def test_mean_curve_and_area_over_unaligned_runs():
    a = curve([0.5, 0.7, 0.9], sizes=[100, 200, 300])
    b = curve([0.5, 0.6, 0.8, 0.9], sizes=[100, 150, 250, 310])
    mc = mean_curve([a, b])
    assert mc.n.tolist() == [100, 150, 200, 250, 300]  # the range both cover
    assert mc.mean[1] == pytest.approx((0.6 + 0.6) / 2)
    assert mc.mean[2] == pytest.approx((0.7 + 0.7) / 2)
    assert mc.se[0] == 0
    assert area_under_curve(a, 100, 300) == pytest.approx((0.6 + 0.8) / 2)
    assert math.isnan(area_under_curve(a, 100, 301))
    with pytest.raises(ValueError, match="increase"):
        Curve(np.array([1.0, 1.0]), np.array([0.1, 0.2]))
