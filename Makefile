# Every target installs what it needs: uv (bootstrapped into .tools/ when absent) and the locked env.
SHELL := /bin/bash
PY ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export UV_PROJECT_ENVIRONMENT ?= $(CURDIR)/.venv

.PHONY: setup test lint demo bench emulators e2e-distributed clean

$(CURDIR)/.tools/bin/uv:
	$(PY) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet 'uv>=0.5,<1'

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	touch $@

setup: .venv/.synced

PYTEST_WORKERS ?= 2
# Files in collection order (tests/conftest.py puts the minutes-long ones first), not xdist's most-tests-first,
# which started the DAG-run files (few tests, minutes each) last.
test: setup  ## the whole suite (PostgreSQL/Redis/browser tests skip with a reason where absent)
	$(RUN) pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 --ignore=tests/distributed $(PYTEST_ARGS)

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

demo: setup  ## emulators + real DAG runs through an embedded Airflow, then a report
	$(RUN) fbmkto demo

bench: setup
	$(RUN) python -m bench $(BENCH_ARGS)

emulators: setup  ## both emulators in the foreground (FreshBooks :8080, Marketo :8081)
	$(RUN) fbmkto emulate both --port 8080 --seed demo

e2e-distributed: setup  ## CeleryExecutor + PostgreSQL + Redis natively: 2 accounts, 14-day backfill, a worker SIGKILLed
	$(RUN) pytest -q tests/distributed $(PYTEST_ARGS)

clean:
	rm -rf .venv .tools .airflow .pytest_cache .mypy_cache .ruff_cache
