"""Kills and contention: the warehouse holds whole months, and busy files make runs wait."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

MONTH = "2024-05"
ROWS = 200_000

# A writer that swaps MONTH's rows over and over, each version stamped with its own loaded_at.
WRITER = f"""
import sys
from datetime import UTC, datetime, timedelta
import pandas as pd
from pipeline.sources.invoice_items import ITEM_COLUMNS
from pipeline.sources.invoices import INVOICE_COLUMNS
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.swap import replace_periods

store = Warehouse(sys.argv[1])
store.migrate()
versions = int(sys.argv[2])
for version in range(versions):
    stamp = pd.Timestamp(datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=version))
    n = {ROWS} + version % 7
    items = pd.DataFrame({{
        "invoice_uuid": "inv", "invoice_period": "{MONTH}", "line_number": range(1, n + 1),
        "amount": pd.Series(["1.00"] * n).astype("string"), "status": "final", "loaded_at": stamp,
    }}).reindex(columns=ITEM_COLUMNS)
    invoices = pd.DataFrame({{
        "invoice_uuid": ["inv"], "invoice_period": ["{MONTH}"], "amount": [str(n) + ".00"],
        "status": ["final"], "items_total": [n], "loaded_at": [stamp],
    }}).reindex(columns=INVOICE_COLUMNS)
    items["team_uuid"] = invoices["team_uuid"] = "team"
    replace_periods(
        store,
        "team",
        ["{MONTH}"],
        {{"invoices": (invoices, "invoice_period"), "invoice_items": (items, "invoice_period")}},
    )
    print("committed", version, flush=True)
"""


def run_writer(path: Path, versions: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(versions)],
        stdout=subprocess.PIPE,
        text=True,
    )


def month_state(path: Path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            """
            SELECT (SELECT count(DISTINCT loaded_at) FROM invoice_items),
                   (SELECT count(*) FROM invoice_items),
                   (SELECT any_value(items_total) FROM invoices),
                   (SELECT any_value(amount) FROM invoices),
                   (SELECT sum(amount) FROM invoice_items),
                   (SELECT any_value(loaded_at) FROM invoices)
                 = (SELECT any_value(loaded_at) FROM invoice_items)
            """
        ).fetchone()


def test_sigkill_during_the_write_leaves_old_or_new_rows_never_a_mix(warehouse_path):
    assert run_writer(warehouse_path, 1).wait(timeout=60) == 0
    rng = random.Random(5)
    for _ in range(4):
        writer = run_writer(warehouse_path, 1000)
        writer.stdout.readline()  # at least one more commit happened; now kill mid-stream
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        versions, count, items_total, amount, items_sum, same_version = month_state(warehouse_path)
        assert versions == 1, "rows of two loads are mixed"
        assert count == items_total and amount == items_sum and same_version
    # A re-run after the kill completes normally.
    assert run_writer(warehouse_path, 1).wait(timeout=60) == 0
    assert month_state(warehouse_path)[1] == ROWS


def hold_open(path: Path, *, read_only: bool, seconds: float) -> subprocess.Popen:
    """Another process with the DuckDB file open (an analyst's session, or a writer)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; "
            "c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
            "print('open', flush=True); time.sleep(float(sys.argv[3])); c.close()",
            str(path),
            "ro" if read_only else "rw",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_overlapping_runs_and_an_open_analyst_session_queue_instead_of_failing(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN_", "DAGSTER_"))}
    # No token: the sandbox's own file (SANDBOX_WAREHOUSE_PATH), in tmp_path.
    env["SANDBOX_WAREHOUSE_PATH"] = str(warehouse)
    env["WAREHOUSE_PATH"] = str(tmp_path / "real.duckdb")
    duckdb.connect(str(warehouse)).close()
    analyst = hold_open(warehouse, read_only=True, seconds=3)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "asset",
                "materialize",
                "-m",
                "pipeline.defs.definitions",
                "--select",
                "*",
                "--partition-range",
                span,
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for span in ("2024-01...2024-06", "2024-04...2024-09")
    ]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    analyst.wait(timeout=30)
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert "Could not set lock" not in output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        months = con.execute(
            "SELECT count(DISTINCT invoice_period), count(*) FROM invoices"
        ).fetchone()
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT invoice_uuid, line_number FROM invoice_items "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
    assert months == (9, 9)
    assert dupes == (0,)


@pytest.mark.parametrize("read_only", [True, False])
def test_a_busy_warehouse_gives_a_clear_error_after_the_bounded_wait(tmp_path, read_only):
    from pipeline.warehouse.connection import WarehouseBusyError
    from pipeline.warehouse.store import Warehouse

    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    holder = hold_open(path, read_only=False, seconds=5)
    try:
        with pytest.raises(WarehouseBusyError, match="locked by another process"):
            with Warehouse(path, lock_timeout=1.0).connect(read_only=read_only):
                pass
    finally:
        holder.kill()
        holder.wait()


OPEN_READ_ONLY = """
import sys, duckdb
try:
    with duckdb.connect(sys.argv[1], read_only=True) as con:
        print(sorted(r[0] for r in con.execute("SELECT team_name FROM teams").fetchall()))
except duckdb.IOException as exc:
    print("locked" if "lock" in str(exc).lower() else exc)
"""


def read_from_another_process(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_READ_ONLY, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_session_keeps_each_unit_atomic_holds_the_file_then_lets_it_go(warehouse_path):
    """A step holds the file open (one DuckDB instance for its dozen units of work); each unit
    is still its own transaction, the team threads still get in, and the file is free after."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.warehouse.store import Warehouse

    store = Warehouse(warehouse_path)
    store.migrate()
    with store.session():
        store.teams.see_one("t1", "First", 1)
        with pytest.raises(ZeroDivisionError):
            with store.transaction() as con:
                con.execute("UPDATE teams SET team_name = 'Renamed'")
                con.execute("INSERT INTO teams SELECT 't2', 'Second', 2, now(), now()")
                1 / 0  # noqa: B018
        with ThreadPoolExecutor(3) as pool:
            names = list(pool.map(lambda _: store.teams.names(["t1", "t2"]), range(3)))
        assert names == [{"t1": ("First", 1)}] * 3
        assert read_from_another_process(warehouse_path) == "locked"
    assert read_from_another_process(warehouse_path) == "['First']"
