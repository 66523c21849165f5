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

# tests/test_systemd.py checks systemd/pooldaemon.service with systemd-analyze.
# Install it when missing and we can (root with apt-get, as in CI); otherwise,
# or if the install fails, those tests skip and say why.
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

test: lint typecheck pytest

schema: $(VENV)/.installed-run
	$(BIN)/pooldaemon schema --output schemas/pool.schema.json

# Micro-benchmarks of the pool core (route, snapshot build) and the usage store.
bench-core: $(VENV)/.installed-run
	$(BIN)/python bench/bench_route.py
	$(BIN)/python bench/bench_usage.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
