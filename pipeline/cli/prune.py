"""`python -m pipeline.cli.prune [--keep N]`: apply raw retention to the whole warehouse now.

Every run already prunes the months it swaps; this is for a warehouse loaded before retention
existed, or after lowering RAW_KEEP. The rule lives with raw landing
(`pipeline/warehouse/raw.py`, `RawArchive.prune`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline.settings import (
    MAX_RAW_KEEP,
    SettingsError,
    check_writable,
    load_settings,
    whole_number,
)
from pipeline.warehouse.connection import WarehouseBusyError
from pipeline.warehouse.publish import PublishError, adopt_single_file, working_file
from pipeline.warehouse.store import Warehouse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="older fetches to keep (default: RAW_KEEP)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        keep = settings.retention.raw_keep
        if args.keep is not None:
            keep = whole_number(args.keep, "--keep", 0, MAX_RAW_KEEP, "a number of fetches")
        check_writable(settings.warehouse, working_file(settings.warehouse), settings.warehouse_env)
    except SettingsError as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 2
    # Raw lives in the loader's working file (a single-file warehouse from before becomes it).
    adopt_single_file(settings.warehouse, working_file(settings.warehouse))
    path = working_file(settings.warehouse)
    if not path.exists():
        print(f"prune: no warehouse at {path}: nothing to prune")
        return 0
    store = Warehouse(path, raw_keep=keep)
    before = path.stat().st_size
    try:
        store.migrate()
        pruned = store.raw.prune()
        # The working file changed (and its views were rebuilt): publish, so the analysts' file
        # is as new as it, as `make doctor` checks.
        done = store.publish(settings.warehouse)
    except (WarehouseBusyError, PublishError) as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 1
    print(
        f"pruned raw in {path} (latest good fetch of each team × month × source and {keep} "
        f"older): {pruned.fetches} fetch(es), {pruned.pages} page(s), {pruned.targets} "
        f"target(s) deleted; file {before / 1e6:.1f} MB → {path.stat().st_size / 1e6:.1f} MB"
    )
    print(f"published {done.path} in {done.seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
