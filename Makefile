# Two commands on a fresh machine: `make run` (main job), `make test` (the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)
DEV_PORT ?= 3000

.PHONY: help pictures run test test-any-day dev services dashboard report check-defs backfill export focus migrate doctor replay prune bench bench-teams lint lock clean

# uv installs the lock files' exact versions (~1 s with a warm cache, ~4 s cold, against ~25-30 s
# for pip); it comes from PyPI into the venv itself, so a machine needs only python3, git and make.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# Quiet installs: uv prints nothing on success; pip's -qq keeps only errors (a machine's pip
# configuration may warn about its own indexes). --compile-bytecode writes every package's .pyc at
# install: where the environment sets PYTHONDONTWRITEBYTECODE (many container images do), Python
# never writes them, and each run compiled Dagster, pandas and the rest from source again (an
# import of the definitions took 0.37x the CPU time with them, measured alternating).
UV_PIP := $(UV) pip install -q --compile-bytecode --python $(BIN)/python

help:  ## list the commands with what each does
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/\1\t\2/' \
		| awk -F '\t' '{ printf "  make %-12s %s\n", $$1, $$2 }'

$(UV):
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.runtime: requirements.lock pyproject.toml | $(UV)
	@echo "installing the pinned runtime (requirements.lock) into $(VENV)"
	@$(UV_PIP) -r requirements.lock
	@$(UV_PIP) --no-deps -e .
	@touch $@

$(VENV)/.test: requirements-test.lock $(VENV)/.runtime
	@$(UV_PIP) -r requirements-test.lock
	@touch $@

run: $(VENV)/.runtime  ## load every month into the warehouse and print a summary (VERBOSE=1: the full Dagster log)
	@$(BIN)/python -m pipeline.cli.run $(if $(filter-out 0,$(VERBOSE)),-v)

test: $(VENV)/.test  ## run the test suite
	$(BIN)/python -m pytest -q

DAY ?= 2027-03-01 00:20:00
test-any-day: $(VENV)/.test  ## the suite with every process's wall clock at DAY (UTC): make test-any-day DAY='2028-02-29 13:00:00' [PYTEST_ARGS=...]
	tests/clock/on-day '$(DAY)' $(BIN)/python -m pytest -q $(PYTEST_ARGS)

dev: $(VENV)/.runtime  ## the Dagster UI and daemon (schedules, backfills) on localhost:3000 (DEV_PORT=...)
	mkdir -p data/dagster
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev --host 127.0.0.1 --port $(DEV_PORT)

CODE_PORT ?= 4266
services: $(VENV)/.runtime  ## code server, webserver (DEV_PORT) and one daemon around an instance in PostgreSQL: DAGSTER_POSTGRES_URL=postgresql://… make services [CODE_PORT=4266] [ALSO=other-workspace.yaml]
	@mkdir -p data/dagster
	@$(BIN)/python -m pipeline.cli.services --port $(DEV_PORT) --code-port $(CODE_PORT) $(if $(ALSO),--also '$(ALSO)')

dashboard: $(VENV)/.runtime  ## the cost dashboard on localhost:DASHBOARD_PORT (default 8501), reading WAREHOUSE_PATH
	$(if $(DASHBOARD_PORT),DASHBOARD_PORT=$(DASHBOARD_PORT)) $(BIN)/python -m pipeline.dashboard

report: $(VENV)/.runtime  ## the landing page of a month as one self-contained HTML file: make report MONTH=2024-05 [OUT=file.html]
	@test -n "$(MONTH)" || { echo "usage: make report MONTH=YYYY-MM"; exit 2; }
	$(BIN)/python -m pipeline.dashboard.report $(MONTH) $(if $(OUT),--out '$(OUT)')

check-defs: $(VENV)/.runtime  ## load and validate the Dagster definitions (`dg check defs`)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

backfill: $(VENV)/.runtime  ## load a range of months in one run, as make run does: make backfill FROM=2024-01 TO=2024-12
	@test -n "$(FROM)" || { echo "usage: make backfill FROM=YYYY-MM [TO=YYYY-MM]"; exit 2; }
	@$(BIN)/python -m pipeline.cli.run --from '$(FROM)' --to '$(or $(TO),$(FROM))' $(if $(filter-out 0,$(VERBOSE)),-v)

export: $(VENV)/.runtime  ## Parquet under data/export (or OUT=dir), a folder per table and month: make export [MONTHS="2024-05 2024-06"] [OUT=dir]
	$(BIN)/python -m pipeline.cli.export $(if $(MONTHS),--months $(MONTHS)) $(if $(OUT),--out '$(OUT)')

focus: $(VENV)/.runtime  ## FOCUS files under data/focus/<version> (or OUT=dir): make focus [FOCUS_VERSION=1.2|1.3|1.4] [FROM=2024-01] [TO=2024-12] [EACH_MONTH=1] [CSV=1]
	$(BIN)/python -m pipeline.cli.focus $(if $(FOCUS_VERSION),--version $(FOCUS_VERSION)) \
		$(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) \
		$(if $(filter-out 0,$(EACH_MONTH)),--each-month) $(if $(filter-out 0,$(CSV)),--csv) \
		$(if $(OUT),--out '$(OUT)')

migrate: $(VENV)/.runtime  ## bring the warehouse's schema up to date (every run also does)
	$(BIN)/python -m pipeline.warehouse.migrate

doctor: $(VENV)/.runtime  ## check the settings, the token, the warehouse file and the Dagster instance
	$(BIN)/python -m pipeline.cli.doctor

replay: $(VENV)/.runtime  ## rebuild a source's tables from raw, no requests: make replay SOURCE=invoices FROM=2024-01 [TO=2024-03]
	@test -n "$(SOURCE)" -a -n "$(FROM)" || { echo "usage: make replay SOURCE=<a source: $(BIN)/python -m pipeline.cli.replay -h lists them> FROM=YYYY-MM [TO=YYYY-MM]"; exit 2; }
	@$(BIN)/python -m pipeline.cli.replay '$(SOURCE)' '$(FROM)' $(if $(TO),'$(TO)')

prune: $(VENV)/.runtime  ## delete superseded raw fetches now (every run prunes what it swaps): make prune [KEEP=N]
	$(BIN)/python -m pipeline.cli.prune $(if $(KEEP),--keep $(KEEP))

# The peer: dlt in this venv for the in-process rows, and in a venv of its own, as a dlt user has
# it, for the whole-process rows (in this venv it imports the project's packages and runs on its
# DuckDB: 8.7 s against 6.8 s, bench/results.md).
DLT := "dlt[duckdb,parquet]==1.31.0"
DLT_VENV := .venv-dlt
$(VENV)/.bench: $(VENV)/.runtime
	$(UV_PIP) $(DLT)
	touch $@

$(DLT_VENV)/.installed: | $(UV)
	@$(PYTHON) -m venv $(DLT_VENV)
	$(UV) pip install -q --compile-bytecode --python $(DLT_VENV)/bin/python $(DLT)
	touch $@

bench: $(VENV)/.bench $(DLT_VENV)/.installed  ## this pipeline vs dlt rest_api on the sandbox, scale and rate-limit runs, 10/100/1,000 teams
	DLT_PYTHON=$(CURDIR)/$(DLT_VENV)/bin/python $(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.teams 10 100 1000

# The daily refresh of many teams as a whole process: TEAMS=10000 for the long case (~10 min or
# more), REVOKE=1 to revoke that many tokens mid-run (the run must fail naming their teams).
TEAMS ?= 10 100 1000
REVOKE ?= 0
bench-teams: $(VENV)/.runtime  ## the daily refresh of many teams: make bench-teams [TEAMS="10 100 1000"|TEAMS=10000] [REVOKE=1]
	$(BIN)/python -m bench.teams $(TEAMS) $(if $(filter-out 0,$(REVOKE)),--revoke $(REVOKE))

pictures: $(VENV)/.test  ## refresh the README's pictures (docs/*.png) from the browser tests' screenshots
	$(BIN)/python -m pytest -q tests/test_dashboard_ui.py tests/test_ui.py
	cp test-output/dashboard.png docs/dashboard.png
	cp test-output/ui/asset-graph.png docs/asset-graph.png

lint: $(VENV)/.test  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lock: | $(UV)  ## re-resolve requirements*.lock from pyproject.toml, keeping pinned versions (UPGRADE=1: newest)
	$(UV) pip compile -q --no-header --no-annotate --python $(BIN)/python $(if $(filter-out 0,$(UPGRADE)),--upgrade) \
		pyproject.toml -o requirements.lock
	sed -i "1i # Runtime lock: exact versions that 'make run' installs (regenerate with 'make lock')." requirements.lock
	$(UV) pip compile -q --no-header --no-annotate --python $(BIN)/python $(if $(filter-out 0,$(UPGRADE)),--upgrade) \
		pyproject.toml --extra test -c requirements.lock -o requirements-test.lock
	grep -vxFf requirements.lock requirements-test.lock > requirements-test.lock.new
	{ echo "# Test lock: added on top of requirements.lock by 'make test'."; echo "-r requirements.lock"; \
	  cat requirements-test.lock.new; } > requirements-test.lock && rm requirements-test.lock.new

clean:  ## remove the venvs, the warehouse files and the Dagster instance in data/
	rm -rf $(VENV) $(DLT_VENV) data/dagster data/*.duckdb data/*.wal
