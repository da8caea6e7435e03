# Two commands on a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: demo run test lint typecheck unit bench bench-blackbox bench-scale bench-status bench-instructions install install-test schema lock messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Every dependency at the exact version (and file hash) in requirements.lock, so a fresh clone
# installs what CI tested; then this package itself, and the checks fail if pyproject.toml
# wants something the lock lacks (run `make lock`). The lock holds the test tools too: one
# file, one set of versions.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps -e '.[test,postgres]'
	$(BIN)/pip check
	$(BIN)/python .ci/check_lock.py
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Pin what pyproject.toml asks for into requirements.lock (keeps existing pins, adds new
# dependencies); `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release.
# Commit the result: CI and `make` install exactly that.
LOCK_ARGS ?=
lock: | $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra postgres --universal \
		--python-version 3.11 --generate-hashes --quiet $(LOCK_ARGS) -o requirements.lock

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

# incidents/locale/messages.pot from the code and templates (pybabel extract with babel.cfg,
# sorted, no locations, no dates: the same code gives the same file; tests/test_i18n.py checks
# it). Then translate the new entries in incidents/locale/de/LC_MESSAGES/messages.po.
messages: install-test
	$(BIN)/python .ci/extract_messages.py

bench: install-test
	$(BIN)/python -m bench.probe_throughput $(BENCH_ARGS)

# Side by side with Debian's blackbox_exporter, and 1k/10k/50k checks (bench/README.md); both
# apt-get install nginx (and prometheus-blackbox-exporter) when missing.
bench-blackbox: install-test
	$(BIN)/python -m bench.blackbox_compare $(BENCH_ARGS)

bench-scale: install-test
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

# Instructions per http probe under valgrind's callgrind, immune to the machine's load
# (bench/lean_http_instructions.py; BENCH_ARGS="--code main=PYTHON:DIR --code ..." compares).
bench-instructions: install-test
	$(BIN)/python -m bench.lean_http_instructions $(BENCH_ARGS)

# A burst of status-page readers while 10,000 checks run, beside nginx serving the page as a file.
bench-status: install-test
	$(BIN)/python -m bench.status_burst $(BENCH_ARGS)
