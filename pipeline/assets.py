"""Assets generated from the source declarations: one factory, every source the same recipe.

A source with `raw_asset` gets two steps (fetch + raw landing, then normalize + swap), so its
tables can be rebuilt from raw without calling the API; others run the whole recipe in one step.
"""

from collections.abc import Iterator

import dagster as dg

from pipeline import engine
from pipeline.metadata import fetch_metadata, load_summary, table_metadata
from pipeline.partitions import WAREHOUSE_POOL, monthly_partitions, run_periods, single_run
from pipeline.resources import BillingApiResource, WarehouseResource
from pipeline.sources import SOURCES, Source

GROUP = "digitalocean_billing"
PARTITIONED = dict(
    partitions_def=monthly_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
)


def _upstream(source: Source) -> list[dg.AssetKey]:
    """A child source reads its parent's raw fetch."""
    parent = source.parent
    if parent is None:
        return []
    return [dg.AssetKey(parent.raw_asset or parent.tables[0].name)]


def _tables_results(
    context: dg.AssetExecutionContext, source: Source, result: engine.Normalized, periods: list
) -> Iterator[dg.MaterializeResult]:
    for warning in result.warnings:
        context.log.warning(warning)
    context.log.info(load_summary(source.tables, result.tables, periods))
    for table in source.tables:
        yield dg.MaterializeResult(
            asset_key=table.name,
            metadata=table_metadata(table, result.tables[table.name], periods),
        )


def raw_asset(source: Source) -> dg.AssetsDefinition:
    """Fetch the months' pages and land them in `raw`, then fail if they did not add up."""

    @dg.asset(
        name=source.raw_asset,
        deps=_upstream(source),
        kinds={"duckdb"},
        description=f"Every page of {source.name} as the API returned it (schema raw).",
        **PARTITIONED,
    )
    def _raw(
        context: dg.AssetExecutionContext,
        digitalocean: BillingApiResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        periods = run_periods(context)
        store = warehouse.open()
        with digitalocean.client(context.log) as api:
            batch = engine.fetch(source, api, store, periods, context.run_id)
            stats = api.stats
        engine.land(store, batch)
        return dg.MaterializeResult(metadata=fetch_metadata(batch, stats))

    return _raw


def tables_asset(source: Source) -> dg.AssetsDefinition:
    """The source's tables: from its landed raw pages, or (without a raw asset) the whole
    recipe in one step."""
    deps = [dg.AssetKey(source.raw_asset)] if source.raw_asset else _upstream(source)
    specs = [
        dg.AssetSpec(t.name, deps=deps, kinds=set(source.kinds), description=t.description)
        for t in source.tables
    ]
    name = source.tables_step or source.tables[0].name
    resources = {"warehouse"} | (set() if source.raw_asset else {"digitalocean"})

    @dg.multi_asset(name=name, specs=specs, required_resource_keys=resources, **PARTITIONED)
    def _tables(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        periods = run_periods(context)
        store = context.resources.warehouse.open()
        if source.raw_asset:
            result = engine.replay(source, store, periods)
        else:
            with context.resources.digitalocean.client(context.log) as api:
                _, result = engine.load(source, api, store, periods, context.run_id)
        yield from _tables_results(context, source, result, periods)

    return _tables


def source_assets(source: Source) -> list[dg.AssetsDefinition]:
    return ([raw_asset(source)] if source.raw_asset else []) + [tables_asset(source)]


ASSETS = [asset for source in SOURCES for asset in source_assets(source)]
