"""`python -m pipeline.cli.replay SOURCE FROM [TO]`: rebuild tables from raw, zero requests.

After a normalizer is fixed, this re-normalizes each team's latest good fetch of each month and
swaps the team's months in one transaction, exactly as a run's last two steps do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pipeline import engine
from pipeline.defs.partitions import monthly_partitions, validate_periods
from pipeline.settings import SettingsError, check_writable, get_settings
from pipeline.sources import SOURCES
from pipeline.warehouse.publish import PublishError, adopt_single_file, working_file
from pipeline.warehouse.store import Warehouse


def main(argv: Sequence[str] | None = None, *, now: datetime) -> int:
    """`now`: the replayed rows' loaded_at (the command's start, passed in by its caller)."""
    by_name = {source.name: source for source in SOURCES}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(by_name))
    parser.add_argument("first", metavar="FROM", help="first month, YYYY-MM")
    parser.add_argument("last", metavar="TO", nargs="?", help="last month (default: FROM)")
    args = parser.parse_args(argv)
    first, last = validate_periods([args.first, args.last or args.first])
    settings = get_settings()
    keys = monthly_partitions(settings.start_period).get_partition_keys()
    periods = [key for key in keys if first <= key <= last]
    source = by_name[args.source]
    # Into the loader's working file, as a run writes, then published for the analysts.
    try:
        check_writable(settings.warehouse, working_file(settings.warehouse), settings.warehouse_env)
    except SettingsError as exc:
        print(f"replay of {source.name}: {exc}", file=sys.stderr)
        return 2
    adopt_single_file(settings.warehouse, working_file(settings.warehouse))
    store = Warehouse(working_file(settings.warehouse), raw_keep=settings.raw_keep)
    store.migrate()
    try:
        outcome = engine.replay_teams(source, store, periods, now=now)
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
    if store.changed:
        try:
            done = store.publish(settings.warehouse)
        except PublishError as exc:
            print(f"replay of {source.name}: {exc}", file=sys.stderr)
            return 1
        print(f"published {done.path} in {done.seconds:.2f}s")
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main(now=datetime.now(UTC)))
