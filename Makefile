# pooldaemon: `make run` starts the daemon on the example config, `make test` runs
# lint, type-check and the test suite. Both create .venv themselves; a second run
# reinstalls only when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/pool.yaml

.PHONY: run test lint typecheck pytest ci-deps schema bench-core clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "pooldaemon needs Python >= 3.11 (PYTHON=$(PYTHON))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps record what is installed; they are newer than pyproject.toml until it changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/pooldaemon run --config $(CONFIG)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy pooldaemon

pytest: $(VENV)/.installed-dev ci-deps
	$(BIN)/pytest

# tests/test_systemd.py checks systemd/pooldaemon.service with systemd-analyze and
# tests/test_monitoring.py checks monitoring/ with promtool. Install them when
# missing and we can (root with apt-get, as in CI); otherwise, or if the install
# fails, those tests skip and say why. promtool comes with Debian's prometheus
# package: a policy-rc.d refusing every action (the Docker convention) keeps the
# install from starting a Prometheus server; we add one for the install if none.
ci-deps:
	@command -v systemd-analyze >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing systemd-analyze (Debian package systemd)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends systemd >/dev/null; } || \
		echo "warning: could not install systemd; the systemd-analyze tests will skip" >&2; \
	else \
		echo "note: no systemd-analyze (installing it needs root and apt-get);" \
			"the systemd-analyze tests will skip" >&2; \
	fi
	@command -v promtool >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing promtool (Debian package prometheus)"; \
		policy=/usr/sbin/policy-rc.d; ours=; \
		if [ ! -e $$policy ]; then \
			printf '#!/bin/sh\nexit 101\n' >$$policy && chmod 755 $$policy && ours=1; \
		fi; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || \
		echo "warning: could not install prometheus; the promtool tests will skip" >&2; \
		if [ -n "$$ours" ]; then rm -f $$policy; fi; \
	else \
		echo "note: no promtool (installing it needs root and apt-get);" \
			"the promtool tests will skip" >&2; \
	fi

test: lint typecheck pytest

schema: $(VENV)/.installed-run
	$(BIN)/pooldaemon schema --output schemas/pool.schema.json

# Micro-benchmarks of the pool core (route, snapshot build) and the usage store.
bench-core: $(VENV)/.installed-run
	$(BIN)/python bench/bench_route.py
	$(BIN)/python bench/bench_usage.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
