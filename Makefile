# CACT server. Quick start: `make run` (demo server), `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1
PYTEST_ARGS ?=
# The offline bundle carries wheels for these Pythons (Debian 12: 3.11, Ubuntu 24.04: 3.12).
BUNDLE_PYTHONS ?= 3.11 3.12 3.13
DIST ?= dist

.PHONY: run test lint bench drill bundle install install-test migrate demo clean help

help:
	@echo "make run    - install, migrate the SQLite database in var/, load the demo, serve on $(HOST):$(PORT)"
	@echo "make test   - install the test extras and run the whole test suite"
	@echo "make lint   - ruff (style, bug patterns), lint-imports (the layering contracts in"
	@echo "              pyproject.toml) and mypy (strict on the pure modules and the taker API)"
	@echo "make bench  - measure the figures recorded in docs/performance.md"
	@echo "make drill  - durability drills: kill -9 under load, a browser offline 5 minutes, locked and full disk,"
	@echo "              the server down a minute under load, a backup under load restored elsewhere"
	@echo "make bundle - offline installer $(DIST)/cact-<version>-bundle.tar.gz (wheel + wheelhouse + install.sh)"
	@echo "variables   - HOST=0.0.0.0 make run (serve the LAN), PORT=8080, WORKERS=2,"
	@echo "              BUNDLE_PYTHONS=\"$(BUNDLE_PYTHONS)\" (Pythons the bundle's wheels are for), DIST=dist"

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

# All three run even when one fails, so one pass shows every finding; the target fails if any did.
lint: install-test
	@status=0; \
	echo "ruff check app tests bench"; $(BIN)/ruff check app tests bench || status=1; \
	echo "lint-imports"; $(BIN)/lint-imports --no-logo || status=1; \
	echo "mypy"; $(BIN)/mypy || status=1; \
	exit $$status

bench: install-test
	$(BIN)/python bench/foundation.py
	$(BIN)/python bench/bank_import.py --items 5000
	$(BIN)/python bench/autosave.py --takers 2000 --saves 10000 --concurrency 200
	$(BIN)/python bench/console.py --takers 300 --answers 60
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/ops.py
	$(BIN)/python bench/login_load.py

# The same drills run in `make test` (the offline one for 150 s); here the browser stays
# offline for five minutes.
drill: install-test
	CACT_DRILL_OFFLINE_S=300 $(BIN)/python -m pytest -v -s -p no:cacheprovider \
		tests/e2e/test_drills.py tests/e2e/test_offline_drill.py \
		tests/e2e/test_outage_drill.py tests/e2e/test_backup_drill.py \
		tests/integration/test_storage_errors.py tests/integration/test_save_batching.py

# Needs a package index here; the lab server that runs its install.sh needs none
# (docs/operations.md, "Installing from the offline bundle").
bundle: | $(BIN)/python
	PYTHON=$(BIN)/python DIST="$(DIST)" BUNDLE_PYTHONS="$(BUNDLE_PYTHONS)" sh deploy/build-bundle.sh

clean:
	rm -rf $(VENV) .pytest_cache test-results build
