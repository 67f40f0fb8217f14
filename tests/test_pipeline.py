"""End to end through Dagster in-process: sandbox over HTTP → raw → tables → checks."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import pytest
import time_machine

from pipeline.defs.assets import build_assets
from pipeline.defs.definitions import defs as load_defs
from pipeline.defs.definitions import source_defs
from pipeline.defs.partitions import monthly_partitions, validate_periods
from pipeline.defs.schedules import (
    INVOICES_JOB,
    closed_month_schedule,
    invoices_job,
    preview_refresh_schedule,
)
from pipeline.sandbox import SandboxServer
from pipeline.settings import SettingsError
from pipeline.sources import INVENTORY, INVOICES, SOURCES
from pipeline.sources.invoices import INVOICE_PATH
from pipeline.warehouse.publish import working_file

ASSETS = source_defs(INVOICES)
INVENTORY_TABLES = [dg.AssetKey(t.name) for source in INVENTORY for t in source.tables]


def other_months(text, month, periods):
    """The run's months other than `month` that a metadata text mentions."""
    return [p for p in periods if p != month and p in text]


def expected(server, periods):
    invoices = [i for i in server.data.invoices if i["invoice_period"] in periods]
    items = [it for i in invoices for it in server.data.items[i["invoice_uuid"]]]
    return invoices, items


def test_definitions_load():
    defs = load_defs()
    job = defs.resolve_job_def("invoices_job")
    assert job.partitions_def is not None
    assert {s.name for s in defs.schedules} == {
        "closed_month_schedule",
        "preview_refresh_schedule",
        "freshness_schedule",
    }
    dg.Definitions.validate_loadable(defs)


def test_range_of_months_loads_every_item_exactly(sandbox, warehouse_path, materialize, rows):
    periods = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    result = materialize(sandbox, warehouse_path, periods[0], periods[-1])
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())

    invoices, items = expected(sandbox, periods)
    stored = rows(
        warehouse_path,
        "SELECT invoice_uuid, amount, status FROM invoices ORDER BY invoice_period DESC",
    )
    assert stored == [(i["invoice_uuid"], Decimal(i["amount"]), "final") for i in invoices]
    ((count, total),) = rows(warehouse_path, "SELECT count(*), sum(amount) FROM invoice_items")
    assert count == len(items)
    assert total == sum(Decimal(it["amount"]) for it in items)
    assert rows(warehouse_path, "SELECT typeof(amount) FROM invoice_items LIMIT 1") == [
        ("DECIMAL(18,2)",)
    ]
    # Each month's materialization describes that month: its own items, its own invoice.
    events = {
        (m.asset_key.path[0], m.partition): m.metadata
        for m in result.asset_materializations_for_node("invoice_tables")
    }
    for invoice in invoices:
        month = invoice["invoice_period"]
        month_items = sandbox.data.items[invoice["invoice_uuid"]]
        items_meta, invoices_meta = events["invoice_items", month], events["invoices", month]
        assert items_meta["dagster/row_count"].value == len(month_items)
        assert items_meta["total_amount"].value == (
            f"{sum(Decimal(it['amount']) for it in month_items):,.2f} USD"
        )
        assert invoices_meta["total_amount"].value == f"{Decimal(invoice['amount']):,.2f} USD"
        assert invoices_meta["dagster/row_count"].value == 1
        assert "Droplets" in items_meta["spend_by_product"].value
        assert other_months(items_meta["spend_by_product"].value, month, periods) == []
        # The run's own line and plot are on every month, named as the run's.
        assert invoices_meta["run"].value == (
            f"{periods[0]}…{periods[-1]}, 6 month(s): 6 invoices, {total:,.2f} USD"
        )
        # The spend plot: one bar per month, the largest month's bar full width.
        plot = invoices_meta["run_by_month"].value
        assert plot.count("█" * 24) >= 1 and all(p in plot for p in periods)
    # One list request for the whole range, then the item pages.
    list_calls = [r for r in sandbox.requests if r["path"] == "/v2/customers/my/invoices"]
    assert len(list_calls) == 1


def test_a_sources_checks_run_in_one_step_each_with_its_own_result(
    sandbox, warehouse_path, materialize, pipeline_resources
):
    result = materialize(sandbox, warehouse_path, "2024-05")
    declared = {check.name for check in INVOICES.checks}
    assert {c.check_name for c in result.get_asset_check_evaluations()} == declared
    check_steps = [
        e.step_key for e in result.all_events if e.is_step_start and "check" in e.step_key
    ]
    assert check_steps == ["invoices_checks"]
    # One check alone, as the UI's "Execute" on a single check asks for it.
    only = dg.AssetCheckKey(dg.AssetKey("invoice_items"), "unique_invoice_lines")
    alone = dg.materialize(
        source_defs(INVOICES),
        resources=pipeline_resources(sandbox, warehouse_path),
        selection=dg.AssetSelection.checks(only),
    )
    assert [(c.asset_key, c.check_name) for c in alone.get_asset_check_evaluations()] == [
        (only.asset_key, only.name)
    ]


def test_the_freshness_job_runs_both_checks_in_one_step():
    result = (
        load_defs()
        .resolve_job_def("freshness_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral())
    )
    evaluations = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    # Nothing was loaded into this instance: both say so, as warnings.
    assert evaluations == {"closed_month_loaded_by_the_4th": False, "open_month_fresh": False}
    assert result.success
    assert [e.step_key for e in result.all_events if e.is_step_start] == ["freshness_checks"]


def test_rerun_is_idempotent(sandbox, warehouse_path, materialize, rows):
    materialize(sandbox, warehouse_path, "2024-03", "2024-04")
    query = "SELECT * EXCLUDE (loaded_at) FROM invoice_items ORDER BY invoice_uuid, line_number"
    first = rows(warehouse_path, query)
    materialize(sandbox, warehouse_path, "2024-03", "2024-04")
    assert rows(warehouse_path, query) == first
    assert rows(warehouse_path, "SELECT count(*) FROM invoices") == [(2,)]


def test_failed_run_keeps_previous_rows(sandbox, warehouse_path, materialize, rows):
    materialize(sandbox, warehouse_path, "2024-05")
    before = rows(warehouse_path, "SELECT count(*), sum(amount) FROM invoice_items")
    invoice = sandbox.data.invoice_for("2024-05")
    sandbox.inject(f"^{INVOICE_PATH.format(key=invoice['invoice_uuid'])}$", 404)
    result = materialize(sandbox, warehouse_path, "2024-05", raise_on_error=False)
    assert not result.success
    assert rows(warehouse_path, "SELECT count(*), sum(amount) FROM invoice_items") == before


def test_preview_month_is_replaced_by_the_final_invoice(sandbox, warehouse_path, materialize, rows):
    preview = sandbox.data.preview
    month = preview["invoice_period"]
    materialize(sandbox, warehouse_path, month)
    assert rows(warehouse_path, "SELECT DISTINCT status FROM invoice_items") == [("preview",)]

    final_uuid = "f0000000-0000-4000-8000-000000000001"
    sandbox.data = sandbox.data.reissued(month, final_uuid)
    materialize(sandbox, warehouse_path, month)
    assert rows(warehouse_path, "SELECT invoice_uuid, status FROM invoices") == [
        (final_uuid, "final")
    ]
    assert rows(warehouse_path, "SELECT DISTINCT status FROM invoice_items") == [("final",)]


def test_raw_pages_replay_without_the_api(
    sandbox, warehouse_path, materialize, rows, pipeline_resources
):
    materialize(sandbox, warehouse_path, "2024-02")
    requests_before = len(sandbox.requests)
    # The tables and their checks, without the raw asset: rebuilt from raw.
    tables = dg.AssetSelection.assets("invoices", "invoice_items")
    result = dg.materialize(
        ASSETS,
        resources=pipeline_resources(sandbox, warehouse_path),
        partition_key="2024-02",
        selection=tables | tables.checks(),
    )
    assert result.success
    assert {m.asset_key.path[0] for m in result.get_asset_materialization_events()} == {
        "invoices",
        "invoice_items",
    }
    assert len(sandbox.requests) == requests_before
    assert rows(working_file(warehouse_path), "SELECT count(*) FROM raw.fetches") == [(1,)]


def test_tables_alone_without_raw_fail_saying_what_to_load(
    sandbox, warehouse_path, pipeline_resources, failure_message
):
    tables = dg.AssetSelection.assets("invoices", "invoice_items")
    result = dg.materialize(
        ASSETS,
        resources=pipeline_resources(sandbox, warehouse_path),
        partition_key="2024-02",
        selection=tables,
        raise_on_error=False,
    )
    assert not result.success
    assert (
        "no team has a good raw fetch of invoices for 2024-02…2024-02: materialize "
        "raw_invoice_pages first" in failure_message(result)
    )
    assert sandbox.requests == []


@pytest.mark.parametrize("key", ["2024-13", "../x", "2024-05'; DROP TABLE invoices; --"])
def test_bad_partition_keys_fail_before_any_request(
    sandbox, warehouse_path, materialize, pipeline_resources, key
):
    """Dagster rejects keys outside the partitions; our own check names the bad key too."""
    # One partition, as a schedule or the UI's partition picker asks for it.
    with pytest.raises(
        dg.DagsterUnknownPartitionError,
        match=f"Could not find a partition with key `{re.escape(key)}`",
    ):
        dg.materialize(
            ASSETS, resources=pipeline_resources(sandbox, warehouse_path), partition_key=key
        )
    # A range, as a single-run backfill asks for it: Dagster cannot read the key as a month.
    with pytest.raises(ValueError, match=f"time data {re.escape(repr(key))} does not match format"):
        materialize(sandbox, warehouse_path, key)
    assert sandbox.requests == []
    with pytest.raises(SettingsError, match=f"partition key {re.escape(repr(key))}"):
        validate_periods(["2024-01", key])


def test_schedules_target_the_closed_month_and_the_open_month():
    when = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    closed = closed_month_schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert (closed.partition_key, closed.run_key) == ("2026-02", "2026-02")
    january = datetime(2026, 1, 4, 6, 0, tzinfo=UTC)
    closed = closed_month_schedule(dg.build_schedule_context(scheduled_execution_time=january))
    assert closed.partition_key == "2025-12"
    daily = preview_refresh_schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert (daily.partition_key, daily.run_key) == ("2026-03", "2026-03-04")


# A clock in the open month 2024-04: 2024-01…2024-04 is three closed months and the open one.
BACKFILL_NOW = datetime(2024, 4, 10, 9, 30, tzinfo=UTC)
BACKFILL = ["2024-01", "2024-02", "2024-03", "2024-04"]


def range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def test_a_backfill_records_the_inventory_once_per_run_not_per_month(tmp_path, pipeline_resources):
    """The inventory is a snapshot of now: a run of every source over four months records one
    materialization of each inventory table, of no month, while each month source records one
    per month. The daily run of the open month adds one more snapshot, and no month."""
    partitions = monthly_partitions(BACKFILL[0])
    with time_machine.travel(BACKFILL_NOW, tick=True), SandboxServer(now=BACKFILL_NOW) as server:
        defs = dg.Definitions(
            assets=build_assets(partitions),
            jobs=[invoices_job(partitions)],
            resources=pipeline_resources(server, tmp_path / "warehouse.duckdb"),
        )
        job = defs.resolve_job_def(INVOICES_JOB)
        with dg.instance_for_test() as instance:
            backfill = job.execute_in_process(
                instance=instance, tags=range_tags(BACKFILL[0], BACKFILL[-1])
            )
            assert backfill.success
            inventory = [
                (e.asset_key, e.partition)
                for e in backfill.get_asset_materialization_events()
                if e.asset_key in INVENTORY_TABLES
            ]
            assert sorted(inventory) == sorted((key, None) for key in INVENTORY_TABLES)
            for key in INVENTORY_TABLES:
                (record,) = instance.fetch_materializations(key, limit=10).records
                assert (record.run_id, record.partition_key) == (backfill.run_id, None)
                metadata = record.asset_materialization.metadata
                assert metadata["run"].value.startswith("the snapshot of 2024-04: ")
                assert "months" not in metadata and metadata["dagster/row_count"].value > 0
                assert instance.get_materialized_partitions(key) == set()
            # Every month source still records each month of the range.
            for source in SOURCES:
                if not source.snapshot:
                    key = dg.AssetKey(source.tables[0].name)
                    assert instance.get_materialized_partitions(key) == set(BACKFILL), key

            daily = job.execute_in_process(instance=instance, partition_key=BACKFILL[-1])
            assert daily.success
            for key in INVENTORY_TABLES:
                records = instance.fetch_materializations(key, limit=10).records
                assert [(r.run_id, r.partition_key) for r in records] == [
                    (daily.run_id, None),
                    (backfill.run_id, None),
                ]
                latest = instance.get_latest_materialization_event(key)
                assert latest is not None and latest.run_id == daily.run_id
            invoices = dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("invoices"), asset_partitions=[BACKFILL[-1]]
            )
            assert len(instance.fetch_materializations(invoices, limit=10).records) == 2
    # Each inventory read records the month it was taken in, not the months of its run (raw is
    # kept in the loader's working file).
    with duckdb.connect(str(working_file(tmp_path / "warehouse.duckdb")), read_only=True) as con:
        fetched = con.execute(
            "SELECT source, first_period, last_period, count(*) FROM raw.fetches "
            "WHERE list_contains(CAST(? AS VARCHAR[]), source) GROUP BY ALL ORDER BY source",
            [[source.name for source in INVENTORY]],
        ).fetchall()
    assert fetched == sorted((s.name, "2024-04", "2024-04", 2) for s in INVENTORY)
