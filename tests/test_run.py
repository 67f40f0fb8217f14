"""`make run` as a new user sees it: a short readable log, and a run `make dev` can show."""

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 40


def months_back(n: int) -> str:
    """The month `n` before the current one: a start period valid on any day."""
    month = month_of(datetime.now(UTC))
    for _ in range(n):
        month = previous_month(month)
    return month


# Every variable the settings read: none of the machine's may leak into the run.
SETTINGS = {field.validation_alias for field in Settings.model_fields.values()}
NOT_INHERITED = SETTINGS | {"DAGSTER_HOME", "VERBOSE"}


def make_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.cli.run` as `make run` starts it, with only these settings (the rest
    of the environment, a shifted clock's included, as the test's own)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.run"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k not in NOT_INHERITED},
            "HOME": str(tmp_path),
            "WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
            # This checkout's package, whichever checkout the venv's editable install names.
            "PYTHONPATH": str(REPO),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_run_prints_a_short_log_and_records_the_run_for_the_ui(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    start = months_back(6)
    done = make_run(tmp_path, DAGSTER_HOME=str(tmp_path), INVOICE_START_PERIOD=start)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert not [line for line in lines if " - DEBUG - " in line or " - dagster - " in line]
    # The sandbox notice once per run, not once per step.
    assert sum("built-in SANDBOX API at" in line for line in lines) == 1
    assert lines[0].startswith(f"Loading {start}…") and "SANDBOX" in lines[0]
    assert any(line.split()[:3] == ["year", "months", "invoices"] for line in lines)
    assert lines[-1].startswith("Done in ") and str(tmp_path / "warehouse.duckdb") in lines[-1]
    # The sample account trips no budget (none is set) and no anomaly check.
    assert lines[-2] == "Alerts: none (budget, cost spikes, new SKUs)"

    os.environ["DAGSTER_HOME"], before = str(tmp_path), os.environ.get("DAGSTER_HOME")
    cwd = Path.cwd()
    try:
        os.chdir(tmp_path)  # dagster.yaml's storage paths are relative to the working directory
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            months = instance.get_materialized_partitions(dg.AssetKey("invoices"))
    finally:
        os.chdir(cwd)
        if before is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = before
    assert len(runs) == 1 and runs[0].is_success
    assert start in months and len(months) >= 6


def test_a_failed_run_names_the_cause_in_a_few_lines_without_a_traceback(tmp_path):
    """A revoked token: the cause, which steps failed, and what to do; no Dagster wrapper."""
    with SandboxServer() as server:
        done = make_run(
            tmp_path,
            DIGITALOCEAN_TOKEN="revoked-token",
            DIGITALOCEAN_API_URL=server.url,
            INVOICE_START_PERIOD=months_back(2),
        )
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert len(lines) <= 25, done.stdout
    assert "Traceback" not in done.stdout and "Error occurred while executing" not in done.stdout
    (failed,) = [line for line in lines if line.startswith("Failed: ")]
    assert failed.startswith(
        "Failed: balance, billing_history, daily_costs, database_clusters, droplets, "
        "invoice_tables, kubernetes_clusters, load_balancers, projects, volumes: "
    )
    assert "HTTP 401" in failed and "DIGITALOCEAN_TOKEN" in failed
    assert "revoked-token" not in done.stdout
    assert lines[-1].startswith("The failed steps' months keep their previous rows.")
