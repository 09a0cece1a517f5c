# pbxsync — `make demo` and `make test` work on a fresh Debian 12 machine (as root, or with sudo).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all demo test lint typecheck pytest venv system-deps asterisk bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests talk to (ldapsearch, slapd, debootstrap for the Asterisk chroot).
system-deps:
	bash scripts/setup-system-deps.sh

# The real Asterisk 22 in a Debian unstable chroot, cached under /var/cache/pbxsync.
asterisk: system-deps
	bash scripts/setup-asterisk.sh

lint: venv
	$(BIN)/ruff check sync plugin tests benchmarks

typecheck: venv
	$(BIN)/mypy

pytest: venv system-deps asterisk
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: venv
	$(BIN)/pbxsync demo

bench: venv system-deps asterisk
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
