import json
import math

import numpy as np
import pytest
from contract import check_strategy_contract
from fakes import FakeModel, blobs

from pickwise.pool import Pool
from pickwise.protocols import Classifier, Embedder, check_capabilities
from pickwise.scores import margin
from pickwise.select.topk import top_k
from pickwise.strategies.cluster_margin import ClusterMargin, hac_clusters, round_robin


def reference_hac(x: np.ndarray, *, epsilon=None, n_clusters=None) -> list[tuple]:
    """Average linkage by the definition: repeatedly merge the two clusters with the smallest mean
    pairwise Euclidean distance, while it is ≤ ε (or until n_clusters remain)."""
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    clusters = [[i] for i in range(x.shape[0])]
    while len(clusters) > 1:
        best, pair = np.inf, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                d = dist[np.ix_(clusters[a], clusters[b])].mean()
                if d < best:
                    best, pair = d, (a, b)
        if epsilon is not None and best > epsilon:
            break
        if n_clusters is not None and len(clusters) <= n_clusters:
            break
        a, b = pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return sorted(tuple(sorted(c)) for c in clusters)


def partition(ids: np.ndarray) -> list[tuple]:
    return sorted(tuple(np.flatnonzero(ids == c).tolist()) for c in np.unique(ids))


def reference_round_robin(clusters: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """The paper's loop: clusters by ascending size, one random member of each in turn."""
    perm = rng.permutation(clusters.shape[0])
    members: dict[int, list[int]] = {}
    for pos in perm:  # each cluster's members in the permutation's (random) order
        members.setdefault(int(clusters[pos]), []).append(int(pos))
    order = sorted(members, key=lambda c: (len(members[c]), c))
    picks, i = [], 0
    while len(picks) < k:
        c = order[i % len(order)]
        if members[c]:
            picks.append(members[c].pop(0))
        i += 1
    return picks


def reference_cluster_margin(model, x, pool, k, rng, *, ratio, n_clusters):
    unl = pool.unlabeled
    ids = np.empty(unl.shape[0], dtype=np.int64)
    for c, members in enumerate(reference_hac(model.embed(x[unl]), n_clusters=n_clusters)):
        ids[sorted(members)] = c
    keep = top_k(margin(model.predict_proba(x[unl])), min(unl.shape[0], math.ceil(ratio * k)), rng=rng)
    return unl[keep[reference_round_robin(ids[keep], k, rng)]]


# --- the pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_hac_equals_definition(seed):
    x = np.random.default_rng(seed).normal(size=(18, 3))
    for eps in (0.5, 1.2, 2.0, 10.0):
        assert partition(hac_clusters(x, epsilon=eps)) == reference_hac(x, epsilon=eps)
    for c in (1, 4, 9, 18):
        assert partition(hac_clusters(x, n_clusters=c)) == reference_hac(x, n_clusters=c)


def test_hac_ids_and_edge_cases():
    x = np.random.default_rng(0).normal(size=(10, 2))
    ids = hac_clusters(x, n_clusters=4)
    assert ids.dtype == np.int64 and sorted(np.unique(ids).tolist()) == [0, 1, 2, 3]
    _, first = np.unique(ids, return_index=True)
    assert np.all(np.diff(first) > 0)  # numbered in order of first appearance
    assert hac_clusters(x[:1], epsilon=1.0).tolist() == [0]
    assert hac_clusters(x, epsilon=0.0).tolist() == list(range(10))
    with pytest.raises(ValueError, match="exactly one"):
        hac_clusters(x)
    with pytest.raises(ValueError, match="epsilon.*-1"):
        hac_clusters(x, epsilon=-1)
    with pytest.raises(ValueError, match=r"\(10,\)"):
        hac_clusters(x[:, 0], epsilon=1.0)


@pytest.mark.parametrize("seed", range(5))
def test_round_robin_equals_the_paper_loop(seed):
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 6, size=30) * 7  # ids need not be consecutive
    for k in (1, 5, 17, 30):
        got = round_robin(clusters, k, rng=np.random.default_rng(seed + 1))
        assert got.tolist() == reference_round_robin(clusters, k, np.random.default_rng(seed + 1))


def test_round_robin_covers_every_cluster_before_repeating():
    clusters = np.array([0] * 10 + [1] * 3 + [2])
    got = round_robin(clusters, 5, rng=np.random.default_rng(0))
    assert got[0] == 13  # the singleton cluster first
    assert clusters[got].tolist() == [2, 1, 0, 1, 0]
    for bad in (0, 15, -1):
        with pytest.raises(ValueError, match=f"k={bad}"):
            round_robin(clusters, bad, rng=np.random.default_rng(0))


# --- the strategy --------------------------------------------------------------------------------


@pytest.fixture
def setting():
    x, y = blobs(40, 5, 3)
    pool = Pool.empty(40, n_classes=3).label(np.arange(0, 40, 4), y[::4])
    return FakeModel(5, 3), x, pool


@pytest.mark.parametrize(
    "make",
    [
        ClusterMargin,
        lambda: ClusterMargin(margin_ratio=1.25, n_clusters=4, chunk_size=7),
        lambda: ClusterMargin(epsilon=0.8, margin_ratio=2.0),
        lambda: ClusterMargin(max_cluster_items=8),
        lambda: ClusterMargin(features=blobs(40, 4, 3, seed=3)[0]),
    ],
)
def test_contract(make, setting):
    check_strategy_contract(make, *setting)


@pytest.mark.parametrize("k,ratio,n_clusters", [(4, 10.0, 5), (6, 1.25, 3), (9, 2.0, 12), (3, 1.0, 2)])
def test_select_equals_plain_reference(setting, k, ratio, n_clusters):
    model, x, pool = setting
    got = ClusterMargin(margin_ratio=ratio, n_clusters=n_clusters, chunk_size=7).select(
        model, x, pool, k, rng=np.random.default_rng(k))
    ref = reference_cluster_margin(model, x, pool, k, np.random.default_rng(k), ratio=ratio, n_clusters=n_clusters)
    assert got.tolist() == ref.tolist()


def test_default_cluster_count_is_a_tenth(setting):
    model, x, pool = setting
    s = ClusterMargin()
    s.select(model, x, pool, 3, rng=np.random.default_rng(0))
    assert np.unique(s.clusters_[pool.unlabeled]).shape[0] == 3  # ⌈30 / 10⌉
    assert np.all(s.clusters_[pool.labeled] == -1)


class CountingModel(FakeModel):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.embedded = 0

    def embed(self, x):
        self.embedded += len(x)
        return super().embed(x)

    def predict_proba(self, x):  # FakeModel's goes through embed: keep it out of the count
        return self._softmax(FakeModel.embed(self, x) @ self.w2)


def test_clusters_are_computed_once_and_reused(setting):
    _, x, pool = setting
    first = CountingModel(5, 3, seed=0)
    s = ClusterMargin(n_clusters=5)
    a = s.select(first, x, pool, 4, rng=np.random.default_rng(0))
    clusters = s.clusters_.copy()
    assert first.embedded == pool.n_unlabeled
    later = CountingModel(5, 3, seed=1)  # a retrained model: its embeddings are not used again
    pool2 = pool.label(a, np.zeros(4, dtype=np.int64))
    b = s.select(later, x, pool2, 4, rng=np.random.default_rng(1))
    assert later.embedded == 0
    np.testing.assert_array_equal(s.clusters_, clusters)
    # the same as a reference that clusters with the first model and scores margins with the later one
    unl = pool2.unlabeled
    ids = clusters[unl]
    rng = np.random.default_rng(1)
    keep = top_k(margin(later.predict_proba(x[unl])), min(unl.shape[0], 40), rng=rng)
    assert b.tolist() == unl[keep[reference_round_robin(ids[keep], 4, rng)]].tolist()


def test_large_pool_clusters_a_sample_and_assigns_the_rest(setting):
    model, x, pool = setting
    unl = pool.unlabeled
    s = ClusterMargin(max_cluster_items=12, n_clusters=4)
    s.select(model, x, pool, 3, rng=np.random.default_rng(5))
    sample = np.sort(np.random.default_rng(5).choice(unl.shape[0], size=12, replace=False))
    emb = model.embed(x[unl])
    ids = s.clusters_[unl]
    assert partition(ids[sample]) == reference_hac(emb[sample], n_clusters=4)
    for i in np.setdiff1d(np.arange(unl.shape[0]), sample):
        nearest = sample[np.argmin(((emb[sample] - emb[i]) ** 2).sum(1))]
        assert ids[i] == ids[nearest]


def test_given_features_replace_the_model_embedding(setting):
    model, x, pool = setting
    feats = model.embed(x)
    a = ClusterMargin(n_clusters=5, features=feats).select(model, x, pool, 6, rng=np.random.default_rng(2))
    b = ClusterMargin(n_clusters=5).select(model, x, pool, 6, rng=np.random.default_rng(2))
    assert a.tolist() == b.tolist()

    class NoEmbed:
        n_classes = 3

        def fit(self, x, y, *, seed):
            return self

        def predict_proba(self, x):
            return model.predict_proba(x)

    assert ClusterMargin(features=feats).needs == (Classifier,)
    assert ClusterMargin().needs == (Classifier, Embedder)
    check_capabilities(ClusterMargin(features=feats), NoEmbed())
    with pytest.raises(TypeError, match="Embedder"):
        check_capabilities(ClusterMargin(), NoEmbed())
    c = ClusterMargin(n_clusters=5, features=feats).select(NoEmbed(), x, pool, 6, rng=np.random.default_rng(2))
    assert c.tolist() == a.tolist()


def test_state_dict_round_trips_through_json(setting):
    model, x, pool = setting
    s = ClusterMargin(n_clusters=5)
    assert s.state_dict() == {"clusters": None}
    s.select(model, x, pool, 4, rng=np.random.default_rng(0))
    t = ClusterMargin(n_clusters=5)
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    np.testing.assert_array_equal(t.clusters_, s.clusters_)
    other = CountingModel(5, 3, seed=4)
    assert t.select(other, x, pool, 4, rng=np.random.default_rng(3)).tolist() == \
        s.select(other, x, pool, 4, rng=np.random.default_rng(3)).tolist()
    assert other.embedded == 0
    for bad in ([0.5, 1.0], [[0, 1]], [0, -2]):
        with pytest.raises(ValueError, match="cluster ids"):
            t.load_state_dict({"clusters": bad})


def test_validation_names_the_bad_values(setting):
    model, x, pool = setting
    with pytest.raises(ValueError, match="margin_ratio.*0.5"):
        ClusterMargin(margin_ratio=0.5)
    with pytest.raises(ValueError, match="margin_ratio.*nan"):
        ClusterMargin(margin_ratio=float("nan"))
    with pytest.raises(ValueError, match="epsilon.*-0.1"):
        ClusterMargin(epsilon=-0.1)
    with pytest.raises(ValueError, match="not both"):
        ClusterMargin(epsilon=1.0, n_clusters=3)
    with pytest.raises(ValueError, match="n_clusters.*0"):
        ClusterMargin(n_clusters=0)
    with pytest.raises(ValueError, match="max_cluster_items.*1.5"):
        ClusterMargin(max_cluster_items=1.5)
    with pytest.raises(ValueError, match=r"features.*\(40,\)"):
        ClusterMargin(features=np.zeros(40))
    with pytest.raises(ValueError, match="features has 39 rows; the pool has 40"):
        ClusterMargin(features=np.zeros((39, 2))).select(model, x, pool, 2, rng=np.random.default_rng(0))
    s = ClusterMargin()
    s.select(model, x, pool, 2, rng=np.random.default_rng(0))
    bigger = Pool.empty(41, n_classes=3)
    with pytest.raises(ValueError, match="40 items; this pool has 41"):
        s.select(model, np.vstack([x, x[:1]]), bigger, 2, rng=np.random.default_rng(0))
    fresh_pool = Pool.empty(40, n_classes=3)  # items labelled at clustering time are unlabelled here
    with pytest.raises(ValueError, match="were labelled when the clusters were made"):
        s.select(model, x, fresh_pool, 2, rng=np.random.default_rng(0))


def test_margin_ratio_count():
    s = ClusterMargin(margin_ratio=1.1)
    assert s.n_margin(10) == 11  # 1.1·10 is 11.000000000000002 in floating point
    assert ClusterMargin(margin_ratio=1.25).n_margin(3) == 4
    assert ClusterMargin(margin_ratio=1.0).n_margin(7) == 7


def test_pool_loop_resumes_with_the_stored_clusters(tmp_path):
    from pickwise import holdout, initial_pool, pool_rounds

    x, y = blobs(80, 5, 3, seed=1)

    def run(strategy, path, stop=None):
        pool = initial_pool(len(x), 6, y, seed=3, n_classes=3)
        gen = pool_rounds(lambda: FakeModel(5, 3), strategy, x, pool, y, k=5, seed=3, evaluate=holdout(x, y),
                          rounds=4, records=path)
        out = []
        for rec in gen:
            out.append(rec.without_timings())
            if stop is not None and len(out) == stop:
                gen.close()
                break
        return out

    full = run(ClusterMargin(n_clusters=6), tmp_path / "full.jsonl")
    assert full[0]["strategy_state"]["clusters"] == full[-1]["strategy_state"]["clusters"]
    run(ClusterMargin(n_clusters=6), tmp_path / "cut.jsonl", stop=2)
    resumed = run(ClusterMargin(n_clusters=6), tmp_path / "cut.jsonl")  # a fresh instance: clusters from the records
    assert resumed == full
