"""Asset checks on the stored tables: completeness, reconciliation, uniqueness, partitioning.

Each check is one set-based query over the warehouse; a failure lists the offending rows.
"""

import dagster as dg

from pipeline.partitions import WAREHOUSE_POOL
from pipeline.resources import WarehouseResource

ITEMS_MATCH_META_TOTAL = """
    SELECT i.invoice_uuid, i.invoice_period, i.items_total AS meta_total,
           count(it.line_number) AS loaded
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY ALL
    HAVING loaded <> coalesce(i.items_total, -1)
    ORDER BY i.invoice_period
"""
ITEMS_SUM_TO_INVOICE = """
    SELECT i.invoice_uuid, i.invoice_period, i.status, i.amount AS invoice_amount,
           coalesce(sum(it.amount), 0) AS items_sum,
           coalesce(sum(it.amount), 0) - i.amount AS difference
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY i.invoice_uuid, i.invoice_period, i.status, i.amount
    HAVING difference <> 0
    ORDER BY i.invoice_period
"""
DUPLICATE_LINES = """
    SELECT invoice_uuid, line_number, count(*) AS copies
    FROM invoice_items
    GROUP BY ALL
    HAVING copies > 1
"""
PERIOD_MISMATCH = """
    SELECT it.invoice_uuid, it.invoice_period AS item_period, i.invoice_period AS invoice_period,
           count(*) AS items
    FROM invoice_items AS it
    LEFT JOIN invoices AS i USING (invoice_uuid)
    WHERE i.invoice_period IS DISTINCT FROM it.invoice_period
       OR NOT regexp_full_match(it.invoice_period, '\\d{4}-(0[1-9]|1[0-2])')
    GROUP BY ALL
"""

UNKNOWN_DURATION_UNITS = """
    SELECT duration_unit, count(*) AS items, min(invoice_period) AS first_period
    FROM invoice_items
    WHERE duration IS NOT NULL AND duration_hours IS NULL
    GROUP BY ALL
"""


def check_query(
    warehouse: WarehouseResource,
    sql: str,
    passed_text: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    bad = warehouse.open().query(sql)
    metadata: dict[str, object] = {"failing_rows": len(bad)}
    if len(bad):
        metadata["examples"] = dg.MetadataValue.md(
            bad.head(20).astype(str).to_markdown(index=False)
        )
    else:
        metadata["result"] = passed_text
    return dg.AssetCheckResult(passed=bad.empty, severity=severity, metadata=metadata)


@dg.asset_check(asset="invoice_items", blocking=True, pool=WAREHOUSE_POOL)
def items_match_meta_total(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Per invoice, the loaded items equal the count the API announced (meta.total)."""
    return check_query(warehouse, ITEMS_MATCH_META_TOTAL, "every invoice is complete")


@dg.asset_check(asset="invoice_items", pool=WAREHOUSE_POOL)
def items_sum_to_invoice_amount(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Per invoice, the items' amounts add up to the invoice amount; differences are listed."""
    return check_query(
        warehouse,
        ITEMS_SUM_TO_INVOICE,
        "every invoice's items add up to its amount",
        dg.AssetCheckSeverity.WARN,
    )


@dg.asset_check(asset="invoice_items", blocking=True, pool=WAREHOUSE_POOL)
def unique_invoice_lines(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """No (invoice_uuid, line_number) appears twice."""
    return check_query(warehouse, DUPLICATE_LINES, "no duplicate lines")


@dg.asset_check(asset="invoice_items", blocking=True, pool=WAREHOUSE_POOL)
def items_in_their_invoice_period(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Every item sits in the partition (invoice_period) of the invoice it belongs to."""
    return check_query(warehouse, PERIOD_MISMATCH, "every item is in its invoice's period")


@dg.asset_check(asset="invoice_items", pool=WAREHOUSE_POOL)
def durations_in_known_units(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Durations in a unit we cannot convert load with NULL duration_hours; this lists them."""
    return check_query(
        warehouse,
        UNKNOWN_DURATION_UNITS,
        "every duration converts to hours",
        dg.AssetCheckSeverity.WARN,
    )


invoice_item_checks = [
    durations_in_known_units,
    items_match_meta_total,
    items_sum_to_invoice_amount,
    unique_invoice_lines,
    items_in_their_invoice_period,
]
