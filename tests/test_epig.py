import itertools
import json

import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise.pool import Pool
from pickwise.protocols import MCSampler, ScoreBased
from pickwise.select.epig import batch_epig_scores, batch_epig_select, epig_scores
from pickwise.select.topk import top_k
from pickwise.strategies.epig import EPIG, BatchEPIG


def _draws(seed, t=6, n=7, k=3, sharp=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=sharp, size=(t, n, k))
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def reference_epig(pool: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The paper's definition with a double loop: mean over targets of KL(p(y, y*) ‖ p(y) p(y*))."""
    t, n, _ = pool.shape
    m = target.shape[1]
    out = np.zeros(n)
    for i in range(n):
        for j in range(m):
            joint = sum(np.outer(pool[s, i], target[s, j]) for s in range(t)) / t
            indep = np.outer(pool[:, i].mean(axis=0), target[:, j].mean(axis=0))
            pos = joint > 0
            out[i] += np.sum(joint[pos] * np.log(joint[pos] / indep[pos])) / m
    return out


def brute_force_batch_epig(pool: np.ndarray, target: np.ndarray, subset: list[int]) -> float:
    """E_{x*} I(y_S; y*) with the joint over every configuration of (y_S, y*) enumerated."""
    t, _, k = pool.shape
    total = 0.0
    for j in range(target.shape[1]):
        for config in itertools.product(range(k), repeat=len(subset)):
            per_draw = np.ones(t)
            for s, y in zip(subset, config):
                per_draw = per_draw * pool[:, s, y]
            p_s = per_draw.mean()
            for y_star in range(k):
                p_joint = (per_draw * target[:, j, y_star]).mean()
                p_star = target[:, j, y_star].mean()
                if p_joint > 0:
                    total += p_joint * np.log(p_joint / (p_s * p_star))
    return total / target.shape[1]


def reference_greedy(pool: np.ndarray, target: np.ndarray, k: int) -> list[int]:
    picks: list[int] = []
    for _ in range(k):
        vals = [brute_force_batch_epig(pool, target, picks + [i]) if i not in picks else -np.inf
                for i in range(pool.shape[1])]
        picks.append(int(np.argmax(vals)))
    return picks


# --- the math ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_epig_equals_double_loop_definition(seed):
    p, q = _draws(seed, n=9, k=4), _draws(seed + 100, n=5, k=4)
    np.testing.assert_allclose(epig_scores(p, q), reference_epig(p, q), rtol=0, atol=1e-10)


def test_epig_with_exact_zeros_and_unnormalised_rows_follows_the_kl_form():
    p, q = _draws(1, n=6), _draws(2, n=4)
    p[:, 0] = [1.0, 0.0, 0.0]  # certain for every draw: EPIG 0
    q[:, 1] = [0.0, 1.0, 0.0]
    p[:, 2] *= 1 + 3e-5  # within check_probs' tolerance: the KL form, not H + H − H, is evaluated
    got = epig_scores(p, q)
    np.testing.assert_allclose(got, reference_epig(p, q), rtol=0, atol=1e-10)
    assert got[0] == pytest.approx(0.0, abs=1e-15)
    assert np.all(got > -1e-12) and np.all(got <= np.log(3) + 1e-12)


def test_epig_block_split_matches_reference(monkeypatch):
    import pickwise.select.epig as mod

    p, q = _draws(3, t=4, n=11, k=2), _draws(4, t=4, n=6, k=2)
    whole = epig_scores(p, q)
    monkeypatch.setattr(mod, "_BLOCK", 2 * 6 * 2 * 3)  # blocks of 3 candidates, the last one short
    np.testing.assert_allclose(epig_scores(p, q), reference_epig(p, q), rtol=0, atol=1e-10)
    np.testing.assert_allclose(epig_scores(p, q), whole, rtol=0, atol=1e-14)


def test_epig_of_independent_target_is_zero():
    # one draw: no epistemic uncertainty, y and y* independent
    p, q = _draws(5, t=1, n=6), _draws(6, t=1, n=3)
    np.testing.assert_allclose(epig_scores(p, q), 0.0, atol=1e-14)


@pytest.mark.parametrize("seed", range(3))
def test_batch_epig_scores_equal_brute_force(seed):
    p, q = _draws(seed + 10, t=5, n=6, k=3), _draws(seed + 20, t=5, n=3, k=3)
    for chosen in ([], [2], [0, 5], [1, 3, 4]):
        s = batch_epig_scores(p, q, chosen)
        for i in range(p.shape[1]):
            if i not in chosen:
                assert s[i] == pytest.approx(brute_force_batch_epig(p, q, chosen + [i]), abs=1e-10)


def test_batch_epig_with_empty_batch_is_epig():
    p, q = _draws(7, n=10), _draws(8, n=4)
    np.testing.assert_allclose(batch_epig_scores(p, q, []), epig_scores(p, q), rtol=0, atol=1e-10)
    assert batch_epig_select(p, q, 1, rng=np.random.default_rng(0))[0] == np.argmax(epig_scores(p, q))


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_brute_force_greedy(seed):
    p, q = _draws(seed + 30, t=5, n=7, k=3), _draws(seed + 40, t=5, n=3, k=3)
    got = batch_epig_select(p, q, 4, rng=np.random.default_rng(0))
    assert got.tolist() == reference_greedy(p, q, 4)


def test_sampled_greedy_is_seeded_and_near_exact():
    p, q = _draws(50, t=8, n=8, k=3), _draws(51, t=8, n=2, k=3)
    a = batch_epig_select(p, q, 4, rng=np.random.default_rng(1), max_configs=3, n_samples=400)
    b = batch_epig_select(p, q, 4, rng=np.random.default_rng(1), max_configs=3, n_samples=400)
    assert a.tolist() == b.tolist()
    assert len(set(a.tolist())) == 4
    exact = batch_epig_scores(p, q, a[:2])
    approx = batch_epig_scores(p, q, a[:2], rng=np.random.default_rng(2), max_configs=3, n_samples=20_000)
    mask = np.ones(8, dtype=bool)
    mask[a[:2]] = False
    np.testing.assert_allclose(approx[mask], exact[mask], atol=0.05)
    with pytest.raises(ValueError, match="rng"):
        batch_epig_scores(p, q, a[:2], max_configs=3)


def test_validation_names_the_bad_values():
    p, q = _draws(0, t=6, n=7), _draws(1, t=6, n=4)
    with pytest.raises(ValueError, match=r"\(7, 6, 3\)"):
        epig_scores(p.transpose(1, 0, 2), q)  # (n, T, K) instead of (T, n, K)
    with pytest.raises(ValueError, match=r"\(6, 7, 2\)"):
        epig_scores(p[..., :2] / p[..., :2].sum(-1, keepdims=True), q)
    with pytest.raises(ValueError, match="n_draws, n, n_classes"):
        epig_scores(p[0], q)
    with pytest.raises(ValueError, match="probs_target.*at least one"):
        epig_scores(p, q[:, :0])
    with pytest.raises(ValueError, match="sum to 1"):
        epig_scores(p * 0.9, q)
    with pytest.raises(ValueError, match="nan"):
        bad = p.copy()
        bad[0, 0, 0] = np.nan
        epig_scores(bad, q)
    for k in (0, 8, -1):
        with pytest.raises(ValueError, match=f"k={k}"):
            batch_epig_select(p, q, k, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[9\]"):
        batch_epig_scores(p, q, [9])
    with pytest.raises(ValueError, match="n_samples.*0"):
        batch_epig_select(p, q, 2, rng=np.random.default_rng(0), n_samples=0)


# --- the strategies ------------------------------------------------------------------------------


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    return FakeModel(5, 3), x, pool


@pytest.mark.parametrize(
    "make",
    [
        EPIG,
        lambda: EPIG(n_draws=7, n_targets=6, chunk_size=7),
        lambda: EPIG(targets=blobs(9, 5, 3, seed=5)[0]),
        lambda: BatchEPIG(n_draws=5, n_targets=4, n_samples=300, chunk_size=9),
        lambda: BatchEPIG(n_draws=5, n_targets=3, n_samples=300, max_candidates=10),
    ],
)
def test_contract(make, setting):
    check_strategy_contract(make, *setting)


def test_capabilities_and_names():
    assert EPIG.needs == (MCSampler,) and BatchEPIG.needs == (MCSampler,)
    assert isinstance(EPIG(), ScoreBased)
    assert EPIG().name == "epig" and BatchEPIG().name == "batch_epig"


def _replay(model, x, unl, rng, n_draws, n_targets):
    """What the strategies draw from rng: the dropout seed, then the target sample."""
    seed = int(rng.integers(2**31 - 1))
    tgt = rng.choice(unl, size=min(n_targets, unl.shape[0]), replace=False)
    return seed, model.predict_proba_mc(x[unl], n_draws, seed=seed), model.predict_proba_mc(x[tgt], n_draws, seed=seed)


def test_epig_strategy_equals_reference_on_model_draws(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    got = EPIG(n_draws=6, n_targets=5, chunk_size=7).scores(model, x, unl, rng=np.random.default_rng(4))
    _, dp, dt = _replay(model, x, unl, np.random.default_rng(4), 6, 5)
    np.testing.assert_allclose(got, reference_epig(dp, dt), rtol=0, atol=1e-10)
    sel = EPIG(n_draws=6, n_targets=5, chunk_size=7).select(model, x, pool, 6, rng=np.random.default_rng(4))
    rng = np.random.default_rng(4)
    _, dp, dt = _replay(model, x, unl, rng, 6, 5)
    np.testing.assert_array_equal(sel, unl[top_k(epig_scores(dp, dt), 6, rng=rng)])


def test_epig_given_targets_uses_them(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    xt = blobs(12, 5, 3, seed=9)[0]
    got = EPIG(n_draws=5, targets=xt).scores(model, x, unl, rng=np.random.default_rng(2))
    seed = int(np.random.default_rng(2).integers(2**31 - 1))
    ref = reference_epig(model.predict_proba_mc(x[unl], 5, seed=seed), model.predict_proba_mc(xt, 5, seed=seed))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    other = EPIG(n_draws=5, targets=xt[:3]).scores(model, x, unl, rng=np.random.default_rng(2))
    assert not np.allclose(got, other)


def test_batch_epig_strategy_equals_reference_greedy(setting):
    model, x, _ = setting
    small = Pool.empty(40, n_classes=3).label(np.arange(32), np.arange(32) % 3)  # 8 unlabelled
    unl = small.unlabeled
    sel = BatchEPIG(n_draws=4, n_targets=2).select(model, x, small, 3, rng=np.random.default_rng(6))
    _, dp, dt = _replay(model, x, unl, np.random.default_rng(6), 4, 2)
    assert sel.tolist() == unl[reference_greedy(dp, dt, 3)].tolist()


def test_batch_epig_candidates_are_top_epig(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    sel = BatchEPIG(n_draws=5, n_targets=4, n_samples=300, max_candidates=6).select(
        model, x, pool, 4, rng=np.random.default_rng(8))
    rng = np.random.default_rng(8)
    _, dp, dt = _replay(model, x, unl, rng, 5, 4)
    cand = unl[np.sort(top_k(epig_scores(dp, dt), 6, rng=rng))]
    assert set(sel.tolist()) <= set(cand.tolist())
    ref = cand[batch_epig_select(dp[:, np.searchsorted(unl, cand)], dt, 4, rng=rng, n_samples=300)]
    assert sel.tolist() == ref.tolist()


def test_seed_changes_targets(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    a = EPIG(n_targets=3).scores(model, x, unl, rng=np.random.default_rng(0))
    b = EPIG(n_targets=3).scores(model, x, unl, rng=np.random.default_rng(1))
    assert not np.allclose(a, b)
    json.dumps(a.tolist())  # plain floats


def test_strategy_validation():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="n_draws"):
            EPIG(n_draws=bad)
        with pytest.raises(ValueError, match="n_targets"):
            BatchEPIG(n_targets=bad)
    with pytest.raises(ValueError, match="max_candidates.*0"):
        BatchEPIG(max_candidates=0)
    with pytest.raises(ValueError, match="targets.*0"):
        EPIG(targets=np.empty((0, 5)))
    with pytest.raises(ValueError, match="targets must be None"):
        EPIG(targets=3)


def test_torch_classifier_chunked_mc_scores_share_the_target_masks():
    # TorchClassifier scores the pool through its own chunked mc_scores and the targets through
    # predict_proba_mc: EPIG is right only if both use the same dropout masks per draw
    torch = pytest.importorskip("torch")
    from pickwise.adapters import TorchClassifier, mlp

    torch.manual_seed(0)
    x, y = blobs(40, 5, 3)
    model = TorchClassifier(mlp(5, 3, hidden=(8,), dropout=0.4), n_classes=3, epochs=2).fit(x[:10], y[:10], seed=0)
    pool = Pool.empty(40, n_classes=3).label(np.arange(10), y[:10])
    unl = pool.unlabeled
    got = EPIG(n_draws=5, n_targets=4, chunk_size=7).scores(model, x, unl, rng=np.random.default_rng(3))
    _, dp, dt = _replay(model, x, unl, np.random.default_rng(3), 5, 4)
    np.testing.assert_allclose(got, reference_epig(dp, dt), rtol=0, atol=1e-10)
    assert got.max() > 1e-6  # the draws really differ
