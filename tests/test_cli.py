import json

import pytest

from pickwise.cli import main


@pytest.mark.slow
def test_run_writes_records_table_and_figure(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["run", "--dataset", "digits", "--model", "mlp", "--strategy", "entropy", "--initial", "20", "--k", "10",
            "--rounds", "2", "--seed", "0", "--epochs", "5", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "labelled" in text and "accuracy" in text
    jsonl = out / "digits_mlp_entropy_k10_seed0.jsonl"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows[0]["type"] == "header" and [r["n_labeled"] for r in rows[1:]] == [20, 30, 40]
    assert (out / "digits_mlp_entropy_k10_seed0.png").stat().st_size > 1000
    # a rerun resumes from the records: nothing is recomputed, the same rows come back
    assert main(argv) == 0
    assert jsonl.read_text().splitlines() == [json.dumps(r, sort_keys=True) for r in rows]


def test_bad_names_give_clear_errors(tmp_path, capsys):
    assert main(["run", "--strategy", "nonsense", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "'nonsense'" in capsys.readouterr().err
    assert main(["run", "--dataset", "nope", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["run", "--strategy", "bald", "--dropout", "0", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "dropout" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_compares_strategies(tmp_path, capsys):
    argv = ["demo", "--strategies", "random,margin", "--seeds", "2", "--rounds", "1", "--k", "10", "--epochs", "3",
            "--out", str(tmp_path), "--jobs", "1", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "random" in text and "margin" in text and "final accuracy" in text
    assert (tmp_path / "demo.png").exists()


@pytest.mark.slow
def test_stream_command_writes_records_and_resumes(tmp_path, capsys):
    argv = ["stream", "--dataset", "digits", "--selector", "vessal", "--budget", "40", "--segment", "400",
            "--order", "pc", "--initial", "20", "--epochs", "5", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "queried 40 of" in text
    (jsonl,) = tmp_path.glob("stream_digits_vessal_pc_seed0_*.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows[0]["segment"] == 0 and sum(r["queries"] for r in rows) == 40
    assert main(argv) == 0  # everything resumed: no new rows
    assert len(jsonl.read_text().splitlines()) == len(rows)
    assert main(["stream", "--dataset", "digits", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--budget" in capsys.readouterr().err
