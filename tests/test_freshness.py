"""Freshness checks: the closed month by the 4th, the open month within 36 hours."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from pipeline.defs.assets import source_asset
from pipeline.defs.freshness import (
    closed_month_due,
    closed_month_loaded_by_the_4th,
    closed_month_verdict,
    open_month_fresh,
    open_month_verdict,
)
from pipeline.months import month_of
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
