"""Two files: the loader's working file, and the analysts' file it publishes.

DuckDB lets one process open a file read-write, or many read-only, never both. So the loader
writes its own file (`warehouse.working.duckdb` beside `WAREHOUSE_PATH`) and, after each step
that wrote, publishes a copy to `WAREHOUSE_PATH`: it writes a temporary file in the same
folder, syncs it, and renames it over the old one; nothing else ever creates that file.
Analysts, BI tools, exports and the dashboard open `WAREHOUSE_PATH` read-only whenever they
like: a connection already open keeps reading the file it opened (on Linux and macOS the old
inode lives until it closes), a new one sees the new file, and no half-written file is ever at
that name.

The published file holds every table and view of the `main` schema (the tables the sources
load, `teams`, `alerts_sent`, `schema_migrations`, every view and table macro); `raw` stays in
the working file, where replay reads it. The copy is DuckDB's own and set-based: the schema by
`COPY FROM DATABASE … (SCHEMA)`, each table by `CREATE TABLE … AS SELECT`, without the primary
keys' indexes (nobody writes the analysts' file). It is written in DuckDB 1.4's storage format
(STORAGE_VERSION), so clients of DuckDB 1.4 LTS, 1.5 and 2.0 all open it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

PUBLISHED_AS = "published_copy"
# The storage format the analysts' file is written in: the oldest that DuckDB 1.4 LTS, 1.5 and
# 2.0 all read, so the CLI, DBeaver and BI drivers that lag behind 2.0 open it (2.0's own
# format, version 69, is refused by every 1.x). The loader's working file stays in 2.0's.
STORAGE_VERSION = "v1.4.0"
WORKING_SUFFIX = ".working"
TEMP_MARK = ".publishing-"
MAIN_TABLES = """
    SELECT table_name FROM duckdb_tables()
    WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name
"""
# Views that call a table macro are published as tables of their rows: DuckDB 1.4 misreads a
# table macro's CTEs when 2.0 wrote it ("Table with name … does not exist"), views it reads.
VIEWS_ON_MACROS = """
    SELECT v.view_name FROM duckdb_views() AS v
    WHERE v.database_name = $db AND v.schema_name = 'main' AND NOT v.internal
      AND EXISTS (SELECT 1 FROM duckdb_functions() AS f
                  WHERE f.database_name = $db AND f.schema_name = 'main'
                    AND f.function_type = 'table_macro'
                    AND contains(lower(v.sql), lower(f.function_name) || '('))
    ORDER BY v.view_name
"""
OTHER_SCHEMAS = """
    SELECT schema_name FROM duckdb_schemas()
    WHERE database_name = $db AND schema_name NOT IN ('main', 'information_schema', 'pg_catalog')
"""


class PublishError(RuntimeError):
    """The analysts' file could not be replaced; it still holds the previous publication."""


@dataclass(frozen=True)
class Published:
    path: Path
    tables: int
    seconds: float
    bytes: int


def working_file(published: Path) -> Path:
    """The loader's own file beside the analysts' one: `warehouse.duckdb` →
    `warehouse.working.duckdb`."""
    return published.with_name(f"{published.stem}{WORKING_SUFFIX}{published.suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temporaries(published: Path) -> None:
    """Left by a process killed while publishing: never at the analysts' name, so harmless.
    Only files are removed; anything else there is not this code's to delete."""
    for stale in published.parent.glob(f"{published.name}{TEMP_MARK}*"):
        if stale.is_file() and not stale.is_symlink():
            with contextlib.suppress(OSError):
                stale.unlink()


def _remove_own(temporary: Path) -> None:
    """The failed copy and its write-ahead log, when they are files this publication made."""
    for path in (temporary, temporary.with_name(temporary.name + ".wal")):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()


def _cause(exc: duckdb.Error | OSError) -> str:
    """The error in one line: the system's words for an OSError, DuckDB's first line else."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def publish(con: duckdb.DuckDBPyConnection, published: Path) -> Published:
    """Copy the working database that `con` holds (read-write) to `published`, atomically.

    Called with the working file's connection still open, so two loaders' publications happen
    in the order they wrote: the second cannot rename an older copy over a newer one. The
    working file is checkpointed first, so its modification time is its last write and the
    published copy, written after it, is newer (`unpublished_writes` compares the two). On
    failure nothing is left behind but the previous publication, if there was one."""
    started = time.monotonic()
    temporary = published.with_name(f"{published.name}{TEMP_MARK}{os.getpid()}")
    had = published.is_file()
    try:
        con.execute("CHECKPOINT")
        (source,) = con.execute("SELECT current_database()").fetchone()
        tables = [name for (name,) in con.execute(MAIN_TABLES).fetchall()]
        published.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(published)
        con.execute(
            f"ATTACH '{_quoted(temporary)}' AS {PUBLISHED_AS} (STORAGE_VERSION '{STORAGE_VERSION}')"
        )
        try:
            con.execute(f'COPY FROM DATABASE "{source}" TO {PUBLISHED_AS} (SCHEMA)')
            for (schema,) in con.execute(OTHER_SCHEMAS, {"db": PUBLISHED_AS}).fetchall():
                con.execute(f'DROP SCHEMA {PUBLISHED_AS}."{schema}" CASCADE')
            for table in tables:
                con.execute(f'DROP TABLE {PUBLISHED_AS}.main."{table}"')
                con.execute(
                    f'CREATE TABLE {PUBLISHED_AS}.main."{table}" AS '  # noqa: S608
                    f'SELECT * FROM "{source}".main."{table}"'
                )
            for (view,) in con.execute(VIEWS_ON_MACROS, {"db": source}).fetchall():
                con.execute(f'DROP VIEW {PUBLISHED_AS}.main."{view}"')
                con.execute(
                    f'CREATE TABLE {PUBLISHED_AS}.main."{view}" AS '  # noqa: S608
                    f'SELECT * FROM "{source}".main."{view}"'
                )
        finally:
            with contextlib.suppress(duckdb.Error):  # not attached when ATTACH itself failed
                con.execute(f"DETACH {PUBLISHED_AS}")  # checkpoints: the file is whole alone
        _fsync(temporary)
        os.replace(temporary, published)
        _fsync(published.parent)
    except (duckdb.Error, OSError) as exc:
        _remove_own(temporary)
        kept = "it keeps the previous publication" if had else "nothing is published there yet"
        raise PublishError(f"could not publish {published} ({kept}): {_cause(exc)}") from None
    return Published(published, len(tables), time.monotonic() - started, published.stat().st_size)


def last_write(working: Path) -> float | None:
    """When the working file was last written (its own or its write-ahead log's modification
    time, in seconds since the epoch); None when it does not exist."""
    try:
        written = working.stat().st_mtime
    except FileNotFoundError:
        return None
    with contextlib.suppress(FileNotFoundError):  # commits not yet checkpointed
        written = max(written, working.with_name(working.name + ".wal").stat().st_mtime)
    return written


def unpublished_writes(published: Path, working: Path | None = None) -> str | None:
    """Why the analysts' file lacks the working file's last writes (it is missing, or older
    than the working file's last write: a publication failed or was never made), or None when
    it is current or there is no working file yet. Reads modification times only."""
    working = working or working_file(published)
    written = last_write(working)
    if written is None:
        return None
    try:
        at = published.stat().st_mtime
    except FileNotFoundError:
        return f"{published} was never published from {working}"
    if at < written:
        return (
            f"{published} (published {_clock(at)}) is older than the last write to {working} "
            f"({_clock(written)}): a publication failed or was not made"
        )
    return None


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def adopt_single_file(published: Path, working: Path) -> bool:
    """Upgrade in place: a warehouse from before the two files (only `published` exists)
    becomes the working file, as a copy, so analysts keep their file until the first
    publication replaces it. True when it did. Two loaders starting at once: one copy wins
    (a hard link cannot replace), the other is dropped."""
    if working.exists() or not published.is_file():
        return False
    temporary = working.with_name(f"{working.name}{TEMP_MARK}{os.getpid()}")
    wal = published.with_name(published.name + ".wal")
    try:
        shutil.copyfile(published, temporary)
        if wal.exists():  # a crash left changes not yet checkpointed: they move too
            shutil.copyfile(wal, temporary.with_name(working.name + ".wal"))
        _fsync(temporary)
        os.link(temporary, working)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return True
