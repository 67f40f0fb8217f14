"""Export every table of every source as Parquet, hive-partitioned by its month column.

`python -m pipeline.cli.export [--months 2024-05 …] [--out data/export]` writes
`<out>/<table>/<month column>=<YYYY-MM>/data.parquet` (`invoice_period` for the invoice tables,
`usage_month` for daily_costs, …), so Spark, Trino, BigQuery or a bucket can read the warehouse
when one DuckDB file is outgrown. Re-exporting a month replaces that month's folders only
(written beside them, then swapped in). `<out>/teams/data.parquet`, the teams' names by
`team_uuid`, is rewritten by every export.
"""

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.defs.partitions import validate_periods
from pipeline.settings import SAMPLE_DATA, load_settings
from pipeline.sources import TABLES as SOURCE_TABLES
from pipeline.warehouse.connection import WarehouseMissingError
from pipeline.warehouse.store import Warehouse

# Every table the sources declare, with the column that holds its month.
TABLES = {name: table.partition_column for name, table in SOURCE_TABLES.items()}
# Constant queries per table (names from the declarations only); months are bound parameters.
# Sorted by every column, so a month's file is the same whatever order its rows were written in
# (a big load writes its row groups on several threads).
MONTH_ROWS = {
    table: f"SELECT * EXCLUDE ({column}) FROM {table} WHERE {column} = ? ORDER BY ALL"  # noqa: S608
    for table, column in TABLES.items()
}
# Table and column names come from the declarations, never from input.
UNION_OF_MONTHS = " UNION ".join(f"SELECT {c} FROM {t}" for t, c in TABLES.items())  # noqa: S608
ALL_MONTHS = UNION_OF_MONTHS + " ORDER BY 1"


def export(warehouse: Warehouse, out: Path, months: Sequence[str] | None = None) -> list[Path]:
    """Write one Parquet file per table and month that has rows (a table with none that month
    gets no folder); return the files written."""
    written: list[Path] = []
    with warehouse.connect(read_only=True) as con:
        if months is None:
            months = [row[0] for row in con.execute(ALL_MONTHS).fetchall()]
        for month in validate_periods(months) if months else []:
            for table, column in TABLES.items():
                rows = con.sql(MONTH_ROWS[table], params=[month]).to_arrow_table()
                folder = out / table / f"{column}={month}"
                if not rows.num_rows:  # no file for no rows; an earlier export's goes too
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                staging = folder.with_name(folder.name + ".tmp")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                pq.write_table(rows, staging / "data.parquet", compression="zstd")
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
                written.append(folder / "data.parquet")
        written.append(_write_teams(con, out))
    return written


def _write_teams(con, out: Path) -> Path:
    """The teams table (names for every `team_uuid`), written beside and swapped in."""
    target = out / "teams" / "data.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".tmp")
    pq.write_table(
        con.sql("SELECT * FROM teams ORDER BY team_uuid").to_arrow_table(),
        staging,
        compression="zstd",
    )
    staging.replace(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", nargs="*", help="YYYY-MM months (default: all loaded)")
    parser.add_argument("--out", type=Path, default=Path("data/export"))
    args = parser.parse_args(argv)
    settings = load_settings()
    warehouse = Warehouse(settings.warehouse)
    try:
        files = export(warehouse, args.out, args.months)
    except WarehouseMissingError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    what = f" ({SAMPLE_DATA})" if settings.sample_data else ""
    print(f"wrote {len(files)} Parquet files under {args.out}{what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
