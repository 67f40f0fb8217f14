"""Assets generated from the source declarations: one factory, every source the same recipe.

Each source is one step. A month source's step is partitioned by month; a snapshot source's (the
inventory, a read of the account as it is now) is not: each materialization is one snapshot, so a
backfill does not show months filled from today's read. A source with `raw_asset` shows its
landed pages as an asset of their own and can run in part: the raw asset alone fetches and lands,
its tables alone rebuild from raw without calling the API. Every team is loaded side by side,
each team × month all or nothing; a failed team fails the step, named, after the other teams are
committed.
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from pipeline.defs.metadata import (
    fetch_metadata,
    load_summary,
    step_summary,
    swapped_teams,
    table_metadata,
)
from pipeline.defs.partitions import WAREHOUSE_POOL, monthly_partitions, run_periods, single_run
from pipeline.defs.resources import BillingApiResource, WarehouseResource
from pipeline.engine import batches
from pipeline.engine.progress import TEAM_LOGGER, failures_summary
from pipeline.months import month_of
from pipeline.settings import SAMPLE_DATA
from pipeline.sources import SOURCES, Source

GROUP = "digitalocean_billing"
TEAM_DEBUG = logging.getLogger(TEAM_LOGGER)


def _upstream(source: Source) -> list[dg.AssetKey]:
    """A child source reads its parent's raw fetch."""
    parent = source.parent
    if parent is None:
        return []
    return [dg.AssetKey(parent.raw_asset or parent.tables[0].name)]


def _specs(source: Source) -> list[dg.AssetSpec]:
    specs = []
    deps = _upstream(source)
    if source.raw_asset:
        specs.append(
            dg.AssetSpec(
                source.raw_asset,
                deps=deps,
                kinds={"duckdb"},
                description=f"Every page of {source.name} as the API returned it (schema raw).",
            )
        )
        deps = [dg.AssetKey(source.raw_asset)]
    specs += [
        dg.AssetSpec(t.name, deps=deps, kinds=set(source.kinds), description=t.description)
        for t in source.tables
    ]
    return specs


def _results(
    context: dg.AssetExecutionContext,
    source: Source,
    outcome: batches.StepOutcome,
    periods: list[str],
    fetched: bool,
    tables: bool,
    commits: int,
    sample: bool = False,
) -> Iterator[dg.MaterializeResult]:
    several = len(outcome.results) + len(outcome.failures) > 1
    for team, load in outcome.results.items():
        if load.result is not None:
            for warning in load.result.warnings:
                context.log.warning(f"{team.name}: {warning}")
            line = load_summary(team, source.tables, load.result.tables, periods)
            if several:  # each team's line is in the metadata's by_team; the step says the sum
                TEAM_DEBUG.debug(line)
            else:
                context.log.info(line)
    if several:
        context.log.info(step_summary(source.tables, outcome, periods, tables))
    failures_summary(outcome.failures, context.log)
    outcome.raise_failures()
    # The UI says which materializations are the sandbox's, so none passes for a real bill.
    origin = {"data": SAMPLE_DATA} if sample else {}
    if fetched and source.raw_asset:
        yield dg.MaterializeResult(
            asset_key=source.raw_asset,
            metadata={
                **origin,
                **fetch_metadata(outcome.results),
                "write_transactions": commits,
            },
        )
    if tables:
        teams = swapped_teams(outcome.results)
        for table in source.tables:
            run, months = table_metadata(table, outcome.rows(table.name), teams, periods)
            for month, metadata in months.items():
                context.add_asset_metadata(metadata, asset_key=table.name, partition_key=month)
            yield dg.MaterializeResult(
                asset_key=table.name,
                metadata={**origin, **run, "write_transactions": commits},
            )


def source_partitions(
    source: Source, partitions: dg.PartitionsDefinition | None = None
) -> dg.PartitionsDefinition | None:
    """The months for a month source; none for a snapshot source, which holds no month: it is
    read once per run, whichever months the run covers."""
    if source.snapshot:
        return None
    return partitions or monthly_partitions()


def step_periods(context: dg.AssetExecutionContext, source: Source) -> list[str]:
    """The months the step covers: the run's, or for a snapshot the month it is taken in (what
    its raw fetch records as first and last period, and raw retention counts it under)."""
    if source.snapshot:
        return [month_of(run_started(context))]  # the run's own "now", as Dagster recorded it
    return run_periods(context)


def source_asset(
    source: Source, partitions: dg.PartitionsDefinition | None = None
) -> dg.AssetsDefinition:
    """The source's step: fetch + raw landing, then normalize + swap, for every team."""

    @dg.multi_asset(
        name=source.tables_step or source.tables[0].name,
        specs=_specs(source),
        can_subset=source.raw_asset is not None,
        partitions_def=source_partitions(source, partitions),
        # A range of months is one run; an unpartitioned snapshot runs once in that run too.
        backfill_policy=single_run,
        pool=WAREHOUSE_POOL,
        group_name=GROUP,
    )
    def _step(
        context: dg.AssetExecutionContext,
        digitalocean: BillingApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult]:
        periods = step_periods(context, source)
        selected = context.selected_asset_keys
        tables = any(dg.AssetKey(t.name) in selected for t in source.tables)
        fetches = source.raw_asset is None or dg.AssetKey(source.raw_asset) in selected
        # No warehouse connection is held here: the engine opens the working file only to
        # record teams, land pages and swap months, never while it waits on the API. What the
        # step committed is published as it ends, before its results are reported: a failed
        # publication fails the step, and no month is shown materialized that readers lack.
        with warehouse.publishing(context.log) as store:
            commits = store.commits
            if fetches:
                with digitalocean.accounts(context.log) as accounts:
                    outcome = batches.load_teams(
                        source,
                        accounts,
                        store,
                        periods,
                        context.log,
                        run_id=context.run_id,
                        tables=tables,
                        known=digitalocean.known_teams,
                        workers=digitalocean.team_workers,
                    )
            else:
                with store.session():
                    outcome = batches.replay_teams(source, store, periods, now=run_started(context))
            commits = store.commits - commits
            results = list(
                _results(
                    context,
                    source,
                    outcome,
                    periods,
                    fetches,
                    tables,
                    commits,
                    digitalocean.sample_data,
                )
            )
        yield from results

    return _step


def run_started(context: dg.AssetExecutionContext) -> datetime:
    """When Dagster started this run: a replay's rows carry it as their loaded_at, as a load's
    carry their fetch's time."""
    record = context.instance.get_run_record_by_id(context.run_id)
    assert record is not None  # the run being executed
    if record.start_time is not None:
        return datetime.fromtimestamp(record.start_time, UTC)
    return record.create_timestamp.astimezone(UTC)


def build_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """One step per source: the month sources on these months, the snapshots unpartitioned."""
    return [source_asset(source, partitions) for source in SOURCES]
