import numpy as np
import pytest

from pickwise.select.bait import bait_greedy, bait_select, fisher_rows, mean_fisher


def _factors(seed, n=14, k=3, d=4):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, k))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p, rng.normal(size=(n, d))


def _direct(p, h, pl, hl, k, lam):
    """Materialised pieces: F (pool mean Fisher), M_0, and each candidate's weighted Fisher."""
    v = fisher_rows(p, h)  # (n, K, D)
    vl = fisher_rows(pl, hl) if len(pl) else np.zeros((0,) + v.shape[1:])
    every = np.concatenate([v, vl])
    dim = v.shape[2]
    f = np.einsum("nkd,nke->de", every, every) / len(every)
    m0 = lam * np.eye(dim)
    if len(pl):
        m0 += len(pl) / (len(pl) + k) * np.einsum("nkd,nke->de", vl, vl) / len(vl)
    each = k / (len(pl) + k) * np.einsum("nkd,nke->nde", v, v)
    return f, m0, each


def _objective(f, m0, each, chosen):
    m = m0 + each[sorted(chosen)].sum(axis=0) if chosen else m0
    return float(np.trace(np.linalg.inv(m) @ f))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("labelled", [0, 5])
def test_tracked_objective_matches_direct_inverse_after_every_step(seed, labelled):
    p, h = _factors(seed)
    pl, hl = _factors(seed + 100, n=labelled) if labelled else (np.empty((0, 3)), np.empty((0, 4)))
    k, lam = 3, 0.5
    tr = bait_greedy(p, h, k, probs_labeled=pl if labelled else None, h_labeled=hl if labelled else None, lam=lam)
    f, m0, each = _direct(p, h, pl, hl, k, lam)
    chosen: set[int] = set()
    np.testing.assert_allclose(tr.objective[0], _objective(f, m0, each, chosen), rtol=1e-9)
    assert len(tr.steps) == 2 * k + k  # 2k forward, k backward
    for (sign, j), obj in zip(tr.steps, tr.objective[1:]):
        chosen.add(j) if sign > 0 else chosen.remove(j)
        np.testing.assert_allclose(obj, _objective(f, m0, each, chosen), rtol=1e-8)
    assert sorted(tr.selected.tolist()) == sorted(chosen) and len(chosen) == k


def reference_bait(p, h, k, pl, hl, lam, oversample=2):
    """Naive greedy: every candidate's objective from a fresh np.linalg.inv."""
    f, m0, each = _direct(p, h, pl, hl, k, lam)
    chosen: list[int] = []
    for _ in range(min(len(p), oversample * k)):
        vals = [np.inf if i in chosen else _objective(f, m0, each, set(chosen) | {i}) for i in range(len(p))]
        chosen.append(int(np.argmin(vals)))
    while len(chosen) > k:
        vals = [_objective(f, m0, each, set(chosen) - {i}) for i in chosen]
        chosen.remove(chosen[int(np.argmin(vals))])
    return chosen


@pytest.mark.parametrize("seed", range(3))
def test_same_picks_as_naive_greedy(seed):
    p, h = _factors(seed + 20)
    pl, hl = _factors(seed + 30, n=4)
    got = bait_select(p, h, 3, probs_labeled=pl, h_labeled=hl, lam=1.0)
    assert got.tolist() == reference_bait(p, h, 3, pl, hl, 1.0)


def test_mean_fisher_equals_materialised_rows():
    p, h = _factors(1, n=9)
    v = fisher_rows(p, h)
    np.testing.assert_allclose(mean_fisher(p, h), np.einsum("nkd,nke->de", v, v) / 9, atol=1e-12)
    # each item's Fisher is (diag p − p pᵀ) ⊗ h hᵀ
    i = 4
    np.testing.assert_allclose(v[i].T @ v[i], np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(h[i], h[i])),
                               atol=1e-12)


def test_k_equal_n_selects_everything_and_bad_arguments():
    p, h = _factors(2, n=5)
    assert sorted(bait_select(p, h, 5).tolist()) == list(range(5))
    with pytest.raises(ValueError, match="lam"):
        bait_select(p, h, 2, lam=0.0)
    with pytest.raises(ValueError, match="oversample"):
        bait_select(p, h, 2, oversample=0.5)
    with pytest.raises(ValueError, match="k=6"):
        bait_select(p, h, 6)
    with pytest.raises(ValueError, match="neither"):
        bait_select(p, h, 2, probs_labeled=p)
    with pytest.raises(ValueError, match="labelled factors"):
        bait_select(p, h, 2, probs_labeled=p, h_labeled=h[:, :2])
