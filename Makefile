# dbt-prom-bridge. The README's two commands: `make demo` and `make test`.
# Everything installs into .venv (Python packages pinned by constraints.txt) and, for the real
# servers, Debian packages (scripts/install-system-deps.sh). Nothing binds beyond 127.0.0.1.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
RUN_DIR ?= .run
export PATH := $(abspath $(VENV))/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help install system-deps test test-fast test-compat lint format bench demo demo-down \
	stack-up stack-down pg-up pg-down seed stale rules dashboard docs constraints clean

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23.2"
	$(PIP) install -q -c constraints.txt -e ".[all,duckdb]" -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## Create .venv and install the package with pinned dependencies

system-deps: ## Install Prometheus, Pushgateway, Alertmanager (Debian packages) if missing
	scripts/install-system-deps.sh

test: install system-deps ## Install what the tests need and run them all (real servers on loopback)
	$(PY) -m pytest

# One venv per dbt-core minor in .nox/ (noxfile.py: versions, pins in compat/); COMPAT=ends runs
# only the oldest and the newest. Prints one summary line per version.
COMPAT ?= all

test-compat: install system-deps ## The dbt-dependent tests on every supported dbt-core (1.8 ... 1.12.0)
	@rm -f $(RUN_DIR)/compat/*.txt; \
	if [ "$(COMPAT)" = ends ]; then sessions=$$($(PY) -c 'import noxfile as n; print(" ".join(f"compat(dbt={v!r})" for v in n.ENDS))'); \
	else sessions=compat; fi; \
	start=$$(date +%s); rc=0; \
	for s in $$sessions; do $(VENV)/bin/nox --no-color -s "$$s" || rc=1; done; \
	echo "== make test-compat ($(COMPAT)): $$(( $$(date +%s) - start ))s"; \
	$(VENV)/bin/nox --no-color -s compat-summary 2>&1 | grep 'compat '; exit $$rc

test-fast: install ## Unit tests only (no servers, no dbt run)
	$(PY) -m pytest -m "not e2e and not dbt"

lint: install ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install system-deps ## Benchmarks: figures and ratios, printed (never asserted)
	$(PY) -m bench

PG_DIR ?= $(RUN_DIR)/pg

pg-up: install ## Start the embedded PostgreSQL (state in .run/pg) and print the profile's env exports
	$(PY) -m devtools.pg up --dir $(PG_DIR)

pg-down: ## Stop the embedded PostgreSQL
	@if [ -x $(PY) ]; then $(PY) -m devtools.pg down --dir $(PG_DIR); fi

seed: pg-up ## (Re)seed the sample project's source tables relative to now()
	$(PY) -m devtools.seed --pg-dir $(PG_DIR)

stale: pg-up ## Make one source stale past its error_after: make stale SOURCE=finance.transactions
	@test -n "$(SOURCE)" || { echo "usage: make stale SOURCE=source.table (e.g. finance.transactions)" >&2; exit 2; }
	$(PY) -m devtools.seed --pg-dir $(PG_DIR) --stale $(SOURCE)

STACK_DIR ?= $(RUN_DIR)/stack

stack-up: install system-deps ## Start Prometheus, Pushgateway, Alertmanager on 127.0.0.1 with the ops/ configs
	$(PY) -m devtools.stack up --dir $(STACK_DIR)

stack-down: ## Stop the local stack and remove its state
	@if [ -x $(PY) ]; then $(PY) -m devtools.stack down --dir $(STACK_DIR); fi

DEMO_DIR ?= $(RUN_DIR)/demo

demo: install system-deps ## The tour: PostgreSQL + stack, push, rules, a source goes stale, its alert fires
	$(PY) -m devtools.demo up --dir $(DEMO_DIR)

demo-down: ## Stop everything the demo started and remove its state (.run/demo)
	@if [ -x $(PY) ]; then $(PY) -m devtools.demo down --dir $(DEMO_DIR); fi

RULES_DIR ?= ops/prometheus/rules
RULES_ARGS = --project-dir dbt_project --profiles-dir dbt_project --meta-label owner --meta-label team \
	--out $(RULES_DIR)/dbt_freshness.yml --tests $(RULES_DIR)/tests/dbt_freshness.test.yml

rules: install ## Regenerate the sample project's alert rules + promtool tests (ops/prometheus/rules), then promtool them
	$(VENV)/bin/dbt-prom rules $(RULES_ARGS)
	promtool check rules --lint-fatal $(RULES_DIR)/dbt_freshness.yml
	promtool test rules $(RULES_DIR)/tests/dbt_freshness.test.yml

DASHBOARD ?= ops/grafana/dashboards/dbt-freshness.json

dashboard: install ## Regenerate the sample project's Grafana dashboard (provisioned by ops/docker-compose.yml)
	$(VENV)/bin/dbt-prom dashboard --project-dir dbt_project --profiles-dir dbt_project \
		--meta-label owner --meta-label team --out $(DASHBOARD)

docs: install ## Regenerate the docs' generated parts from the code (CLI reference, env vars, metrics)
	$(PY) -m cogapp -r $$($(PY) -c 'import devtools.docs as d; print(*d.GENERATED)')

constraints: ## Re-pin constraints.txt from the current .venv
	scripts/pin-constraints.sh

clean: demo-down pg-down ## Remove the venv, run state and caches
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
