# semcom: the whole set-up in one command.
#   make quickstart   venv + install (first time, or when pyproject.toml changed), then the quickstart
#   make test         the same set-up, then the test suite
# Needs only Python >= 3.11 and make. The venv is .venv (override: make test VENV=.venv-ci).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.semcom-installed
# A CPU build of PyTorch, installed before the project so that its bare `torch>=2.9`
# requirement does not pull a multi-GB CUDA build. Any torch >= 2.9 works.
TORCH ?= torch==2.13.0
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install quickstart test bench clean clean-kernels

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "semcom needs Python >= 3.11; this is " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalls only when pyproject.toml is newer than the stamp (the project itself is editable).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project into it (idempotent)

quickstart: $(STAMP) ## install if needed, then run scenarios/quickstart.yaml (a rerun reuses its results)
	$(BIN)/semcom run scenarios/quickstart.yaml --resume

test: $(STAMP) ## install if needed, then run the test suite
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP) ## CPU benchmarks against Sionna and the exact solver (long; see BENCHMARKS.md)
	$(BIN)/python benchmarks/bench_ber.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_optim.py $(BENCH_ARGS)

clean: ## remove the venv and caches (never results/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./results -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

clean-kernels: ## drop Numba's cached kernels (after editing compiled code or switching branches)
	find channels optim semcom \( -name '*.nbi' -o -name '*.nbc' \) -delete
