import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs
from test_select_batchbald import reference_greedy
from test_select_kcenter import reference_kcenter
from test_select_kmeanspp import reference_kmeanspp

from pickwise.embeddings import grad_embedding
from pickwise.pool import Pool
from pickwise.protocols import Classifier, Embedder, GradEmbedder, MCSampler, ScoreBased, check_capabilities
from pickwise.scores import bald, entropy, margin
from pickwise.select.bait import bait_select
from pickwise.select.stochastic import stochastic_batch
from pickwise.select.topk import top_k
from pickwise.strategies import MCDropout, Uncertainty
from pickwise.strategies.batch import (
    BADGE,
    BAIT,
    DBAL,
    EGL,
    BatchBALD,
    CoreSet,
    InformationDensity,
    StochasticBatch,
)


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    return FakeModel(5, 3), x, pool


@pytest.mark.parametrize(
    "make",
    [
        BADGE,
        lambda: BADGE(bias=True, chunk_size=7),
        CoreSet,
        lambda: DBAL(beta=3.0),
        lambda: BatchBALD(n_draws=5, n_samples=500, chunk_size=9),
        lambda: BatchBALD(n_draws=5, n_samples=500, max_candidates=12),
        lambda: BAIT(lam=0.5),
        EGL,
        lambda: InformationDensity(score="margin", beta=2.0, chunk_size=6),
        lambda: StochasticBatch(Uncertainty(score="entropy")),
        lambda: StochasticBatch(MCDropout(score="bald", n_draws=4), mode="power", beta=2.0),
        lambda: StochasticBatch(EGL(), mode="softrank"),
    ],
)
def test_contract(make, setting):
    check_strategy_contract(make, *setting)


def test_badge_equals_materialised_reference(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    p, h = model.grad_factors(x[unl])
    sel = BADGE(chunk_size=7).select(model, x, pool, 8, rng=np.random.default_rng(3))
    ref = reference_kmeanspp(grad_embedding(p, h).materialize(), 8, np.random.default_rng(3))
    np.testing.assert_array_equal(sel, unl[ref])


def test_coreset_equals_brute_force(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    sel = CoreSet(chunk_size=5).select(model, x, pool, 8, rng=np.random.default_rng(0))
    ref = reference_kcenter(model.embed(x[unl]), 8, model.embed(x[pool.labeled]), np.random.default_rng(0))
    np.testing.assert_array_equal(sel, unl[ref])


def test_dbal_picks_from_the_most_informative(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    sel = DBAL(beta=2.0).select(model, x, pool, 4, rng=np.random.default_rng(0))
    s = margin(model.predict_proba(x[unl]))
    assert np.all(s[np.searchsorted(unl, sel)] >= np.sort(s)[-8])


def test_dbal_equals_plain_pipeline(setting):
    from sklearn.cluster import KMeans
    from test_select_wkmeans import reference_matching

    model, x, pool = setting
    unl = pool.unlabeled
    sel = DBAL(beta=3.0, chunk_size=5).select(model, x, pool, 4, rng=np.random.default_rng(4))
    rng = np.random.default_rng(4)
    s = margin(model.predict_proba(x[unl]))
    keep = top_k(s, 12, rng=rng)
    emb = model.embed(x[unl[keep]])
    km = KMeans(n_clusters=4, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(emb, sample_weight=s[keep])
    np.testing.assert_array_equal(sel, unl[keep[reference_matching(emb, km.cluster_centers_)]])


def test_batchbald_equals_brute_force_on_the_same_draws(setting):
    model, x, pool = setting
    unl = pool.unlabeled[:8]
    small = Pool.empty(40, n_classes=3).label(np.setdiff1d(np.arange(40), unl), np.zeros(32, dtype=np.int64))
    rng = np.random.default_rng(5)
    sel = BatchBALD(n_draws=6, chunk_size=3).select(model, x, small, 3, rng=rng)
    seed = int(np.random.default_rng(5).integers(2**31 - 1))
    d = model.predict_proba_mc(x[unl], 6, seed=seed)
    assert sel.tolist() == unl[reference_greedy(d, 3)].tolist()
    one = BatchBALD(n_draws=6).select(model, x, small, 1, rng=np.random.default_rng(5))
    assert one[0] == unl[np.argmax(bald(d))]
    # candidates limited to the top-BALD items: the picks come from them
    cut = BatchBALD(n_draws=6, max_candidates=4).select(model, x, small, 3, rng=np.random.default_rng(5))
    assert set(cut.tolist()) <= set(unl[np.argsort(bald(d))[-4:]].tolist())


def test_bait_equals_select_on_model_factors(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    p, h = model.grad_factors(x[unl])
    pl, hl = model.grad_factors(x[pool.labeled])
    sel = BAIT(chunk_size=4).select(model, x, pool, 5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(sel, unl[bait_select(p, h, 5, probs_labeled=pl, h_labeled=hl)])


def test_egl_equals_explicit_gradient_norms(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    p, h = model.grad_factors(x[unl])
    eye = np.eye(p.shape[1])
    plain = np.array([sum(p[i, c] * np.linalg.norm(np.outer(p[i] - eye[c], h[i])) for c in range(3))
                      for i in range(len(unl))])
    np.testing.assert_allclose(EGL(chunk_size=4).scores(model, x, unl), plain, rtol=1e-10)
    sel = EGL().select(model, x, pool, 5, rng=np.random.default_rng(0))
    assert sorted(plain[np.searchsorted(unl, sel)]) == pytest.approx(sorted(np.sort(plain)[-5:]))


def test_information_density_equals_plain_pairwise(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    e = model.embed(x[unl])
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = (u @ u.T).mean(axis=1)
    plain = entropy(model.predict_proba(x[unl])) * sim**2.0
    got = InformationDensity(score="entropy", beta=2.0, chunk_size=5).scores(model, x, unl)
    np.testing.assert_allclose(got, plain, rtol=1e-10)


def test_stochastic_batch_samples_the_inner_scores(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    sel = StochasticBatch(Uncertainty(score="margin"), mode="power", beta=3.0).select(
        model, x, pool, 6, rng=np.random.default_rng(2))
    s = margin(model.predict_proba(x[unl]))
    np.testing.assert_array_equal(sel, unl[stochastic_batch(s, 6, rng=np.random.default_rng(2), mode="power",
                                                            beta=3.0)])
    assert StochasticBatch(MCDropout()).needs == (MCSampler,)


def test_score_based_strategies_follow_the_protocol(setting):
    model, x, pool = setting
    for s in (EGL(), InformationDensity()):
        assert isinstance(s, ScoreBased)
        unl = pool.unlabeled
        expected = unl[top_k(s.scores(model, x, unl, rng=np.random.default_rng(1)), 5, rng=np.random.default_rng(1))]
        np.testing.assert_array_equal(s.select(model, x, pool, 5, rng=np.random.default_rng(1)), expected)


def test_chunking_does_not_change_picks(setting):
    model, x, pool = setting
    for a, b in [(BADGE(chunk_size=3), BADGE()), (CoreSet(chunk_size=3), CoreSet()), (BAIT(chunk_size=3), BAIT()),
                 (BatchBALD(n_draws=4, chunk_size=3), BatchBALD(n_draws=4))]:
        np.testing.assert_array_equal(a.select(model, x, pool, 6, rng=np.random.default_rng(0)),
                                      b.select(model, x, pool, 6, rng=np.random.default_rng(0)))


def test_needs_are_declared():
    assert BADGE.needs == (GradEmbedder,) and EGL.needs == (GradEmbedder,) and BAIT.needs == (GradEmbedder,)
    assert CoreSet.needs == (Embedder,) and BatchBALD.needs == (MCSampler,)
    assert DBAL.needs == (Classifier, Embedder) and InformationDensity.needs == (Classifier, Embedder)

    class ProbsOnly:
        n_classes = 3

        def fit(self, x, y, *, seed):
            return self

        def predict_proba(self, x):
            return np.full((len(x), 3), 1 / 3)

    with pytest.raises(TypeError, match="GradEmbedder"):
        check_capabilities(BADGE(), ProbsOnly())
    with pytest.raises(TypeError, match="Embedder"):
        check_capabilities(DBAL(), ProbsOnly())


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda: BADGE(bias="yes"), "yes"),
        (lambda: BADGE(chunk_size=0), "chunk_size"),
        (lambda: DBAL(beta=0.5), "0.5"),
        (lambda: DBAL(score="nope"), "nope"),
        (lambda: BatchBALD(max_configs=0), "max_configs"),
        (lambda: BatchBALD(n_draws=-2), "-2"),
        (lambda: BatchBALD(max_candidates=0), "max_candidates"),
        (lambda: BAIT(lam=0.0), "lam"),
        (lambda: BAIT(oversample=0.9), "0.9"),
        (lambda: EGL(bias=1), "1"),
        (lambda: InformationDensity(beta=-1.0), "-1.0"),
        (lambda: StochasticBatch(Uncertainty(), mode="nope"), "nope"),
        (lambda: StochasticBatch(object()), "score-based"),
        (lambda: StochasticBatch(Uncertainty(), beta=float("nan")), "nan"),
    ],
)
def test_hyperparameters_are_validated(make, bad):
    with pytest.raises(ValueError, match=bad):
        make()


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        BADGE(True)
    with pytest.raises(TypeError):
        StochasticBatch(Uncertainty(), "power")


def test_names():
    assert [s.name for s in (BADGE(), CoreSet(), DBAL(), BatchBALD(), BAIT(), EGL())] == [
        "badge", "coreset", "dbal", "batchbald", "bait", "egl"]
    assert InformationDensity().name == "density_entropy"
    assert StochasticBatch(MCDropout(score="bald")).name == "softmax_bald"
