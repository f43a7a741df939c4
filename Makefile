# pm-arb-tasks: `make run` (the whole stack, paper mode, against the simulator) and `make test`.
SHELL := /bin/bash
# The first interpreter that actually runs and is 3.11+ (pyenv shims may exist but not run).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: run test bench lint chaos install services clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.11, python3.12 or python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		rm -rf $(VENV); echo ">> $(PYTHON) cannot create a virtualenv (Debian/Ubuntu ship venv apart)"; \
		scripts/apt_install.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

services:
	@scripts/ensure_services.sh

run: install
	@scripts/ensure_env.sh
	@scripts/ensure_services.sh
	$(BIN)/pm-arb db upgrade
	@echo ">> Flower: http://127.0.0.1:5555 (login in .env)  simulator log: http://127.0.0.1:8900/sim/log"
	$(BIN)/pm-arb up --sim

test: install
	@REDIS_URL=redis://127.0.0.1:6379/0 scripts/ensure_services.sh --postgres  # the suite's own Redis, whatever .env says
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

bench: install
	@scripts/ensure_services.sh --postgres
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache pm_arb.db

chaos: install
	@scripts/ensure_services.sh --postgres
	$(BIN)/python -m chaos
