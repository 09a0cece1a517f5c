# pbxsync — `make demo` and `make test` work on a fresh Debian 12 machine (as root, or with sudo).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all demo test lint typecheck pytest venv system-deps asterisk bench clean screenshots

all: test

# The project is installed editable in setuptools' strict mode (a tree of links under build/, which mypy can
# follow, unlike the lenient mode's import hook). Such a tree does not see new files, so the install is
# redone whenever the list of package files changes (PKG_LIST holds that list).
PKG_LIST := $(VENV)/.package-files
PKG_FILES := $(shell find sync plugin dialplan examples -type f ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null | sort | md5sum | cut -c1-32)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	echo "$(PKG_FILES)" > $(PKG_LIST)
	touch $(STAMP)

venv: $(STAMP)
	@if [ "$$(cat $(PKG_LIST) 2>/dev/null)" != "$(PKG_FILES)" ]; then \
		$(BIN)/pip install --quiet --no-deps -e . --config-settings editable_mode=strict && \
		echo "$(PKG_FILES)" > $(PKG_LIST); fi

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

# `make demo` needs only the `demo` extra; the venv holds `test`, which includes it.
demo: venv
	$(BIN)/pbxsync demo

# docs/images/*.png: the portal's pages in headless Chromium against the demo's data (look at them after).
screenshots: venv system-deps
	$(BIN)/python scripts/screenshots.py

bench: venv system-deps asterisk
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
