# One-command setup and run. `make test` and `make demo` each create .venv and
# install everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip install -q --disable-pip-version-check
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.cscnn-installed

.PHONY: install test test-slow test-all demo lint bench docs docs-serve clean

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS)
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -c $(CONSTRAINTS) -e ".[dev]"
	@# Baselines (escnn builds py3nj with gfortran): optional, tests skip without them.
	@command -v gfortran >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq gfortran) >/dev/null 2>&1 || echo "note: gfortran unavailable; escnn baseline may not build"
	$(PIP) -c $(CONSTRAINTS) -e ".[baselines]" || echo "note: baselines extra failed to install; their tests will be skipped"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m ruff check src tests benchmarks
	$(VPY) -m pytest -q

test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow

test-all: $(STAMP)
	$(VPY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(VPY) -m ruff check src tests benchmarks

demo: $(STAMP)
	$(VPY) -m cscnn.demo

bench: $(STAMP)
	$(VPY) benchmarks/conv_speed.py

# The documentation site (guides, results, API reference) into site/; any warning is an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs serve --strict

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
