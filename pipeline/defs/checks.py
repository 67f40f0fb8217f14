"""Asset checks generated from the sources' declared checks: one query each, failures listed.

A source's checks run together in one step (a multi-asset check): each keeps its own status,
severity and blocking in the UI, and a run pays one step's start-up instead of one per check.
"""

from collections.abc import Iterator

import dagster as dg

from pipeline.defs.partitions import WAREHOUSE_POOL
from pipeline.defs.resources import WarehouseResource
from pipeline.sources import SOURCES, Source
from pipeline.sources.base import Check
from pipeline.warehouse.store import Warehouse

SHOWN_ROWS = 20
FINDING_CHARS = 300


def check_key(check: Check) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(check.table), check.name)


def check_result(store: Warehouse, check: Check) -> dg.AssetCheckResult:
    """Run the check's query: its rows are the failures, shown in the check's metadata."""
    bad = store.query(check.sql)
    metadata: dict[str, object] = {"failing_rows": len(bad)}
    if len(bad):
        # One line for `make run`'s summary: how many rows, and the first as column=value.
        first = ", ".join(f"{column}={value}" for column, value in bad.iloc[0].items())
        metadata["finding"] = f"{len(bad)} row(s), the first: {first}"[:FINDING_CHARS]
        metadata["examples"] = dg.MetadataValue.md(
            bad.head(SHOWN_ROWS).astype(str).to_markdown(index=False)
        )
    else:
        metadata["result"] = check.passed
    severity = dg.AssetCheckSeverity.WARN if check.warn_only else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        asset_key=check.table,
        check_name=check.name,
        passed=bad.empty,
        severity=severity,
        metadata=metadata,
    )


def check_spec(check: Check) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        check.name,
        asset=check.table,
        description=check.description,
        blocking=check.blocking,
        additional_deps=list(check.also_reads),
    )


def checks_step(source: Source) -> dg.AssetChecksDefinition:
    """Every check the source declares, in one step; a run may select any of them."""

    @dg.multi_asset_check(
        name=f"{source.name}_checks",
        specs=[check_spec(check) for check in source.checks],
        can_subset=True,
        pool=WAREHOUSE_POOL,
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        with warehouse.publishing(context.log), warehouse.session() as store:
            results = [check_result(store, c) for c in source.checks if check_key(c) in selected]
        yield from results

    return _checks


CHECKS = [checks_step(source) for source in SOURCES if source.checks]
