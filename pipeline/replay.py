"""`python -m pipeline.replay SOURCE FROM [TO]`: rebuild a source's tables from raw, zero requests.

After a normalizer is fixed, this re-normalizes each team's latest good fetch of each month and
swaps the team's months in one transaction, exactly as a run's last two steps do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline import engine
from pipeline.partitions import monthly_partitions, validate_periods
from pipeline.settings import get_settings
from pipeline.sources import SOURCES
from pipeline.warehouse.store import Warehouse


def main(argv: Sequence[str] | None = None) -> int:
    by_name = {source.name: source for source in SOURCES}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(by_name))
    parser.add_argument("first", metavar="FROM", help="first month, YYYY-MM")
    parser.add_argument("last", metavar="TO", nargs="?", help="last month (default: FROM)")
    args = parser.parse_args(argv)
    first, last = validate_periods([args.first, args.last or args.first])
    keys = monthly_partitions.get_partition_keys()
    periods = [key for key in keys if first <= key <= last]
    source = by_name[args.source]
    settings = get_settings()
    store = Warehouse(settings.warehouse_path, raw_keep=settings.raw_keep)
    try:
        outcome = engine.replay_teams(source, store, periods)
    except engine.RawNotFetchedError as exc:
        print(f"replay of {source.name} failed: {exc}", file=sys.stderr)
        return 1
    for team, load in outcome.results.items():
        tables = load.result.tables if load.result else {}
        counts = ", ".join(f"{len(frame)} rows in {name}" for name, frame in tables.items())
        print(f"replayed {source.name} of {team} for {periods[0]}…{periods[-1]} from raw: {counts}")
    for who, error in outcome.failures:
        print(
            f"replay of {source.name} of {who} failed, its rows are as they were: {error}",
            file=sys.stderr,
        )
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
