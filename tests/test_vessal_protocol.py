"""Issue 13, item 1: the stream protocols "official" (a fresh selector and budget k per window, as the
VeSSAL authors' code) and "global" (one selector, one budget over the stream), the realised and
target rates in every record, resume under both, the CLI's --protocol and the bench grids' key."""

import json

import numpy as np
import pytest
from fakes import CentroidModel as Centroid
from fakes import blobs

from pickwise.bench import parse_grid
from pickwise.bench.config import ConfigError
from pickwise.cli import main
from pickwise.stream import (
    SegmentRecord,
    StreamUniform,
    VeSSAL,
    save_segments,
    stream_segments,
)
from pickwise.stream.loop import fit_seed
from pickwise.utils import derive_rng

N, SEG, INIT = 150, 40, 10


@pytest.fixture
def data():
    return blobs(N, 5, 3, seed=1)


def setting(data, seed):
    """An explicit arrival order and initial labels, so the reference needs no knowledge of the loop's draws."""
    order = np.random.default_rng(seed + 100).permutation(N)
    initial = np.sort(order[-INIT:])  # not part of the stream
    stream = order[~np.isin(order, initial)]
    return order, initial, stream


def run(data, protocol, *, seed=3, budget=30, template=None, **kw):
    x, y = data
    order, initial, _ = setting(data, seed)
    sel = template if template is not None else VeSSAL(q=0.5)
    return list(stream_segments(Centroid, sel, x, y, order=order, initial=initial, segment=SEG, budget=budget,
                                seed=seed, protocol=protocol, **kw))


def reference(data, records, protocol, *, seed=3, budget=30):
    """Plain re-run: per window, the model refitted on the recorded labels, then VeSSAL fed the window with the
    loop's uniforms — a fresh VeSSAL(budget=k_s, length=window) every window ("official"), or one
    VeSSAL(budget=B, length=L) carried over all windows ("global")."""
    x, y = data
    _, initial, stream = setting(data, seed)
    length = stream.size
    labels = list(initial)
    carried = VeSSAL(budget=budget, length=length)
    decisions = []
    for s in range(1, len(records)):
        model = Centroid().fit(x[labels], y[labels], seed=fit_seed(seed, s - 1))
        lo, hi = (s - 1) * SEG, min(s * SEG, length)
        window = stream[lo:hi]
        k = int(np.floor(budget * hi / length)) - int(np.floor(budget * lo / length))
        sel = VeSSAL(budget=k, length=window.size) if protocol == "official" else carried
        z = sel.featurize(model, x[window])
        chosen = sel.observe_many(z, rng=derive_rng(seed, 3, s))
        decisions.append((k, tuple(int(i) for i in window[chosen])))
        labels += list(window[chosen])
    return decisions


@pytest.mark.parametrize("seed", [3, 7])
def test_official_is_a_fresh_selector_every_window(data, seed):
    recs = run(data, "official", seed=seed)
    ref = reference(data, recs, "official", seed=seed)
    assert [r.queried for r in recs[1:]] == [q for _, q in ref]
    assert sum(k for k, _ in ref) == 30  # the windows share the budget exactly
    for r, (k, _) in zip(recs[1:], ref):
        assert r.queries <= k
        assert r.target_rate == pytest.approx(k / r.window)  # the authors' rate at a round's start: k / window
        assert r.protocol == "official"
    # the carried-state run decides differently on the same data (else the test could not tell them apart)
    assert [r.queried for r in recs] != [r.queried for r in run(data, "global", seed=seed)]


def test_global_is_one_selector_and_one_budget(data):
    recs = run(data, "global")
    ref = reference(data, recs, "global")
    assert [r.queried for r in recs[1:]] == [q for _, q in ref]
    _, _, stream = setting(data, 3)
    used = 0
    for r in recs[1:]:
        seen = (r.segment - 1) * SEG
        assert r.target_rate == pytest.approx((30 - used) / (stream.size - seen))
        assert r.protocol == "global"
        used += r.queries


@pytest.mark.parametrize("protocol", ["official", "global"])
def test_realised_rate_is_queries_over_window(data, protocol):
    recs = run(data, protocol, budget=None, template=VeSSAL(q=0.3))
    assert recs[0].target_rate is None and recs[0].rate == 0.0
    for r in recs[1:]:
        assert r.rate == r.queries / r.window
        assert r.target_rate == 0.3  # a fixed rate: the target is q under both protocols
    back = [SegmentRecord.from_dict(json.loads(json.dumps(r.to_dict()))) for r in recs]
    assert back == recs


def test_old_records_without_the_fields_still_load():
    old = {"segment": 1, "items_seen": 40, "window": 40, "queries": 4, "n_labels": 14, "rate": 0.1, "metrics": {},
           "fit_seconds": 0.0, "embed_seconds": 0.0, "select_seconds": 0.0, "queried": [1, 2, 3, 4]}
    r = SegmentRecord.from_dict(old)
    assert r.target_rate is None and r.protocol is None and r.stop_kappa is None


@pytest.mark.parametrize("protocol", ["official", "global"])
def test_resume_equals_uninterrupted(data, tmp_path, protocol):
    whole = run(data, protocol)
    for cut in (1, 2, len(whole) - 1):
        Centroid.fits = 0
        rest = run(data, protocol, resume=whole[:cut])
        assert [r.outcome() for r in whole[:cut] + rest] == [r.outcome() for r in whole]
        # official: the next window's selector is fresh, so nothing is replayed (one refit, then one per window)
        assert Centroid.fits == (1 if protocol == "official" else cut) + len(rest)
    path = tmp_path / "rec.jsonl"
    save_segments(whole[:3], path)
    rest = run(data, protocol, resume=path)
    assert [r.outcome() for r in whole[:3] + rest] == [r.outcome() for r in whole]


def test_records_of_another_protocol_are_refused(data):
    official = run(data, "official")
    with pytest.raises(ValueError, match="protocol='official'.*protocol='global'"):
        run(data, "global", resume=official[:2])
    global_ = run(data, "global")
    with pytest.raises(ValueError, match="protocol='global'.*protocol='official'"):
        run(data, "official", resume=global_[:2])
    # records written before the field existed were "global": they resume a global run, not an official one
    old = [SegmentRecord.from_dict({k: v for k, v in r.to_dict().items() if k not in ("protocol", "target_rate")})
           for r in global_[:2]]
    assert [r.queried for r in old + run(data, "global", resume=old)] == [r.queried for r in global_]
    with pytest.raises(ValueError, match="protocol='global'"):
        run(data, "official", resume=old)


def test_protocol_is_checked(data):
    with pytest.raises(ValueError, match="protocol must be one of official, global, rescan; got 'paper'"):
        run(data, "paper")
    with pytest.raises(ValueError, match="protocol='official' restarts"):
        run(data, "official", budget=None, template=VeSSAL(budget=20, length=N - INIT))
    recs = run(data, "official", budget=None, template=StreamUniform(q=0.25))
    assert all(r.target_rate == 0.25 for r in recs[1:])


def test_cli_protocol_is_in_the_file_name_and_resumes(tmp_path, capsys):
    base = ["stream", "--dataset", "digits", "--max-train", "300", "--initial", "20", "--budget", "40", "--segment",
            "70", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--no-progress"]
    for protocol in ("official", "global"):
        assert main(base + ["--protocol", protocol]) == 0
        out = capsys.readouterr().out
        header = next(line for line in out.splitlines() if line.lstrip().startswith("segment"))
        assert header.split()[4:6] == ["rate", "target"]
        (path,) = tmp_path.glob(f"stream_digits_vessal_iid_seed0_{protocol}_*.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert {r["protocol"] for r in rows} == {protocol}
        assert all(r["rate"] == r["queries"] / r["window"] for r in rows[1:])
        assert main(base + ["--protocol", protocol]) == 0  # everything resumed: no new rows
        assert "(resumed)" in capsys.readouterr().out
        assert len(path.read_text().splitlines()) == len(rows)
    official, global_ = (next(tmp_path.glob(f"*_{p}_*.jsonl")) for p in ("official", "global"))
    assert official.name.rsplit("_", 1)[1] != global_.name.rsplit("_", 1)[1]  # the hash differs too
    with pytest.raises(SystemExit) as exc:  # argparse's choices: one line on stderr, status 2
        main(base + ["--protocol", "paper"])
    assert exc.value.code == 2
    assert "pickwise stream: error: argument --protocol: invalid choice: 'paper'" in capsys.readouterr().err


GRID = {"name": "g", "seeds": [0], "datasets": ["digits"], "batch_sizes": [10], "rounds": 3, "stream": ["vessal"]}


def test_grid_protocol_key():
    plain = parse_grid(GRID).cells[0]
    official = parse_grid({**GRID, "stream_options": {"protocol": "official"}}).cells[0]
    global_ = parse_grid({**GRID, "stream_options": {"protocol": "global"}}).cells[0]
    assert "protocol" not in plain.options  # absent: the cell's id is what it was before the key existed
    assert official.options["protocol"] == "official"
    assert len({plain.id, official.id, global_.id}) == 3
    with pytest.raises(ConfigError,
                       match=r"stream_options.protocol = 'paper': must be one of 'official', 'global', 'rescan'"):
        parse_grid({**GRID, "stream_options": {"protocol": "paper"}})


def rescan_reference(data, records, *, seed=3, budget=30, template=None):
    """Plain re-run of "rescan": round s refits on the recorded labels, then a fresh selector with the
    round's budget share k_s scans every stream item not yet labelled, in arrival order."""
    x, y = data
    _, initial, stream = setting(data, seed)
    length = stream.size
    labels = list(initial)
    out = []
    for s in range(1, len(records)):
        model = Centroid().fit(x[labels], y[labels], seed=fit_seed(seed, s - 1))
        items = stream[~np.isin(stream, labels)]
        lo, hi = (s - 1) * SEG, min(s * SEG, length)
        k = min(int(np.floor(budget * hi / length)) - int(np.floor(budget * lo / length)), items.size)
        sel = (template or VeSSAL()).clone(q=None, budget=k, length=items.size)
        chosen = sel.observe_many(sel.featurize(model, x[items]), rng=derive_rng(seed, 3, s))
        out.append((k, items.size, tuple(int(i) for i in items[chosen])))
        labels += list(items[chosen])
    return out


@pytest.mark.parametrize("template", [VeSSAL(q=0.5), StreamUniform(q=0.5)])
def test_rescan_scans_every_unlabelled_item_each_round(data, template):
    recs = run(data, "rescan", template=template)
    ref = rescan_reference(data, recs, template=template)
    assert [r.queried for r in recs[1:]] == [q for _, _, q in ref]
    _, _, stream = setting(data, 3)
    scanned, used = 0, 0
    for r, (k, n_scan, _) in zip(recs[1:], ref):
        assert r.window == n_scan == stream.size - used  # everything not yet labelled
        scanned += r.window
        assert r.items_seen == scanned and r.protocol == "rescan"
        assert r.target_rate == pytest.approx(k / n_scan)
        assert r.queries <= k
        used += r.queries
    if isinstance(template, StreamUniform):  # the adaptive rate reaches 1 when needed: exactly k_s per round
        assert [r.queries for r in recs[1:]] == [k for k, _, _ in ref]
    # round 1 may take items from anywhere in the stream, not only from its first window
    late = set(setting(data, 3)[2][SEG:].tolist())
    assert any(i in late for r in recs[1:2] for i in r.queried)


def test_rescan_resumes_to_the_uninterrupted_run(data, tmp_path):
    whole = run(data, "rescan")
    for cut in (1, 2, len(whole) - 1):
        rest = run(data, "rescan", resume=whole[:cut])
        assert [r.outcome() for r in whole[:cut] + rest] == [r.outcome() for r in whole]
    with pytest.raises(ValueError, match="protocol='rescan'.*protocol='official'"):
        run(data, "official", resume=whole[:2])


def test_cli_and_grid_take_rescan(tmp_path, capsys):
    base = ["stream", "--dataset", "digits", "--max-train", "300", "--initial", "20", "--budget", "40", "--segment",
            "70", "--epochs", "1", "--hidden", "8", "--out", str(tmp_path), "--no-progress", "--protocol", "rescan"]
    assert main(base) == 0
    (path,) = tmp_path.glob("stream_digits_vessal_iid_seed0_rescan_*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["window"] for r in rows[1:3]] == [280, 280 - rows[1]["queries"]]
    assert parse_grid({**GRID, "stream_options": {"protocol": "rescan"}}).cells[0].options["protocol"] == "rescan"
