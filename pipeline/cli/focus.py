"""Write the FOCUS 1.2 cost and usage dataset (`focus_costs`) as files FinOps tools read.

`python -m pipeline.cli.focus [--from YYYY-MM] [--to YYYY-MM] [--each-month] [--csv] [--out DIR]`
writes `<out>/focus_costs_<first>_<last>.parquet` for the range (default: every loaded billing
period), or one `focus_costs_<YYYY-MM>.parquet` per billing period with `--each-month`; `--csv`
adds a CSV beside each. The files are what the FinOps Foundation's `focus-validator` reads as
they are: JSON columns (Tags) as strings, money and quantities as decimals, dates as UTC
timestamps (ISO 8601 `…Z` text in CSV).
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

from pipeline.settings import SAMPLE_DATA, SettingsError, get_settings, validate_period
from pipeline.warehouse.store import Warehouse

DEFAULT_OUT = Path("data/focus")
# Constant queries; months are bound parameters. Tags is JSON in the view, text in the files.
PERIODS = "SELECT DISTINCT x_InvoicePeriod FROM focus_costs ORDER BY 1"
ROWS = """
    SELECT * REPLACE (CAST(Tags AS VARCHAR) AS Tags)
    FROM focus_costs
    WHERE x_InvoicePeriod BETWEEN ? AND ?
    ORDER BY x_InvoicePeriod, x_InvoiceUuid, x_LineNumber
"""
# CSV has no types: timestamps are written as FOCUS's ISO 8601 UTC text.
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def focus_table(con: duckdb.DuckDBPyConnection, first: str, last: str) -> pa.Table:
    """The FOCUS rows of billing periods `first`…`last`, typed as the files carry them."""
    return con.sql(ROWS, params=[first, last]).to_arrow_table()


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
) -> list[Path]:
    """Write the FOCUS files for the billing periods `first`…`last` (default: all loaded)."""
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
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for start, end in ranges:
            table = focus_table(con, start, end)
            stem = f"focus_costs_{start}" if start == end else f"focus_costs_{start}_{end}"
            for suffix in (".parquet", ".csv") if csv else (".parquet",):
                path = out / (stem + suffix)
                _write(table, path)
                written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", help="first billing period, YYYY-MM")
    parser.add_argument("--to", dest="last", help="last billing period, YYYY-MM")
    parser.add_argument("--each-month", action="store_true", help="one file per billing period")
    parser.add_argument("--csv", action="store_true", help="a CSV beside each Parquet file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        warehouse = Warehouse(settings.warehouse)
        files = write_focus(
            warehouse, args.out, args.first, args.last, each_month=args.each_month, csv=args.csv
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
