"""Where the warehouse lives: the file a variable names, checked for what a reader needs
(`validate_warehouse_path`) and, by the commands that write, for what a writer needs
(`check_writable`)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.settings.values import SettingsError

DEFAULT_WAREHOUSE_PATH = "data/warehouse.duckdb"
# The built-in sandbox's sample data lives in a file of its own, never in WAREHOUSE_PATH's.
DEFAULT_SANDBOX_WAREHOUSE_PATH = "data/sandbox.duckdb"
WAREHOUSE_ENV = "WAREHOUSE_PATH"
SANDBOX_WAREHOUSE_ENV = "SANDBOX_WAREHOUSE_PATH"
# What every place that shows the sandbox's data says of it.
SAMPLE_DATA = "sample data (built-in sandbox)"


def validate_warehouse_path(path: Path, name: str = WAREHOUSE_ENV) -> Path:
    """The DuckDB file: a file (or nothing yet), not a folder, under no file. Whether this user
    may write there is asked only by the commands that write (`check_writable`): readers
    (dashboard, report, export, focus) work from a read-only folder too. `name` is the variable
    messages name (WAREHOUSE_PATH or SANDBOX_WAREHOUSE_PATH)."""
    shown = str(path)
    if "\x00" in shown:
        raise SettingsError(f"{name} contains a NUL byte")
    try:
        _check_warehouse_place(path, name)
    except OSError as exc:  # a folder on the path this user may not enter, a name too long
        raise SettingsError(f"{name} {shown!r} cannot be used: {exc.strerror or exc}") from None
    return path


def warehouse_files(path: Path) -> set[Path]:
    """The analysts' file and the loader's working file beside it (as
    `pipeline.warehouse.publish.working_file` names it), resolved."""
    base = Path(os.path.abspath(path))
    return {base, base.with_name(f"{base.stem}.working{base.suffix}")}


def _existing_folder(path: Path) -> Path:
    """The first folder on the path that exists: the rest are created at the first write."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_warehouse_place(path: Path, name: str) -> None:
    shown = str(path)
    if path.is_dir():
        raise SettingsError(
            f"{name} {shown!r} is a directory: name the DuckDB file, e.g. "
            f"{str(path / 'warehouse.duckdb')!r}"
        )
    folder = _existing_folder(path)
    if not folder.is_dir():
        raise SettingsError(f"{name} {shown!r}: {str(folder)!r} is a file, not a directory")


def check_writable(path: Path, working: Path | None = None, name: str = WAREHOUSE_ENV) -> None:
    """Before a command writes: the folder of the warehouse (`name`: WAREHOUSE_PATH, or
    SANDBOX_WAREHOUSE_PATH for the sandbox's) takes new files (the working file, its .wal, each
    publication's copy), and the working file, if there, may be written.

    Writability is asked of the kernel (`os.access`, effective ids), which knows root's
    override, read-only mounts and immutable folders; permission bits alone would not."""
    shown = str(path)
    try:
        for existing in (working,):
            if existing is not None and existing.exists() and not _writable(existing):
                raise SettingsError(
                    f"{name} {shown!r}: the loader's file {str(existing)!r} is a file "
                    "this user may not write"
                )
        folder = _existing_folder(path)
        if not _writable(folder, os.W_OK | os.X_OK):
            raise SettingsError(
                f"{name} {shown!r}: the folder {str(folder)!r} is not writable by this "
                "user (the loader writes its working file and each publication there; reading "
                "needs no more than read access)"
            )
    except OSError as exc:
        raise SettingsError(f"{name} {shown!r} cannot be written: {exc.strerror or exc}") from None


def _writable(path: Path, mode: int = os.W_OK) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)
