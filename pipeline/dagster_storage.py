"""The Dagster instance's storage: Dagster's SQLite storage, with its event log kept open.

Dagster's `SqliteEventLogStorage` builds a new engine and connection for every write and closes
it after. Closing the last connection to a WAL database checkpoints it, so each asset event
costs four opens, commits and checkpoints (the run's file and the index). A range run of the
core assets over 41 months writes about 290 events; that bookkeeping took longer than fetching,
normalizing and loading the 18,000 items (see bench/results.md).

`KeptOpenSqliteEventLogStorage` keeps one connection per database file for the life of the
process (the files most recently used, at most `OPEN_FILES`) and commits with
`synchronous=NORMAL`, SQLite's advice for WAL: a crash of the process loses nothing, a power
loss may lose the last events but never corrupts the file. Everything else, the files, their
layout and schema, is Dagster's own, so an instance moves between this and plain
`storage: sqlite` either way.

Dagster's webserver follows a run live by watching the run's `.db` file for changes; with the
connection kept open, new events stay in the `-wal` file until a checkpoint, so each write to a
run's file also touches it.

A range run's planned months and its materialized months (246 of the ~290 events over 41
months) are events Dagster can hand its storage as batches; it does so only when
DAGSTER_EVENT_BATCH_SIZE is above 0 (its default is 0: one write each), and Dagster's SQLite
storage then still writes them one transaction each. This one asks for batches (unless the
variable is set) and writes each in one transaction per file (`store_event_batch`). A batch is
held in memory until its last event, which Dagster sends straight after the first: a range run's
planned months as it creates the run, an asset's months as its step ends.

dagster is pinned: this subclass replaces `_connect`, which is
private, and tests/test_dagster_storage.py fails if that changes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dagster import EventLogEntry, Field
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p

# A webserver reads many runs' files; keep this many open, least recently used closed first.
OPEN_FILES = 8

# Dagster reads this at each event: above 0, the events it can batch come to `store_event_batch`
# in batches of up to this many. A range run's batch is one asset's months (or its planned ones).
EVENT_BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = 1000


def _sync_at_checkpoints_only(dbapi_connection: sqlite3.Connection, _: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log, one open connection per file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, sa.engine.Engine] = OrderedDict()
        self._tables_seen: set[str] = set()
        # During a batch: the thread writing it, and each file's connection, in a transaction.
        self._batch_thread: int | None = None
        self._held: dict[str, sa.Connection] = {}
        super().__init__(base_dir, inst_data)
        os.environ.setdefault(EVENT_BATCH_ENV, str(EVENT_BATCH_SIZE))

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> KeptOpenSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> sa.engine.Engine:
        """The shard's engine, created (and its database initialized) on first use."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            # One connection kept, used by one thread at a time (Dagster's `_db_lock`); setting
            # up a new file opens a few more for a moment.
            poolclass=sa.pool.QueuePool,
            pool_size=1,
            max_overflow=4,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sync_at_checkpoints_only)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_FILES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Dagster's `store_event` for each event, in one transaction per file: all of the
        batch is written or none (Dagster then stores the events one by one). Other threads'
        writes wait for the batch, as they wait for one event."""
        with self._db_lock:
            self._batch_thread = threading.get_ident()
            try:
                for event in events:
                    self.store_event(event)
                for conn in self._held.values():
                    conn.commit()
            finally:
                held, self._held, self._batch_thread = self._held, {}, None
                for conn in held.values():
                    conn.close()  # rolls back what was not committed
        for shard in held:
            if shard != INDEX_SHARD_NAME:
                os.utime(self.path_for_shard(shard))

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:  # type: ignore[override]
        if self._batch_thread == threading.get_ident():  # within a batch, which holds the lock
            conn = self._held.get(shard)
            if conn is None:
                conn = self._held[shard] = self._engine(shard).connect()
                conn.begin()
            yield conn
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                dbapi = conn.connection.dbapi_connection
                changes = dbapi.total_changes
                with conn.begin():
                    yield conn
                wrote = dbapi.total_changes != changes
            if wrote and shard != INDEX_SHARD_NAME:
                # Tell watchers of the run's file (the webserver's live log) it has new events;
                # only after writes, as a watcher reads the file when told.
                os.utime(self.path_for_shard(shard))

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before every asset event, with a new engine each time; a table, once
        there, stays (migrations only add)."""
        if table_name in self._tables_seen:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables_seen.add(table_name)
        return present

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


# The run tag `make run` records the machine it runs on under: an instance in PostgreSQL is
# shared by several machines, and only the one a run ran on can tell whether its process is gone
# (`make doctor`). Dagster records a run's process id (its engine events) but not its host.
HOST_TAG = "do-billing/host"

# The variable that moves the instance into PostgreSQL (`dagster.yaml` names it as
# `postgres_url_env`); unset or empty, the SQLite files under base_dir stay.
POSTGRES_URL_ENV = "DAGSTER_POSTGRES_URL"


class SqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite` with the kept-open event log; same `base_dir`, same files.

    With the variable `postgres_url_env` names set (DAGSTER_POSTGRES_URL, a `postgresql://`
    URL), the instance is dagster-postgres's `DagsterPostgresStorage` on that database instead:
    runs, event log and schedules. Dagster's yaml has no conditionals (an `env:` value whose
    variable is unset is an error), so the choice by one variable is made here."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = KeptOpenSqliteEventLogStorage(
            os.path.join(base_dir, "history", "runs", "")
        )

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            **DagsterSqliteStorage.config_type(),
            "postgres_url_env": Field(str, is_required=False, default_value=POSTGRES_URL_ENV),
        }

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> DagsterStorage:
        config = dict(config_value)
        url = postgres_url(config.pop("postgres_url_env", POSTGRES_URL_ENV))
        if url:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage(postgres_url=url, inst_data=inst_data)
        mkdir_p(config["base_dir"])
        return cls(inst_data=inst_data, **config)


def postgres_url_as_set(
    variable: str = POSTGRES_URL_ENV, env: Mapping[str, str] | None = None
) -> str | None:
    """The instance's PostgreSQL URL as the variable holds it (stripped), None when it is
    unset or empty: what `make services` hands the processes it starts."""
    return (os.environ if env is None else env).get(variable, "").strip() or None


def postgres_url(
    variable: str = POSTGRES_URL_ENV, env: Mapping[str, str] | None = None
) -> str | None:
    """The instance's PostgreSQL URL, if the variable is set (empty counts as unset), for the
    driver dagster-postgres brings (psycopg2; SQLAlchemy's default for `postgresql://` is the
    other one)."""
    url = postgres_url_as_set(variable, env)
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return url


def storage_kind(storage: object) -> str:
    """How `make doctor` names an instance's storage: `PostgreSQL` or `SQLite`."""
    return "PostgreSQL" if type(storage).__name__.startswith("DagsterPostgres") else "SQLite"


def instance_config(home: Path) -> Mapping[str, Any]:
    """`home/dagster.yaml` read and validated against Dagster's instance schema, without
    creating the instance (which would create its databases): what `make doctor` checks.
    Raises `yaml.YAMLError` or `dagster.DagsterInvalidConfigError`. Here, beside the other use
    of Dagster's internals, as dagster is pinned and its test fails if this changes."""
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(home))
    return config
