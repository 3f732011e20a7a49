"""PacedVeSSAL (issue 13, item 2): a plain reference, the rate held where the published sampler front-loads,
the volume-sampling preference kept, the stream contract, both protocols with resume, and the CLI."""

import json
import math

import numpy as np
import pytest
from fakes import CentroidModel, blobs
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from stream_contract import check_stream_selector_contract

from pickwise.catalog import make_stream_selector
from pickwise.cli import main
from pickwise.stream import PacedVeSSAL, StreamUniform, VeSSAL, grad_features, stream_segments
from pickwise.stream._base import rate_at
from pickwise.stream.paced import calibrate, leave_one_out_forms, paced_probability

# -- a plain reference: every inverse formed from scratch, every form recomputed, the scale by a plain loop ------


def plain_scale(forms, rate):
    """c with mean(min(c·v, 1)) = rate, by trying every count of capped items in turn (math.inf: all capped)."""
    pos = sorted((float(v) for v in forms if v > 0), reverse=True)
    target = rate * len(forms)
    if not pos or target >= len(pos):
        return math.inf
    for j in range(len(pos)):
        c = (target - j) / sum(pos[j:])
        if c * pos[j] <= 1.0:
            return c
    raise AssertionError("unreachable")


def paced_reference(z, uniforms, *, q=None, budget=None, length=None, lam=0.01, window=256, pace=100,
                    max_boost=2.0):
    """Per item: Σ̂ = λI + Σ_chosen g gᵀ inverted afresh; the window's forms g_jᵀΣ̂⁻¹g_j, with Σ̂ less g_j g_jᵀ for
    a chosen j (its own update left out); ρ = min(1, q_t·clip(exp(−e/h), 1/M, M)); p = min(c·s, 1)."""
    z = np.asarray(z, dtype=np.float64)
    n, dim = z.shape
    plan = q if q is not None else budget / length
    chosen = []
    decisions, probs, capped = np.zeros(n, dtype=bool), np.zeros(n), 0
    for i in range(n):
        t = i + 1
        sigma = lam * np.eye(dim) + sum((np.outer(z[j], z[j]) for j in chosen), np.zeros((dim, dim)))
        inv = np.linalg.inv(sigma)
        recent = range(max(0, t - window), t)
        forms = []
        for j in recent:
            if j in chosen:
                forms.append(float(z[j] @ np.linalg.inv(sigma - np.outer(z[j], z[j])) @ z[j]))
            else:
                forms.append(float(z[j] @ inv @ z[j]))
        s = forms[-1]
        rate = rate_at(q, budget, length, t, len(chosen))
        rho = rate
        if pace is not None and rate > 0:
            boost = min(max(math.exp(-(len(chosen) - plan * (t - 1)) / max(1.0, plan * pace)), 1 / max_boost), max_boost)
            rho = min(1.0, rate * boost)
        c = plain_scale(forms, rho)
        if math.isinf(c):
            positive = sum(v > 0 for v in forms)
            p = rho if positive == 0 else (1.0 if s > 0 else (rho * len(forms) - positive) / (len(forms) - positive))
        else:
            p = min(c * s, 1.0)
            capped += c * max(forms) > 1.0
        probs[i] = p
        if uniforms[i] < p:
            decisions[i] = True
            chosen.append(i)
    sigma = lam * np.eye(dim) + sum((np.outer(z[j], z[j]) for j in chosen), np.zeros((dim, dim)))
    return decisions, probs, np.linalg.inv(sigma), capped


def heavy(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) * rng.gamma(1.0, size=(n, 1))  # heavy-tailed norms, as gradients have


def run_chunks(sel, z, rng, size):
    return np.concatenate([sel.observe_many(z[a : a + size], rng=rng) for a in range(0, len(z), size)])


CONFIGS = [
    {"q": 0.15, "window": 13},
    {"q": 0.5, "window": 40},  # capping at work
    {"q": 0.3, "window": 300, "pace": None},
    {"budget": 30, "length": 160, "window": 20, "pace": 7, "max_boost": 3.0},
    {"q": 1.0, "window": 9},
    {"q": 0.2, "budget": 12, "window": 25},
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_equals_the_plain_reference(cfg):
    z = heavy(160, 6, seed=1)
    z[[3, 50]] = 0.0  # g = 0 items (guard)
    u = np.random.default_rng(5).random(160)
    ref, probs, ref_inv, capped = paced_reference(z, u, **cfg)
    assert 0 < ref.sum() and (ref.sum() < 160 or cfg.get("q") == 1.0)
    if cfg.get("q") == 0.5:
        assert capped > 20, "the check needs capped items"
    # no uniform sits within rounding of its probability (else equality could not be asked for)
    assert np.min(np.abs(u - probs)) > 1e-9
    items = PacedVeSSAL(**cfg)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal([items.observe(zi, rng=rng) for zi in z], ref)
    for size in (1, 37, 160):
        chunks = PacedVeSSAL(**cfg)
        np.testing.assert_array_equal(run_chunks(chunks, z, np.random.default_rng(5), size), ref)
        np.testing.assert_allclose(chunks.state_dict()["sigma_inv"], ref_inv, rtol=1e-8, atol=1e-8)
        assert chunks.n_queried == ref.sum() and chunks.t == 160


def test_blocks_longer_than_the_internal_block_equal_items():
    z = heavy(600, 5, seed=2)
    a = PacedVeSSAL(q=0.25, window=50).observe_many(z, rng=np.random.default_rng(1))
    sel, rng = PacedVeSSAL(q=0.25, window=50), np.random.default_rng(1)
    np.testing.assert_array_equal(a, [sel.observe(zi, rng=rng) for zi in z])


@settings(max_examples=60, deadline=None)
# forms are 0 or at least 1e-200: a form 1e-300 below the window's largest holds a few bits (subnormal after
# scaling), and the rate equation over such a spread is not solvable in floating point
@given(st.lists(st.one_of(st.just(0.0), st.floats(1e-200, 1e3)), min_size=1, max_size=30), st.floats(0.0, 1.0))
def test_calibrate_hits_the_rate(forms, rate):
    v = np.asarray(forms)
    c = calibrate(v, rate)
    positive = np.count_nonzero(v > 0)
    if math.isinf(c) and rate * v.size < positive:  # c overflows: the exact scale is beyond the largest float
        assert math.isinf(plain_scale(v, rate))
    elif rate * v.size >= positive:
        assert math.isinf(c)
    else:
        assert np.mean(np.minimum(c * v, 1.0)) == pytest.approx(rate, rel=1e-9, abs=1e-12)
        assert c == pytest.approx(plain_scale(v, rate), rel=1e-9)
    # the probabilities over the forms average to the rate in every case
    p = [paced_probability(f, v, rate) for f in v]
    assert np.mean(p) == pytest.approx(rate, rel=1e-9, abs=1e-12)


def test_leave_one_out_forms_are_sherman_morrison():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(4, 3))
    sigma = 0.5 * np.eye(3) + g.T @ g  # every row chosen
    forms = np.einsum("ij,jk,ik->i", g, np.linalg.inv(sigma), g)
    loo = [g[j] @ np.linalg.inv(sigma - np.outer(g[j], g[j])) @ g[j] for j in range(4)]
    np.testing.assert_allclose(leave_one_out_forms(forms, np.ones(4, dtype=bool)), loo, rtol=1e-10)
    np.testing.assert_array_equal(leave_one_out_forms(forms, np.zeros(4, dtype=bool)), forms)


# -- the rate holds where the published normaliser front-loads -----------------------------------------------


def gradient_stream(n, d=64, k=10, seed=0):
    """Gradient embeddings (p − e_ŷ) ⊗ h with D = k·d = 640, from a 32-dimensional latent (benchmarks/stream.py)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(32, d)) / np.sqrt(32)
    h = np.maximum(rng.normal(size=(n, 32)) @ w + 0.1 * rng.normal(size=(n, d)), 0.0)
    logits = h @ (rng.normal(size=(d, k)) * 2 / np.sqrt(d))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return grad_features(p / p.sum(axis=1, keepdims=True), h)


def drift(decisions, q):
    """max_t |queries among the first t − q·t| / window: how far the window runs ahead of (or behind) its plan."""
    return float(np.max(np.abs(np.cumsum(decisions) - q * np.arange(1, decisions.size + 1)))) / decisions.size


RATE_TOL = 0.03  # about 1.7 binomial standard deviations of a 488-item window at q = 0.2
DRIFT_TOL = 0.04


def test_rate_holds_on_every_window_where_the_published_one_front_loads():
    z = gradient_stream(4 * 488, seed=0)
    q = 0.2
    for w in range(4):  # the "official" protocol: a fresh selector every window
        win = z[w * 488 : (w + 1) * 488]
        published = VeSSAL(q=q).observe_many(win, rng=np.random.default_rng(w))
        paced = PacedVeSSAL(q=q).observe_many(win, rng=np.random.default_rng(w))
        assert published.mean() > q + 0.05, f"window {w}: the published rate {published.mean():.3f} should overshoot"
        assert drift(published, q) > 0.05
        assert abs(paced.mean() - q) <= RATE_TOL, f"window {w}: paced rate {paced.mean():.3f}"
        assert drift(paced, q) <= DRIFT_TOL, f"window {w}: paced drift {drift(paced, q):.3f}"
        # with a budget both spend exactly k = q·window, but the published sampler spends it early
        k = round(q * 488)
        pub_b = VeSSAL(budget=k, length=488).observe_many(win, rng=np.random.default_rng(w))
        paced_b = PacedVeSSAL(budget=k, length=488).observe_many(win, rng=np.random.default_rng(w))
        assert pub_b.sum() == paced_b.sum() == k
        assert drift(paced_b, q) <= 0.025 and drift(pub_b, q) >= 0.035


def test_rate_holds_on_a_sorted_stream():
    z = gradient_stream(2000, seed=1)
    z = z[np.argsort(np.linalg.norm(z, axis=1))]  # drift: small gradients first, large last
    for q in (0.05, 0.2):
        d = PacedVeSSAL(q=q).observe_many(z, rng=np.random.default_rng(2))
        for a in range(0, 2000, 500):
            assert abs(d[a : a + 500].mean() - q) <= RATE_TOL + 0.01, f"q={q}, items {a}..{a + 500}: {d[a:a + 500].mean()}"


# -- the volume-sampling preference is kept ------------------------------------------------------------------


def test_larger_quadratic_forms_are_queried_more_often():
    """Over many uniforms, an item's query frequency rises with its norm (its form under the first Σ̂⁻¹ = I/λ),
    as for the published sampler; stream-uniform shows no such trend."""
    z = heavy(300, 40, seed=3)
    norms = (z**2).sum(axis=1)
    freq = {name: np.zeros(300) for name in ("paced", "published", "uniform")}
    for seed in range(60):
        freq["paced"] += PacedVeSSAL(q=0.1).observe_many(z, rng=np.random.default_rng(seed))
        freq["published"] += VeSSAL(q=0.1).observe_many(z, rng=np.random.default_rng(seed))
        freq["uniform"] += StreamUniform(q=0.1).observe_many(z, rng=np.random.default_rng(seed))
    rho = {name: spearmanr(norms, f).statistic for name, f in freq.items()}
    assert rho["paced"] > 0.6 and rho["published"] > 0.6, rho
    assert abs(rho["uniform"]) < 0.2, rho
    assert rho["paced"] > rho["published"] - 0.1, rho
    assert freq["paced"].sum() / 60 == pytest.approx(30, rel=0.1)  # and at the rate


# -- contract, validation, registry -------------------------------------------------------------------------


def test_contract():
    def grad_z(n, rng):
        logits = rng.normal(size=(n, 3)) * 2.0
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return grad_features(p / p.sum(axis=1, keepdims=True), np.maximum(rng.normal(size=(n, 4)), 0.0))

    check_stream_selector_contract(lambda **r: PacedVeSSAL(window=30, **r), grad_z)
    check_stream_selector_contract(lambda **r: PacedVeSSAL(embedding="pen", pace=None, **r),
                                   lambda n, rng: np.maximum(rng.normal(size=(n, 6)), 0.0))


def test_validation_and_state():
    for kw, match in (({"window": 0}, "window"), ({"pace": 0}, "pace"), ({"max_boost": 0.5}, "max_boost.*0.5"),
                      ({"lam": -1}, "lam"), ({"embedding": "x"}, "embedding")):
        with pytest.raises(ValueError, match=match):
            PacedVeSSAL(q=0.1, **kw)
    sel = PacedVeSSAL(q=0.3, window=8)
    sel.observe_many(heavy(20, 3), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="window=8; this selector has 9"):
        PacedVeSSAL(q=0.3, window=9).load_state_dict(sel.state_dict())
    bad = sel.state_dict() | {"window_forms": np.zeros(3)}
    with pytest.raises(ValueError, match="window_forms"):
        PacedVeSSAL(q=0.3, window=8).load_state_dict(bad)
    with pytest.raises(ValueError, match="lacks"):
        PacedVeSSAL(q=0.3, window=8).load_state_dict({"t": 0})
    with pytest.raises(ValueError, match="max_dim"):
        PacedVeSSAL(q=0.3, max_dim=4).observe_many(heavy(3, 5), rng=np.random.default_rng(0))
    made = make_stream_selector("vessal_paced", q=0.2, lam=0.1)
    assert isinstance(made, PacedVeSSAL) and made.q == 0.2 and made.lam == 0.1 and made.name == "vessal_paced"
    assert make_stream_selector("vessal_paced_pen", q=0.2).name == "vessal_paced_pen"


# -- the stream loop under both protocols, resume ------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["official", "global"])
def test_stream_loop_and_resume(tmp_path, protocol):
    x, y = blobs(200, 5, 3, seed=1)
    kw = {"order": "iid", "segment": 50, "initial": 10, "budget": 40, "seed": 2, "protocol": protocol}
    whole = list(stream_segments(CentroidModel, PacedVeSSAL(window=30), x, y, **kw))
    assert sum(r.queries for r in whole) <= 40 and all(r.protocol == protocol for r in whole)
    if protocol == "official":
        assert all(abs(r.queries - 10) <= 2 for r in whole[1:-1]), [r.queries for r in whole]
    for cut in (1, 2, 3):
        ck = tmp_path / f"ck{cut}.npz"
        first = list(stream_segments(CentroidModel, PacedVeSSAL(window=30), x, y, checkpoint=ck, **kw))[:cut]
        rest = list(stream_segments(CentroidModel, PacedVeSSAL(window=30), x, y, resume=first, checkpoint=ck, **kw))
        assert [r.outcome() for r in first + rest] == [r.outcome() for r in whole]
        replayed = list(stream_segments(CentroidModel, PacedVeSSAL(window=30), x, y, resume=whole[:cut], **kw))
        assert [r.outcome() for r in whole[:cut] + replayed] == [r.outcome() for r in whole]
    fixed = list(stream_segments(CentroidModel, PacedVeSSAL(q=0.2, window=30), x, y,
                                 **(kw | {"budget": None})))
    assert all(r.target_rate == 0.2 for r in fixed[1:])


def test_cli_stream_vessal_paced(tmp_path, capsys):
    base = ["stream", "--dataset", "digits", "--max-train", "400", "--initial", "20", "--segment", "95", "--epochs",
            "1", "--hidden", "8", "--out", str(tmp_path), "--no-progress", "--selector", "vessal_paced"]
    for protocol, rate in (("official", ["--q", "0.2"]), ("global", ["--budget", "60"])):
        assert main(base + rate + ["--protocol", protocol]) == 0
        out = capsys.readouterr().out
        (path,) = tmp_path.glob(f"stream_digits_vessal_paced_iid_seed0_{protocol}_*.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert {r["protocol"] for r in rows} == {protocol} and len(rows) == 5
        if protocol == "official":
            assert all(abs(r["rate"] - 0.2) <= 0.06 for r in rows[1:]), [r["rate"] for r in rows]
        else:
            assert sum(r["queries"] for r in rows) <= 60
        assert "queried" in out
        assert main(base + rate + ["--protocol", protocol]) == 0  # resumed: no new rows
        assert "(resumed)" in capsys.readouterr().out
        assert len(path.read_text().splitlines()) == len(rows)
    with pytest.raises(ValueError, match="vessal_pacd"):
        make_stream_selector("vessal_pacd")
