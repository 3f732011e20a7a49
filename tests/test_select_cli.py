import csv

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise.cli import main
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed
from pickwise.strategies import MCDropout, Uncertainty


@pytest.fixture
def files(tmp_path):
    x, _ = blobs(50, 5, 3, seed=3)
    m = FakeModel(5, 3, seed=1)
    np.save(tmp_path / "probs.npy", m.predict_proba(x))
    np.save(tmp_path / "emb.npy", m.embed(x))
    np.save(tmp_path / "mc.npy", m.predict_proba_mc(x, 6, seed=2))
    np.save(tmp_path / "labeled.npy", np.array([0, 5, 9]))
    return tmp_path, m, x


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_select_margin_matches_the_strategy_on_the_model(files):
    d, model, x = files
    out = d / "picks.csv"
    assert main(["select", "--probs", str(d / "probs.npy"), "--labeled", str(d / "labeled.npy"),
                 "--strategy", "margin", "--k", "7", "--out", str(out)]) == 0
    rows = _read(out)
    pool = Pool.empty(50).label([0, 5, 9], [0, 0, 0])
    expected = Uncertainty(score="margin").select(model, x, pool, 7, rng=np.random.default_rng(0))
    assert [int(r["index"]) for r in rows] == expected.tolist()
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_select_reads_memory_mapped_mc_draws(files):
    d, model, x = files
    out = d / "bald.csv"
    assert main(["select", "--mc-probs", str(d / "mc.npy"), "--strategy", "bald", "--k", "4", "--out", str(out)]) == 0
    rows = _read(out)
    assert len(rows) == 4 and len({r["index"] for r in rows}) == 4
    pre = Precomputed(mc_probs=np.load(d / "mc.npy", mmap_mode="r"))
    expected = MCDropout(score="bald", n_draws=6).select(pre, pre.x, Pool.empty(50), 4, rng=np.random.default_rng(0))
    assert [int(r["index"]) for r in rows] == expected.tolist()


def test_select_errors(files, capsys):
    d, _, _ = files
    assert main(["select", "--probs", str(d / "nope.npy"), "--strategy", "margin", "--k", "3", "--out", str(d / "o.csv")]) == 2
    assert "nope.npy" in capsys.readouterr().err
    assert main(["select", "--embeddings", str(d / "emb.npy"), "--strategy", "margin", "--k", "3", "--out", str(d / "o.csv")]) == 2
    assert "needs probs" in capsys.readouterr().err
    assert main(["select", "--probs", str(d / "probs.npy"), "--strategy", "margin", "--k", "999", "--out", str(d / "o.csv")]) == 2
    assert "999" in capsys.readouterr().err
