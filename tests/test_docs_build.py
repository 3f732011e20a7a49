import re
import subprocess
import sys
from pathlib import Path

import pytest

from pickwise import catalog

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES_MD = ROOT / "docs" / "strategies.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", STRATEGIES_MD.read_text(encoding="utf-8"), flags=re.S)


def _examples():
    """(catalog name, code) for each '### name' section of docs/strategies.md."""
    text = STRATEGIES_MD.read_text(encoding="utf-8")
    return re.findall(r"^### (\w+)\n+```python\n(.*?)```", text, flags=re.S | re.M)


def test_one_example_per_catalog_strategy():
    names = [name for name, _ in _examples()]
    assert sorted(names) == catalog.strategy_names()
    assert len(_python_blocks()) == len(names) + 1  # plus the shared set-up block


def test_every_example_runs(tmp_path):
    setup = _python_blocks()[0]
    examples = _examples()
    # one process: the set-up once, then each example in a fresh copy of its namespace
    script = ["import copy", "SETUP = " + repr(setup), "BLOCKS = " + repr([code for _, code in examples]),
              "base = {}", "exec(SETUP, base)",
              "for i, code in enumerate(BLOCKS):",
              "    ns = dict(base)",
              "    ns['rng'] = copy.deepcopy(base['rng'])",
              "    exec(code, ns)",
              "    print('ran', i)"]
    path = tmp_path / "examples.py"
    path.write_text("\n".join(script))
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ran ") == len(examples)


def test_mkdocs_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(site)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    catalog_page = (site / "api" / "catalog" / "index.html").read_text(encoding="utf-8")
    assert "strategy_name" in catalog_page and "make_strategy" in catalog_page
    assert "load_file" in (site / "api" / "data" / "index.html").read_text(encoding="utf-8")
    assert (site / "strategies" / "index.html").is_file()
