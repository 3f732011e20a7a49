import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import pickwise
from pickwise import catalog
from pickwise.scores import margin

# every module whose __all__ is public API; pickwise.neighbors is left out until import_faiss has
# a docstring (reported to its owner)
PUBLIC_MODULES = [
    "pickwise", "pickwise.strategies", "pickwise.adapters", "pickwise.stream", "pickwise.select", "pickwise.data",
    "pickwise.scores", "pickwise.catalog", "pickwise.precomputed", "pickwise.neighbors", "pickwise.encoders",
]


@pytest.mark.parametrize("name", catalog.strategy_names())
def test_catalog_names_round_trip_and_match_a_class_exported_from_pickwise(name):
    obj = catalog.make_strategy(name)
    assert catalog.strategy_name(obj) == name
    cls_name, _ = catalog.STRATEGY_TABLE[name]
    assert type(obj).__name__ == cls_name
    assert getattr(pickwise, cls_name) is type(obj)
    assert cls_name in pickwise.__all__


def test_table_covers_exactly_the_catalog():
    assert sorted(catalog.STRATEGY_TABLE) == catalog.strategy_names()


def test_strategy_name_reads_kinds_not_options():
    assert catalog.strategy_name(pickwise.BADGE(dtype="float32")) == "badge"
    assert catalog.strategy_name(pickwise.MCDropout(score="bald", n_draws=7)) == "bald"
    assert catalog.strategy_name(pickwise.Uncertainty(score=margin)) == "margin"  # a score function by its name
    assert catalog.strategy_name(pickwise.QBC(score="kl_to_consensus")) == "qbc_kl"
    inner = pickwise.MCDropout(score="bald")
    assert catalog.strategy_name(pickwise.StochasticBatch(inner, mode="power")) == "stochastic_bald"
    with pytest.raises(ValueError, match="no catalog name"):
        catalog.strategy_name(pickwise.StochasticBatch(inner, mode="softmax"))
    with pytest.raises(ValueError, match="no catalog name"):
        catalog.strategy_name(pickwise.Uncertainty(score=lambda p: p[:, 0]))
    with pytest.raises(ValueError, match="Subsample"):
        catalog.strategy_name(pickwise.Subsample(pickwise.Uncertainty(), alpha=10))


def _public(module_name):
    mod = importlib.import_module(module_name)
    for name in mod.__all__:
        if name == "__version__":
            continue
        yield module_name, name, getattr(mod, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name):
    mod = importlib.import_module(module_name)
    assert (mod.__doc__ or "").strip(), f"{module_name} has no module docstring"
    missing = []
    for _, name, obj in _public(module_name):
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj) or callable(obj):
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(name)
    assert missing == [], f"{module_name}: no docstring on {missing}"


def test_lazy_exports_resolve_and_dir_lists_them():
    assert pickwise.SklearnClassifier.__name__ == "SklearnClassifier"
    assert callable(pickwise.load)
    assert {"BADGE", "TorchClassifier", "load"} <= set(dir(pickwise))
    with pytest.raises(AttributeError, match="no_such_name"):
        pickwise.no_such_name  # noqa: B018


def test_import_pickwise_stays_light():
    code = ("import sys, pickwise; print(sorted(m for m in ('torch', 'matplotlib', 'fastapi', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_py_typed_marker_ships_in_the_package():
    assert (Path(pickwise.__file__).parent / "py.typed").is_file()


def test_python_dash_m_pickwise_is_the_command(tmp_path):
    version = subprocess.run([sys.executable, "-m", "pickwise", "--version"], capture_output=True, text=True,
                             check=True, cwd=tmp_path)
    assert version.stdout.strip() == f"pickwise {pickwise.__version__}"
    bad = subprocess.run([sys.executable, "-m", "pickwise", "run", "--strategy", "nonsense", "--out", str(tmp_path),
                          "--no-progress"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "'nonsense'" in bad.stderr
