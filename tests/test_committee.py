import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import blobs

from pickwise.committee import QBC, Committee, CommitteeModel
from pickwise.pool import Pool
from pickwise.protocols import Classifier, ScoreBased, check_capabilities
from pickwise.scores import kl_to_consensus, vote_entropy
from pickwise.select.topk import top_k
from pickwise.utils import derive_rng, derive_seed


class NoisyCentroid:
    """Nearest-centroid classifier whose centroids are jittered by the fit seed; records its fits."""

    n_classes = 3

    def __init__(self):
        self.fits = []

    def fit(self, x, y, *, seed):
        rng = np.random.default_rng(seed)
        self.fits.append((np.asarray(x).copy(), np.asarray(y).copy(), seed))
        self.centres = np.stack([x[y == c].mean(0) if np.any(y == c) else np.zeros(x.shape[1]) for c in range(3)])
        self.centres = self.centres + rng.normal(scale=1.0, size=self.centres.shape)
        return self

    def predict_proba(self, x):
        d = -((np.asarray(x)[:, None, :] - self.centres[None]) ** 2).sum(-1) / 4
        e = np.exp(d - d.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    committee = Committee(NoisyCentroid, n_members=4).fit(x[pool.labeled], y[pool.labeled], seed=1)
    return committee, x, pool


def test_members_are_seeded_independently_and_predict_proba_is_the_mean(setting):
    committee, x, _ = setting
    seeds = [m.fits[0][2] for m in committee.members]
    assert seeds == [derive_seed(1, c) for c in range(4)]
    members = committee.predict_proba_members(x)
    assert members.shape == (4, 40, 3)
    assert not np.allclose(members[0], members[1])
    np.testing.assert_allclose(committee.predict_proba(x), members.mean(0))
    assert isinstance(committee, CommitteeModel) and isinstance(committee, Classifier)
    assert committee.n_classes == 3


def test_bootstrap_resamples_each_member_from_its_own_stream():
    x, y = blobs(30, 4, 3)
    c = Committee(NoisyCentroid, n_members=3, bootstrap=True).fit(x, y, seed=7)
    for i, m in enumerate(c.members):
        rows = derive_rng(7, i, 1).integers(30, size=30)
        np.testing.assert_array_equal(m.fits[0][1], y[rows])
        np.testing.assert_array_equal(m.fits[0][0], x[rows])
    again = Committee(NoisyCentroid, n_members=3, bootstrap=True).fit(x, y, seed=7)
    np.testing.assert_array_equal(c.predict_proba_members(x), again.predict_proba_members(x))


def test_refit_builds_fresh_members():
    x, y = blobs(30, 4, 3)
    c = Committee(NoisyCentroid, n_members=2)
    assert c.n_classes == 3 and isinstance(c, Classifier)
    with pytest.raises(ValueError, match="not fitted"):
        c.predict_proba(x)
    c.fit(x, y, seed=0)
    first = c.members
    c.fit(x, y, seed=0)
    assert c.members is not first and all(len(m.fits) == 1 for m in c.members)


@pytest.mark.parametrize("make", [QBC, lambda: QBC(score="kl_to_consensus", chunk_size=7), lambda: QBC(score=kl_to_consensus)])
def test_contract(make, setting):
    check_strategy_contract(make, *setting)


@pytest.mark.parametrize(("name", "fn"), [("vote_entropy", vote_entropy), ("kl_to_consensus", kl_to_consensus)])
def test_qbc_is_top_k_of_the_committee_score(setting, name, fn):
    committee, x, pool = setting
    unl = pool.unlabeled
    s = fn(committee.predict_proba_members(x[unl]))
    np.testing.assert_allclose(QBC(score=name, chunk_size=4).scores(committee, x, unl), s)
    sel = QBC(score=name).select(committee, x, pool, 5, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(sel, unl[top_k(s, 5, rng=np.random.default_rng(2))])
    assert isinstance(QBC(), ScoreBased)


def test_qbc_needs_a_committee():
    x, y = blobs(10, 4, 3)
    single = NoisyCentroid().fit(x, y, seed=0)
    with pytest.raises(TypeError, match="CommitteeModel"):
        check_capabilities(QBC(), single)


def test_bad_arguments():
    with pytest.raises(ValueError, match="1"):
        Committee(NoisyCentroid, n_members=1)
    with pytest.raises(ValueError, match="factory"):
        Committee(None)
    with pytest.raises(ValueError, match="maybe"):
        Committee(NoisyCentroid, bootstrap="maybe")
    with pytest.raises(ValueError, match="entropy"):
        QBC(score="entropy")
    with pytest.raises(ValueError, match="chunk_size"):
        QBC(chunk_size=0)
    assert QBC().name == "qbc_vote_entropy"
