import subprocess
import sys


def test_import_pulls_neither_torch_nor_matplotlib():
    code = "import sys, pickwise; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_no_global_random_state_in_library():
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "pickwise"
    bad = re.compile(
        r"np\.random\.(seed|rand|randn|randint|choice|shuffle|permutation|uniform|normal)\(|"
        r"(^|[^.\w])random\.(seed|random|choice|shuffle|randint)\("
    )
    hits = [f"{p}:{i}" for p in src.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert hits == []
