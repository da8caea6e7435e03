# Two commands on a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: demo run test lint typecheck unit bench bench-blackbox bench-scale install install-test schema

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

# Side by side with Debian's blackbox_exporter, and 1k/10k/50k checks (bench/README.md); both
# apt-get install nginx (and prometheus-blackbox-exporter) when missing.
bench-blackbox: install-test
	$(BIN)/python -m bench.blackbox_compare $(BENCH_ARGS)

bench-scale: install-test
	$(BIN)/python -m bench.scale $(BENCH_ARGS)
