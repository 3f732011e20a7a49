# Two commands do all the set-up on a machine that has only Python:
#   make demo   - create .venv if missing, install pickwise with its extras, run the demo
#   make test   - same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned to the CPU build that pip finds first on this kind of machine; the
# range in pyproject (torch>=2.2,<2.14) is what pickwise itself supports.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test setup clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[torch,plot,data,faiss,label,encoders,distributed,dev]"
	$(PY) scripts/check_no_cuda.py
	bash scripts/install_browser.sh
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/pickwise demo --out runs/demo

test: setup
	$(PY) -m pytest -n 2 tests

clean:
	rm -rf $(VENV) runs build *.egg-info
