"""The Dagster instance: DAGSTER_HOME's dagster.yaml, where runs are kept, and every run left
STARTED by a process that is gone.

The instance is opened as runs open it (`DagsterInstance.from_config`, SQLite files or the
PostgreSQL database DAGSTER_POSTGRES_URL names) and read through Dagster's public API only:
`get_run_records(RunsFilter(statuses=[STARTED]))`, each run's tags, and the process id its
engine events carry in their metadata. One code path for both stores. Opening an instance in
an empty PostgreSQL database creates Dagster's tables there, as the first run would; SQLite
files are opened only once a run made them.

A process id means something only on the machine that ran it, and an instance in PostgreSQL
may be shared by several. Dagster does not record a run's host, so `make run` tags its runs
with it (`HOST_TAG`): a run of this host whose process is gone is named stuck; a run of another
host is not this machine's to judge; a run without the tag whose process is not here is named
as one this machine cannot tell about, not as stuck.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import dagster as dg
import yaml

from pipeline.cli.doctor.check import TIMEOUT_SECONDS, Check
from pipeline.cli.supervise import InstanceWatch, database_errors
from pipeline.dagster_storage import POSTGRES_URL_ENV, instance_config, postgres_url
from pipeline.dead_runs import StartedRun, Verdict, judge, started_runs

FIX_HOME = (
    "run `make doctor` (the Makefile sets it), or `export DAGSTER_HOME=$PWD` at the repo root"
)


def _process(run: StartedRun, absent: str) -> str:
    return (
        f"run {run.run_id} ({f'process {run.pid} {absent}' if run.pid else 'no process recorded'})"
    )


def _with_verdict(ok_detail: str, verdict: Verdict) -> Check:
    """The instance's line: ✗ naming the stuck runs, else ✓; either way the runs this host
    cannot judge are said after it."""
    unknown = ""
    if verdict.unknown:
        named = "; ".join(_process(run, "is not on this machine") for run in verdict.unknown)
        unknown = (
            f"; {len(verdict.unknown)} run(s) STARTED with no host recorded, so this machine "
            f"cannot tell whether their process is gone: {named}"
        )
    if not verdict.stuck:
        return Check("Dagster", True, ok_detail + unknown)
    named = "; ".join(_process(run, "is gone") for run in verdict.stuck)
    return Check(
        "Dagster",
        False,
        f"{len(verdict.stuck)} run(s) STARTED with no live process, holding the queue: {named}. "
        "The daemon (`make dev`, `make services`) marks each failed within minutes (its dead-run "
        f"sensor); without one, open each in the UI, Runs, and Terminate it{unknown}",
    )


def _with_timeout(url: str) -> str:
    """The URL with libpq's connect timeout, unless it sets one: a host that drops packets
    fails the check in seconds, not after the system's TCP timeout."""
    parts = urlsplit(url)
    if any(key == "connect_timeout" for key, _ in parse_qsl(parts.query)):
        return url
    query = "&".join(q for q in (parts.query, f"connect_timeout={int(TIMEOUT_SECONDS)}") if q)
    return urlunsplit(parts._replace(query=query))


@contextlib.contextmanager
def opened(home: Path, url: str | None) -> Iterator[dg.DagsterInstance]:
    """The instance at `home` as a run opens it, in the PostgreSQL database at `url` when one is
    given (the storage reads the variable from the process's environment, so it is set for the
    opening only), with dagster-postgres's retry warnings kept off the console."""
    before = os.environ.get(POSTGRES_URL_ENV)
    if url is None:
        os.environ.pop(POSTGRES_URL_ENV, None)
    else:
        os.environ[POSTGRES_URL_ENV] = _with_timeout(url)
    try:
        with InstanceWatch(), dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if before is None:
            os.environ.pop(POSTGRES_URL_ENV, None)
        else:
            os.environ[POSTGRES_URL_ENV] = before


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


def server_of(url: str) -> str:
    """The PostgreSQL URL as messages name it: host, port and database, never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path or '/'}"


def unreachable(url: str, exc: BaseException) -> str:
    """Why the instance's PostgreSQL did not connect, naming the server and the driver's reason,
    never the password (masked should the driver's message hold it)."""
    cause = exc.__cause__ or exc
    reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
    password = urlsplit(url).password
    if password:
        reason = reason.replace(password, "***")
    return f"{POSTGRES_URL_ENV} does not connect to PostgreSQL at {server_of(url)}: {reason}"


def check_postgres(home: Path, url: str) -> Check:
    """DAGSTER_POSTGRES_URL moves the instance into PostgreSQL: it must connect. Names the
    server and database, never the password."""
    where = server_of(url)
    try:
        with opened(home, url) as instance:
            verdict = judge(started_runs(instance), socket.gethostname())
    except database_errors() as exc:
        return Check(
            "Dagster",
            False,
            f"{unreachable(url, exc)}. Fix the URL or the server, or unset {POSTGRES_URL_ENV} "
            "to keep the instance in SQLite",
        )
    return _with_verdict(
        f"DAGSTER_HOME={home}; the instance (runs, event log, schedules) is in PostgreSQL at "
        f"{where} ({POSTGRES_URL_ENV})",
        verdict,
    )


def check_sqlite(home: Path, runs: Path) -> Check:
    """The instance in SQLite files under `runs`: how many runs it holds. Opened only once a run
    made its files, so the check creates none."""
    folder = runs if runs.is_absolute() else Path.cwd() / runs
    if not (folder / "history" / "runs.db").is_file():
        return Check("Dagster", True, f"DAGSTER_HOME={home}; runs stored in {runs} (no runs yet)")
    with opened(home, None) as instance:
        count = instance.get_runs_count()
        verdict = judge(started_runs(instance), socket.gethostname())
    held = f"{count} run{'s' if count != 1 else ''}"
    return _with_verdict(f"DAGSTER_HOME={home}; runs stored in {runs} ({held})", verdict)


def check_dagster(env: Mapping[str, str] | None = None) -> Check:
    """DAGSTER_HOME points at a folder whose dagster.yaml Dagster accepts (schedules, the
    warehouse pool, storage under data/dagster); says where runs are kept and names the runs
    left STARTED by a process that is gone."""
    env = os.environ if env is None else env
    home_value = env.get("DAGSTER_HOME", "")
    if not home_value:
        return Check("Dagster", False, f"DAGSTER_HOME is not set: {FIX_HOME}")
    home = Path(home_value)
    if not home.is_absolute() or not home.is_dir():
        return Check("Dagster", False, f"DAGSTER_HOME={home} is not an absolute folder: {FIX_HOME}")
    if not (home / "dagster.yaml").is_file():
        return Check("Dagster", False, f"DAGSTER_HOME={home} has no dagster.yaml: {FIX_HOME}")
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
    return check_sqlite(home, runs)
