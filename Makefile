# The two README commands, each working from a fresh clone:
#   make bench   creates .venv, installs dlbench (+ torch peer), runs the quick default suites, writes a report
#   make test    creates .venv, installs dlbench with the dev extras, runs the tests
PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/pip
PY      = $(VENV)/bin/python
# the CPU build of torch lies on this machine's disk; an unpinned torch pulls a multi-GB CUDA build
TORCH_PIN ?= torch==2.13.0
BUILD_DEPS = "setuptools>=69" wheel "Cython>=3.0" "numpy>=1.26"

.PHONY: bench test lint clean venv

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate pyproject.toml setup.py
	$(PIP) install -q $(BUILD_DEPS) "$(TORCH_PIN)"
	$(PIP) install -q --no-build-isolation -e ".[torch]"
	touch $@

# the dev extra on top of the editable install (no second build of the Cython extensions)
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) scripts/dev_requirements.py > $(VENV)/dev-requirements.txt
	$(PIP) install -q -r $(VENV)/dev-requirements.txt
	touch $@

venv: $(VENV)/.installed-dev

bench: $(VENV)/.installed
	$(VENV)/bin/dlbench run --quick
	$(VENV)/bin/dlbench report results/latest --format html --format md -o results/latest/
	@echo "report: results/latest/report.html and results/latest/report.md"

# pytest-benchmark runs in quick mode inside the test session and saves JSON under results/
test: $(VENV)/.installed-dev
	mkdir -p results
	$(PY) -m pytest -q -m "not slow" --benchmark-json=results/pytest-benchmark.json \
	  --benchmark-columns=min,median,iqr,rounds --benchmark-sort=fullname
	$(VENV)/bin/dlbench report results/pytest-benchmark.json --format md -o results/pytest-benchmark.md

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check dlbench kernels suites tests

clean:
	rm -rf build dist *.egg-info kernels/cython/*.c kernels/cython/*.so
