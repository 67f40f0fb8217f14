# Two commands on a fresh machine: `make run` (main job), `make test` (the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)
DEV_PORT ?= 3000

.PHONY: run test dev backfill export focus migrate doctor replay prune bench lint lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.test: requirements-test.lock $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-test.lock
	touch $@

run: $(VENV)/.runtime  ## load every month into the warehouse and print a summary (VERBOSE=1: the full Dagster log)
	$(BIN)/python -m pipeline.run $(if $(filter-out 0,$(VERBOSE)),-v)

test: $(VENV)/.test  ## run the test suite
	$(BIN)/python -m pytest -q

dev: $(VENV)/.runtime  ## the Dagster UI and daemon (schedules, backfills) on localhost:$(DEV_PORT)
	mkdir -p data/dagster
	$(BIN)/dagster dev -m pipeline.definitions -h 127.0.0.1 -p $(DEV_PORT)

backfill: $(VENV)/.runtime  ## load a range of months in one run: make backfill FROM=2024-01 TO=2024-12
	@test -n "$(FROM)" || { echo "usage: make backfill FROM=YYYY-MM [TO=YYYY-MM]"; exit 2; }
	mkdir -p data/dagster
	$(BIN)/dagster asset materialize -m pipeline.definitions --select '*' \
		--partition-range "$(FROM)...$(or $(TO),$(FROM))"

export: $(VENV)/.runtime  ## Parquet under data/export, one folder per month: make export [MONTHS="2024-05 2024-06"]
	$(BIN)/python -m pipeline.export $(if $(MONTHS),--months $(MONTHS))

focus: $(VENV)/.runtime  ## FOCUS 1.2 Parquet under data/focus: make focus [FROM=2024-01] [TO=2024-12] [EACH_MONTH=1] [CSV=1]
	$(BIN)/python -m pipeline.focus $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) \
		$(if $(filter-out 0,$(EACH_MONTH)),--each-month) $(if $(filter-out 0,$(CSV)),--csv)

migrate: $(VENV)/.runtime  ## bring the warehouse's schema up to date (every run also does)
	$(BIN)/python -m pipeline.warehouse.migrate

doctor: $(VENV)/.runtime  ## check the settings, the token, the warehouse file and the Dagster instance
	$(BIN)/python -m pipeline.doctor

replay: $(VENV)/.runtime  ## rebuild a source's tables from raw, no requests: make replay SOURCE=invoices FROM=2024-01 [TO=2024-03]
	@test -n "$(SOURCE)" -a -n "$(FROM)" || { echo "usage: make replay SOURCE=invoices|invoice_summaries|daily_costs|billing_history|balance FROM=YYYY-MM [TO=YYYY-MM]"; exit 2; }
	$(BIN)/python -m pipeline.replay $(SOURCE) $(FROM) $(TO)

prune: $(VENV)/.runtime  ## delete superseded raw fetches now (every run prunes what it swaps): make prune [KEEP=N]
	$(BIN)/python -m pipeline.prune $(if $(KEEP),--keep $(KEEP))

$(VENV)/.bench: $(VENV)/.runtime
	$(BIN)/pip install -q "dlt[duckdb]==1.31.0"
	touch $@

bench: $(VENV)/.bench  ## this pipeline vs dlt rest_api on the sandbox, scale and rate-limit runs
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lock:  ## re-resolve requirements*.lock from pyproject.toml in a scratch venv
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q . && .lockenv/bin/pip uninstall -q -y do-billing-pipeline
	{ echo "# Runtime lock: exact versions that 'make run' installs (regenerate with 'make lock')."; \
	  .lockenv/bin/pip freeze; } > requirements.lock
	.lockenv/bin/pip install -q ".[test]" && .lockenv/bin/pip uninstall -q -y do-billing-pipeline
	{ echo "# Test lock: added on top of requirements.lock by 'make test'."; echo "-r requirements.lock"; \
	  .lockenv/bin/pip freeze | grep -vxFf requirements.lock; } > requirements-test.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) data/dagster data/*.duckdb data/*.wal
