"""The warehouse's DuckDB file: opened per unit of work (or held for a step), written in
transactions, waited for (bounded) while another process holds it.

DuckDB allows one writer process; a busy file is retried with backoff for a bounded time and
then reported plainly. What is written lives in the modules that use a `WarehouseFile`:
`store.py` (the `Warehouse`), `raw.py`, `registry.py`, `sample_data.py`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import duckdb

log = logging.getLogger(__name__)


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than we are willing to wait."""


class WarehouseMissingError(RuntimeError):
    """A reader asked for a file that does not exist: reading never creates one (only a
    publication makes the analysts' file), so the reader says so instead."""


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


@dataclass
class _Held:
    """A file held open by `WarehouseFile.session()`: its connection, and how many sessions
    share it."""

    con: duckdb.DuckDBPyConnection
    sessions: int = 0


class WarehouseFile:
    """A DuckDB file, opened per unit of work (or held for a step's session) and always
    closed, even on errors.

    Teams load side by side in threads of one process and share one file object: its lock lets
    one of them at a time use the file, so no two connections (or a read-only and a read-write
    one) meet inside DuckDB."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()
        self._held: _Held | None = None
        # Whether a write committed since this object was made (or last published), and how
        # many write transactions committed (a step's count shows in its metadata).
        self.changed = False
        self.commits = 0

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, waiting (bounded) while another process holds the lock; inside a
        session, a cursor of the session's connection."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._held is not None:
                with self._held.con.cursor() as con:
                    yield con
                return
            if read_only and not self.path.is_file():
                raise WarehouseMissingError(
                    f"no warehouse file at {self.path}: nothing has been published there yet "
                    "(`make run` loads and publishes it)"
                )
            con = self._open(read_only)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def session(self) -> Iterator[Self]:
        """Keep the file open for the units of work inside (a step's), read-write.

        Each open of a DuckDB file builds a database instance and each close checkpoints it,
        so a step's dozen units of work share one connection: inside a session `connect()`
        hands out cursors, each unit still its own transaction. Other processes wait for the
        file until the session ends, as they wait for a write.
        """
        with self._lock:
            if self._held is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._held = _Held(self._open(read_only=False))
            held = self._held
            held.sessions += 1
        try:
            yield self
        finally:
            with self._lock:
                held.sessions -= 1
                if held.sessions == 0:
                    self._held = None
                    held.con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.1
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusyError(
                        f"warehouse {self.path} is locked by another process (a run or an open "
                        f"session) and stayed locked for {self.lock_timeout:.0f}s. Close other "
                        "writers or read-write sessions on it, then re-run."
                    ) from None
                log.warning("warehouse %s is locked; retrying in %.1fs", self.path, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN … COMMIT; any exception rolls everything back."""
        with self.connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()
            self.changed = True
            self.commits += 1
