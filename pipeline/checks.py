"""Asset checks generated from the sources' declared checks: one query each, failures listed."""

import dagster as dg

from pipeline.partitions import WAREHOUSE_POOL
from pipeline.resources import WarehouseResource
from pipeline.sources import SOURCES, Source
from pipeline.sources.base import Check

SHOWN_ROWS = 20


def check_result(warehouse: WarehouseResource, check: Check) -> dg.AssetCheckResult:
    """Run the check's query: its rows are the failures, shown in the check's metadata."""
    bad = warehouse.open().query(check.sql)
    metadata: dict[str, object] = {"failing_rows": len(bad)}
    if len(bad):
        metadata["examples"] = dg.MetadataValue.md(
            bad.head(SHOWN_ROWS).astype(str).to_markdown(index=False)
        )
    else:
        metadata["result"] = check.passed
    severity = dg.AssetCheckSeverity.WARN if check.warn_only else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(passed=bad.empty, severity=severity, metadata=metadata)


def asset_check(check: Check) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        name=check.name,
        asset=check.table,
        description=check.description,
        blocking=check.blocking,
        pool=WAREHOUSE_POOL,
        additional_deps=list(check.also_reads),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return check_result(warehouse, check)

    return _check


BY_SOURCE = {source.name: [asset_check(check) for check in source.checks] for source in SOURCES}
CHECKS = [check for checks in BY_SOURCE.values() for check in checks]


def source_checks(source: Source) -> list[dg.AssetChecksDefinition]:
    """The checks of one source."""
    return BY_SOURCE[source.name]
