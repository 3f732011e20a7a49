"""Every stream selector passes the shared stream contract."""

import numpy as np
import pytest
from stream_contract import check_stream_selector_contract

from pickwise.stream import KroneckerSketch, StreamUncertainty, StreamUniform, VeSSAL, grad_features


def _probs(n, rng, k=3):
    logits = rng.normal(size=(n, k)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def grad_z(n, rng):
    return grad_features(_probs(n, rng), np.maximum(rng.normal(size=(n, 4)), 0.0))


def pen_z(n, rng):
    return np.maximum(rng.normal(size=(n, 6)), 0.0)


def sketched_z(n, rng):
    return grad_features(_probs(n, rng), rng.normal(size=(n, 40)), sketch=KroneckerSketch(n_h=5, seed=3))


# VeSSAL's realised rate under a fixed q overshoots q while its first ~D queries fill the space
# (p_t = q·gᵀΣ̂⁻¹g / tr(Σ̂⁻¹A_t) is large for items unlike the few chosen so far): a property of the
# published algorithm, measured in test_stream_vessal.py; its fixed-rate check is looser.
CASES = {
    "vessal": (lambda **r: VeSSAL(refresh_every=16, **r), grad_z, 8.0),
    "vessal_pen": (lambda **r: VeSSAL(embedding="pen", refresh_every=5, **r), pen_z, 8.0),
    "vessal_sketch": (lambda **r: VeSSAL(**r), sketched_z, 8.0),
    "uniform": (lambda **r: StreamUniform(**r), pen_z, 4.0),
    "uncertainty": (lambda **r: StreamUncertainty(window=50, **r), _probs, 4.0),
    "uncertainty_margin": (lambda **r: StreamUncertainty(score="margin", **r), _probs, 4.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_contract(name):
    make, make_z, slack = CASES[name]
    check_stream_selector_contract(make, make_z, q_slack=slack)
