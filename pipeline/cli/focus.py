"""Write FinOps FOCUS datasets (1.2, 1.3 or 1.4) as files FinOps tools read.

`python -m pipeline.cli.focus [--version 1.2|1.3|1.4] [--from YYYY-MM] [--to YYYY-MM]
[--each-month] [--csv] [--out DIR]` writes, under `<out>/<version>/`, one Parquet file per
dataset of that version (`cost_and_usage`; 1.4 adds `billing_period` and `invoice_detail`) for the
range (default: every loaded billing period), named `<dataset>_<first>_<last>.parquet`, or one
`<dataset>_<YYYY-MM>.parquet` per billing period with `--each-month`; `--csv` adds a CSV beside
each. The files are what the FinOps Foundation's `focus-validator` reads as they are: JSON columns
as strings, money and quantities as decimals, dates as UTC timestamps (ISO 8601 `…Z` in CSV).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.settings import SAMPLE_DATA, SettingsError, load_settings, validate_period
from pipeline.warehouse.store import Warehouse

DEFAULT_OUT = Path("data/focus")
# Constant queries, one per dataset of each version; months are bound parameters. JSON columns
# are JSON in the views, text in the files. Views: pipeline/warehouse/focus*.sql.
DATASETS: dict[str, dict[str, str]] = {
    "1.2": {
        "cost_and_usage": """
            SELECT * REPLACE (CAST(Tags AS VARCHAR) AS Tags) FROM focus_costs
            WHERE x_InvoicePeriod BETWEEN ? AND ?
            ORDER BY x_InvoicePeriod, x_InvoiceUuid, x_LineNumber
        """,
    },
    "1.3": {
        "cost_and_usage": """
            SELECT * REPLACE (CAST(Tags AS VARCHAR) AS Tags) FROM focus_1_3_cost_and_usage
            WHERE x_InvoicePeriod BETWEEN ? AND ?
            ORDER BY x_InvoicePeriod, x_InvoiceUuid, x_LineNumber, x_SummaryPart
        """,
    },
    "1.4": {
        "cost_and_usage": """
            SELECT * REPLACE (CAST(Tags AS VARCHAR) AS Tags) FROM focus_1_4_cost_and_usage
            WHERE x_InvoicePeriod BETWEEN ? AND ?
            ORDER BY x_InvoicePeriod, x_InvoiceUuid, x_LineNumber, x_SummaryPart
        """,
        "billing_period": """
            SELECT * FROM focus_1_4_billing_period
            WHERE x_InvoicePeriod BETWEEN ? AND ?
            ORDER BY x_InvoicePeriod, x_BillingAccountId
        """,
        "invoice_detail": """
            SELECT * REPLACE (CAST(InvoiceDetailGrain AS VARCHAR) AS InvoiceDetailGrain)
            FROM focus_1_4_invoice_detail
            WHERE x_InvoicePeriod BETWEEN ? AND ?
            ORDER BY x_InvoicePeriod, x_InvoiceUuid, x_LineNumber, x_SummaryPart
        """,
    },
}
VERSIONS = tuple(DATASETS)
# The newest version the tests check (tests/test_focus.py): what `make focus` writes by default.
DEFAULT_VERSION = "1.4"
PERIODS = "SELECT DISTINCT invoice_period FROM invoices ORDER BY 1"
# CSV has no types: timestamps are written as FOCUS's ISO 8601 UTC text.
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def focus_table(
    con: duckdb.DuckDBPyConnection,
    first: str,
    last: str,
    version: str = DEFAULT_VERSION,
    dataset: str = "cost_and_usage",
) -> pa.Table:
    """One dataset's rows for billing periods `first`…`last`, typed as the files carry them."""
    return con.sql(DATASETS[version][dataset], params=[first, last]).to_arrow_table()


def _write(table: pa.Table, path: Path) -> None:
    """Parquet (or CSV, by suffix) written beside `path`, then renamed over it: no half files."""
    staging = path.with_name(path.name + ".tmp")
    if path.suffix == ".csv":
        columns = [
            pc.strftime(column, format=ISO_UTC, locale="C")
            if pa.types.is_timestamp(column.type)
            else column
            for column in table.columns
        ]
        pa_csv.write_csv(pa.table(columns, names=table.column_names), staging)
    else:
        pq.write_table(table, staging, compression="zstd")
    staging.replace(path)


def write_focus(
    warehouse: Warehouse,
    out: Path = DEFAULT_OUT,
    first: str | None = None,
    last: str | None = None,
    *,
    each_month: bool = False,
    csv: bool = False,
    version: str = DEFAULT_VERSION,
) -> list[Path]:
    """Write a FOCUS version's files for the billing periods `first`…`last` (default: all
    loaded) under `out/<version>/`."""
    if version not in DATASETS:
        raise SettingsError(f"FOCUS version {version!r} is not one of {', '.join(VERSIONS)}")
    if not warehouse.path.exists():
        raise SettingsError(f"no warehouse at {warehouse.path}: load it first (make run)")
    with warehouse.connect(read_only=True) as con:
        periods = [p for (p,) in con.execute(PERIODS).fetchall()]
        first = validate_period(first, "--from") if first else (periods[0] if periods else None)
        last = validate_period(last, "--to") if last else (periods[-1] if periods else None)
        chosen = [p for p in periods if first is not None and first <= p <= last]
        if not chosen:
            raise SettingsError(f"no billing period loaded between {first} and {last}")
        ranges = [(p, p) for p in chosen] if each_month else [(chosen[0], chosen[-1])]
        folder = out / version
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for start, end in ranges:
            for dataset in DATASETS[version]:
                table = focus_table(con, start, end, version, dataset)
                stem = f"{dataset}_{start}" if start == end else f"{dataset}_{start}_{end}"
                for suffix in (".parquet", ".csv") if csv else (".parquet",):
                    path = folder / (stem + suffix)
                    _write(table, path)
                    written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        choices=VERSIONS,
        default=DEFAULT_VERSION,
        help="FOCUS version (default: %(default)s)",
    )
    parser.add_argument("--from", dest="first", help="first billing period, YYYY-MM")
    parser.add_argument("--to", dest="last", help="last billing period, YYYY-MM")
    parser.add_argument("--each-month", action="store_true", help="one file per billing period")
    parser.add_argument("--csv", action="store_true", help="a CSV beside each Parquet file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        warehouse = Warehouse(settings.warehouse)
        files = write_focus(
            warehouse,
            args.out,
            args.first,
            args.last,
            each_month=args.each_month,
            csv=args.csv,
            version=args.version,
        )
    except SettingsError as exc:
        print(f"make focus: {exc}", file=sys.stderr)
        return 2
    what = f" ({SAMPLE_DATA})" if settings.sample_data else ""
    for path in files:
        print(f"wrote {path}{what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
