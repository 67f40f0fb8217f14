"""`python -m pipeline.cli.replay SOURCE FROM [TO]`: rebuild tables from raw, zero requests.

After a normalizer is fixed, this re-normalizes each team's latest good fetch of each month and
swaps the team's months in one transaction, exactly as a run's last two steps do.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from pipeline.defs.partitions import chosen_months, monthly_partitions
from pipeline.engine import batches
from pipeline.engine.stages import RawNotFetchedError
from pipeline.settings import SettingsError, check_writable, load_settings
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
    source = by_name[args.source]
    try:
        settings = load_settings()
        partitions = monthly_partitions(settings.start_period).get_partition_keys()
        periods = chosen_months(partitions, args.first, args.last or args.first)
        # Into the loader's working file, as a run writes, then published for the analysts.
        check_writable(settings.warehouse, working_file(settings.warehouse), settings.warehouse_env)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    months = f"{len(periods)} month{'s' if len(periods) > 1 else ''}"
    say(f"Replaying {source.name} {periods[0]}…{periods[-1]} ({months}) from raw")
    adopt_single_file(settings.warehouse, working_file(settings.warehouse))
    store = Warehouse(working_file(settings.warehouse), raw_keep=settings.retention.raw_keep)
    store.migrate()
    try:
        outcome = batches.replay_teams(source, store, periods, now=now)
    except RawNotFetchedError as exc:
        say(f"Failed: {exc}", error=True)
        return 1
    for team, load in outcome.results.items():
        tables = load.result.tables if load.result else {}
        counts = ", ".join(f"{len(frame)} rows in {name}" for name, frame in tables.items())
        say(f"{team.name}: replayed {periods[0]}…{periods[-1]}: {counts}", step=source.name)
    for who, error in outcome.failures:
        say(f"Failed: {who}: its rows are as they were: {error}", error=True)
    published = "nothing changed"
    if store.changed:
        try:
            published = f"published {store.publish(settings.warehouse).path}"
        except PublishError as exc:
            say(f"Failed: {exc}", error=True)
            return 1
    if outcome.failures:
        say("Fix the cause and replay again; the failed teams keep their previous rows.")
        return 1
    say(f"Done in {time.monotonic() - started:.0f} s → {published}; no request was made.")
    return 0


def say(text: str, *, step: str = "", error: bool = False) -> None:
    """One line as a run's console writes them: the time, the step, the message."""
    line = f"{datetime.now().strftime('%H:%M:%S')}  {step:<18} {text}" if step else text
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


if __name__ == "__main__":
    sys.exit(main(now=datetime.now(UTC)))
