"""Freshness checks: the closed month by the 4th, the open month within 36 hours."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import time_machine

from pipeline.defs.assets import source_asset
from pipeline.defs.definitions import defs as load_defs
from pipeline.defs.freshness import (
    closed_month_due,
    closed_month_loaded_by_the_4th,
    closed_month_verdict,
    open_month_fresh,
    open_month_verdict,
)
from pipeline.months import month_of
from pipeline.sandbox import SandboxServer
from pipeline.sources import INVOICES


def test_the_closed_month_is_due_from_the_4th():
    assert closed_month_due(datetime(2026, 3, 3, 23, tzinfo=UTC)) == "2026-01"
    assert closed_month_due(datetime(2026, 3, 4, 0, tzinfo=UTC)) == "2026-02"
    assert closed_month_due(datetime(2026, 1, 10, tzinfo=UTC)) == "2025-12"


def test_a_closed_month_counts_only_when_loaded_after_it_closed():
    now = datetime(2026, 3, 10, tzinfo=UTC)
    ok, detail = closed_month_verdict(now, datetime(2026, 3, 4, 6, tzinfo=UTC), "2026-02")
    assert ok and "2026-02 was loaded after it closed" in detail
    late, detail = closed_month_verdict(now, datetime(2026, 2, 27, tzinfo=UTC), "2026-02")
    assert not late and "due by 2026-03-04" in detail and "before it closed" in detail
    assert "make backfill FROM=2026-02" in detail
    never, detail = closed_month_verdict(now, None, "2026-02")
    assert not never and "never loaded" in detail


def test_the_open_month_is_fresh_for_36_hours():
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert open_month_verdict(now, now - timedelta(hours=35), "2026-03")[0]
    stale, detail = open_month_verdict(now, now - timedelta(hours=37), "2026-03")
    assert not stale and "more than 36 h ago" in detail


def test_the_checks_read_the_instance(sandbox, warehouse_path, pipeline_resources):
    now = datetime.now(UTC)
    instance = dg.DagsterInstance.ephemeral()
    months = [closed_month_due(now), month_of(now)]
    for month in months:
        assert dg.materialize(
            [source_asset(INVOICES)],
            resources=pipeline_resources(sandbox, warehouse_path),
            partition_key=month,
            instance=instance,
        ).success
    closed = closed_month_loaded_by_the_4th(instance, now)
    fresh = open_month_fresh(instance, now)
    assert closed.passed and closed.metadata["month"].value == months[0]
    assert fresh.passed and fresh.metadata["month"].value == months[1]
    empty = dg.DagsterInstance.ephemeral()
    assert not closed_month_loaded_by_the_4th(empty, now).passed
    assert not open_month_fresh(empty, now).passed


def freshness_job_verdicts(instance: dg.DagsterInstance) -> dict[str, tuple[bool, str]]:
    """The freshness job as the schedule runs it, on the clock: each check's verdict and month."""
    result = load_defs().resolve_job_def("freshness_job").execute_in_process(instance=instance)
    return {
        c.check_name: (c.passed, c.metadata["month"].value)
        for c in result.get_asset_check_evaluations()
    }


@pytest.mark.parametrize(
    ("moment", "closed_month", "open_month"),
    [
        ("2027-03-01 00:20", "2027-01", "2027-03"),  # February is not due before the 4th
        ("2027-03-04 06:20", "2027-02", "2027-03"),  # the closed month's schedule has run
        ("2028-02-29 13:00", "2028-01", "2028-02"),
    ],
)
def test_on_a_frozen_clock_the_job_judges_the_months_of_that_day(
    tmp_path, pipeline_resources, moment, closed_month, open_month
):
    """The clock is the job's only input: at `moment`, loading the two months it names makes
    both checks pass, and 37 hours without a refresh makes the open month stale."""
    start = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    instance = dg.DagsterInstance.ephemeral()
    with time_machine.travel(start, tick=True) as clock:
        with SandboxServer(now=start) as sandbox:
            assert freshness_job_verdicts(instance) == {
                "closed_month_loaded_by_the_4th": (False, closed_month),
                "open_month_fresh": (False, open_month),
            }
            for month in (closed_month, open_month):
                assert dg.materialize(
                    [source_asset(INVOICES)],
                    resources=pipeline_resources(sandbox, tmp_path / "warehouse.duckdb"),
                    partition_key=month,
                    instance=instance,
                ).success
        assert freshness_job_verdicts(instance) == {
            "closed_month_loaded_by_the_4th": (True, closed_month),
            "open_month_fresh": (True, open_month),
        }
        clock.move_to(start + timedelta(hours=37))
        later = freshness_job_verdicts(instance)
    assert later["closed_month_loaded_by_the_4th"][0]
    assert later["open_month_fresh"][0] is False
