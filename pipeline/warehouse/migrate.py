"""Versioned schema migrations: the only way the warehouse's schema changes.

Each `migrations/NNNN_name.sql` runs once, in its own transaction with its `schema_migrations`
row, so an existing warehouse file is upgraded in place without losing a row, and a failed
migration leaves the file as it was. Views are rebuilt afterwards: they hold no data.

Command line: `python -m pipeline.warehouse.migrate [PATH]` (default: the loader's working file
beside the warehouse the settings name, `Settings.warehouse`: WAREHOUSE_PATH with a token,
SANDBOX_WAREHOUSE_PATH without; that file is then published).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import duckdb

PACKAGE = resources.files("pipeline.warehouse")
MIGRATIONS: Traversable = PACKAGE / "migrations"
VIEWS: Traversable = PACKAGE / "views.sql"
# Allocation (items joined to the inventory they name) and FOCUS, each in its own file, rebuilt
# right after views.sql in this order: FOCUS reads the allocation's tags, and each FOCUS version
# builds on the one before (1.2's focus_costs, then 1.3, then 1.4's datasets).
ALLOCATION_VIEWS: Traversable = PACKAGE / "allocation.sql"
FOCUS_VIEW: Traversable = PACKAGE / "focus.sql"
FOCUS_VIEWS: tuple[Traversable, ...] = (
    FOCUS_VIEW,
    PACKAGE / "focus_1_3.sql",
    PACKAGE / "focus_1_4.sql",
)
FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")

CREATE_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     INTEGER PRIMARY KEY,
        name        VARCHAR NOT NULL,
        applied_at  TIMESTAMPTZ NOT NULL
    )
"""
HAS_TABLE = """
    SELECT count(*) FROM duckdb_tables()
    WHERE database_name = current_database() AND schema_name = 'main'
      AND table_name = 'schema_migrations'
"""
RECORD = "INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)"


class MigrationError(RuntimeError):
    """The migrations cannot be found or ordered, or one of them failed (and was rolled back)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the part after the number: "one_raw_landing"
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def filename(self) -> str:
        return f"{self.label}.sql"


def load_migrations(folder: Traversable | Path | None = None) -> list[Migration]:
    """The `NNNN_name.sql` files of `folder` (default: the package's), ordered by version.

    Versions must run 1, 2, 3 … without gaps or repeats, so every file has one place in history.
    """
    folder = MIGRATIONS if folder is None else folder
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = FILE_NAME.fullmatch(entry.name)
        if not match:
            raise MigrationError(
                f"migration file {entry.name!r} is not named NNNN_name.sql "
                "(four digits, then lower-case letters, digits and underscores)"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(
                f"migration version {version} is used twice: "
                f"{found[version].filename} and {entry.name}"
            )
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    migrations = [found[v] for v in sorted(found)]
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        missing = sorted(set(range(1, max(found) + 1)) - set(found))
        raise MigrationError(
            f"migration versions must run 1, 2, 3 … without gaps; found "
            f"{', '.join(m.filename for m in migrations)} (missing {missing})"
        )
    return migrations


LATEST_VERSION: int = len(load_migrations())


def _applied_versions(con: duckdb.DuckDBPyConnection) -> list[int]:
    if not con.execute(HAS_TABLE).fetchone()[0]:
        return []
    rows = con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [v for (v,) in rows]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The newest migration applied to this file; 0 if it has never been migrated."""
    return max(_applied_versions(con), default=0)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.rollback()
    except duckdb.Error:
        pass  # the failed statement or COMMIT already ended the transaction


def _run(con: duckdb.DuckDBPyConnection, sql: str, what: str, *, record: Migration | None) -> None:
    """Run `sql` in one transaction (with its schema_migrations row, if any); all or nothing."""
    con.begin()
    try:
        if record is not None:
            con.execute(CREATE_TABLE)
        con.execute(sql)
        if record is not None:
            con.execute(RECORD, [record.version, record.name])
        con.commit()
    except duckdb.Error as exc:
        _rollback(con)
        raise MigrationError(f"{what} failed and was rolled back: {exc}") from exc
    except BaseException:
        _rollback(con)
        raise


def migrate(
    con: duckdb.DuckDBPyConnection, migrations: Traversable | Path | None = None
) -> list[int]:
    """Apply every pending migration, each in its own transaction, then rebuild the views.

    `migrations` is a folder of `NNNN_name.sql` files (default: the package's). Returns the
    versions applied, oldest first; `[]` when the file was already up to date.
    """
    available = load_migrations(migrations)
    applied = _applied_versions(con)
    current = max(applied, default=0)
    if applied != list(range(1, current + 1)):
        raise MigrationError(f"schema_migrations lists versions {applied}, not 1 … {current}")
    if current > len(available):
        raise MigrationError(
            f"the warehouse is at schema version {current}, newer than this code's "
            f"{len(available)}; upgrade the code before using this file"
        )
    done: list[int] = []
    for migration in available[current:]:
        _run(
            con,
            migration.sql,
            f"migration {migration.filename} (schema version {current} → {migration.version})",
            record=migration,
        )
        current = migration.version
        done.append(migration.version)
    _run(con, VIEWS.read_text(encoding="utf-8"), "rebuilding the views (views.sql)", record=None)
    _run(
        con,
        ALLOCATION_VIEWS.read_text(encoding="utf-8"),
        "rebuilding the allocation views (allocation.sql)",
        record=None,
    )
    for focus in FOCUS_VIEWS:
        _run(
            con,
            focus.read_text(encoding="utf-8"),
            f"rebuilding the FOCUS views ({focus.name})",
            record=None,
        )
    return done


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.settings import SettingsError, load_settings
    from pipeline.warehouse.publish import PublishError, adopt_single_file, publish, working_file

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.warehouse.migrate",
        description="Bring a warehouse file's schema up to date (versioned, idempotent).",
    )
    parser.add_argument(
        "path",
        nargs="?",
        help="a DuckDB file to migrate in place (default: the loader's working file beside "
        "$WAREHOUSE_PATH, or $SANDBOX_WAREHOUSE_PATH without a token, then published there)",
    )
    given = parser.parse_args(argv).path
    published: Path | None = None
    if not given:  # a named file is migrated in place, whatever the settings say
        try:
            published = load_settings().warehouse
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    path = working_file(published) if published is not None else Path(given)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if published is not None:
            adopt_single_file(published, path)
        with duckdb.connect(str(path)) as con:
            before = schema_version(con)
            done = migrate(con)
            after = schema_version(con)
            if done:
                labels = ", ".join(m.label for m in load_migrations() if m.version in done)
                print(f"warehouse {path}: schema version {before} → {after} (applied {labels})")
            else:
                print(f"warehouse {path} is at version {after}, up to date")
            if published is not None:  # always: the views were rebuilt, a missed one is made
                shipped = publish(con, published)
                print(f"published {shipped.path} in {shipped.seconds:.2f}s")
    except (MigrationError, PublishError, duckdb.Error, OSError) as exc:
        print(f"warehouse {path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
