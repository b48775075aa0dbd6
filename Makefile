# CACT server. Quick start: `make run` (demo server), `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1
PYTEST_ARGS ?=

.PHONY: run test bench install install-test migrate demo clean help

help:
	@echo "make run    - install, migrate the SQLite database in var/, load the demo, serve on $(HOST):$(PORT)"
	@echo "make test   - install the test extras and run the whole test suite"
	@echo "make bench  - measure the figures recorded in docs/performance.md"
	@echo "variables   - HOST=0.0.0.0 make run (serve the LAN), PORT=8080, WORKERS=2"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

migrate: install
	$(BIN)/cact db upgrade

demo: migrate
	$(BIN)/cact demo

run: demo
	@echo ""
	@echo "  Petugas / staff : http://$(if $(filter 0.0.0.0,$(HOST)),<alamat-server>,$(HOST)):$(PORT)/login"
	@echo "  Peserta / takers: http://$(if $(filter 0.0.0.0,$(HOST)),<alamat-server>,$(HOST)):$(PORT)/"
	@echo "  API docs        : http://$(if $(filter 0.0.0.0,$(HOST)),<alamat-server>,$(HOST)):$(PORT)/docs"
	@if [ "$(HOST)" = "0.0.0.0" ]; then echo "  <alamat-server> = one of: $$(hostname -I 2>/dev/null)"; fi
	@echo ""
	$(BIN)/cact serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/foundation.py
	$(BIN)/python bench/bank_import.py --items 5000

clean:
	rm -rf $(VENV) .pytest_cache test-results
