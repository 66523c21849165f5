# pooldaemon: `make run` starts the daemon on the example config, `make test` runs
# lint, type-check and the test suite. Both create .venv themselves; a second run
# reinstalls only when pyproject.toml changed.

# The interpreter .venv is made from: the distribution's own /usr/bin/python3 when it
# is 3.11 or newer and can make a venv (ensurepip, Debian's python3-venv), else the
# first python3 on PATH. Debian, Ubuntu and Fedora build theirs with profile-guided
# and link-time optimisation; on the bench machine Debian's ran the same code 25-30%
# faster than a default pyenv build (shared libpython, no PGO), 85-115 us less on a
# stream's first chunk (bench/results/2026-11-22-profile.txt, session 13).
# PYTHON=... overrides; an existing .venv keeps its interpreter until `make clean`.
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
	>/dev/null 2>&1 && echo $(SYSTEM_PYTHON) || echo python3)
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

# The daemon runs as the systemd unit runs it: PYTHONOPTIMIZE=2 (python -OO, no
# docstrings or asserts: 2.4 MiB less resident) and PYTHONNODEBUGRANGES=1 (code
# objects without column tables: 0.4 MiB; tracebacks keep their line numbers).
# Its bytecode is compiled here once, the same way: Python writes none itself where
# PYTHONDONTWRITEBYTECODE is set or the files are read-only, and would compile the
# sources at every start (slower, ~3 MiB more). The interpreter's own library too,
# where it can be written (else it is left as is). Files compiled before keep their
# tables until their source changes (compileall -f compiles them again).
OPTIMIZE := PYTHONOPTIMIZE=2 PYTHONNODEBUGRANGES=1
$(VENV)/.bytecode: $(VENV)/.installed-run $(wildcard pooldaemon/*.py pooldaemon/*/*.py)
	$(OPTIMIZE) $(BIN)/python -m compileall -q -j 0 pooldaemon \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	@$(OPTIMIZE) $(BIN)/python -m compileall -q -j 0 -x '/(test|tests|idlelib|tkinter|turtledemo)/' \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
		>/dev/null 2>&1 || true
	@touch $@

run: $(VENV)/.bytecode
	$(OPTIMIZE) $(BIN)/pooldaemon run --config $(CONFIG)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy pooldaemon bench

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

# Micro-benchmarks of the pool core (route, snapshot build), the usage store and a
# stream's relay (CPU per upstream event).
bench-core: $(VENV)/.installed-run
	$(BIN)/python bench/bench_route.py
	$(BIN)/python bench/bench_usage.py
	$(BIN)/python bench/bench_stream.py

# The load benchmark (bench/run.py): a fake upstream, a minimal aiohttp proxy as the
# floor and pooldaemon, each its own process on 127.0.0.1, loaded by wrk; about 3
# minutes. It prints the table with the goals and writes it to bench/results/.
# BENCH_ARGS=--quick: under a minute; BENCH_ARGS="--memory-requests 100000": RSS at
# 100k and 1M requests (about 12 minutes). wrk comes from Debian's package: installed
# when missing and we are root with apt-get, else the target stops and says so.
.PHONY: bench bench-deps
bench: $(VENV)/.bytecode bench-deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-deps:
	@command -v wrk >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing wrk (Debian package wrk)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	else \
		echo "make bench needs wrk: apt-get install wrk (as root)" >&2; exit 1; \
	fi

# The soak test (bench/soak.py): the daemon under mixed plain/streamed OpenAI and
# Anthropic traffic, random upstream faults and a config rewrite every 3 s, for
# SOAK_SECONDS (default 180); prints a summary and fails when a check fails (crash,
# malformed answer, usage records != answers, a cooldown not recovered, RSS growth).
.PHONY: soak
soak: $(VENV)/.bytecode
	SOAK_SECONDS=$(or $(SOAK_SECONDS),180) $(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
