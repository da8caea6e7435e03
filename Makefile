# Two commands on a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: demo run test lint typecheck unit bench install install-test schema

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/monitor demo $(DEMO_ARGS)

run: install
	$(BIN)/monitor run --config config/monitor.yaml

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

unit: install-test
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole gate: lint, types, then every test.
test: lint typecheck unit

schema: install
	$(BIN)/monitor schema --write

bench: install-test
	$(BIN)/python -m bench.probe_throughput $(BENCH_ARGS)
