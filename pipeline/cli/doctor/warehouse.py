"""The warehouse files: the loader's working file opens, is not locked by a writer, reads through
and has this code's schema; the analysts' published file is as new as its last write."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb

from pipeline.cli.doctor.check import Check, silenced
from pipeline.settings import WAREHOUSE_ENV
from pipeline.warehouse.connection import WarehouseBusyError
from pipeline.warehouse.migrate import LATEST_VERSION, schema_version
from pipeline.warehouse.publish import unpublished_writes, working_file
from pipeline.warehouse.sample_data import holds_sample_data, mix_message
from pipeline.warehouse.store import Warehouse

LOCK_TIMEOUT = 2.0


def _folder_writable(folder: Path) -> str | None:
    """Create the folder if missing and write a scratch file in it; the error, or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return f"its folder {folder} is not writable ({exc.strerror or exc})"
    return None


TABLES_IN_FILE = """
    SELECT schema_name, table_name FROM duckdb_tables()
    WHERE database_name = current_database() ORDER BY ALL
"""


def _read_through(con: duckdb.DuckDBPyConnection) -> None:
    """Read every block of every table (a hash of each whole row), so a file cut short or
    damaged fails here, naming itself, rather than in the next run."""
    for schema, table in con.execute(TABLES_IN_FILE).fetchall():
        # Names from the file's own catalog, quoted as identifiers.
        name = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
        con.execute(f"SELECT count(*), sum(hash(t)) FROM {name} AS t").fetchone()  # noqa: S608


def check_warehouse(path: Path, env: str = WAREHOUSE_ENV, sample_data: bool | None = None) -> Check:
    """The folder is writable, the loader's file (the working file; before the first run of
    this version, the single file) opens, its schema is this code's and, when `sample_data`
    is given, it holds that kind of data (a run refuses to mix sample and real teams). Opened
    read-only, so an analyst's session on the published file never looks like a lock and
    nothing is created or migrated. `env` names the variable that sets `path`."""
    working = working_file(path)
    target = working if working.exists() else path
    name = f"warehouse {target}"
    problem = _folder_writable(path.parent)
    if problem:
        return Check(name, False, f"{problem}: fix its permissions or set {env}")
    if not target.exists():
        return Check(
            name, True, "not created yet; its folder is writable (the first run creates it)"
        )
    try:
        with silenced("pipeline.warehouse.connection"):
            with Warehouse(target, lock_timeout=LOCK_TIMEOUT).connect(read_only=True) as con:
                version = schema_version(con)
                _read_through(con)
                held = holds_sample_data(con)
            if target != path and path.exists():  # the analysts' file, as they open it
                with Warehouse(path, lock_timeout=LOCK_TIMEOUT).connect(read_only=True) as con:
                    _read_through(con)
    except WarehouseBusyError:
        return Check(
            name,
            False,
            "locked by another process that writes it (a run, or a read-write session): "
            "wait for the run or close the session",
        )
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        return Check(name, False, f"cannot be opened as a DuckDB file: {first}")
    if sample_data is not None and held is not None and held != sample_data:
        return Check(name, False, mix_message(held, f"{env} {str(path)!r}"))
    if version > LATEST_VERSION:
        return Check(
            name,
            False,
            f"schema version {version} is newer than this code's {LATEST_VERSION}: update the "
            "code before using this file",
        )
    if version < LATEST_VERSION:
        behind = LATEST_VERSION - version
        return Check(
            name,
            True,
            f"schema version {version}, {behind} behind: run `make migrate` (every run also does)",
        )
    return Check(name, True, f"not locked, schema version {version} (current)")


def check_publication(path: Path) -> Check:
    """The analysts' file is as new as the loader's last write: a run whose publication failed
    (a full disk, a folder it may not write, something in the file's place) leaves it older,
    and they would read stale data as if it were fresh. Compares modification times only."""
    name = f"published {path}"
    working = working_file(path)
    if not working.exists():
        state = "the analysts' file from before the working file" if path.exists() else "none"
        return Check(name, True, f"no working file yet, nothing to publish ({state})")
    missing = unpublished_writes(path, working)
    if missing is not None:
        return Check(
            name,
            False,
            f"{missing}. Fix what the run reported (`could not publish …`), then `make migrate` "
            "publishes it",
        )
    return Check(name, True, f"current: as new as the last write to {working}")
