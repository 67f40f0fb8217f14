"""`make doctor`: is this set-up ready to run? One line per check, ✓ or ✗, and what to fix.

Like `dbt debug`: it reads the settings, calls the API with the pipeline's own client (the
built-in sandbox when no token is set, so that path is checked too), opens the warehouse file
and reads Dagster's instance configuration. It creates the warehouse's folder if it is missing
and nothing else: no migration, no table, no run, no new warehouse file. The token is never
printed; the team it belongs to is.

Command line: `python -m pipeline.cli.doctor` (exit code 0 when every check passed, else 1).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import sqlalchemy as sa
import yaml

from pipeline.api import ApiError, AuthError, DigitalOceanClient, RetryPolicy
from pipeline.dagster_storage import POSTGRES_URL_ENV, instance_config, postgres_url
from pipeline.sandbox import SandboxServer
from pipeline.settings import (
    ENV_FILE,
    TOKEN_ENV,
    TOKENS_ENV,
    WAREHOUSE_ENV,
    Settings,
    SettingsError,
    get_settings,
    token_place,
)
from pipeline.sources import INVENTORY
from pipeline.teams import Account, TeamMissingError, read_team
from pipeline.warehouse.migrate import LATEST_VERSION, schema_version
from pipeline.warehouse.publish import unpublished_writes, working_file
from pipeline.warehouse.store import (
    Warehouse,
    WarehouseBusyError,
    holds_sample_data,
    mix_message,
)

BALANCE_PATH = "/v2/customers/my/balance"
TOKENS_PAGE = "https://cloud.digitalocean.com/account/api/tokens"
# Long enough for a slow network, short enough that a person waits for the answer.
API_TIMEOUT = 10.0
LOCK_TIMEOUT = 2.0
MARKS = {True: "✓", False: "✗", None: "–"}


@dataclass(frozen=True)
class Check:
    """One line of the report. `ok` is None for a check that was not run because an earlier
    one failed: that failure is the problem to fix, so it is not counted twice."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        return f"{MARKS[self.ok]} {self.name}: {self.detail}"


class _Quiet:
    """A log for the client that drops its retry warnings: the check's own line says it all."""

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass


@contextlib.contextmanager
def _silenced(logger: str) -> Iterator[None]:
    """Mute a library logger for a block (the store's "locked; retrying" lines)."""
    log = logging.getLogger(logger)
    before = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = before


# -- 1. configuration ---------------------------------------------------------------------------
def check_settings(cwd: Path | None = None) -> Check:
    """The settings validate, as every entry point reads them: say which `.env` was read and
    whether runs use the sandbox or the real API. `SettingsError` never contains the token."""
    env_file = (cwd or Path.cwd()) / ENV_FILE
    source = f"read {env_file}" if env_file.is_file() else f"no {ENV_FILE} in {env_file.parent}"
    try:
        settings = get_settings()
    except SettingsError as exc:
        where = f"in {env_file} or the environment" if env_file.is_file() else "in the environment"
        return Check("configuration", False, f"{exc}. Fix it {where} ({source})")
    tokens = len(settings.tokens)
    if not tokens:
        mode = (
            "no DIGITALOCEAN_TOKEN, so runs use the built-in sandbox API (sample data, kept in "
            f"{settings.warehouse}, apart from WAREHOUSE_PATH)"
        )
    elif settings.token_env == TOKENS_ENV:
        mode = (
            f"{TOKENS_ENV} holds {tokens} token(s), so runs load {tokens} team(s) from the API "
            f"at {_host(settings.api_url)}"
        )
    else:
        mode = f"DIGITALOCEAN_TOKEN is set, so runs use the API at {_host(settings.api_url)}"
    return Check("configuration", True, f"{source}; {mode}")


def _host(url: str) -> str:
    return url.split("://", 1)[-1]


# -- 2. the token -------------------------------------------------------------------------------
def new_client(url: str, token: str, place: str = TOKEN_ENV) -> DigitalOceanClient:
    """The pipeline's client, with one retry and a short timeout: a person is waiting."""
    return DigitalOceanClient(
        url,
        token,
        retry=RetryPolicy(attempts=2),
        timeout=API_TIMEOUT,
        log=_Quiet(),
        token_name=place,
    )


def _api_failure(exc: ApiError, scope: str, host: str, place: str = TOKEN_ENV) -> str:
    """What an API error means for the person running the check, and what to do about it."""
    if isinstance(exc, AuthError) and exc.status == 401:
        return (
            "the token is not valid or was revoked (HTTP 401): create a new token with the "
            f"billing:read and account:read scopes at {TOKENS_PAGE} and set {place} to it"
        )
    if isinstance(exc, AuthError):
        return (
            f"the token lacks {scope} (HTTP {exc.status}): create a token that has it at "
            f"{TOKENS_PAGE} and set {place} to it"
        )
    if exc.status is not None:  # a 404 or another answer the API does not give
        return f"{host} answered {exc}: check that DIGITALOCEAN_API_URL points at the API"
    return f"cannot reach {host}: {exc}. Check DIGITALOCEAN_API_URL and the network"


def _billing(client: DigitalOceanClient) -> tuple[Check, ApiError | None]:
    try:
        client.get_page(BALANCE_PATH, None, "billing:read")
    except ApiError as exc:
        failure = _api_failure(exc, "billing:read", client.host, client.token_name)
        return Check("API, billing:read", False, failure), exc
    return Check("API, billing:read", True, f"{client.host} answered GET {BALANCE_PATH}"), None


def check_billing(client: DigitalOceanClient) -> Check:
    """The API answers and the token reads billing: the call every billing asset depends on."""
    return _billing(client)[0]


def _account(client: DigitalOceanClient) -> tuple[Check, str | None]:
    """The account check, and the team's uuid when it was read (`teams.read_team`, as runs do)."""
    try:
        team = read_team(Account(1, client.token_name, client))
    except TeamMissingError as exc:
        return Check("account:read", False, str(exc)), None
    except ApiError as exc:
        detail = _api_failure(exc, "account:read", client.host, client.token_name)
        if isinstance(exc, AuthError) and exc.status == 403:
            detail += "; every run reads the token's team with it"
        return Check("account:read", False, detail), None
    return Check("account:read", True, f'team "{team.name}" ({team.uuid})'), team.uuid


def check_account(client: DigitalOceanClient) -> Check:
    """The token reads the account (every run names the team with it); names the team, so a
    person can tell which token this is without seeing it."""
    return _account(client)[0]


def check_inventory(client: DigitalOceanClient) -> list[Check]:
    """The inventory lists' scopes (`project:read`, `droplet:read`, …), one page of one record
    each, as a run reads them, in one line. A missing scope fails that list's step only, and
    allocation lacks its resources."""
    lacking, failures = [], []
    for source in INVENTORY:
        endpoint = source.index
        assert endpoint is not None
        try:
            client.get_page(endpoint.path, endpoint.paginator.params(1, 1), endpoint.scope)
        except AuthError as exc:
            if exc.status != 403:
                failures.append(_api_failure(exc, endpoint.scope, client.host, client.token_name))
            else:
                lacking.append(source)
        except ApiError as exc:
            failures.append(_api_failure(exc, endpoint.scope, client.host, client.token_name))
    name = "inventory scopes"
    if failures:
        return [Check(name, False, failures[0])]
    if lacking:
        scopes = ", ".join(s.index.scope for s in lacking if s.index is not None)
        steps = ", ".join(s.name for s in lacking)
        return [
            Check(
                name,
                False,
                f"the token lacks {scopes} (HTTP 403): the {steps} step(s) fail and allocation "
                f"lacks their resources; create a token that has them at {TOKENS_PAGE} and set "
                f"{client.token_name} to it",
            )
        ]
    scopes = ", ".join(s.index.scope for s in INVENTORY if s.index is not None)
    return [Check(name, True, f"reads every inventory list ({scopes})")]


def _check_api(
    url: str, token: str, place: str, inventory: bool = True
) -> tuple[list[Check], str | None]:
    with new_client(url, token, place) as client:
        billing, error = _billing(client)
        if error is not None and not (isinstance(error, AuthError) and error.status == 403):
            return [billing, Check("account:read", None, "not checked: see the line above")], None
        account, team = _account(client)
        return [billing, account, *(check_inventory(client) if inventory else [])], team


def check_api(
    url: str, token: str, place: str = TOKEN_ENV, *, inventory: bool = False
) -> list[Check]:
    """Billing, then the account, then (with `inventory`) each inventory list's scope; the
    account is only asked when the first call got through or was refused for its scope alone,
    else its line would repeat the same problem."""
    return _check_api(url, token, place, inventory)[0]


def check_tokens(settings: Settings) -> list[Check]:
    """Each token in turn, its lines named by its place when there are several; two tokens of
    one team are a problem of their own."""
    tokens = settings.tokens
    checks: list[Check] = []
    teams: dict[str, str] = {}
    for position, token in enumerate(tokens, start=1):
        place = token_place(position, settings.token_env)
        found, team = _check_api(settings.api_url, token.get_secret_value(), place)
        if len(tokens) > 1:
            found = [dataclasses.replace(c, name=f"{place}: {c.name}") for c in found]
        checks += found
        if team is not None and team in teams:
            checks.append(
                Check(
                    "teams",
                    False,
                    f"{teams[team]} and {place} belong to the same team ({team}): keep one",
                )
            )
        teams.setdefault(team or f"unknown-{position}", place)
    return checks


def check_token(settings: Settings) -> list[Check]:
    """The tokens against the configured API, or, without one, the built-in sandbox for the
    length of the check, so the path `make run` takes without a token is exercised too."""
    if settings.tokens:
        return check_tokens(settings)
    with SandboxServer() as sandbox:
        note = Check(
            "token",
            True,
            f"not set: checking the built-in sandbox API instead, started at "
            f"{_host(sandbox.url)} for this check",
        )
        return [note, *check_api(sandbox.url, sandbox.token, inventory=True)]


# -- 3. the warehouse file ----------------------------------------------------------------------
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


def read_through(con: duckdb.DuckDBPyConnection) -> None:
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
        with _silenced("pipeline.warehouse.store"):
            with Warehouse(target, lock_timeout=LOCK_TIMEOUT).connect(read_only=True) as con:
                version = schema_version(con)
                read_through(con)
                held = holds_sample_data(con)
            if target != path and path.exists():  # the analysts' file, as they open it
                with Warehouse(path, lock_timeout=LOCK_TIMEOUT).connect(read_only=True) as con:
                    read_through(con)
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


# -- 4. the Dagster instance --------------------------------------------------------------------
def _runs_dir(config: Mapping[str, Any], home: Path) -> Path | str:
    """Where the instance keeps its runs: a folder for SQLite storage, else the storage's name."""
    storage = config.get("storage")
    if isinstance(storage, Mapping) and storage:
        kind, options = next(iter(storage.items()))
        if kind == "custom" and isinstance(options, Mapping):
            # Ours (pipeline.dagster_storage) is SQLite storage under its config's base_dir.
            options = options.get("config") or {}
            if "base_dir" not in options:
                return str(storage["custom"].get("class", kind))
        elif kind != "sqlite":
            return kind
        base = options.get("base_dir") if isinstance(options, Mapping) else None
        if isinstance(base, Mapping) and "env" in base:
            base = os.environ.get(str(base["env"]))
        return Path(base) if isinstance(base, str) else home
    run_storage = config.get("run_storage")
    if isinstance(run_storage, Mapping):
        return f"run_storage {run_storage.get('class')}"
    return home


def _run_count(runs_dir: Path) -> int | None:
    """How many runs the instance holds, read from its SQLite file without writing to it."""
    db = runs_dir / "history" / "runs.db"
    if not db.is_file():
        return None
    try:
        with contextlib.closing(_read_only_sqlite(db)) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return None


PID = re.compile(r"\(pid: (\d+)\)")


def _read_only_sqlite(db: Path) -> sqlite3.Connection:
    # A reader of a WAL database creates its -wal and -shm files when they are missing; they are
    # missing when no one has the file open, and then reading it as immutable creates nothing.
    in_use = all(db.with_name(db.name + suffix).exists() for suffix in ("-wal", "-shm"))
    uri = f"{db.resolve().as_uri()}?mode=ro" + ("" if in_use else "&immutable=1")
    return sqlite3.connect(uri, uri=True, timeout=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def stuck_runs(runs_dir: Path) -> list[tuple[str, int | None]]:
    """Runs the instance says are STARTED whose process is gone (killed, or OOM-killed): they
    hold the warehouse pool, so queued runs wait behind them. (run id, its process id)."""
    db = runs_dir / "history" / "runs.db"
    if not db.is_file():
        return []
    try:
        with contextlib.closing(_read_only_sqlite(db)) as con:
            started = [
                r for (r,) in con.execute("SELECT run_id FROM runs WHERE status = 'STARTED'")
            ]
    except sqlite3.Error:
        return []
    stuck: list[tuple[str, int | None]] = []
    for run_id in started:
        events = runs_dir / "history" / "runs" / f"{run_id}.db"
        pid = None
        if events.is_file():
            with (
                contextlib.suppress(sqlite3.Error),
                contextlib.closing(_read_only_sqlite(events)) as con,
            ):
                for (event,) in con.execute(
                    "SELECT event FROM event_logs WHERE event LIKE '%(pid: %' ORDER BY id LIMIT 1"
                ):
                    found = PID.search(event)
                    pid = int(found.group(1)) if found else None
        if pid is None or not _alive(pid):
            stuck.append((run_id, pid))
    return stuck


def stuck_postgres_runs(con: sa.Connection) -> list[tuple[str, int | None]]:
    """`stuck_runs` for an instance in PostgreSQL (a run `make run` could not record as failed
    while the database was away): STARTED runs whose process is not alive on this machine."""
    has_runs = con.execute(sa.text("SELECT to_regclass('runs') IS NOT NULL")).scalar()
    if not has_runs:
        return []
    started = con.execute(sa.text("SELECT run_id FROM runs WHERE status = 'STARTED'")).scalars()
    stuck: list[tuple[str, int | None]] = []
    for run_id in list(started):
        event = con.execute(
            sa.text(
                "SELECT event FROM event_logs WHERE run_id = :run_id AND event LIKE '%(pid: %' "
                "ORDER BY id LIMIT 1"
            ),
            {"run_id": run_id},
        ).scalar()
        found = PID.search(event) if event else None
        pid = int(found.group(1)) if found else None
        if pid is None or not _alive(pid):
            stuck.append((run_id, pid))
    return stuck


def stuck_check(stuck: list[tuple[str, int | None]]) -> Check:
    """The failed check that names runs left STARTED with no live process."""
    named = "; ".join(
        f"run {run_id} ({f'process {pid} is gone' if pid else 'no process recorded'})"
        for run_id, pid in stuck
    )
    return Check(
        "Dagster",
        False,
        f"{len(stuck)} run(s) STARTED with no live process, holding the queue: {named}. "
        "Open each in the UI (`make dev`, Runs) and Terminate it, or leave the daemon running: "
        "run monitoring fails it after its maximum runtime",
    )


def check_postgres(home: Path, url: str) -> Check:
    """DAGSTER_POSTGRES_URL moves the instance into PostgreSQL: it must connect. Names the
    server and database, never the password (masked should the driver's message hold it)."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}{parts.path or '/'}"
    engine = sa.create_engine(url, connect_args={"connect_timeout": int(API_TIMEOUT)})
    try:
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
            stuck = stuck_postgres_runs(con)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if parts.password:
            reason = reason.replace(parts.password, "***")
        return Check(
            "Dagster",
            False,
            f"{POSTGRES_URL_ENV} does not connect to PostgreSQL at {where}: {reason}. Fix the "
            f"URL or the server, or unset {POSTGRES_URL_ENV} to keep the instance in SQLite",
        )
    finally:
        engine.dispose()
    if stuck:
        return stuck_check(stuck)
    return Check(
        "Dagster",
        True,
        f"DAGSTER_HOME={home}; the instance (runs, event log, schedules) is in PostgreSQL at "
        f"{where} ({POSTGRES_URL_ENV})",
    )


def check_dagster(env: Mapping[str, str] | None = None) -> Check:
    """DAGSTER_HOME points at a folder whose dagster.yaml Dagster accepts (schedules, the
    warehouse pool, storage under data/dagster); says where runs are kept. Reads only."""
    env = os.environ if env is None else env
    home_value = env.get("DAGSTER_HOME", "")
    fix = "run `make doctor` (the Makefile sets it), or `export DAGSTER_HOME=$PWD` at the repo root"
    if not home_value:
        return Check("Dagster", False, f"DAGSTER_HOME is not set: {fix}")
    home = Path(home_value)
    if not home.is_absolute() or not home.is_dir():
        return Check("Dagster", False, f"DAGSTER_HOME={home} is not an absolute folder: {fix}")
    if not (home / "dagster.yaml").is_file():
        return Check("Dagster", False, f"DAGSTER_HOME={home} has no dagster.yaml: {fix}")
    try:
        config = instance_config(home)
    except (yaml.YAMLError, dg.DagsterInvalidConfigError) as exc:  # bad YAML, or not the schema
        first = str(exc).strip().splitlines()
        return Check("Dagster", False, f"{home / 'dagster.yaml'}: {' '.join(first[:2])}")
    url = postgres_url(env=env)
    if url is not None:
        return check_postgres(home, url)
    runs = _runs_dir(config, home)
    if isinstance(runs, str):
        return Check("Dagster", True, f"DAGSTER_HOME={home}; runs stored in {runs}")
    folder = runs if runs.is_absolute() else Path.cwd() / runs
    count = _run_count(folder)
    held = "no runs yet" if count is None else f"{count} run{'s' if count != 1 else ''}"
    stuck = stuck_runs(folder)
    if stuck:
        return stuck_check(stuck)
    return Check("Dagster", True, f"DAGSTER_HOME={home}; runs stored in {runs} ({held})")


# -- all of it ----------------------------------------------------------------------------------
def run_checks() -> list[Check]:
    """Every check in order; those that need valid settings wait for them."""
    checks = [check_settings()]
    if checks[0].ok:
        settings = get_settings()
        checks += check_token(settings)
        checks.append(
            check_warehouse(settings.warehouse, settings.warehouse_env, settings.sample_data)
        )
        checks.append(check_publication(settings.warehouse))
    else:
        for name in ("API, billing:read", "warehouse"):
            checks.append(Check(name, None, "not checked: fix the configuration first"))
    checks.append(check_dagster())
    return checks


def report(checks: Sequence[Check], secrets: Sequence[str] = ()) -> str:
    """The lines a person reads, and the verdict; a token, should one appear, is masked."""
    problems = sum(1 for check in checks if check.ok is False)
    lines = [check.line() for check in checks]
    lines.append(
        "all checks passed" if not problems else f"{problems} problem(s): fix the ✗ lines above"
    )
    text = "\n".join(lines)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m pipeline.cli.doctor",
        description="Check the settings, the token, the warehouse file and the Dagster instance.",
    ).parse_args(argv)
    checks = run_checks()
    secrets: list[str] = []
    with contextlib.suppress(SettingsError):
        secrets = [token.get_secret_value() for token in get_settings().tokens]
    print(report(checks, secrets))
    return 0 if all(check.ok is not False for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
