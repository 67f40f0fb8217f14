"""`make run`: load every month from the start period through the open month, then summarize."""

from __future__ import annotations

import sys

import dagster as dg

from pipeline.settings import SettingsError, get_settings
from pipeline.warehouse.store import Warehouse

SUMMARY = """
    SELECT i.invoice_period AS month,
           count(*) AS invoices,
           CAST(sum(i.items_total) AS BIGINT) AS items,
           sum(i.amount) AS total_usd,
           string_agg(DISTINCT i.status, ',') AS status
    FROM invoices AS i
    WHERE list_contains(CAST($periods AS VARCHAR[]), i.invoice_period)
    GROUP BY ALL
    ORDER BY month
"""


def main() -> int:
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Imported after the check, so a bad setting prints one line instead of a traceback.
    from pipeline.definitions import defs
    from pipeline.partitions import monthly_partitions

    keys = monthly_partitions.get_partition_keys()
    result = defs.resolve_job_def("invoices_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
        raise_on_error=False,
    )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data:
                print(event.step_failure_data.error.message.strip(), file=sys.stderr)
        print("The run failed; the warehouse keeps the previous rows.", file=sys.stderr)
        return 1
    warehouse = Warehouse(settings.warehouse_path)
    summary = warehouse.query(SUMMARY, {"periods": keys})
    print()
    print(summary.to_string(index=False))
    print(
        f"\n{len(summary)} months, {int(summary['invoices'].sum())} invoices, "
        f"{int(summary['items'].sum())} items, {summary['total_usd'].sum()} USD "
        f"→ {warehouse.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
